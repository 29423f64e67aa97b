/*
 * The SSH proxy's listener side of `portcullis serve`: the SSH-specific
 * parts of its spawner (the shared spawner is spawner.c, which says how
 * the spawner process and the main process work together) and the host
 * keys (server.h says in which order the composition root,
 * daemon/daemon.c, calls these).
 *
 * The spawner is forked before the store or the vault key are opened, so
 * the session children it forks inherit neither: only the public SSH
 * host keys and stand-ins (hostkeys.h), which a libssh server session
 * must hold. The main process loads the private host keys into the
 * monitor after the fork and sends the spawner the public ones, once, on
 * the link (MP_SPAWN_HOSTKEYS); the spawner makes its libssh bind from
 * them before it accepts anything. What differs from the RDP proxy's
 * spawner is in server_spawner_ops below: a refused client reads an SSH
 * disconnect, and a child runs child_run (child.h).
 */
#include "sshproxy/server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "common/err.h"
#include "common/hostkey.h"
#include "common/log.h"
#include "sshproxy/child.h"
#include "sshproxy/hostkeys.h"
#include "sshproxy/monitor.h"
#include "sshproxy/mproto.h"
#include "sshproxy/sandbox.h"
#include "sshproxy/spawner.h"

struct server {
    const struct config *cfg;
    struct sandbox sb;   /* the session children's (sandbox.h) */
    char *banner;        /* sent to clients before login, or NULL */
    struct spawner *sp;  /* spawner.h */
    struct monitor *mon; /* once attached */
    /* in the spawner process only (server_spawner_setup): the bind the
     * children accept with and its stand-in host keys */
    ssh_bind bind;
    struct hostkey_standins keys;
};

/* --- the spawner's SSH parts (spawner.h: struct spawner_ops) --- */

/*
 * What a refused connection reads before it is closed: our identification
 * string and an unencrypted SSH_MSG_DISCONNECT (RFC 4253 §11.1, allowed
 * before key exchange), so an OpenSSH user sees "Received disconnect ...:
 * too many unauthenticated connections" instead of a bare reset. One
 * non-blocking send of a few bytes: as cheap as closing.
 */
static size_t server_refusal(enum preauth_verdict v, uint8_t *out,
                             size_t outlen)
{
    static const char ident[] = "SSH-2.0-Portcullis\r\n";
    const char *why = v == PREAUTH_SESSIONS ? "too many sessions; try later"
                      : v == PREAUTH_SOURCE
                          ? "too many unauthenticated connections from "
                            "your address"
                          : "too many unauthenticated connections; try later";
    size_t il = strlen(ident), wl = strlen(why), payload, pad, plen, n;
    uint32_t reason = 12; /* SSH_DISCONNECT_TOO_MANY_CONNECTIONS */

    /* payload: byte 1, uint32 reason, string why, string "" */
    payload = 1 + 4 + 4 + wl + 4;
    pad = 8 - ((4 + 1 + payload) % 8);
    if (pad < 4) {
        pad += 8;
    }
    plen = 1 + payload + pad;
    n = il + 4 + plen;
    if (n > outlen) {
        return 0;
    }
    memcpy(out, ident, il);
    out += il;
    *out++ = (uint8_t)(plen >> 24);
    *out++ = (uint8_t)(plen >> 16);
    *out++ = (uint8_t)(plen >> 8);
    *out++ = (uint8_t)plen;
    *out++ = (uint8_t)pad;
    *out++ = 1; /* SSH_MSG_DISCONNECT */
    *out++ = (uint8_t)(reason >> 24);
    *out++ = (uint8_t)(reason >> 16);
    *out++ = (uint8_t)(reason >> 8);
    *out++ = (uint8_t)reason;
    *out++ = (uint8_t)(wl >> 24);
    *out++ = (uint8_t)(wl >> 16);
    *out++ = (uint8_t)(wl >> 8);
    *out++ = (uint8_t)wl;
    memcpy(out, why, wl);
    out += wl;
    memset(out, 0, 4 + pad); /* empty language tag, then the padding */
    return n;
}

static int server_bind_setup(const struct config *cfg, ssh_bind bind,
                             ssh_key keys[], int nkeys);

/*
 * The spawner's setup: the bind the children accept with. It holds
 * stand-in host keys only (hostkeys.h): the main process sends the public
 * host keys once at start, and the spawner never sees a private one.
 */
