/*
 * The rdpdr device filter (rdp_rdpdr.h). Every PDU starts with a 4-byte
 * header (component, packet ID, little-endian); only the PDUs that name
 * devices are parsed further, the rest (the core handshake: announce,
 * client name, capabilities, user logged on) crosses as it is. Nothing
 * in the state changes until a PDU has been parsed whole.
 */
#include "rdpproxy/rdp_rdpdr.h"

#include <string.h>

#include "common/err.h"

#define RDP_DR_HEAD 4
#define RDP_DR_ANNOUNCE_FIXED 20 /* type, ID, DOS name (8), data length */

static uint32_t dr_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void dr_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)((v >> 8) & 0xff);
    p[2] = (uint8_t)((v >> 16) & 0xff);
    p[3] = (uint8_t)(v >> 24);
}

void rdp_rdpdr_init(struct rdp_rdpdr *d, bool drive, bool printer)
{
    memset(d, 0, sizeof(*d));
    d->drive = drive;
    d->printer = printer;
}

static bool dr_known(const struct rdp_rdpdr *d, uint32_t id)
{
    for (size_t i = 0; i < d->ndev; i++) {
        if (d->dev[i] == id) {
            return true;
        }
    }
    return false;
}

static bool dr_type_ok(const struct rdp_rdpdr *d, uint32_t type)
{
    return (type == RDP_DR_DTYP_FILESYSTEM && d->drive) ||
           (type == RDP_DR_DTYP_PRINT && d->printer);
}

/* The client's Device List Announce: the devices that may cross to out
 * (after the count, which the caller writes), their IDs to d. */
static int dr_announce(struct rdp_rdpdr *d, const uint8_t *p, size_t len,
                       uint8_t *out, size_t *outlen, unsigned *stripped)
{
    uint32_t count, type, id, dlen;
    uint32_t ids[RDP_DR_DEVICES_MAX];
    size_t off = 4, kept = 4, nids = 0, n, i;
    bool dup;

    *stripped = 0;
    if (len < 4) {
        return ERR_PROTO;
    }
    count = dr_get32(p);
    for (i = 0; i < count; i++) {
        if (len - off < RDP_DR_ANNOUNCE_FIXED) {
            return ERR_PROTO;
        }
        type = dr_get32(p + off);
        id = dr_get32(p + off + 4);
        dlen = dr_get32(p + off + 16);
        if (dlen > len - off - RDP_DR_ANNOUNCE_FIXED) {
            return ERR_PROTO;
        }
        n = RDP_DR_ANNOUNCE_FIXED + dlen;
        dup = dr_known(d, id);
        for (size_t k = 0; k < nids && !dup; k++) {
            dup = ids[k] == id;
        }
        if (!dr_type_ok(d, type) || dup ||
            d->ndev + nids >= RDP_DR_DEVICES_MAX) {
            (*stripped)++;
        } else {
            ids[nids++] = id;
            memcpy(out + kept, p + off, n);
            kept += n;
        }
        off += n;
    }
    if (off != len) {
        return ERR_PROTO;
    }
    dr_put32(out, (uint32_t)nids);
    memcpy(d->dev + d->ndev, ids, nids * sizeof(ids[0]));
    d->ndev += nids;
    *outlen = kept;
    return ERR_OK;
}

/* Device List Remove: the IDs are forgotten (unknown ones are the
 * target's business: it never saw them). */
static int dr_remove(struct rdp_rdpdr *d, const uint8_t *p, size_t len)
{
    uint32_t count;
    size_t i, j;

    if (len < 4) {
        return ERR_PROTO;
    }
    count = dr_get32(p);
    if (count > (len - 4) / 4 || 4 + (size_t)count * 4 != len) {
        return ERR_PROTO;
    }
    for (i = 0; i < count; i++) {
        uint32_t id = dr_get32(p + 4 + i * 4);

        for (j = 0; j < d->ndev; j++) {
            if (d->dev[j] == id) {
                d->dev[j] = d->dev[--d->ndev];
                break;
            }
        }
    }
    return ERR_OK;
}

int rdp_rdpdr_filter(struct rdp_rdpdr *d, int dir, const uint8_t *in,
                     size_t len, uint8_t *out, size_t *outlen,
                     struct rdp_filter_result *r)
{
    uint16_t comp, pkt;
    size_t n = 0;
    int e;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (r != NULL) {
        memset(r, 0, sizeof(*r));
    }
    if (d == NULL || in == NULL || out == NULL || outlen == NULL || r == NULL ||
        (dir != RDP_DR_UP && dir != RDP_DR_DOWN)) {
        return ERR_INVALID;
    }
    if (len < RDP_DR_HEAD) {
        return ERR_PROTO;
    }
    comp = (uint16_t)(in[0] | (in[1] << 8));
    pkt = (uint16_t)(in[2] | (in[3] << 8));
    if (comp == RDP_DR_CTYP_PRN) {
        if (!d->printer) {
            r->refused = "printer data (the access profile refuses printers)";
            return ERR_OK;
        }
    } else if (comp != RDP_DR_CTYP_CORE) {
        return ERR_PROTO;
    } else if (pkt == RDP_DR_DEVICELIST_ANNOUNCE && dir == RDP_DR_UP) {
        memcpy(out, in, RDP_DR_HEAD);
        e = dr_announce(d, in + RDP_DR_HEAD, len - RDP_DR_HEAD,
                        out + RDP_DR_HEAD, &n, &r->stripped);
        if (e != ERR_OK) {
            r->stripped = 0;
            return e;
        }
        *outlen = RDP_DR_HEAD + n;
        return ERR_OK;
    } else if (pkt == RDP_DR_DEVICELIST_REMOVE && dir == RDP_DR_UP) {
        if ((e = dr_remove(d, in + RDP_DR_HEAD, len - RDP_DR_HEAD)) != ERR_OK) {
            return e;
        }
    } else if ((pkt == RDP_DR_DEVICE_IOREQUEST && dir == RDP_DR_DOWN) ||
               (pkt == RDP_DR_DEVICE_IOCOMPLETION && dir == RDP_DR_UP)) {
        if (len < RDP_DR_HEAD + 4) {
            return ERR_PROTO;
        }
        if (!dr_known(d, dr_get32(in + RDP_DR_HEAD))) {
            r->refused = "I/O on a device that was not announced (or the "
                         "access profile refused)";
            return ERR_OK;
        }
    }
    memcpy(out, in, len);
    *outlen = len;
    return ERR_OK;
}
