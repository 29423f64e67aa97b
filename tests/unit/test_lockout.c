/*
 * Unit tests for src/auth/lockout.c: when a key locks and unlocks, that
 * the window slides, that a success forgets failures, that a flood of
 * fresh keys neither grows memory nor lifts an existing lock, and the keys
 * callers count under (one per user and factor whatever the spelling).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
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

/* A failure counted in advance (the RDP proxy's NTLM key) is taken back
 * when the attempt succeeds; a lock is never lifted that way. */
static void test_forgive_takes_back_one(void **state)
{
    struct lockout *l = lockout_new(3, 60, 300, 16);

    (void)state;
    assert_non_null(l);
    assert_false(lockout_fail(l, "addr:192.0.2.7", 0));
    assert_false(lockout_fail(l, "addr:192.0.2.7", 1));
    lockout_forgive(l, "addr:192.0.2.7");
    assert_false(lockout_fail(l, "addr:192.0.2.7", 2));
    assert_true(lockout_fail(l, "addr:192.0.2.7", 3));
    lockout_forgive(l, "addr:192.0.2.7");
    lockout_forgive(l, "addr:nobody"); /* unknown: nothing */
    assert_true(lockout_is_locked(l, "addr:192.0.2.7", 4));
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

/* Every spelling of one user's ID is one key; a name that names nobody is
 * one key whatever its case; factors and addresses never share a key. */
static void test_keys(void **state)
{
    const char *id = "0b7c5a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21";
    const char *id_upper = "0B7C5A4E-2F1D-4C3B-9A8E-7D6C5B4A3F21";
    char a[LOCKOUT_KEY_MAX], b[LOCKOUT_KEY_MAX], c[LOCKOUT_KEY_MAX];

    (void)state;
    /* Resolved users: the login text does not matter, only the ID. */
    lockout_key_factor(a, sizeof(a), LOCKOUT_PASSWORD, id, "alice");
    lockout_key_factor(b, sizeof(b), LOCKOUT_PASSWORD, id_upper, id_upper);
    lockout_key_factor(c, sizeof(c), LOCKOUT_PASSWORD, id, id);
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    assert_string_equal(a, "password:id:0b7c5a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21");
    /* Another factor of the same user is another key. */
    lockout_key_factor(b, sizeof(b), LOCKOUT_TOTP, id, "alice");
    assert_string_not_equal(a, b);
    /* An unknown name: by its lowercased text, never equal to an ID key,
     * even when the text is that ID. */
    lockout_key_factor(b, sizeof(b), LOCKOUT_PASSWORD, NULL, "Ghost");
    lockout_key_factor(c, sizeof(c), LOCKOUT_PASSWORD, "", "gHOST");
    assert_string_equal(b, c);
    assert_string_equal(b, "password:name:ghost");
    lockout_key_factor(c, sizeof(c), LOCKOUT_PASSWORD, NULL, id);
    assert_string_not_equal(a, c);
    /* Addresses. */
    lockout_key_addr(b, sizeof(b), "2001:DB8::1");
    assert_string_equal(b, "addr:2001:db8::1");
    /* Cut short, never overrun. */
    lockout_key_factor(c, 12, LOCKOUT_PASSWORD, id, NULL);
    assert_int_equal(strlen(c), 11);
}

/* The model the monitor builds on it: five wrong passwords from several
 * addresses lock the user's password, not her TOTP, not a clean address,
 * and an address that failed for many users is locked for all. */
static void test_factor_and_address_locks_are_separate(void **state)
{
    const char *id = "0b7c5a4e-2f1d-4c3b-9a8e-7d6c5b4a3f21";
    struct lockout *l = lockout_new(5, 300, 300, 64);
    char pw[LOCKOUT_KEY_MAX], totp[LOCKOUT_KEY_MAX], addr[LOCKOUT_KEY_MAX];
    int i;

    (void)state;
    assert_non_null(l);
    lockout_key_factor(pw, sizeof(pw), LOCKOUT_PASSWORD, id, "alice");
    lockout_key_factor(totp, sizeof(totp), LOCKOUT_TOTP, id, "alice");
    for (i = 0; i < 5; i++) {
        char ip[32];

        snprintf(ip, sizeof(ip), "192.0.2.%d", i);
        lockout_key_addr(addr, sizeof(addr), ip);
        assert_int_equal(lockout_fail(l, pw, 10 + i), i == 4);
        assert_false(lockout_fail(l, addr, 10 + i));
    }
    assert_true(lockout_is_locked(l, pw, 20));
    assert_false(lockout_is_locked(l, totp, 20));
    lockout_key_addr(addr, sizeof(addr), "192.0.2.0");
    assert_false(lockout_is_locked(l, addr, 20));
    /* One address, five different (even unknown) names: it locks. */
    lockout_key_addr(addr, sizeof(addr), "198.51.100.9");
    for (i = 0; i < 5; i++) {
        assert_int_equal(lockout_fail(l, addr, 30 + i), i == 4);
    }
    assert_true(lockout_is_locked(l, addr, 40));
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
        cmocka_unit_test(test_forgive_takes_back_one),
        cmocka_unit_test(test_spread_beyond_window_never_locks),
        cmocka_unit_test(test_window_slides),
        cmocka_unit_test(test_unlocks_after_lockout_seconds),
        cmocka_unit_test(test_zero_lockout_seconds_never_locks),
        cmocka_unit_test(test_success_resets),
        cmocka_unit_test(test_evicts_oldest_when_full),
        cmocka_unit_test(test_flood_keeps_memory_bounded_and_lock),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_factor_and_address_locks_are_separate),
        cmocka_unit_test(test_bad_arguments),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
