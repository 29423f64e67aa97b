/*
 * Surface commands' codec IDs (src/rdpproxy/rdp_codec.c): the target's
 * IDs, in the back leg's numbering (FreeRDP's constants), reach the
 * client in the client's numbering; a codec the client did not announce,
 * one the back leg did not, an ID no codec has, and everything when the
 * client takes no surface commands, do not reach it; a client's
 * numbering with 0 or an ID shared by two codecs makes those codecs
 * unusable. An NSCodec bitmap larger than its rectangle, and a "not
 * encoded" one of a depth FreeRDP does not decode, are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rdpproxy/rdp_codec.h"

static struct rdp_codec_set client(bool nsc, uint32_t nsc_id, bool rfx,
                                   uint32_t rfx_id)
{
    struct rdp_codec_set s;

    memset(&s, 0, sizeof(s));
    s.on[RDP_CODEC_NSC] = nsc;
    s.id[RDP_CODEC_NSC] = nsc_id;
    s.on[RDP_CODEC_RFX] = rfx;
    s.id[RDP_CODEC_RFX] = rfx_id;
    return s;
}

/* Every back leg ID through m: want[i] the client's ID, -1 refused. */
static void expect(const struct rdp_codec_map *m, const int want[256])
{
    for (int i = 0; i < 256; i++) {
        uint8_t out = 0xEE;
        bool ok = rdp_codec_map_id(m, (uint8_t)i, &out);

        if (want[i] < 0) {
            assert_false(ok);
            assert_int_equal(out, 0xEE); /* untouched */
        } else {
            assert_true(ok);
            assert_int_equal(out, want[i]);
        }
    }
}

static void all_refused(int want[256])
{
    for (int i = 0; i < 256; i++) {
        want[i] = -1;
    }
}

/* A FreeRDP client: the same numbers both sides. */
static void test_same_ids(void **state)
{
    struct rdp_codec_set b, f = client(true, 1, true, 3);
    struct rdp_codec_map m;
    int want[256];

    (void)state;
    rdp_codec_back_set(&b, true, true);
    rdp_codec_map_make(&m, true, &b, &f);
    all_refused(want);
    want[0] = 0;
    want[RDP_CODEC_BACK_NSC] = 1;
    want[RDP_CODEC_BACK_RFX] = 3;
    expect(&m, want);
}

/* A client that numbers its own way (as mstsc may): renumbered, and its
 * numbers are not taken as the back leg's. */
static void test_client_numbering(void **state)
{
    struct rdp_codec_set b, f = client(true, 3, true, 9);
    struct rdp_codec_map m;
    int want[256];

    (void)state;
    rdp_codec_back_set(&b, true, true);
    rdp_codec_map_make(&m, true, &b, &f);
    all_refused(want);
    want[0] = 0;
    want[RDP_CODEC_BACK_NSC] = 3; /* NSCodec: the back's 1 is the client's 3 */
    want[RDP_CODEC_BACK_RFX] = 9; /* RemoteFX: 3 -> 9 */
    expect(&m, want);
}

/* Only what both announced crosses: the client without RemoteFX, the back
 * leg without NSCodec (the target sending it anyway). */
static void test_only_codecs_both_announced(void **state)
{
    struct rdp_codec_set b, f = client(true, 7, false, 3);
    struct rdp_codec_map m;
    int want[256];

    (void)state;
    rdp_codec_back_set(&b, true, true);
    rdp_codec_map_make(&m, true, &b, &f);
    all_refused(want);
    want[0] = 0;
    want[RDP_CODEC_BACK_NSC] = 7;
    expect(&m, want);

    f = client(true, 7, true, 9);
    rdp_codec_back_set(&b, false, true);
    rdp_codec_map_make(&m, true, &b, &f);
    all_refused(want);
    want[0] = 0;
    want[RDP_CODEC_BACK_RFX] = 9;
    expect(&m, want);
}

/* No surface commands announced: nothing crosses, not even plain bits. */
static void test_no_surface_commands(void **state)
{
    struct rdp_codec_set b, f = client(true, 1, true, 3);
    struct rdp_codec_map m;
    int want[256];

    (void)state;
    rdp_codec_back_set(&b, true, true);
    rdp_codec_map_make(&m, false, &b, &f);
    all_refused(want);
    expect(&m, want);
}

/* A client's numbering that cannot be told apart: 0 (not encoded), one ID
 * for both, an ID past a byte. */
