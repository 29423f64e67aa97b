/*
 * Unit tests for src/common/config.c: the embedded defaults, a file that
 * sets every key, relative paths taken against the file's own directory,
 * and that each kind of typo (unknown key, bad section header, a value
 * that is not an integer or out of range, a line without '=') is refused
 * with ERR_CONFIG and the offending line number, leaving nothing behind.
 * Each test writes its files into a fresh temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/err.h"

struct tmp {
    char dir[PATH_MAX]; /* canonical: realpath of the mkdtemp result */
    char file[PATH_MAX + 32];
};

static int setup_tmp(void **state)
{
    static struct tmp t;
    char tmpl[] = "/tmp/portcullis-test-config-XXXXXX";

    if (mkdtemp(tmpl) == NULL || realpath(tmpl, t.dir) == NULL) {
        return -1;
    }
    snprintf(t.file, sizeof(t.file), "%s/portcullis.conf", t.dir);
    *state = &t;
    return 0;
}

static int teardown_tmp(void **state)
{
    struct tmp *t = *state;

    unlink(t->file);
    rmdir(t->dir);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* "dir/rel" for comparing resolved paths. */
static const char *join(const struct tmp *t, const char *rel)
{
    static char out[PATH_MAX * 2];

    snprintf(out, sizeof(out), "%s/%s", t->dir, rel);
    return out;
}

/* A config after a failed load owns nothing and is all zero. */
static void assert_config_empty(const struct config *cfg)
{
    static const struct config zero;

    assert_memory_equal(cfg, &zero, sizeof(zero));
}

static void test_defaults(void **state)
{
    struct config cfg;

    (void)state;
    memset(&cfg, 0xa5, sizeof(cfg));
    assert_int_equal(config_defaults(&cfg, "/var/lib/portcullis"), ERR_OK);
    assert_null(cfg.path);
    assert_string_equal(cfg.data_dir, "/var/lib/portcullis");
    assert_string_equal(cfg.log_level, "info");
    assert_string_equal(cfg.ssh_listen, "127.0.0.1");
    assert_int_equal(cfg.ssh_port, 2203);
    assert_string_equal(cfg.ssh_host_key,
                        "/var/lib/portcullis/ssh_host_ed25519_key");
    assert_int_equal(cfg.max_startups, 256);
    assert_int_equal(cfg.max_startups_begin, 64);
    assert_int_equal(cfg.max_startups_rate, 30);
    assert_int_equal(cfg.max_startups_per_source, 10);
    assert_int_equal(cfg.max_auth_tries, 6);
    assert_int_equal(cfg.max_sessions, 4096);
    assert_int_equal(cfg.login_grace_seconds, 60);
    assert_int_equal(cfg.connect_timeout_seconds, 10);
    assert_string_equal(cfg.privsep_user, "nobody");
    assert_string_equal(cfg.http_listen, "127.0.0.1");
    assert_int_equal(cfg.http_port, 8080);
    assert_string_equal(cfg.store_driver, "sqlite");
    assert_string_equal(cfg.store_path, "/var/lib/portcullis/portcullis.db");
    assert_string_equal(cfg.vault_key, "/var/lib/portcullis/vault.key");
    assert_int_equal(cfg.max_failures, 5);
    assert_int_equal(cfg.failure_window_seconds, 300);
    assert_int_equal(cfg.lockout_seconds, 300);
    assert_int_equal(cfg.failure_delay_ms, 1000);
    assert_int_equal(cfg.max_concurrent_hashes, 2);
    assert_int_equal(cfg.password_memory_kib, 65536);
    assert_int_equal(cfg.password_passes, 2);
    config_free(&cfg);
    assert_config_empty(&cfg);
    /* Freeing twice, or NULL, is harmless. */
    config_free(&cfg);
    config_free(NULL);
}

/* [rdp] compression: on unless turned off; only a boolean. */
static void test_rdp_compression(void **state)
{
    struct config cfg;
    char why[256] = "";

    (void)state;
    assert_int_equal(
        config_parse_text("", 0, "/x/p.conf", &cfg, why, sizeof(why)), ERR_OK);
    assert_true(cfg.rdp_compression);
    config_free(&cfg);
    assert_int_equal(config_parse_text("[rdp]\ncompression = false\n", 26,
                                       "/x/p.conf", &cfg, why, sizeof(why)),
                     ERR_OK);
    assert_false(cfg.rdp_compression);
    config_free(&cfg);
    assert_int_equal(config_parse_text("[rdp]\ncompression = sometimes\n", 30,
                                       "/x/p.conf", &cfg, why, sizeof(why)),
                     ERR_CONFIG);
    assert_non_null(strstr(why, "/x/p.conf:2:"));
}

static void test_empty_file_gives_defaults(void **state)
{
    struct tmp *t = *state;
    struct config cfg;
    char why[256] = "";

    write_file(t->file, "");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_string_equal(cfg.path, t->file);
    /* The data directory defaults to the file's own directory. */
    assert_string_equal(cfg.data_dir, t->dir);
    assert_string_equal(cfg.ssh_host_key, join(t, "ssh_host_ed25519_key"));
    assert_string_equal(cfg.store_path, join(t, "portcullis.db"));
    assert_string_equal(cfg.vault_key, join(t, "vault.key"));
    assert_int_equal(cfg.ssh_port, 2203);
    assert_int_equal(cfg.failure_delay_ms, 1000);
    config_free(&cfg);
}

static void test_every_key(void **state)
{
    struct tmp *t = *state;
    struct config cfg;
    char why[256] = "";

    write_file(t->file, "[server]\n"
                        "data_dir = /srv/pc\n"
                        "log_level = debug\n"
                        "[ssh]\n"
                        "listen = 0.0.0.0\n"
                        "port = 2222\n"
                        "host_key = /etc/pc/host_key\n"
                        "max_startups = 10\n"
                        "max_sessions = 20\n"
                        "login_grace_seconds = 30\n"
                        "connect_timeout_seconds = 5\n"
                        "privsep_user = pcsep\n"
                        "[http]\n"
                        "listen = ::1\n"
                        "port = 8443\n"
                        "[store]\n"
                        "driver = sqlite\n"
                        "path = /var/db/pc.db\n"
                        "[vault]\n"
                        "key_file = /etc/pc/vault.key\n"
                        "[auth]\n"
                        "max_failures = 7\n"
                        "failure_window_seconds = 600\n"
                        "lockout_seconds = 0\n"
                        "failure_delay_ms = 250\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_string_equal(cfg.path, t->file);
    assert_string_equal(cfg.data_dir, "/srv/pc");
    assert_string_equal(cfg.log_level, "debug");
    assert_string_equal(cfg.ssh_listen, "0.0.0.0");
    assert_int_equal(cfg.ssh_port, 2222);
    assert_string_equal(cfg.ssh_host_key, "/etc/pc/host_key");
    assert_int_equal(cfg.max_startups, 10);
    assert_int_equal(cfg.max_sessions, 20);
    assert_int_equal(cfg.login_grace_seconds, 30);
    assert_int_equal(cfg.connect_timeout_seconds, 5);
    assert_string_equal(cfg.privsep_user, "pcsep");
    assert_string_equal(cfg.http_listen, "::1");
    assert_int_equal(cfg.http_port, 8443);
    assert_string_equal(cfg.store_driver, "sqlite");
    assert_string_equal(cfg.store_path, "/var/db/pc.db");
    assert_string_equal(cfg.vault_key, "/etc/pc/vault.key");
    assert_int_equal(cfg.max_failures, 7);
    assert_int_equal(cfg.failure_window_seconds, 600);
    assert_int_equal(cfg.lockout_seconds, 0);
    assert_int_equal(cfg.failure_delay_ms, 250);
    config_free(&cfg);
    assert_config_empty(&cfg);
}

static void test_relative_paths_against_file_dir(void **state)
{
    struct tmp *t = *state;
    struct config cfg;
    char why[256] = "";
    char cwd[PATH_MAX], rel[PATH_MAX + 64];
    const char *base;

    write_file(t->file, "[server]\n"
                        "data_dir = data\n"
                        "[ssh]\n"
                        "host_key = keys/host_ed25519\n"
                        "[store]\n"
                        "path = db/pc.db\n"
                        "[vault]\n"
                        "key_file = vault.key\n");
    /* Load it by a relative name from elsewhere: paths still resolve
     * against the file's directory, not the working directory. */
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir("/"), 0);
    base = t->file[0] == '/' ? t->file + 1 : t->file;
    snprintf(rel, sizeof(rel), "./%s", base);
    assert_int_equal(config_load(rel, &cfg, why, sizeof(why)), ERR_OK);
    assert_int_equal(chdir(cwd), 0);

    assert_string_equal(cfg.path, t->file);
    assert_string_equal(cfg.data_dir, join(t, "data"));
    assert_string_equal(cfg.ssh_host_key, join(t, "keys/host_ed25519"));
    assert_string_equal(cfg.store_path, join(t, "db/pc.db"));
    assert_string_equal(cfg.vault_key, join(t, "vault.key"));
    /* Non-path strings are taken as written. */
    assert_string_equal(cfg.privsep_user, "nobody");
    config_free(&cfg);
}

static void test_comments_blank_lines_and_spaces(void **state)
{
    struct tmp *t = *state;
    struct config cfg;
    char why[256] = "";

    write_file(t->file, "# written by portcullis init\n"
                        "\n"
                        "; another comment style\n"
                        "   \t\n"
                        "  [ssh]  \n"
                        "\t# port = 1\n"
                        "  port=2300  \n"
                        "privsep_user   =   pc sep\n"
                        "listen = a=b\n"
                        "\n"
                        "[auth]\n"
                        "failure_delay_ms = 0\n"
                        "# trailing comment without newline");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_int_equal(cfg.ssh_port, 2300);
    /* Inner spaces kept, outer spaces trimmed; only the first '=' splits. */
    assert_string_equal(cfg.privsep_user, "pc sep");
    assert_string_equal(cfg.ssh_listen, "a=b");
    assert_int_equal(cfg.failure_delay_ms, 0);
    config_free(&cfg);
}

/* Loads text, expecting ERR_CONFIG with ":line:" and what in why. */
static void assert_load_fails(const struct tmp *t, const char *text, int line,
                              const char *what)
{
    struct config cfg;
    char why[256] = "";
    char tag[32];

    write_file(t->file, text);
    memset(&cfg, 0xa5, sizeof(cfg));
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_CONFIG);
    assert_config_empty(&cfg);
    if (line > 0) {
        snprintf(tag, sizeof(tag), ":%d:", line);
        if (strstr(why, tag) == NULL) {
            fail_msg("want %s in '%s'", tag, why);
        }
    }
    if (strstr(why, what) == NULL) {
        fail_msg("want '%s' in '%s'", what, why);
    }
    assert_null(strchr(why, '\n'));
}

