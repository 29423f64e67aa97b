/*
 * Unit tests for agent/job.c: the rules the agent checks before it runs a
 * command the server asked for (commands_enabled, allow_root,
 * command_timeout_max, command_deny, command_allow as a whole match, the
 * shell-metacharacter default), each refusal naming its rule; the parser
 * of the server's request; and the runner itself (output, exit code,
 * timeout, truncation) over a socketpair.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/agent_conf.h"
#include "agent/job.h"
#include "common/err.h"

static struct job_request req(const char *cmd, int timeout)
{
    struct job_request q;

    memset(&q, 0, sizeof(q));
    snprintf(q.command, sizeof(q.command), "%s", cmd);
    q.timeout = timeout;
    return q;
}

static bool check(const struct job_rules *r, const char *cmd, uid_t uid,
                  char *why, size_t whylen)
{
    struct job_request q = req(cmd, 10);

    why[0] = '\0';
    return job_check(r, &q, uid, why, whylen);
}

static void test_off_by_default(void **state)
{
    struct job_rules r;
    char why[256];

    (void)state;
    job_rules_init(&r);
    assert_false(check(&r, "id", 1000, why, sizeof(why)));
    assert_string_equal(why, "commands_enabled is off on this agent");
    job_rules_free(&r);
}

static void test_root_needs_allow_root(void **state)
{
    struct job_rules r;
    char why[256];

    (void)state;
    job_rules_init(&r);
    r.enabled = true;
    assert_false(check(&r, "id", 0, why, sizeof(why)));
    assert_non_null(strstr(why, "allow_root is off"));
    assert_true(check(&r, "id", 1000, why, sizeof(why)));
    r.allow_root = true;
    assert_true(check(&r, "id", 0, why, sizeof(why)));
    job_rules_free(&r);
}

static void test_metacharacters_refused_by_default(void **state)
{
    static const char *const bad[] = {
        "a;b", "a&b", "a|b", "a$b", "a<b", "a>b", "a`b`", "a\nb", NULL,
    };
    struct job_rules r;
    char why[256];

    (void)state;
    job_rules_init(&r);
    r.enabled = true;
    for (size_t i = 0; bad[i] != NULL; i++) {
        assert_false(check(&r, bad[i], 1000, why, sizeof(why)));
        assert_non_null(strstr(why, "metacharacters"));
    }
    assert_true(
        check(&r, "ls -l /tmp 'a b' \"c\" *.txt", 1000, why, sizeof(why)));
    job_rules_free(&r);
}

static void test_deny_then_allow(void **state)
{
    struct job_rules r;
    char why[256];

    (void)state;
    job_rules_init(&r);
    r.enabled = true;
    assert_int_equal(
        job_rules_add(&r, true, "^rm[[:space:]]", why, sizeof(why)), ERR_OK);
    assert_false(check(&r, "rm -rf /", 1000, why, sizeof(why)));
    assert_string_equal(why, "command_deny '^rm[[:space:]]' matches");
    /* an allow rule (a whole match) admits metacharacters ... */
    assert_int_equal(
        job_rules_add(&r, false, "echo [a-z]+ [|] wc -c", why, sizeof(why)),
        ERR_OK);
    assert_true(check(&r, "echo abc | wc -c", 1000, why, sizeof(why)));
    /* ... only for the whole command */
    assert_false(check(&r, "echo abc | wc -c; id", 1000, why, sizeof(why)));
    assert_string_equal(why, "no command_allow rule matches the command");
    /* with allow rules, everything else is refused */
    assert_false(check(&r, "id", 1000, why, sizeof(why)));
    /* deny wins over allow */
    assert_int_equal(job_rules_add(&r, true, "wc", why, sizeof(why)), ERR_OK);
    assert_false(check(&r, "echo abc | wc -c", 1000, why, sizeof(why)));
    assert_string_equal(why, "command_deny 'wc' matches");
    job_rules_free(&r);
}

/* Stacked and nested repetitions multiply the tree glibc's regcomp makes:
 * 60 "+" in a row exhausted memory (fuzz_agent_conf); they are refused
 * with a reason, while ordinary patterns stay accepted. Stacked operators
 * ("a??+") blew up its epsilon closures instead. */
