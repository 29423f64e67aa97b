/*
 * The RDP proxy's listener side (rdp_server.h): the RDP-specific parts of
 * its spawner. The spawner itself is the one both proxies share
 * (sshproxy/spawner.h), with less to set up than SSH's: no host keys to
 * hand over. The pre-authentication limits are the SSH spawner's, with
 * the same [ssh] settings and an admission table of the RDP spawner's
 * own (sshproxy/preauth.h): max_sessions children in all, max_startups
 * (start:rate:full) before authentication and max_startups_per_source
 * per source (IPv4 address, IPv6 /64), decided before fork. A refused
 * connection is closed before any byte is read (RDP has nothing as cheap
 * as SSH's disconnect message to send first). A child's slot before
 * authentication is given back when the main process says it logged in
 * (MP_SPAWN_AUTHED) or when the spawner reaps it. Each child ends itself
 * after login_grace_seconds if it has not logged in (an alarm set before
 * the sandbox); the spawner kills one that outlives that by 5 s.
 */
#include "rdpproxy/rdp_server.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "rdpproxy/rdp_child.h"
#include "sshproxy/sandbox.h"
#include "sshproxy/spawner.h"

#define RDP_PEM_MAX (64 * 1024)

struct rdp_server {
    const struct config *cfg;
    struct sandbox sb;
    char config_path[4200];   /* FreeRDP's ConfigPath as the child sees it */
    char *cert_pem, *key_pem; /* key wiped at free */
    struct spawner *sp;       /* sshproxy/spawner.h */
    const struct rdp_module *mod; /* portcullis-rdp.so's (rdp_child.h) */
};

static int rdp_read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    char *b = NULL;
    size_t n;

    *out = NULL;
    if (f == NULL) {
        log_error("[rdp] cannot read %s: %s", path, strerror(errno));
        return ERR_CONFIG;
    }
    if ((b = malloc(RDP_PEM_MAX + 1)) == NULL) {
        fclose(f);
        return ERR_NOMEM;
    }
    n = fread(b, 1, RDP_PEM_MAX + 1, f);
    fclose(f);
    if (n == 0 || n > RDP_PEM_MAX) {
        log_error("[rdp] %s is empty or longer than %d bytes", path,
                  RDP_PEM_MAX);
        free(b);
        return ERR_CONFIG;
    }
    b[n] = '\0';
    *out = b;
    return ERR_OK;
}

/*
 * Loads portcullis-rdp.so (rdp_child.h): beside the program first (a
 * build directory, or an installation that keeps them together), then
 * from PORTCULLIS_MODULE_DIR (meson install). Code that runs as the
 * server: a file others may write is refused, as sshd refuses such
 * keys, and so is a module of another version or build. Never unloaded
 * (the session children run its code).
 */
static int rdp_module_path(char *out, size_t outlen)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash;

    if (n > 0) {
        exe[n] = '\0';
        if ((slash = strrchr(exe, '/')) != NULL) {
            *slash = '\0';
            if (snprintf(out, outlen, "%s/%s", exe, RDP_MODULE_FILE) <
                    (int)outlen &&
                access(out, F_OK) == 0) {
                return ERR_OK;
            }
        }
    }
    if (snprintf(out, outlen, "%s/%s", PORTCULLIS_MODULE_DIR,
                 RDP_MODULE_FILE) >= (int)outlen) {
        return ERR_TOO_LONG;
    }
    return ERR_OK;
}

static int rdp_module_load(struct rdp_server *s)
{
    char path[PATH_MAX + 64];
    struct stat st;
    void *h;
    const struct rdp_module *m;

    if (rdp_module_path(path, sizeof(path)) != ERR_OK) {
        log_error("[rdp] the RDP module's path is too long");
        return ERR_CONFIG;
    }
    if (stat(path, &st) != 0) {
        log_error("[rdp] cannot find the RDP proxy's module %s: %s (it is "
                  "built and installed with the program; or set [rdp] "
                  "enabled = false)",
                  path, strerror(errno));
        return ERR_CONFIG;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 022) != 0 ||
        (st.st_uid != 0 && st.st_uid != geteuid())) {
        log_error("[rdp] refusing %s: it must be a file owned by root or "
                  "this user, not writable by group or others",
                  path);
        return ERR_CONFIG;
    }
    if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        log_error("[rdp] cannot load %s: %s", path, dlerror());
        return ERR_CONFIG;
    }
    m = dlsym(h, RDP_MODULE_SYMBOL);
    if (m == NULL || m->version == NULL ||
        strcmp(m->version, PORTCULLIS_VERSION) != 0 ||
        m->args_size != sizeof(struct rdp_child_args) || m->run == NULL) {
        log_error("[rdp] %s is not this program's RDP module (version %s, "
                  "the program's %s): install both from one build",
                  path, m != NULL && m->version != NULL ? m->version : "?",
                  PORTCULLIS_VERSION);
        dlclose(h);
        return ERR_CONFIG;
    }
    s->mod = m;
    return ERR_OK;
}

/*
 * The RDP children's root. FreeRDP's client insists on a configuration
 * directory with "certs" and "server" in it (its certificate store),
 * even when the certificate check is ours (ExternalCertificateManagement):
 * it creates them if missing, and fails if it cannot. So the children
 * get a root of their own, "<data_dir>/rdp-root", empty but for
 * freerdp/certs and freerdp/server, owned by root and not writable by
 * the unprivileged user (nothing is ever written there).
 */
