/*
 * Channels the target opens towards the client: agent forwarding
 * (`ssh -A`: the target's processes use the client's agent) and remote
 * forwards (`ssh -R`: a port listening on the target, each connection
 * carried to the client). Both are switches of the access profile
 * (agent_forward, remote_forward), off by default.
 *
 * A grant: what the profile allowed and the target may use later, kept
 * in sc->grants with its report row (kind "agent" or "forward", detail
 * "address:port"), closed when the connection ends (or, for a remote
 * forward, when the client cancels it) with the bytes of every channel
 * that came by it. A refusal is a report row too (the monitor closes it
 * as denied): the client hears only what OpenSSH's own sshd would say,
 * nothing for an agent, "remote port forwarding failed" for a forward.
 *
 * What the target may open is only what was granted: an agent channel
 * when the client asked for agent forwarding on some session channel and
 * the profile allowed it; a forwarded-tcpip channel only for an address
 * and port the client asked to forward and the target then listened on.
 * Anything else is refused to the target. The client's side of such a
 * channel is opened without blocking the loop (CHAN_OPENING): the client
 * may take its time (OpenSSH connects to the forward's destination
 * first), and the other channels keep moving meanwhile.
 *
 * The global request is answered in its callback, after the target has
 * answered ours: libssh frees the message when the callback returns, and
 * a port-0 forward needs the target's port in the answer. Inside a
 * callback of the client's session, libssh's poll context keeps the
 * client's socket locked, so the blocking calls to the target made here
 * never read the client's next packets out of order.
 */
#include "sshproxy/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "policy/policy.h"

/* Remote forwards one connection may hold (OpenSSH has no limit; a
 * bound, so a client cannot make the target listen on every port), and
 * forward requests it may make at all (each is a report row, granted or
 * refused: a client asking without end would grow the store). */
#define FORWARD_MAX_GRANTS 64
#define FORWARD_MAX_REQUESTS 256
/* Channels the target may have open towards the client at once (agent,
 * X11, forwarded connections): a hostile target opening without end
 * would grow the session child's memory. */
#define FORWARD_MAX_OPEN 256

static bool forward_room(struct session_child *sc)
{
    int n = 0;

    for (struct relay_chan *ch = sc->chans; ch != NULL; ch = ch->next) {
        n += ch->grant != NULL;
    }
    if (n >= FORWARD_MAX_OPEN) {
        log_warn("the asset has %d channels open towards the client; "
                 "refused one more",
                 n);
        return false;
    }
    return true;
}

static void forward_link(struct session_child *sc, struct relay_chan *g)
{
    g->next = sc->grants;
    sc->grants = g;
}

static struct relay_chan *forward_find(struct session_child *sc, int kind,
                                       const char *host, int port)
{
    for (struct relay_chan *g = sc->grants; g != NULL; g = g->next) {
        if (g->kind != kind) {
            continue;
        }
        if (kind != KIND_REMOTE_FORWARD) {
            return g;
        }
        /* a port-0 forward whose port the target has not yet named
         * (forward_listen) stands for any port on its address */
        if (strcmp(g->fwd_host, host) == 0 &&
            (g->fwd_port == port ||
             (g->state == CHAN_STARTING && g->fwd_port == 0))) {
            return g;
        }
    }
    return NULL;
}

void forward_credit(struct relay_chan *ch)
{
    if (ch->grant != NULL) {
        ch->grant->bytes_up += ch->bytes_up;
        ch->grant->bytes_down += ch->bytes_down;
        ch->grant = NULL;
    }
}

/* Ends grant g's row and frees it; channels that came by it no longer
 * point at it. */
static void forward_drop(struct session_child *sc, struct relay_chan *g,
                         const char *result)
{
    struct relay_chan **pp;

    for (struct relay_chan *ch = sc->chans; ch != NULL; ch = ch->next) {
        if (ch->grant == g) {
            forward_credit(ch);
        }
    }
    for (pp = &sc->grants; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    }
    child_report_end(sc, g, result);
    relay_chan_free(g);
}

void forward_end(struct session_child *sc, const char *result)
{
    while (sc->grants != NULL) {
        forward_drop(sc, sc->grants, result);
    }
}

/* --- agent and X11 forwarding: one grant per connection --- */

