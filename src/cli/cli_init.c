/*
 * `portcullis init` and `portcullis serve`: creating a data directory and
 * running the server from it.
 *
 * init writes portcullis.conf, an ed25519 SSH host key, the vault key and
 * the database with one `admin` user, and prints the admin password once
 * (only its hash is stored) and the host key's fingerprint. It never
 * overwrites: an existing file refuses the run. If a step fails, the files
 * this run created are removed again, so the run can simply be repeated.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "auth/password.h"
#include "cli/cli.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/vault.h"
#include "sshproxy/server.h"
#include "store/access.h"

#define INIT_ADMIN_NAME "admin"
#define INIT_ADMIN_PASSWORD_LEN 20

/* Files in the data directory, by their names in portcullis.conf. */
enum init_file {
    INIT_CONF,
    INIT_HOST_KEY,
    INIT_HOST_PUB,
    INIT_VAULT,
    INIT_DB,
    INIT_DB_WAL,
    INIT_DB_SHM,
    INIT_DB_JOURNAL,
    INIT__COUNT
};

static const char *const init_names[INIT__COUNT] = {
    [INIT_CONF] = "portcullis.conf",
    [INIT_HOST_KEY] = "ssh_host_ed25519_key",
    [INIT_HOST_PUB] = "ssh_host_ed25519_key.pub",
    [INIT_VAULT] = "vault.key",
    [INIT_DB] = "portcullis.db",
    [INIT_DB_WAL] = "portcullis.db-wal",
    [INIT_DB_SHM] = "portcullis.db-shm",
    [INIT_DB_JOURNAL] = "portcullis.db-journal",
};

struct init_paths {
    char dir[PATH_MAX];
    char file[INIT__COUNT][PATH_MAX];
    bool created[INIT__COUNT]; /* made by this run: removed on failure */
    bool made_dir;
};

static int init_make_dir(const char *dir, struct init_paths *p)
{
    struct stat sb;
    size_t i;
    int n;

    if (mkdir(dir, 0700) == 0) {
        p->made_dir = true;
    } else if (errno != EEXIST) {
        return cli_error("cannot create directory %s: %s", dir,
                         strerror(errno));
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        return cli_error("%s is not a directory", dir);
    }
    if (realpath(dir, p->dir) == NULL) {
        return cli_error("cannot resolve %s: %s", dir, strerror(errno));
    }
    for (i = 0; i < INIT__COUNT; i++) {
        n = snprintf(p->file[i], sizeof(p->file[i]), "%s/%s", p->dir,
                     init_names[i]);
        if (n < 0 || (size_t)n >= sizeof(p->file[i])) {
            return cli_error("directory path too long: %s", p->dir);
        }
        if (lstat(p->file[i], &sb) == 0) {
            return cli_error("%s already exists; not overwriting", p->file[i]);
        }
    }
    return CLI_EXIT_OK;
}

/* Writes portcullis.conf with the built-in defaults in def, but for the
 * ports and the listen address the command line may have changed. */
static int init_write_config(struct init_paths *p, const struct config *def,
                             const char *listen)
{
    char text[2048];
    int n, r;

    n = snprintf(text, sizeof(text),
                 "# Portcullis configuration, written by `portcullis init`.\n"
                 "# Relative paths are relative to this file's directory.\n"
                 "\n"
                 "[server]\n"
                 "data_dir = .\n"
                 "log_level = %s\n"
                 "\n"
                 "[ssh]\n"
                 "listen = %s\n"
                 "port = %d\n"
                 "host_key = %s\n"
                 "\n"
                 "[http]\n"
                 "listen = %s\n"
                 "port = %d\n"
                 "\n"
                 "[store]\n"
                 "driver = sqlite\n"
                 "path = %s\n"
                 "\n"
                 "[vault]\n"
                 "key_file = %s\n"
                 "\n"
                 "[auth]\n"
                 "max_failures = %d\n"
                 "failure_window_seconds = %d\n"
                 "lockout_seconds = %d\n"
                 "failure_delay_ms = %d\n",
                 def->log_level, listen, def->ssh_port,
                 init_names[INIT_HOST_KEY], listen, def->http_port,
                 init_names[INIT_DB], init_names[INIT_VAULT], def->max_failures,
                 def->failure_window_seconds, def->lockout_seconds,
                 def->failure_delay_ms);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        return cli_error("configuration too long");
    }
    r = util_write_file_excl(p->file[INIT_CONF], text, (size_t)n, 0600);
    if (r != ERR_OK) {
        return cli_error("cannot write %s: %s", p->file[INIT_CONF], err_str(r));
    }
    p->created[INIT_CONF] = true;
    return CLI_EXIT_OK;
}