static int rdp_make_root(struct rdp_server *s)
{
    static const char *const sub[] = {"", "/freerdp", "/freerdp/certs",
                                      "/freerdp/server"};
    char path[4300];
    struct stat st;

    snprintf(s->sb.empty_dir, sizeof(s->sb.empty_dir), "%s/rdp-root",
             s->cfg->data_dir);
    for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", s->sb.empty_dir, sub[i]);
        /* chmod too: the server's umask (077) would leave the
         * unprivileged user unable to look inside */
        if ((mkdir(path, 0755) != 0 && errno != EEXIST) ||
            chmod(path, 0755) != 0) {
            log_error("cannot create %s: %s", path, strerror(errno));
            return ERR_IO;
        }
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
            (st.st_mode & 022) != 0 || (s->sb.drop && st.st_uid != 0)) {
            log_error("%s must be a directory%s not writable by others", path,
                      s->sb.drop ? " owned by root and" : "");
            return ERR_CONFIG;
        }
    }
    snprintf(s->config_path, sizeof(s->config_path), "%s/freerdp",
             s->sb.drop ? "" : s->sb.empty_dir);
    return ERR_OK;
}

/* --- the spawner's RDP parts (sshproxy/spawner.h) --- */

/* In the forked session child. */
static int rdp_run_child(void *arg, int client_fd, int monitor_fd,
                         const char *client_addr)
{
    const struct rdp_server *s = arg;
    struct rdp_child_args ca;

    memset(&ca, 0, sizeof(ca));
    ca.client_fd = client_fd;
    ca.monitor_fd = monitor_fd;
    ca.sb = &s->sb;
    ca.cert_pem = s->cert_pem;
    ca.key_pem = s->key_pem;
    ca.login_grace_seconds = s->cfg->login_grace_seconds;
    ca.config_path = s->config_path;
    ca.client_addr = client_addr;
    ca.compression = s->cfg->rdp_compression;
    ca.tls_logins = s->cfg->rdp_tls_logins;
    return s->mod->run(&ca);
}

static const struct spawner_ops rdp_spawner_ops = {
    .child_noun = "RDP child",
    .spawner_noun = "RDP spawner",
    .log_prefix = "[rdp] ",
    .backlog = 128,
    .accept_batch = 32,
    .rdp = true,
    .setup = NULL,
    .run_child = rdp_run_child,
    .refusal = NULL, /* closed unanswered */
};

int rdp_server_new(const struct config *cfg, struct rdp_server **out)
{
    struct rdp_server *s;
    int r;

    *out = NULL;
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        return ERR_NOMEM;
    }
    s->cfg = cfg;
    if ((r = rdp_module_load(s)) != ERR_OK ||
        (r = rdp_read_pem(cfg->rdp_tls_cert, &s->cert_pem)) != ERR_OK ||
        (r = rdp_read_pem(cfg->rdp_tls_key, &s->key_pem)) != ERR_OK ||
        (r = sandbox_prepare(cfg->privsep_user, cfg->data_dir, &s->sb)) !=
            ERR_OK ||
        (r = rdp_make_root(s)) != ERR_OK ||
        (r = spawner_new(&rdp_spawner_ops, s, cfg, &s->sp)) != ERR_OK) {
        goto fail;
    }
    *out = s;
    return ERR_OK;
fail:
    rdp_server_free(s);
    return r;
}

int rdp_server_listen(struct rdp_server *s)
{
    return spawner_listen(s->sp, s->cfg->rdp_listen, s->cfg->rdp_port);
}

int rdp_server_spawn(struct rdp_server *s, int sig_fd, const int *keep_out,
                     int nkeep_out)
{
    int r = spawner_fork(s->sp, sig_fd, keep_out, nkeep_out);

    if (r == ERR_OK) {
        /* the main process never needs the private key */
        sodium_memzero(s->key_pem, strlen(s->key_pem));
    }
    return r;
}

int rdp_server_link_fd(const struct rdp_server *s)
{
    return s != NULL ? spawner_link_fd(s->sp) : -1;
}

int rdp_server_attach(struct rdp_server *s, struct loop *loop,
                      struct monitor *mon)
{
    int r = spawner_attach(s->sp, loop, mon);

    if (r == ERR_OK) {
        log_info("RDP proxy listening on %s port %d", s->cfg->rdp_listen,
                 s->cfg->rdp_port);
    }
    return r;
}

int rdp_server_result(const struct rdp_server *s)
{
    return s != NULL ? spawner_result(s->sp) : ERR_OK;
}

void rdp_server_drain(struct rdp_server *s)
{
    if (s != NULL) {
        spawner_drain(s->sp);
    }
}

void rdp_server_stop(struct rdp_server *s)
{
    if (s != NULL) {
        spawner_stop(s->sp, true);
    }
}

void rdp_server_free(struct rdp_server *s)
{
    if (s == NULL) {
        return;
    }
    spawner_free(s->sp);
    if (s->key_pem != NULL) {
        sodium_memzero(s->key_pem, strlen(s->key_pem));
    }
    free(s->key_pem);
    free(s->cert_pem);
    free(s);
}
