/*
 * The drdynvc filter (rdp_dvc.h). Every PDU starts with one header byte:
 * cbChId (bits 0-1: the channel ID is 1, 2 or 4 bytes), Sp (bits 2-3: a
 * priority, or the length field's size in a Data First), Cmd (bits 4-7).
 * Nothing in the state changes until a PDU has been parsed whole.
 */
#include "rdpproxy/rdp_dvc.h"

#include <string.h>

#include "common/err.h"
#include "record/rdprec.h"

/* [MS-RDPEDISP] 2.2.2.2.1 */
#define DISP_HEAD 8
#define DISP_MONITOR 40
#define DISP_MIN 200
#define DISP_MAX 8192
#define DISP_PRIMARY 0x1
/* a failed Create Response's status (an HRESULT, negative: failure) */
#define DVC_CREATE_FAILED 0x80004005u /* E_FAIL */
/* [MS-RDPEGFX] 2.2.1.5 and 2.2.5: an RDPGFX PDU's header, the segmented
 * data wrapper of what the target sends, the bulk header of a segment */
#define GFX_HEAD 8
#define GFX_SINGLE 0xe0
#define GFX_MULTIPART 0xe1
#define GFX_BULK_TYPE 0x0f
#define GFX_BULK_RDP8 0x04
#define GFX_BULK_COMPRESSED 0x20
#define GFX_ACK_LEN (GFX_HEAD + 12) /* frame and QoE acknowledgements */

static uint16_t dv_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t dv_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void dv_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)((v >> 8) & 0xff);
    p[2] = (uint8_t)((v >> 16) & 0xff);
    p[3] = (uint8_t)(v >> 24);
}

/* A variable-size field (cbChId or Sp: 0, 1, 2 -> 1, 2, 4 bytes; 3 is
 * invalid) at p[*off]: ERR_PROTO if it does not fit. */
static int dv_var(const uint8_t *p, size_t len, size_t *off, unsigned code,
                  uint32_t *v)
{
    static const size_t sizes[3] = {1, 2, 4};
    size_t n;

    if (code > 2) {
        return ERR_PROTO;
    }
    n = sizes[code];
    if (len - *off < n) {
        return ERR_PROTO;
    }
    *v = 0;
    for (size_t i = 0; i < n; i++) {
        *v |= (uint32_t)p[*off + i] << (8 * i);
    }
    *off += n;
    return ERR_OK;
}

void rdp_dvc_init(struct rdp_dvc *d)
{
    memset(d, 0, sizeof(*d));
    d->last_ms = -1;
}

/* The capabilities, either way: version clamped to 2. */
static int dv_caps(int dir, const uint8_t *in, size_t len, uint8_t *out,
                   size_t *outlen)
{
    unsigned ver;
    size_t n;

    if (len < 4) {
        return ERR_PROTO;
    }
    ver = (unsigned)in[2] | ((unsigned)in[3] << 8);
    if (ver == 0) {
        return ERR_PROTO;
    }
    /* the target's request carries 4 priority charges from version 2 */
    n = dir == RDP_DVC_DOWN && ver >= 2 ? 12 : 4;
    if (len < n) {
        return ERR_PROTO;
    }
    memcpy(out, in, n);
    if (ver > 2) {
        out[2] = 2;
        out[3] = 0;
    }
    *outlen = n;
    return ERR_OK;
}

static void dv_name(char *dst, size_t cap, const uint8_t *p, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        dst[j++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    }
    dst[j] = '\0';
}

/* The relayed channel (RDP_DVC_DISP, RDP_DVC_GFX) that holds id, -1:
 * none. IDs of relayed channels are distinct (dv_create_req). */
static int dv_find(const struct rdp_dvc *d, uint32_t id)
{
    for (int k = 0; k < RDP_DVC_CHANS; k++) {
        if (d->ch[k].state != RDP_DVC_NONE && d->ch[k].id == id) {
            return k;
        }
    }
    return -1;
}

static bool dv_is(const uint8_t *p, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(p, name, n) == 0;
}

