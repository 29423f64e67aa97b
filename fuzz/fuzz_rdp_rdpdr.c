/*
 * libFuzzer target for the RDP proxy's device-redirection filter
 * (src/rdpproxy/rdp_rdpdr.c): the bytes come from the client and the
 * target. The input is a session: byte 0 says whether drives (bit 0)
 * and printers (bit 1) may cross, then messages of u8 direction, u16
 * length (little-endian), bytes. Besides "no crash, no read past the
 * input" it checks what the filter promises: what it forwards is never
 * longer than what came; a refusal or a parse error forwards nothing
 * and a parse error changes nothing; the devices remembered stay within
 * their maximum; an announce forwarded names only allowed kinds of
 * device.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "rdpproxy/rdp_rdpdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_rdp_rdpdr: invariant failed: %s (line %d)\n", #cond, \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rdp_rdpdr d, before;
    struct rdp_filter_result r;
    uint8_t *msg, *out;
    size_t off = 1, len, n, o;
    uint32_t count, type;
    int dir, e;

    if (size < 1) {
        return 0;
    }
    rdp_rdpdr_init(&d, (data[0] & 1) != 0, (data[0] & 2) != 0);
    while (size - off >= 3) {
        dir = data[off] & 1;
        len = (size_t)data[off + 1] | ((size_t)data[off + 2] << 8);
        off += 3;
        if (len > size - off) {
            len = size - off;
        }
        msg = malloc(len ? len : 1);
        out = malloc(len ? len : 1);
        FUZZ_CHECK(msg != NULL && out != NULL);
        memcpy(msg, data + off, len);
        off += len;
        before = d;
        e = rdp_rdpdr_filter(&d, dir, msg, len, out, &n, &r);
        FUZZ_CHECK(e == ERR_OK || e == ERR_PROTO);
        FUZZ_CHECK(n <= len && d.ndev <= RDP_DR_DEVICES_MAX);
        if (e != ERR_OK) {
            FUZZ_CHECK(n == 0 && memcmp(&d, &before, sizeof(d)) == 0);
        }
        if (r.refused != NULL) {
            FUZZ_CHECK(n == 0);
        }
        if (e == ERR_OK && n >= 8 && dir == RDP_DR_UP &&
            get32(out) == (RDP_DR_CTYP_CORE |
                           ((uint32_t)RDP_DR_DEVICELIST_ANNOUNCE << 16))) {
            count = get32(out + 4);
            o = 8;
            for (uint32_t i = 0; i < count; i++) {
                FUZZ_CHECK(n - o >= 20);
                type = get32(out + o);
                FUZZ_CHECK((type == RDP_DR_DTYP_FILESYSTEM && d.drive) ||
                           (type == RDP_DR_DTYP_PRINT && d.printer));
                o += 20 + get32(out + o + 16);
                FUZZ_CHECK(o <= n);
            }
            FUZZ_CHECK(o == n);
        }
        free(msg);
        free(out);
    }
    return 0;
}