static void test_client_numbering_unusable(void **state)
{
    static const struct {
        bool nsc;
        uint32_t nsc_id;
        bool rfx;
        uint32_t rfx_id;
        bool nsc_ok, rfx_ok;
    } cases[] = {
        {true, 0, true, 3, false, true},
        {true, 5, true, 0, true, false},
        {true, 5, true, 5, false, false},
        /* a shared ID does not matter when the other codec is off */
        {true, 5, false, 5, true, false},
        {true, 256, true, 3, false, true},
        {true, 1, true, 0x103, true, false},
        {false, 0, false, 0, false, false},
    };
    struct rdp_codec_set b, u;
    struct rdp_codec_map m;
    int want[256];

    (void)state;
    rdp_codec_back_set(&b, true, true);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct rdp_codec_set f = client(cases[i].nsc, cases[i].nsc_id,
                                        cases[i].rfx, cases[i].rfx_id);

        rdp_codec_usable(&f, &u);
        assert_int_equal(u.on[RDP_CODEC_NSC], cases[i].nsc_ok);
        assert_int_equal(u.on[RDP_CODEC_RFX], cases[i].rfx_ok);
        rdp_codec_map_make(&m, true, &b, &f);
        all_refused(want);
        want[0] = 0;
        if (cases[i].nsc_ok) {
            want[RDP_CODEC_BACK_NSC] = (int)cases[i].nsc_id;
        }
        if (cases[i].rfx_ok) {
            want[RDP_CODEC_BACK_RFX] = (int)cases[i].rfx_id;
        }
        expect(&m, want);
    }
}

/* A map made again (a reactivation: the client renumbers or drops a
 * codec) keeps nothing of the last one. */
static void test_made_again(void **state)
{
    struct rdp_codec_set b, f = client(true, 4, true, 6);
    struct rdp_codec_map m;
    int want[256];

    (void)state;
    rdp_codec_back_set(&b, true, true);
    rdp_codec_map_make(&m, true, &b, &f);
    f = client(false, 0, true, 8);
    rdp_codec_map_make(&m, true, &b, &f);
    all_refused(want);
    want[0] = 0;
    want[RDP_CODEC_BACK_RFX] = 8;
    expect(&m, want);
}

/* An NSCodec bitmap must fit its rectangle (FreeRDP 2.11's decoder
 * copies it whole from the rectangle's corner); the other codecs'
 * bitmaps are not measured. */
static void test_bitmap_too_large(void **state)
{
    (void)state;
    /* the rectangle's size, or smaller */
    assert_int_equal(rdp_codec_bitmap_check(RDP_CODEC_BACK_NSC, 32, 0, 0, 1024,
                                            64, 1024, 64),
                     RDP_BITMAP_OK);
    assert_int_equal(
        rdp_codec_bitmap_check(RDP_CODEC_BACK_NSC, 32, 16, 16, 80, 80, 8, 64),
        RDP_BITMAP_OK);
    /* the hostile target's: 1024x4096 for 8x8 at the bottom right */
    assert_int_equal(rdp_codec_bitmap_check(RDP_CODEC_BACK_NSC, 32, 1016, 760,
                                            1024, 768, 1024, 4096),
                     RDP_BITMAP_TOO_LARGE);
    /* one pixel too wide, one too tall */
    assert_int_equal(
        rdp_codec_bitmap_check(RDP_CODEC_BACK_NSC, 32, 0, 0, 64, 64, 65, 64),
        RDP_BITMAP_TOO_LARGE);
    assert_int_equal(
        rdp_codec_bitmap_check(RDP_CODEC_BACK_NSC, 32, 0, 0, 64, 64, 64, 65),
        RDP_BITMAP_TOO_LARGE);
    /* an empty or inverted rectangle fits nothing */
    assert_int_equal(
        rdp_codec_bitmap_check(RDP_CODEC_BACK_NSC, 32, 64, 0, 64, 64, 1, 1),
        RDP_BITMAP_TOO_LARGE);
    assert_int_equal(
        rdp_codec_bitmap_check(RDP_CODEC_BACK_NSC, 32, 0, 64, 64, 0, 1, 1),
        RDP_BITMAP_TOO_LARGE);
    /* RemoteFX places its own tiles; "not encoded" is copied at the
     * rectangle's size */
    assert_int_equal(rdp_codec_bitmap_check(RDP_CODEC_BACK_RFX, 32, 1016, 760,
                                            1024, 768, 1024, 4096),
                     RDP_BITMAP_OK);
    assert_int_equal(
        rdp_codec_bitmap_check(RDP_CODEC_ID_PLAIN, 32, 0, 0, 8, 8, 64, 64),
        RDP_BITMAP_OK);
}

/* "Not encoded" bitmaps only in the depths FreeRDP's decoder takes; the
 * codecs' bpp is not this check's. */