/* The target's Create Request: DisplayControl passes, Graphics when the
 * session agreed on it; the rest is refused with a failed Create
 * Response. */
static int dv_create_req(struct rdp_dvc *d, const uint8_t *in, size_t len,
                         size_t off, uint32_t id, uint8_t *out, size_t *outlen,
                         struct rdp_dvc_result *r)
{
    const uint8_t *nul = memchr(in + off, '\0', len - off);
    size_t n, idlen = off - 1;
    bool disp, gfx;
    int k = -1;

    if (nul == NULL) {
        return ERR_PROTO;
    }
    n = (size_t)(nul - (in + off));
    disp = dv_is(in + off, n, RDP_DVC_DISP_NAME);
    gfx = dv_is(in + off, n, RDP_DVC_GFX_NAME);
    dv_name(r->name, sizeof(r->name), in + off, n);
    if (dv_find(d, id) >= 0) {
        /* two relayed channels under one ID: what the client sends on it
         * could not be told apart. Not answered: a failed response under
         * that ID would be taken for the open channel's. */
        r->refused = "a create request under the ID of a channel open";
        return ERR_OK;
    }
    k = disp ? RDP_DVC_DISP : gfx && d->gfx_allowed ? RDP_DVC_GFX : -1;
    if (k >= 0 && d->ch[k].state == RDP_DVC_NONE) {
        struct rdp_dvc_chan *c = &d->ch[k];

        c->state = RDP_DVC_PENDING;
        c->id = id;
        c->left[0] = c->left[1] = 0;
        if (k == RDP_DVC_DISP) {
            d->max_monitors = 0;
        }
        r->chan = k;
        memcpy(out, in, len);
        *outlen = len;
        return ERR_OK;
    }
    r->refused = k == RDP_DVC_DISP  ? "a second display control channel"
                 : k == RDP_DVC_GFX ? "a second graphics channel"
                 : gfx ? "the graphics channel (not agreed for this session)"
                       : "a dynamic channel other than display control and "
                         "graphics";
    /* the same ID, in as many bytes, and a failure */
    r->reply[0] = (uint8_t)((RDP_DVC_CREATE << 4) | (in[0] & 0x03));
    memcpy(r->reply + 1, in + 1, idlen);
    dv_put32(r->reply + 1 + idlen, DVC_CREATE_FAILED);
    r->reply_len = 1 + idlen + 4;
    return ERR_OK;
}

/* The target's DisplayControl capabilities: the monitor count clamped. */
static int dv_disp_caps(struct rdp_dvc *d, const uint8_t *in, size_t len,
                        size_t off, uint8_t *out, size_t *outlen,
                        struct rdp_dvc_result *r)
{
    uint32_t max;

    if (len - off != DISP_HEAD + 12 || dv_get32(in + off) != RDP_DISP_CAPS ||
        dv_get32(in + off + 4) != DISP_HEAD + 12) {
        r->refused = "a display control PDU from the target other than its "
                     "capabilities";
        return ERR_OK;
    }
    max = dv_get32(in + off + 8);
    if (max == 0) {
        return ERR_PROTO;
    }
    if (max > RDP_DVC_MONITORS_MAX) {
        max = RDP_DVC_MONITORS_MAX;
    }
    d->max_monitors = max;
    memcpy(out, in, len);
    dv_put32(out + off + 8, max);
    *outlen = len;
    return ERR_OK;
}

/* The client's Monitor Layout, checked into out (whole: in's length). */
static int dv_layout(struct rdp_dvc *d, const uint8_t *in, size_t len,
                     size_t off, int64_t now, uint8_t *out, size_t *outlen,
                     struct rdp_dvc_result *r)
{
    uint32_t count, primaries = 0, w = 0, h = 0;
    int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;
    const uint8_t *m;
    uint8_t *o;

