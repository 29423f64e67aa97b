/*
 * Unit tests for the ordered write queue (store_wqueue.h), the rule the
 * store's off-loop writers share.
 *
 * A real loop (libuv workers) and a real store: a SQLite file, where the
 * queue is not off the loop (no second connection) and the caller writes
 * it with wqueue_write, and PostgreSQL (scripts/with-postgres), where a
 * worker of the queue's own writes it. The items are rows of a table of
 * the test's own, each taking the next seq in its transaction, so the
 * table says in which order they were written. A batch fails for real:
 * an item may name a "gate" row through a foreign key, and until the test
 * adds the gate every transaction holding that item is rolled back. A
 * batch that never comes back is one the database holds behind a lock.
 *
 * What must hold: the order across a failed batch (it goes back ahead of
 * what came after it) and its retry until it is written; the bound (an
 * item beyond it is refused, the caller keeps it); a flush writes what
 * waits on the caller's connection, and does not while a batch it could
 * overtake is out; a stop writes what waits, and with a batch that does
 * not come back writes nothing (copies of that batch lead the queue).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/loop.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "store/store_wqueue.h"
#include "store_fx.h"

struct item {
    struct wqueue_item h; /* first: the queue's */
    int v;
    bool gated; /* names the gate row */
};

static int item_write(struct store *st, const char *arg,
                      const struct wqueue_item *first, size_t n)
{
    const struct wqueue_item *it = first;
    size_t i;
    int r;

    (void)arg;
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    for (i = 0; i < n && r == ERR_OK; i++, it = it->next) {
        const struct item *x = (const struct item *)it;

        r = store_run(st, "wqueue test",
                      "INSERT INTO wq_test (seq, v, gate) VALUES "
                      "((SELECT COALESCE(MAX(seq), 0) + 1 FROM wq_test), $1, "
                      "$2)",
                      NULL, "it", (int64_t)x->v, x->gated ? "gate" : NULL);
    }
    return store_tx_end(st, r);
}

static void item_free(struct wqueue_item *it)
{
    free(it);
}

static struct wqueue_item *item_copy(void *owner, const struct wqueue_item *it)
{
    struct item *c = malloc(sizeof(*c));

    (void)owner;
    if (c != NULL) {
        *c = *(const struct item *)it;
    }
    return c != NULL ? &c->h : NULL;
}

struct t;
static void item_written(void *owner, const struct wqueue_item *it);

static const struct wqueue_conf conf = {
    .what = "test item",
    .batch = 16,
    .retry_ms = 50,
    .retry_max_ms = 200,
    .flush_ms = 500,
    .write = item_write,
    .free = item_free,
    .written = item_written,
};

struct t {
    struct fx *fx;
    struct loop *l;
    bool pg;
    struct wqueue q;
    int told;      /* items conf.written was told of */
    bool disorder; /* one told out of 0, 1, 2, ... */
};

/* On the loop, once an item is committed (the queue's owner is t). */
static void item_written(void *owner, const struct wqueue_item *it)
{
    struct t *t = owner;

    if (((const struct item *)it)->v != t->told) {
        t->disorder = true;
    }
    t->told++;
}

static int setup(void **state)
{
    struct t *t = calloc(1, sizeof(*t));
    void *f = NULL;

    assert_non_null(t);
    assert_int_equal(fx_setup(&f, "/tmp/test_store_wqueue.XXXXXX"), 0);
    t->fx = f;
    t->pg = strncmp(t->fx->path, "postgres", 8) == 0;
    assert_non_null(t->l = loop_new());
    assert_int_equal(
        db_exec(t->fx->st->db, "test",
                "CREATE TABLE wq_gate (name TEXT PRIMARY KEY);"
                "CREATE TABLE wq_test (seq INTEGER PRIMARY KEY, v INTEGER "
                "NOT NULL, gate TEXT REFERENCES wq_gate (name))"),
        ERR_OK);
    wqueue_init(&t->q, &conf, t, 4096);
    *state = t;
    return 0;
}