static void test_bitmap_depth(void **state)
{
    (void)state;
    for (uint32_t bpp = 0; bpp <= 256; bpp++) {
        bool ok = bpp == 8 || bpp == 15 || bpp == 16 || bpp == 24 || bpp == 32;

        assert_int_equal(rdp_codec_bitmap_check(RDP_CODEC_ID_PLAIN, bpp, 0, 0,
                                                1024, 64, 1024, 64),
                         ok ? RDP_BITMAP_OK : RDP_BITMAP_DEPTH);
    }
    assert_int_equal(
        rdp_codec_bitmap_check(RDP_CODEC_BACK_NSC, 1, 0, 0, 64, 64, 64, 64),
        RDP_BITMAP_OK);
    assert_int_equal(
        rdp_codec_bitmap_check(RDP_CODEC_BACK_RFX, 1, 0, 0, 64, 64, 64, 64),
        RDP_BITMAP_OK);
}

/* A planar bitmap (compressed, 32 bpp) no larger than the desktop the
 * decoders were made for, rounded up to 4 as FreeRDP sizes them; the
 * interleaved and uncompressed ones of any size. */
static void test_update_planar_too_large(void **state)
{
    (void)state;
    /* rdp_surf_target.c's planar-big: 64x2048 on 1024x768 */
    assert_int_equal(rdp_codec_update_check(32, true, 64, 2048, 1024, 768),
                     RDP_BITMAP_PLANAR_TOO_LARGE);
    assert_int_equal(rdp_codec_update_check(32, true, 64, 64, 1024, 768),
                     RDP_BITMAP_OK);
    assert_int_equal(rdp_codec_update_check(32, true, 1024, 768, 1024, 768),
                     RDP_BITMAP_OK);
    /* FreeRDP's planar scratch buffer is 1028x768 for 1026x766 */
    assert_int_equal(rdp_codec_update_check(32, true, 1028, 768, 1026, 766),
                     RDP_BITMAP_OK);
    assert_int_equal(rdp_codec_update_check(32, true, 1029, 768, 1026, 766),
                     RDP_BITMAP_PLANAR_TOO_LARGE);
    assert_int_equal(rdp_codec_update_check(32, true, 1028, 769, 1026, 766),
                     RDP_BITMAP_PLANAR_TOO_LARGE);
    assert_int_equal(rdp_codec_update_check(32, true, 65535, 1, 1024, 768),
                     RDP_BITMAP_PLANAR_TOO_LARGE);
    /* gdi takes any bpp from 32 up as planar */
    assert_int_equal(rdp_codec_update_check(33, true, 64, 2048, 1024, 768),
                     RDP_BITMAP_PLANAR_TOO_LARGE);
    /* no overflow rounding the largest sizes up */
    assert_int_equal(rdp_codec_update_check(32, true, UINT32_MAX, UINT32_MAX,
                                            UINT32_MAX, UINT32_MAX),
                     RDP_BITMAP_OK);
    /* interleaved and uncompressed: decoded at the bitmap's own size */
    for (uint32_t bpp = 0; bpp < 32; bpp++) {
        assert_int_equal(rdp_codec_update_check(bpp, true, 64, 2048, 1024, 768),
                         RDP_BITMAP_OK);
    }
    assert_int_equal(rdp_codec_update_check(32, false, 64, 2048, 1024, 768),
                     RDP_BITMAP_OK);
}

