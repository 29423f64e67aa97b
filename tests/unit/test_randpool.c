/*
 * sshproxy/randpool.c: libssh's small random draws from a pool. The test
 * links like the session child (-Wl,--wrap=ssh_get_random through
 * core_dep), so ssh_get_random() here is the wrapper libssh's packet code
 * calls for its padding.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sshproxy/randpool.h"

int ssh_get_random(void *where, int len, int strong);

static const uint8_t zero16[16];

static void test_draws_differ(void **state)
{
    uint8_t a[16], b[16];

    assert_int_equal(ssh_get_random(a, sizeof(a), 0), 1);
    assert_int_equal(ssh_get_random(b, sizeof(b), 0), 1);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_memory_not_equal(a, zero16, sizeof(a));
}

/* More than a pool's worth, in padding-sized draws: every draw succeeds,
 * none is zero, no two 16-byte draws are alike. */
static void test_the_pool_refills(void **state)
{
    enum { N = 3 * RANDPOOL_SIZE / 16 };
    uint8_t(*d)[16] = calloc(N, 16);

    assert_non_null(d);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ssh_get_random(d[i], 16, 0), 1);
        assert_memory_not_equal(d[i], zero16, 16);
    }
    for (int i = 0; i < N; i++) {
        for (int j = i + 1; j < N; j++) {
            assert_memory_not_equal(d[i], d[j], 16);
        }
    }
    free(d);
}

/* Strong draws and large ones are libssh's own; they work as before. */
static void test_strong_and_large_draws(void **state)
{
    uint8_t big[256], big2[256], s[16], s2[16];

    assert_false(randpool_take(big, sizeof(big)));
    assert_int_equal(ssh_get_random(big, sizeof(big), 0), 1);
    assert_int_equal(ssh_get_random(big2, sizeof(big2), 0), 1);
    assert_memory_not_equal(big, big2, sizeof(big));
    assert_int_equal(ssh_get_random(s, sizeof(s), 1), 1);
    assert_int_equal(ssh_get_random(s2, sizeof(s2), 1), 1);
    assert_memory_not_equal(s, s2, sizeof(s));
}

/*
 * The point of MADV_WIPEONFORK: a forked child must not draw the bytes its
 * parent draws next (both would send the same padding). The parent fills
 * its pool, forks, and both draw the same amount: no 16-byte draw of the
 * child appears among the parent's.
 */
static void test_a_fork_draws_its_own_bytes(void **state)
{
    enum { N = 64 };
    uint8_t first[16], mine[N][16], theirs[N][16];
    int fds[2], status;
    pid_t pid;
    size_t got = 0;
    ssize_t n;

    assert_int_equal(ssh_get_random(first, sizeof(first), 0), 1);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        for (int i = 0; i < N; i++) {
            if (ssh_get_random(theirs[i], 16, 0) != 1) {
                _exit(2);
            }
        }
        _exit(write(fds[1], theirs, sizeof(theirs)) == sizeof(theirs) ? 0 : 3);
    }
    close(fds[1]);
    for (int i = 0; i < N; i++) {
        assert_int_equal(ssh_get_random(mine[i], 16, 0), 1);
    }
    while (got < sizeof(theirs) && (n = read(fds[0], (uint8_t *)theirs + got,
                                             sizeof(theirs) - got)) > 0) {
        got += (size_t)n;
    }
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(got, sizeof(theirs));
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) {
            assert_memory_not_equal(mine[i], theirs[j], 16);
        }
    }
}

/* Threads drawing at once never get the same bytes. */
enum { THREADS = 4, DRAWS = 4000 };
static uint64_t drawn[THREADS][DRAWS];

static void *drawer(void *arg)
{
    uint64_t *out = arg;

    for (int i = 0; i < DRAWS; i++) {
        if (ssh_get_random(&out[i], sizeof(out[i]), 0) != 1) {
            return arg;
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void test_threads_draw_apart(void **state)
{
    pthread_t t[THREADS];
    uint64_t *all = &drawn[0][0];
    void *ret;

    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, drawer, drawn[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_null(ret);
    }
    qsort(all, THREADS * DRAWS, sizeof(uint64_t), cmp_u64);
    for (int i = 1; i < THREADS * DRAWS; i++) {
        assert_true(all[i] != all[i - 1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_draws_differ),
        cmocka_unit_test(test_the_pool_refills),
        cmocka_unit_test(test_strong_and_large_draws),
        cmocka_unit_test(test_a_fork_draws_its_own_bytes),
        cmocka_unit_test(test_threads_draw_apart),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
