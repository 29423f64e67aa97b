/*
 * The drdynvc filter (src/rdpproxy/rdp_dvc.c): only the display control
 * channel opens, every other one is refused with a failed Create
 * Response sent back to the target, monitor layouts out of bounds are
 * refused, layouts are coalesced to one a second, and truncated PDUs are
 * refused without a read past the input or a change of state. The
 * graphics channel opens only when the session agreed on GFX, never
 * under another relayed channel's ID; its messages keep their framing
 * (fragments adding up, one message at a time, 64 MiB at most), the
 * client sends only the four kinds of PDU a client sends, and the
 * target's messages are segmented data that adds up.
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
#include "rdpproxy/rdp_dvc.h"

static uint8_t out[4096];
static size_t n;
static struct rdp_dvc_result r;

static int filt(struct rdp_dvc *d, int dir, const struct pdu *p, int64_t now)
{
    return rdp_dvc_filter(d, dir, p->b, p->n, now, out, &n, &r);
}

static void create_req(struct pdu *p, uint8_t id, const char *name)
{
    p->n = 0;
    p->b[p->n++] = RDP_DVC_CREATE << 4; /* cbChId 0: a 1-byte ID */
    p->b[p->n++] = id;
    memcpy(p->b + p->n, name, strlen(name) + 1);
    p->n += strlen(name) + 1;
}

static void create_rsp(struct pdu *p, uint8_t id, uint32_t status)
{
    p->n = 0;
    p->b[p->n++] = RDP_DVC_CREATE << 4;
    p->b[p->n++] = id;
    p32(p, status);
}

static void disp_caps(struct pdu *p, uint8_t id, uint32_t max)
{
    p->n = 0;
    p->b[p->n++] = RDP_DVC_DATA << 4;
    p->b[p->n++] = id;
    p32(p, RDP_DISP_CAPS);
    p32(p, 20);
    p32(p, max);
    p32(p, 8192);
    p32(p, 8192);
}

static void monitor(struct pdu *p, uint32_t flags, int32_t left, int32_t top,
                    uint32_t w, uint32_t h)
{
    p32(p, flags);
    p32(p, (uint32_t)left);
    p32(p, (uint32_t)top);
    p32(p, w);
    p32(p, h);
    p32(p, 300); /* physical width, mm */
    p32(p, 200); /* physical height */
    p32(p, 0);   /* orientation */
    p32(p, 100); /* desktop scale */
    p32(p, 100); /* device scale */
}

/* A layout of count monitors, the first the primary, w x h each, side by
 * side. */
static void layout(struct pdu *p, uint8_t id, uint32_t count, uint32_t w,
                   uint32_t h)
{
    p->n = 0;
    p->b[p->n++] = RDP_DVC_DATA << 4;
    p->b[p->n++] = id;
    p32(p, RDP_DISP_MONITOR_LAYOUT);
    p32(p, 16 + count * 40);
    p32(p, 40);
    p32(p, count);
    for (uint32_t i = 0; i < count; i++) {
        monitor(p, i == 0 ? 1 : 0, (int32_t)(i * w), 0, w, h);
    }
}

