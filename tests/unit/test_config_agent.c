/*
 * Unit tests for the agent's configuration (agent/agent_conf.c) as read
 * by the table-driven reader it now shares with portcullis.conf
 * (common/config.c): what a file and the flags set, and every refusal as
 * the one line an operator sees ("FILE:LINE: what", "--KEY: what").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_conf.h"
#include "common/err.h"
#include "common/log.h"

#define FP "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static char conf_path[64];

static int setup(void **state)
{
    int fd;

    snprintf(conf_path, sizeof(conf_path), "/tmp/test_config_agent.XXXXXX");
    if ((fd = mkstemp(conf_path)) < 0) {
        return -1;
    }
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    unlink(conf_path);
    return 0;
}

static void write_conf(const char *text, size_t len)
{
    FILE *f = fopen(conf_path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    chmod(conf_path, 0600);
}

/* Loads text; expects ERR_CONFIG and exactly "FILE:LINE: what" (line 0:
 * "FILE: what"). */
static void assert_refused(const char *text, int line, const char *what)
{
    struct agent_conf c;
    char why[512] = "", want[512];

    write_conf(text, strlen(text));
    agent_conf_init(&c);
    assert_int_equal(agent_conf_load(&c, conf_path, why, sizeof(why)),
                     ERR_CONFIG);
    if (line > 0) {
        snprintf(want, sizeof(want), "%s:%d: %s", conf_path, line, what);
    } else {
        snprintf(want, sizeof(want), "%s: %s", conf_path, what);
    }
    assert_string_equal(why, want);
    agent_conf_free(&c);
}

static void test_file_sets_keys(void **state)
{
    struct agent_conf c;
    char why[256] = "";
    const char *text = "# the agent\n"
                       "\n"
                       "server = ws://127.0.0.1:8080\r\n"
                       "  fingerprint\t= " FP "\n"
                       "credential = cred1:s3cret:with:colons\n"
                       "id = host-1.example\n"
                       "name = Host one\n"
                       "tag = a\n"
                       "tag = b\n"
                       "allow = 10.0.0.0/8:22\n"
                       "keepalive = 5\n"
                       "timeout = 3600\n"
                       "log-level = debug\n"
                       "ca = certs/ca.pem\n";

    write_conf(text, strlen(text));
    agent_conf_init(&c);
    assert_int_equal(agent_conf_load(&c, conf_path, why, sizeof(why)), ERR_OK);
    assert_string_equal(c.server, "ws://127.0.0.1:8080");
    assert_string_equal(c.fingerprint, FP);
    assert_string_equal(c.cred_id, "cred1");
    assert_string_equal(c.cred_secret, "s3cret:with:colons");
    assert_string_equal(c.id, "host-1.example");
    assert_string_equal(c.name, "Host one");
    assert_int_equal(c.ntags, 2);
    assert_string_equal(c.tags[1], "b");
    assert_int_equal(c.allow.n, 1);
    assert_int_equal(c.keepalive, 5);
    assert_int_equal(c.timeout, 3600);
    assert_int_equal(c.log_level, LOG_DEBUG);
    /* taken as written, not joined onto the file's directory */
    assert_string_equal(c.ca, "certs/ca.pem");
    assert_true(c.secret_in_file);
    assert_int_equal(agent_conf_finish(&c, true, why, sizeof(why)), ERR_OK);
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.path, "/agent");
    agent_conf_free(&c);
}

