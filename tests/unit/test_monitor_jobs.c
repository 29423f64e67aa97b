/*
 * Unit tests for the monitor's store work off the loop (sshproxy/monitor.c,
 * "Store work off the loop"; docs/store.md): on PostgreSQL a request's
 * store calls run on a worker with a connection of the monitor's own, so
 * a locked table holds that request, not the loop; a child that goes
 * while its job runs leaves no open report row; two requests of one
 * child are answered one after the other, in order; a job still waiting
 * for a connection when its child goes never runs.
 *
 * A real monitor on a real loop (libuv workers) and a real PostgreSQL
 * (scripts/with-postgres; the tests skip elsewhere: on SQLite the work
 * stays on the loop), children that are socketpairs, and a second
 * connection of the test's own that holds the assets table locked.
 */
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "common/config.h"
#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "common/vault.h"
#include "login/login.h"
#include "policy/policy.h"
#include "sshproxy/monitor.h"
#include "sshproxy/mproto.h"
#include "store/db.h"
#include "store/store.h"
#include "monitor_fx.h"
#include "store_fx.h"

struct t {
    struct fx *fx;
    struct config cfg;
    struct loop *loop;
    struct monitor m;
    struct db *locker; /* the test's own connection */
    char user_id[STORE_ID_MAX + 1];
    pid_t next_pid;
};

static int setup(void **state)
{
    const char *loc = getenv("PORTCULLIS_TEST_STORE");
    struct store_asset a;
    struct store_grant g;
    struct store_profile p;
    struct store_user u;
    struct t *t;
    void *f = NULL;

    if (loc == NULL || strncmp(loc, "postgresql://", 13) != 0) {
        *state = NULL;
        return 0; /* the tests skip: only a database server has workers */
    }
    assert_non_null(t = calloc(1, sizeof(*t)));
    assert_int_equal(fx_setup(&f, "/tmp/test_monitor_jobs.XXXXXX"), 0);
    t->fx = f;
    mfx_config(&t->cfg, t->fx->dir);
    free(t->cfg.store_path);
    free(t->cfg.store_url);
    assert_non_null(t->cfg.store_path = strdup(t->fx->path));
    assert_non_null(t->cfg.store_url = strdup(t->fx->path));
    assert_non_null(t->loop = loop_new());
    assert_int_equal(monitor_init(&t->m, &t->cfg, t->loop), ERR_OK);
    assert_non_null(t->m.jobs);

    assert_int_equal(store_user_add(t->m.store, "alice", "", false, &u),
                     ERR_OK);
    snprintf(t->user_id, sizeof(t->user_id), "%s", u.id);
    memset(&a, 0, sizeof(a));
    snprintf(a.name, sizeof(a.name), "srv");
    snprintf(a.protocol, sizeof(a.protocol), "ssh");
    snprintf(a.host, sizeof(a.host), "192.0.2.1");
    a.port = 22;
    assert_int_equal(store_asset_add(t->m.store, &a), ERR_OK);
    memset(&g, 0, sizeof(g));
    snprintf(g.asset_id, sizeof(g.asset_id), "%s", a.id);
    snprintf(g.user_id, sizeof(g.user_id), "%s", u.id);
    g.role = ROLE_VIEWER;
    assert_int_equal(store_grant_add(t->m.store, &g), ERR_OK);
    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "everything");
    p.native = NATIVE_ALLOW;
    p.shell = p.exec = p.sftp = p.scp = true;
    assert_int_equal(store_profile_add(t->m.store, &p), ERR_OK);
    assert_int_equal(store_profile_assign(t->m.store, p.id, u.id, NULL),
                     ERR_OK);
    assert_int_equal(db_open(t->fx->path, &t->locker), ERR_OK);
    t->next_pid = 910000;
    *state = t;
    return 0;
}

static int teardown_t(void **state)
{
    struct t *t = *state;
    void *f;

    if (t == NULL) {
        return 0;
    }
    db_close(t->locker);
    monitor_free(&t->m);
    loop_free(t->loop);
    config_free(&t->cfg);
    f = t->fx;
    free(t);
    return teardown(&f);
}

/* An SSH child logged in as alice, asking for asset "srv"; *peer is the
 * child's end of its monitor socket. */
static struct mchild *child(struct t *t, int *peer)
{
    struct mchild *c = mfx_child(&t->m, &t->next_pid, peer);

    assert_int_equal(login_parse("alice#srv", 9, &c->login, NULL), ERR_OK);
    snprintf(c->user_id, sizeof(c->user_id), "%s", t->user_id);
    snprintf(c->user_name, sizeof(c->user_name), "alice");
    assert_int_equal(monitor_child_state(&t->m, c, MC_AUTHED), ERR_OK);
    return c;
}