static struct relay_chan *forward_grant(struct session_child *sc, int kind)
{
    struct relay_chan *g = forward_find(sc, kind, NULL, 0);

    if (g != NULL) {
        return g;
    }
    if ((g = relay_chan_new(sc)) == NULL) {
        return NULL;
    }
    g->kind = kind;
    if ((g->detail = strdup("")) == NULL || child_authorize(sc, g) != ERR_OK) {
        log_info("%s refused: %s", policy_kind_str(kind),
                 g->fail_msg != NULL ? g->fail_msg : "out of memory");
        relay_chan_free(g);
        return NULL;
    }
    forward_link(sc, g);
    return g;
}

void forward_agent_start(struct session_child *sc, struct relay_chan *ch)
{
    if (forward_grant(sc, KIND_AGENT_FORWARD) != NULL) {
        ch->agent_fwd = true;
    }
}

/* The X11 request's fields, by libssh's message getters: deprecated in
 * favour of a channel callback, which cannot refuse the request (libssh
 * answers success), and OpenSSH's client tells its user of a refusal
 * ("X11 forwarding request failed"). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void forward_x11_fields(ssh_message m, const char **proto,
                               const char **cookie, int *single, int *screen)
{
    *proto = ssh_message_channel_request_x11_auth_protocol(m);
    *cookie = ssh_message_channel_request_x11_auth_cookie(m);
    *single = ssh_message_channel_request_x11_single_connection(m);
    *screen = ssh_message_channel_request_x11_screen_number(m);
}
#pragma GCC diagnostic pop

int forward_x11_request(struct session_child *sc, ssh_message m)
{
    ssh_channel channel = ssh_message_channel_request_channel(m);
    const char *proto = NULL, *cookie = NULL;
    int single = 0, screen = 0;
    struct relay_chan *ch;

    for (ch = sc->chans; ch != NULL && ch->down != channel; ch = ch->next) {
    }
    if (ch == NULL || ch->state != CHAN_NEW || ch->x11_fwd) {
        return 1;
    }
    forward_x11_fields(m, &proto, &cookie, &single, &screen);
    /* what X11 puts there: a protocol name and a hex cookie */
    if (proto == NULL || cookie == NULL || strlen(proto) > 64 ||
        strlen(cookie) > 256 ||
        strspn(cookie, "0123456789abcdefABCDEF") != strlen(cookie) ||
        screen < 0 || screen > 65535) {
        return 1;
    }
    if (forward_grant(sc, KIND_X11) == NULL) {
        return 1;
    }
    if ((ch->x11_proto = strdup(proto)) == NULL ||
        (ch->x11_cookie = strdup(cookie)) == NULL) {
        return 1;
    }
    ch->x11_single = single != 0;
    ch->x11_screen = screen;
    ch->x11_fwd = true;
    (void)ssh_message_channel_request_reply_success(m);
    return 0;
}

/* A channel the target opens by grant g, with its client side made (not
 * yet opened); NULL over the bound or out of memory. The caller gives it
 * its target side and then forward_chan_start(). */
static struct relay_chan *forward_chan_new(struct session_child *sc, int kind,
                                           struct relay_chan *g,
                                           const char *orig, int orig_port)
{
    struct relay_chan *ch;

    if (!forward_room(sc) || (ch = relay_chan_new(sc)) == NULL) {
        return NULL;
    }
    ch->kind = kind;
    ch->grant = g;
    snprintf(ch->fwd_orig_host, sizeof(ch->fwd_orig_host), "%s",
             orig != NULL ? orig : "127.0.0.1");
    ch->fwd_orig_port = orig_port;
    if ((ch->down = ssh_channel_new(sc->down)) == NULL ||
        child_set_down_callbacks(ch) != SSH_OK) {
        relay_chan_free(ch);
        return NULL;
    }
    return ch;
}

/* Its client side is opened by forward_open_step(), from the loop. */
static void forward_chan_start(struct relay_chan *ch)
{
    relay_set_up_callbacks(ch);
    ch->state = CHAN_OPENING;
    ch->next = ch->sc->chans;
    ch->sc->chans = ch;
    ch->sc->activity = true;
}