static void test_costly_patterns_refused(void **state)
{
    static const char *const costly[] = {
        "((((((((((a+)+)+)+)+)+)+)+)+)+)+",
        "(a{40}){40}",
    };
    static const char *const stacked[] = {
        "o++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++",
        "a{99}{99}",
        "x??????????????????????????+++++++++)++++++++++",
        "(++++++++++++((((((++++", /* fuzz_agent_conf timeouts */
        "a*+",
        "a{2}?",
    };
    static const char *const fine[] = {
        "^rm[[:space:]]", "echo [a-z]+ [|] wc -c",
        "a{3,9}b+c*",     "[+{]+",
        "\\++x",          "(ab+)+",
    };
    struct job_rules r;
    char why[256];

    (void)state;
    job_rules_init(&r);
    for (size_t i = 0; i < sizeof(costly) / sizeof(costly[0]); i++) {
        assert_int_equal(job_rules_add(&r, false, costly[i], why, sizeof(why)),
                         ERR_CONFIG);
        assert_non_null(strstr(why, "nested too deep"));
    }
    for (size_t i = 0; i < sizeof(stacked) / sizeof(stacked[0]); i++) {
        assert_int_equal(job_rules_add(&r, false, stacked[i], why, sizeof(why)),
                         ERR_CONFIG);
        assert_non_null(strstr(why, "two repetition operators in a row"));
    }
    /* 64 operators are fine, the 65th is refused */
    {
        char p[JOB_PATTERN_MAX + 1] = "";

        for (int i = 0; i < 64; i++) {
            strcat(p, "(.*)");
        }
        assert_int_equal(job_rules_add(&r, false, p, why, sizeof(why)), ERR_OK);
        strcat(p, "a?");
        assert_int_equal(job_rules_add(&r, false, p, why, sizeof(why)),
                         ERR_CONFIG);
        assert_non_null(strstr(why, "more than 64 repetition operators"));
    }
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        assert_int_equal(job_rules_add(&r, false, fine[i], why, sizeof(why)),
                         ERR_OK);
    }
    job_rules_free(&r);
}

static void test_timeout_max(void **state)
{
    struct job_rules r;
    struct job_request q = req("id", 301);
    char why[256];

    (void)state;
    job_rules_init(&r);
    r.enabled = true;
    assert_false(job_check(&r, &q, 1000, why, sizeof(why)));
    assert_string_equal(why, "timeout 301 s exceeds command_timeout_max 300 s");
    q.timeout = 300;
    assert_true(job_check(&r, &q, 1000, why, sizeof(why)));
    job_rules_free(&r);
}

static void test_bad_patterns(void **state)
{
    struct job_rules r;
    char why[256];

    (void)state;
    job_rules_init(&r);
    assert_int_equal(job_rules_add(&r, false, "(", why, sizeof(why)),
                     ERR_CONFIG);
    assert_non_null(strstr(why, "command_allow: bad regular expression"));
    assert_int_equal(job_rules_add(&r, true, "", why, sizeof(why)), ERR_CONFIG);
    for (int i = 0; i < JOB_RULES_MAX; i++) {
        assert_int_equal(job_rules_add(&r, true, "x", why, sizeof(why)),
                         ERR_OK);
    }
    assert_int_equal(job_rules_add(&r, true, "x", why, sizeof(why)),
                     ERR_CONFIG);
    job_rules_free(&r);
}

static void test_config_keys(void **state)
{
    struct agent_conf c;
    char why[256];
    static const char text[] = "commands_enabled = true\n"
                               "allow_root = true\n"
                               "command_timeout_max = 20\n"
                               "command_allow = ^ls( -l)?$\n"
                               "command_deny = secret\n";

    (void)state;
    agent_conf_init(&c);
    assert_int_equal(agent_conf_parse_text(&c, text, strlen(text), "t.conf",
                                           why, sizeof(why)),
                     ERR_OK);
    assert_true(c.jobs.enabled);
    assert_true(c.jobs.allow_root);
    assert_int_equal(c.jobs.timeout_max, 20);
    assert_int_equal(c.jobs.nallow, 1);
    assert_int_equal(c.jobs.ndeny, 1);
    agent_conf_free(&c);
    agent_conf_init(&c);
    assert_int_not_equal(agent_conf_parse_text(&c, "command_deny = [\n", 16,
                                               "t.conf", why, sizeof(why)),
                         ERR_OK);
    assert_non_null(strstr(why, "t.conf:1"));
    agent_conf_free(&c);
}