/* The names of drawing orders in the log and the session's result. */
static void test_order_name(void **state)
{
    char b[64];

    (void)state;
    rdp_codec_order_name(RDP_ORDER_SECONDARY, 0x07, b, sizeof(b));
    assert_string_equal(b, "secondary order Cache Brush");
    rdp_codec_order_name(RDP_ORDER_SECONDARY, 0x03, b, sizeof(b));
    assert_string_equal(b, "secondary order Cache Glyph");
    rdp_codec_order_name(RDP_ORDER_SECONDARY, 0x08, b, sizeof(b));
    assert_string_equal(b, "secondary order Cache Bitmap V3");
    /* no order has 6, nor anything past the last */
    rdp_codec_order_name(RDP_ORDER_SECONDARY, 0x06, b, sizeof(b));
    assert_string_equal(b, "secondary order 0x06");
    rdp_codec_order_name(RDP_ORDER_SECONDARY, 0x09, b, sizeof(b));
    assert_string_equal(b, "secondary order 0x09");
    rdp_codec_order_name(RDP_ORDER_SECONDARY, 0xFF, b, sizeof(b));
    assert_string_equal(b, "secondary order 0xff");
    rdp_codec_order_name(RDP_ORDER_ALTSEC, 0x00, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order Switch Surface");
    rdp_codec_order_name(RDP_ORDER_ALTSEC, 0x01, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order Create Offscreen Bitmap");
    rdp_codec_order_name(RDP_ORDER_ALTSEC, 0x0B, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order Window");
    rdp_codec_order_name(RDP_ORDER_ALTSEC, 0x0D, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order Frame Marker");
    rdp_codec_order_name(RDP_ORDER_ALTSEC, 0x0E, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order 0x0e");
    rdp_codec_order_name(RDP_ORDER_ALTSEC, 0x3F, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order 0x3f");
    rdp_codec_order_name(RDP_ORDER_PRIMARY, 0x0D, b, sizeof(b));
    assert_string_equal(b, "primary order MemBlt");
    rdp_codec_order_name(RDP_ORDER_PRIMARY, 0x1B, b, sizeof(b));
    assert_string_equal(b, "primary order GlyphIndex");
    rdp_codec_order_name(RDP_ORDER_PRIMARY, 0x03, b, sizeof(b));
    assert_string_equal(b, "primary order 0x03");
    rdp_codec_order_name(RDP_ORDER_PRIMARY, 0x1C, b, sizeof(b));
    assert_string_equal(b, "primary order 0x1c");
    /* cut to fit, always terminated; nothing written into 0 bytes */
    rdp_codec_order_name(RDP_ORDER_SECONDARY, 0x07, b, 10);
    assert_string_equal(b, "secondary");
    b[0] = 'x';
    rdp_codec_order_name(RDP_ORDER_SECONDARY, 0x07, b, 0);
    assert_int_equal(b[0], 'x');
}

/* Pointer updates past what the client announced. */
static void test_pointer_check(void **state)
{
    const uint32_t l96 = RDP_LARGE_POINTER_96,
                   both = RDP_LARGE_POINTER_96 | RDP_LARGE_POINTER_384;

    (void)state;
    /* the cache: indices 0 to size - 1 */
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_CACHED, 19, 0, 0, 20, 0),
        RDP_POINTER_OK);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_CACHED, 20, 0, 0, 20, 0),
        RDP_POINTER_INDEX);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_CACHED, 65535, 0, 0, 20, both),
        RDP_POINTER_INDEX);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_COLOR, 25, 32, 32, 20, 0),
        RDP_POINTER_INDEX);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_LARGE, 25, 64, 64, 20, both),
        RDP_POINTER_INDEX);
    /* a client with no cache (none announced): nothing that names an
     * entry, whatever the index */
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_CACHED, 65535, 0, 0, 0, 0),
        RDP_POINTER_INDEX);
    assert_int_equal(rdp_codec_pointer_check(RDP_POINTER_CACHED, 0, 0, 0, 0, 0),
                     RDP_POINTER_INDEX);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_COLOR, 0, 32, 32, 0, 0),
        RDP_POINTER_INDEX);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_LARGE, 0, 32, 32, 0, both),
        RDP_POINTER_INDEX);
    /* with one entry, only index 0 */
    assert_int_equal(rdp_codec_pointer_check(RDP_POINTER_CACHED, 0, 0, 0, 1, 0),
                     RDP_POINTER_OK);
    assert_int_equal(rdp_codec_pointer_check(RDP_POINTER_CACHED, 1, 0, 0, 1, 0),
                     RDP_POINTER_INDEX);
    /* colour and new pointers: 32, or 96 with large pointers */
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_COLOR, 0, 32, 32, 20, 0),
        RDP_POINTER_OK);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_COLOR, 0, 33, 32, 20, 0),
        RDP_POINTER_TOO_LARGE);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_COLOR, 0, 32, 33, 20, 0),
        RDP_POINTER_TOO_LARGE);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_COLOR, 0, 96, 96, 20, l96),
        RDP_POINTER_OK);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_COLOR, 0, 97, 96, 20, both),
        RDP_POINTER_TOO_LARGE);
    /* large pointer updates: only with 384x384 announced, up to 384 */
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_LARGE, 0, 32, 32, 20, l96),
        RDP_POINTER_TOO_LARGE);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_LARGE, 0, 32, 32, 20, 0),
        RDP_POINTER_TOO_LARGE);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_LARGE, 0, 384, 384, 20, both),
        RDP_POINTER_OK);
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_LARGE, 0, 385, 1, 20, both),
        RDP_POINTER_TOO_LARGE);
    assert_int_equal(rdp_codec_pointer_check(RDP_POINTER_LARGE, 0, 384, 384, 20,
                                             RDP_LARGE_POINTER_384),
                     RDP_POINTER_OK);
    /* a cached pointer has no size */
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_CACHED, 0, 9999, 9999, 20, 0),
        RDP_POINTER_OK);
}

