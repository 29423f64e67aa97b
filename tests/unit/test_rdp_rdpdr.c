/*
 * The rdpdr device filter (src/rdpproxy/rdp_rdpdr.c): only the device
 * kinds the profile allows are announced to the target, I/O only on
 * those, and truncated or hostile PDUs refused without a read past the
 * input.
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
#include "rdpproxy/rdp_rdpdr.h"

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
static void announce(struct pdu *p)
{
    p->n = 0;
    p16(p, RDP_DR_CTYP_CORE);
    p16(p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(p, 4);
    device(p, RDP_DR_DTYP_FILESYSTEM, 1, "C", 10);
    device(p, RDP_DR_DTYP_PRINT, 2, "PRN1", 30);
    device(p, RDP_DR_DTYP_SMARTCARD, 3, "SCARD", 0);
    device(p, RDP_DR_DTYP_SERIAL, 4, "COM1", 0);
}

static void io(struct pdu *p, uint16_t pkt, uint32_t id)
{
    p->n = 0;
    p16(p, RDP_DR_CTYP_CORE);
    p16(p, pkt);
    p32(p, id);
    p32(p, 0);
    p32(p, 7);
}

static void test_drive_only(void **state)
{
    struct rdp_rdpdr d;
    struct pdu p;
    uint8_t out[1024];
    size_t n = 0;
    struct rdp_filter_result r;

    (void)state;
    rdp_rdpdr_init(&d, true, false);
    announce(&p);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(r.stripped, 3);
    assert_int_equal(n, 4 + 4 + 20 + 10);
    assert_int_equal(g32(out + 4), 1);
    assert_int_equal(g32(out + 8), RDP_DR_DTYP_FILESYSTEM);
    /* I/O on the drive crosses, on the printer it does not */
    io(&p, RDP_DR_DEVICE_IOREQUEST, 1);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_DOWN, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(n, p.n);
    io(&p, RDP_DR_DEVICE_IOREQUEST, 2);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_DOWN, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    io(&p, RDP_DR_DEVICE_IOCOMPLETION, 3);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(n, 0);
    /* printer data refused */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_PRN);
    p16(&p, 0x5043);
    p32(&p, 0);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(n, 0);
    /* the drive removed: its I/O no longer crosses */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_CORE);
    p16(&p, RDP_DR_DEVICELIST_REMOVE);
    p32(&p, 1);
    p32(&p, 1);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(n, p.n);
    io(&p, RDP_DR_DEVICE_IOREQUEST, 1);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_DOWN, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(n, 0);
}

static void test_printer_only_and_none(void **state)
{
    struct rdp_rdpdr d;
    struct pdu p;
    uint8_t out[1024];
    size_t n = 0;
    struct rdp_filter_result r;

    (void)state;
    rdp_rdpdr_init(&d, false, true);
    announce(&p);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(g32(out + 4), 1);
    assert_int_equal(g32(out + 8), RDP_DR_DTYP_PRINT);
    /* neither (audio only): an empty list */
    rdp_rdpdr_init(&d, false, false);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(n, 8);
    assert_int_equal(g32(out + 4), 0);
    assert_int_equal(r.stripped, 4);
    /* the core handshake crosses as it is */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_CORE);
    p16(&p, 0x496E); /* server announce */
    p32(&p, 0x000c0001);
    p32(&p, 5);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_DOWN, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(n, p.n);
}

static void test_hostile(void **state)
{
    struct rdp_rdpdr d;
    struct pdu p;
    uint8_t out[1024], *copy;
    size_t n = 0, len;
    struct rdp_filter_result r;

    (void)state;
    rdp_rdpdr_init(&d, true, true);
    announce(&p);
    for (len = 0; len < p.n; len++) {
        copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, p.b, len);
        assert_int_equal(
            rdp_rdpdr_filter(&d, RDP_DR_UP, copy, len, out, &n, &r), ERR_PROTO);
        assert_int_equal(n, 0);
        free(copy);
    }
    assert_int_equal(d.ndev, 0); /* nothing remembered from those */
    /* a device whose data runs past the end */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_CORE);
    p16(&p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(&p, 1);
    device(&p, RDP_DR_DTYP_FILESYSTEM, 9, "D", 4);
    p.b[p.n - 8] = 0xff; /* its data length */
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_PROTO);
    /* a count larger than the devices given */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_CORE);
    p16(&p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(&p, 0xffffffffu);
    device(&p, RDP_DR_DTYP_FILESYSTEM, 9, "D", 0);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_PROTO);
    /* trailing bytes after the devices */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_CORE);
    p16(&p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(&p, 0);
    p32(&p, 0);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_PROTO);
    /* a remove whose count lies */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_CORE);
    p16(&p, RDP_DR_DEVICELIST_REMOVE);
    p32(&p, 0x40000001u);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_PROTO);
    /* an I/O request too short to name its device */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_CORE);
    p16(&p, RDP_DR_DEVICE_IOREQUEST);
    p16(&p, 1);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_DOWN, p.b, p.n, out, &n, &r),
                     ERR_PROTO);
    /* an unknown component */
    p.n = 0;
    p16(&p, 0x1234);
    p16(&p, 1);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_DOWN, p.b, p.n, out, &n, &r),
                     ERR_PROTO);
    /* the same device ID twice is announced once */
    p.n = 0;
    p16(&p, RDP_DR_CTYP_CORE);
    p16(&p, RDP_DR_DEVICELIST_ANNOUNCE);
    p32(&p, 2);
    device(&p, RDP_DR_DTYP_FILESYSTEM, 5, "E", 0);
    device(&p, RDP_DR_DTYP_FILESYSTEM, 5, "F", 0);
    assert_int_equal(rdp_rdpdr_filter(&d, RDP_DR_UP, p.b, p.n, out, &n, &r),
                     ERR_OK);
    assert_int_equal(g32(out + 4), 1);
    assert_int_equal(r.stripped, 1);
    assert_int_equal(rdp_rdpdr_filter(&d, 5, p.b, p.n, out, &n, &r),
                     ERR_INVALID);
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