static void test_unknown_key(void **state)
{
    const struct tmp *t = *state;

    assert_load_fails(t, "# comment\n[ssh]\nport = 22\nprot = 22\n", 4,
                      "unknown key 'prot' in [ssh]");
    /* A known key in the wrong section is unknown there. */
    assert_load_fails(t, "[http]\nhost_key = k\n", 2,
                      "unknown key 'host_key' in [http]");
    /* So is any key before the first section, and in an unknown one. */
    assert_load_fails(t, "\nport = 22\n", 2, "unknown key 'port'");
    assert_load_fails(t, "[ssh]\n[sssh]\nport = 22\n", 3,
                      "unknown key 'port' in [sssh]");
}

static void test_bad_section(void **state)
{
    const struct tmp *t = *state;

    assert_load_fails(t, "[ssh]\nport = 22\n[http\n", 3, "bad section header");
    assert_load_fails(t, "\n[ssh] port = 22\n", 2, "bad section header");
    assert_load_fails(t, "[ssh]]\n", 1, "bad section header");
    assert_load_fails(t,
                      "\n\n[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
                      3, "bad section header");
}

static void test_non_integer(void **state)
{
    const struct tmp *t = *state;

    assert_load_fails(t, "[ssh]\n\nport = ssh\n", 3, "'port' needs an integer");
    assert_load_fails(t, "[ssh]\nport = 22x\n", 2, "needs an integer");
    assert_load_fails(t, "[ssh]\nport = 2 2\n", 2, "needs an integer");
    assert_load_fails(t, "[ssh]\nport =\n", 2, "needs an integer");
    assert_load_fails(t, "[auth]\nmax_failures = 99999999999999999999\n", 2,
                      "'max_failures' needs an integer from 1 to 100");
}