/* The display control channel, open with ID 7, the target's caps seen. */
static void open_disp(struct rdp_dvc *d, uint32_t max)
{
    struct pdu p;

    rdp_dvc_init(d);
    create_req(&p, 7, RDP_DVC_DISP_NAME);
    assert_int_equal(filt(d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_null(r.refused);
    create_rsp(&p, 7, 0);
    assert_int_equal(filt(d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(d->ch[RDP_DVC_DISP].state, RDP_DVC_OPEN);
    disp_caps(&p, 7, max);
    assert_int_equal(filt(d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
}

static void test_caps_clamped_to_version_2(void **state)
{
    struct rdp_dvc d;
    struct pdu p = {.n = 0};

    (void)state;
    rdp_dvc_init(&d);
    p.b[p.n++] = RDP_DVC_CAPS << 4;
    p.b[p.n++] = 0;
    p16(&p, 3);
    for (int i = 0; i < 4; i++) {
        p16(&p, 1000);
    }
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 12);
    assert_int_equal(out[2], 2);
    assert_int_equal(out[3], 0);
    /* the client's answer */
    p.n = 4;
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 4);
    assert_int_equal(out[2], 2);
    /* version 2 without its priority charges: truncated */
    p.b[2] = 2;
    p.n = 6;
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_PROTO);
    assert_int_equal(n, 0);
}

static void test_other_channels_refused_with_a_reply(void **state)
{
    struct rdp_dvc d;
    struct pdu p;

    (void)state;
    rdp_dvc_init(&d);
    create_req(&p, 3, "Microsoft::Windows::RDS::Graphics");
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    assert_string_equal(r.name, "Microsoft::Windows::RDS::Graphics");
    /* a failed Create Response for ID 3, back to the target */
    assert_int_equal(r.reply_len, 6);
    assert_int_equal(r.reply[0], RDP_DVC_CREATE << 4);
    assert_int_equal(r.reply[1], 3);
    assert_true((int32_t)g32(r.reply + 2) < 0);
    assert_int_equal(d.ch[RDP_DVC_DISP].state, RDP_DVC_NONE);
    /* a 4-byte ID is answered with a 4-byte ID */
    p.n = 0;
    p.b[p.n++] = (RDP_DVC_CREATE << 4) | 2;
    p32(&p, 0x01020304);
    memcpy(p.b + p.n, "ECHO", 5);
    p.n += 5;
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(r.reply_len, 9);
    assert_int_equal(g32(r.reply + 1), 0x01020304);
    /* the client cannot answer for it, nor send data on it */
    create_rsp(&p, 3, 0);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    layout(&p, 3, 1, 1280, 960);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    /* a name without its NUL: malformed, no reply */
    p.n = 0;
    p.b[p.n++] = RDP_DVC_CREATE << 4;
    p.b[p.n++] = 4;
    memcpy(p.b + p.n, "ABC", 3);
    p.n += 3;
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_PROTO);
    assert_int_equal(r.reply_len, 0);
}

static void test_display_control_opens_once(void **state)
{
    struct rdp_dvc d;
    struct pdu p;

    (void)state;
    open_disp(&d, 32);
    /* the target's monitor count clamped */
    assert_int_equal(g32(out + 2 + 8), RDP_DVC_MONITORS_MAX);
    assert_int_equal(d.max_monitors, RDP_DVC_MONITORS_MAX);
    /* a second one is refused */
    create_req(&p, 8, RDP_DVC_DISP_NAME);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(r.reply_len, 6);
    assert_int_equal(d.ch[RDP_DVC_DISP].id, 7);
    /* the target sends only its caps on it */
    layout(&p, 7, 1, 1280, 960);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    /* closed: data on it dropped, and it may open again */
    p.n = 0;
    p.b[p.n++] = RDP_DVC_CLOSE << 4;
    p.b[p.n++] = 7;
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(d.ch[RDP_DVC_DISP].state, RDP_DVC_NONE);
    layout(&p, 7, 1, 1280, 960);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 5000), ERR_OK);
    assert_int_equal(n, 0);
    create_req(&p, 9, RDP_DVC_DISP_NAME);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    /* a failed creation leaves it closed */
    create_rsp(&p, 9, 0x80004005u);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(d.ch[RDP_DVC_DISP].state, RDP_DVC_NONE);
}

/*
 * The target closes display control and opens it again with the same ID
 * ([MS-RDPEDYC] 3.3.5.2: it may reuse the ID once closed). The client
 * answers the close with a close, then the create: that close is the
 * old channel's, passed to the target and not taken for a close of the
 * new one, whose Create Response then opens it.
 */
static void test_close_answered_then_reopened(void **state)
{
    struct rdp_dvc d;
    struct pdu p, close;

    (void)state;
    open_disp(&d, 1);
    close.n = 0;
    close.b[close.n++] = RDP_DVC_CLOSE << 4;
    close.b[close.n++] = 7;
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &close, 0), ERR_OK);
    assert_int_equal(n, 2);
    create_req(&p, 7, RDP_DVC_DISP_NAME);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    /* the client's answer to the close: to the target, the new channel
     * still pending */
    assert_int_equal(filt(&d, RDP_DVC_UP, &close, 0), ERR_OK);
    assert_int_equal(n, 2);
    assert_null(r.refused);
    assert_int_equal(d.ch[RDP_DVC_DISP].state, RDP_DVC_PENDING);
    create_rsp(&p, 7, 0);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(d.ch[RDP_DVC_DISP].state, RDP_DVC_OPEN);
    disp_caps(&p, 7, 1);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    layout(&p, 7, 1, 1280, 960);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(r.width, 1280);
    /* a close from the client now is its own: the channel closes */
    assert_int_equal(filt(&d, RDP_DVC_UP, &close, 0), ERR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(d.ch[RDP_DVC_DISP].state, RDP_DVC_NONE);
}