/* FreeRDP 2.11's refusal of a primary order, as its log says it. */
static void test_primary_refusal(void **state)
{
    uint8_t t = 0xEE;

    (void)state;
    assert_true(rdp_codec_primary_refusal(
        "[0x0d] MemBlt - SERVER BUG: The support for this feature was not "
        "announced! Use /relax-order-checks to ignore",
        &t));
    assert_int_equal(t, 0x0D);
    assert_true(rdp_codec_primary_refusal(
        "[0x00] DstBlt - SERVER BUG: The support for this feature was not "
        "announced! Use /relax-order-checks to ignore",
        &t));
    assert_int_equal(t, 0x00);
    assert_true(rdp_codec_primary_refusal(
        "[0x1b] GlyphIndex - SERVER BUG: The support for this feature was "
        "not announced!",
        &t));
    assert_int_equal(t, 0x1B);
    t = 0xEE;
    /* a secondary or alternate secondary order's name, a type no primary
     * order has, FreeRDP's UNKNOWN, a name that is not the type's */
    assert_false(rdp_codec_primary_refusal(
        "[0x07] Cache Brush - SERVER BUG: The support for this feature was "
        "not announced!",
        &t));
    assert_false(rdp_codec_primary_refusal(
        "[0x03] UNUSED - SERVER BUG: The support for this feature was not "
        "announced!",
        &t));
    assert_false(rdp_codec_primary_refusal(
        "[0x2a] UNKNOWN - SERVER BUG: The support for this feature was not "
        "announced!",
        &t));
    assert_false(rdp_codec_primary_refusal(
        "[0x0d] DstBlt - SERVER BUG: The support for this feature was not "
        "announced!",
        &t));
    /* other lines, upper-case hex, cut short, nothing */
    assert_false(rdp_codec_primary_refusal("[0x0d] MemBlt", &t));
    assert_false(rdp_codec_primary_refusal(
        "[0x0D] MemBlt - SERVER BUG: The support for this feature was not "
        "announced!",
        &t));
    assert_false(rdp_codec_primary_refusal("Primary Drawing Order [0x0d] "
                                           "MemBlt",
                                           &t));
    assert_false(rdp_codec_primary_refusal("[0x", &t));
    assert_false(rdp_codec_primary_refusal("", &t));
    assert_false(rdp_codec_primary_refusal(NULL, &t));
    assert_int_equal(t, 0xEE);
}

/* A Confirm Active PDU as FreeRDP's client writes it with TLS security:
 * TPKT, X.224 Data, MCS Send Data Request, Share Control Header, the
 * PDU's fields, the capability sets added with cap(). */
struct ca {
    uint8_t b[2048];
    size_t n;
    size_t caps_at; /* numberCapabilities */
    unsigned ncaps;
};

static void ca_put(struct ca *c, const void *p, size_t n)
{
    assert_true(c->n + n <= sizeof(c->b));
    memcpy(c->b + c->n, p, n);
    c->n += n;
}

static void ca_le16(struct ca *c, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    ca_put(c, b, 2);
}

static void ca_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void ca_start(struct ca *c)
{
    /* TPKT and MCS lengths are written by ca_end; 2-byte PER length */
    static const uint8_t head[] = {3, 0, 0, 0,    2,    0xF0, 0x80, 0x64,
                                   0, 6, 3, 0xEB, 0x70, 0x80, 0};
    memset(c, 0, sizeof(*c));
    ca_put(c, head, sizeof(head));
    ca_le16(c, 0);                    /* totalLength */
    ca_le16(c, 0x13);                 /* pduType: Confirm Active, version 1 */
    ca_le16(c, 1007);                 /* pduSource */
    ca_put(c, "\x01\x00\x01\x00", 4); /* shareId */
    ca_le16(c, 0x03EA);               /* originatorId */
    ca_le16(c, 6);                    /* lengthSourceDescriptor */
    ca_le16(c, 0);                    /* lengthCombinedCapabilities */
    ca_put(c, "FREERD", 6);
    c->caps_at = c->n;
    ca_le16(c, 0); /* numberCapabilities */
    ca_le16(c, 0);
}

/* A set of type with body (n bytes): its body's offset in c->b. */
static size_t ca_cap(struct ca *c, uint16_t type, const uint8_t *body, size_t n)
{
    size_t at;

    ca_le16(c, type);
    ca_le16(c, (uint16_t)(n + 4));
    at = c->n;
    ca_put(c, body, n);
    c->ncaps++;
    return at;
}