static void test_file_refusals(void **state)
{
    char longline[5000];

    assert_refused("server = ws://x:1\nfrobnicate = 1\n", 2,
                   "unknown key 'frobnicate'");
    assert_refused("server ws://x:1\n", 1, "expected key = value");
    /* no sections in the agent's file */
    assert_refused("[agent]\nserver = ws://x:1\n", 1, "expected key = value");
    assert_refused("\nkeepalive = 0\n", 2,
                   "'keepalive' needs an integer from 1 to 3600");
    assert_refused("timeout = 10s\n", 1,
                   "'timeout' needs an integer from 1 to 3600");
    assert_refused("fingerprint = SHA256:short\n", 1,
                   "fingerprint must be SHA256: and 43 base64 characters, as "
                   "`portcullis init` prints it");
    assert_refused("credential = nocolon\n", 1,
                   "credential must be ID:SECRET, as `portcullis credential "
                   "add` prints them");
    assert_refused("credential = :secret\n", 1,
                   "credential must be ID:SECRET, as `portcullis credential "
                   "add` prints them");
    assert_refused("id = bad id\n", 1,
                   "id must be 1-64 of A-Z a-z 0-9 . _ -, got 'bad id'");
    assert_refused("name =\n", 1, "name must be 1-128 characters");
    assert_refused("log_level = loud\n", 1,
                   "log_level must be error, warn, info or debug");
    assert_refused("name = a\x01"
                   "b\n",
                   1, "name: control characters in the value");
    assert_refused("tag = 1\ntag = 2\ntag = 3\ntag = 4\ntag = 5\ntag = 6\n"
                   "tag = 7\ntag = 8\ntag = 9\ntag = 10\ntag = 11\ntag = 12\n"
                   "tag = 13\ntag = 14\ntag = 15\ntag = 16\ntag = 17\n"
                   "tag = 18\ntag = 19\ntag = 20\ntag = 21\ntag = 22\n"
                   "tag = 23\ntag = 24\ntag = 25\ntag = 26\ntag = 27\n"
                   "tag = 28\ntag = 29\ntag = 30\ntag = 31\ntag = 32\n"
                   "tag = 33\n",
                   33, "more than 32 tags");
    memset(longline, 'a', sizeof(longline));
    memcpy(longline, "server = ws://", 14);
    longline[1100] = '\n';
    longline[1101] = '\0';
    assert_refused(longline, 1, "server: at most 1024 characters");
    longline[1100] = 'a';
    longline[1101] = 'a';
    longline[sizeof(longline) - 2] = '\n';
    longline[sizeof(longline) - 1] = '\0';
    assert_refused(longline, 1, "line too long");
}

static void test_allow_refusal_names_line(void **state)
{
    struct agent_conf c;
    char why[512] = "", want[128];

    write_conf("allow = 10.0.0.1:22\nallow = nonsense\n", 37);
    agent_conf_init(&c);
    assert_int_equal(agent_conf_load(&c, conf_path, why, sizeof(why)),
                     ERR_CONFIG);
    snprintf(want, sizeof(want), "%s:2: allow: ", conf_path);
    assert_memory_equal(why, want, strlen(want));
    assert_null(strchr(why, '\n'));
    agent_conf_free(&c);
}

static void test_not_text(void **state)
{
    struct agent_conf c;
    char why[512] = "", want[128];

    write_conf("server = ws://x:1\n\0id = a\n", 26);
    agent_conf_init(&c);
    assert_int_equal(agent_conf_load(&c, conf_path, why, sizeof(why)),
                     ERR_CONFIG);
    snprintf(want, sizeof(want), "%s: not a text file", conf_path);
    assert_string_equal(why, want);
    agent_conf_free(&c);
    /* an empty file is no error: everything comes from flags then */
    write_conf("", 0);
    agent_conf_init(&c);
    assert_int_equal(agent_conf_load(&c, conf_path, why, sizeof(why)), ERR_OK);
    assert_false(c.secret_in_file);
    agent_conf_free(&c);
}

/* Flags: the same table, "--KEY: what"; a flag's tags replace the
 * file's. */
static void test_flags(void **state)
{
    struct agent_conf c;
    enum agent_conf_action act;
    char why[512] = "";
    static char a0[] = "agent", dash_c[] = "-c", tag[] = "--tag", x[] = "x",
                ka7[] = "--keepalive=7", ka[] = "--keepalive", zero[] = "0",
                frob[] = "--frobnicate", one[] = "1", name[] = "--name",
                tab[] = "a\tb", server[] = "--server";
    char *ok[] = {a0, dash_c, conf_path, tag, x, ka7, NULL};
    char *bad_int[] = {a0, ka, zero, NULL};
    char *unknown[] = {a0, frob, one, NULL};
    char *ctl[] = {a0, name, tab, NULL};
    char *novalue[] = {a0, server, NULL};

    write_conf("tag = a\ntag = b\nkeepalive = 3\n", 30);
    agent_conf_init(&c);
    assert_int_equal(
        agent_conf_args(&c, 6, ok, NULL, NULL, NULL, &act, why, sizeof(why)),
        ERR_OK);
    assert_int_equal(c.ntags, 1);
    assert_string_equal(c.tags[0], "x");
    assert_int_equal(c.keepalive, 7);
    agent_conf_free(&c);

    agent_conf_init(&c);
    assert_int_equal(agent_conf_args(&c, 3, bad_int, NULL, NULL, NULL, &act,
                                     why, sizeof(why)),
                     ERR_CONFIG);
    assert_string_equal(why,
                        "--keepalive: 'keepalive' needs an integer from 1 to "
                        "3600");
    assert_int_equal(agent_conf_args(&c, 3, unknown, NULL, NULL, NULL, &act,
                                     why, sizeof(why)),
                     ERR_CONFIG);
    assert_string_equal(why, "unknown option --frobnicate (see --help)");
    assert_int_equal(
        agent_conf_args(&c, 3, ctl, NULL, NULL, NULL, &act, why, sizeof(why)),
        ERR_CONFIG);
    assert_string_equal(why, "--name: name: control characters in the value");
    assert_int_equal(agent_conf_args(&c, 2, novalue, NULL, NULL, NULL, &act,
                                     why, sizeof(why)),
                     ERR_CONFIG);
    assert_string_equal(why, "--server needs a value");
    /* agent_conf_set: the flag's own door */
    assert_int_equal(agent_conf_set(&c, "nope", "1", true, why, sizeof(why)),
                     ERR_CONFIG);
    assert_string_equal(why, "unknown key 'nope'");
    agent_conf_free(&c);
}

