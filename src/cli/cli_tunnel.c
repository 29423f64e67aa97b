/*
 * `portcullis tunnel ...`: tunnels to ports on an agent's side (SPEC §6).
 *
 * A tunnel is a definition in the store; the running server turns it into
 * a listener on [tunnel] listen while its agent is online (src/hub/
 * tunnel.c) and writes the listener's state back. The checks and the
 * port choice are shared with the REST API (hub/tunnel_def.h).
 *
 * `add` tells the server (notify.h) and then waits up to
 * TUNNEL_WAIT_MS for it to write the tunnel's state, so its answer says
 * whether the tunnel listens ("listening"), waits for its agent ("agent
 * offline"), failed ("error: ..."), or no server has looked at it yet
 * ("pending").
 */
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/err.h"
#include "common/notify.h"
#include "common/util.h"
#include "hub/hub.h"
#include "hub/tunnel_def.h"
#include "store/agents.h"

#define TUNNEL_WAIT_MS 3000
#define TUNNEL_POLL_MS 100
/* Without $SSH_CONNECTION the admin sits at the server itself. */
#define TUNNEL_LOCAL_ACL "127.0.0.1/32,::1/128"

extern const struct cli_cmd cli_tunnel;

/* The ID `add` made, for the audit event written after run() returns. */
static char tunnel_added_id[STORE_ID_MAX + 1];

/* The creator's address: the first word of $SSH_CONNECTION or
 * $SSH_CLIENT ("192.0.2.7 51234 10.0.0.1 22"), into ip; false if
 * neither is set. */
static bool tunnel_ssh_client(char *ip, size_t iplen)
{
    const char *v = getenv("SSH_CONNECTION");
    size_t len;

    if (v == NULL || v[0] == '\0') {
        v = getenv("SSH_CLIENT");
    }
    if (v == NULL || v[0] == '\0') {
        return false;
    }
    len = strcspn(v, " ");
    snprintf(ip, iplen, "%.*s", (int)len, v);
    return true;
}

static void tunnel_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Tells a running server; a failure to tell is a warning (the change is
 * made and the server picks it up at its next start). */
static bool tunnel_notify(struct cli_ctx *ctx, unsigned what)
{
    bool delivered = false;
    int r = notify_tell(ctx->cfg.data_dir, what, &delivered);

    if (r != ERR_OK) {
        cli_error("warning: the running server could not be told (%s); "
                  "it applies the change at its next start",
                  err_str(r));
    }
    return delivered;
}

static int tunnel_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *remote = NULL, *acl = NULL;
    bool udp = false;
    int local_port = 0, idle = 0;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--remote", &remote),
        CLI_OPT_FLAG("--udp", &udp),
        CLI_OPT_INT("--local-port", &local_port, 1, 65535),
        CLI_OPT_STR("--acl", &acl),
        CLI_OPT_INT("--idle-timeout", &idle, 0, TUNNEL_IDLE_MAX),
        CLI_OPT_END,
    };
    struct tunnel_def_req req;
    struct store_tunnel t, now;
    char ip[64], why[512], actor[STORE_NAME_MAX + 1];
    struct passwd *pw;
    size_t used;
    int rc, r, waited;

    if ((rc = cli_parse(ctx, argc, argv, opts, "AGENT", pos)) != CLI_PARSED) {
        return rc;
    }
    if (remote == NULL) {
        return cli_usage(ctx, "missing --remote HOST:PORT");
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    memset(&req, 0, sizeof(req));
    req.agent_id = pos[0];
    req.remote = remote;
    req.udp = udp;
    req.local_port = local_port;
    req.idle_minutes = idle;
    if (acl != NULL) {
        req.acl = acl;
    } else if (tunnel_ssh_client(ip, sizeof(ip))) {
        req.default_ip = ip; /* the admin's own address only */
    } else {
        req.acl = TUNNEL_LOCAL_ACL;
    }
    if ((pw = getpwuid(getuid())) != NULL && pw->pw_name != NULL) {
        snprintf(actor, sizeof(actor), "cli:%.100s", pw->pw_name);
    } else {
        snprintf(actor, sizeof(actor), "cli:uid=%u", (unsigned)getuid());
    }
    req.created_by = actor;
    r = tunnel_def_add(ctx->st, &ctx->cfg, &req, &t, why, sizeof(why));
    if (r == ERR_INVALID || r == ERR_TOO_LONG) {
        return cli_usage(ctx, "%s", why);
    }
    if (r != ERR_OK) {
        return cli_error("%s", why);
    }
    memcpy(tunnel_added_id, t.id, sizeof(tunnel_added_id));
    ctx->audit_target = tunnel_added_id;
    used = strlen(ctx->audit_detail);
    snprintf(ctx->audit_detail + used, sizeof(ctx->audit_detail) - used,
             "%sagent=%s local_port=%d acl=%s", used > 0 ? " " : "", t.agent_id,
             t.local_port, t.acl);
    if (tunnel_notify(ctx, HUB_CHANGE_TUNNELS)) {
        /* The server writes the state once it has looked at the tunnel. */
        for (waited = 0; waited < TUNNEL_WAIT_MS; waited += TUNNEL_POLL_MS) {
            if (store_tunnel_get(ctx->st, t.id, &now) == ERR_OK &&
                now.state[0] != '\0') {
                memcpy(t.state, now.state, sizeof(t.state));
                break;
            }
            tunnel_sleep_ms(TUNNEL_POLL_MS);
        }
    }
    printf("id=%s\nport=%d\nstate=%s\n", t.id, t.local_port,
           tunnel_def_state(&t));
    return CLI_EXIT_OK;
}