static void test_request_parse(void **state)
{
    struct job_request q;
    char why[128];
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"command\":\"\"}",
        "{\"command\":1}",
        "{\"command\":\"a\",\"command\":\"b\"}",
        "{\"command\":\"a\",\"cwd\":\"rel\"}",
        "{\"command\":\"a\",\"timeout\":0}",
        "{\"command\":\"a\",\"timeout\":86401}",
        "{\"command\":\"a\",\"timeout\":\"5\"}",
        "{\"command\":\"a\\u0000b\"}",
        NULL,
    };

    static const char good[] =
        "{\"command\":\"ls\",\"cwd\":\"/tmp\",\"timeout\":5}";

    (void)state;
    assert_int_equal(
        job_request_parse(good, strlen(good), &q, why, sizeof(why)), ERR_OK);
    assert_string_equal(q.command, "ls");
    assert_string_equal(q.cwd, "/tmp");
    assert_int_equal(q.timeout, 5);
    for (size_t i = 0; bad[i] != NULL; i++) {
        assert_int_equal(
            job_request_parse(bad[i], strlen(bad[i]), &q, why, sizeof(why)),
            ERR_INVALID);
    }
}

/* The runner over a socketpair: its frames (docs/agent-protocol.md §6)
 * laid out as the header line, then stdout, then stderr. */
static char *run_job(const struct job_rules *r, const char *request,
                     size_t *len)
{
    int sv[2];
    size_t cap = 1 << 20, n = 0, hl = 0, ol = 0, el = 0;
    char *buf = malloc(cap), *res, *hdr = NULL, *o = NULL, *e = NULL;
    ssize_t k;

    assert_non_null(buf);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(job_runner_spawn(r, sv[1]), ERR_OK);
    close(sv[1]);
    assert_int_equal(write(sv[0], request, strlen(request)),
                     (ssize_t)strlen(request));
    shutdown(sv[0], SHUT_WR);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        k = read(sv[0], buf + n, cap - n);
        if (k <= 0) {
            break;
        }
        n += (size_t)k;
    }
    close(sv[0]);
    o = malloc(n + 1);
    e = malloc(n + 1);
    assert_non_null(o);
    assert_non_null(e);
    for (size_t at = 0; at < n;) {
        const unsigned char *h = (const unsigned char *)buf + at;
        size_t fl;
        assert_true(at + 5 <= n);
        fl = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
        assert_true(at + 5 + fl <= n);
        if (h[0] == 'O') {
            memcpy(o + ol, h + 5, fl);
            ol += fl;
        } else if (h[0] == 'E') {
            memcpy(e + el, h + 5, fl);
            el += fl;
        } else {
            assert_int_equal(h[0], 'R');
            assert_null(hdr);
            hdr = buf + at + 5;
            hl = fl;
            assert_int_equal(at + 5 + fl, n); /* the last frame */
        }
        at += 5 + fl;
    }
    assert_non_null(hdr);
    res = malloc(hl + 1 + ol + el + 1);
    assert_non_null(res);
    memcpy(res, hdr, hl);
    res[hl] = '\n';
    memcpy(res + hl + 1, o, ol);
    memcpy(res + hl + 1 + ol, e, el);
    res[hl + 1 + ol + el] = '\0';
    *len = hl + 1 + ol + el;
    free(buf);
    free(o);
    free(e);
    return res;
}