/* The child sends MP_AUTHORIZE for an exec of `command`. */
static void send_authorize(int peer, const char *command)
{
    struct buf *b = buf_new(MPROTO_MAX);

    assert_non_null(b);
    assert_int_equal(buf_put_u8(b, KIND_EXEC), ERR_OK);
    assert_int_equal(buf_put_cstring(b, command), ERR_OK);
    assert_int_equal(mproto_send(peer, MP_AUTHORIZE, b, -1, 0), ERR_OK);
    buf_free(b);
}

/* Runs the loop until the child's end has a message (true) or ms pass. */
static bool run_until_reply(struct t *t, int peer, int ms)
{
    int64_t until = util_mono_ms() + ms;
    struct pollfd pfd = {.fd = peer, .events = POLLIN};

    do {
        (void)uv_run(loop_uv(t->loop), UV_RUN_NOWAIT);
        if (poll(&pfd, 1, 10) == 1) {
            return true;
        }
    } while (util_mono_ms() < until);
    return false;
}

/* Reads an MP_AUTHORIZE_REPLY: ok, and the session row's ID into sid. */
static bool read_authorize(int peer, char *sid, size_t sidlen)
{
    struct buf *b = buf_new(MPROTO_MAX);
    uint8_t type = 0, ok = 0;

    assert_non_null(b);
    assert_int_equal(mproto_recv(peer, &type, b, NULL), ERR_OK);
    assert_int_equal(type, MP_AUTHORIZE_REPLY);
    assert_int_equal(buf_get_u8(b, &ok), ERR_OK);
    assert_int_equal(buf_get_cstring_into(b, sid, sidlen), ERR_OK);
    buf_free(b);
    return ok == 1;
}

/* The test's own connection holds table locked until unlock. */
static void lock_table(struct t *t, const char *table)
{
    char sql[128];

    snprintf(sql, sizeof(sql), "LOCK TABLE %s IN ACCESS EXCLUSIVE MODE", table);
    assert_int_equal(db_exec(t->locker, "test", "BEGIN"), ERR_OK);
    assert_int_equal(db_exec(t->locker, "test", sql), ERR_OK);
}

static void lock_assets(struct t *t)
{
    lock_table(t, "assets");
}

static void unlock(struct t *t)
{
    assert_int_equal(db_exec(t->locker, "test", "COMMIT"), ERR_OK);
}

/* While the assets table is locked, MP_AUTHORIZE returns at once (its
 * store work waits on a worker, not on the loop) and is answered once the
 * lock goes: allowed, with its report row open. */
static void test_authorize_waits_off_the_loop(void **state)
{
    struct t *t = *state;
    struct store_session s;
    char sid[STORE_ID_MAX + 1];
    int peer;
    int64_t t0;

    if (t == NULL) {
        skip();
    }
    (void)child(t, &peer);
    lock_assets(t);
    send_authorize(peer, "uptime");
    t0 = util_mono_ms();
    /* the loop turns (and reads the request) without waiting */
    assert_false(run_until_reply(t, peer, 1000));
    assert_true(util_mono_ms() - t0 < 1500);
    unlock(t);
    assert_true(run_until_reply(t, peer, 10000));
    assert_true(read_authorize(peer, sid, sizeof(sid)));
    memset(&s, 0, sizeof(s));
    assert_int_equal(store_session_get(t->m.store, sid, &s), ERR_OK);
    assert_string_equal(s.detail, "uptime");
    assert_int_equal(s.ended_at, 0);
    close(peer);
}

/* A child that goes while its job waits: nothing is answered, and the
 * report row the job opened is closed, not left open. */
static void test_child_gone_mid_job(void **state)
{
    struct t *t = *state;
    struct store_session *list = NULL;
    struct store_session_filter f;
    struct mchild *c;
    size_t n = 0;
    int peer;
    bool closed = false;

    if (t == NULL) {
        skip();
    }
    c = child(t, &peer);
    lock_assets(t);
    send_authorize(peer, "gone-mid-job");
    assert_false(run_until_reply(t, peer, 300));
    monitor_child_exit(&t->m, c->pid, 0);
    unlock(t);
    memset(&f, 0, sizeof(f));
    for (int64_t until = util_mono_ms() + 10000;
         !closed && util_mono_ms() < until;) {
        (void)uv_run(loop_uv(t->loop), UV_RUN_NOWAIT);
        usleep(20 * 1000);
        assert_int_equal(store_session_list(t->m.store, &f, &list, &n), ERR_OK);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(list[i].detail, "gone-mid-job") == 0 &&
                list[i].ended_at != 0) {
                assert_string_equal(list[i].result,
                                    "error: session process ended without "
                                    "closing the session");
                closed = true;
            }
        }
        free(list);
        list = NULL;
    }
    assert_true(closed);
    close(peer);
}