static int teardown_t(void **state)
{
    struct t *t = *state;
    void *f = t->fx;

    if (t->fx->st != NULL) {
        (void)wqueue_stop(&t->q, t->fx->st, 2000, NULL);
    }
    wqueue_drop(&t->q);
    store_close(t->fx->st);
    t->fx->st = NULL;
    assert_int_equal(loop_free(t->l), 0);
    free(t);
    return teardown(&f);
}

static void start(struct t *t)
{
    assert_int_equal(wqueue_start(&t->q, t->l, t->fx->st, t->fx->path,
                                  "the test queue's writer", NULL),
                     ERR_OK);
    assert_int_equal(wqueue_off_loop(&t->q), t->pg);
}

static int put(struct t *t, int v, bool gated, bool marked)
{
    struct item *x = calloc(1, sizeof(*x));
    int r;

    assert_non_null(x);
    x->v = v;
    x->gated = gated;
    x->h.marked = marked;
    if ((r = wqueue_put(&t->q, &x->h)) != ERR_OK) {
        free(x); /* refused: still the caller's */
    }
    return r;
}

/* Another handle on the test's store (reads what is committed). */
static struct store *other(struct t *t)
{
    struct store *st = NULL;

    assert_int_equal(store_open(t->fx->path, &st), ERR_OK);
    return st;
}

struct rows {
    int v[512];
    size_t n;
};

static int rows_add(struct db_stmt *s, void *ctx)
{
    struct rows *w = ctx;

    if (w->n < sizeof(w->v) / sizeof(w->v[0])) {
        w->v[w->n++] = db_col_int(s, 0);
    }
    return ERR_OK;
}

/* The values written, in the order they were. */
static size_t written(struct store *st, struct rows *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(store_query(st, "test",
                                 "SELECT v FROM wq_test ORDER BY seq", rows_add,
                                 w, NULL, ""),
                     ERR_OK);
    return w->n;
}

static void assert_in_order(struct store *st, int n)
{
    struct rows w;

    assert_int_equal(written(st, &w), (size_t)n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(w.v[i], i);
    }
}

static void stop_tick(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

static void run_for(struct t *t, int ms)
{
    assert_true(loop_add_timer(t->l, (uint64_t)ms, stop_tick, NULL) != 0);
    assert_int_equal(loop_run(t->l), ERR_OK);
}

/* The loop turns until nothing waits in the queue, or ms pass. */
static void run_until_empty(struct t *t, int ms)
{
    int64_t until = util_mono_ms() + ms;

    while (wqueue_len(&t->q, NULL) > 0 && util_mono_ms() < until) {
        run_for(t, 20);
    }
    assert_int_equal(wqueue_len(&t->q, NULL), 0);
}

static void open_gate(struct t *t)
{
    struct store *st = other(t);

    assert_int_equal(store_run(st, "test",
                               "INSERT INTO wq_gate (name) VALUES "
                               "('gate')",
                               NULL, ""),
                     ERR_OK);
    store_close(st);
}

/* PostgreSQL: a connection that holds wq_test against writes (reads
 * still go through). */
static struct db *lock_table(struct t *t)
{
    struct db *db = NULL;

    assert_int_equal(db_open(t->fx->path, &db), ERR_OK);
    assert_int_equal(
        db_exec(db, "test", "BEGIN; LOCK TABLE wq_test IN EXCLUSIVE MODE"),
        ERR_OK);
    return db;
}

/* Item 10 fails every batch it is in until the gate exists: that batch
 * goes back ahead of the 90 items after it, is tried again (and again,
 * the pause doubling), and once the gate is there all 100 are written in
 * the order they were put. */
static void test_order_across_a_failed_batch(void **state)
{
    struct t *t = *state;
    size_t n = 0;

    start(t);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(put(t, i, i == 10, false), ERR_OK);
    }
    if (!t->pg) {
        /* no worker: the caller writes, and a failure stops it there */
        assert_int_not_equal(wqueue_write(&t->q, t->fx->st, 0, &n), ERR_OK);
        assert_int_equal(n, 0); /* the first batch holds item 10 */
        assert_int_equal(wqueue_len(&t->q, NULL), 100);
        assert_int_equal(t->told, 0);
        open_gate(t);
        assert_int_equal(wqueue_write(&t->q, t->fx->st, 0, &n), ERR_OK);
        assert_int_equal(n, 100);
        assert_in_order(t->fx->st, 100);
        assert_int_equal(t->told, 100);
        assert_false(t->disorder);
        return;
    }
    run_for(t, 400); /* several tries, each failed */
    assert_true(wqueue_failing(&t->q));
    {
        struct store *reader = other(t);
        struct rows w;

        /* the batch before item 10's went through; nothing after it */
        assert_true(written(reader, &w) < 10);
        store_close(reader);
    }
    assert_true(t->told < 10); /* told only of what committed */
    open_gate(t);
    run_until_empty(t, 10000);
    assert_false(wqueue_failing(&t->q));
    {
        struct store *reader = other(t);

        assert_in_order(reader, 100);
        store_close(reader);
    }
    assert_int_equal(t->told, 100);
    assert_false(t->disorder);
}