static int server_spawner_setup(void *arg, int link)
{
    struct server *s = arg;
    struct buf *b = buf_new(MPROTO_MAX);
    uint8_t type = 0;
    int r;

    if (b == NULL) {
        return ERR_NOMEM;
    }
    r = mproto_recv(link, &type, b, NULL);
    if (r != ERR_OK || type != MP_SPAWN_HOSTKEYS ||
        (r = hostkeys_standins_make(b, &s->keys)) != ERR_OK ||
        (r = buf_expect_end(b)) != ERR_OK) {
        buf_free(b);
        return r != ERR_OK ? r : ERR_PROTO;
    }
    buf_free(b);
    s->bind = ssh_bind_new();
    if (s->bind == NULL ||
        (r = server_bind_setup(s->cfg, s->bind, NULL, 0)) != ERR_OK ||
        (r = hostkeys_standins_bind(&s->keys, s->bind)) != ERR_OK) {
        log_error("cannot set up the SSH server");
        return r != ERR_OK ? r : ERR_NOMEM;
    }
    return ERR_OK;
}

/* In the forked session child. */
static int server_run_child(void *arg, int client_fd, int monitor_fd,
                            const char *client_addr)
{
    const struct server *s = arg;
    const struct config *cfg = s->cfg;
    struct child_args ca;

    memset(&ca, 0, sizeof(ca));
    ca.client_fd = client_fd;
    ca.monitor_fd = monitor_fd;
    ca.bind = s->bind;
    ca.keys = &s->keys;
    ca.sb = &s->sb;
    ca.login_grace_seconds = cfg->login_grace_seconds;
    ca.connect_timeout_seconds = cfg->connect_timeout_seconds;
    ca.upstream_ciphers = cfg->upstream_ciphers;
    ca.upstream_macs = cfg->upstream_macs;
    ca.upstream_kex = cfg->upstream_kex;
    ca.upstream_hostkeys = cfg->upstream_hostkey_algorithms;
    ca.banner = s->banner;
    ca.client_addr = client_addr;
    return child_run(&ca);
}

static const struct spawner_ops server_spawner_ops = {
    .child_noun = "child",
    .spawner_noun = "spawner",
    .log_prefix = "",
    .backlog = 512,
    /* a flood is drained in batches without starving the link to the
     * main process */
    .accept_batch = 64,
    .rdp = false,
    .setup = server_spawner_setup,
    .run_child = server_run_child,
    .refusal = server_refusal,
};

/* --- the main process --- */

/* Hands the spawner the public host keys (its only message from us). */
static int server_send_host_keys(struct server *s)
{
    struct buf *b = buf_new(MPROTO_MAX);
    int r;

    if (b == NULL) {
        return ERR_NOMEM;
    }
    r = hostkeys_put_public(&s->mon->hostkeys, b);
    if (r == ERR_OK) {
        r = mproto_send(spawner_link_fd(s->sp), MP_SPAWN_HOSTKEYS, b, -1, 0);
    }
    buf_free(b);
    return r;
}

/* --- host keys and what the client leg offers --- */

#define SERVER_HOST_KEYS 3

/* A key file that is missing is made, as Debian's sshd-keygen does at
 * sshd's start, so a data directory from before ECDSA and RSA keys
 * existed serves every client after an upgrade. Returns false (and says
 * why) when there is no file and none could be made. */
static bool server_make_missing_key(const char *path, enum hostkey_type type)
{
    char fp[HOSTKEY_FP_MAX + 1];
    int r;

    if (access(path, F_OK) == 0 || errno != ENOENT) {
        return true;
    }
    if ((r = hostkey_create(path, type, fp, sizeof(fp))) != ERR_OK) {
        log_warn("no %s host key: %s is missing and cannot be made (%s); "
                 "clients that need one cannot connect",
                 hostkey_type_name(type), path, err_str(r));
        return false;
    }
    log_info("made the missing %s host key %s (fingerprint %s)",
             hostkey_type_name(type), path, fp);
    return true;
}

