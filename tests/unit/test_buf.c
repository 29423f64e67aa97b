/*
 * Unit tests for src/common/buf.c, the one door for untrusted bytes: the
 * wire encoding of every putter and its getter, that getters on short or
 * malformed input fail, reset their out-parameters and leave the read
 * offset where it was, that the maximum is a hard ceiling a failed put
 * leaves no trace past, and that consumed bytes are reused by compaction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"

/* Non-NULL values that a getter must overwrite on failure. */
static char sentinel[] = "sentinel";
static uint8_t sentinel_bytes[] = "x";

/* A buffer holding exactly the n bytes at p, unread. */
static struct buf *buf_from(const void *p, size_t n)
{
    struct buf *b = buf_new(0);

    assert_non_null(b);
    assert_int_equal(buf_put(b, p, n), ERR_OK);
    assert_int_equal(buf_avail(b), n);
    return b;
}

static void test_new_and_free(void **state)
{
    struct buf *b = buf_new(0);

    (void)state;
    assert_non_null(b);
    assert_int_equal(b->max, BUF_DEFAULT_MAX);
    assert_int_equal(buf_avail(b), 0);
    /* An empty buffer still gives a usable pointer. */
    assert_non_null(buf_ptr(b));
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);

    b = buf_new(100);
    assert_non_null(b);
    assert_int_equal(b->max, 100);
    buf_free(b);

    buf_free(NULL);
}

static void test_integers_round_trip(void **state)
{
    static const uint8_t wire[] = {
        0x00, 0xff,                                     /* u8 0, 255 */
        0x00, 0x00, 0x00, 0x00,                         /* u32 0 */
        0xde, 0xad, 0xbe, 0xef,                         /* u32 */
        0xff, 0xff, 0xff, 0xff,                         /* u32 max */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* u64 max */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* u64 0 */
    };
    struct buf *b = buf_new(0);
    uint8_t v8 = 0;
    uint32_t v32 = 0;
    uint64_t v64 = 0;

    (void)state;
    assert_non_null(b);
    assert_int_equal(buf_put_u8(b, 0), ERR_OK);
    assert_int_equal(buf_put_u8(b, 0xff), ERR_OK);
    assert_int_equal(buf_put_u32(b, 0), ERR_OK);
    assert_int_equal(buf_put_u32(b, 0xdeadbeef), ERR_OK);
    assert_int_equal(buf_put_u32(b, UINT32_MAX), ERR_OK);
    assert_int_equal(buf_put_u64(b, 0x0102030405060708ULL), ERR_OK);
    assert_int_equal(buf_put_u64(b, UINT64_MAX), ERR_OK);
    assert_int_equal(buf_put_u64(b, 0), ERR_OK);

    /* Big-endian on the wire, nothing else in between. */
    assert_int_equal(buf_avail(b), sizeof(wire));
    assert_memory_equal(buf_ptr(b), wire, sizeof(wire));

    assert_int_equal(buf_get_u8(b, &v8), ERR_OK);
    assert_int_equal(v8, 0);
    assert_int_equal(buf_get_u8(b, &v8), ERR_OK);
    assert_int_equal(v8, 0xff);
    assert_int_equal(buf_get_u32(b, &v32), ERR_OK);
    assert_int_equal(v32, 0);
    assert_int_equal(buf_get_u32(b, &v32), ERR_OK);
    assert_int_equal(v32, 0xdeadbeef);
    assert_int_equal(buf_get_u32(b, &v32), ERR_OK);
    assert_int_equal(v32, UINT32_MAX);
    assert_int_equal(buf_get_u64(b, &v64), ERR_OK);
    assert_true(v64 == 0x0102030405060708ULL);
    assert_int_equal(buf_get_u64(b, &v64), ERR_OK);
    assert_true(v64 == UINT64_MAX);
    v64 = 1;
    assert_int_equal(buf_get_u64(b, &v64), ERR_OK);
    assert_true(v64 == 0);
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);
}

static void test_raw_bytes_round_trip(void **state)
{
    static const uint8_t in[] = {1, 2, 0, 4, 5};
    struct buf *b = buf_new(0);
    uint8_t out[5];

    (void)state;
    assert_non_null(b);
    assert_int_equal(buf_put(b, in, sizeof(in)), ERR_OK);
    assert_int_equal(buf_put(b, NULL, 0), ERR_OK);
    assert_int_equal(buf_avail(b), sizeof(in));
    assert_int_equal(buf_get(b, out, 2), ERR_OK);
    assert_int_equal(buf_avail(b), 3);
    assert_memory_equal(buf_ptr(b), in + 2, 3);
    assert_int_equal(buf_get(b, out + 2, 3), ERR_OK);
    assert_memory_equal(out, in, sizeof(in));
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);
}