static void test_runner(void **state)
{
    struct job_rules r;
    size_t len;
    char *out;
    const char *marker = JOB_TRUNC_MARKER;

    (void)state;
    job_rules_init(&r);
    r.enabled = true;
    r.allow_root = true;
    out = run_job(&r, "{\"command\":\"printf hi\",\"timeout\":5}", &len);
    assert_true(len > 3);
    assert_non_null(strstr(out, "\"status\":\"ok\""));
    assert_non_null(strstr(out, "\"exit_code\":0"));
    assert_memory_equal(out + len - 2, "hi", 2);
    free(out);

    out = run_job(&r, "{\"command\":\"sleep 30\",\"timeout\":1}", &len);
    assert_non_null(strstr(out, "\"status\":\"timeout\""));
    assert_non_null(strstr(out, "\"signal\":15"));
    free(out);

    out = run_job(&r, "{\"command\":\"seq 1 1000000\",\"timeout\":20}", &len);
    assert_non_null(strstr(out, "\"stdout_len\":4194353"));
    assert_memory_equal(out + len - strlen(marker), marker, strlen(marker));
    free(out);

    r.enabled = false;
    out = run_job(&r, "{\"command\":\"id\"}", &len);
    assert_non_null(strstr(out, "\"status\":\"refused\""));
    assert_non_null(strstr(out, "commands_enabled is off"));
    free(out);
    job_rules_free(&r);
}

static void test_scripts(void **state)
{
    static struct job_request q;
    struct agent_conf c;
    struct job_rules r;
    char why[256];
    size_t len;
    char *out;
    static const char *const bad[] = {
        "{\"script\":\"echo\"}",
        "{\"interpreter\":\"sh\"}",
        "{\"interpreter\":\"sh\",\"script\":\"\"}",
        "{\"interpreter\":\"s h\",\"script\":\"echo\"}",
        "{\"interpreter\":\"../sh\",\"script\":\"echo\"}",
        "{\"interpreter\":\"sh\",\"script\":\"echo\",\"command\":\"id\"}",
        "{\"interpreter\":\"sh\",\"script\":\"a\\u0000b\"}",
        NULL,
    };
    static const char good[] =
        "{\"interpreter\":\"bash\",\"script\":\"echo a\\nrm -f x\\n\"}";

    (void)state;
    for (size_t i = 0; bad[i] != NULL; i++) {
        assert_int_equal(
            job_request_parse(bad[i], strlen(bad[i]), &q, why, sizeof(why)),
            ERR_INVALID);
    }
    assert_int_equal(
        job_request_parse(good, strlen(good), &q, why, sizeof(why)), ERR_OK);
    assert_string_equal(q.interpreter, "bash");
    assert_string_equal(q.script, "echo a\nrm -f x\n");
    assert_string_equal(q.command, "");

    job_rules_init(&r);
    r.enabled = true;
    assert_false(job_check(&r, &q, 1000, why, sizeof(why)));
    assert_string_equal(why, "scripts_enabled is off on this agent");
    r.scripts_enabled = true;
    assert_true(job_check(&r, &q, 1000, why, sizeof(why)));
    assert_int_equal(
        job_rules_add(&r, true, "^rm[[:space:]]", why, sizeof(why)), ERR_OK);
    assert_false(job_check(&r, &q, 1000, why, sizeof(why)));
    assert_string_equal(why, "command_deny '^rm[[:space:]]' matches script "
                             "line 2");
    job_rules_free(&r);

    /* script_interpreter replaces the defaults */
    agent_conf_init(&c);
    assert_string_equal(job_interp_path(&c.jobs, "python3"),
                        "/usr/bin/python3");
    assert_int_equal(
        agent_conf_set(&c, "script_interpreter", "sh", false, why, sizeof(why)),
        ERR_OK);
    assert_int_equal(agent_conf_set(&c, "script_interpreter", "py=/opt/py",
                                    false, why, sizeof(why)),
                     ERR_OK);
    assert_null(job_interp_path(&c.jobs, "python3"));
    assert_string_equal(job_interp_path(&c.jobs, "sh"), "/bin/sh");
    assert_string_equal(job_interp_path(&c.jobs, "py"), "/opt/py");
    assert_int_not_equal(agent_conf_set(&c, "script_interpreter", "perl", false,
                                        why, sizeof(why)),
                         ERR_OK);
    assert_non_null(strstr(why, "no default path"));
    assert_int_not_equal(agent_conf_set(&c, "script_interpreter", "x=rel",
                                        false, why, sizeof(why)),
                         ERR_OK);
    assert_false(c.jobs.scripts_enabled);
    agent_conf_free(&c);

    /* the runner: the script by its descriptor */
    job_rules_init(&r);
    r.scripts_enabled = true;
    r.allow_root = true;
    out = run_job(&r,
                  "{\"interpreter\":\"sh\",\"script\":\"echo $0\\nexit 4\\n\"}",
                  &len);
    assert_non_null(strstr(out, "\"exit_code\":4"));
    assert_memory_equal(out + len - 10, "/dev/fd/3\n", 10);
    free(out);
    job_rules_free(&r);
}

