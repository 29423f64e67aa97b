/*
 * libFuzzer target for the RDP proxy's device-redirection filter
 * (src/rdpproxy/rdp_rdpdr.c): the bytes come from the client and the
 * target. The input is a session (fuzz_rdp_filter.h; byte 0: drives
 * (bit 0) and printers (bit 1) may cross). Besides the checks every
 * filter gets there: the devices remembered stay within their maximum;
 * an announce forwarded names only allowed kinds of device.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "fuzz_rdp_filter.h"
#include "rdpproxy/rdp_rdpdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct rdp_rdpdr fuzz_dr;

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static void fuzz_dr_init(void *state, uint8_t switches)
{
    rdp_rdpdr_init(state, (switches & 1) != 0, (switches & 2) != 0);
}

static int fuzz_dr_run(void *state, int dir, const uint8_t *in, size_t len,
                       uint8_t *out, size_t *outlen,
                       struct rdp_filter_result *r)
{
    return rdp_rdpdr_filter(state, dir, in, len, out, outlen, r);
}

static void fuzz_dr_check(const struct fuzz_rdp_filter *f, const void *before,
                          int dir, const uint8_t *msg, size_t len, int e,
                          const uint8_t *out, size_t n,
                          const struct rdp_filter_result *r)
{
    const struct rdp_rdpdr *d = f->state;
    uint32_t count, type;
    size_t o;

    (void)before;
    (void)msg;
    (void)len;
    (void)r;
    FUZZ_CHECK(d->ndev <= RDP_DR_DEVICES_MAX);
    if (e == ERR_OK && n >= 8 && dir == RDP_DR_UP &&
        get32(out) ==
            (RDP_DR_CTYP_CORE | ((uint32_t)RDP_DR_DEVICELIST_ANNOUNCE << 16))) {
        count = get32(out + 4);
        o = 8;
        for (uint32_t i = 0; i < count; i++) {
            FUZZ_CHECK(n - o >= 20);
            type = get32(out + o);
            FUZZ_CHECK((type == RDP_DR_DTYP_FILESYSTEM && d->drive) ||
                       (type == RDP_DR_DTYP_PRINT && d->printer));
            o += 20 + get32(out + o + 16);
            FUZZ_CHECK(o <= n);
        }
        FUZZ_CHECK(o == n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct fuzz_rdp_filter f = {
        &fuzz_dr, sizeof(fuzz_dr), fuzz_dr_init, fuzz_dr_run, fuzz_dr_check,
    };

    fuzz_rdp_filter_session(&f, data, size);
    return 0;
}