static void test_strings_round_trip(void **state)
{
    static const uint8_t bin[] = {'a', 0, 'b', 0xff};
    static const uint8_t wire[] = {
        0, 0, 0, 4, 'a', 0,   'b', 0xff,      /* binary string */
        0, 0, 0, 5, 'h', 'e', 'l', 'l',  'o', /* cstring */
        0, 0, 0, 0,                           /* NULL cstring */
        0, 0, 0, 0,                           /* empty string */
        0, 0, 0, 3, 'x', 'y', 'z',            /* cstring */
        0, 0, 0, 2, 'o', 'k',                 /* cstring */
    };
    struct buf *b = buf_new(0);
    const uint8_t *p = NULL;
    size_t n = 99;
    char *s = NULL;
    char dst[8];

    (void)state;
    assert_non_null(b);
    assert_int_equal(buf_put_string(b, bin, sizeof(bin)), ERR_OK);
    assert_int_equal(buf_put_cstring(b, "hello"), ERR_OK);
    assert_int_equal(buf_put_cstring(b, NULL), ERR_OK);
    assert_int_equal(buf_put_string(b, "", 0), ERR_OK);
    assert_int_equal(buf_put_cstring(b, "xyz"), ERR_OK);
    assert_int_equal(buf_put_cstring(b, "ok"), ERR_OK);
    assert_int_equal(buf_avail(b), sizeof(wire));
    assert_memory_equal(buf_ptr(b), wire, sizeof(wire));

    /* string_ptr: binary-safe, points into the buffer. */
    assert_int_equal(buf_get_string_ptr(b, 4, &p, &n), ERR_OK);
    assert_int_equal(n, sizeof(bin));
    assert_memory_equal(p, bin, sizeof(bin));
    assert_ptr_equal(p + sizeof(bin), buf_ptr(b));

    assert_int_equal(buf_get_cstring(b, 5, &s), ERR_OK);
    assert_string_equal(s, "hello");
    free(s);
    s = NULL;
    /* The empty string is a real, NUL-terminated heap string. */
    assert_int_equal(buf_get_cstring(b, 0, &s), ERR_OK);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);

    /* lenp may be NULL. */
    p = NULL;
    assert_int_equal(buf_get_string_ptr(b, 0, &p, NULL), ERR_OK);
    assert_non_null(p);

    memset(dst, 'Q', sizeof(dst));
    assert_int_equal(buf_get_cstring_into(b, dst, sizeof(dst)), ERR_OK);
    assert_string_equal(dst, "xyz");
    /* Exactly fills dst: two bytes and the NUL. */
    memset(dst, 'Q', sizeof(dst));
    assert_int_equal(buf_get_cstring_into(b, dst, 3), ERR_OK);
    assert_string_equal(dst, "ok");
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);
}

static void test_short_integers_fail_and_reset(void **state)
{
    static const uint8_t seven[] = {1, 2, 3, 4, 5, 6, 7};
    struct buf *b;
    uint8_t v8 = 0xaa;
    uint32_t v32 = 0xaaaaaaaa;
    uint64_t v64 = 0xaaaaaaaaaaaaaaaaULL;
    uint8_t raw[4] = {0xaa, 0xaa, 0xaa, 0xaa};
    static const uint8_t zero[4] = {0};

    (void)state;
    b = buf_new(0);
    assert_non_null(b);
    assert_int_equal(buf_get_u8(b, &v8), ERR_PROTO);
    assert_int_equal(v8, 0);
    buf_free(b);

    b = buf_from(seven, 3);
    assert_int_equal(buf_get_u32(b, &v32), ERR_PROTO);
    assert_int_equal(v32, 0);
    assert_int_equal(buf_avail(b), 3);
    assert_int_equal(buf_get(b, raw, 4), ERR_PROTO);
    assert_memory_equal(raw, zero, 4);
    assert_int_equal(buf_avail(b), 3);
    buf_free(b);

    /* Seven bytes: enough for a u32 but not a u64; nothing is consumed. */
    b = buf_from(seven, sizeof(seven));
    assert_int_equal(buf_get_u64(b, &v64), ERR_PROTO);
    assert_true(v64 == 0);
    assert_int_equal(buf_avail(b), sizeof(seven));
    assert_memory_equal(buf_ptr(b), seven, sizeof(seven));
    assert_int_equal(buf_expect_end(b), ERR_PROTO);
    buf_free(b);
}

