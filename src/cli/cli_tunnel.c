/*
 * `portcullis tunnel ...`: tunnels to ports on an agent's side (SPEC §6)
 * or, as "peer:NAME", in a segment a peer node reaches (SPEC §7).
 *
 * A tunnel is a definition in the store; the running server turns it into
 * a listener on [tunnel] listen while its agent is online, or at once for
 * a peer's (src/hub/tunnel.c), and writes the listener's state back. The
 * checks, the port choice, the audit event and the notice to the server are
 * admin's (admin_agent.c), shared with the REST API.
 *
 * `add` tells the server and then waits up to
 * TUNNEL_WAIT_MS for it to write the tunnel's state, so its answer says
 * whether the tunnel listens ("listening"), waits for its agent ("agent
 * offline"), failed ("error: ..."), or no server has looked at it yet
 * ("pending").
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/err.h"

/* The server reads the tunnels and writes their states on its store
 * workers (src/hub/tunnel.c), in a few ms when idle; a loaded server (a
 * sanitizer build on a busy box) took more than the 3 s this was. It
 * waits only when the notice reached a server. */
#define TUNNEL_WAIT_MS 10000
#define TUNNEL_POLL_MS 100
/* Without $SSH_CONNECTION the admin sits at the server itself. */
#define TUNNEL_LOCAL_ACL "127.0.0.1/32,::1/128"

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

static int tunnel_add_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS], *remote = NULL, *acl = NULL;
    const char *agent = NULL, *peer = NULL;
    bool udp = false;
    int local_port = 0, idle = 0;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--remote", &remote),
        CLI_OPT_FLAG("--udp", &udp),
        CLI_OPT_INT("--local-port", &local_port, 1, 65535),
        CLI_OPT_STR("--acl", &acl),
        CLI_OPT_INT("--idle-timeout", &idle, 0, ADMIN_TUNNEL_IDLE_MAX),
        CLI_OPT_END,
    };
    struct admin_tunnel_req req;
    struct store_tunnel t, now;
    struct admin_notice n;
    struct admin_ctx ac;
    struct admin_err e;
    char ip[64];
    int rc, waited;

    if ((rc = cli_parse(ctx, argc, argv, opts, "ROUTE", pos)) != CLI_PARSED) {
        return rc;
    }
    /* ROUTE: "peer:NAME", "agent:ID" or a bare agent ID (which has no
     * ':') */
    if (strncmp(pos[0], "peer:", 5) == 0) {
        peer = pos[0] + 5;
    } else if (strncmp(pos[0], "agent:", 6) == 0) {
        agent = pos[0] + 6;
    } else if (strchr(pos[0], ':') != NULL) {
        return cli_usage(ctx,
                         "the route is AGENT, agent:AGENT or peer:NAME, "
                         "not '%s'",
                         pos[0]);
    } else {
        agent = pos[0];
    }
    if (remote == NULL) {
        return cli_usage(ctx, "missing --remote HOST:PORT");
    }
    if ((rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    memset(&req, 0, sizeof(req));
    req.agent_id = agent;
    req.peer = peer;
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
    if (admin_tunnel_add(&ac, &req, &t, &n, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    cli_notice(&n);
    if (n.delivered) {
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
           admin_tunnel_state(&t));
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
    size_t n = 0;
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
    rc = cli_fields_list(admin_tunnel_fields, list, n, sizeof(*list), json);
    store_tunnel_list_free(list, n);
    return rc;
}

static int tunnel_delete_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct admin_notice n;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID", pos)) != CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_tunnel_delete(&ac, pos[0], &n, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    cli_notice(&n);
    return CLI_EXIT_OK;
}

static int tunnel_acl_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    struct store_tunnel t;
    struct admin_notice n;
    struct admin_ctx ac;
    struct admin_err e;
    int rc;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "ID CIDRS", pos)) !=
            CLI_PARSED ||
        (rc = cli_admin_ctx(ctx, &ac)) != CLI_EXIT_OK) {
        return rc;
    }
    if (admin_tunnel_set_acl(&ac, pos[0], pos[1], &t, &n, &e) != ERR_OK) {
        return cli_admin_error(ctx, &e);
    }
    cli_notice(&n);
    printf("acl=%s\n", t.acl);
    return CLI_EXIT_OK;
}

static const struct cli_cmd tunnel_add_cmd = {
    .name = "add",
    .synopsis = "tunnel add ROUTE --remote HOST:PORT [--udp] [--local-port N]\n"
                "[--acl CIDR,...] [--idle-timeout MIN]",
    .summary = "Open a tunnel: a port on this server carried to HOST:PORT as "
               "seen from an agent or a peer node.",
    .details =
        "ROUTE is AGENT (or agent:AGENT): the target as the agent sees it;\n"
        "or peer:NAME: the target as the peer node NAME sees it, reached\n"
        "through its CONNECT proxy (`portcullis peer`; TCP only, and the\n"
        "peer's [http_proxy] allow decides which targets it carries).\n"
        "\n"
        "Options:\n"
        "  --remote HOST:PORT  the target on the far side ([IPv6]:PORT)\n"
        "  --udp               carry UDP datagrams (default: TCP; agents "
        "only)\n"
        "  --local-port N      the port on [tunnel] listen; it must lie in\n"
        "                      [tunnel] port_min..port_max and be free\n"
        "                      (default: the lowest free one)\n"
        "  --acl CIDR,...      client addresses allowed (an address means\n"
        "                      /32 or /128); default: your own address from\n"
        "                      $SSH_CONNECTION, or 127.0.0.1/32,::1/128\n"
        "  --idle-timeout MIN  delete the tunnel after MIN minutes unused\n"
        "                      (default 0: never)\n"
        "\n"
        "The agent must have connected once; it need not be online now. A\n"
        "peer's tunnel listens at once; each connection reaches the peer\n"
        "anew, and one the peer refuses is closed with an error: row in\n"
        "the report saying why.\n"
        "Prints id=, port= and state= (listening, agent offline, error: ..., "
        "or\npending when no server has taken it up within 3 seconds).\n",
    .run = tunnel_add_run,
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
};
static const struct cli_cmd tunnel_acl_cmd = {
    .name = "acl",
    .synopsis = "tunnel acl ID CIDR,...",
    .summary = "Replace a tunnel's ACL (applies to new connections).",
    .run = tunnel_acl_run,
};
static const struct cli_cmd *const tunnel_cmds[] = {
    &tunnel_add_cmd, &tunnel_list_cmd, &tunnel_delete_cmd, &tunnel_acl_cmd,
    NULL};

const struct cli_cmd cli_tunnel = {
    .name = "tunnel",
    .summary = "Manage tunnels to ports on an agent's or a peer's side.",
    .sub = tunnel_cmds,
};
