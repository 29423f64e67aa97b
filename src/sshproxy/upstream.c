/*
 * The child's libssh client session to the target asset.
 *
 * The child cannot open sockets or files (sandbox.c): the main process
 * connects to the asset and passes the connected socket over the monitor
 * socket; libssh is told to use it (SSH_OPTIONS_FD) and to read no config
 * or known_hosts file. The target's host key is checked by the main
 * process against the asset's pin (trust on first use), and the vaulted
 * login arrives over the monitor only after the session was authorized;
 * it is wiped as soon as libssh has used it.
 */
#include "sshproxy/session.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "policy/policy.h"
#include "sshproxy/mproto.h"
#include "sshproxy/readahead.h"

static void upstream_fail(struct session_child *sc, const char *msg,
                          const char *result)
{
    sc->up_failed = true;
    free(sc->up_error);
    free(sc->up_result);
    sc->up_error = strdup(msg);
    sc->up_result = strdup(result);
}

/* Host key check through the monitor: pin on first use or compare. */
static int upstream_check_host_key(struct session_child *sc,
                                   const char *session_id)
{
    ssh_key key = NULL;
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL, msg[512] = "";
    uint8_t ok = 0;
    int r = ERR_HOSTKEY;

    if (ssh_get_server_publickey(sc->up, &key) != SSH_OK ||
        ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) !=
            0 ||
        (fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash,
                                       hlen)) == NULL) {
        upstream_fail(sc, "cannot read the asset's host key",
                      "error: no host key");
        goto out;
    }
    buf_reset(sc->req);
    if (buf_put_cstring(sc->req, session_id) != ERR_OK ||
        buf_put_cstring(sc->req, fp) != ERR_OK ||
        session_monitor_call(sc, MP_HOSTKEY, MP_HOSTKEY_REPLY, NULL) !=
            ERR_OK ||
        buf_get_u8(sc->rep, &ok) != ERR_OK ||
        buf_get_cstring_into(sc->rep, msg, sizeof(msg)) != ERR_OK) {
        upstream_fail(sc, "internal error checking the host key",
                      "error: monitor failed");
        goto out;
    }
    if (!ok) {
        upstream_fail(sc, msg, "error: host key changed");
        goto out;
    }
    r = ERR_OK;
out:
    ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    return r;
}

static int upstream_auth(struct session_child *sc, const char *session_id)
{
    char *user = NULL, *password = NULL, *privkey = NULL;
    ssh_key key = NULL;
    uint8_t ok = 0;
    int rc = SSH_AUTH_DENIED, r = ERR_AUTH;

    buf_reset(sc->req);
    if (buf_put_cstring(sc->req, session_id) != ERR_OK ||
        session_monitor_call(sc, MP_CREDENTIALS, MP_CREDENTIALS_REPLY, NULL) !=
            ERR_OK ||
        buf_get_u8(sc->rep, &ok) != ERR_OK ||
        buf_get_cstring(sc->rep, 256, &user) != ERR_OK ||
        buf_get_cstring(sc->rep, 4096, &password) != ERR_OK ||
        buf_get_cstring(sc->rep, 32768, &privkey) != ERR_OK || !ok) {
        upstream_fail(sc, "no vaulted login for this asset",
                      "error: no vaulted login");
        goto out;
    }
    buf_reset(sc->rep);
    if (ssh_options_set(sc->up, SSH_OPTIONS_USER, user) != SSH_OK) {
        upstream_fail(sc, "invalid login user for this asset",
                      "error: invalid login user");
        goto out;
    }
    if (privkey[0] != '\0') {
        if (ssh_pki_import_privkey_base64(privkey, NULL, NULL, NULL, &key) ==
            SSH_OK) {
            rc = ssh_userauth_publickey(sc->up, NULL, key);
        } else {
            log_warn("the asset's vaulted private key does not parse");
        }
    }
    if (rc != SSH_AUTH_SUCCESS && password[0] != '\0') {
        rc = ssh_userauth_password(sc->up, NULL, password);
    }
    if (rc != SSH_AUTH_SUCCESS) {
        upstream_fail(sc, "the asset refused the vaulted login",
                      "error: target authentication failed");
        goto out;
    }
    r = ERR_OK;
out:
    ssh_key_free(key);
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
    }
    if (privkey != NULL) {
        sodium_memzero(privkey, strlen(privkey));
    }
    free(user);
    free(password);
    free(privkey);
    return r;
}