static void test_short_strings_fail_and_reset(void **state)
{
    /* A length of 10 with only 5 bytes behind it. */
    static const uint8_t cut[] = {0, 0, 0, 10, 'a', 'b', 'c', 'd', 'e'};
    static const uint8_t hdr[] = {0, 0, 0};
    struct buf *b;
    const uint8_t *p = (const uint8_t *)"x";
    size_t n = 99;
    char *s = sentinel;
    char dst[32];
    size_t i;

    (void)state;
    for (i = 0; i < 2; i++) {
        const uint8_t *in = i == 0 ? hdr : cut;
        size_t inlen = i == 0 ? sizeof(hdr) : sizeof(cut);

        b = buf_from(in, inlen);
        p = (const uint8_t *)"x";
        n = 99;
        assert_int_equal(buf_get_string_ptr(b, 100, &p, &n), ERR_PROTO);
        assert_null(p);
        assert_int_equal(n, 0);
        assert_int_equal(buf_avail(b), inlen);

        s = sentinel;
        assert_int_equal(buf_get_cstring(b, 100, &s), ERR_PROTO);
        assert_null(s);
        assert_int_equal(buf_avail(b), inlen);

        memset(dst, 'Q', sizeof(dst));
        assert_int_equal(buf_get_cstring_into(b, dst, sizeof(dst)), ERR_PROTO);
        assert_int_equal(dst[0], '\0');
        assert_int_equal(buf_avail(b), inlen);
        assert_memory_equal(buf_ptr(b), in, inlen);
        buf_free(b);
    }
}

static void test_string_longer_than_max(void **state)
{
    static const uint8_t ten[] = {0,   0,   0,   10,  '0', '1', '2',
                                  '3', '4', '5', '6', '7', '8', '9'};
    /* A huge length with no body: too long wins over too short. */
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 'a'};
    struct buf *b = buf_from(ten, sizeof(ten));
    const uint8_t *p = (const uint8_t *)"x";
    size_t n = 99;
    char *s = sentinel;
    char dst[10];

    (void)state;
    assert_int_equal(buf_get_string_ptr(b, 9, &p, &n), ERR_TOO_LONG);
    assert_null(p);
    assert_int_equal(n, 0);
    assert_int_equal(buf_avail(b), sizeof(ten));

    assert_int_equal(buf_get_cstring(b, 9, &s), ERR_TOO_LONG);
    assert_null(s);
    assert_int_equal(buf_avail(b), sizeof(ten));

    /* Ten bytes need eleven with the NUL. */
    memset(dst, 'Q', sizeof(dst));
    assert_int_equal(buf_get_cstring_into(b, dst, sizeof(dst)), ERR_TOO_LONG);
    assert_int_equal(dst[0], '\0');
    assert_int_equal(buf_avail(b), sizeof(ten));
    assert_memory_equal(buf_ptr(b), ten, sizeof(ten));

    /* At exactly the maximum it is accepted. */
    assert_int_equal(buf_get_cstring(b, 10, &s), ERR_OK);
    assert_string_equal(s, "0123456789");
    free(s);
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);

    b = buf_from(huge, sizeof(huge));
    assert_int_equal(buf_get_string_ptr(b, 1024, &p, &n), ERR_TOO_LONG);
    assert_int_equal(buf_avail(b), sizeof(huge));
    /* With an unlimited maximum the missing body is reported instead. */
    assert_int_equal(buf_get_string_ptr(b, SIZE_MAX, &p, &n), ERR_PROTO);
    assert_null(p);
    assert_int_equal(buf_avail(b), sizeof(huge));
    buf_free(b);
}