/* The target opens an agent or X11 channel: accepted only with a grant. */
static ssh_channel forward_on_open(struct session_child *sc, ssh_session up,
                                   int kind, const char *orig, int orig_port)
{
    struct relay_chan *g = forward_find(sc, kind, NULL, 0);
    struct relay_chan *ch;

    if (g == NULL) {
        log_warn("the asset opened an %s channel that was not granted; "
                 "refused",
                 policy_kind_str(kind));
        return NULL;
    }
    if ((ch = forward_chan_new(sc, kind, g, orig, orig_port)) == NULL) {
        return NULL;
    }
    if ((ch->up = ssh_channel_new(up)) == NULL) {
        relay_chan_free(ch);
        return NULL;
    }
    forward_chan_start(ch);
    return ch->up;
}

static ssh_channel forward_on_agent_open(ssh_session session, void *userdata)
{
    return forward_on_open(userdata, session, KIND_AGENT_FORWARD, NULL, 0);
}

static ssh_channel forward_on_x11_open(ssh_session session,
                                       const char *originator_address,
                                       int originator_port, void *userdata)
{
    return forward_on_open(userdata, session, KIND_X11, originator_address,
                           originator_port);
}

/* --- remote forwards --- */

static int forward_listen(struct session_child *sc, ssh_message m)
{
    const char *host = ssh_message_global_request_address(m);
    int port = ssh_message_global_request_port(m), bound = 0, n = 0, rc;
    struct relay_chan *g;
    char detail[300];

    if (host == NULL || strlen(host) > 255 || port < 0 || port > 65535) {
        return 1;
    }
    if (++sc->forward_requests > FORWARD_MAX_REQUESTS) {
        if (sc->forward_requests == FORWARD_MAX_REQUESTS + 1) {
            log_warn("%d remote forward requests on one connection; "
                     "refusing the rest unseen",
                     FORWARD_MAX_REQUESTS);
        }
        return 1;
    }
    for (g = sc->grants; g != NULL; g = g->next) {
        n += g->kind == KIND_REMOTE_FORWARD;
    }
    if (n >= FORWARD_MAX_GRANTS) {
        log_info("remote forward %s:%d refused: %d forwards already", host,
                 port, n);
        return 1;
    }
    if ((g = relay_chan_new(sc)) == NULL) {
        return 1;
    }
    g->kind = KIND_REMOTE_FORWARD;
    snprintf(g->fwd_host, sizeof(g->fwd_host), "%s", host);
    snprintf(detail, sizeof(detail), "%s:%d", host, port);
    if ((g->detail = strdup(detail)) == NULL ||
        child_authorize(sc, g) != ERR_OK) {
        log_info("remote forward %s refused: %s", detail,
                 g->fail_msg != NULL ? g->fail_msg : "out of memory");
        relay_chan_free(g);
        return 1;
    }
    if (upstream_open(sc, g->session_id) != ERR_OK) {
        child_report_end(sc, g,
                         sc->up_result ? sc->up_result : "error: upstream");
        relay_chan_free(g);
        return 1;
    }
    /* Granted before the target answers: its first connection can come
     * in the same read as its answer, inside the call below. */
    g->fwd_port = port;
    g->state = CHAN_STARTING;
    forward_link(sc, g);
    ssh_set_blocking(sc->up, 1);
    rc = ssh_channel_listen_forward(sc->up, host, port, &bound);
    ssh_set_blocking(sc->up, 0);
    if (rc != SSH_OK || (port == 0 && (bound <= 0 || bound > 65535))) {
        log_info("the asset refused to listen on %s", detail);
        forward_drop(sc, g, "error: the asset refused the forward");
        return 1;
    }
    /* the target names the port it listens on in what it opens */
    if (port == 0) {
        g->fwd_port = bound;
    }
    g->state = CHAN_RELAYING;
    sc->activity = true;
    if (ssh_message_global_request_reply_success(m, (uint16_t)g->fwd_port) !=
        SSH_OK) {
        log_info("cannot answer the forward request of %s", detail);
    }
    return 0;
}

