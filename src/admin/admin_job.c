/*
 * Jobs (admin_job.h).
 */
#include "admin/admin_job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/notify.h"
#include "hub/hub.h"
#include "store/notices.h"

struct admin_job_run {
    struct store *st;
    struct store_job *j;
    admin_job_done_fn done;
    void *arg;
};

static void admin_job_result(void *arg, const struct hub_job_result *r)
{
    struct admin_job_run *run = arg;
    struct store_job *j = run->j;

    snprintf(j->status, sizeof(j->status), "%s", r->status);
    j->exit_code = r->exit_code;
    j->signal = r->signal;
    snprintf(j->why, sizeof(j->why), "%s", r->why != NULL ? r->why : "");
    for (char *p = j->why; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20) {
            *p = ' ';
        }
    }
    j->out = r->out_len > 0 ? malloc(r->out_len) : NULL;
    j->err = r->err_len > 0 ? malloc(r->err_len) : NULL;
    j->out_len = j->out != NULL ? r->out_len : 0;
    j->err_len = j->err != NULL ? r->err_len : 0;
    if (j->out != NULL) {
        memcpy(j->out, r->out, j->out_len);
    }
    if (j->err != NULL) {
        memcpy(j->err, r->err, j->err_len);
    }
    if (store_job_finish(run->st, j) != ERR_OK) {
        log_msg(LOG_ERROR, "job %s: cannot record its result", j->id);
    }
    run->done(run->arg, j);
    store_job_free_output(j);
    free(j);
    free(run);
}

static int admin_job_new(const struct admin_ctx *c, const char *agent_id,
                         const char *command, const char *cwd, int timeout,
                         bool queued, struct store_job *out,
                         struct admin_err *e)
{
    char detail[256];
    int r;
    if (agent_id == NULL || agent_id[0] == '\0' ||
        strlen(agent_id) > JOB_AGENT_MAX) {
        return admin_fail(e, ERR_INVALID, "agent: 1-%d characters",
                          JOB_AGENT_MAX);
    }
    if (command == NULL || command[0] == '\0' ||
        strlen(command) > JOB_CMD_MAX) {
        return admin_fail(e, ERR_INVALID, "command: 1-%d bytes", JOB_CMD_MAX);
    }
    if (cwd != NULL && cwd[0] != '\0' &&
        (cwd[0] != '/' || strlen(cwd) > JOB_CWDIR_MAX)) {
        return admin_fail(e, ERR_INVALID, "cwd: an absolute path");
    }
    if (timeout == 0) {
        timeout = ADMIN_JOB_TIMEOUT_DEFAULT;
    }
    if (timeout < 1 || timeout > ADMIN_JOB_TIMEOUT_MAX) {
        return admin_fail(e, ERR_INVALID, "timeout: 1-%d seconds",
                          ADMIN_JOB_TIMEOUT_MAX);
    }
    memset(out, 0, sizeof(*out));
    snprintf(out->agent_id, sizeof(out->agent_id), "%s", agent_id);
    snprintf(out->command, sizeof(out->command), "%s", command);
    snprintf(out->cwd, sizeof(out->cwd), "%s", cwd != NULL ? cwd : "");
    snprintf(out->started_by, sizeof(out->started_by), "%s",
             c->actor != NULL ? c->actor : "");
    out->timeout = timeout;
    if (queued) {
        snprintf(out->status, sizeof(out->status), "queued");
    }
    if ((r = store_job_add(c->st, out)) != ERR_OK) {
        return admin_fail(e, r, "cannot record the job");
    }
    snprintf(detail, sizeof(detail), "job %s: %.200s", out->id, command);
    (void)admin_audit(c, "job.run", agent_id, detail, NULL);
    return ERR_OK;
}

int admin_job_queue(const struct admin_ctx *c, const char *agent_id,
                    const char *command, const char *cwd, int timeout,
                    struct store_job *out, bool *delivered, struct admin_err *e)
{
    int r;

