/*
 * The rdpdr device filter (src/rdpproxy/rdp_rdpdr.c): only the device
 * kinds the profile allows are announced to the target, I/O only on
 * those, and truncated or hostile PDUs refused without a read past the
 * input. Each session is a table of steps (rdp_steps.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "le_pdu.h"
#include "rdp_steps.h"
#include "rdpproxy/rdp_rdpdr.h"

#define UP RDP_DR_UP
#define DOWN RDP_DR_DOWN
#define SAME RDP_STEP_SAME

static struct rdp_rdpdr dr;

static int dr_run(void *state, int dir, const uint8_t *in, size_t len,
                  uint8_t *out, size_t *outlen, struct rdp_filter_result *r)
{
    return rdp_rdpdr_filter(state, dir, in, len, out, outlen, r);
}

static const struct rdp_steps_filter filter = {dr_run, &dr};

/* --- the PDUs --- */

static void core(struct pdu *p, uint16_t packet)
{
    p->n = 0;
    p16(p, RDP_DR_CTYP_CORE);
    p16(p, packet);
}

static void device(struct pdu *p, uint32_t type, uint32_t id, const char *dos,
                   uint32_t dlen)
{
    char name[8] = {0};

    p32(p, type);
    p32(p, id);
    memcpy(name, dos, strlen(dos));
    memcpy(p->b + p->n, name, 8);
    p->n += 8;
    p32(p, dlen);
    memset(p->b + p->n, 'd', dlen);
    p->n += dlen;
}

/* A drive, a printer, a smart card and a serial port. */
static void announce(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    core(p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(p, 4);
    device(p, RDP_DR_DTYP_FILESYSTEM, 1, "C", 10);
    device(p, RDP_DR_DTYP_PRINT, 2, "PRN1", 30);
    device(p, RDP_DR_DTYP_SMARTCARD, 3, "SCARD", 0);
    device(p, RDP_DR_DTYP_SERIAL, 4, "COM1", 0);
}

/* An I/O request or completion (packet a) on device b. */
static void io(struct pdu *p, uint32_t a, uint32_t b)
{
    core(p, (uint16_t)a);
    p32(p, b);
    p32(p, 0);
    p32(p, 7);
}

static void printer_data(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    p->n = 0;
    p16(p, RDP_DR_CTYP_PRN);
    p16(p, 0x5043);
    p32(p, 0);
}

/* A Device List Remove of one device, a. */
static void removal(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)b;
    core(p, RDP_DR_DEVICELIST_REMOVE);
    p32(p, 1);
    p32(p, a);
}

static void server_announce(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    core(p, 0x496E);
    p32(p, 0x000c0001);
    p32(p, 5);
}