static void test_layout_bounds(void **state)
{
    struct rdp_dvc d;
    struct pdu p;
    static const uint32_t bad[][2] = {
        {1281, 960}, {198, 960}, {1280, 199}, {8194, 960}, {1280, 8193},
    };

    (void)state;
    open_disp(&d, 2);
    layout(&p, 7, 1, 1280, 960);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 10000), ERR_OK);
    assert_int_equal(n, p.n);
    assert_null(r.refused);
    assert_int_equal(r.width, 1280);
    assert_int_equal(r.height, 960);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        layout(&p, 7, 1, bad[i][0], bad[i][1]);
        assert_int_equal(filt(&d, RDP_DVC_UP, &p, 20000 + 2000 * (int)i),
                         ERR_OK);
        assert_int_equal(n, 0);
        assert_non_null(r.refused);
    }
    /* more monitors than the target takes */
    layout(&p, 7, 3, 1024, 768);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 40000), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    /* no monitor; a count the PDU does not hold; a wrong monitor size */
    layout(&p, 7, 0, 1024, 768);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 42000), ERR_PROTO);
    layout(&p, 7, 2, 1024, 768);
    p.n -= 40;
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 44000), ERR_PROTO);
    layout(&p, 7, 1, 1024, 768);
    p.b[2 + 8] = 44;
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 46000), ERR_PROTO);
    /* two primaries; a primary not at 0,0 */
    layout(&p, 7, 2, 1024, 768);
    p.b[2 + 16 + 40] = 1;
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 48000), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    layout(&p, 7, 1, 1024, 768);
    p.b[2 + 16 + 4] = 10;
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 50000), ERR_OK);
    assert_int_equal(n, 0);
    /* what the target is to ignore is made neutral, the rest kept */
    layout(&p, 7, 2, 1024, 768);
    p.b[2 + 16 + 40 + 28] = 45; /* orientation */
    p.b[2 + 16 + 40 + 32] = 7;  /* desktop scale */
    p.b[2 + 16 + 40 + 36] = 99; /* device scale */
    p.b[2 + 16 + 40] |= 0x80;   /* an unknown flag */
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 52000), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(g32(out + 2 + 16 + 40), 0);
    assert_int_equal(g32(out + 2 + 16 + 40 + 28), 0);
    assert_int_equal(g32(out + 2 + 16 + 40 + 32), 100);
    assert_int_equal(g32(out + 2 + 16 + 40 + 36), 100);
    assert_int_equal(g32(out + 2 + 16 + 40 + 12), 1024);
    /* two monitors side by side making a desktop wider than 8192, or
     * larger than a recording takes */
    layout(&p, 7, 2, 4200, 768);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 54000), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    layout(&p, 7, 2, 4096, 8192);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 56000), ERR_OK);
    assert_int_equal(n, 0);
    layout(&p, 7, 2, 4096, 4608);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 58000), ERR_OK);
    assert_int_equal(n, p.n);
    /* a layout in fragments; compressed data */
    layout(&p, 7, 1, 1024, 768);
    p.b[0] = RDP_DVC_DATA_FIRST << 4; /* Sp 0: a 1-byte length */
    memmove(p.b + 3, p.b + 2, p.n - 2);
    p.b[2] = (uint8_t)(p.n - 2);
    p.n++;
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 60000), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    p.b[0] = 0x70;
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 62000), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
}

