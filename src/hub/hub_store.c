/*
 * The hub's store work off the main loop (issue 18; docs/architecture.md
 * "The hub's store work").
 *
 * On PostgreSQL every statement the loop makes waits for the database;
 * one that is slow or stopped answering held the whole loop (every agent,
 * tunnel, the web UI, logins' monitor traffic) for up to the statement
 * deadline, per statement. The hub made them on the loop for each
 * agent's password check, its announcement, its going offline, a
 * reclaim, and for every store change (a credential and an agent read
 * per connected agent). Now each is a job for one of two store workers
 * (store_worker.h) of the hub's own:
 *
 *   reads  (HUB_READ_CONNS connections): the credential lookup and
 *          secret check of a password attempt, and the check after a
 *          change (hub_changed: one job per change, however many
 *          agents; changes that come while one runs are merged into
 *          the next);
 *   writes (one connection, so its FIFO keeps order): an announcement
 *          (the binding check, the credential check and the online
 *          write, one job), an agent going offline, a reclaim. An
 *          agent that goes online and then offline fast is written
 *          online first and offline after, since both are queued on
 *          the loop in that order and one connection runs them in
 *          order.
 *
 * On SQLite (a local file) the workers are inline: each job runs at
 * once on the main store, before store_worker_run returns, as before.
 *
 * A job never holds an agent it cannot find again: the agent points to
 * its job and the job to its agent, and hub_agent_free cuts both links
 * (hub_store_detach) before the agent goes, so a job whose agent went
 * meanwhile finds NULL when it comes back and costs nothing more (an
 * announcement that may have written the agent online is followed by
 * its offline write). A job's work touches only its own copies and its
 * connection.
 *
 * Bounds (a hostile agent flooding authentication requests): one lookup
 * in flight per connection (hub.c closes a connection that asks again
 * meanwhile) and HUB_AUTH_INFLIGHT in all (beyond that a connection is
 * closed at once, unanswered: the agent tries again after its back-off).
 * Announcements are at most one per authenticated connection; offline
 * writes at most one per announcement.
 */
#include "hub/hub_internal.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/util.h"
#include "store/notices.h"
#include "store/store_worker.h"

#define HUB_PASSWORD_MAX 1100 /* past secret.c's SECRET_INPUT_MAX */

/* --- the password check --- */

struct hub_auth_job {
    struct store_work job; /* first: the worker's */
    struct hub *h;
    struct hub_agent *a; /* NULL once it went */
    char user[STORE_ID_MAX + 1];
    char password[HUB_PASSWORD_MAX + 1];
    bool stale; /* a credential changed while it ran: look again */
    int result; /* ERR_OK, ERR_NOT_FOUND, ERR_AUTH, or a store error */
    char cred_id[STORE_ID_MAX + 1];
    struct hub_auth_job *next; /* in h->auths */
};

static void hub_auth_work(struct store_work *j, struct store *st)
{
    struct hub_auth_job *aj = (struct hub_auth_job *)j;
    struct store_credential c;
    int r = ERR_NOT_FOUND;

    memset(&c, 0, sizeof(c));
    if (aj->user[0] != '\0') {
        r = store_credential_get(st, aj->user, &c);
    }
    /* Same work whether or not the ID exists (one argon2id run). */
    if (secret_verify(r == ERR_OK ? c.secret_hash : "", aj->password) ==
            ERR_OK &&
        r == ERR_OK) {
        snprintf(aj->cred_id, sizeof(aj->cred_id), "%s", c.id);
        aj->result = ERR_OK;
    } else {
        aj->result = r == ERR_OK ? ERR_AUTH : r;
    }
    sodium_memzero(&c, sizeof(c));
}

static void hub_auth_job_free(struct hub_auth_job *aj)
{
    sodium_memzero(aj, sizeof(*aj));
    free(aj);
}

static void hub_auth_unlink(struct hub *h, struct hub_auth_job *aj)
{
    for (struct hub_auth_job **pp = &h->auths; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == aj) {
            *pp = aj->next;
            h->nauths--;
            h->auth_full = h->auth_full && h->nauths > HUB_AUTH_INFLIGHT / 2;
            return;
        }
    }
}

