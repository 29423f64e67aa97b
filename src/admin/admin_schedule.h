/*
 * Schedules (issue 14, store/schedules.h): a command or script on agents
 * (IDs, tags) at the minutes of a cron expression (common/cron.h), in the
 * server's time zone. The scheduler (admin_scheduler_start) runs in the
 * server, a few times a minute: each firing is a batch of jobs (admin_job.h)
 * started by "schedule:NAME"; firings that fell while the server was not
 * running are counted, logged and written to the audit log (schedule.missed),
 * never run late.
 *
 * The schedule clock: the real time, or for tests, with [jobs]
 * schedule_minute_seconds = N below 60, a clock on which every N real
 * seconds are one minute (the real time scaled by 60/N, so it keeps
 * moving while the server is down, and missed firings can be tested).
 */
#ifndef PORTCULLIS_ADMIN_SCHEDULE_H
#define PORTCULLIS_ADMIN_SCHEDULE_H

#include <jansson.h>

#include "admin/admin.h"
#include "admin/admin_job.h"
#include "store/schedules.h"

struct loop;
struct hub;

struct admin_schedule_req {
    const char *name;
    const char *cron;
    struct admin_job_targets targets;
    struct admin_job_req job; /* command or script; no push */
};

/* Now on the schedule clock (seconds). */
int64_t admin_schedule_clock(const struct config *cfg);
int admin_schedule_add(const struct admin_ctx *c,
                       const struct admin_schedule_req *q,
                       struct store_schedule *out, struct admin_err *e);
/* Without c->job_user, every schedule; else the user's own (made
 * through the API by them). A job-scheduler (not an administrator)
 * adds a schedule only if its targets resolve now to agents in client
 * groups on which they hold job-scheduler; each firing runs with the
 * creator's rights as they are then (admin_job_scope_check): a
 * creator disabled, deleted or out of scope makes it schedule.failed. */
bool admin_schedule_visible(const struct admin_ctx *c,
                            const struct store_schedule *s);
int admin_schedule_delete(const struct admin_ctx *c, const char *ref,
                          struct admin_err *e);
/* Enables or disables a schedule (the same visibility as delete); out
 * gets it (store_schedule_release). While disabled it neither fires nor
 * counts missed firings. */
int admin_schedule_set_enabled(const struct admin_ctx *c, const char *ref,
                               bool enabled, struct store_schedule *out,
                               struct admin_err *e);
/* The server's ticks: four times a minute of the schedule clock, the
 * schedules whose minute has come fire (a batch of jobs on hub). The
 * schedules are read and their minutes recorded on a store worker of its
 * own (admin_schedule.c: no statement on the loop for it on a database
 * server); the firing itself runs on the loop. NULL: out of memory. */
struct admin_scheduler;
struct admin_scheduler *admin_scheduler_start(struct loop *l, struct store *st,
                                              const struct config *cfg,
                                              struct hub *hub);
void admin_scheduler_stop(struct admin_scheduler *sc);
/* A schedule as JSON, with its next firing in the server's time zone
 * ("next_run") and in UTC ("next_run_utc"). */
json_t *admin_schedule_json(const struct config *cfg,
                            const struct store_schedule *s);

#endif
