/*
 * portcullis-agent: keeps one outbound connection to the access server so
 * that users can reach this machine (and what its allow-list permits)
 * through it. See docs/agent.md and docs/agent-protocol.md.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include "agent/agent_conf.h"
#include "agent/conn.h"
#include "agent/job.h"
#include "common/err.h"
#include "common/log.h"

static const char agent_usage[] =
    "usage: portcullis-agent [-c FILE] [--server URL] [--fingerprint "
    "SHA256:...]\n"
    "                        [--credential ID:SECRET] [--id ID] [--name N]\n"
    "                        [--tag T]... [--allow [udp:]HOST:PORT]...\n"
    "                        [--proxy http://[user:pass@]host:port] [--ca "
    "FILE]\n"
    "                        [--keepalive S] [--timeout S] [--log-level L]\n"
    "       portcullis-agent --help | --version\n"
    "\n"
    "Connects out to a Portcullis server (ws:// or wss://, optionally through\n"
    "an HTTP proxy) and serves the streams it asks for, to the targets the\n"
    "allow-list permits (default: this machine's loopback only).\n"
    "\n"
    "  -c, --config FILE    key = value lines; flags override the file\n"
    "  --server URL         ws://HOST[:PORT] or wss://HOST[:PORT] (path "
    "/agent)\n"
    "  --fingerprint FP     the server's host key, as `portcullis init` "
    "prints it\n"
    "  --credential ID:SECRET  from `portcullis credential add` (prefer the\n"
    "                       config file: the command line is visible to all)\n"
    "  --id ID              agent ID (default: /etc/machine-id)\n"
    "  --name N             display name (default: the host name)\n"
    "  --tag T              a tag (repeatable)\n"
    "  --allow ENTRY        allowed target (repeatable): [udp:]HOST:PORT, "
    "HOST a\n"
    "                       name, address, [IPv6] or CIDR; PORT N, LO-HI or "
    "*\n"
    "  --proxy URL          HTTP proxy, reached with CONNECT\n"
    "  --ca FILE            trust only this CA for wss:// (default: system "
    "CAs)\n"
    "  --keepalive S        PING after S seconds of silence (default 10)\n"
    "  --timeout S          hang up after S seconds of silence (default 25)\n"
    "  --log-level L        error, warn, info (default) or debug\n";

#define AGENT_SWEEP_MS (3600 * 1000)

/* Kept results nobody asked for (job_results_keep_days): now, then
 * hourly. */
static void agent_on_sweep(uv_timer_t *t)
{
    const struct job_rules *r = t->data;
    int n = job_results_sweep(r, (long long)r->results_keep_days * 86400);

    if (n < 0) {
        log_warn("cannot read %s to delete old kept results", r->results_dir);
    } else if (n > 0) {
        log_info("deleted %d kept job result%s older than %d days from %s", n,
                 n == 1 ? "" : "s", r->results_keep_days, r->results_dir);
    }
}

static void agent_on_signal(uv_signal_t *h, int signum)
{
    log_info("signal %d: stopping", signum);
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    struct agent_conf conf;
    struct agent_ctx_opts opts = {.rx_buffer = 65536, .quiet = false};
    struct agent_ctx *ctx = NULL;
    struct agent_conn *conn = NULL;
    enum agent_conf_action action;
    uv_signal_t sigint, sigterm;
    uv_timer_t sweep;
    bool sweeping = false;
    uv_loop_t loop;
    char why[512];
    int r, rc = 1;

    log_init("portcullis-agent", LOG_INFO);
    signal(SIGPIPE, SIG_IGN);
    agent_conf_init(&conf);
    r = agent_conf_args(&conf, argc, argv, NULL, NULL, NULL, &action, why,
                        sizeof(why));
    if (r != ERR_OK) {
        fprintf(stderr, "portcullis-agent: %s\n",
                r == ERR_CONFIG ? why : err_str(r));
        agent_conf_free(&conf);
        return 2;
    }
    if (action == AGENT_CONF_HELP) {
        fputs(agent_usage, stdout);
        agent_conf_free(&conf);
        return 0;
    }
    if (action == AGENT_CONF_VERSION) {
        printf("portcullis-agent %s\n", PORTCULLIS_VERSION);
        agent_conf_free(&conf);
        return 0;
    }
    if ((r = agent_conf_finish(&conf, false, why, sizeof(why))) != ERR_OK) {
        fprintf(stderr, "portcullis-agent: %s\n",
                r == ERR_CONFIG ? why : err_str(r));
        agent_conf_free(&conf);
        return 2;
    }
    log_set_level((enum log_level)conf.log_level);
    if (sodium_init() < 0) {
        fprintf(stderr, "portcullis-agent: libsodium failed to start\n");
        agent_conf_free(&conf);
        return 1;
    }
    if (geteuid() == 0) {
        log_warn("running as root is not needed; run as an unprivileged "
                 "user (see docs/agent.md)");
    }
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "portcullis-agent: cannot start the event loop\n");
        agent_conf_free(&conf);
        return 1;
    }
    if (agent_ctx_new(&ctx, &loop, &conf, &opts) != ERR_OK) {
        goto out;
    }
    if ((r = agent_conn_new(&conn, ctx, &conf, NULL)) != ERR_OK) {
        log_error("cannot start: %s", err_str(r));
        goto out;
    }
    uv_signal_init(&loop, &sigint);
    uv_signal_init(&loop, &sigterm);
    uv_signal_start(&sigint, agent_on_signal, SIGINT);
    uv_signal_start(&sigterm, agent_on_signal, SIGTERM);
    log_info("portcullis-agent %s starting: agent %s, server %s%s",
             PORTCULLIS_VERSION, conf.id, conf.server,
             conf.proxy != NULL ? " (through the proxy)" : "");
    if (conf.jobs.results_dir[0] != '\0' && conf.jobs.results_keep_days > 0) {
        uv_timer_init(&loop, &sweep);
        sweep.data = &conf.jobs;
        uv_timer_start(&sweep, agent_on_sweep, 0, AGENT_SWEEP_MS);
        sweeping = true;
    }
    agent_conn_start(conn);
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = 0;
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    if (sweeping) {
        uv_close((uv_handle_t *)&sweep, NULL);
    }
out:
    agent_conn_free(conn);
    agent_ctx_free(ctx);
    uv_run(&loop, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop) != 0) {
        log_debug("the event loop still had handles at exit");
    }
    agent_conf_free(&conf);
    return rc;
}
