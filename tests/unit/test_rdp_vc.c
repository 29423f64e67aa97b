/*
 * Channel message reassembly (src/rdpproxy/rdp_vc.c): messages come
 * whole from their chunks; oversized ones, ones whose chunks do not add
 * up and ones over the session's budget are dropped; and however a
 * client and a target start messages on every channel and never finish
 * them, a session holds at most its budget.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "rdpproxy/rdp_vc.h"

#define MIB (1024u * 1024)

/* One chunk, its verdict asserted. */
static void chunk(struct rdp_vc_buf *a, struct rdp_vc_budget *b,
                  const char *data, uint32_t flags, size_t total,
                  enum rdp_vc_verdict want)
{
    enum rdp_vc_verdict v;

    assert_int_equal(rdp_vc_chunk(a, b, (const uint8_t *)data, strlen(data),
                                  flags, total, &v),
                     ERR_OK);
    assert_int_equal(v, want);
}

static void test_reassembly(void **state)
{
    static const struct {
        const char *data;
        uint32_t flags;
        size_t total;
        enum rdp_vc_verdict want;
    } steps[] = {
        /* one chunk */
        {"hello", RDP_VC_FIRST | RDP_VC_LAST, 5, RDP_VC_WHOLE},
        /* three */
        {"ab", RDP_VC_FIRST, 6, RDP_VC_MORE},
        {"cd", 0, 6, RDP_VC_MORE},
        {"ef", RDP_VC_LAST, 6, RDP_VC_WHOLE},
        /* more than announced */
        {"abcd", RDP_VC_FIRST, 5, RDP_VC_MORE},
        {"efgh", RDP_VC_LAST, 5, RDP_VC_MISFIT},
        /* fewer */
        {"ab", RDP_VC_FIRST, 5, RDP_VC_MORE},
        {"c", RDP_VC_LAST, 5, RDP_VC_MISFIT},
        /* the rest of a dropped message is skipped */
        {"xyz", RDP_VC_LAST, 5, RDP_VC_MORE},
        /* zero, and over the maximum */
        {"", RDP_VC_FIRST | RDP_VC_LAST, 0, RDP_VC_TOO_BIG},
        {"a", RDP_VC_FIRST, RDP_VC_MSG_MAX + 1, RDP_VC_TOO_BIG},
        {"b", RDP_VC_LAST, RDP_VC_MSG_MAX + 1, RDP_VC_MORE},
        /* a new first chunk abandons one under way */
        {"ab", RDP_VC_FIRST, 4, RDP_VC_MORE},
        {"ok", RDP_VC_FIRST | RDP_VC_LAST, 2, RDP_VC_WHOLE},
    };
    static const char *const whole[] = {"hello", "abcdef", "ok"};
    struct rdp_vc_budget b = {0, RDP_VC_BUDGET};
    struct rdp_vc_buf a = {0};
    size_t w = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        chunk(&a, &b, steps[i].data, steps[i].flags, steps[i].total,
              steps[i].want);
        if (steps[i].want == RDP_VC_WHOLE) {
            assert_int_equal(a.len, strlen(whole[w]));
            assert_memory_equal(a.msg, whole[w], a.len);
            w++;
            rdp_vc_done(&a, &b);
        }
        assert_int_equal(b.held, a.cap);
    }
    assert_int_equal(w, 3);
    rdp_vc_free(&a, &b);
    assert_int_equal(b.held, 0);
}

/* Three channels each way, every one a largest message started and
 * never finished (about 200 MiB asked for): the session holds at most
 * its budget, the messages over it are dropped whole (their later
 * chunks skipped), and the room comes back when one is done. */
