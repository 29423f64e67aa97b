/*
 * The cliprdr filter (rdp_cliprdr.h). Every PDU is one channel message:
 * an 8-byte header (msgType, msgFlags, dataLen, little-endian) and
 * dataLen bytes; up to RDP_CLIP_PAD_MAX zero bytes after them are
 * tolerated (some servers pad) and forwarded as they are.
 *
 * Lengths are checked before every read by the small reader below, the
 * only code here that touches the input by offset. Nothing in the state
 * changes until a PDU has been parsed whole, so a refused PDU leaves the
 * filter as it was.
 */
#include "rdpproxy/rdp_cliprdr.h"

#include <string.h>

#include "common/err.h"

#define RDP_CLIP_HEAD 8
#define RDP_CLIP_PAD_MAX 8
#define RDP_CLIP_SHORT_NAME 32 /* bytes of a short format name */
#define RDP_CLIP_NAME_MAX 64   /* what is kept of a name to compare */
#define RDP_CLIP_CAPSET_GENERAL 1

/* A bounds-checked little-endian reader over [p, p + n). */
struct rdp_rd {
    const uint8_t *p;
    size_t n, off;
};

static bool rd_u16(struct rdp_rd *r, uint16_t *v)
{
    if (r->n - r->off < 2) {
        return false;
    }
    *v = (uint16_t)(r->p[r->off] | (r->p[r->off + 1] << 8));
    r->off += 2;
    return true;
}

static bool rd_u32(struct rdp_rd *r, uint32_t *v)
{
    if (r->n - r->off < 4) {
        return false;
    }
    *v = (uint32_t)r->p[r->off] | ((uint32_t)r->p[r->off + 1] << 8) |
         ((uint32_t)r->p[r->off + 2] << 16) |
         ((uint32_t)r->p[r->off + 3] << 24);
    r->off += 4;
    return true;
}

static bool rd_skip(struct rdp_rd *r, size_t k)
{
    if (r->n - r->off < k) {
        return false;
    }
    r->off += k;
    return true;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)((v >> 8) & 0xff);
    p[2] = (uint8_t)((v >> 16) & 0xff);
    p[3] = (uint8_t)(v >> 24);
}

void rdp_cliprdr_init(struct rdp_cliprdr *c, bool files)
{
    memset(c, 0, sizeof(*c));
    c->files = files;
}

/* A format name, lower-cased ASCII (anything else '?'), at most
 * RDP_CLIP_NAME_MAX - 1 characters kept. */
static void name_add(char *name, size_t *len, uint32_t unit)
{
    if (*len + 1 >= RDP_CLIP_NAME_MAX) {
        return;
    }
    if (unit >= 'A' && unit <= 'Z') {
        unit += 'a' - 'A';
    }
    name[(*len)++] = unit >= 0x20 && unit < 0x7f ? (char)unit : '?';
    name[*len] = '\0';
}

/* Formats that carry files, or file names and paths, across. A short
 * name that filled its 32 bytes (cut) may be one of these cut short
 * ("FileGroupDescrip" in UTF-16): it counts when it begins one. */
static bool is_file_format(uint32_t id, const char *name, bool cut)
{
    static const char *const exact[] = {
        "filegroupdescriptorw",
        "filegroupdescriptor",
        "filecontents",
        "filename",
        "filenamew",
        "shell idlist array",
        "preferred dropeffect",
        "text/uri-list",
        "uniformresourcelocator",
        "uniformresourcelocatorw",
    };
    static const char *const prefix[] = {"filegroupdescriptor", "filecontents",
                                         "x-special/", "application/x-kde-"};
    size_t i;

    if (id == RDP_CF_HDROP) {
        return true;
    }
    for (i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        if (strcmp(name, exact[i]) == 0 ||
            (cut && strncmp(exact[i], name, strlen(name)) == 0)) {
            return true;
        }
    }
    for (i = 0; i < sizeof(prefix) / sizeof(prefix[0]); i++) {
        if (strncmp(name, prefix[i], strlen(prefix[i])) == 0 ||
            (cut && strncmp(prefix[i], name, strlen(name)) == 0)) {
            return true;
        }
    }
    return false;
}