    if (len - off < DISP_HEAD + 8 ||
        dv_get32(in + off) != RDP_DISP_MONITOR_LAYOUT) {
        r->refused = "a display control PDU from the client other than a "
                     "monitor layout";
        return ERR_OK;
    }
    count = dv_get32(in + off + 12);
    if (dv_get32(in + off + 4) != len - off ||
        dv_get32(in + off + 8) != DISP_MONITOR || count == 0 ||
        count > RDP_DVC_MONITORS_MAX ||
        len - off != DISP_HEAD + 8 + (size_t)count * DISP_MONITOR) {
        return ERR_PROTO;
    }
    if (d->max_monitors == 0) {
        r->refused = "a monitor layout before the target's capabilities";
        return ERR_OK;
    }
    if (count > d->max_monitors) {
        r->refused = "a monitor layout with more monitors than the target "
                     "takes";
        return ERR_OK;
    }
    memcpy(out, in, len);
    for (uint32_t i = 0; i < count; i++) {
        uint32_t flags, mw, mh, pw, ph, orient, dsf, devsf;
        int32_t left, top;

        m = in + off + DISP_HEAD + 8 + (size_t)i * DISP_MONITOR;
        o = out + (m - in);
        flags = dv_get32(m);
        left = (int32_t)dv_get32(m + 4);
        top = (int32_t)dv_get32(m + 8);
        mw = dv_get32(m + 12);
        mh = dv_get32(m + 16);
        pw = dv_get32(m + 20);
        ph = dv_get32(m + 24);
        orient = dv_get32(m + 28);
        dsf = dv_get32(m + 32);
        devsf = dv_get32(m + 36);
        if (mw < DISP_MIN || mw > DISP_MAX || (mw & 1) != 0 || mh < DISP_MIN ||
            mh > DISP_MAX || left < -DISP_MAX * RDP_DVC_MONITORS_MAX ||
            left > DISP_MAX * RDP_DVC_MONITORS_MAX ||
            top < -DISP_MAX * RDP_DVC_MONITORS_MAX ||
            top > DISP_MAX * RDP_DVC_MONITORS_MAX) {
            r->refused = "a monitor layout out of bounds (each monitor 200 "
                         "to 8192 pixels, the width even)";
            *outlen = 0;
            return ERR_OK;
        }
        if (i == 0 || left < x0) {
            x0 = left;
        }
        if (i == 0 || top < y0) {
            y0 = top;
        }
        if (i == 0 || (int64_t)left + mw > x1) {
            x1 = (int64_t)left + mw;
        }
        if (i == 0 || (int64_t)top + mh > y1) {
            y1 = (int64_t)top + mh;
        }
        if (flags & DISP_PRIMARY) {
            if (left != 0 || top != 0) {
                r->refused = "a monitor layout whose primary monitor is "
                             "not at 0,0";
                *outlen = 0;
                return ERR_OK;
            }
            primaries++;
            w = mw;
            h = mh;
        }
        /* what the target is to ignore when out of range, made neutral */
        dv_put32(o, flags & DISP_PRIMARY);
        if (pw < 10 || pw > 10000 || ph < 10 || ph > 10000) {
            dv_put32(o + 20, 0);
            dv_put32(o + 24, 0);
        }
        if (orient != 0 && orient != 90 && orient != 180 && orient != 270) {
            dv_put32(o + 28, 0);
        }
        if (dsf < 100 || dsf > 500) {
            dv_put32(o + 32, 100);
        }
        if (devsf != 100 && devsf != 140 && devsf != 180) {
            dv_put32(o + 36, 100);
        }
    }
    if (count == 1 && primaries == 0) {
        /* one monitor is the primary ([MS-RDPEDISP]: the server may take
         * it so): at 0,0 all the same */
        m = in + off + DISP_HEAD + 8;
        if (dv_get32(m + 4) != 0 || dv_get32(m + 8) != 0) {
            r->refused = "a monitor layout whose primary monitor is not "
                         "at 0,0";
            *outlen = 0;
            return ERR_OK;
        }
        dv_put32(out + (m - in), DISP_PRIMARY);
        primaries = 1;
        w = dv_get32(m + 12);
        h = dv_get32(m + 16);
    }
    if (primaries != 1) {
        r->refused = "a monitor layout without exactly one primary monitor";
        *outlen = 0;
        return ERR_OK;
    }
    /* the desktop all monitors make: what the client and a recording get
     * (rdprec.h: at most 8192 a side, RDPREC_PIXELS_MAX in all) */
    if (x1 - x0 > DISP_MAX || y1 - y0 > DISP_MAX ||
        (x1 - x0) * (y1 - y0) > (int64_t)RDPREC_PIXELS_MAX) {
        r->refused = "a monitor layout whose desktop is larger than 8192 "
                     "pixels a side or 8192x4608 in all";
        *outlen = 0;
        return ERR_OK;
    }
    r->width = w;
    r->height = h;
    r->monitors = count;
    if (d->last_ms >= 0 && now - d->last_ms < RDP_DVC_LAYOUT_MS) {
        /* too soon after the last: held, the newest replaces it */
        memcpy(d->held, out, len);
        d->held_len = len;
        r->held = true;
        *outlen = 0;
        return ERR_OK;
    }
    d->last_ms = now;
    d->held_len = 0;
    *outlen = len;
    return ERR_OK;
}