static void test_embedded_nul_refused(void **state)
{
    static const uint8_t in[] = {0, 0, 0, 5, 'a', 'b', 0, 'c', 'd', 0x42};
    /* A trailing NUL counts too: "ab\0" is not the C string "ab". */
    static const uint8_t tail[] = {0, 0, 0, 3, 'a', 'b', 0};
    struct buf *b = buf_from(in, sizeof(in));
    char *s = sentinel;
    char dst[16];
    const uint8_t *p = NULL;
    size_t n = 0;
    uint8_t v8 = 0;

    (void)state;
    assert_int_equal(buf_get_cstring(b, 100, &s), ERR_INVALID);
    assert_null(s);
    /* Refused without consuming: the offset is back at the length. */
    assert_int_equal(buf_avail(b), sizeof(in));

    memset(dst, 'Q', sizeof(dst));
    assert_int_equal(buf_get_cstring_into(b, dst, sizeof(dst)), ERR_INVALID);
    assert_int_equal(dst[0], '\0');
    assert_int_equal(buf_avail(b), sizeof(in));

    /* The binary-safe getter still reads it, and what follows. */
    assert_int_equal(buf_get_string_ptr(b, 100, &p, &n), ERR_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "ab\0cd", 5);
    assert_int_equal(buf_get_u8(b, &v8), ERR_OK);
    assert_int_equal(v8, 0x42);
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);

    b = buf_from(tail, sizeof(tail));
    s = sentinel;
    assert_int_equal(buf_get_cstring(b, 100, &s), ERR_INVALID);
    assert_null(s);
    assert_int_equal(buf_get_cstring_into(b, dst, sizeof(dst)), ERR_INVALID);
    assert_int_equal(buf_avail(b), sizeof(tail));
    buf_free(b);
}

static void test_cstring_into_zero_size(void **state)
{
    static const uint8_t in[] = {0, 0, 0, 0};
    struct buf *b = buf_from(in, sizeof(in));
    char dst[1] = {'Q'};

    (void)state;
    assert_int_equal(buf_get_cstring_into(b, dst, 0), ERR_INTERNAL);
    assert_int_equal(buf_avail(b), sizeof(in));
    /* Size one holds only the empty string. */
    assert_int_equal(buf_get_cstring_into(b, dst, 1), ERR_OK);
    assert_int_equal(dst[0], '\0');
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);
}

static void test_expect_end(void **state)
{
    static const uint8_t in[] = {0, 0, 0, 7, 0x99};
    struct buf *b = buf_from(in, sizeof(in));
    uint32_t v32 = 0;
    uint8_t v8 = 0;

    (void)state;
    assert_int_equal(buf_expect_end(b), ERR_PROTO);
    assert_int_equal(buf_get_u32(b, &v32), ERR_OK);
    assert_int_equal(v32, 7);
    /* One trailing byte is enough to refuse the message. */
    assert_int_equal(buf_expect_end(b), ERR_PROTO);
    assert_int_equal(buf_get_u8(b, &v8), ERR_OK);
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);
}

/* Checks a failed put left b exactly as snap describes it. */
static void assert_unchanged(const struct buf *b, const uint8_t *snap, size_t n)
{
    assert_int_equal(buf_avail(b), n);
    assert_memory_equal(buf_ptr(b), snap, n);
}