/* Long format names: both ends said so in their capabilities. */
static bool long_names(const struct rdp_cliprdr *c)
{
    return c->caps_seen[0] && c->caps_seen[1] &&
           (c->caps_flags[0] & RDP_CB_USE_LONG_FORMAT_NAMES) &&
           (c->caps_flags[1] & RDP_CB_USE_LONG_FORMAT_NAMES);
}

/*
 * A Format List: the entries that may cross are copied to out (after the
 * header, which the caller writes), their IDs to ids. *kept is the
 * number of bytes written.
 */
static int format_list(const struct rdp_cliprdr *c, uint16_t flags,
                       const uint8_t *data, size_t len, uint8_t *out,
                       size_t *kept, uint32_t *ids, size_t *nids,
                       unsigned *stripped, uint32_t *fgd)
{
    struct rdp_rd r = {data, len, 0};
    bool lng = long_names(c);
    char name[RDP_CLIP_NAME_MAX];
    size_t nlen, start;
    uint32_t id;
    uint16_t unit;
    bool cut;

    *kept = 0;
    *nids = 0;
    *stripped = 0;
    *fgd = 0;
    if (!lng && len % (4 + RDP_CLIP_SHORT_NAME) != 0) {
        return ERR_PROTO;
    }
    while (r.off < r.n) {
        start = r.off;
        nlen = 0;
        cut = false;
        name[0] = '\0';
        if (!rd_u32(&r, &id)) {
            return ERR_PROTO;
        }
        if (lng) {
            /* a NUL-terminated UTF-16LE name */
            for (;;) {
                if (!rd_u16(&r, &unit)) {
                    return ERR_PROTO;
                }
                if (unit == 0) {
                    break;
                }
                name_add(name, &nlen, unit);
            }
        } else if (flags & RDP_CB_ASCII_NAMES) {
            cut = true;
            for (size_t i = 0; i < RDP_CLIP_SHORT_NAME; i++) {
                if (data[r.off + i] == 0) {
                    cut = false;
                    break;
                }
                name_add(name, &nlen, data[r.off + i]);
            }
            r.off += RDP_CLIP_SHORT_NAME;
        } else {
            cut = true;
            for (size_t i = 0; i < RDP_CLIP_SHORT_NAME; i += 2) {
                unit = (uint16_t)(data[r.off + i] | (data[r.off + i + 1] << 8));
                if (unit == 0) {
                    cut = false;
                    break;
                }
                name_add(name, &nlen, unit);
            }
            r.off += RDP_CLIP_SHORT_NAME;
        }
        if (!c->files && is_file_format(id, name, cut)) {
            (*stripped)++;
            continue;
        }
        if (*nids >= RDP_CLIP_FORMATS_MAX) {
            return ERR_PROTO;
        }
        if (*fgd == 0 && id != 0 && strcmp(name, "filegroupdescriptorw") == 0) {
            *fgd = id;
        }
        ids[(*nids)++] = id;
        memcpy(out + *kept, data + start, r.off - start);
        *kept += r.off - start;
    }
    return ERR_OK;
}

/* The Capabilities PDU: file flags cleared in out when files may not
 * cross; *gflags gets the general flags as forwarded. */
static int caps(const struct rdp_cliprdr *c, const uint8_t *data, size_t len,
                uint8_t *out, uint32_t *gflags)
{
    struct rdp_rd r = {data, len, 0};
    uint16_t count = 0, pad = 0, type = 0, caplen = 0;
    uint32_t version = 0, flags = 0;
    size_t start;
    bool general = false;

    *gflags = 0;
    if (!rd_u16(&r, &count) || !rd_u16(&r, &pad) || count == 0) {
        return ERR_PROTO;
    }
    for (uint16_t i = 0; i < count; i++) {
        start = r.off;
        if (!rd_u16(&r, &type) || !rd_u16(&r, &caplen) || caplen < 4 ||
            !rd_skip(&r, (size_t)caplen - 4)) {
            return ERR_PROTO;
        }
        if (type != RDP_CLIP_CAPSET_GENERAL) {
            continue; /* a set this filter does not know: as it is */
        }
        if (general || caplen < 12) {
            return ERR_PROTO;
        }
        general = true;
        {
            struct rdp_rd g = {data + start + 4, 8, 0};

            (void)rd_u32(&g, &version);
            (void)rd_u32(&g, &flags);
        }
        if (!c->files) {
            flags &= ~(uint32_t)(RDP_CB_STREAM_FILECLIP_ENABLED |
                                 RDP_CB_FILECLIP_NO_FILE_PATHS |
                                 RDP_CB_CAN_LOCK_CLIPDATA |
                                 RDP_CB_HUGE_FILE_SUPPORT_ENABLED);
            put_u32(out + start + 8, flags);
        }
        *gflags = flags;
    }
    return r.off == r.n ? ERR_OK : ERR_PROTO;
}