static int tunnel_list_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *agent = NULL;
    bool json = false;
    const struct cli_opt opts[] = {CLI_OPT_FLAG("--json", &json),
                                   CLI_OPT_STR("--agent", &agent), CLI_OPT_END};
    struct store_tunnel *list = NULL;
    struct store_agent *a = NULL;
    struct cli_table *tb;
    char port[8], remote[STORE_HOST_MAX + 16], idle[16], used[32];
    size_t n = 0, i;
    json_t *arr;
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if (agent != NULL) {
        if ((a = calloc(1, sizeof(*a))) == NULL) {
            return cli_error("%s", err_str(ERR_NOMEM));
        }
        r = store_agent_get(ctx->st, agent, a);
        free(a);
        if (r != ERR_OK) {
            return cli_store_error(r, "agent", agent);
        }
    }
    if ((r = store_tunnel_list(ctx->st, agent, &list, &n)) != ERR_OK) {
        return cli_error("cannot list tunnels: %s", err_str(r));
    }
    if (json) {
        arr = json_array();
        for (i = 0; i < n; i++) {
            cli_json_append(&arr, tunnel_def_tunnel_json(&list[i]));
        }
        rc = cli_json_print(arr);
    } else {
        tb = cli_table_new(9, "ID", "AGENT", "PROTO", "PORT", "REMOTE", "ACL",
                           "STATE", "IDLE", "LAST USED");
        for (i = 0; i < n; i++) {
            snprintf(port, sizeof(port), "%d", list[i].local_port);
            snprintf(remote, sizeof(remote),
                     strchr(list[i].remote_host, ':') != NULL ? "[%s]:%d"
                                                              : "%s:%d",
                     list[i].remote_host, list[i].remote_port);
            snprintf(idle, sizeof(idle), "%dm", list[i].idle_minutes);
            cli_fmt_time(list[i].last_used, used, sizeof(used));
            cli_table_add(tb, list[i].id, list[i].agent_id,
                          list[i].udp ? "udp" : "tcp", port, remote,
                          list[i].acl, tunnel_def_state(&list[i]),
                          list[i].idle_minutes > 0 ? idle : "never", used);
        }
        rc = cli_table_finish(tb);
    }
    store_tunnel_list_free(list, n);
    return rc;
}

static int tunnel_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_tunnel_delete(ctx->st, pos[0])) != ERR_OK) {
        return cli_store_error(r, "tunnel", pos[0]);
    }
    tunnel_notify(ctx, HUB_CHANGE_TUNNELS);
    return CLI_EXIT_OK;
}

static int tunnel_acl_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    char acl[TUNNEL_ACL_MAX + 1], why[256];
    int rc, r;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID CIDRS", pos)) !=
        CLI_PARSED) {
        return rc;
    }
    if (tunnel_acl_normalize(pos[1], acl, sizeof(acl), why, sizeof(why)) !=
        ERR_OK) {
        return cli_usage(ctx, "%s", why);
    }
    if ((rc = cli_open_store(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if ((r = store_tunnel_set_acl(ctx->st, pos[0], acl)) != ERR_OK) {
        return cli_store_error(r, "tunnel", pos[0]);
    }
    tunnel_notify(ctx, HUB_CHANGE_TUNNELS);
    printf("acl=%s\n", acl);
    return CLI_EXIT_OK;
}

static const struct cli_cmd tunnel_add_cmd = {
    .name = "add",
    .synopsis = "tunnel add AGENT --remote HOST:PORT [--udp] [--local-port N]\n"
                "[--acl CIDR,...] [--idle-timeout MIN]",
    .summary = "Open a tunnel: a port on this server carried to HOST:PORT as "
               "seen from AGENT.",
    .details =
        "Options:\n"
        "  --remote HOST:PORT  the target on the agent's side ([IPv6]:PORT)\n"
        "  --udp               carry UDP datagrams (default: TCP)\n"
        "  --local-port N      the port on [tunnel] listen; it must lie in\n"
        "                      [tunnel] port_min..port_max and be free\n"
        "                      (default: the lowest free one)\n"
        "  --acl CIDR,...      client addresses allowed (an address means\n"
        "                      /32 or /128); default: your own address from\n"
        "                      $SSH_CONNECTION, or 127.0.0.1/32,::1/128\n"
        "  --idle-timeout MIN  delete the tunnel after MIN minutes unused\n"
        "                      (default 0: never)\n"
        "\n"
        "The agent must have connected once; it need not be online now.\n"
        "Prints id=, port= and state= (listening, agent offline, error: ..., "
        "or\npending when no server has taken it up within 3 seconds).\n",
    .run = tunnel_add_run,
    .mutates = true,
};
static const struct cli_cmd tunnel_list_cmd = {
    .name = "list",
    .synopsis = "tunnel list [--agent ID] [--json]",
    .summary = "List tunnels with their state.",
    .run = tunnel_list_run,
};
static const struct cli_cmd tunnel_delete_cmd = {
    .name = "delete",
    .synopsis = "tunnel delete ID",
    .summary = "Delete a tunnel; its listener closes.",
    .run = tunnel_delete_run,
    .mutates = true,
};
static const struct cli_cmd tunnel_acl_cmd = {
    .name = "acl",
    .synopsis = "tunnel acl ID CIDR,...",
    .summary = "Replace a tunnel's ACL (applies to new connections).",
    .run = tunnel_acl_run,
    .mutates = true,
};
static const struct cli_cmd *const tunnel_cmds[] = {
    &tunnel_add_cmd, &tunnel_list_cmd, &tunnel_delete_cmd, &tunnel_acl_cmd,
    NULL};

const struct cli_cmd cli_tunnel = {
    .name = "tunnel",
    .summary = "Manage tunnels to ports on an agent's side.",
    .sub = tunnel_cmds,
};