static void test_max_is_a_ceiling(void **state)
{
    static const uint8_t twelve[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    struct buf *b = buf_new(16);
    uint8_t *d = sentinel_bytes;

    (void)state;
    assert_non_null(b);
    assert_int_equal(buf_put(b, twelve, sizeof(twelve)), ERR_OK);

    /* Each of these would end past 16 bytes; none may leave a partial
     * value behind (a u64's first half, a string's length). */
    assert_int_equal(buf_put_u64(b, 0x1122334455667788ULL), ERR_TOO_LONG);
    assert_unchanged(b, twelve, 12);
    assert_int_equal(buf_put_string(b, "abcd", 4), ERR_TOO_LONG);
    assert_unchanged(b, twelve, 12);
    assert_int_equal(buf_put_cstring(b, "a"), ERR_TOO_LONG);
    assert_unchanged(b, twelve, 12);
    assert_int_equal(buf_put(b, twelve, 5), ERR_TOO_LONG);
    assert_unchanged(b, twelve, 12);
    assert_int_equal(buf_reserve(b, 5, &d), ERR_TOO_LONG);
    assert_null(d);
    assert_unchanged(b, twelve, 12);
    assert_int_equal(buf_reserve(b, SIZE_MAX, &d), ERR_TOO_LONG);
    assert_unchanged(b, twelve, 12);

    /* Up to the ceiling exactly is fine; one more byte is not. */
    assert_int_equal(buf_put_string(b, NULL, 0), ERR_OK);
    assert_int_equal(buf_avail(b), 16);
    assert_int_equal(buf_put_u8(b, 0), ERR_TOO_LONG);
    assert_int_equal(buf_avail(b), 16);
    assert_true(b->len <= b->max && b->cap <= b->max);
    buf_free(b);

    /* A string whose length fits but whose body does not. */
    b = buf_new(8);
    assert_non_null(b);
    assert_int_equal(buf_put_cstring(b, "abcde"), ERR_TOO_LONG);
    assert_int_equal(buf_avail(b), 0);
    assert_int_equal(buf_put_u64(b, 1), ERR_OK);
    assert_int_equal(buf_put_u32(b, 1), ERR_TOO_LONG);
    assert_int_equal(buf_avail(b), 8);
    buf_free(b);
}

static void test_compaction_after_consume(void **state)
{
    uint8_t in[200], more[100], out[150];
    struct buf *b = buf_new(0);
    size_t cap, i;

    (void)state;
    for (i = 0; i < sizeof(in); i++) {
        in[i] = (uint8_t)i;
    }
    for (i = 0; i < sizeof(more); i++) {
        more[i] = (uint8_t)(0x80 + i);
    }
    assert_non_null(b);
    assert_int_equal(buf_put(b, in, sizeof(in)), ERR_OK);
    cap = b->cap;
    assert_true(cap >= sizeof(in) && cap < sizeof(in) + sizeof(more));
    assert_int_equal(buf_consume(b, 150), ERR_OK);
    assert_int_equal(buf_consume(b, 51), ERR_PROTO);

    /* 50 live bytes + 100 new fit in the old allocation once the 150
     * dead bytes at the front are dropped: no growth. */
    assert_int_equal(buf_put(b, more, sizeof(more)), ERR_OK);
    assert_int_equal(b->cap, cap);
    assert_int_equal(b->off, 0);
    assert_int_equal(buf_avail(b), 150);
    assert_int_equal(buf_get(b, out, 150), ERR_OK);
    assert_memory_equal(out, in + 150, 50);
    assert_memory_equal(out + 50, more, sizeof(more));
    assert_int_equal(buf_expect_end(b), ERR_OK);
    buf_free(b);
}

static void test_consumed_bytes_do_not_count_against_max(void **state)
{
    static const uint8_t in[16] = {0, 1, 2,  3,  4,  5,  6,  7,
                                   8, 9, 10, 11, 12, 13, 14, 15};
    struct buf *b = buf_new(16);
    uint8_t out[8];

    (void)state;
    assert_non_null(b);
    assert_int_equal(buf_put(b, in, sizeof(in)), ERR_OK);
    assert_int_equal(buf_get(b, out, 8), ERR_OK);
    /* Only 8 bytes are live: 8 more fit under the 16-byte ceiling. */
    assert_int_equal(buf_put(b, in, 8), ERR_OK);
    assert_int_equal(buf_avail(b), 16);
    assert_memory_equal(buf_ptr(b), in + 8, 8);
    assert_memory_equal(buf_ptr(b) + 8, in, 8);
    assert_int_equal(buf_put_u8(b, 0), ERR_TOO_LONG);
    assert_true(b->len <= b->max && b->cap <= b->max);
    buf_free(b);
}

static void test_reset_and_drain(void **state)
{
    static const uint8_t in[] = {1, 2, 3, 4};
    struct buf *b = buf_from(in, sizeof(in));
    uint32_t v32 = 0;

    (void)state;
    buf_reset(b);
    assert_int_equal(buf_avail(b), 0);
    assert_int_equal(buf_get_u32(b, &v32), ERR_PROTO);
    assert_int_equal(buf_put(b, in, sizeof(in)), ERR_OK);
    assert_int_equal(buf_get_u32(b, &v32), ERR_OK);
    assert_int_equal(v32, 0x01020304);
    /* Fully drained: the next put starts at the front again. */
    assert_int_equal(b->off, 0);
    assert_int_equal(b->len, 0);
    buf_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_and_free),
        cmocka_unit_test(test_integers_round_trip),
        cmocka_unit_test(test_raw_bytes_round_trip),
        cmocka_unit_test(test_strings_round_trip),
        cmocka_unit_test(test_short_integers_fail_and_reset),
        cmocka_unit_test(test_short_strings_fail_and_reset),
        cmocka_unit_test(test_string_longer_than_max),
        cmocka_unit_test(test_embedded_nul_refused),
        cmocka_unit_test(test_cstring_into_zero_size),
        cmocka_unit_test(test_expect_end),
        cmocka_unit_test(test_max_is_a_ceiling),
        cmocka_unit_test(test_compaction_after_consume),
        cmocka_unit_test(test_consumed_bytes_do_not_count_against_max),
        cmocka_unit_test(test_reset_and_drain),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