static bool server_key_is(enum hostkey_type want, enum ssh_keytypes_e kt)
{
    switch (want) {
    case HOSTKEY_ED25519:
        return kt == SSH_KEYTYPE_ED25519;
    case HOSTKEY_ECDSA:
        return kt == SSH_KEYTYPE_ECDSA_P256 || kt == SSH_KEYTYPE_ECDSA_P384 ||
               kt == SSH_KEYTYPE_ECDSA_P521;
    case HOSTKEY_RSA:
        return kt == SSH_KEYTYPE_RSA;
    }
    return false;
}

/*
 * Makes the ECDSA and RSA host keys an older data directory lacks, as
 * sshd-keygen does. In a short-lived process of its own: the main process
 * must not have held a private host key in its memory when it forks the
 * spawner (hostkeys.h), and this runs before that fork so that an error is
 * in the log before the server listens.
 */
static void server_make_missing_keys(const struct config *cfg)
{
    pid_t pid = fork();

    if (pid < 0) {
        log_warn("cannot fork to make missing host keys: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        if (cfg->ssh_host_key_ecdsa != NULL) {
            (void)server_make_missing_key(cfg->ssh_host_key_ecdsa,
                                          HOSTKEY_ECDSA);
        }
        if (cfg->ssh_host_key_rsa != NULL) {
            (void)server_make_missing_key(cfg->ssh_host_key_rsa, HOSTKEY_RSA);
        }
        _exit(0);
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
}

/*
 * The host keys the client leg presents: the Ed25519 key (required; the
 * agent hub presents it alone, hub.c) and, unless configured off, the
 * ECDSA and RSA keys, made if missing. Fills keys[0..*n) (the caller frees
 * each); on error nothing is left to free.
 */
static int server_load_host_keys(const struct config *cfg,
                                 ssh_key keys[SERVER_HOST_KEYS], int *n)
{
    const struct {
        const char *path;
        enum hostkey_type type;
    } want[SERVER_HOST_KEYS] = {
        {cfg->ssh_host_key, HOSTKEY_ED25519},
        {cfg->ssh_host_key_ecdsa, HOSTKEY_ECDSA},
        {cfg->ssh_host_key_rsa, HOSTKEY_RSA},
    };
    enum ssh_keytypes_e kt;
    char names[32] = "";
    ssh_key key;
    size_t len;
    bool ok;
    int i;

    *n = 0;
    for (i = 0; i < SERVER_HOST_KEYS; i++) {
        if (want[i].path == NULL) {
            log_info("no %s host key ([ssh] host_key_%s is empty)",
                     hostkey_type_name(want[i].type),
                     hostkey_type_name(want[i].type));
            continue;
        }
        if (want[i].type != HOSTKEY_ED25519 &&
            access(want[i].path, F_OK) != 0) {
            continue; /* server_make_missing_keys said why */
        }
        key = NULL;
        if (ssh_pki_import_privkey_file(want[i].path, NULL, NULL, NULL, &key) !=
            SSH_OK) {
            log_error("cannot read the SSH host key %s", want[i].path);
            goto fail;
        }
        kt = ssh_key_type(key);
        ok = server_key_is(want[i].type, kt);
        if (!ok) {
            log_error("the SSH host key %s is of type %s, not %s", want[i].path,
                      ssh_key_type_to_char(kt),
                      hostkey_type_name(want[i].type));
            ssh_key_free(key);
            goto fail;
        }
        keys[(*n)++] = key;
        len = strlen(names);
        snprintf(names + len, sizeof(names) - len, " %s",
                 hostkey_type_name(want[i].type));
    }
    log_info("SSH host keys offered to clients:%s", names);
    return ERR_OK;
fail:
    while (*n > 0) {
        ssh_key_free(keys[--*n]);
    }
    return ERR_CONFIG;
}

#define SERVER_BANNER_MAX 8192

/* [ssh] banner or the contents of banner_file, ending in a newline; NULL
 * in *out for none (the default: nothing in scripts' output). */
static int server_banner(const struct config *cfg, char **out)
{
    const char *text = cfg->ssh_banner;
    char buf[SERVER_BANNER_MAX + 1];
    size_t len = 0;
    FILE *f;

    *out = NULL;
    if (cfg->ssh_banner_file != NULL) {
        if ((f = fopen(cfg->ssh_banner_file, "r")) == NULL) {
            log_error("cannot read [ssh] banner_file %s: %s",
                      cfg->ssh_banner_file, strerror(errno));
            return ERR_CONFIG;
        }
        len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (len > SERVER_BANNER_MAX) {
            log_error("[ssh] banner_file %s is longer than %d bytes",
                      cfg->ssh_banner_file, SERVER_BANNER_MAX);
            return ERR_CONFIG;
        }
        buf[len] = '\0';
        text = buf;
    }
    if (text == NULL || text[0] == '\0') {
        return ERR_OK;
    }
    len = strlen(text);
    if (asprintf(out, "%s%s", text, text[len - 1] == '\n' ? "" : "\n") < 0) {
        *out = NULL;
        return ERR_NOMEM;
    }
    return ERR_OK;
}

/* The client leg's libssh server: algorithms as configured (config.c
 * checked the names), the host keys (the bind owns each one it took:
 * keys[i] is set to NULL). */
static int server_bind_setup(const struct config *cfg, ssh_bind bind,
                             ssh_key keys[], int nkeys)
{
    int no = 0, i;

    if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no) !=
            SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_C_S,
                             cfg->client_ciphers) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_CIPHERS_S_C,
                             cfg->client_ciphers) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HMAC_C_S,
                             cfg->client_macs) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HMAC_S_C,
                             cfg->client_macs) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_KEY_EXCHANGE,
                             cfg->client_kex) != SSH_OK ||
        ssh_bind_options_set(bind, SSH_BIND_OPTIONS_HOSTKEY_ALGORITHMS,
                             cfg->hostkey_algorithms) != SSH_OK) {
        log_error("cannot set the SSH algorithms: %s", ssh_get_error(bind));
        return ERR_CONFIG;
    }
    for (i = 0; i < nkeys; i++) {
        if (ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, keys[i]) !=
            SSH_OK) {
            log_error("cannot use a host key: %s", ssh_get_error(bind));
            return ERR_CONFIG;
        }
        keys[i] = NULL;
    }
    return ERR_OK;
}