    *delivered = false;
    if ((r = admin_job_new(c, agent_id, command, cwd, timeout, true, out, e)) !=
        ERR_OK) {
        return r;
    }
    /* the node holding the agent may be another one (store/notices.h) */
    (void)store_notice_publish(c->st, HUB_CHANGE_JOBS);
    if (c->data_dir == NULL ||
        notify_tell(c->data_dir, HUB_CHANGE_JOBS, delivered) != ERR_OK ||
        !*delivered) {
        *delivered = false;
        snprintf(out->status, sizeof(out->status), "failed");
        snprintf(out->why, sizeof(out->why), "no server is running");
        out->exit_code = -1;
        (void)store_job_finish(c->st, out);
    }
    return ERR_OK;
}

int admin_job_run(const struct admin_ctx *c, const char *agent_id,
                  const char *command, const char *cwd, int timeout,
                  admin_job_done_fn done, void *arg, struct store_job *out,
                  struct admin_err *e)
{
    struct admin_job_run *run;
    int r;

    if (c->hub == NULL) {
        return admin_fail(e, ERR_INVALID,
                          "jobs run in the server: it is not running");
    }
    if ((r = admin_job_new(c, agent_id, command, cwd, timeout, false, out,
                           e)) != ERR_OK) {
        return r;
    }
    if (timeout == 0) {
        timeout = ADMIN_JOB_TIMEOUT_DEFAULT;
    }
    run = calloc(1, sizeof(*run));
    if (run == NULL || (run->j = malloc(sizeof(*run->j))) == NULL) {
        free(run);
        return admin_fail(e, ERR_NOMEM, "out of memory");
    }
    *run->j = *out;
    run->st = c->st;
    run->done = done;
    run->arg = arg;
    if ((r = hub_job_run(c->hub, agent_id, command, cwd, timeout,
                         admin_job_result, run)) != ERR_OK) {
        struct hub_job_result fr = {
            .status = "failed", .exit_code = -1, .why = "cannot start the job"};
        admin_job_result(run, &fr);
    }
    return ERR_OK;
}

static json_t *admin_job_bytes(const uint8_t *p, size_t len)
{
    json_t *s = json_stringn((const char *)p, len);
    char *c;
    size_t o = 0;

    if (s != NULL || len == 0) {
        return s != NULL ? s : json_string("");
    }
    /* not UTF-8: bytes >= 0x80 become U+FFFD */
    if ((c = malloc(len * 3 + 1)) == NULL) {
        return json_null();
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x80 && p[i] != 0) {
            c[o++] = (char)p[i];
        } else {
            c[o++] = (char)0xef;
            c[o++] = (char)0xbf;
            c[o++] = (char)0xbd;
        }
    }
    s = json_stringn(c, o);
    free(c);
    return s;
}

json_t *admin_job_json(const struct store_job *j, bool with_output)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "agent", json_string(j->agent_id));
    json_object_set_new(o, "started_by", json_string(j->started_by));
    json_object_set_new(o, "command", admin_json_text(j->command));
    json_object_set_new(o, "cwd", json_string(j->cwd));
    json_object_set_new(o, "timeout", json_integer(j->timeout));
    json_object_set_new(o, "status", json_string(j->status));
    json_object_set_new(o, "exit_code",
                        j->exit_code >= 0 ? json_integer(j->exit_code)
                                          : json_null());
    json_object_set_new(o, "signal",
                        j->signal > 0 ? json_integer(j->signal) : json_null());
    json_object_set_new(o, "why", json_string(j->why));
    json_object_set_new(o, "started", admin_json_time(j->started_at));
    json_object_set_new(o, "finished",
                        j->finished_at != 0 ? admin_json_time(j->finished_at)
                                            : json_null());
    if (with_output) {
        json_object_set_new(o, "stdout", admin_job_bytes(j->out, j->out_len));
        json_object_set_new(o, "stderr", admin_job_bytes(j->err, j->err_len));
    }
    return o;
}