/* What agent_conf_finish refuses after a file that parses. */
static void test_finish_refusals(void **state)
{
    struct agent_conf c;
    char why[512] = "";

    agent_conf_init(&c);
    assert_int_equal(agent_conf_finish(&c, true, why, sizeof(why)), ERR_CONFIG);
    assert_string_equal(why, "no server (--server ws://HOST:PORT)");
    assert_int_equal(
        agent_conf_set(&c, "server", "http://x", false, why, sizeof(why)),
        ERR_OK);
    assert_int_equal(
        agent_conf_set(&c, "fingerprint", FP, false, why, sizeof(why)), ERR_OK);
    assert_int_equal(
        agent_conf_set(&c, "credential", "a:b", false, why, sizeof(why)),
        ERR_OK);
    assert_int_equal(
        agent_conf_set(&c, "keepalive", "30", false, why, sizeof(why)), ERR_OK);
    assert_int_equal(agent_conf_finish(&c, true, why, sizeof(why)), ERR_CONFIG);
    assert_string_equal(why,
                        "timeout (25) must be greater than keepalive (30)");
    assert_int_equal(
        agent_conf_set(&c, "keepalive", "10", false, why, sizeof(why)), ERR_OK);
    assert_int_equal(agent_conf_finish(&c, true, why, sizeof(why)), ERR_CONFIG);
    assert_string_equal(why,
                        "server must be a ws:// or wss:// URL, got 'http://x'");
    agent_conf_free(&c);
}

/* server takes a list: the nodes of a cluster, tried in turn. */
static int finish_with_server(struct agent_conf *c, const char *server,
                              char *why, size_t whylen)
{
    agent_conf_init(c);
    assert_int_equal(agent_conf_set(c, "server", server, false, why, whylen),
                     ERR_OK);
    assert_int_equal(agent_conf_set(c, "fingerprint", FP, false, why, whylen),
                     ERR_OK);
    assert_int_equal(agent_conf_set(c, "credential", "a:b", false, why, whylen),
                     ERR_OK);
    return agent_conf_finish(c, true, why, whylen);
}

static void test_server_list(void **state)
{
    struct agent_conf c;
    char why[512] = "";

    (void)state;
    assert_int_equal(finish_with_server(&c,
                                        "ws://10.0.0.1:8080, wss://[::1]/x "
                                        "ws://b.example",
                                        why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(c.nservers, 3);
    assert_string_equal(c.servers[0].url, "ws://10.0.0.1:8080");
    assert_string_equal(c.servers[0].host, "10.0.0.1");
    assert_int_equal(c.servers[0].port, 8080);
    assert_string_equal(c.servers[0].path, "/agent");
    assert_false(c.servers[0].tls);
    assert_true(c.servers[1].tls);
    assert_string_equal(c.servers[1].host, "::1");
    assert_int_equal(c.servers[1].port, 443);
    assert_string_equal(c.servers[1].path, "/x");
    assert_string_equal(c.servers[2].host, "b.example");
    assert_int_equal(c.servers[2].port, 80);
    /* the first one's parts as before */
    assert_string_equal(c.host, "10.0.0.1");
    assert_false(c.tls);
    assert_true(c.tls_any);
    agent_conf_free(&c);

    assert_int_equal(
        finish_with_server(&c, "ws://a:1,http://b:2", why, sizeof(why)),
        ERR_CONFIG);
    assert_string_equal(
        why, "server must be a ws:// or wss:// URL, got 'http://b:2'");
    agent_conf_free(&c);
    assert_int_equal(finish_with_server(&c, " , ", why, sizeof(why)),
                     ERR_CONFIG);
    assert_string_equal(why, "no server (--server ws://HOST:PORT)");
    agent_conf_free(&c);
    assert_int_equal(finish_with_server(&c,
                                        "ws://a ws://a ws://a ws://a ws://a "
                                        "ws://a ws://a ws://a ws://a",
                                        why, sizeof(why)),
                     ERR_CONFIG);
    assert_string_equal(why, "server: at most 8 URLs");
    agent_conf_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_file_sets_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allow_refusal_names_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_not_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_finish_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