static int forward_cancel(struct session_child *sc, ssh_message m)
{
    const char *host = ssh_message_global_request_address(m);
    int port = ssh_message_global_request_port(m), rc;
    struct relay_chan *g;

    if (host == NULL ||
        (g = forward_find(sc, KIND_REMOTE_FORWARD, host, port)) == NULL) {
        return 1;
    }
    ssh_set_blocking(sc->up, 1);
    rc = ssh_channel_cancel_forward(sc->up, host, port);
    ssh_set_blocking(sc->up, 0);
    if (rc != SSH_OK) {
        log_info("the asset did not cancel the forward of %s", g->detail);
    }
    forward_drop(sc, g, "ok: cancelled");
    (void)ssh_message_global_request_reply_success(m, 0);
    return 0;
}

int forward_global_request(struct session_child *sc, ssh_message m)
{
    switch (ssh_message_subtype(m)) {
    case SSH_GLOBAL_REQUEST_TCPIP_FORWARD:
        return forward_listen(sc, m);
    case SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD:
        return forward_cancel(sc, m);
    default:
        return 1;
    }
}

/* The target's messages: a connection to a forwarded port. */
static int forward_on_up_message(ssh_session session, ssh_message m,
                                 void *userdata)
{
    struct session_child *sc = userdata;
    const char *host, *orig;
    struct relay_chan *g, *ch;
    int port;

    (void)session;
    if (ssh_message_type(m) != SSH_REQUEST_CHANNEL_OPEN ||
        ssh_message_subtype(m) != SSH_CHANNEL_FORWARDED_TCPIP) {
        return 1; /* refused */
    }
    host = ssh_message_channel_request_open_destination(m);
    port = ssh_message_channel_request_open_destination_port(m);
    orig = ssh_message_channel_request_open_originator(m);
    if (host == NULL ||
        (g = forward_find(sc, KIND_REMOTE_FORWARD, host, port)) == NULL) {
        log_warn("the asset opened a forwarded connection to %s:%d that was "
                 "not granted; refused",
                 host != NULL ? host : "?", port);
        return 1;
    }
    if ((ch = forward_chan_new(
             sc, KIND_REMOTE_FORWARD, g, orig,
             ssh_message_channel_request_open_originator_port(m))) == NULL) {
        return 1;
    }
    snprintf(ch->fwd_host, sizeof(ch->fwd_host), "%s", host);
    ch->fwd_port = port;
    if ((ch->up = ssh_message_channel_request_open_reply_accept(m)) == NULL) {
        relay_chan_free(ch);
        return 1;
    }
    forward_chan_start(ch);
    return 0;
}

int forward_set_up_callbacks(struct session_child *sc)
{
    struct ssh_callbacks_struct *cb = &sc->up_session_cb;

    memset(cb, 0, sizeof(*cb));
    cb->userdata = sc;
    cb->channel_open_request_auth_agent_function = forward_on_agent_open;
    cb->channel_open_request_x11_function = forward_on_x11_open;
    ssh_callbacks_init(cb);
    if (ssh_set_callbacks(sc->up, cb) != SSH_OK) {
        return ERR_INTERNAL;
    }
    ssh_set_message_callback(sc->up, forward_on_up_message, sc);
    return ERR_OK;
}

/* --- the client's side of a channel the target opened --- */

bool forward_open_step(struct relay_chan *ch)
{
    int rc;

    if (ch->kind == KIND_AGENT_FORWARD) {
        rc = ssh_channel_open_auth_agent(ch->down);
    } else if (ch->kind == KIND_X11) {
        rc = ssh_channel_open_x11(ch->down, ch->fwd_orig_host,
                                  ch->fwd_orig_port);
    } else {
        rc = ssh_channel_open_reverse_forward(ch->down, ch->fwd_host,
                                              ch->fwd_port, ch->fwd_orig_host,
                                              ch->fwd_orig_port);
    }
    if (rc == SSH_AGAIN) {
        return false;
    }
    if (rc == SSH_OK) {
        ch->state = CHAN_RELAYING;
        ch->last_activity_ms = ch->sc->now_ms;
        return true;
    }
    /* the client refused (no agent, nothing listening where the forward
     * points): the target's side is closed, nothing is said */
    log_info("the client refused a %s channel", policy_kind_str(ch->kind));
    if (!ch->up_closed) {
        ssh_channel_close(ch->up);
    }
    ch->down_closed = true;
    ch->sent_down_close = true;
    ch->state = CHAN_CLOSING;
    return true;
}