/* What the target is offered, in our order ([ssh] upstream_*, checked by
 * config.c; NULL leaves libssh's default). */
static int upstream_set_algos(struct session_child *sc)
{
    const struct {
        enum ssh_options_e opt;
        const char *list;
    } set[] = {
        {SSH_OPTIONS_CIPHERS_C_S, sc->upstream_ciphers},
        {SSH_OPTIONS_CIPHERS_S_C, sc->upstream_ciphers},
        {SSH_OPTIONS_HMAC_C_S, sc->upstream_macs},
        {SSH_OPTIONS_HMAC_S_C, sc->upstream_macs},
        {SSH_OPTIONS_KEY_EXCHANGE, sc->upstream_kex},
        {SSH_OPTIONS_HOSTKEYS, sc->upstream_hostkeys},
    };
    size_t i;

    for (i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
        if (set[i].list != NULL &&
            ssh_options_set(sc->up, set[i].opt, set[i].list) != SSH_OK) {
            return ERR_CONFIG;
        }
    }
    return ERR_OK;
}

int upstream_open(struct session_child *sc, const char *session_id)
{
    char msg[512] = "", result[600];
    uint8_t ok = 0;
    int fd = -1, r = ERR_CONNECT;
    long timeout = sc->connect_timeout > 0 ? sc->connect_timeout : 10;
    int yes = 1, no = 0;

    if (sc->up_failed) {
        return ERR_CONNECT;
    }
    if (sc->up != NULL) {
        return ERR_OK;
    }
    buf_reset(sc->req);
    if (buf_put_cstring(sc->req, session_id) != ERR_OK ||
        session_monitor_call(sc, MP_CONNECT, MP_CONNECT_REPLY, &fd) != ERR_OK ||
        buf_get_u8(sc->rep, &ok) != ERR_OK ||
        buf_get_cstring_into(sc->rep, msg, sizeof(msg)) != ERR_OK) {
        upstream_fail(sc, "internal error connecting to the asset",
                      "error: monitor failed");
        goto out;
    }
    if (!ok || fd < 0) {
        snprintf(result, sizeof(result), "error: %s", msg);
        upstream_fail(sc, msg, result);
        goto out;
    }
    if ((sc->up = ssh_new()) == NULL ||
        forward_set_up_callbacks(sc) != ERR_OK) {
        upstream_fail(sc, "out of memory", "error: out of memory");
        goto out;
    }
    /* Nothing from the file system: no config, no known_hosts, no keys. */
    if (ssh_options_set(sc->up, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
        ssh_options_set(sc->up, SSH_OPTIONS_HOST, "asset") != SSH_OK ||
        ssh_options_set(sc->up, SSH_OPTIONS_SSH_DIR, "/nonexistent") !=
            SSH_OK ||
        ssh_options_set(sc->up, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") !=
            SSH_OK ||
        ssh_options_set(sc->up, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") !=
            SSH_OK ||
        ssh_options_set(sc->up, SSH_OPTIONS_USER, "portcullis") != SSH_OK ||
        ssh_options_set(sc->up, SSH_OPTIONS_TIMEOUT, &timeout) != SSH_OK ||
        ssh_options_set(sc->up, SSH_OPTIONS_NODELAY, &yes) != SSH_OK ||
        upstream_set_algos(sc) != ERR_OK ||
        ssh_options_set(sc->up, SSH_OPTIONS_FD, &fd) != SSH_OK) {
        upstream_fail(sc, "cannot set up the upstream session",
                      "error: upstream setup failed");
        goto out;
    }
    fd = -1; /* the session owns it now */
    if (ssh_connect(sc->up) != SSH_OK) {
        snprintf(msg, sizeof(msg), "cannot reach asset '%s': %s",
                 sc->asset_name, ssh_get_error(sc->up));
        snprintf(result, sizeof(result), "error: cannot reach asset: %s",
                 ssh_get_error(sc->up));
        upstream_fail(sc, msg, result);
        goto out;
    }
    if ((r = upstream_check_host_key(sc, session_id)) != ERR_OK) {
        goto out;
    }
    if ((r = upstream_auth(sc, session_id)) != ERR_OK) {
        goto out;
    }
    ssh_set_blocking(sc->up, 0);
    /* As for the client's socket (child.c): libssh made it blocking when
     * it connected; a blocking send to a target (or an agent's stream)
     * that does not read would stop both directions of the relay. */
    (void)util_set_nonblock(ssh_get_fd(sc->up));
    (void)readahead_register(ssh_get_fd(sc->up));
    if (ssh_event_add_session(sc->event, sc->up) != SSH_OK) {
        upstream_fail(sc, "internal error", "error: event setup failed");
        r = ERR_INTERNAL;
        goto out;
    }
    r = ERR_OK;
out:
    if (fd >= 0) {
        close(fd);
    }
    if (r != ERR_OK && sc->up != NULL) {
        ssh_disconnect(sc->up);
        ssh_free(sc->up);
        sc->up = NULL;
    }
    return r;
}

int upstream_open_channel(struct session_child *sc, struct relay_chan *ch)
{
    int rc = SSH_ERROR, r = ERR_CONNECT;

    ssh_set_blocking(sc->up, 1);
    if ((ch->up = ssh_channel_new(sc->up)) == NULL) {
        goto out;
    }
    relay_set_up_callbacks(ch);
    if (ch->kind == KIND_LOCAL_FORWARD) {
        rc = ssh_channel_open_forward(ch->up, ch->fwd_host, ch->fwd_port,
                                      ch->fwd_orig_host, ch->fwd_orig_port);
        if (rc != SSH_OK) {
            goto out;
        }
        r = ERR_OK;
        goto out;
    }
    if (ssh_channel_open_session(ch->up) != SSH_OK) {
        goto out;
    }
    if (ch->pty && ssh_channel_request_pty_size(ch->up, ch->term, ch->cols,
                                                ch->rows) != SSH_OK) {
        goto out;
    }
    for (int i = 0; i < ch->nenv; i++) {
        /* A target that refuses an environment variable is not fatal. */
        (void)ssh_channel_request_env(ch->up, ch->env_name[i],
                                      ch->env_value[i]);
    }
    /* Before the shell or command, which reads SSH_AUTH_SOCK when it
     * starts; a target that refuses it runs without (as OpenSSH does). */
    if (ch->agent_fwd && ssh_channel_request_auth_agent(ch->up) != SSH_OK) {
        log_info("the asset refused agent forwarding");
    }
    if (ch->x11_fwd &&
        ssh_channel_request_x11(ch->up, ch->x11_single ? 1 : 0, ch->x11_proto,
                                ch->x11_cookie, ch->x11_screen) != SSH_OK) {
        log_info("the asset refused X11 forwarding");
    }
    switch (ch->kind) {
    case KIND_SHELL:
        rc = ssh_channel_request_shell(ch->up);
        break;
    case KIND_EXEC:
    case KIND_SCP:
        rc = ssh_channel_request_exec(ch->up, ch->detail);
        break;
    case KIND_SFTP:
        rc = ssh_channel_request_subsystem(ch->up, "sftp");
        break;
    default:
        rc = SSH_ERROR;
        break;
    }
    if (rc == SSH_OK) {
        r = ERR_OK;
    }
out:
    if (r != ERR_OK) {
        log_info("cannot open a channel on the asset: %s",
                 ssh_get_error(sc->up));
        if (ch->up != NULL) {
            ssh_channel_free(ch->up);
            ch->up = NULL;
        }
    }
    ssh_set_blocking(sc->up, 0);
    return r;
}
