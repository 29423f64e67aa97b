/*
 * Unit tests for src/auth/password.c: argon2id hashing and verification,
 * the length limit, the unknown-user path that must still cost one
 * argon2id run, generated passwords, and the worker pool that keeps
 * argon2id off the event loop (bounded, answered once, cancellable).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <sodium.h>

#include "auth/password.h"
#include "common/err.h"
#include "common/loop.h"
#include "store/store.h"

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_hash_and_verify(void **state)
{
    char hash[STORE_HASH_MAX + 1];
    char hash2[STORE_HASH_MAX + 1];

    (void)state;
    assert_int_equal(password_hash("correct horse", hash, sizeof(hash)),
                     ERR_OK);
    assert_non_null(strstr(hash, "$argon2id$"));
    assert_non_null(strstr(hash, "m=65536,t=2,p=1"));
    assert_true(strlen(hash) < sizeof(hash));
    assert_int_equal(password_verify(hash, "correct horse"), ERR_OK);
    assert_int_equal(password_verify(hash, "correct horsE"), ERR_AUTH);
    assert_int_equal(password_verify(hash, "correct horse "), ERR_AUTH);
    assert_int_equal(password_verify(hash, ""), ERR_AUTH);
    assert_int_equal(password_verify(hash, NULL), ERR_AUTH);

    /* A fresh salt every time. */
    assert_int_equal(password_hash("correct horse", hash2, sizeof(hash2)),
                     ERR_OK);
    assert_string_not_equal(hash, hash2);
    assert_int_equal(password_verify(hash2, "correct horse"), ERR_OK);
}

/* [auth] password_memory_kib / password_passes: new hashes carry the set
 * cost, hashes of another cost still verify, and the unknown-user dummy
 * is made again at the new cost. */
static void test_cost_is_set(void **state)
{
    char old[STORE_HASH_MAX + 1], hash[STORE_HASH_MAX + 1];

    (void)state;
    assert_int_equal(password_hash("before", old, sizeof(old)), ERR_OK);
    assert_int_equal(password_verify(NULL, "x"), ERR_AUTH); /* a dummy */
    password_set_cost(3, 12288);
    assert_int_equal(password_hash("after", hash, sizeof(hash)), ERR_OK);
    assert_non_null(strstr(hash, "$m=12288,t=3,p=1$"));
    assert_int_equal(password_verify(hash, "after"), ERR_OK);
    assert_int_equal(password_verify(hash, "before"), ERR_AUTH);
    assert_int_equal(password_verify(old, "before"), ERR_OK);
    assert_int_equal(password_verify(NULL, "after"), ERR_AUTH);
    password_set_cost(crypto_pwhash_OPSLIMIT_INTERACTIVE,
                      crypto_pwhash_MEMLIMIT_INTERACTIVE / 1024);
    assert_int_equal(password_hash("again", hash, sizeof(hash)), ERR_OK);
    assert_non_null(strstr(hash, "$m=65536,t=2,p=1$"));
}

static void test_hash_rejects_bad_arguments(void **state)
{
    char hash[STORE_HASH_MAX + 1];
    char small[64];

    (void)state;
    assert_int_equal(password_hash("", hash, sizeof(hash)), ERR_INVALID);
    assert_int_equal(password_hash(NULL, hash, sizeof(hash)), ERR_INVALID);
    assert_int_equal(password_hash("pw", small, sizeof(small)), ERR_INVALID);
}

static void test_empty_hash_never_matches(void **state)
{
    (void)state;
    /* Unknown user or no password set: always refused, for any input. */
    assert_int_equal(password_verify(NULL, "anything"), ERR_AUTH);
    assert_int_equal(password_verify("", "anything"), ERR_AUTH);
    assert_int_equal(password_verify("", ""), ERR_AUTH);
    assert_int_equal(password_verify(NULL, NULL), ERR_AUTH);
    /* Garbage in the hash column does not match either. */
    assert_int_equal(password_verify("$argon2id$garbage", "x"), ERR_AUTH);
}

static void test_over_long(void **state)
{
    char hash[STORE_HASH_MAX + 1];
    char *pw = malloc(PASSWORD_MAX + 2);

    (void)state;
    assert_non_null(pw);
    memset(pw, 'a', PASSWORD_MAX + 1);
    pw[PASSWORD_MAX + 1] = '\0';
    assert_int_equal(password_hash(pw, hash, sizeof(hash)), ERR_TOO_LONG);

    /* Exactly PASSWORD_MAX is fine, one more is refused at verify. */
    pw[PASSWORD_MAX] = '\0';
    assert_int_equal(password_hash(pw, hash, sizeof(hash)), ERR_OK);
    assert_int_equal(password_verify(hash, pw), ERR_OK);
    pw[PASSWORD_MAX] = 'a';
    assert_int_equal(password_verify(hash, pw), ERR_AUTH);
    free(pw);
}

/* An unknown user must cost about as much as a wrong password, or the
 * answer time says which user names exist. The threshold is loose (a
 * quarter) so a busy machine does not make this flaky; skipping argon2id
 * would be thousands of times faster. */