/*
 * RDPGFX PDUs from the client, p the start of a message of total bytes
 * (n of them here: n == total when it came whole): each of a kind a
 * client sends, back to back and filling the message; a message in
 * fragments must be one PDU (only its header is here to check).
 */
static int dv_gfx_up(const uint8_t *p, size_t n, uint32_t total,
                     struct rdp_dvc_result *r)
{
    size_t at = 0;

    if (n < GFX_HEAD) {
        return ERR_PROTO;
    }
    while (at < n) {
        uint16_t cmd;
        uint32_t plen;

        if (n - at < GFX_HEAD) {
            return ERR_PROTO;
        }
        cmd = dv_get16(p + at);
        plen = dv_get32(p + at + 4);
        if (plen < GFX_HEAD || (n < total && plen != total) ||
            (n == total && plen > n - at)) {
            return ERR_PROTO;
        }
        switch (cmd) {
        case RDP_GFX_FRAME_ACK:
        case RDP_GFX_QOE_FRAME_ACK:
            if (plen != GFX_ACK_LEN) {
                return ERR_PROTO;
            }
            r->gfx_acks += cmd == RDP_GFX_FRAME_ACK;
            break;
        case RDP_GFX_CAPS_ADVERTISE:
        case RDP_GFX_CACHE_IMPORT_OFFER:
            break;
        default:
            r->refused = "a graphics PDU of a kind clients do not send";
            return ERR_OK;
        }
        if (at == 0) {
            r->gfx_cmd = cmd;
        }
        if (n < total) {
            break;
        }
        at += plen;
    }
    return ERR_OK;
}

/*
 * The segmented data wrapper of what the target sends ([MS-RDPEGFX]
 * 2.2.5.1, 2.2.5.2), p the start of a message of total bytes (n here):
 * one segment, or a count of them whose sizes add up to the message
 * (checked when it came whole), each an RDP8 bulk-encoded block. The
 * uncompressed size a multipart message announces is what the client
 * allocates: at most RDP_DVC_GFX_MAX. An uncompressed single segment's
 * first PDU is noted (a caps confirm's version).
 */
static int dv_gfx_down(const uint8_t *p, size_t n, uint32_t total,
                       struct rdp_dvc_result *r)
{
    size_t at;
    uint32_t count;