static void test_out_of_range(void **state)
{
    const struct tmp *t = *state;
    struct config cfg;
    char why[256] = "";

    assert_load_fails(t, "[ssh]\nport = 65536\n", 2,
                      "'port' needs an integer from 0 to 65535");
    assert_load_fails(t, "[http]\nport = -1\n", 2, "from 0 to 65535");
    assert_load_fails(t, "[ssh]\nmax_startups = 0\n", 2, "from 1 to 100000");
    assert_load_fails(t, "[auth]\nfailure_delay_ms = 60001\n", 2,
                      "from 0 to 60000");
    assert_load_fails(t, "[auth]\nmax_concurrent_hashes = 0\n", 2,
                      "from 1 to 64");
    /* argon2id never below OWASP's floor: the memory a number of passes
     * needs at least (no line: the pair is checked after the file) */
    assert_load_fails(t, "[auth]\npassword_memory_kib = 19455\n", 0,
                      "below the minimum for password_passes 2 (19456 KiB");
    assert_load_fails(t,
                      "[auth]\npassword_memory_kib = 40000\n"
                      "password_passes = 1\n",
                      0, "password_passes 1 (47104 KiB");
    assert_load_fails(t, "[auth]\npassword_memory_kib = 7167\n", 2,
                      "from 7168 to 4194304");
    assert_load_fails(t, "[auth]\npassword_passes = 0\n", 2, "from 1 to 64");
    write_file(t->file, "[auth]\npassword_memory_kib = 7168\n"
                        "password_passes = 5\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_int_equal(cfg.password_memory_kib, 7168);
    config_free(&cfg);
    write_file(t->file, "[auth]\npassword_memory_kib = 19456\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    config_free(&cfg);
    /* The bounds themselves are accepted. */
    write_file(t->file, "[ssh]\nport = 65535\nmax_startups = 1\n"
                        "[auth]\nfailure_delay_ms = 60000\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_int_equal(cfg.ssh_port, 65535);
    assert_int_equal(cfg.max_startups, 1);
    assert_int_equal(cfg.failure_delay_ms, 60000);
    config_free(&cfg);
}

/* [ssh] max_startups: one number N (N:100:N) or OpenSSH's
 * start:rate:full; the pre-authentication keys next to it. */
static void test_max_startups_forms(void **state)
{
    const struct tmp *t = *state;
    struct config cfg;
    char why[256] = "";

    write_file(t->file, "[ssh]\nmax_startups = 12\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_int_equal(cfg.max_startups_begin, 12);
    assert_int_equal(cfg.max_startups_rate, 100);
    assert_int_equal(cfg.max_startups, 12);
    config_free(&cfg);
    write_file(t->file, "[ssh]\nmax_startups = 10:30:100\n"
                        "max_startups_per_source = 3\nmax_auth_tries = 2\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_int_equal(cfg.max_startups_begin, 10);
    assert_int_equal(cfg.max_startups_rate, 30);
    assert_int_equal(cfg.max_startups, 100);
    assert_int_equal(cfg.max_startups_per_source, 3);
    assert_int_equal(cfg.max_auth_tries, 2);
    config_free(&cfg);
    write_file(t->file, "[ssh]\nmax_startups = 5:100:5\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_int_equal(cfg.max_startups_begin, 5);
    assert_int_equal(cfg.max_startups, 5);
    config_free(&cfg);
    /* start above full, rate out of 1-100, missing or extra parts. */
    assert_load_fails(t, "[ssh]\nmax_startups = 30:10:20\n", 2,
                      "start:rate:full");
    assert_load_fails(t, "[ssh]\nmax_startups = 10:0:20\n", 2,
                      "start:rate:full");
    assert_load_fails(t, "[ssh]\nmax_startups = 10:101:20\n", 2,
                      "start:rate:full");
    assert_load_fails(t, "[ssh]\nmax_startups = 10:30\n", 2, "start:rate:full");
    assert_load_fails(t, "[ssh]\nmax_startups = 10:30:20:5\n", 2,
                      "start:rate:full");
    assert_load_fails(t, "[ssh]\nmax_startups = 0:30:20\n", 2,
                      "start:rate:full");
    assert_load_fails(t, "[ssh]\nmax_startups = 10: 30:20\n", 2,
                      "start:rate:full");
    assert_load_fails(t, "[ssh]\nmax_startups = 10:30:200000\n", 2,
                      "from 1 to 100000");
    assert_load_fails(t, "[ssh]\nmax_startups_per_source = 0\n", 2,
                      "from 1 to 100000");
    assert_load_fails(t, "[ssh]\nmax_auth_tries = 101\n", 2, "from 1 to 100");
}

static void test_missing_equals(void **state)
{
    const struct tmp *t = *state;

    assert_load_fails(t, "[ssh]\n# ok\nport = 22\nlisten 0.0.0.0\n", 4,
                      "expected key = value");
    assert_load_fails(t, "port\n", 1, "expected key = value");
}

static void test_bad_values_after_parse(void **state)
{
    const struct tmp *t = *state;

    assert_load_fails(t, "[store]\ndriver = postgres\n", 0,
                      "unsupported store driver 'postgres'");
    assert_load_fails(t, "[server]\nlog_level = loud\n", 0,
                      "unknown log_level 'loud'");
}

/* [store] url selects PostgreSQL: the URL becomes the store's location;
 * anything but a postgresql:// URL without a password is refused. */
static void test_store_url(void **state)
{
    const struct tmp *t = *state;
    struct config cfg;
    char why[256] = "";

    write_file(t->file, "[store]\nurl = postgresql:///pc?host=/run/pg\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_string_equal(cfg.store_driver, "postgresql");
    assert_string_equal(cfg.store_url, "postgresql:///pc?host=/run/pg");
    assert_string_equal(cfg.store_path, "postgresql:///pc?host=/run/pg");
    config_free(&cfg);

    write_file(t->file, "[store]\ndriver = postgresql\n"
                        "url = postgres://pc@db.example/pc\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_string_equal(cfg.store_path, "postgres://pc@db.example/pc");
    config_free(&cfg);

    assert_load_fails(t, "[store]\ndriver = postgresql\n", 0,
                      "driver postgresql needs url");
    assert_load_fails(t, "[store]\nurl = mysql://db/pc\n", 0,
                      "url must start with postgresql://");
    assert_load_fails(t, "[store]\nurl = /var/lib/pc.db\n", 0,
                      "url must start with postgresql://");
    assert_load_fails(t, "[store]\nurl = postgresql://pc:hunter2@db/pc\n", 0,
                      "must not hold a password");
    assert_load_fails(t, "[store]\nurl = postgresql://db/pc?password=x\n", 0,
                      "must not hold a password");
    assert_load_fails(t,
                      "[store]\nurl = postgresql://db/pc?sslmode=require"
                      "&password=x\n",
                      0, "must not hold a password");
}

static void test_line_too_long(void **state)
{
    const struct tmp *t = *state;
    static const char head[] = "[ssh]\nprivsep_user = ";
    char *text = malloc(8192);

    /* Line 2 is about 8 KiB: longer than the 4 KiB line limit. */
    assert_non_null(text);
    memcpy(text, head, sizeof(head) - 1);
    memset(text + sizeof(head) - 1, 'u', 8192 - sizeof(head) - 1);
    text[8192 - 2] = '\n';
    text[8192 - 1] = '\0';
    assert_load_fails(t, text, 2, "line too long");
    free(text);
}

static void test_missing_file(void **state)
{
    const struct tmp *t = *state;
    struct config cfg;
    char why[512] = "";

    memset(&cfg, 0xa5, sizeof(cfg));
    assert_int_equal(config_load(join(t, "nope.conf"), &cfg, why, sizeof(why)),
                     ERR_CONFIG);
    assert_config_empty(&cfg);
    assert_non_null(strstr(why, "cannot read config"));
    assert_non_null(strstr(why, "nope.conf"));
    /* A directory exists but is no config file. */
    memset(&cfg, 0xa5, sizeof(cfg));
    assert_int_equal(config_load(t->dir, &cfg, why, sizeof(why)), ERR_CONFIG);
    assert_config_empty(&cfg);
}

/* The algorithm lists: defaults as Debian 12's OpenSSH offers them, names
 * checked against what libssh 0.10 knows, weak ones accepted but listed. */
static void test_algorithms(void **state)
{
    const struct tmp *t = *state;
    struct config cfg;
    char why[256] = "", weak[512];

    write_file(t->file, "");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_string_equal(cfg.client_ciphers,
                        "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,"
                        "aes256-ctr,aes128-gcm@openssh.com,"
                        "aes256-gcm@openssh.com");
    assert_string_equal(cfg.upstream_ciphers,
                        "aes128-gcm@openssh.com,aes256-gcm@openssh.com,"
                        "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,"
                        "aes256-ctr");
    assert_non_null(strstr(cfg.client_kex, "diffie-hellman-group14-sha256"));
    assert_non_null(strstr(cfg.upstream_kex, "curve25519-sha256"));
    assert_string_equal(cfg.client_macs, cfg.upstream_macs);
    assert_string_equal(cfg.hostkey_algorithms,
                        "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,"
                        "ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256");
    assert_string_equal(cfg.ssh_host_key_ecdsa, join(t, "ssh_host_ecdsa_key"));
    assert_string_equal(cfg.ssh_host_key_rsa, join(t, "ssh_host_rsa_key"));
    assert_null(cfg.ssh_banner);
    assert_null(cfg.ssh_banner_file);
    /* the defaults hold nothing weak */
    assert_int_equal(config_weak_algorithms(&cfg, weak, sizeof(weak)), 0);
    assert_string_equal(weak, "");
    config_free(&cfg);

    /* weak names: accepted, blanks dropped, and listed */
    write_file(t->file, "[ssh]\n"
                        "client_ciphers = aes128-ctr, aes128-cbc\n"
                        "upstream_kex = curve25519-sha256,"
                        "diffie-hellman-group1-sha1\n"
                        "upstream_hostkey_algorithms = ssh-ed25519,ssh-rsa\n"
                        "host_key_rsa =\n"
                        "banner = Authorized use only\n");
    assert_int_equal(config_load(t->file, &cfg, why, sizeof(why)), ERR_OK);
    assert_string_equal(cfg.client_ciphers, "aes128-ctr,aes128-cbc");
    assert_null(cfg.ssh_host_key_rsa);
    assert_string_equal(cfg.ssh_banner, "Authorized use only");
    assert_int_equal(config_weak_algorithms(&cfg, weak, sizeof(weak)), 3);
    assert_string_equal(weak,
                        "aes128-cbc ([ssh] client_ciphers), "
                        "diffie-hellman-group1-sha1 ([ssh] upstream_kex), "
                        "ssh-rsa ([ssh] upstream_hostkey_algorithms)");
    /* a short buffer: cut at a whole item, still terminated */
    assert_int_equal(config_weak_algorithms(&cfg, weak, 40), 3);
    assert_string_equal(weak, "aes128-cbc ([ssh] client_ciphers)");
    config_free(&cfg);

    assert_load_fails(t, "[ssh]\nclient_ciphers = aes128-ctr,aes128-gcm\n", 0,
                      "[ssh] client_ciphers: unknown cipher 'aes128-gcm'");
    /* a name of another kind is unknown here */
    assert_load_fails(t, "[ssh]\nclient_macs = aes128-ctr\n", 0,
                      "[ssh] client_macs: unknown MAC 'aes128-ctr'");
    assert_load_fails(t, "[ssh]\nupstream_kex = \n", 0,
                      "[ssh] upstream_kex needs at least one key exchange");
    assert_load_fails(t, "[ssh]\nhostkey_algorithms = ssh-ed25519,,\n", 0,
                      "unknown host key algorithm ''");
    assert_load_fails(t, "[ssh]\nclient_kex = none\n", 0,
                      "unknown key exchange 'none'");
    assert_load_fails(t, "[ssh]\nbanner = hi\nbanner_file = b.txt\n", 0,
                      "set banner or banner_file, not both");
}

/* The from-memory entry point (the fuzz target's): the same parser as a
 * file, relative paths from the named directory, nothing read from disk,
 * and bytes a file could hold (a NUL, no final newline) refused or read
 * cleanly. */
static void test_parse_text(void **state)
{
    static const char text[] = "[ssh]\nport = 2222\n[store]\npath = db/x.db";
    static const char nul[] = "[ssh]\nport = 22\0 22\n";
    struct config cfg;
    char why[256] = "";

    (void)state;
    assert_int_equal(config_parse_text(text, sizeof(text) - 1,
                                       "/nonexistent/pc/portcullis.conf", &cfg,
                                       why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(cfg.ssh_port, 2222);
    assert_string_equal(cfg.store_path, "/nonexistent/pc/db/x.db");
    assert_string_equal(cfg.vault_key, "/nonexistent/pc/vault.key");
    config_free(&cfg);

    assert_int_equal(
        config_parse_text("", 0, "/x/p.conf", &cfg, why, sizeof(why)), ERR_OK);
    assert_int_equal(cfg.ssh_port, 2203);
    config_free(&cfg);

    assert_int_equal(config_parse_text("[ssh]\nport = 99999\n", 19, "/x/p.conf",
                                       &cfg, why, sizeof(why)),
                     ERR_CONFIG);
    assert_non_null(strstr(why, "/x/p.conf:2:"));
    why[0] = '\0';
    assert_int_equal(config_parse_text(nul, sizeof(nul) - 1, "/x/p.conf", &cfg,
                                       why, sizeof(why)),
                     ERR_CONFIG);
    assert_true(why[0] != '\0');
    assert_int_equal(
        config_parse_text("x", 1, "relative.conf", &cfg, why, sizeof(why)),
        ERR_CONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_text),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_rdp_compression),
        cmocka_unit_test_setup_teardown(test_empty_file_gives_defaults,
                                        setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_every_key, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_relative_paths_against_file_dir,
                                        setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_comments_blank_lines_and_spaces,
                                        setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_bad_section, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_non_integer, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_out_of_range, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_max_startups_forms, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_missing_equals, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_store_url, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_bad_values_after_parse, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_line_too_long, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_algorithms, setup_tmp,
                                        teardown_tmp),
        cmocka_unit_test_setup_teardown(test_missing_file, setup_tmp,
                                        teardown_tmp),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