static void test_budget_bounds_a_session(void **state)
{
    struct rdp_vc_budget b = {0, RDP_VC_BUDGET};
    struct rdp_vc_buf a[6], out = {0};
    enum rdp_vc_verdict v;
    int kept = 0, over = 0;
    uint8_t *big;

    (void)state;
    memset(a, 0, sizeof(a));
    for (int i = 0; i < 6; i++) {
        assert_int_equal(rdp_vc_chunk(&a[i], &b, (const uint8_t *)"x", 1,
                                      RDP_VC_FIRST, RDP_VC_MSG_MAX, &v),
                         ERR_OK);
        kept += v == RDP_VC_MORE;
        over += v == RDP_VC_OVER_BUDGET;
        assert_true(b.held <= RDP_VC_BUDGET);
    }
    assert_int_equal(kept, 2);
    assert_int_equal(over, 4);
    assert_int_equal(b.held, 2 * (size_t)RDP_VC_MSG_MAX);
    /* a dropped one's next chunks are skipped, not kept */
    chunk(&a[5], &b, "more", 0, 0, RDP_VC_MORE);
    assert_int_equal(a[5].len, 0);
    /* the filters' output for a largest message: over the budget now */
    assert_int_equal(rdp_vc_reserve(&out, &b, RDP_VC_MSG_MAX), ERR_TOO_LONG);
    assert_int_equal(out.cap, 0);
    /* a small message still fits */
    chunk(&a[2], &b, "tiny", RDP_VC_FIRST | RDP_VC_LAST, 4, RDP_VC_WHOLE);
    rdp_vc_done(&a[2], &b);
    /* the first finishes; its filtered copy does not fit beside the
     * second, still held (the relay drops it then) */
    big = calloc(1, RDP_VC_MSG_MAX - 1);
    assert_non_null(big);
    assert_int_equal(
        rdp_vc_chunk(&a[0], &b, big, RDP_VC_MSG_MAX - 1, RDP_VC_LAST, 0, &v),
        ERR_OK);
    free(big);
    assert_int_equal(v, RDP_VC_WHOLE);
    assert_int_equal(rdp_vc_reserve(&out, &b, RDP_VC_MSG_MAX), ERR_TOO_LONG);
    /* done with: a large buffer is given back */
    rdp_vc_done(&a[0], &b);
    assert_int_equal(a[0].cap, 0);
    /* the second abandoned for a small message: its room comes back */
    chunk(&a[1], &b, "ok", RDP_VC_FIRST | RDP_VC_LAST, 2, RDP_VC_WHOLE);
    rdp_vc_done(&a[1], &b);
    assert_true(b.held < RDP_VC_KEEP);
    /* now a largest message and its filtered copy fit */
    chunk(&a[3], &b, "x", RDP_VC_FIRST, RDP_VC_MSG_MAX, RDP_VC_MORE);
    assert_int_equal(rdp_vc_reserve(&out, &b, RDP_VC_MSG_MAX), ERR_OK);
    assert_true(b.held <= RDP_VC_BUDGET);
    rdp_vc_done(&out, &b);
    assert_int_equal(out.cap, 0);
    for (int i = 0; i < 6; i++) {
        rdp_vc_free(&a[i], &b);
    }
    assert_int_equal(b.held, 0);
}

static void test_bad_arguments(void **state)
{
    struct rdp_vc_budget b = {0, 100};
    struct rdp_vc_buf a = {0};
    enum rdp_vc_verdict v;

    (void)state;
    assert_int_equal(rdp_vc_chunk(NULL, &b, NULL, 0, 0, 0, &v), ERR_INVALID);
    assert_int_equal(rdp_vc_chunk(&a, &b, NULL, 1, 0, 0, &v), ERR_INVALID);
    assert_int_equal(rdp_vc_chunk(&a, &b, NULL, 0, RDP_VC_FIRST, 1, NULL),
                     ERR_INVALID);
    /* a budget smaller than one message: dropped, nothing held */
    chunk(&a, &b, "x", RDP_VC_FIRST, 101, RDP_VC_OVER_BUDGET);
    assert_int_equal(b.held, 0);
    rdp_vc_free(NULL, &b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reassembly),
        cmocka_unit_test(test_budget_bounds_a_session),
        cmocka_unit_test(test_bad_arguments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