int server_new(const struct config *cfg, struct server **out)
{
    struct server *s;
    char weak[1024];
    int r;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return ERR_NOMEM;
    }
    s->cfg = cfg;
    if ((r = server_banner(cfg, &s->banner)) != ERR_OK) {
        goto fail;
    }
    server_make_missing_keys(cfg);
    if (config_weak_algorithms(cfg, weak, sizeof(weak)) > 0) {
        log_warn("weak SSH algorithms enabled (OpenSSH offers none of "
                 "them by default): %s",
                 weak);
    }
    if ((r = sandbox_prepare(cfg->privsep_user, cfg->data_dir, &s->sb)) !=
            ERR_OK ||
        (r = spawner_new(&server_spawner_ops, s, cfg, &s->sp)) != ERR_OK) {
        goto fail;
    }
    *out = s;
    return ERR_OK;
fail:
    server_free(s);
    return r;
}

int server_listen(struct server *s)
{
    return spawner_listen(s->sp, s->cfg->ssh_listen, s->cfg->ssh_port);
}

int server_spawn(struct server *s, int sig_fd)
{
    return spawner_fork(s->sp, sig_fd, NULL, 0);
}

int server_attach(struct server *s, struct loop *loop, struct monitor *mon)
{
    ssh_key hostkeys[SERVER_HOST_KEYS] = {NULL};
    int nkeys = 0, r, i;

    s->mon = mon;
    if ((r = server_load_host_keys(s->cfg, hostkeys, &nkeys)) != ERR_OK ||
        (r = hostkeys_adopt(&mon->hostkeys, hostkeys, (size_t)nkeys)) !=
            ERR_OK ||
        (r = server_send_host_keys(s)) != ERR_OK) {
        goto out;
    }
    r = spawner_attach(s->sp, loop, mon);
out:
    for (i = 0; i < nkeys; i++) {
        ssh_key_free(hostkeys[i]); /* NULL once adopted */
    }
    return r;
}

int server_link_fd(const struct server *s)
{
    return s != NULL ? spawner_link_fd(s->sp) : -1;
}

int server_result(const struct server *s)
{
    return spawner_result(s->sp);
}

void server_drain(struct server *s)
{
    if (s != NULL) {
        spawner_drain(s->sp);
    }
}

void server_stop(struct server *s, bool terminate)
{
    spawner_stop(s->sp, terminate);
}

void server_free(struct server *s)
{
    if (s == NULL) {
        return;
    }
    spawner_free(s->sp);
    free(s->banner);
    free(s);
}