static bool announced(const struct rdp_cliprdr *c, int side, uint32_t id)
{
    for (size_t i = 0; i < c->nfmt[side]; i++) {
        if (c->fmt[side][i] == id) {
            return true;
        }
    }
    return false;
}

/* A Format Data Response answering a request for FileGroupDescriptorW:
 * *count gets its number of files. */
static int file_list(const uint8_t *data, size_t len, uint32_t *count)
{
    struct rdp_rd r = {data, len, 0};

    if (!rd_u32(&r, count) || (len - 4) / RDP_CLIP_FILEDESCRIPTORW < *count) {
        return ERR_PROTO;
    }
    return ERR_OK;
}

/* The files of side `side` a request may name: those of the list locked
 * under clipDataId (when the request carries one that is locked), else
 * of its last list. */
static uint32_t files_offered(const struct rdp_cliprdr *c, int side,
                              bool has_lock, uint32_t lock_id)
{
    if (has_lock) {
        for (size_t i = 0; i < c->nlock[side]; i++) {
            if (c->lock[side][i].id == lock_id) {
                return c->lock[side][i].nfiles;
            }
        }
    }
    return c->nfiles[side];
}

/*
 * The file PDUs, files on: what is refused sets *why; ERR_PROTO for a
 * malformed one. dir is where it came from, other the side it goes to.
 */
static int file_pdu(struct rdp_cliprdr *c, int dir, uint16_t type,
                    uint16_t flags, const uint8_t *data, size_t len,
                    const char **why)
{
    struct rdp_rd r = {data, len, 0};
    uint32_t stream = 0, index = 0, fl = 0, lo = 0, hi = 0, want = 0, id = 0;
    int other = !dir;
    size_t i;

    *why = NULL;
    switch (type) {
    case RDP_CB_LOCK_CLIPDATA:
    case RDP_CB_UNLOCK_CLIPDATA:
        /* dir locks (unlocks) the list other sent last */
        if (len != 4 || !rd_u32(&r, &id)) {
            return ERR_PROTO;
        }
        for (i = 0; i < c->nlock[other]; i++) {
            if (c->lock[other][i].id == id) {
                break;
            }
        }
        if (type == RDP_CB_UNLOCK_CLIPDATA) {
            if (i < c->nlock[other]) {
                c->lock[other][i] = c->lock[other][--c->nlock[other]];
            }
            return ERR_OK;
        }
        if (i == c->nlock[other] && i >= RDP_CLIP_LOCKS_MAX) {
            *why = "a clipboard lock past the proxy's limit";
            return ERR_OK;
        }
        if (i == c->nlock[other]) {
            c->nlock[other]++;
        }
        c->lock[other][i].id = id;
        c->lock[other][i].gen = c->gen[other];
        c->lock[other][i].nfiles = c->nfiles[other];
        return ERR_OK;
    case RDP_CB_FILECONTENTS_REQUEST:
        if ((len != 24 && len != 28) || !rd_u32(&r, &stream) ||
            !rd_u32(&r, &index) || !rd_u32(&r, &fl) || !rd_u32(&r, &lo) ||
            !rd_u32(&r, &hi) || !rd_u32(&r, &want)) {
            return ERR_PROTO;
        }
        if (len == 28) {
            (void)rd_u32(&r, &id);
        }
        if (index >= files_offered(c, other, len == 28, id)) {
            *why = "file contents of a file the other side did not offer";
            return ERR_OK;
        }
        if ((fl & RDP_CB_FILECONTENTS_SIZE) != 0) {
            want = 8;
        }
        if (c->npend[dir] >= RDP_CLIP_PENDING_MAX) {
            *why = "a file contents request past the proxy's limit of "
                   "requests awaiting an answer";
            return ERR_OK;
        }
        c->pend[dir][c->npend[dir]].stream = stream;
        c->pend[dir][c->npend[dir]++].want = want;
        return ERR_OK;
    case RDP_CB_FILECONTENTS_RESPONSE:
        if (!rd_u32(&r, &stream)) {
            return ERR_PROTO;
        }
        for (i = 0; i < c->npend[other]; i++) {
            if (c->pend[other][i].stream == stream) {
                break;
            }
        }
        if (i == c->npend[other]) {
            *why = "file contents nobody asked for";
            return ERR_OK;
        }
        if ((flags & RDP_CB_RESPONSE_OK) && len - 4 > c->pend[other][i].want) {
            *why = "more file contents than were asked for";
            return ERR_OK;
        }
        c->pend[other][i] = c->pend[other][--c->npend[other]];
        return ERR_OK;
    default: /* RDP_CB_TEMP_DIRECTORY */
        return ERR_OK;
    }
}