static void test_unknown_user_costs_a_verification(void **state)
{
    char hash[STORE_HASH_MAX + 1];
    double t0, real, first, later;

    (void)state;
    assert_int_equal(password_hash("secret", hash, sizeof(hash)), ERR_OK);
    t0 = now_seconds();
    assert_int_equal(password_verify(hash, "wrong"), ERR_AUTH);
    real = now_seconds() - t0;

    t0 = now_seconds();
    assert_int_equal(password_verify(NULL, "wrong"), ERR_AUTH);
    first = now_seconds() - t0;
    t0 = now_seconds();
    assert_int_equal(password_verify("", "wrong"), ERR_AUTH);
    later = now_seconds() - t0;

    assert_true(first > real / 4);
    assert_true(later > real / 4);
}

static void test_generate(void **state)
{
    char a[33], b[33];
    size_t i;

    (void)state;
    memset(a, 'X', sizeof(a));
    password_generate(a, 32);
    assert_int_equal(strlen(a), 32);
    for (i = 0; i < 32; i++) {
        assert_non_null(strchr("23456789abcdefghjkmnpqrstuvwxyz"
                               "ABCDEFGHJKLMNPQRSTUVWXYZ",
                               a[i]));
        assert_null(strchr("0O1lIio", a[i]));
    }
    password_generate(b, 32);
    assert_string_not_equal(a, b);
    password_generate(b, 0);
    assert_string_equal(b, "");
}

/* --- the worker pool --- */

struct pool_fx {
    struct loop *l;
    struct password_pool *p;
    int results[16]; /* by tag; -1 until done */
    int order[16], ndone, want;
    unsigned max_running, max_waiting;
    double last_tick, max_gap;
    bool ticking;
};

static void pool_fx_sample(struct pool_fx *fx)
{
    unsigned running = 0, waiting = 0;

    password_pool_load(fx->p, &running, &waiting);
    fx->max_running = running > fx->max_running ? running : fx->max_running;
    fx->max_waiting = waiting > fx->max_waiting ? waiting : fx->max_waiting;
}

static void pool_fx_done(void *ctx, uint64_t tag, int result,
                         const struct password_rehash *rh)
{
    struct pool_fx *fx = ctx;

    assert_true(tag < 16);
    assert_int_equal(fx->results[tag], -1); /* exactly once */
    fx->results[tag] = result;
    fx->order[fx->ndone++] = (int)tag;
    pool_fx_sample(fx);
    if (fx->ndone == fx->want) {
        fx->ticking = false;
        loop_stop(fx->l);
    }
}

/* A 5 ms timer: the loop's thread must stay free while hashes run. */
static void pool_fx_tick(struct loop *l, void *arg)
{
    struct pool_fx *fx = arg;
    double now = now_seconds();

    if (now - fx->last_tick > fx->max_gap) {
        fx->max_gap = now - fx->last_tick;
    }
    fx->last_tick = now;
    pool_fx_sample(fx);
    if (fx->ticking) {
        assert_true(loop_add_timer(l, 5, pool_fx_tick, fx) != 0);
    }
}

/* At most max_running at once, max_waiting queued in order, the rest
 * refused at once; every accepted request answered exactly once with its
 * own result; the loop keeps running meanwhile. */
static void test_pool_bounds_and_answers(void **state)
{
    struct pool_fx fx;
    char hash[STORE_HASH_MAX + 1];
    double t0, one;
    int i, r;

    (void)state;
    memset(&fx, 0, sizeof(fx));
    for (i = 0; i < 16; i++) {
        fx.results[i] = -1;
    }
    assert_int_equal(password_hash("right", hash, sizeof(hash)), ERR_OK);
    t0 = now_seconds();
    assert_int_equal(password_verify(hash, "wrong"), ERR_AUTH);
    one = now_seconds() - t0;

    assert_non_null(fx.l = loop_new());
    assert_null(password_pool_new(fx.l, 0, 3));
    assert_non_null(fx.p = password_pool_new(fx.l, 2, 3));
    for (i = 0; i < 8; i++) {
        /* even tags right, odd wrong; tag 6 an unknown user */
        r = password_verify_async(fx.p, i == 6 ? NULL : hash,
                                  i % 2 == 0 ? "right" : "wrong", pool_fx_done,
                                  &fx, (uint64_t)i);
        assert_int_equal(r, i < 5 ? ERR_OK : ERR_DENIED);
    }
    fx.want = 5;
    fx.ticking = true;
    fx.last_tick = now_seconds();
    assert_true(loop_add_timer(fx.l, 5, pool_fx_tick, &fx) != 0);
    assert_int_equal(loop_run(fx.l), ERR_OK);

    assert_int_equal(fx.ndone, 5);
    for (i = 0; i < 5; i++) {
        assert_int_equal(fx.results[i], i % 2 == 0 ? ERR_OK : ERR_AUTH);
    }
    for (i = 5; i < 8; i++) {
        assert_int_equal(fx.results[i], -1); /* refused: never called */
    }
    assert_true(fx.max_running <= 2);
    assert_true(fx.max_waiting <= 3);
    /* The waiting ones started in order: 2, 3, 4 finish after 0 and 1
     * started; the last to finish is one of the last two started. */
    assert_true(fx.order[4] == 3 || fx.order[4] == 4);
    /* Five argon2id runs took place while 5 ms ticks went on: no gap near
     * the length of one run (loose: the machine may be busy). */
    assert_true(fx.max_gap < one * 0.75 || fx.max_gap < 0.02);
    password_pool_free(fx.p);
    loop_free(fx.l);
}

