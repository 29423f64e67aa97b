/*
 * portcullis-agent-load: opens N agent connections with distinct IDs
 * (PREFIX1 .. PREFIXN) from one process, with the agent's own code, and
 * reports how many are online; for the idle-agents benchmark (bench/).
 * Not installed.
 *
 *   portcullis-agent-load --count N [--id-prefix P] [--rate R]
 *                         [--duration S] [agent flags or -c FILE]
 *
 * Every agent connection costs three descriptors (the WebSocket and the
 * socketpair), so the tool raises RLIMIT_NOFILE to its hard limit and
 * refuses a count that cannot fit.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <sodium.h>
#include <uv.h>

#include "agent/agent_conf.h"
#include "agent/conn.h"
#include "common/err.h"
#include "common/log.h"

struct load {
    long count;
    long rate;     /* connections started per second */
    long duration; /* seconds; 0: until SIGINT/SIGTERM */
    char prefix[AGENT_ID_MAX - 6 + 1];
    struct agent_ctx *ctx;
    struct agent_conn **conns;
    long started;
    uint64_t t0;
    uint64_t all_online_ms; /* when every connection was first online */
    uv_timer_t start_timer, report_timer;
    const struct agent_conf *conf;
};

static int load_extra(void *arg, const char *key, const char *value, char *why,
                      size_t whylen)
{
    struct load *l = arg;
    char *end = NULL;
    long v;

    if (strcmp(key, "id-prefix") == 0) {
        if (strlen(value) >= sizeof(l->prefix) ||
            (value[0] != '\0' && !agent_conf_valid_id(value))) {
            snprintf(why, whylen, "at most %zu of A-Z a-z 0-9 . _ -",
                     sizeof(l->prefix) - 1);
            return ERR_CONFIG;
        }
        snprintf(l->prefix, sizeof(l->prefix), "%s", value);
        return ERR_OK;
    }
    errno = 0;
    v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < 0 || v > 1000000) {
        snprintf(why, whylen, "expected a number, got '%.40s'", value);
        return ERR_CONFIG;
    }
    if (strcmp(key, "count") == 0) {
        l->count = v;
    } else if (strcmp(key, "rate") == 0) {
        l->rate = v;
    } else {
        l->duration = v;
    }
    return ERR_OK;
}

static void load_report(struct load *l, const char *when)
{
    printf("%s: online=%zu started=%ld of %ld elapsed=%.1fs\n", when,
           agent_ctx_online(l->ctx), l->started, l->count,
           (double)(uv_now(uv_default_loop()) - l->t0) / 1000.0);
    fflush(stdout);
}

static void load_start_cb(uv_timer_t *t)
{
    struct load *l = t->data;
    long batch = l->rate / 10 > 0 ? l->rate / 10 : 1;

    for (long i = 0; i < batch && l->started < l->count; i++) {
        agent_conn_start(l->conns[l->started++]);
    }
    if (l->started >= l->count) {
        uv_timer_stop(t);
    }
}

static void load_report_cb(uv_timer_t *t)
{
    struct load *l = t->data;
    uint64_t now = uv_now(t->loop);

    if (l->all_online_ms == 0 && agent_ctx_online(l->ctx) == (size_t)l->count) {
        l->all_online_ms = now;
        printf("all %ld agents online after %.1fs\n", l->count,
               (double)(now - l->t0) / 1000.0);
    }
    load_report(l, "status");
    if (l->duration > 0 && now - l->t0 >= (uint64_t)l->duration * 1000) {
        uv_stop(t->loop);
    }
}

static void load_on_signal(uv_signal_t *h, int signum)
{
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    static const char *const extra[] = {"count", "id-prefix", "rate",
                                        "duration", NULL};
    struct load l = {.count = 0, .rate = 200, .prefix = "load-"};
    struct agent_ctx_opts opts = {.rx_buffer = 4096, .quiet = true};
    struct agent_conf conf;
    enum agent_conf_action action;
    struct rlimit rl;
    uv_signal_t sigint, sigterm;
    uv_loop_t *loop = uv_default_loop();
    char why[512], id[AGENT_ID_MAX + 1];
    int r, rc = 1;

    log_init("portcullis-agent-load", LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    agent_conf_init(&conf);
    conf.log_level = LOG_WARN;
    r = agent_conf_args(&conf, argc, argv, extra, load_extra, &l, &action, why,
                        sizeof(why));
    if (r == ERR_OK && action != AGENT_CONF_RUN) {
        printf("usage: portcullis-agent-load --count N [--id-prefix P] "
               "[--rate R] [--duration S]\n"
               "       [-c FILE] [portcullis-agent flags]\n"
               "Opens N agent connections (IDs P1..PN) and reports how many "
               "are online.\n");
        agent_conf_free(&conf);
        return 0;
    }
    if (r == ERR_OK && l.count < 1) {
        snprintf(why, sizeof(why), "--count N is required (N >= 1)");
        r = ERR_CONFIG;
    }
    if (r == ERR_OK) {
        r = agent_conf_finish(&conf, true, why, sizeof(why));
    }
    if (r != ERR_OK) {
        fprintf(stderr, "portcullis-agent-load: %s\n",
                r == ERR_CONFIG ? why : err_str(r));
        agent_conf_free(&conf);
        return 2;
    }
    log_set_level((enum log_level)conf.log_level);
    if (sodium_init() < 0) {
        agent_conf_free(&conf);
        return 1;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur != RLIM_INFINITY &&
            (rlim_t)l.count * 3 + 64 > rl.rlim_cur) {
            fprintf(stderr,
                    "portcullis-agent-load: %ld agents need %ld descriptors; "
                    "the hard limit is %lu\n",
                    l.count, l.count * 3 + 64, (unsigned long)rl.rlim_cur);
            agent_conf_free(&conf);
            return 2;
        }
    }
    if (agent_ctx_new(&l.ctx, loop, &conf, &opts) != ERR_OK) {
        agent_conf_free(&conf);
        return 1;
    }
    if ((l.conns = calloc((size_t)l.count, sizeof(*l.conns))) == NULL) {
        goto out;
    }
    for (long i = 0; i < l.count; i++) {
        snprintf(id, sizeof(id), "%s%ld", l.prefix, i + 1);
        if ((r = agent_conn_new(&l.conns[i], l.ctx, &conf, id)) != ERR_OK) {
            fprintf(stderr, "portcullis-agent-load: %s: %s\n", id, err_str(r));
            goto out;
        }
    }
    l.conf = &conf;
    l.t0 = uv_now(loop);
    uv_timer_init(loop, &l.start_timer);
    uv_timer_init(loop, &l.report_timer);
    l.start_timer.data = l.report_timer.data = &l;
    uv_timer_start(&l.start_timer, load_start_cb, 0,
                   l.rate > 0 ? (l.rate >= 10 ? 100 : 1000 / (uint64_t)l.rate)
                              : 100);
    uv_timer_start(&l.report_timer, load_report_cb, 1000, 1000);
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, load_on_signal, SIGINT);
    uv_signal_start(&sigterm, load_on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    load_report(&l, "final");
    rc = agent_ctx_online(l.ctx) == (size_t)l.count ? 0 : 1;
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&l.start_timer, NULL);
    uv_close((uv_handle_t *)&l.report_timer, NULL);
out:
    for (long i = 0; l.conns != NULL && i < l.count; i++) {
        agent_conn_free(l.conns[i]);
    }
    free(l.conns);
    agent_ctx_free(l.ctx);
    uv_run(loop, UV_RUN_NOWAIT);
    agent_conf_free(&conf);
    return rc;
}