int rdp_cliprdr_filter(struct rdp_cliprdr *c, int dir, const uint8_t *in,
                       size_t len, uint8_t *out, size_t *outlen,
                       struct rdp_filter_result *res)
{
    struct rdp_rd r = {in, len, 0};
    uint16_t type = 0, flags = 0;
    uint32_t dlen = 0, id = 0, gflags = 0, fgd = 0, nfiles = 0;
    uint32_t ids[RDP_CLIP_FORMATS_MAX];
    size_t nids = 0, kept = 0, pad, i;
    const uint8_t *data;
    int other = !dir, e;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (res != NULL) {
        memset(res, 0, sizeof(*res));
    }
    if (c == NULL || in == NULL || out == NULL || outlen == NULL ||
        res == NULL || (dir != RDP_CLIP_UP && dir != RDP_CLIP_DOWN)) {
        return ERR_INVALID;
    }
    if (!rd_u16(&r, &type) || !rd_u16(&r, &flags) || !rd_u32(&r, &dlen) ||
        dlen > len - RDP_CLIP_HEAD) {
        return ERR_PROTO;
    }
    data = in + RDP_CLIP_HEAD;
    pad = len - RDP_CLIP_HEAD - dlen;
    if (pad > RDP_CLIP_PAD_MAX) {
        return ERR_PROTO;
    }
    for (i = 0; i < pad; i++) {
        if (data[dlen + i] != 0) {
            return ERR_PROTO;
        }
    }
    switch (type) {
    case RDP_CB_MONITOR_READY:
    case RDP_CB_FORMAT_LIST_RESPONSE:
        if (dlen != 0) {
            return ERR_PROTO;
        }
        break;
    case RDP_CB_CLIP_CAPS:
        memcpy(out, in, len);
        if ((e = caps(c, data, dlen, out + RDP_CLIP_HEAD, &gflags)) != ERR_OK) {
            return e;
        }
        c->caps_seen[dir] = true;
        c->caps_flags[dir] = gflags;
        *outlen = len;
        return ERR_OK;
    case RDP_CB_FORMAT_LIST:
        if ((e = format_list(c, flags, data, dlen, out + RDP_CLIP_HEAD, &kept,
                             ids, &nids, &res->stripped, &fgd)) != ERR_OK) {
            res->stripped = 0;
            return e;
        }
        memcpy(out, in, 4);
        put_u32(out + 4, (uint32_t)kept);
        memcpy(out + RDP_CLIP_HEAD + kept, data + dlen, pad);
        memcpy(c->fmt[dir], ids, nids * sizeof(ids[0]));
        c->nfmt[dir] = nids;
        /* a new list: what was asked of this side is void, and so are its
         * files (but for those locked) */
        c->asking[other] = false;
        c->fgd[dir] = c->files ? fgd : 0;
        c->nfiles[dir] = 0;
        c->gen[dir]++;
        *outlen = RDP_CLIP_HEAD + kept + pad;
        return ERR_OK;
    case RDP_CB_FORMAT_DATA_REQUEST:
        r.n = RDP_CLIP_HEAD + dlen;
        if (dlen != 4 || !rd_u32(&r, &id)) {
            return ERR_PROTO;
        }
        if (!announced(c, other, id)) {
            res->refused = "a clipboard format the other side did not offer "
                           "(or the access profile refused)";
            return ERR_OK;
        }
        c->asking[dir] = true;
        c->asked[dir] = id;
        break;
    case RDP_CB_FORMAT_DATA_RESPONSE:
        if (!c->asking[other]) {
            res->refused = "clipboard data nobody asked for";
            return ERR_OK;
        }
        id = c->asked[other];
        if ((flags & RDP_CB_RESPONSE_OK) && c->fgd[dir] != 0 &&
            id == c->fgd[dir]) {
            if ((e = file_list(data, dlen, &nfiles)) != ERR_OK) {
                return e;
            }
            c->nfiles[dir] = nfiles;
            /* and of the locks on this list (taken before it was sent) */
            for (i = 0; i < c->nlock[dir]; i++) {
                if (c->lock[dir][i].gen == c->gen[dir]) {
                    c->lock[dir][i].nfiles = nfiles;
                }
            }
        }
        c->asking[other] = false;
        if ((flags & RDP_CB_RESPONSE_OK) &&
            (id == RDP_CF_UNICODETEXT || id == RDP_CF_TEXT ||
             id == RDP_CF_OEMTEXT)) {
            res->text = data;
            res->text_len = dlen;
            res->text_utf16 = id == RDP_CF_UNICODETEXT;
        }
        break;
    case RDP_CB_TEMP_DIRECTORY:
    case RDP_CB_FILECONTENTS_REQUEST:
    case RDP_CB_FILECONTENTS_RESPONSE:
    case RDP_CB_LOCK_CLIPDATA:
    case RDP_CB_UNLOCK_CLIPDATA:
        if (!c->files) {
            res->refused = "files on the clipboard (the access profile "
                           "refuses them)";
            return ERR_OK;
        }
        if ((e = file_pdu(c, dir, type, flags, data, dlen, &res->refused)) !=
                ERR_OK ||
            res->refused != NULL) {
            return e;
        }
        break;
    default:
        res->refused = "an unknown clipboard PDU";
        return ERR_OK;
    }
    memcpy(out, in, len);
    *outlen = len;
    return ERR_OK;
}