static void hub_auth_done(void *owner, struct store_work *j)
{
    struct hub_auth_job *aj = (struct hub_auth_job *)j;
    struct hub *h = aj->h;
    struct hub_agent *a;
    int result;

    if (owner == NULL) {
        hub_auth_job_free(aj); /* dropped at stop: the agents are gone */
        return;
    }
    a = aj->a;
    if (a != NULL && aj->stale && aj->result == ERR_OK && !a->dead) {
        /* a credential was deleted (or changed) while this ran: what it
         * read may be from before; read again */
        aj->stale = false;
        aj->result = ERR_INTERNAL;
        memset(&aj->job, 0, sizeof(aj->job));
        aj->job.work = hub_auth_work;
        aj->job.done = hub_auth_done;
        store_worker_run(h->reads, &aj->job);
        return;
    }
    hub_auth_unlink(h, aj);
    if (!j->ran) {
        aj->result = ERR_STORE;
    }
    result = aj->result;
    if (a != NULL) {
        a->auth_job = NULL;
        hub_auth_result(a, result, aj->cred_id);
    }
    hub_auth_job_free(aj);
}

int hub_auth_lookup(struct hub_agent *a, const char *user, const char *password)
{
    struct hub *h = a->h;
    struct hub_auth_job *aj;

    if (h->nauths >= HUB_AUTH_INFLIGHT) {
        return ERR_DENIED;
    }
    if ((aj = calloc(1, sizeof(*aj))) == NULL) {
        return ERR_NOMEM;
    }
    aj->h = h;
    aj->a = a;
    aj->result = ERR_INTERNAL;
    /* an ID too long to exist is looked up as no ID: the same work */
    if (user != NULL && strlen(user) <= STORE_ID_MAX) {
        snprintf(aj->user, sizeof(aj->user), "%s", user);
    }
    if (password != NULL) {
        snprintf(aj->password, sizeof(aj->password), "%s", password);
    }
    aj->job.work = hub_auth_work;
    aj->job.done = hub_auth_done;
    aj->next = h->auths;
    h->auths = aj;
    h->nauths++;
    a->auth_job = aj;
    store_worker_run(h->reads, &aj->job); /* inline: done already ran */
    return ERR_OK;
}

/* --- the announcement --- */

enum hub_ann_outcome {
    HUB_ANN_ONLINE,
    HUB_ANN_BOUND,  /* bound to another credential (named in bound) */
    HUB_ANN_IN_USE, /* not written: another connection holds the ID */
    HUB_ANN_FULL,   /* not written: agent_max */
    HUB_ANN_CRED_GONE /* the credential was deleted since the login */,
    HUB_ANN_STORE, /* the store failed */
};

struct hub_ann_job {
    struct store_work job; /* first: the worker's */
    struct hub *h;
    struct hub_agent *a;        /* NULL once it went */
    enum hub_ann_write why_not; /* HUB_ANN_W_YES: write it online */
    struct store_agent sa;      /* what to write */
    enum hub_ann_outcome outcome;
    char bound[STORE_ID_MAX + 1];
};