static void test_push(void **state)
{
    static struct job_request q;
    struct job_rules r;
    char why[256], dir[] = "/tmp/pc-push-XXXXXX", req[1024], path[512];
    size_t len;
    char *out;
    /* sha256("hello\n") */
    static const char h[] =
        "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    static const char *const bad[] = {
        "{\"push\":{\"path\":\"/a/../b\",\"mode\":420,\"owner\":\"\","
        "\"group\":\"\",\"overwrite\":false,\"sha256\":\"%s\","
        "\"size\":6}}",
        "{\"push\":{\"path\":\"/a/b\",\"mode\":2048,\"owner\":\"\","
        "\"group\":\"\",\"overwrite\":false,\"sha256\":\"%s\","
        "\"size\":6}}",
        "{\"push\":{\"path\":\"/a/b\",\"mode\":420,\"owner\":\"-x\","
        "\"group\":\"\",\"overwrite\":false,\"sha256\":\"%s\","
        "\"size\":6}}",
        "{\"push\":{\"path\":\"/a/b\",\"mode\":420,\"owner\":\"\","
        "\"group\":\"\",\"overwrite\":false,\"sha256\":\"%s\"}}",
        "{\"push\":{\"path\":\"/a/b\",\"mode\":420,\"owner\":\"\","
        "\"group\":\"\",\"overwrite\":false,\"sha256\":\"%s\","
        "\"size\":6,\"x\":1}}",
        "{\"command\":\"id\",\"push\":{\"path\":\"/a/b\",\"mode\":420,"
        "\"owner\":\"\",\"group\":\"\",\"overwrite\":false,"
        "\"sha256\":\"%s\",\"size\":6}}",
        NULL,
    };

    (void)state;
    for (size_t i = 0; bad[i] != NULL; i++) {
        /* each names the hash once, as %s */
        const char *at = strstr(bad[i], "%s");
        assert_non_null(at);
        snprintf(req, sizeof(req), "%.*s%s%s", (int)(at - bad[i]), bad[i], h,
                 at + 2);
        assert_int_equal(
            job_request_parse(req, strlen(req), &q, why, sizeof(why)),
            ERR_INVALID);
    }

    assert_non_null(mkdtemp(dir));
    job_rules_init(&r);
    r.allow_root = true;
    assert_int_equal(job_push_dir_add(&r, dir, why, sizeof(why)), ERR_OK);
    /* the bytes arrive, but not as announced: nothing is left */
    snprintf(path, sizeof(path), "%s/f", dir);
    snprintf(req, sizeof(req),
             "{\"push\":{\"path\":\"%s\",\"mode\":420,\"owner\":\"\","
             "\"group\":\"\",\"overwrite\":false,\"sha256\":\"%s\","
             "\"size\":6},\"timeout\":5}\nhellO\n",
             path, h);
    out = run_job(&r, req, &len);
    assert_non_null(strstr(out, "\"status\":\"failed\""));
    assert_non_null(strstr(out, "SHA-256 mismatch"));
    free(out);
    assert_int_equal(access(path, F_OK), -1);
    /* fewer bytes than announced */
    snprintf(req, sizeof(req),
             "{\"push\":{\"path\":\"%s\",\"mode\":420,\"owner\":\"\","
             "\"group\":\"\",\"overwrite\":false,\"sha256\":\"%s\","
             "\"size\":6},\"timeout\":5}\nhel",
             path, h);
    out = run_job(&r, req, &len);
    assert_non_null(strstr(out, "the file ended after 3 of 6 bytes"));
    free(out);
    /* as announced */
    snprintf(req, sizeof(req),
             "{\"push\":{\"path\":\"%s\",\"mode\":384,\"owner\":\"\","
             "\"group\":\"\",\"overwrite\":false,\"sha256\":\"%s\","
             "\"size\":6},\"timeout\":5}\nhello\n",
             path, h);
    out = run_job(&r, req, &len);
    assert_non_null(strstr(out, "\"status\":\"ok\""));
    free(out);
    {
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 07777, 0600);
        assert_int_equal(sb.st_size, 6);
    }
    unlink(path);
    rmdir(dir);
    job_rules_free(&r);
}