static void ca_end(struct ca *c)
{
    size_t mcs = c->n - 15, caps = c->n - c->caps_at;

    c->b[2] = (uint8_t)(c->n >> 8);
    c->b[3] = (uint8_t)c->n;
    c->b[13] = (uint8_t)(0x80 | (mcs >> 8));
    c->b[14] = (uint8_t)mcs;
    c->b[15] = (uint8_t)mcs;
    c->b[16] = (uint8_t)(mcs >> 8);
    c->b[c->caps_at - 8] = (uint8_t)caps;
    c->b[c->caps_at - 7] = (uint8_t)(caps >> 8);
    c->b[c->caps_at] = (uint8_t)c->ncaps;
    c->b[c->caps_at + 1] = (uint8_t)(c->ncaps >> 8);
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* The sets FreeRDP 2.11's client writes with what a target's Demand
 * Active and its own defaults put there: each turned off, the others
 * left as they were. */
static void test_confirm_fix(void **state)
{
    struct ca c;
    uint8_t order[84], bc2[36], brush[4], glyph[48], off[8], ng[8], gdip[36],
        win[7], surf[8], ptr[6], general[20];
    size_t o_order, o_bc2, o_brush, o_glyph, o_off, o_ng, o_gdip, o_win, o_surf,
        o_ptr, o_gen;
    unsigned what = 0;

    (void)state;
    memset(order, 0, sizeof(order));
    memset(order + 32, 1, 32); /* every primary order */
    order[30] = 0x80;          /* ORDER_FLAGS_EXTRA_SUPPORT */
    order[66] = 0x06;          /* bitmap cache v3, frame marker */
    memset(bc2, 0, sizeof(bc2));
    bc2[0] = 0x03; /* persistent keys, waiting list */
    bc2[3] = 5;    /* FreeRDP's five cells */
    memset(bc2 + 4, 0x58, 20);
    memset(brush, 0, sizeof(brush));
    brush[0] = 2; /* BRUSH_COLOR_FULL */
    memset(glyph, 0x11, sizeof(glyph));
    memset(off, 0, sizeof(off));
    off[0] = 1;
    memset(ng, 0, sizeof(ng));
    ng[0] = 2;
    memset(gdip, 0, sizeof(gdip));
    gdip[0] = 1;
    gdip[8] = 1;
    memset(win, 0, sizeof(win));
    win[0] = 2;
    memset(surf, 0, sizeof(surf));
    ca_le32(surf, 0x52); /* set, stream, frame marker */
    memset(ptr, 0, sizeof(ptr));
    ptr[0] = 1;
    ptr[2] = 20;
    ptr[4] = 20;
    memset(general, 0x33, sizeof(general));

    ca_start(&c);
    o_gen = ca_cap(&c, 0x0001, general, sizeof(general));
    o_order = ca_cap(&c, 0x0003, order, sizeof(order));
    o_bc2 = ca_cap(&c, 0x0013, bc2, sizeof(bc2));
    o_ptr = ca_cap(&c, 0x0008, ptr, sizeof(ptr));
    o_brush = ca_cap(&c, 0x000F, brush, sizeof(brush));
    o_glyph = ca_cap(&c, 0x0010, glyph, sizeof(glyph));
    o_off = ca_cap(&c, 0x0011, off, sizeof(off));
    o_ng = ca_cap(&c, 0x0015, ng, sizeof(ng));
    o_gdip = ca_cap(&c, 0x0016, gdip, sizeof(gdip));
    o_win = ca_cap(&c, 0x0018, win, sizeof(win));
    o_surf = ca_cap(&c, 0x001C, surf, sizeof(surf));
    ca_end(&c);

    /* a client with surface commands, no frame markers */
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, false, &what),
                     RDP_CONFIRM_FIXED);
    assert_int_equal(
        what, RDP_CAPS_ORDERS | RDP_CAPS_BITMAP_CACHE | RDP_CAPS_BRUSH |
                  RDP_CAPS_GLYPH | RDP_CAPS_OFFSCREEN | RDP_CAPS_NINEGRID |
                  RDP_CAPS_GDIPLUS | RDP_CAPS_WINDOW | RDP_CAPS_SURFACE);
    assert_true(all_zero(c.b + o_order + 32, 32));
    assert_int_equal(c.b[o_order + 30], 0x80); /* orderFlags kept */
    assert_int_equal(c.b[o_order + 66], 0);
    assert_true(all_zero(c.b + o_bc2, 24));
    assert_true(all_zero(c.b + o_brush, 4));
    assert_true(all_zero(c.b + o_glyph, 46));
    assert_true(all_zero(c.b + o_off, 8));
    assert_true(all_zero(c.b + o_ng, 8));
    assert_true(all_zero(c.b + o_gdip, 36));
    assert_true(all_zero(c.b + o_win, 7));
    assert_int_equal(c.b[o_surf], 0x42);
    assert_true(memcmp(c.b + o_ptr, ptr, sizeof(ptr)) == 0);
    assert_true(memcmp(c.b + o_gen, general, sizeof(general)) == 0);

    /* fixed once, nothing more to turn off; markers kept when the client
     * takes them only if FreeRDP announced them */
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, &what),
                     RDP_CONFIRM_FIXED);
    assert_int_equal(what, 0);
    assert_int_equal(c.b[o_surf], 0x42);
    ca_le32(c.b + o_surf, 0x52);
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, &what),
                     RDP_CONFIRM_FIXED);
    assert_int_equal(what, 0);
    assert_int_equal(c.b[o_surf], 0x52);
    /* a client without surface commands: none announced */
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, false, true, &what),
                     RDP_CONFIRM_FIXED);
    assert_int_equal(what, RDP_CAPS_SURFACE);
    assert_true(all_zero(c.b + o_surf, 4));
}