static void hub_ann_work(struct store_work *j, struct store *st)
{
    struct hub_ann_job *aj = (struct hub_ann_job *)j;
    struct store_agent *cur = malloc(sizeof(*cur));
    struct store_credential c;
    int r;

    if (cur == NULL) {
        aj->outcome = HUB_ANN_STORE;
        return;
    }
    /* The binding first: a credential that does not own the ID learns
     * nothing else (not even whether it is online) and cannot make the
     * hub probe the real agent. store_agent_online() checks it again in
     * the same transaction as the write. */
    r = store_agent_get(st, aj->sa.id, cur);
    if (r == ERR_OK && cur->bound_credential[0] != '\0' &&
        strcmp(cur->bound_credential, aj->sa.credential_id) != 0) {
        snprintf(aj->bound, sizeof(aj->bound), "%s", cur->bound_credential);
        aj->outcome = HUB_ANN_BOUND;
        goto out;
    }
    if (r != ERR_OK && r != ERR_NOT_FOUND) {
        aj->outcome = HUB_ANN_STORE;
        goto out;
    }
    if (aj->why_not == HUB_ANN_W_IN_USE) {
        aj->outcome = HUB_ANN_IN_USE;
        goto out;
    }
    if (aj->why_not == HUB_ANN_W_FULL) {
        aj->outcome = HUB_ANN_FULL;
        goto out;
    }
    /* The credential may have gone since the login. */
    r = store_credential_get(st, aj->sa.credential_id, &c);
    sodium_memzero(&c, sizeof(c));
    if (r != ERR_OK) {
        aj->outcome = r == ERR_NOT_FOUND ? HUB_ANN_CRED_GONE : HUB_ANN_STORE;
        goto out;
    }
    r = store_agent_online(st, &aj->sa, util_now());
    if (r == ERR_DENIED) {
        /* bound to another credential since the check above */
        snprintf(aj->bound, sizeof(aj->bound), "?");
        aj->outcome = HUB_ANN_BOUND;
    } else {
        aj->outcome = r == ERR_OK ? HUB_ANN_ONLINE : HUB_ANN_STORE;
    }
out:
    free(cur);
}

static void hub_ann_job_done(void *owner, struct store_work *j)
{
    struct hub_ann_job *aj = (struct hub_ann_job *)j;
    struct hub_agent *a = aj->a;

    if (owner != NULL && a != NULL) {
        a->ann_job = NULL;
        hub_claim_remove(a);
        if (!j->ran) {
            aj->outcome = HUB_ANN_STORE;
        }
        switch (aj->outcome) {
        case HUB_ANN_ONLINE:
            hub_announce_online(a, &aj->sa);
            break;
        case HUB_ANN_BOUND:
            hub_refuse_bound(a, aj->sa.id, aj->bound);
            break;
        case HUB_ANN_IN_USE:
            hub_announce_in_use(a, aj->sa.id);
            break;
        case HUB_ANN_FULL:
            hub_refuse(a, "too many agents");
            break;
        case HUB_ANN_CRED_GONE:
            hub_refuse(a, "credential deleted");
            break;
        case HUB_ANN_STORE:
            hub_refuse(a, "internal error (store)");
            break;
        }
        if (!a->in_service && !a->dead) {
            hub_agent_service(a);
        }
    }
    free(aj);
}

int hub_announce_store(struct hub_agent *a, const struct store_agent *sa,
                       enum hub_ann_write w)
{
    struct hub_ann_job *aj = calloc(1, sizeof(*aj));

    if (aj == NULL) {
        return ERR_NOMEM;
    }
    aj->h = a->h;
    aj->a = a;
    aj->why_not = w;
    aj->sa = *sa;
    aj->outcome = HUB_ANN_STORE;
    aj->job.work = hub_ann_work;
    aj->job.done = hub_ann_job_done;
    a->ann_job = aj;
    a->ann_writes = w == HUB_ANN_W_YES;
    store_worker_run(a->h->writes, &aj->job);
    return ERR_OK;
}

/* --- offline --- */

struct hub_offline_job {
    struct store_work job; /* first: the worker's */
    char id[AGENT_ID_MAX + 1];
    int64_t now;
    int r;
};

static void hub_offline_work(struct store_work *j, struct store *st)
{
    struct hub_offline_job *oj = (struct hub_offline_job *)j;

    oj->r = store_agent_offline(st, oj->id, oj->now);
}

static void hub_offline_done(void *owner, struct store_work *j)
{
    struct hub_offline_job *oj = (struct hub_offline_job *)j;

    if (owner != NULL &&
        (!j->ran || (oj->r != ERR_OK && oj->r != ERR_NOT_FOUND))) {
        log_warn("agent %s: cannot mark it offline in the store", oj->id);
    }
    free(oj);
}