struct rehash_fx {
    struct loop *l;
    int n, results[3];
    char new_hash[3][STORE_HASH_MAX + 1]; /* "" when no rehash came */
    char old_hash[3][STORE_HASH_MAX + 1];
};

static void rehash_done(void *ctx, uint64_t tag, int result,
                        const struct password_rehash *rh)
{
    struct rehash_fx *fx = ctx;

    fx->results[tag] = result;
    if (rh != NULL) {
        snprintf(fx->old_hash[tag], sizeof(fx->old_hash[tag]), "%s",
                 rh->old_hash);
        snprintf(fx->new_hash[tag], sizeof(fx->new_hash[tag]), "%s",
                 rh->new_hash);
    }
    if (++fx->n == 3) {
        loop_stop(fx->l);
    }
}

/* A right password whose hash has another cost than the one set now comes
 * back with a new hash of it at the set cost (and the old one, for the
 * store's compare); a wrong one, or one at the set cost, with none. */
static void test_pool_rehashes_at_the_set_cost(void **state)
{
    struct rehash_fx fx;
    struct password_pool *p;
    char old[STORE_HASH_MAX + 1], now[STORE_HASH_MAX + 1];

    (void)state;
    memset(&fx, 0, sizeof(fx));
    assert_int_equal(password_hash("pw", old, sizeof(old)), ERR_OK);
    password_set_cost(2, 19456);
    assert_int_equal(password_hash("pw", now, sizeof(now)), ERR_OK);
    assert_non_null(fx.l = loop_new());
    assert_non_null(p = password_pool_new(fx.l, 1, 4));
    assert_int_equal(password_verify_async(p, old, "pw", rehash_done, &fx, 0),
                     ERR_OK);
    assert_int_equal(
        password_verify_async(p, old, "wrong", rehash_done, &fx, 1), ERR_OK);
    assert_int_equal(password_verify_async(p, now, "pw", rehash_done, &fx, 2),
                     ERR_OK);
    assert_int_equal(loop_run(fx.l), ERR_OK);
    assert_int_equal(fx.results[0], ERR_OK);
    assert_string_equal(fx.old_hash[0], old);
    assert_non_null(strstr(fx.new_hash[0], "$m=19456,t=2,p=1$"));
    assert_int_equal(password_verify(fx.new_hash[0], "pw"), ERR_OK);
    assert_int_equal(fx.results[1], ERR_AUTH);
    assert_string_equal(fx.new_hash[1], "");
    assert_int_equal(fx.results[2], ERR_OK);
    assert_string_equal(fx.new_hash[2], "");
    password_pool_free(p);
    loop_free(fx.l);
    password_set_cost(crypto_pwhash_OPSLIMIT_INTERACTIVE,
                      crypto_pwhash_MEMLIMIT_INTERACTIVE / 1024);
}

static void pool_never(void *ctx, uint64_t tag, int result,
                       const struct password_rehash *rh)
{
    (void)rh;
    (void)ctx;
    (void)tag;
    (void)result;
    fail_msg("done called after password_pool_free");
}

/* Freed with requests running and waiting: none is answered, nothing
 * leaks (loop_free waits for the running ones; ASan checks). */
static void test_pool_free_while_busy(void **state)
{
    struct loop *l = loop_new();
    struct password_pool *p;
    char hash[STORE_HASH_MAX + 1];

    (void)state;
    assert_non_null(l);
    assert_int_equal(password_hash("right", hash, sizeof(hash)), ERR_OK);
    assert_non_null(p = password_pool_new(l, 1, 4));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(
            password_verify_async(p, hash, "right", pool_never, NULL, 1),
            ERR_OK);
    }
    password_pool_free(p);
    loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, so it sees the call that makes the dummy hash. */
        cmocka_unit_test(test_unknown_user_costs_a_verification),
        cmocka_unit_test(test_hash_and_verify),
        cmocka_unit_test(test_hash_rejects_bad_arguments),
        cmocka_unit_test(test_cost_is_set),
        cmocka_unit_test(test_empty_hash_never_matches),
        cmocka_unit_test(test_over_long),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_pool_bounds_and_answers),
        cmocka_unit_test(test_pool_free_while_busy),
        cmocka_unit_test(test_pool_rehashes_at_the_set_cost),
    };

    if (sodium_init() < 0) {
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