/* sudo: off without sudo_user; only listed accounts; root only with
 * allow_root; the request key parsed strictly and refused on a push or a
 * fetch. */
static void test_sudo_rules(void **state)
{
    static struct job_rules r;
    static struct job_request q;
    char why[256];

    (void)state;
    job_rules_init(&r);
    r.enabled = true;
    q = req("id -un", 10);
    snprintf(q.sudo, sizeof(q.sudo), "deploy");
    assert_false(job_check(&r, &q, 1000, why, sizeof(why)));
    assert_string_equal(why, "sudo is off on this agent (no sudo_user)");
    assert_int_equal(job_sudo_user_add(&r, "deploy", why, sizeof(why)), ERR_OK);
    assert_int_equal(job_sudo_user_add(&r, "root", why, sizeof(why)), ERR_OK);
    assert_int_equal(job_sudo_user_add(&r, "-x", why, sizeof(why)), ERR_CONFIG);
    assert_int_equal(job_sudo_user_add(&r, "a b", why, sizeof(why)),
                     ERR_CONFIG);
    assert_true(job_check(&r, &q, 1000, why, sizeof(why)));
    snprintf(q.sudo, sizeof(q.sudo), "other");
    assert_false(job_check(&r, &q, 1000, why, sizeof(why)));
    assert_string_equal(why, "sudo to 'other' is not allowed (sudo_user)");
    snprintf(q.sudo, sizeof(q.sudo), "root");
    assert_false(job_check(&r, &q, 1000, why, sizeof(why)));
    assert_string_equal(why, "sudo to root needs allow_root");
    r.allow_root = true;
    assert_true(job_check(&r, &q, 1000, why, sizeof(why)));
    job_rules_free(&r);
    {
        const char *good = "{\"id\":\"j1\",\"command\":\"id\","
                           "\"sudo\":\"deploy\",\"timeout\":5}";
        const char *bad[] = {
            "{\"command\":\"id\",\"sudo\":\"\"}",
            "{\"command\":\"id\",\"sudo\":\"-u\"}",
            "{\"command\":\"id\",\"sudo\":\"a;b\"}",
            "{\"command\":\"id\",\"sudo\":7}",
            "{\"fetch\":\"j1\",\"sudo\":\"deploy\"}",
        };
        assert_int_equal(
            job_request_parse(good, strlen(good), &q, why, sizeof(why)),
            ERR_OK);
        assert_string_equal(q.sudo, "deploy");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            assert_int_equal(
                job_request_parse(bad[i], strlen(bad[i]), &q, why, sizeof(why)),
                ERR_INVALID);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_by_default),
        cmocka_unit_test(test_sudo_rules),
        cmocka_unit_test(test_root_needs_allow_root),
        cmocka_unit_test(test_metacharacters_refused_by_default),
        cmocka_unit_test(test_deny_then_allow),
        cmocka_unit_test(test_costly_patterns_refused),
        cmocka_unit_test(test_timeout_max),
        cmocka_unit_test(test_bad_patterns),
        cmocka_unit_test(test_config_keys),
        cmocka_unit_test(test_request_parse),
        cmocka_unit_test(test_runner),
        cmocka_unit_test(test_scripts),
        cmocka_unit_test(test_push),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