/* The bound: items queued and in flight. Beyond it an item is refused
 * (ERR_STORE) and stays the caller's; marked items are counted apart;
 * once they are written there is room again. */
static void test_bound(void **state)
{
    struct t *t = *state;
    struct db *lk = NULL;
    size_t marked = 0;

    t->q.max = 10;
    start(t);
    if (t->pg) {
        lk = lock_table(t); /* the first batch waits: all stay counted */
    }
    for (int i = 0; i < 10; i++) {
        assert_int_equal(put(t, i, false, i % 2 == 0), ERR_OK);
    }
    assert_int_equal(put(t, 10, false, false), ERR_STORE);
    assert_int_equal(wqueue_len(&t->q, &marked), 10);
    assert_int_equal(marked, 5);
    if (t->pg) {
        run_for(t, 100);
        assert_int_equal(put(t, 10, false, false), ERR_STORE);
        assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
        db_close(lk);
        run_until_empty(t, 10000);
    } else {
        assert_int_equal(wqueue_write(&t->q, t->fx->st, 0, NULL), ERR_OK);
    }
    assert_int_equal(wqueue_len(&t->q, &marked), 0);
    assert_int_equal(marked, 0);
    assert_int_equal(put(t, 10, false, false), ERR_OK);
    if (t->pg) {
        run_until_empty(t, 10000);
    } else {
        assert_int_equal(wqueue_write(&t->q, t->fx->st, 0, NULL), ERR_OK);
    }
    assert_in_order(t->fx->st, 11);
}

/* A flush right after the puts: everything is written when it returns,
 * without the loop turning (on the caller's connection, behind the batch
 * in flight). */
static void test_flush_writes_what_waits(void **state)
{
    struct t *t = *state;

    if (!t->pg) {
        skip();
    }
    start(t);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(put(t, i, false, false), ERR_OK);
    }
    assert_int_equal(wqueue_flush(&t->q, t->fx->st), ERR_OK);
    assert_int_equal(wqueue_len(&t->q, NULL), 0);
    assert_in_order(t->fx->st, 200);
}

/* A flush while the batch in flight waits for a lock: it waits
 * flush_ms, then writes nothing (that would overtake the batch). */