    if (n < 2) {
        return ERR_PROTO;
    }
    if (p[0] == GFX_SINGLE) {
        if ((p[1] & GFX_BULK_TYPE) != GFX_BULK_RDP8) {
            return ERR_PROTO;
        }
        if ((p[1] & GFX_BULK_COMPRESSED) == 0 && n >= 2 + GFX_HEAD) {
            r->gfx_cmd = dv_get16(p + 2);
            if (r->gfx_cmd == RDP_GFX_CAPS_CONFIRM && n >= 2 + GFX_HEAD + 12) {
                /* capsSet: version, capsDataLength, its flags first */
                r->gfx_version = dv_get32(p + 2 + GFX_HEAD);
                r->gfx_flags = dv_get32(p + 2 + GFX_HEAD + 8);
            }
        }
        return ERR_OK;
    }
    if (p[0] != GFX_MULTIPART || n < 7) {
        return ERR_PROTO;
    }
    count = dv_get16(p + 1);
    if (count == 0) {
        return ERR_PROTO;
    }
    if (dv_get32(p + 3) > RDP_DVC_GFX_MAX) {
        r->refused = "graphics data larger than 64 MiB uncompressed";
        return ERR_OK;
    }
    if (n < total) {
        return ERR_OK; /* the segments are in the fragments to come */
    }
    at = 7;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t sz;

        if (n - at < 4) {
            return ERR_PROTO;
        }
        sz = dv_get32(p + at);
        at += 4;
        if (sz < 1 || sz > n - at || (p[at] & GFX_BULK_TYPE) != GFX_BULK_RDP8) {
            return ERR_PROTO;
        }
        at += sz;
    }
    return at == n ? ERR_OK : ERR_PROTO;
}

/*
 * Data on the Graphics channel (off: past the ID and, for a Data First,
 * the length, first). Passed on as it came, if it fits the framing: the
 * fragments of a message add up to its announced length, no message
 * begins before the last one ended, and the start of each is checked
 * (dv_gfx_up, dv_gfx_down).
 */
static int dv_gfx(struct rdp_dvc *d, int dir, unsigned cmd, const uint8_t *in,
                  size_t len, size_t off, uint32_t first, uint8_t *out,
                  size_t *outlen, struct rdp_dvc_result *r)
{
    struct rdp_dvc_chan *c = &d->ch[RDP_DVC_GFX];
    size_t frag = len - off;
    uint32_t total = (uint32_t)frag;
    int e;

    if (frag > RDP_DVC_GFX_MAX) {
        return ERR_PROTO; /* cannot come in one static channel message */
    }
    if (cmd == RDP_DVC_DATA && c->left[dir] > 0) {
        /* the next fragment of a message */
        if (frag > c->left[dir]) {
            return ERR_PROTO;
        }
        c->left[dir] -= (uint32_t)frag;
        memcpy(out, in, len);
        *outlen = len;
        return ERR_OK;
    }
    if (cmd == RDP_DVC_DATA_FIRST) {
        if (c->left[dir] > 0) {
            r->refused = "a graphics message begun before the last one ended";
            return ERR_OK;
        }
        if (first == 0 || frag > first) {
            return ERR_PROTO;
        }
        if (first > RDP_DVC_GFX_MAX) {
            r->refused = "a graphics message larger than 64 MiB";
            return ERR_OK;
        }
        total = first;
    }
    e = dir == RDP_DVC_UP ? dv_gfx_up(in + off, frag, total, r)
                          : dv_gfx_down(in + off, frag, total, r);
    if (e != ERR_OK || r->refused != NULL) {
        r->gfx_cmd = 0;
        r->gfx_version = 0;
        r->gfx_flags = 0;
        r->gfx_acks = 0;
        return e;
    }
    c->left[dir] = total - (uint32_t)frag;
    memcpy(out, in, len);
    *outlen = len;
    return ERR_OK;
}