static void test_layouts_coalesced(void **state)
{
    struct rdp_dvc d;
    struct pdu p;
    uint8_t held[RDP_DVC_HELD_MAX];

    (void)state;
    open_disp(&d, 1);
    assert_int_equal(rdp_dvc_wait_ms(&d, 0), -1);
    layout(&p, 7, 1, 1280, 960);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 1000), ERR_OK);
    assert_int_equal(n, p.n);
    /* 300 ms later: held; 600 ms later: replaces it */
    layout(&p, 7, 1, 1400, 1000);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 1300), ERR_OK);
    assert_int_equal(n, 0);
    assert_true(r.held);
    layout(&p, 7, 1, 1600, 1200);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 1600), ERR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(rdp_dvc_wait_ms(&d, 1600), 400);
    assert_int_equal(rdp_dvc_due(&d, 1700, held), 0);
    /* its turn: the newest goes, once */
    assert_int_equal(rdp_dvc_due(&d, 2000, held), p.n);
    assert_int_equal(g32(held + 2 + 16 + 12), 1600);
    assert_int_equal(rdp_dvc_due(&d, 5000, held), 0);
    assert_int_equal(rdp_dvc_wait_ms(&d, 5000), -1);
    /* and the next is counted from then */
    layout(&p, 7, 1, 1280, 960);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 2500), ERR_OK);
    assert_int_equal(n, 0);
    assert_true(r.held);
}

/* Every prefix of every PDU: no read past it, and a malformed one
 * changes nothing. */
static void test_truncated(void **state)
{
    struct rdp_dvc d, before;
    struct pdu p[4];

    (void)state;
    create_req(&p[0], 7, RDP_DVC_DISP_NAME);
    create_rsp(&p[1], 7, 0);
    disp_caps(&p[2], 7, 4);
    layout(&p[3], 7, 2, 1024, 768);
    for (size_t k = 0; k < 4; k++) {
        for (size_t len = 0; len < p[k].n; len++) {
            uint8_t *m = malloc(len ? len : 1);
            int e;

            assert_non_null(m);
            open_disp(&d, 4);
            if (k < 2) {
                rdp_dvc_init(&d);
            }
            if (k == 1) {
                create_req(&p[0], 7, RDP_DVC_DISP_NAME);
                assert_int_equal(filt(&d, RDP_DVC_DOWN, &p[0], 0), ERR_OK);
            }
            memcpy(m, p[k].b, len);
            before = d;
            e = rdp_dvc_filter(&d, k == 1 || k == 3 ? RDP_DVC_UP : RDP_DVC_DOWN,
                               m, len, 10000, out, &n, &r);
            if (e != ERR_OK) {
                assert_int_equal(e, ERR_PROTO);
                assert_int_equal(n, 0);
                assert_int_equal(r.reply_len, 0);
                assert_memory_equal(&d, &before, sizeof(d));
            }
            free(m);
        }
    }
    assert_int_equal(rdp_dvc_filter(NULL, 0, NULL, 0, 0, out, &n, &r),
                     ERR_INVALID);
}

/* --- the graphics channel --- */

/* A Data PDU on id (1-byte ID) with the bytes of body. */
static void data(struct pdu *p, uint8_t id, const uint8_t *body, size_t len)
{
    p->n = 0;
    p->b[p->n++] = RDP_DVC_DATA << 4;
    p->b[p->n++] = id;
    memcpy(p->b + p->n, body, len);
    p->n += len;
}

/* A Data First PDU (a 4-byte length) announcing total, with len bytes. */
static void data_first(struct pdu *p, uint8_t id, uint32_t total,
                       const uint8_t *body, size_t len)
{
    p->n = 0;
    p->b[p->n++] = (RDP_DVC_DATA_FIRST << 4) | (2 << 2);
    p->b[p->n++] = id;
    p32(p, total);
    memcpy(p->b + p->n, body, len);
    p->n += len;
}

/* An RDPGFX header into b: cmdId, flags 0, pduLength. */
static size_t gfx_head(uint8_t *b, uint16_t cmd, uint32_t plen)
{
    struct pdu h = {.n = 0};

    p16(&h, cmd);
    p16(&h, 0);
    p32(&h, plen);
    memcpy(b, h.b, h.n);
    return h.n;
}

/* A frame acknowledgement (20 bytes) into b. */
static size_t frame_ack(uint8_t *b, uint32_t frame)
{
    size_t k = gfx_head(b, RDP_GFX_FRAME_ACK, 20);

    memset(b + k, 0, 12);
    b[k + 4] = (uint8_t)frame;
    return k + 12;
}