/* Not a Confirm Active: left alone; one that cannot be walked: BAD. */
static void test_confirm_fix_other_pdus(void **state)
{
    struct ca c;
    uint8_t brush[4] = {2, 0, 0, 0};
    uint8_t copy[2048];
    size_t o;
    unsigned what = 7;

    (void)state;
    ca_start(&c);
    o = ca_cap(&c, 0x000F, brush, sizeof(brush));
    ca_end(&c);
    memcpy(copy, c.b, c.n);
    /* a Demand Active (type 1), fast-path, a TPKT length that is not the
     * PDU's, an MCS Send Data Indication (a server's) */
    c.b[17] = 0x11;
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, &what),
                     RDP_CONFIRM_NOT);
    assert_int_equal(what, 0);
    assert_int_equal(c.b[o], 2);
    memcpy(c.b, copy, c.n);
    c.b[0] = 0x04;
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, NULL),
                     RDP_CONFIRM_NOT);
    memcpy(c.b, copy, c.n);
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n - 1, true, true, NULL),
                     RDP_CONFIRM_NOT);
    c.b[7] = 0x68;
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, NULL),
                     RDP_CONFIRM_NOT);
    assert_int_equal(c.b[o], 2);
    /* short PDUs */
    for (size_t n = 0; n < 20; n++) {
        memcpy(c.b, copy, c.n);
        c.b[2] = 0;
        c.b[3] = (uint8_t)n;
        assert_int_not_equal(rdp_codec_confirm_fix(c.b, n, true, true, NULL),
                             RDP_CONFIRM_FIXED);
    }
    /* a set longer than what is left, one shorter than its header, one
     * too short for its fields, more sets counted than there are */
    memcpy(c.b, copy, c.n);
    c.b[o - 2] = 60;
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, NULL),
                     RDP_CONFIRM_BAD);
    memcpy(c.b, copy, c.n);
    c.b[o - 2] = 3;
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, NULL),
                     RDP_CONFIRM_BAD);
    memcpy(c.b, copy, c.n);
    c.b[c.caps_at] = 2;
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, NULL),
                     RDP_CONFIRM_BAD);
    memcpy(c.b, copy, c.n);
    c.b[o - 4] = 0x10; /* a glyph set of 0 bytes */
    c.b[o - 2] = 4;
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, NULL),
                     RDP_CONFIRM_BAD);
    /* as built, it is fine */
    memcpy(c.b, copy, c.n);
    assert_int_equal(rdp_codec_confirm_fix(c.b, c.n, true, true, &what),
                     RDP_CONFIRM_FIXED);
    assert_int_equal(what, RDP_CAPS_BRUSH);
}

/* What was turned off, for the log. */
static void test_caps_said(void **state)
{
    char b[200];

    (void)state;
    rdp_codec_caps_said(0, b, sizeof(b));
    assert_string_equal(b, "");
    rdp_codec_caps_said(RDP_CAPS_BITMAP_CACHE, b, sizeof(b));
    assert_string_equal(b, "bitmap cache");
    rdp_codec_caps_said(RDP_CAPS_GLYPH | RDP_CAPS_ORDERS | RDP_CAPS_SURFACE, b,
                        sizeof(b));
    assert_string_equal(b, "drawing orders, glyph cache, surface commands");
    rdp_codec_caps_said(RDP_CAPS_GLYPH | RDP_CAPS_ORDERS, b, 12);
    assert_string_equal(b, "drawing ord");
}

