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
    rdp_codec_order_name(false, 0x07, b, sizeof(b));
    assert_string_equal(b, "secondary order Cache Brush");
    rdp_codec_order_name(false, 0x03, b, sizeof(b));
    assert_string_equal(b, "secondary order Cache Glyph");
    rdp_codec_order_name(false, 0x08, b, sizeof(b));
    assert_string_equal(b, "secondary order Cache Bitmap V3");
    /* no order has 6, nor anything past the last */
    rdp_codec_order_name(false, 0x06, b, sizeof(b));
    assert_string_equal(b, "secondary order 0x06");
    rdp_codec_order_name(false, 0x09, b, sizeof(b));
    assert_string_equal(b, "secondary order 0x09");
    rdp_codec_order_name(false, 0xFF, b, sizeof(b));
    assert_string_equal(b, "secondary order 0xff");
    rdp_codec_order_name(true, 0x00, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order Switch Surface");
    rdp_codec_order_name(true, 0x01, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order Create Offscreen Bitmap");
    rdp_codec_order_name(true, 0x0B, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order Window");
    rdp_codec_order_name(true, 0x0D, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order Frame Marker");
    rdp_codec_order_name(true, 0x0E, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order 0x0e");
    rdp_codec_order_name(true, 0x3F, b, sizeof(b));
    assert_string_equal(b, "alternate secondary order 0x3f");
    /* cut to fit, always terminated; nothing written into 0 bytes */
    rdp_codec_order_name(false, 0x07, b, 10);
    assert_string_equal(b, "secondary");
    b[0] = 'x';
    rdp_codec_order_name(false, 0x07, b, 0);
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
    /* a client that sent no size: not checked */
    assert_int_equal(
        rdp_codec_pointer_check(RDP_POINTER_CACHED, 65535, 0, 0, 0, 0),
        RDP_POINTER_OK);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
