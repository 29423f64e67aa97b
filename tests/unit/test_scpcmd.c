/*
 * The strict reader of legacy scp exec commands (src/sshproxy/scpcmd.c):
 * the forms OpenSSH's scp sends are accepted and rebuilt canonically;
 * anything a shell would read as more than "scp, flags, one path" is
 * refused. For every accepted form, a real sh and bash are asked how they
 * split both the client's string and the canonical one: all three must
 * agree on the path.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "sshproxy/scpcmd.h"

struct accept_case {
    const char *cmd;
    int mode;
    unsigned flags;
    const char *path;      /* after quote removal */
    const char *canonical; /* what goes to the target */
};

static const struct accept_case accepted[] = {
    /* exactly what OpenSSH 9.2's scp -O sends */
    {"scp -t /tmp/y", SCPCMD_TO, 0, "/tmp/y", "scp -t /tmp/y"},
    {"scp -t .", SCPCMD_TO, 0, ".", "scp -t ."},
    {"scp -r -p -t dir", SCPCMD_TO, SCPCMD_RECURSIVE | SCPCMD_PRESERVE, "dir",
     "scp -r -p -t dir"},
    {"scp -d -t /t", SCPCMD_TO, SCPCMD_DIR, "/t", "scp -d -t /t"},
    {"scp -t -- -dash", SCPCMD_TO, 0, "-dash", "scp -t -- -dash"},
    {"scp -f /x/a.txt", SCPCMD_FROM, 0, "/x/a.txt", "scp -f /x/a.txt"},
    {"scp -r -p -f /d", SCPCMD_FROM, SCPCMD_RECURSIVE | SCPCMD_PRESERVE, "/d",
     "scp -r -p -f /d"},
    {"scp -v -t x", SCPCMD_TO, SCPCMD_VERBOSE, "x", "scp -v -t x"},
    {"scp -q -f x", SCPCMD_FROM, SCPCMD_QUIET, "x", "scp -q -f x"},
    /* clustered flags, extra blanks: rebuilt in scp's own spelling */
    {"scp -rpt dir", SCPCMD_TO, SCPCMD_RECURSIVE | SCPCMD_PRESERVE, "dir",
     "scp -r -p -t dir"},
    {"scp  -f   /d", SCPCMD_FROM, 0, "/d", "scp -f /d"},
    /* the path quoted the ways users quote a remote path for scp */
    {"scp -f '/x/a b'", SCPCMD_FROM, 0, "/x/a b", "scp -f '/x/a b'"},
    {"scp -f /x/a\\ b", SCPCMD_FROM, 0, "/x/a b", "scp -f '/x/a b'"},
    {"scp -f \"/x/a b\"", SCPCMD_FROM, 0, "/x/a b", "scp -f '/x/a b'"},
    {"scp -f \"/x/it's\"", SCPCMD_FROM, 0, "/x/it's", "scp -f '/x/it'\\''s'"},
    {"scp -f \"/x/\\$HOME\"", SCPCMD_FROM, 0, "/x/$HOME", "scp -f '/x/$HOME'"},
    {"scp -f '/x/$(id);`id`|&<>'", SCPCMD_FROM, 0, "/x/$(id);`id`|&<>",
     "scp -f '/x/$(id);`id`|&<>'"},
    {"scp -t -- '-S'", SCPCMD_TO, 0, "-S", "scp -t -- -S"},
    {"scp -f -- -*", SCPCMD_FROM, 0, "-*", "scp -f -- -*"},
    {"scp -t /tmp/caf\xc3\xa9", SCPCMD_TO, 0, "/tmp/caf\xc3\xa9",
     "scp -t /tmp/caf\xc3\xa9"},
    /* globs: only for downloads, and only when typed unquoted */
    {"scp -f /x/*.txt", SCPCMD_FROM, 0, "/x/*.txt", "scp -f /x/*.txt"},
    {"scp -f '/x/*.txt'", SCPCMD_FROM, 0, "/x/*.txt", "scp -f '/x/*.txt'"},
    {"scp -f /x/f?[0-9]", SCPCMD_FROM, 0, "/x/f?[0-9]", "scp -f /x/f?[0-9]"},
    {"scp -f 'a b'*", SCPCMD_FROM, 0, "a b*", "scp -f 'a b'*"},
    {"scp -f *", SCPCMD_FROM, 0, "*", "scp -f -- *"},
    /* the user's home */
    {"scp -t ~/in", SCPCMD_TO, 0, "~/in", "scp -t ~/in"},
    {"scp -t ~", SCPCMD_TO, 0, "~", "scp -t ~"},
    {"scp -t '~'/in", SCPCMD_TO, 0, "~/in", "scp -t '~/in'"},
    /* found by fuzz_scpcmd: the / after ~ must stay unquoted */
    {"scp -t ~/i\\*n", SCPCMD_TO, 0, "~/i*n", "scp -t ~/'i*n'"},
    {"scp -t ~/'a b'", SCPCMD_TO, 0, "~/a b", "scp -t ~/'a b'"},
};