/* FreeRDP 2.11's refusal of a Demand Active with a client's set. */
static void test_capset_refusal(void **state)
{
    uint16_t t = 0xEEEE;
    char b[64];

    (void)state;
    assert_true(rdp_codec_capset_refusal(
        "capability Glyph Cache(16) not expected from server", &t));
    assert_int_equal(t, 16);
    assert_true(rdp_codec_capset_refusal(
        "capability <unknown>(65535) not expected from server", &t));
    assert_int_equal(t, 65535);
    t = 0xEEEE;
    assert_false(rdp_codec_capset_refusal(
        "capability Glyph Cache(16) not expected from client", &t));
    assert_false(rdp_codec_capset_refusal(
        "capability x(65536) not expected from server", &t));
    assert_false(rdp_codec_capset_refusal(
        "capability x() not expected from server", &t));
    assert_false(rdp_codec_capset_refusal(
        "capability x16) not expected from server", &t));
    assert_false(rdp_codec_capset_refusal(
        "capability (1) not expected from server trailing", &t));
    assert_false(rdp_codec_capset_refusal("capability ", &t));
    assert_false(rdp_codec_capset_refusal("", &t));
    assert_false(rdp_codec_capset_refusal(NULL, &t));
    assert_int_equal(t, 0xEEEE);
    rdp_codec_capset_name(0x10, b, sizeof(b));
    assert_string_equal(b, "Glyph Cache");
    rdp_codec_capset_name(0x15, b, sizeof(b));
    assert_string_equal(b, "DrawNineGrid Cache");
    rdp_codec_capset_name(42, b, sizeof(b));
    assert_string_equal(b, "capability set 42");
}

/* rdesktop's Erect Domain Request (fixed 16-bit fields) becomes PER;
 * anything else, a PER request included, is left as it came. */
static void test_edrq_fix(void **state)
{
    uint8_t rdesktop[12] = {0x03, 0x00, 0x00, 0x0c, 0x02, 0xf0,
                            0x80, 0x04, 0x00, 0x01, 0x00, 0x01};
    const uint8_t per[12] = {0x03, 0x00, 0x00, 0x0c, 0x02, 0xf0,
                             0x80, 0x04, 0x01, 0x01, 0x01, 0x01};
    uint8_t b[16];

    (void)state;
    assert_true(rdp_codec_edrq_fix(rdesktop, sizeof(rdesktop)));
    assert_memory_equal(rdesktop, per, sizeof(per));
    /* now in PER: not changed again */
    assert_false(rdp_codec_edrq_fix(rdesktop, sizeof(rdesktop)));
    assert_memory_equal(rdesktop, per, sizeof(per));
    /* mstsc's (13 bytes: 01 00 01 00 is length 1, 0 twice) */
    memcpy(b,
           (const uint8_t[]){0x03, 0x00, 0x00, 0x0d, 0x02, 0xf0, 0x80, 0x04,
                             0x01, 0x00, 0x01, 0x00},
           12);
    b[12] = 0x00;
    assert_false(rdp_codec_edrq_fix(b, 13));
    /* another PDU of 12 bytes (an Attach User Request is 8) */
    memcpy(b, per, 12);
    b[7] = 0x28; /* attachUserRequest */
    b[8] = 0x00;
    b[10] = 0x00;
    assert_false(rdp_codec_edrq_fix(b, 12));
    assert_int_equal(b[8], 0x00);
    /* a number of 256 or more is no fixed form of rdesktop's */
    memcpy(b, per, 12);
    b[8] = 0x01;
    b[10] = 0x00;
    assert_false(rdp_codec_edrq_fix(b, 12));
    /* short, long, NULL */
    memcpy(b,
           (const uint8_t[]){0x03, 0x00, 0x00, 0x0c, 0x02, 0xf0, 0x80, 0x04,
                             0x00, 0x01, 0x00, 0x01},
           12);
    assert_false(rdp_codec_edrq_fix(b, 11));
    assert_false(rdp_codec_edrq_fix(b, 13));
    assert_int_equal(b[8], 0x00);
    assert_false(rdp_codec_edrq_fix(NULL, 12));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_ids),
        cmocka_unit_test(test_client_numbering),
        cmocka_unit_test(test_only_codecs_both_announced),
        cmocka_unit_test(test_no_surface_commands),
        cmocka_unit_test(test_client_numbering_unusable),
        cmocka_unit_test(test_made_again),
        cmocka_unit_test(test_bitmap_too_large),
        cmocka_unit_test(test_bitmap_depth),
        cmocka_unit_test(test_update_planar_too_large),
        cmocka_unit_test(test_order_name),
        cmocka_unit_test(test_pointer_check),
        cmocka_unit_test(test_primary_refusal),
        cmocka_unit_test(test_confirm_fix),
        cmocka_unit_test(test_confirm_fix_other_pdus),
        cmocka_unit_test(test_caps_said),
        cmocka_unit_test(test_capset_refusal),
        cmocka_unit_test(test_edrq_fix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
