/*
 * Schedules (schedules.h).
 */
#include "store/schedules.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/db.h"
#include "store/store_internal.h"

#define SCHED_SELECT                                                           \
    "SELECT id, name, cron, agents, tags, command, interpreter, cwd,"          \
    " timeout, concurrency, created_by, created_at, last_fire, fired,"         \
    " missed, last_missed_at, last_batch, groups, script, created_by_id,"      \
    " enabled FROM schedules"

static int sched_fill(struct db_stmt *s, void *item)
{
    struct store_schedule *c = item;

    store_col_text(s, 0, c->id, sizeof(c->id));
    store_col_text(s, 1, c->name, sizeof(c->name));
    store_col_text(s, 2, c->cron, sizeof(c->cron));
    store_col_text(s, 3, c->agents, sizeof(c->agents));
    store_col_text(s, 4, c->tags, sizeof(c->tags));
    store_col_text(s, 5, c->command, sizeof(c->command));
    store_col_text(s, 6, c->interpreter, sizeof(c->interpreter));
    store_col_text(s, 7, c->cwd, sizeof(c->cwd));
    c->timeout = db_col_int(s, 8);
    c->concurrency = db_col_int(s, 9);
    store_col_text(s, 10, c->created_by, sizeof(c->created_by));
    c->created_at = db_col_int64(s, 11);
    c->last_fire = db_col_int64(s, 12);
    c->fired = db_col_int64(s, 13);
    c->missed = db_col_int64(s, 14);
    c->last_missed_at = db_col_int64(s, 15);
    store_col_text(s, 16, c->last_batch, sizeof(c->last_batch));
    store_col_text(s, 17, c->groups, sizeof(c->groups));
    store_col_text(s, 19, c->created_by_id, sizeof(c->created_by_id));
    c->enabled = db_col_int(s, 20) != 0;
    c->script = NULL;
    if (!db_col_null(s, 18)) {
        return store_col_str_heap(s, 18, &c->script);
    }
    return ERR_OK;
}

static void sched_release_items(void *items, size_t n)
{
    struct store_schedule *l = items;

    for (size_t i = 0; i < n; i++) {
        store_schedule_release(&l[i]);
    }
}

int store_schedule_add(struct store *st, struct store_schedule *s)
{
    int r;

    if (s == NULL || store_check_name(s->name) != ERR_OK ||
        store_check_text(s->cron, SCHED_CRON_MAX, true) ||
        store_check_len(s->agents, SCHED_TARGETS_MAX) ||
        store_check_len(s->tags, SCHED_TARGETS_MAX) ||
        store_check_len(s->groups, SCHED_TARGETS_MAX) ||
        store_check_len(s->command, JOB_CMD_MAX) ||
        store_check_len(s->cwd, JOB_CWDIR_MAX) ||
        store_check_len(s->created_by, JOB_BY_MAX) ||
        (s->script != NULL && strlen(s->script) > JOB_SCRIPT_MAX)) {
        return ERR_INVALID;
    }
    util_uuid4(s->id);
    s->created_at = util_now();
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "schedule add",
                  "INSERT INTO schedules (id, name, cron, agents, tags,"
                  " command, interpreter, script, cwd, timeout, concurrency,"
                  " created_by, created_at, last_fire, groups,"
                  " created_by_id)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
                  " $12, $13, $14, $15, $16)",
                  NULL, "tttttttttiitiitt", s->id, s->name, s->cron, s->agents,
                  s->tags, s->command, s->interpreter, s->script, s->cwd,
                  (int64_t)s->timeout, (int64_t)s->concurrency, s->created_by,
                  s->created_at, s->last_fire,
                  s->groups[0] != '\0' ? s->groups : "[]", s->created_by_id);
    s->enabled = true;
    return store_tx_end(st, r);
}

int store_schedule_get(struct store *st, const char *ref,
                       struct store_schedule *out)
{
    memset(out, 0, sizeof(*out));
    return store_get_named(st, "schedule get", SCHED_SELECT " WHERE id = $1",
                           SCHED_SELECT " WHERE name = $1", ref, sched_fill,
                           out);
}

int store_schedule_list(struct store *st, struct store_schedule **list,
                        size_t *n)
{
    void *items = NULL;
    int r;

    *list = NULL;
    *n = 0;
    r = store_list_query(st, "schedule list", SCHED_SELECT " ORDER BY name",
                         sizeof(struct store_schedule), sched_fill,
                         sched_release_items, &items, n, "");
    *list = items;
    return r;
}

void store_schedule_release(struct store_schedule *s)
{
    free(s->script);
    s->script = NULL;
}

void store_schedule_list_free(struct store_schedule *list, size_t n)
{
    if (list != NULL) {
        sched_release_items(list, n);
        free(list);
    }
}

int store_schedule_delete(struct store *st, const char *ref)
{
    return store_delete_named(st, "schedule delete",
                              "DELETE FROM schedules WHERE id = $1",
                              "DELETE FROM schedules WHERE name = $1", ref);
}

int store_schedule_claim(struct store *st, const char *id, int64_t last_fire)
{
    return store_update_one(st, "schedule claim",
                            "UPDATE schedules SET last_fire = $1"
                            " WHERE id = $2 AND last_fire < $3",
                            "iti", last_fire, id, last_fire);
}

int store_schedule_mark(struct store *st, const char *id, int64_t last_fire,
                        int64_t fired, int64_t missed, int64_t now,
                        const char *last_batch)
{
    return store_update_one(
        st, "schedule mark",
        "UPDATE schedules SET last_fire = $1, fired = fired + $2,"
        " missed = missed + $3,"
        " last_missed_at = CASE WHEN $4 > 0 THEN $5 ELSE last_missed_at END,"
        " last_batch = CASE WHEN $6 = '' THEN last_batch ELSE $7 END"
        " WHERE id = $8",
        "iiiiittt", last_fire, fired, missed, missed, now,
        last_batch != NULL ? last_batch : "",
        last_batch != NULL ? last_batch : "", id);
}

int store_schedule_set_enabled(struct store *st, const char *id, bool enabled)
{
    char nid[STORE_ID_MAX + 1];
    int r, changes = 0;

    if (id == NULL || !store_id_norm(id, nid)) {
        return ERR_NOT_FOUND;
    }
    if ((r = store_tx_begin(st, true)) != ERR_OK) {
        return r;
    }
    r = store_run(st, "schedule enable",
                  "UPDATE schedules SET enabled = $1 WHERE id = $2", &changes,
                  "it", (int64_t)(enabled ? 1 : 0), nid);
    if (r == ERR_OK && changes == 0) {
        r = ERR_NOT_FOUND;
    }
    return store_tx_end(st, r);
}