/* Not scp: the first six are shell tricks that ran a command under an
 * scp-only profile before this parser existed. */
static const char *const refused[] = {
    "scp -f /x; bash -i",
    "scp -t /x && id",
    "scp -t $(id)",
    "scp -t `id`",
    "scp -t /x\nid",
    "scp -f /x|id",
    "scp -t /x > /etc/passwd",
    "scp -t /x < /etc/passwd",
    "scp -t /x &",
    "scp -t (x)",
    "scp -t \"$HOME\"",
    "scp -t \"`id`\"",
    "scp -t \"${IFS}\"",
    "scp -t /a /b",
    "scp -f -- /a -r",
    "scp -S prog -t /x",
    "scp -o ProxyCommand=x -t /x",
    "scp -t /x -o x",
    "scp -T -t /x",
    "scp -3 -t /x",
    "scp -t -f /x",
    "scp -t",
    "scp /x",
    "scp -t ''",
    "scp -t -",
    "scp -t -- -- x",
    "scp",
    "",
    " scp -t /x",
    "scp -t /x ",
    "scp\t-t /x",
    "scpx -t /x",
    "/usr/bin/scp -t /x",
    "sftp -t /x",
    "scp -t /tmp/*",
    "scp -t /tmp/x?",
    "scp -f {a,b}",
    "scp -t ~root/x",
    "scp -t a~",
    "scp -t #x",
    "scp -t !x",
    "scp -t /x\\",
    "scp -t '/x",
    "scp -t \"/x",
    "scp -t '/x\ny'",
    "scp -t /x\r",
    "scp -t /x\\\nid",
    "scp -t -[t]",
    "scp -f -*",
    "scp -t '-S'", /* the shell hands scp the option -S */
    "'scp' -t /x",
    "\"\"scp -t /x", /* found by fuzz_scpcmd */
    "scp\\ -t /x",
    "scp -t \"-o\"x",
};

static void check_accepted(const struct accept_case *c)
{
    struct scpcmd p;
    char out[SCPCMD_FORMAT_MAX];
    size_t n;

    if (scpcmd_parse(c->cmd, strlen(c->cmd), &p) != ERR_OK) {
        fail_msg("refused: %s", c->cmd);
    }
    assert_int_equal(p.mode, c->mode);
    assert_int_equal(p.flags, c->flags);
    assert_string_equal(p.path, c->path);
    assert_int_equal(p.path_len, strlen(c->path));
    n = scpcmd_format(&p, out, sizeof(out));
    assert_true(n > 0);
    assert_int_equal(n, strlen(out));
    if (c->canonical != NULL) {
        assert_string_equal(out, c->canonical);
    }
}

static void test_accepted(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        check_accepted(&accepted[i]);
    }
}

static void test_refused(void **state)
{
    struct scpcmd p;

    (void)state;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        memset(&p, 0xa5, sizeof(p));
        if (scpcmd_parse(refused[i], strlen(refused[i]), &p) == ERR_OK) {
            fail_msg("accepted: %s", refused[i]);
        }
        /* A refusal leaves nothing behind that a caller could use. */
        assert_int_equal(p.mode, 0);
        assert_int_equal(p.path_len, 0);
        assert_int_equal(p.path[0], '\0');
    }
    assert_int_equal(scpcmd_parse(NULL, 0, &p), ERR_INVALID);
}

static void test_embedded_nul_refused(void **state)
{
    static const char cmd[] = "scp -t /x\0; id";
    static const char dq[] = "scp -t \"/x\\\0\"";
    struct scpcmd p;

    (void)state;
    assert_int_equal(scpcmd_parse(cmd, sizeof(cmd) - 1, &p), ERR_INVALID);
    assert_int_equal(scpcmd_parse(dq, sizeof(dq) - 1, &p), ERR_INVALID);
}

/* A path that starts with '-' (here: after a quoted "--") is written
 * after "--" in the canonical form, so the target's scp cannot read it as
 * an option. */
static void test_dash_path_gets_double_dash(void **state)
{
    struct scpcmd p;
    char out[SCPCMD_FORMAT_MAX];

    (void)state;
    assert_int_equal(scpcmd_parse("scp -t '--' -o", 14, &p), ERR_OK);
    assert_string_equal(p.path, "-o");
    assert_true(scpcmd_format(&p, out, sizeof(out)) > 0);
    assert_string_equal(out, "scp -t -- -o");
}

