/*
 * The event loop's fd watches (common/loop.h): loop_set_fd pauses a watch
 * without dropping the registration, and resumes it. The turn-end hooks
 * run once per turn, after every fd handler of that turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/loop.h"

struct fx {
    struct loop *l;
    int fds[2];
    int calls;
};

static void on_fd(struct loop *l, int fd, int events, void *arg)
{
    struct fx *f = arg;

    f->calls++;
    loop_stop(l);
}

static void on_timer(struct loop *l, void *arg)
{
    loop_stop(l);
}

/* Runs the loop until an fd handler or a 50 ms timer stops it. */
static void turn(struct fx *f)
{
    uint64_t t = loop_add_timer(f->l, 50, on_timer, f);

    (void)loop_run(f->l);
    loop_del_timer(f->l, t);
}

static void test_set_fd_pause_resume(void **state)
{
    struct fx f = {0};

    assert_non_null(f.l = loop_new());
    assert_int_equal(pipe(f.fds), 0);
    assert_int_equal(write(f.fds[1], "x", 1), 1);

    /* not registered: pausing registers nothing */
    assert_int_equal(loop_set_fd(f.l, f.fds[0], 0, on_fd, &f), ERR_OK);
    assert_int_equal(loop_add_fd(f.l, f.fds[0], LOOP_READ, on_fd, &f), ERR_OK);
    loop_del_fd(f.l, f.fds[0]);

    assert_int_equal(loop_set_fd(f.l, f.fds[0], LOOP_READ, on_fd, &f), ERR_OK);
    assert_int_equal(loop_fd_events(f.l, f.fds[0]), LOOP_READ);
    turn(&f);
    assert_int_equal(f.calls, 1);

    /* paused: still registered, no events although the pipe is readable */
    assert_int_equal(loop_set_fd(f.l, f.fds[0], 0, on_fd, &f), ERR_OK);
    assert_int_equal(loop_fd_events(f.l, f.fds[0]), 0);
    assert_int_equal(loop_add_fd(f.l, f.fds[0], LOOP_READ, on_fd, &f),
                     ERR_EXISTS);
    turn(&f);
    assert_int_equal(f.calls, 1);

    /* resumed */
    assert_int_equal(loop_set_fd(f.l, f.fds[0], LOOP_READ, on_fd, &f), ERR_OK);
    turn(&f);
    assert_int_equal(f.calls, 2);

    loop_del_fd(f.l, f.fds[0]);
    turn(&f);
    assert_int_equal(f.calls, 2);
    close(f.fds[0]);
    close(f.fds[1]);
    loop_free(f.l);
}

struct tx {
    int seq[16];
    int n;
};

static void on_fd_rec(struct loop *l, int fd, int events, void *arg)
{
    struct tx *t = arg;
    char c;

    if (t->n < 16) {
        t->seq[t->n++] = 1;
    }
    (void)read(fd, &c, 1);
    loop_stop(l);
}

static void on_turn_end(struct loop *l, void *arg)
{
    struct tx *t = arg;

    if (t->n < 16) {
        t->seq[t->n++] = 9;
    }
}

static void test_turn_end_runs_after_the_turns_handlers(void **state)
{
    struct fx f = {0};
    struct tx t = {{0}, 0};
    int a[2], b[2];

    assert_non_null(f.l = loop_new());
    assert_int_equal(pipe(a), 0);
    assert_int_equal(pipe(b), 0);
    assert_int_equal(write(a[1], "x", 1), 1);
    assert_int_equal(write(b[1], "x", 1), 1);
    assert_int_equal(loop_add_fd(f.l, a[0], LOOP_READ, on_fd_rec, &t), ERR_OK);
    assert_int_equal(loop_add_fd(f.l, b[0], LOOP_READ, on_fd_rec, &t), ERR_OK);
    assert_int_equal(loop_add_turn_end(f.l, on_turn_end, &t), ERR_OK);
    turn(&f);
    /* both handlers of the turn, then the hook once */
    assert_int_equal(t.n, 3);
    assert_int_equal(t.seq[0], 1);
    assert_int_equal(t.seq[1], 1);
    assert_int_equal(t.seq[2], 9);

    /* removed: no more calls */
    loop_del_turn_end(f.l, on_turn_end, &t);
    assert_int_equal(write(a[1], "x", 1), 1);
    t.n = 0;
    turn(&f);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.seq[0], 1);

    /* at most LOOP_TURN_MAX hooks */
    for (int i = 0; i < LOOP_TURN_MAX; i++) {
        assert_int_equal(loop_add_turn_end(f.l, on_turn_end, &t), ERR_OK);
    }
    assert_int_equal(loop_add_turn_end(f.l, on_turn_end, &t), ERR_IO);
    loop_del_turn_end(f.l, on_turn_end, &t);

    loop_del_fd(f.l, a[0]);
    loop_del_fd(f.l, b[0]);
    close(a[0]);
    close(a[1]);
    close(b[0]);
    close(b[1]);
    loop_free(f.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_fd_pause_resume),
        cmocka_unit_test(test_turn_end_runs_after_the_turns_handlers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
