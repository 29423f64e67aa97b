/*
 * Unit tests for src/auth/lockout.c: when a key locks and unlocks, that
 * the window slides, that a success forgets failures, and that a flood of
 * fresh keys neither grows memory nor lifts an existing lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>

#include <cmocka.h>

#include "auth/lockout.h"

static void test_locks_after_n_within_window(void **state)
{
    struct lockout *l = lockout_new(3, 60, 300, 16);

    (void)state;
    assert_non_null(l);
    assert_false(lockout_is_locked(l, "user:alice", 0));
    assert_false(lockout_fail(l, "user:alice", 0));
    assert_false(lockout_fail(l, "user:alice", 30));
    assert_false(lockout_is_locked(l, "user:alice", 30));
    /* The third failure, 59 s after the first: inside the window. */
    assert_true(lockout_fail(l, "user:alice", 59));
    assert_true(lockout_is_locked(l, "user:alice", 59));
    assert_true(lockout_is_locked(l, "user:alice", 200));
    /* Other keys are not affected. */
    assert_false(lockout_is_locked(l, "user:bob", 59));
    assert_false(lockout_is_locked(l, "addr:192.0.2.7", 59));
    lockout_free(l);
}

static void test_spread_beyond_window_never_locks(void **state)
{
    struct lockout *l = lockout_new(3, 60, 300, 16);
    int64_t t;

    (void)state;
    assert_non_null(l);
    /* One failure every 30 s: any three span 60 s, never less. A window
     * that restarted instead of sliding would behave the same here, so
     * the next test checks the sliding part. */
    for (t = 0; t <= 600; t += 30) {
        assert_false(lockout_fail(l, "user:alice", t));
        assert_false(lockout_is_locked(l, "user:alice", t));
    }
    lockout_free(l);
}

static void test_window_slides(void **state)
{
    struct lockout *l = lockout_new(3, 60, 300, 16);

    (void)state;
    assert_non_null(l);
    /* Failures at 0, 50, 100, 109: 0 has left the window by 109, but 50,
     * 100 and 109 lie within 60 s. A window fixed at 0..60 and restarted
     * at 100 would have counted only two. */
    assert_false(lockout_fail(l, "user:alice", 0));
    assert_false(lockout_fail(l, "user:alice", 50));
    assert_false(lockout_fail(l, "user:alice", 100));
    assert_true(lockout_fail(l, "user:alice", 109));
    lockout_free(l);
}

static void test_unlocks_after_lockout_seconds(void **state)
{
    struct lockout *l = lockout_new(2, 60, 100, 16);

    (void)state;
    assert_non_null(l);
    assert_false(lockout_fail(l, "user:alice", 10));
    assert_true(lockout_fail(l, "user:alice", 11));
    assert_true(lockout_is_locked(l, "user:alice", 110));
    /* Failures during the lock neither extend it nor count later. */
    assert_false(lockout_fail(l, "user:alice", 50));
    assert_false(lockout_fail(l, "user:alice", 60));
    assert_false(lockout_is_locked(l, "user:alice", 111));
    /* A fresh count starts after the lock. */
    assert_false(lockout_fail(l, "user:alice", 112));
    assert_true(lockout_fail(l, "user:alice", 113));
    assert_true(lockout_is_locked(l, "user:alice", 113));
    lockout_free(l);
}

static void test_zero_lockout_seconds_never_locks(void **state)
{
    struct lockout *l = lockout_new(2, 60, 0, 16);
    int i;

    (void)state;
    assert_non_null(l);
    for (i = 0; i < 100; i++) {
        assert_false(lockout_fail(l, "user:alice", i));
        assert_false(lockout_is_locked(l, "user:alice", i));
    }
    lockout_free(l);
}

static void test_success_resets(void **state)
{
    struct lockout *l = lockout_new(3, 60, 300, 16);

    (void)state;
    assert_non_null(l);
    assert_false(lockout_fail(l, "user:alice", 0));
    assert_false(lockout_fail(l, "user:alice", 1));
    lockout_success(l, "user:alice");
    assert_false(lockout_fail(l, "user:alice", 2));
    assert_false(lockout_fail(l, "user:alice", 3));
    assert_false(lockout_is_locked(l, "user:alice", 3));
    assert_true(lockout_fail(l, "user:alice", 4));
    /* A success does not lift a lock that is in force. */
    lockout_success(l, "user:alice");
    assert_true(lockout_is_locked(l, "user:alice", 5));
    lockout_free(l);
}

static void test_evicts_oldest_when_full(void **state)
{
    struct lockout *l = lockout_new(3, 100, 300, 2);

    (void)state;
    assert_non_null(l);
    assert_false(lockout_fail(l, "a", 0));
    assert_false(lockout_fail(l, "b", 1));
    assert_false(lockout_fail(l, "c", 2)); /* full: evicts a, the oldest */
    assert_false(lockout_fail(l, "b", 3));
    assert_false(lockout_fail(l, "a", 4)); /* evicts c */
    /* a's first failure was forgotten: this is its second, not third. */
    assert_false(lockout_fail(l, "a", 5));
    /* b was kept: its third failure locks. */
    assert_true(lockout_fail(l, "b", 6));
    lockout_free(l);
}

static void test_flood_keeps_memory_bounded_and_lock(void **state)
{
    struct lockout *l = lockout_new(2, 60, 300, 64);
    struct mallinfo2 before, after;
    char key[32];
    int i;

    (void)state;
    assert_non_null(l);
    assert_false(lockout_fail(l, "user:alice", 0));
    assert_true(lockout_fail(l, "user:alice", 1));

    before = mallinfo2();
    for (i = 0; i < 100000; i++) {
        snprintf(key, sizeof(key), "user:x%d", i);
        lockout_fail(l, key, 2 + i / 1000);
    }
    after = mallinfo2();
    /* No allocation per key: the table was sized once. */
    assert_int_equal(after.uordblks, before.uordblks);
    /* Fresh names do not push the lock out. */
    assert_true(lockout_is_locked(l, "user:alice", 100));
    /* And the table still tracks new keys. */
    assert_false(lockout_fail(l, "user:carol", 200));
    assert_true(lockout_fail(l, "user:carol", 201));
    assert_true(lockout_is_locked(l, "user:carol", 201));
    lockout_free(l);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(lockout_new(0, 60, 300, 16));
    assert_null(lockout_new(3, 0, 300, 16));
    assert_null(lockout_new(3, 60, -1, 16));
    assert_null(lockout_new(3, 60, 300, 0));
    lockout_free(NULL);
    assert_false(lockout_is_locked(NULL, "k", 0));
    assert_false(lockout_fail(NULL, "k", 0));
    lockout_success(NULL, "k");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locks_after_n_within_window),
        cmocka_unit_test(test_spread_beyond_window_never_locks),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_unlocks_after_lockout_seconds),
        cmocka_unit_test(test_zero_lockout_seconds_never_locks),
        cmocka_unit_test(test_success_resets),
        cmocka_unit_test(test_evicts_oldest_when_full),
        cmocka_unit_test(test_flood_keeps_memory_bounded_and_lock),
        cmocka_unit_test(test_bad_arguments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