int rdp_dvc_filter(struct rdp_dvc *d, int dir, const uint8_t *in, size_t len,
                   int64_t now_ms, uint8_t *out, size_t *outlen,
                   struct rdp_dvc_result *r)
{
    struct rdp_dvc_chan *c;
    unsigned cmd;
    uint32_t id, n = 0;
    size_t off = 1;
    int e, k;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (r != NULL) {
        memset(r, 0, sizeof(*r));
        r->chan = -1;
    }
    if (d == NULL || (in == NULL && len > 0) || out == NULL || outlen == NULL ||
        r == NULL || (dir != RDP_DVC_UP && dir != RDP_DVC_DOWN)) {
        return ERR_INVALID;
    }
    if (len < 1) {
        return ERR_PROTO;
    }
    cmd = in[0] >> 4;
    if (cmd == RDP_DVC_CAPS) {
        return dv_caps(dir, in, len, out, outlen);
    }
    if ((e = dv_var(in, len, &off, in[0] & 0x03, &id)) != ERR_OK) {
        return e;
    }
    k = dv_find(d, id);
    c = k >= 0 ? &d->ch[k] : NULL;
    switch (cmd) {
    case RDP_DVC_CREATE:
        if (dir == RDP_DVC_DOWN) {
            return dv_create_req(d, in, len, off, id, out, outlen, r);
        }
        if (len - off != 4) {
            return ERR_PROTO;
        }
        if (c == NULL || c->state != RDP_DVC_PENDING) {
            r->refused = "a create response for a channel the client was "
                         "not offered";
            return ERR_OK;
        }
        c->state =
            (int32_t)dv_get32(in + off) >= 0 ? RDP_DVC_OPEN : RDP_DVC_NONE;
        c->closing = false; /* an answer to a close came before this */
        r->chan = k;
        r->opened = c->state == RDP_DVC_OPEN;
        break;
    case RDP_DVC_CLOSE:
        if (len != off) {
            return ERR_PROTO;
        }
        if (dir == RDP_DVC_UP) {
            /* the client's answer to the target's close */
            for (int j = 0; j < RDP_DVC_CHANS; j++) {
                if (d->ch[j].closing && d->ch[j].closing_id == id) {
                    d->ch[j].closing = false;
                    r->chan = j;
                    memcpy(out, in, len);
                    *outlen = len;
                    return ERR_OK;
                }
            }
        }
        if (c == NULL) {
            /* a refused channel's close: the other side never knew it */
            r->refused = "a close of a channel not relayed";
            return ERR_OK;
        }
        c->state = RDP_DVC_NONE;
        c->left[0] = c->left[1] = 0;
        if (k == RDP_DVC_DISP) {
            d->held_len = 0;
        }
        c->closing = dir == RDP_DVC_DOWN;
        c->closing_id = id;
        r->chan = k;
        break;
    case RDP_DVC_DATA:
    case RDP_DVC_DATA_FIRST:
        if (cmd == RDP_DVC_DATA_FIRST &&
            (e = dv_var(in, len, &off, (in[0] >> 2) & 0x03, &n)) != ERR_OK) {
            return e;
        }
        if (c == NULL || c->state != RDP_DVC_OPEN) {
            r->refused = "data on a dynamic channel not open";
            return ERR_OK;
        }
        r->chan = k;
        if (k == RDP_DVC_GFX) {
            return dv_gfx(d, dir, cmd, in, len, off, n, out, outlen, r);
        }
        if (cmd == RDP_DVC_DATA_FIRST) {
            r->refused = "a display control PDU in fragments";
            return ERR_OK;
        }
        if (dir == RDP_DVC_DOWN) {
            return dv_disp_caps(d, in, len, off, out, outlen, r);
        }
        return dv_layout(d, in, len, off, now_ms, out, outlen, r);
    default:
        /* compressed data and soft-sync (version 3, never agreed) */
        r->refused = "a dynamic channel PDU of a version not agreed";
        return ERR_OK;
    }
    memcpy(out, in, len);
    *outlen = len;
    return ERR_OK;
}

size_t rdp_dvc_due(struct rdp_dvc *d, int64_t now_ms, uint8_t *out)
{
    size_t n = d->held_len;

    if (n == 0 || rdp_dvc_wait_ms(d, now_ms) != 0) {
        return 0;
    }
    memcpy(out, d->held, n);
    d->held_len = 0;
    d->last_ms = now_ms;
    return n;
}

int rdp_dvc_wait_ms(const struct rdp_dvc *d, int64_t now_ms)
{
    int64_t left;

    if (d->held_len == 0) {
        return -1;
    }
    left = d->last_ms + RDP_DVC_LAYOUT_MS - now_ms;
    return left <= 0 ? 0 : (int)left;
}