void hub_offline_store(struct hub *h, const char *id)
{
    struct hub_offline_job *oj;

    if (h->stopping) {
        /* at stop: written on the loop, as the last word (the writes
         * worker is stopped already) */
        if (store_agent_offline(h->store, id, util_now()) != ERR_OK) {
            log_warn("agent %s: cannot mark it offline in the store", id);
        }
        return;
    }
    if ((oj = calloc(1, sizeof(*oj))) == NULL) {
        log_warn("agent %s: cannot mark it offline in the store (out of "
                 "memory)",
                 id);
        return;
    }
    snprintf(oj->id, sizeof(oj->id), "%s", id);
    oj->now = util_now();
    oj->job.work = hub_offline_work;
    oj->job.done = hub_offline_done;
    store_worker_run(h->writes, &oj->job);
}

/* --- a notice after the writes --- */

struct hub_notice_job {
    struct store_work job; /* first: the worker's */
    unsigned what;
    int r;
};

static void hub_notice_work(struct store_work *j, struct store *st)
{
    struct hub_notice_job *nj = (struct hub_notice_job *)j;

    nj->r = store_notice_publish(st, nj->what);
}

static void hub_notice_done(void *owner, struct store_work *j)
{
    struct hub_notice_job *nj = (struct hub_notice_job *)j;

    if (owner != NULL && (!j->ran || nj->r != ERR_OK)) {
        log_warn("hub: cannot tell the other nodes of a change (%u)", nj->what);
    }
    free(nj);
}

void hub_publish_after_writes(struct hub *h, unsigned what)
{
    struct hub_notice_job *nj;

    if (h->stopping) {
        /* at stop: on the loop, after the offline writes made there */
        if (store_notice_publish(h->store, what) != ERR_OK) {
            log_warn("hub: cannot tell the other nodes of a change (%u)", what);
        }
        return;
    }
    if ((nj = calloc(1, sizeof(*nj))) == NULL) {
        log_warn("hub: cannot tell the other nodes of a change (out of "
                 "memory)");
        return;
    }
    nj->what = what;
    nj->job.work = hub_notice_work;
    nj->job.done = hub_notice_done;
    store_worker_run(h->writes, &nj->job);
}

/* --- reclaim --- */

struct hub_reclaim_job {
    struct store_work job; /* first: the worker's */
    size_t n, written;
    int64_t now;
    char (*ids)[AGENT_ID_MAX + 1];
};

static void hub_reclaim_work(struct store_work *j, struct store *st)
{
    struct hub_reclaim_job *rj = (struct hub_reclaim_job *)j;

    for (size_t i = 0; i < rj->n; i++) {
        int r = store_agent_reclaim(st, rj->ids[i], rj->now);

        if (r == ERR_OK) {
            rj->written++;
        } else {
            log_info("hub: agent %s stays offline here: %s", rj->ids[i],
                     r == ERR_NOT_FOUND ? "another node holds it" : err_str(r));
        }
    }
}

static void hub_reclaim_done(void *owner, struct store_work *j)
{
    struct hub_reclaim_job *rj = (struct hub_reclaim_job *)j;

    if (owner != NULL && rj->written > 0) {
        log_info("hub: %zu agent(s) written online again on this node",
                 rj->written);
    }
    free(rj->ids);
    free(rj);
}

void hub_reclaim_agents(struct hub *h)
{
    struct hub_reclaim_job *rj;
    struct hub_agent *a;

    if (h == NULL || h->nonline == 0) {
        return;
    }
    if ((rj = calloc(1, sizeof(*rj))) == NULL ||
        (rj->ids = calloc(h->nonline, sizeof(*rj->ids))) == NULL) {
        free(rj);
        log_warn("hub: out of memory reclaiming agents");
        return;
    }
    for (a = h->agents; a != NULL && rj->n < h->nonline; a = a->next) {
        if (!a->dead && a->state == HA_ONLINE) {
            memcpy(rj->ids[rj->n++], a->id, sizeof(rj->ids[0]));
        }
    }
    rj->now = util_now();
    rj->job.work = hub_reclaim_work;
    rj->job.done = hub_reclaim_done;
    store_worker_run(h->writes, &rj->job);
}

/* --- the check after a change --- */

struct hub_check_agent {
    char id[AGENT_ID_MAX + 1];
    char cred[STORE_ID_MAX + 1];
    uint64_t serial; /* the connection it was asked for */
    int verdict;     /* 0 keep, 1 deleted, 2 bound to another */
};