/* The graphics channel open with ID 9 (display control too with ID 7
 * when disp). */
static void open_gfx(struct rdp_dvc *d, bool disp)
{
    struct pdu p;

    if (disp) {
        open_disp(d, 1);
    } else {
        rdp_dvc_init(d);
    }
    d->gfx_allowed = true;
    create_req(&p, 9, RDP_DVC_GFX_NAME);
    assert_int_equal(filt(d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_null(r.refused);
    assert_int_equal(r.chan, RDP_DVC_GFX);
    create_rsp(&p, 9, 0);
    assert_int_equal(filt(d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_true(r.opened);
    assert_int_equal(d->ch[RDP_DVC_GFX].state, RDP_DVC_OPEN);
}

static void test_gfx_opens_only_when_agreed(void **state)
{
    struct rdp_dvc d;
    struct pdu p;
    uint8_t b[32];

    (void)state;
    rdp_dvc_init(&d);
    create_req(&p, 9, RDP_DVC_GFX_NAME);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    assert_non_null(strstr(r.refused, "not agreed"));
    assert_int_equal(r.reply_len, 6);
    /* not open: the client's PDUs on it go nowhere */
    data(&p, 9, b, frame_ack(b, 1));
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    open_gfx(&d, false);
    /* a second one refused, the first left open */
    create_req(&p, 10, RDP_DVC_GFX_NAME);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(r.reply_len, 6);
    assert_int_equal(d.ch[RDP_DVC_GFX].id, 9);
    data(&p, 9, b, frame_ack(b, 1));
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(r.gfx_acks, 1);
}

/* A hostile target names a second relayed channel with the ID of one
 * open: refused, and not answered (a failure under that ID would be
 * taken for the open one's); the IDs stay apart. */
static void test_gfx_never_shares_an_id(void **state)
{
    struct rdp_dvc d;
    struct pdu p;
    uint8_t b[32];

    (void)state;
    open_disp(&d, 1);
    d.gfx_allowed = true;
    create_req(&p, 7, RDP_DVC_GFX_NAME);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    assert_int_equal(r.reply_len, 0);
    assert_int_equal(d.ch[RDP_DVC_GFX].state, RDP_DVC_NONE);
    /* nor a refused name under an open ID */
    create_req(&p, 7, "ECHO");
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(r.reply_len, 0);
    /* a frame acknowledgement on display control's ID is its business:
     * not a monitor layout, refused */
    data(&p, 7, b, frame_ack(b, 1));
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(r.chan, RDP_DVC_DISP);
    /* graphics under its own ID: both open */
    create_req(&p, 9, RDP_DVC_GFX_NAME);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    create_rsp(&p, 9, 0);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(d.ch[RDP_DVC_GFX].state, RDP_DVC_OPEN);
    assert_int_equal(d.ch[RDP_DVC_DISP].state, RDP_DVC_OPEN);
    /* the target closes display control, opens graphics... no: a second
     * graphics under the closed ID is still a second one */
    p.n = 0;
    p.b[p.n++] = RDP_DVC_CLOSE << 4;
    p.b[p.n++] = 7;
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(r.chan, RDP_DVC_DISP);
    assert_int_equal(d.ch[RDP_DVC_GFX].state, RDP_DVC_OPEN);
}

static void test_gfx_client_pdus(void **state)
{
    struct rdp_dvc d;
    struct pdu p;
    uint8_t b[256];
    size_t k;

    (void)state;
    open_gfx(&d, true);
    /* caps advertise: passes, noted */
    k = gfx_head(b, RDP_GFX_CAPS_ADVERTISE, 8 + 2 + 8);
    memset(b + k, 0, 10);
    b[k] = 1;
    data(&p, 9, b, k + 10);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(r.gfx_cmd, RDP_GFX_CAPS_ADVERTISE);
    /* two acknowledgements back to back */
    k = frame_ack(b, 1);
    k += frame_ack(b + k, 2);
    data(&p, 9, b, k);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(r.gfx_acks, 2);
    /* a PDU only a server sends (a caps confirm, a solid fill) */
    k = gfx_head(b, RDP_GFX_CAPS_CONFIRM, 20);
    memset(b + k, 0, 12);
    data(&p, 9, b, k + 12);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    /* ... after a good one in the same message */
    k = frame_ack(b, 1);
    k += gfx_head(b + k, 0x0004, 8);
    data(&p, 9, b, k);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    assert_int_equal(r.gfx_acks, 0);
    /* an acknowledgement of the wrong length; a PDU past the message;
     * bytes after the last PDU; less than a header */
    k = gfx_head(b, RDP_GFX_FRAME_ACK, 16);
    memset(b + k, 0, 8);
    data(&p, 9, b, k + 8);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    k = gfx_head(b, RDP_GFX_CAPS_ADVERTISE, 200);
    data(&p, 9, b, k + 10);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    k = frame_ack(b, 1);
    data(&p, 9, b, k + 3);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    data(&p, 9, b, 5);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    assert_int_equal(n, 0);
}

static void test_gfx_fragments(void **state)
{
    struct rdp_dvc d;
    struct pdu p;
    uint8_t b[256];
    size_t k;

    (void)state;
    open_gfx(&d, false);
    /* a cache import offer of 100 bytes in fragments of 40 and 60 */
    k = gfx_head(b, RDP_GFX_CACHE_IMPORT_OFFER, 100);
    memset(b + k, 0, 100 - k);
    data_first(&p, 9, 100, b, 40);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(d.ch[RDP_DVC_GFX].left[RDP_DVC_UP], 60);
    /* another message before it ended: refused */
    data_first(&p, 9, 100, b, 40);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    /* a fragment past its end */
    data(&p, 9, b + 40, 61);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    /* the other direction is apart: the target's own message */
    b[0] = 0xe0;
    b[1] = 0x04;
    data(&p, 9, b, 2);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    /* the rest, continuation bytes unchecked */
    memset(b + 40, 0xee, 60);
    data(&p, 9, b + 40, 60);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(d.ch[RDP_DVC_GFX].left[RDP_DVC_UP], 0);
    /* now such bytes would start a message: malformed (no PDU of that
     * length fits) */
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    assert_int_equal(n, 0);
    /* one PDU must fill a message in fragments */
    k = gfx_head(b, RDP_GFX_CACHE_IMPORT_OFFER, 50);
    data_first(&p, 9, 100, b, 40);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    /* a length of 0, a first fragment longer than the length, a message
     * over 64 MiB */
    k = gfx_head(b, RDP_GFX_CACHE_IMPORT_OFFER, 0);
    data_first(&p, 9, 0, b, 8);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    data_first(&p, 9, 20, b, 40);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_PROTO);
    k = gfx_head(b, RDP_GFX_CACHE_IMPORT_OFFER, RDP_DVC_GFX_MAX + 1);
    data_first(&p, 9, RDP_DVC_GFX_MAX + 1, b, 40);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    assert_int_equal(d.ch[RDP_DVC_GFX].left[RDP_DVC_UP], 0);
    (void)k;
}

static void test_gfx_target_wrapper(void **state)
{
    struct rdp_dvc d;
    struct pdu p;
    struct pdu b = {.n = 0};

    (void)state;
    open_gfx(&d, false);
    /* one uncompressed segment holding a caps confirm (8.1, AVC420) */
    b.b[b.n++] = 0xe0;
    b.b[b.n++] = 0x04;
    p16(&b, RDP_GFX_CAPS_CONFIRM);
    p16(&b, 0);
    p32(&b, 20);
    p32(&b, 0x00080105);
    p32(&b, 4);
    p32(&b, 0x10);
    data(&p, 9, b.b, b.n);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(r.gfx_cmd, RDP_GFX_CAPS_CONFIRM);
    assert_int_equal(r.gfx_version, 0x00080105);
    assert_int_equal(r.gfx_flags, 0x10);
    /* compressed: passed, not read */
    b.b[1] = 0x24;
    data(&p, 9, b.b, b.n);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(r.gfx_cmd, 0);
    /* a bulk type other than RDP8; another descriptor; a bare one */
    b.b[1] = 0x01;
    data(&p, 9, b.b, b.n);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_PROTO);
    b.b[0] = 0x42;
    b.b[1] = 0x04;
    data(&p, 9, b.b, b.n);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_PROTO);
    data(&p, 9, b.b, 1);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_PROTO);
    /* multipart: two segments adding up */
    b.n = 0;
    b.b[b.n++] = 0xe1;
    p16(&b, 2);
    p32(&b, 100);
    p32(&b, 3);
    b.b[b.n++] = 0x04;
    b.b[b.n++] = 1;
    b.b[b.n++] = 2;
    p32(&b, 1);
    b.b[b.n++] = 0x24;
    data(&p, 9, b.b, b.n);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    /* a byte too many, one too few, a segment count of 0 */
    data(&p, 9, b.b, b.n + 1);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_PROTO);
    data(&p, 9, b.b, b.n - 1);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_PROTO);
    b.b[1] = 0;
    data(&p, 9, b.b, b.n);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_PROTO);
    b.b[1] = 2;
    /* an uncompressed size the client would allocate, over 64 MiB */
    b.b[3] = 0x01;
    b.b[4] = 0x00;
    b.b[5] = 0x00;
    b.b[6] = 0x04;
    data(&p, 9, b.b, b.n);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    /* in fragments only the header is read */
    b.b[6] = 0;
    data_first(&p, 9, 5000, b.b, 9);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(d.ch[RDP_DVC_GFX].left[RDP_DVC_DOWN], 5000 - 9);
    /* the target's close ends the message under way; the client's
     * answer passes */
    p.n = 0;
    p.b[p.n++] = RDP_DVC_CLOSE << 4;
    p.b[p.n++] = 9;
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(d.ch[RDP_DVC_GFX].left[RDP_DVC_DOWN], 0);
    assert_int_equal(filt(&d, RDP_DVC_UP, &p, 0), ERR_OK);
    assert_int_equal(n, 2);
    assert_null(r.refused);
    data(&p, 9, b.b, 2);
    assert_int_equal(filt(&d, RDP_DVC_DOWN, &p, 0), ERR_OK);
    assert_int_equal(n, 0);
}