/* Two requests sent at once by one child: the second is read only once
 * the first is answered; the answers come in the order asked. */
static void test_two_requests_in_order(void **state)
{
    struct t *t = *state;
    struct store_session s;
    char sid[STORE_ID_MAX + 1];
    int peer;

    if (t == NULL) {
        skip();
    }
    (void)child(t, &peer);
    lock_assets(t);
    send_authorize(peer, "first");
    send_authorize(peer, "second");
    assert_false(run_until_reply(t, peer, 300));
    unlock(t);
    for (int k = 0; k < 2; k++) {
        assert_true(run_until_reply(t, peer, 10000));
        assert_true(read_authorize(peer, sid, sizeof(sid)));
        memset(&s, 0, sizeof(s));
        assert_int_equal(store_session_get(t->m.store, sid, &s), ERR_OK);
        assert_string_equal(s.detail, k == 0 ? "first" : "second");
    }
    close(peer);
}

/* More children than connections: the fifth job waits in the FIFO; its
 * child goes before it starts, so it never runs (no report row), and the
 * other four are answered once the lock goes. */
static void test_waiting_job_of_a_gone_child_never_runs(void **state)
{
    struct t *t = *state;
    struct store_session *list = NULL;
    struct store_session_filter f;
    struct mchild *c[5];
    char sid[STORE_ID_MAX + 1], what[32];
    int peer[5];
    size_t n = 0, fifth = 0, rows = 0;

    if (t == NULL) {
        skip();
    }
    lock_assets(t);
    for (int k = 0; k < 5; k++) {
        c[k] = child(t, &peer[k]);
        snprintf(what, sizeof(what), "child-%d", k);
        send_authorize(peer[k], what);
        /* read and started (or queued) in this order */
        assert_false(run_until_reply(t, peer[k], 200));
    }
    monitor_child_exit(&t->m, c[4]->pid, 0);
    unlock(t);
    for (int k = 0; k < 4; k++) {
        assert_true(run_until_reply(t, peer[k], 10000));
        assert_true(read_authorize(peer[k], sid, sizeof(sid)));
    }
    /* let anything left come back (peer[4]'s other end is closed) */
    assert_false(run_until_reply(t, peer[0], 500));
    memset(&f, 0, sizeof(f));
    assert_int_equal(store_session_list(t->m.store, &f, &list, &n), ERR_OK);
    for (size_t i = 0; i < n; i++) {
        rows += strncmp(list[i].detail, "child-", 6) == 0;
        fifth += strcmp(list[i].detail, "child-4") == 0;
    }
    free(list);
    assert_int_equal(rows, 4);
    assert_int_equal(fifth, 0);
    for (int k = 0; k < 5; k++) {
        close(peer[k]);
    }
}

/* The store failing while MP_AUTHORIZE reads the user (here a lock held
 * past the pool's lock_timeout, 300 ms by the URL's options) refuses the
 * channel as "the store is unavailable" and keeps the connection: it was
 * taken for a disabled user and the connection ended. */
static void test_store_failure_is_not_a_disabled_user(void **state)
{
    struct t *t = *state;
    struct mchild *c;
    char sid[STORE_ID_MAX + 1], *url = NULL;
    int peer;

    if (t == NULL) {
        skip();
    }
    /* the pool's connections with a short lock_timeout (appended to the
     * URL's options, which the fixture ends with) */
    monitor_free(&t->m);
    assert_true(
        asprintf(&url, "%s%%20-clock_timeout%%3D300", t->cfg.store_url) > 0);
    free(t->cfg.store_url);
    free(t->cfg.store_path);
    t->cfg.store_url = url;
    assert_non_null(t->cfg.store_path = strdup(url));
    assert_int_equal(monitor_init(&t->m, &t->cfg, t->loop), ERR_OK);
    c = child(t, &peer);
    lock_table(t, "users");
    send_authorize(peer, "under-a-lock");
    assert_true(run_until_reply(t, peer, 10000));
    assert_false(read_authorize(peer, sid, sizeof(sid)));
    unlock(t);
    /* not ended (before: "error: user disabled" and a SIGKILL) */
    assert_string_equal(c->end_result, "");
    assert_int_equal(c->state, MC_AUTHED);
    /* and the next request of the same connection is served */
    send_authorize(peer, "after-the-lock");
    assert_true(run_until_reply(t, peer, 10000));
    assert_true(read_authorize(peer, sid, sizeof(sid)));
    close(peer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_authorize_waits_off_the_loop,
                                        setup, teardown_t),
        cmocka_unit_test_setup_teardown(test_child_gone_mid_job, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_two_requests_in_order, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(
            test_waiting_job_of_a_gone_child_never_runs, setup, teardown_t),
        cmocka_unit_test_setup_teardown(
            test_store_failure_is_not_a_disabled_user, setup, teardown_t),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