/* Generates the ed25519 host key; writes it (0600) and its .pub line. */
static int init_host_key(struct init_paths *p, char *fp, size_t fplen)
{
    const char *path = p->file[INIT_HOST_KEY];
    const char *pubpath = p->file[INIT_HOST_PUB];
    ssh_key key = NULL;
    char *priv = NULL, *pub = NULL, *line = NULL;
    int rc = CLI_EXIT_FAIL, r, n;

    if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK) {
        cli_error("cannot generate an ed25519 host key");
        goto out;
    }
    if (ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &priv) != SSH_OK ||
        ssh_pki_export_pubkey_base64(key, &pub) != SSH_OK) {
        cli_error("cannot encode the host key");
        goto out;
    }
    if ((r = util_write_file_excl(path, priv, strlen(priv), 0600)) != ERR_OK) {
        cli_error("cannot write %s: %s", path, err_str(r));
        goto out;
    }
    p->created[INIT_HOST_KEY] = true;
    if ((n = asprintf(&line, "%s %s\n", ssh_key_type_to_char(ssh_key_type(key)),
                      pub)) < 0) {
        line = NULL;
        cli_error("%s", err_str(ERR_NOMEM));
        goto out;
    }
    if ((r = util_write_file_excl(pubpath, line, (size_t)n, 0644)) != ERR_OK) {
        cli_error("cannot write %s: %s", pubpath, err_str(r));
        goto out;
    }
    p->created[INIT_HOST_PUB] = true;
    /* The umask of the CLI is 077; a public key may be read by anyone. */
    (void)chmod(pubpath, 0644);
    if (cli_key_fingerprint(key, fp, fplen) != ERR_OK) {
        cli_error("cannot compute the host key's fingerprint");
        goto out;
    }
    rc = CLI_EXIT_OK;
out:
    if (priv != NULL) {
        sodium_memzero(priv, strlen(priv));
        ssh_string_free_char(priv);
    }
    ssh_string_free_char(pub);
    free(line);
    ssh_key_free(key);
    return rc;
}

/* Creates the database and the admin user; the password goes to pw. */
static int init_store(struct init_paths *p, char *pw, size_t pwlen)
{
    const char *path = p->file[INIT_DB];
    struct store *st = NULL;
    struct store_user admin;
    struct store_site_role role;
    struct store_site root;
    char hash[STORE_HASH_MAX + 1] = "";
    int rc = CLI_EXIT_FAIL, r;

    /* None of these existed (init_make_dir); whatever SQLite leaves of
     * them on a failure is ours to remove. */
    p->created[INIT_DB] = p->created[INIT_DB_WAL] = true;
    p->created[INIT_DB_SHM] = p->created[INIT_DB_JOURNAL] = true;
    if ((r = store_open(path, &st)) != ERR_OK) {
        st = NULL;
        cli_error("cannot create store %s: %s", path, err_str(r));
        goto out;
    }
    password_generate(pw, pwlen - 1);
    if ((r = password_hash(pw, hash, sizeof(hash))) != ERR_OK) {
        cli_error("cannot hash the admin password: %s", err_str(r));
        goto out;
    }
    r = store_user_add(st, INIT_ADMIN_NAME, hash, false, &admin);
    if (r != ERR_OK) {
        cli_store_error(r, "user", INIT_ADMIN_NAME);
        goto out;
    }
    /* admin may manage everything, through the CLI and the REST API */
    memset(&role, 0, sizeof(role));
    memcpy(role.user_id, admin.id, sizeof(admin.id));
    role.role = SITE_ROLE_ADMIN;
    if ((r = store_site_get(st, "/root", &root)) == ERR_OK) {
        memcpy(role.site_id, root.id, sizeof(root.id));
        r = store_site_role_add(st, &role);
    }
    if (r != ERR_OK) {
        cli_error("cannot make admin an administrator: %s", err_str(r));
        goto out;
    }
    rc = CLI_EXIT_OK;
out:
    sodium_memzero(hash, sizeof(hash));
    sodium_memzero(&admin, sizeof(admin));
    store_close(st);
    return rc;
}