/* Every prefix of the graphics PDUs, each way: no read past it, and a
 * malformed one changes nothing. */
static void test_gfx_truncated(void **state)
{
    struct rdp_dvc d, before;
    struct pdu p[4], b = {.n = 0};
    uint8_t body[64];
    size_t k;

    (void)state;
    k = frame_ack(body, 1);
    k += frame_ack(body + k, 2);
    data(&p[0], 9, body, k);
    k = gfx_head(body, RDP_GFX_CACHE_IMPORT_OFFER, 100);
    data_first(&p[1], 9, 100, body, 40);
    b.b[b.n++] = 0xe1;
    p16(&b, 2);
    p32(&b, 100);
    p32(&b, 3);
    b.b[b.n++] = 0x04;
    b.b[b.n++] = 1;
    b.b[b.n++] = 2;
    p32(&b, 1);
    b.b[b.n++] = 0x24;
    data(&p[2], 9, b.b, b.n);
    data_first(&p[3], 9, 5000, b.b, b.n);
    for (size_t j = 0; j < 4; j++) {
        for (size_t len = 0; len < p[j].n; len++) {
            uint8_t *m = malloc(len ? len : 1);
            int e;

            assert_non_null(m);
            open_gfx(&d, true);
            memcpy(m, p[j].b, len);
            before = d;
            e = rdp_dvc_filter(&d, j < 2 ? RDP_DVC_UP : RDP_DVC_DOWN, m, len,
                               10000, out, &n, &r);
            if (e != ERR_OK) {
                assert_int_equal(e, ERR_PROTO);
                assert_int_equal(n, 0);
                assert_memory_equal(&d, &before, sizeof(d));
            }
            free(m);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_clamped_to_version_2),
        cmocka_unit_test(test_other_channels_refused_with_a_reply),
        cmocka_unit_test(test_display_control_opens_once),
        cmocka_unit_test(test_close_answered_then_reopened),
        cmocka_unit_test(test_layout_bounds),
        cmocka_unit_test(test_layouts_coalesced),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_gfx_opens_only_when_agreed),
        cmocka_unit_test(test_gfx_never_shares_an_id),
        cmocka_unit_test(test_gfx_client_pdus),
        cmocka_unit_test(test_gfx_fragments),
        cmocka_unit_test(test_gfx_target_wrapper),
        cmocka_unit_test(test_gfx_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