static void test_flush_never_overtakes(void **state)
{
    struct t *t = *state;
    struct store *reader;
    struct db *lk;
    struct rows w;
    int64_t t0;

    if (!t->pg) {
        skip();
    }
    start(t);
    reader = other(t); /* not under the lock: opening takes the write lock */
    lk = lock_table(t);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(put(t, i, false, false), ERR_OK);
    }
    t0 = util_mono_ms();
    assert_int_equal(wqueue_flush(&t->q, t->fx->st), ERR_STORE);
    assert_true(util_mono_ms() - t0 < 2000);
    assert_int_equal(wqueue_len(&t->q, NULL), 50);
    assert_int_equal(written(reader, &w), 0);
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    run_until_empty(t, 10000);
    assert_in_order(reader, 50);
    store_close(reader);
}

/* A stop with items waiting and the database answering: none lost. */
static void test_stop_writes_what_waits(void **state)
{
    struct t *t = *state;
    bool stuck = true;

    start(t);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(put(t, i, false, false), ERR_OK);
    }
    if (!t->pg) {
        assert_int_equal(wqueue_write(&t->q, t->fx->st, 0, NULL), ERR_OK);
    }
    assert_int_equal(wqueue_stop(&t->q, t->fx->st, 5000, &stuck), 0);
    assert_false(stuck);
    assert_false(wqueue_off_loop(&t->q));
    assert_in_order(t->fx->st, 200);
}

/* A stop while the batch in flight waits for a lock that is never let
 * go: the stop returns after its wait, writes nothing (not then, not
 * with wqueue_write after), and copies of the stuck batch lead the
 * queue, so the caller has every item, in order, to keep elsewhere. */
static void test_stop_with_a_batch_that_never_returns(void **state)
{
    struct t *t = *state;
    static struct wqueue_conf conf_copy;
    struct wqueue_item *it;
    struct store *reader;
    struct db *lk;
    struct rows w;
    bool stuck = false;
    size_t n = 0;
    int64_t t0;
    int i;

    if (!t->pg) {
        skip();
    }
    conf_copy = conf;
    conf_copy.copy = item_copy; /* the stuck batch's items come back */
    t->q.conf = &conf_copy;
    start(t);
    reader = other(t); /* not under the lock: opening takes the write lock */
    lk = lock_table(t);
    for (i = 0; i < 50; i++) {
        assert_int_equal(put(t, i, false, false), ERR_OK);
    }
    run_for(t, 200); /* the first batch waits for the lock */
    t0 = util_mono_ms();
    assert_int_equal(wqueue_stop(&t->q, t->fx->st, 300, &stuck), 50);
    assert_true(stuck);
    assert_true(util_mono_ms() - t0 < 2000);
    assert_true(wqueue_off_loop(&t->q)); /* stuck: never writes */
    assert_int_equal(put(t, 50, false, false), ERR_OK);
    assert_int_equal(wqueue_write(&t->q, t->fx->st, 0, &n), ERR_STORE);
    assert_int_equal(n, 0);
    assert_int_equal(wqueue_flush(&t->q, t->fx->st), ERR_STORE);
    for (i = 0, it = wqueue_first(&t->q); it != NULL; it = it->next, i++) {
        assert_int_equal(((struct item *)it)->v, i);
    }
    assert_int_equal(i, 51);
    assert_int_equal(written(reader, &w), 0);
    /* the stuck batch rolled back, the lock goes: still nothing written */
    assert_true(fx_pg_terminate(lk, false) >= 1);
    assert_int_equal(db_exec(lk, "test", "COMMIT"), ERR_OK);
    db_close(lk);
    run_for(t, 200);
    assert_int_equal(written(reader, &w), 0);
    store_close(reader);
    assert_int_equal(wqueue_len(&t->q, NULL), 51);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_across_a_failed_batch, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_bound, setup, teardown_t),
        cmocka_unit_test_setup_teardown(test_flush_writes_what_waits, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_flush_never_overtakes, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(test_stop_writes_what_waits, setup,
                                        teardown_t),
        cmocka_unit_test_setup_teardown(
            test_stop_with_a_batch_that_never_returns, setup, teardown_t),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