struct hub_check_job {
    struct store_work job; /* first: the worker's */
    struct hub *h;
    unsigned what;
    /* credentials in use when it was queued, sorted; gone[i] set by the
     * work when no longer in the store */
    char (*creds)[STORE_ID_MAX + 1];
    bool *gone;
    size_t ncreds;
    struct hub_check_agent *agents;
    size_t nagents;
    bool failed; /* the store could not say: nothing is closed */
};

static int hub_cred_cmp(const void *x, const void *y)
{
    return strcmp(x, y);
}

static void hub_check_work(struct store_work *j, struct store *st)
{
    struct hub_check_job *cj = (struct hub_check_job *)j;
    struct store_credential *list = NULL;
    struct store_agent *sa = NULL;
    size_t n = 0;

    if (cj->ncreds > 0) {
        /* one statement for every credential in use */
        if (store_credential_list(st, &list, &n) != ERR_OK) {
            cj->failed = true;
            return;
        }
        for (size_t i = 0; i < cj->ncreds; i++) {
            cj->gone[i] = true;
        }
        for (size_t i = 0; i < n; i++) {
            char(*hit)[STORE_ID_MAX + 1] =
                bsearch(list[i].id, cj->creds, cj->ncreds, sizeof(*cj->creds),
                        hub_cred_cmp);

            if (hit != NULL) {
                cj->gone[hit - cj->creds] = false;
            }
        }
        store_credential_list_free(list, n);
    }
    if (cj->nagents > 0 && (sa = malloc(sizeof(*sa))) == NULL) {
        cj->failed = true;
        return;
    }
    for (size_t i = 0; i < cj->nagents; i++) {
        struct hub_check_agent *c = &cj->agents[i];
        int r = store_agent_get(st, c->id, sa);

        if (r == ERR_NOT_FOUND) {
            c->verdict = 1;
        } else if (r == ERR_OK && sa->bound_credential[0] != '\0' &&
                   strcmp(sa->bound_credential, c->cred) != 0) {
            c->verdict = 2;
        } else if (r != ERR_OK) {
            break; /* the store failed: keep the rest */
        }
    }
    free(sa);
}

static void hub_check_job_free(struct hub_check_job *cj)
{
    free(cj->creds);
    free(cj->gone);
    free(cj->agents);
    free(cj);
}

static void hub_check_done(void *owner, struct store_work *j)
{
    struct hub_check_job *cj = (struct hub_check_job *)j;
    struct hub *h = owner;
    struct hub_agent *a, *next;
    unsigned again;

    if (h == NULL) {
        hub_check_job_free(cj);
        return;
    }
    h->check_busy = false;
    if (!j->ran || cj->failed) {
        log_warn("hub: cannot check the connected agents after a change "
                 "(the store failed); tried again at the next change");
    } else {
        for (a = h->agents; a != NULL && cj->ncreds > 0; a = next) {
            char(*hit)[STORE_ID_MAX + 1];

            next = a->next;
            if (a->dead || a->cred_id[0] == '\0') {
                continue;
            }
            hit = bsearch(a->cred_id, cj->creds, cj->ncreds, sizeof(*cj->creds),
                          hub_cred_cmp);
            if (hit != NULL && cj->gone[hit - cj->creds]) {
                static unsigned char reason[] = "credential deleted";

                if (a->wsi != NULL) {
                    lws_close_reason(a->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                                     reason, sizeof(reason) - 1);
                }
                hub_agent_close(a, "its credential was deleted", 0);
            }
        }
        for (size_t i = 0; i < cj->nagents; i++) {
            struct hub_check_agent *c = &cj->agents[i];

            if (c->verdict == 0 || (a = hub_find_online(h, c->id)) == NULL ||
                a->serial != c->serial || a->dead) {
                continue;
            }
            hub_agent_close(a,
                            c->verdict == 1
                                ? "deleted by an administrator"
                                : "its ID was bound to another credential by "
                                  "an administrator",
                            0);
        }
    }
    hub_check_job_free(cj);
    again = h->check_again;
    h->check_again = 0;
    if (again != 0) {
        hub_check_begin(h, again);
    }
}