static void data_past_end(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    core(p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(p, 1);
    device(p, RDP_DR_DTYP_FILESYSTEM, 9, "D", 4);
    p->b[p->n - 8] = 0xff; /* its data length */
}

static void count_too_large(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    core(p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(p, 0xffffffffu);
    device(p, RDP_DR_DTYP_FILESYSTEM, 9, "D", 0);
}

static void trailing_after_devices(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    core(p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(p, 0);
    p32(p, 0);
}

static void remove_count_lies(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    core(p, RDP_DR_DEVICELIST_REMOVE);
    p32(p, 0x40000001u);
}

static void io_too_short(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    core(p, RDP_DR_DEVICE_IOREQUEST);
    p16(p, 1);
}

static void unknown_component(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    p->n = 0;
    p16(p, 0x1234);
    p16(p, 1);
}

static void same_id_twice(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    core(p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(p, 2);
    device(p, RDP_DR_DTYP_FILESYSTEM, 5, "E", 0);
    device(p, RDP_DR_DTYP_FILESYSTEM, 5, "F", 0);
}

/* --- checks of what was forwarded --- */

static void drive_kept(const uint8_t *out, size_t n,
                       const struct rdp_filter_result *r)
{
    (void)n;
    (void)r;
    assert_int_equal(g32(out + 4), 1);
    assert_int_equal(g32(out + 8), RDP_DR_DTYP_FILESYSTEM);
}

static void printer_kept(const uint8_t *out, size_t n,
                         const struct rdp_filter_result *r)
{
    (void)n;
    (void)r;
    assert_int_equal(g32(out + 4), 1);
    assert_int_equal(g32(out + 8), RDP_DR_DTYP_PRINT);
}

static void none_kept(const uint8_t *out, size_t n,
                      const struct rdp_filter_result *r)
{
    (void)n;
    (void)r;
    assert_int_equal(g32(out + 4), 0);
}

static void one_kept(const uint8_t *out, size_t n,
                     const struct rdp_filter_result *r)
{
    (void)n;
    (void)r;
    assert_int_equal(g32(out + 4), 1);
}

/* --- the sessions --- */

static void test_drive_only(void **state)
{
    static const struct rdp_step steps[] = {
        {"the drive kept", UP, announce, 0, 0, ERR_OK, 4 + 4 + 20 + 10, false,
         3, drive_kept},
        /* I/O on the drive crosses, on the printer it does not */
        {"I/O on the drive", DOWN, io, RDP_DR_DEVICE_IOREQUEST, 1, ERR_OK, SAME,
         false, 0, NULL},
        {"I/O on the printer", DOWN, io, RDP_DR_DEVICE_IOREQUEST, 2, ERR_OK, 0,
         true, 0, NULL},
        {"a completion on the smart card", UP, io, RDP_DR_DEVICE_IOCOMPLETION,
         3, ERR_OK, 0, true, 0, NULL},
        {"printer data", UP, printer_data, 0, 0, ERR_OK, 0, true, 0, NULL},
        /* the drive removed: its I/O no longer crosses */
        {"the drive removed", UP, removal, 1, 0, ERR_OK, SAME, false, 0, NULL},
        {"I/O on the removed drive", DOWN, io, RDP_DR_DEVICE_IOREQUEST, 1,
         ERR_OK, 0, true, 0, NULL},
    };

    (void)state;
    rdp_rdpdr_init(&dr, true, false);
    RDP_STEPS(&filter, steps);
}

static void test_printer_only_and_none(void **state)
{
    static const struct rdp_step printer[] = {
        {"the printer kept", UP, announce, 0, 0, ERR_OK, 8 + 20 + 30, false, 3,
         printer_kept},
    };
    static const struct rdp_step none[] = {
        /* neither (audio only): an empty list */
        {"an empty list", UP, announce, 0, 0, ERR_OK, 8, false, 4, none_kept},
        /* the core handshake crosses as it is */
        {"the server's announce", DOWN, server_announce, 0, 0, ERR_OK, SAME,
         false, 0, NULL},
    };

    (void)state;
    rdp_rdpdr_init(&dr, false, true);
    RDP_STEPS(&filter, printer);
    rdp_rdpdr_init(&dr, false, false);
    RDP_STEPS(&filter, none);
}

static void test_hostile(void **state)
{
    static const struct rdp_step steps[] = {
        {"a device whose data runs past the end", UP, data_past_end, 0, 0,
         ERR_PROTO, 0, false, 0, NULL},
        {"a count larger than the devices given", UP, count_too_large, 0, 0,
         ERR_PROTO, 0, false, 0, NULL},
        {"trailing bytes after the devices", UP, trailing_after_devices, 0, 0,
         ERR_PROTO, 0, false, 0, NULL},
        {"a remove whose count lies", UP, remove_count_lies, 0, 0, ERR_PROTO, 0,
         false, 0, NULL},
        {"an I/O request too short to name its device", DOWN, io_too_short, 0,
         0, ERR_PROTO, 0, false, 0, NULL},
        {"an unknown component", DOWN, unknown_component, 0, 0, ERR_PROTO, 0,
         false, 0, NULL},
        {"the same device ID twice announced once", UP, same_id_twice, 0, 0,
         ERR_OK, 8 + 20, false, 1, one_kept},
        {"no such direction", 5, same_id_twice, 0, 0, ERR_INVALID, 0, false, 0,
         NULL},
    };
    struct pdu p;
    uint8_t out[1024], *copy;
    size_t n = 0, len;
    struct rdp_filter_result r;

    (void)state;
    rdp_rdpdr_init(&dr, true, true);
    announce(&p, 0, 0);
    for (len = 0; len < p.n; len++) {
        copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, p.b, len);
        assert_int_equal(
            rdp_rdpdr_filter(&dr, RDP_DR_UP, copy, len, out, &n, &r),
            ERR_PROTO);
        assert_int_equal(n, 0);
        free(copy);
    }
    assert_int_equal(dr.ndev, 0); /* nothing remembered from those */
    RDP_STEPS(&filter, steps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drive_only),
        cmocka_unit_test(test_printer_only_and_none),
        cmocka_unit_test(test_hostile),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