size_t rdp_cliprdr_text(const uint8_t *in, size_t n, bool utf16, char *out,
                        size_t cap)
{
    size_t o = 0, i = 0, k;
    uint32_t cp;
    uint16_t u, u2;
    uint8_t enc[4];

    if (out == NULL || cap == 0) {
        return 0;
    }
    out[0] = '\0';
    if (in == NULL) {
        return 0;
    }
    while (i < n) {
        if (!utf16) {
            cp = in[i] < 0x80 ? in[i] : '?';
            i++;
        } else {
            if (n - i < 2) {
                break;
            }
            u = (uint16_t)(in[i] | (in[i + 1] << 8));
            i += 2;
            cp = u;
            if (u >= 0xd800 && u <= 0xdbff) {
                if (n - i >= 2 &&
                    (u2 = (uint16_t)(in[i] | (in[i + 1] << 8))) >= 0xdc00 &&
                    u2 <= 0xdfff) {
                    cp = 0x10000 + (((uint32_t)u - 0xd800) << 10) +
                         ((uint32_t)u2 - 0xdc00);
                    i += 2;
                } else {
                    cp = '?';
                }
            } else if (u >= 0xdc00 && u <= 0xdfff) {
                cp = '?';
            }
        }
        if (cp == 0) {
            break;
        }
        if (cp < 0x80) {
            enc[0] = (uint8_t)cp;
            k = 1;
        } else if (cp < 0x800) {
            enc[0] = (uint8_t)(0xc0 | (cp >> 6));
            enc[1] = (uint8_t)(0x80 | (cp & 0x3f));
            k = 2;
        } else if (cp < 0x10000) {
            enc[0] = (uint8_t)(0xe0 | (cp >> 12));
            enc[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            enc[2] = (uint8_t)(0x80 | (cp & 0x3f));
            k = 3;
        } else {
            enc[0] = (uint8_t)(0xf0 | (cp >> 18));
            enc[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            enc[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            enc[3] = (uint8_t)(0x80 | (cp & 0x3f));
            k = 4;
        }
        if (o + k >= cap) {
            break;
        }
        memcpy(out + o, enc, k);
        o += k;
    }
    out[o] = '\0';
    return o;
}