static void test_limits(void **state)
{
    size_t big = SCPCMD_CMD_MAX + 1;
    char *cmd = malloc(big + 1);
    struct scpcmd p;
    char small[16];

    (void)state;
    assert_non_null(cmd);
    /* a path of exactly the maximum is fine; one byte more is not */
    memcpy(cmd, "scp -t /", 8);
    memset(cmd + 8, 'a', SCPCMD_PATH_MAX - 1);
    assert_int_equal(scpcmd_parse(cmd, 8 + SCPCMD_PATH_MAX - 1, &p), ERR_OK);
    assert_int_equal(p.path_len, SCPCMD_PATH_MAX);
    cmd[8 + SCPCMD_PATH_MAX - 1] = 'a';
    assert_int_equal(scpcmd_parse(cmd, 8 + SCPCMD_PATH_MAX, &p), ERR_TOO_LONG);
    assert_int_equal(p.path_len, 0);
    /* a command longer than any exec we read */
    memset(cmd + 8, 'a', big - 8);
    assert_int_equal(scpcmd_parse(cmd, big, &p), ERR_TOO_LONG);
    free(cmd);
    /* the worst case fits SCPCMD_FORMAT_MAX; a short buffer gives 0 */
    {
        struct scpcmd *q = calloc(1, sizeof(*q));
        char *out = malloc(SCPCMD_FORMAT_MAX);

        assert_non_null(q);
        assert_non_null(out);
        q->mode = SCPCMD_FROM;
        q->flags = 0x1f;
        q->path_len = SCPCMD_PATH_MAX;
        memset(q->path, '\'', SCPCMD_PATH_MAX);
        assert_true(scpcmd_format(q, out, SCPCMD_FORMAT_MAX) > 0);
        assert_int_equal(scpcmd_format(q, small, sizeof(small)), 0);
        assert_string_equal(small, "");
        free(q);
        free(out);
    }
}

/* --- what a real shell makes of it --- */

static char empty_dir[] = "/tmp/pc-scpcmd-XXXXXX";

/* The last argument `shell` passes to scp when it runs cmd, with scp
 * replaced by a function that prints its arguments, in an empty
 * directory (globs match nothing and stay as typed) and HOME=/h. */
static char *shell_last_arg(const char *shell, const char *cmd)
{
    char script[] = "/tmp/pc-scpcmd-sh-XXXXXX", line[8192], run[512];
    char *last = NULL;
    FILE *f;
    int fd = mkstemp(script);

    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fprintf(f,
            "scp() { for a in \"$@\"; do printf '%%s\\n' \"$a\"; done; }\n"
            "%s\n",
            cmd);
    fclose(f);
    snprintf(run, sizeof(run), "cd %s && HOME=/h %s %s", empty_dir, shell,
             script);
    f = popen(run, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        free(last);
        last = strdup(line);
    }
    assert_int_equal(pclose(f), 0);
    unlink(script);
    assert_non_null(last);
    return last;
}

static void test_shells_agree(void **state)
{
    static const char *const shells[] = {"/bin/sh", "/bin/bash"};

    (void)state;
    assert_non_null(mkdtemp(empty_dir));
    for (size_t s = 0; s < 2; s++) {
        if (access(shells[s], X_OK) != 0) {
            continue;
        }
        for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
            const struct accept_case *c = &accepted[i];
            char want[SCPCMD_PATH_MAX + 16], out[SCPCMD_FORMAT_MAX];
            struct scpcmd p;
            char *got;

            assert_int_equal(scpcmd_parse(c->cmd, strlen(c->cmd), &p), ERR_OK);
            assert_true(scpcmd_format(&p, out, sizeof(out)) > 0);
            if (p.live[0] && p.path[0] == '~') {
                snprintf(want, sizeof(want), "/h%.*s", SCPCMD_PATH_MAX,
                         p.path + 1);
            } else {
                snprintf(want, sizeof(want), "%.*s", SCPCMD_PATH_MAX, p.path);
            }
            got = shell_last_arg(shells[s], c->cmd);
            if (strcmp(got, want) != 0) {
                fail_msg("%s reads %s as path %s, we read %s", shells[s],
                         c->cmd, got, want);
            }
            free(got);
            got = shell_last_arg(shells[s], out);
            if (strcmp(got, want) != 0) {
                fail_msg("%s reads canonical %s as path %s, not %s", shells[s],
                         out, got, want);
            }
            free(got);
        }
    }
    rmdir(empty_dir);
}

/* Parsing the canonical form gives the same command back (the fuzzer
 * checks this for every input it finds). */
static void test_canonical_is_stable(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        struct scpcmd a, b;
        char out[SCPCMD_FORMAT_MAX], again[SCPCMD_FORMAT_MAX];

        assert_int_equal(
            scpcmd_parse(accepted[i].cmd, strlen(accepted[i].cmd), &a), ERR_OK);
        assert_true(scpcmd_format(&a, out, sizeof(out)) > 0);
        assert_int_equal(scpcmd_parse(out, strlen(out), &b), ERR_OK);
        assert_int_equal(a.mode, b.mode);
        assert_int_equal(a.flags, b.flags);
        assert_int_equal(a.path_len, b.path_len);
        assert_memory_equal(a.path, b.path, a.path_len);
        assert_memory_equal(a.live, b.live, a.path_len);
        assert_true(scpcmd_format(&b, again, sizeof(again)) > 0);
        assert_string_equal(out, again);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_embedded_nul_refused),
        cmocka_unit_test(test_dash_path_gets_double_dash),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_shells_agree),
        cmocka_unit_test(test_canonical_is_stable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