void hub_check_begin(struct hub *h, unsigned what)
{
    struct hub_check_job *cj;
    struct hub_agent *a;
    size_t nc = 0, na = 0;

    if (what & HUB_CHANGE_CREDENTIALS) {
        /* a lookup in flight may have read the credential before the
         * change: it reads again before it lets the agent in */
        for (struct hub_auth_job *aj = h->auths; aj != NULL; aj = aj->next) {
            aj->stale = true;
        }
    }
    if (h->check_busy) {
        h->check_again |= what;
        return;
    }
    if ((cj = calloc(1, sizeof(*cj))) == NULL ||
        (h->nconns > 0 &&
         ((cj->creds = calloc(h->nconns, sizeof(*cj->creds))) == NULL ||
          (cj->gone = calloc(h->nconns, sizeof(*cj->gone))) == NULL ||
          (cj->agents = calloc(h->nonline > 0 ? h->nonline : 1,
                               sizeof(*cj->agents))) == NULL))) {
        if (cj != NULL) {
            hub_check_job_free(cj);
        }
        log_warn("hub: out of memory checking agents after a change");
        return;
    }
    cj->h = h;
    cj->what = what;
    for (a = h->agents; a != NULL; a = a->next) {
        if (a->dead || a->cred_id[0] == '\0') {
            continue;
        }
        if ((what & HUB_CHANGE_CREDENTIALS) && nc < h->nconns) {
            memcpy(cj->creds[nc++], a->cred_id, sizeof(cj->creds[0]));
        }
        if ((what & HUB_CHANGE_AGENTS) && a->state == HA_ONLINE &&
            na < h->nonline) {
            struct hub_check_agent *c = &cj->agents[na++];

            memcpy(c->id, a->id, sizeof(c->id));
            memcpy(c->cred, a->cred_id, sizeof(c->cred));
            c->serial = a->serial;
        }
    }
    if (nc > 1) {
        size_t k = 1;

        qsort(cj->creds, nc, sizeof(*cj->creds), hub_cred_cmp);
        for (size_t i = 1; i < nc; i++) {
            if (strcmp(cj->creds[i], cj->creds[k - 1]) != 0) {
                memmove(cj->creds[k++], cj->creds[i], sizeof(cj->creds[0]));
            }
        }
        nc = k;
    }
    cj->ncreds = nc;
    cj->nagents = na;
    if (nc == 0 && na == 0) {
        hub_check_job_free(cj);
        return;
    }
    cj->job.work = hub_check_work;
    cj->job.done = hub_check_done;
    h->check_busy = true;
    store_worker_run(h->reads, &cj->job);
}

/* --- the workers --- */

int hub_store_start(struct hub *h)
{
    if ((h->reads = store_worker_new(
             h->loop, h->store, h->cfg->store_path, HUB_READ_CONNS,
             "the agent hub's store reads", h)) == NULL ||
        (h->writes = store_worker_new(h->loop, h->store, h->cfg->store_path, 1,
                                      "the agent hub's store writes", h)) ==
            NULL) {
        return ERR_NOMEM;
    }
    return hub_jobs_store_start(h);
}

void hub_store_stop(struct hub *h)
{
    /* What still waits is dropped (an announcement's agent is not online
     * here; the next start writes this node's agents offline), what runs
     * is waited for a while. The agents went before (hub_stop), their
     * offline written on the loop (h->stopping). */
    h->stopping = true;
    hub_jobs_store_stop(h);
    (void)store_worker_stop(h->writes, HUB_STOP_MS);
    h->writes = NULL;
    (void)store_worker_stop(h->reads, HUB_STOP_MS);
    h->reads = NULL;
}

void hub_store_detach(struct hub_agent *a)
{
    if (a->auth_job != NULL) {
        a->auth_job->a = NULL;
        a->auth_job = NULL;
    }
    if (a->ann_job != NULL) {
        a->ann_job->a = NULL;
        a->ann_job = NULL;
        hub_claim_remove(a);
        if (a->ann_writes) {
            /* it may write the agent online: offline follows, in order */
            hub_offline_store(a->h, a->ann_id);
        }
    }
}