static int init_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *dir = NULL, *listen = NULL, *pos[CLI_MAX_POS];
    struct config def, cfg;
    const struct cli_opt opts[] = {
        CLI_OPT_STR("--dir", &dir),
        CLI_OPT_INT("--ssh-port", &def.ssh_port, 0, 65535),
        CLI_OPT_INT("--http-port", &def.http_port, 0, 65535),
        CLI_OPT_STR("--listen", &listen),
        CLI_OPT_END,
    };
    struct init_paths *p = NULL;
    char why[512], fp[STORE_FP_MAX + 1];
    char pw[INIT_ADMIN_PASSWORD_LEN + 1] = "";
    size_t i;
    int rc, r;

    memset(&cfg, 0, sizeof(cfg));
    if (config_defaults(&def, "/") != ERR_OK) {
        return cli_error("%s", err_str(ERR_NOMEM));
    }
    if ((rc = cli_parse(ctx, argc, argv, opts, "", pos)) != CLI_PARSED) {
        goto out;
    }
    if (dir == NULL) {
        rc = cli_usage(ctx, "missing --dir DIR");
        goto out;
    }
    /* It goes into the file verbatim: no spaces, comments or line breaks
     * that could smuggle in other keys. */
    if (listen != NULL && !cli_host_valid(listen)) {
        rc = cli_usage(ctx, "--listen needs an address or host name");
        goto out;
    }
    if ((p = calloc(1, sizeof(*p))) == NULL) {
        rc = cli_error("%s", err_str(ERR_NOMEM));
        goto out;
    }
    /* Nothing is created before every name is known to be free. */
    if ((rc = init_make_dir(dir, p)) != CLI_EXIT_OK ||
        (rc = init_write_config(p, &def,
                                listen != NULL ? listen : def.ssh_listen)) !=
            CLI_EXIT_OK) {
        goto out;
    }
    /* Read it back: a file `serve` would refuse fails the run here. */
    if ((r = config_load(p->file[INIT_CONF], &cfg, why, sizeof(why))) !=
        ERR_OK) {
        rc = cli_error("%s", why);
        goto out;
    }
    if ((rc = init_host_key(p, fp, sizeof(fp))) != CLI_EXIT_OK) {
        goto out;
    }
    if ((r = vault_create_key(p->file[INIT_VAULT])) != ERR_OK) {
        rc = cli_error("cannot create vault key %s: %s", p->file[INIT_VAULT],
                       err_str(r));
        goto out;
    }
    p->created[INIT_VAULT] = true;
    if ((rc = init_store(p, pw, sizeof(pw))) != CLI_EXIT_OK) {
        goto out;
    }
    printf("config=%s\n", p->file[INIT_CONF]);
    printf("admin_user=%s\n", INIT_ADMIN_NAME);
    printf("admin_password=%s\n", pw);
    printf("fingerprint=%s\n", fp);
out:
    sodium_memzero(pw, sizeof(pw));
    if (rc != CLI_EXIT_OK && p != NULL) {
        for (i = 0; i < INIT__COUNT; i++) {
            if (p->created[i]) {
                (void)unlink(p->file[i]);
            }
        }
        if (p->made_dir) {
            (void)rmdir(p->dir);
        }
    }
    config_free(&def);
    config_free(&cfg);
    free(p);
    return rc;
}

static int serve_run(struct cli_ctx *ctx, int argc, char **argv)
{
    const char *pos[CLI_MAX_POS];
    int rc, r, lvl;

    if ((rc = cli_parse(ctx, argc, argv, NULL, "", pos)) != CLI_PARSED) {
        return rc;
    }
    if ((rc = cli_load_config(ctx)) != CLI_EXIT_OK) {
        return rc;
    }
    if (getenv("PORTCULLIS_LOG_LEVEL") == NULL &&
        (lvl = log_level_parse(ctx->cfg.log_level)) >= 0) {
        log_set_level((enum log_level)lvl);
    }
    /* server_run() has logged why it could not start. */
    r = server_run(&ctx->cfg);
    return r == ERR_OK ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

const struct cli_cmd cli_init = {
    .name = "init",
    .synopsis = "init --dir DIR [--ssh-port N] [--http-port N] [--listen ADDR]",
    .summary = "Create a data directory: config, keys, database, admin user.",
    .details =
        "Options:\n"
        "  --dir DIR        the data directory (created with mode 0700 if "
        "missing)\n"
        "  --ssh-port N     SSH proxy port (default 2203)\n"
        "  --http-port N    HTTP port (default 8080)\n"
        "  --listen ADDR    address both listeners bind (default 127.0.0.1)\n"
        "\n"
        "Prints config=, admin_user=, admin_password= (shown only this once) "
        "and\nfingerprint= (the SSH host key's SHA256 fingerprint) lines. "
        "Refuses to\noverwrite an existing file.\n",
    .run = init_run,
};

const struct cli_cmd cli_serve = {
    .name = "serve",
    .synopsis = "-c CONF serve",
    .summary = "Run the access server until SIGTERM or SIGINT.",
    .run = serve_run,
};
