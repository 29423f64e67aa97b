/*
 * Unit tests for src/auth/directory*.c: the RFC 4515 and RFC 4514
 * escapers (every special character, NUL, the leading and trailing
 * cases, a buffer too small), the template substitution, the
 * [directory "DOMAIN"] sections as config.c keeps them and
 * directory_conf_parse() checks them (defaults, mapping, every kind of
 * mistake with its line), and that an empty password never reaches the
 * network (no connect step is tried).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/directory.h"
#include "common/config.h"
#include "common/err.h"

static void test_filter_escape(void **state)
{
    char out[128];

    (void)state;
    assert_int_equal(directory_escape_filter("alice", 5, out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "alice");
    assert_int_equal(directory_escape_filter("*)(uid=*", 8, out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "\\2a\\29\\28uid=\\2a");
    assert_int_equal(directory_escape_filter("a\\b", 3, out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "a\\5cb");
    assert_int_equal(directory_escape_filter("a\0b", 3, out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "a\\00b");
    /* UTF-8 passes as it is (RFC 4515 allows it unescaped) */
    assert_int_equal(
        directory_escape_filter("J\xc3\xb6rg", 5, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "J\xc3\xb6rg");
    /* too small: refused, never truncated into something else */
    assert_int_equal(directory_escape_filter("***", 3, out, 9), ERR_TOO_LONG);
    assert_int_equal(directory_escape_filter("***", 3, out, 10), ERR_OK);
    assert_string_equal(out, "\\2a\\2a\\2a");
    assert_int_equal(directory_escape_filter("a", 1, out, 0), ERR_TOO_LONG);
}

static void test_dn_escape(void **state)
{
    char out[128];

    (void)state;
    assert_int_equal(directory_escape_dn("alice", 5, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "alice");
    assert_int_equal(
        directory_escape_dn("a,b+c\"d\\e<f>g;h=i", 17, out, sizeof(out)),
        ERR_OK);
    assert_string_equal(out, "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h\\=i");
    assert_int_equal(directory_escape_dn("#x", 2, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "\\#x");
    assert_int_equal(directory_escape_dn(" x ", 3, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "\\ x\\ ");
    assert_int_equal(directory_escape_dn("x#y z", 5, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "x#y z");
    assert_int_equal(directory_escape_dn("a\0\n", 3, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "a\\00\\0a");
    /* the filter characters mean nothing in a DN */
    assert_int_equal(directory_escape_dn("*()", 3, out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "*()");
    assert_int_equal(directory_escape_dn(",,", 2, out, 4), ERR_TOO_LONG);
    assert_int_equal(directory_escape_dn(",,", 2, out, 5), ERR_OK);
}

static void test_template(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(
        directory_template("(uid={user})", "user", "bob", out, sizeof(out)),
        ERR_OK);
    assert_string_equal(out, "(uid=bob)");
    assert_int_equal(directory_template("(|(a={user})(b={user}))", "user", "x",
                                        out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "(|(a=x)(b=x))");
    assert_int_equal(
        directory_template("{dn}{user}", "dn", "D", out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "D{user}");
    assert_int_equal(directory_template("(uid={user})", "user",
                                        "0123456789012345678901234567890123"
                                        "4567890123456789012345678901",
                                        out, sizeof(out)),
                     ERR_TOO_LONG);
}

/* Parses text as portcullis.conf and its directories. */
static int parse(const char *text, struct directory_conf **d, size_t *n,
                 char *why, size_t whylen)
{
    struct config cfg;
    int r;

    why[0] = '\0';
    r = config_parse_text(text, strlen(text), "/etc/pc/portcullis.conf", &cfg,
                          why, whylen);
    if (r != ERR_OK) {
        return r;
    }
    r = directory_conf_parse(&cfg, d, n, why, whylen);
    config_free(&cfg);
    return r;
}

static void test_conf_full(void **state)
{
    struct directory_conf *d = NULL;
    char why[512];
    size_t n = 0;

    (void)state;
    assert_int_equal(
        parse("[auth]\nmax_failures = 3\n"
              "[directory \"Contoso.COM\"]\n"
              "url = ldap://dc1.contoso.com ldaps://dc2.contoso.com:636\n"
              "url = ldap://dc3\n"
              "starttls = false\n"
              "bind = {user}@contoso.com\n"
              "base_dn = dc=contoso,dc=com\n"
              "user_filter = (&(sAMAccountName={user})(!(userAccountControl:"
              "1.2.840.113556.1.4.803:=2)))\n"
              "group_attribute = memberOf\n"
              "nested_groups = in_chain\n"
              "map_group = \"CN=Domain Admins,CN=Users,DC=contoso,DC=com -> "
              "admins\"\n"
              "map_group = Linux Ops->ops\n"
              "map_by_name = true\n"
              "ca_file = certs/ca.pem\n"
              "timeout_seconds = 7\n"
              "[directory \"fabrikam.example\"]\n"
              "url = ldaps://ldap.fabrikam.example\n"
              "bind_dn = cn=svc,dc=fabrikam\n"
              "bind_password_sealed = AQIDBA==\n"
              "base_dn = dc=fabrikam\n"
              "[http]\nport = 8081\n",
              &d, &n, why, sizeof(why)),
        ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(d[0].name, "contoso.com");
    assert_int_equal(d[0].nurls, 3);
    assert_string_equal(d[0].urls[1], "ldaps://dc2.contoso.com:636");
    assert_string_equal(d[0].urls[2], "ldap://dc3");
    assert_string_equal(d[0].bind, "{user}@contoso.com");
    assert_int_equal(d[0].nested, DIRECTORY_NESTED_IN_CHAIN);
    assert_int_equal(d[0].nmaps, 2);
    assert_string_equal(d[0].maps[0].from,
                        "CN=Domain Admins,CN=Users,DC=contoso,DC=com");
    assert_string_equal(d[0].maps[0].to, "admins");
    assert_string_equal(d[0].maps[1].from, "Linux Ops");
    assert_string_equal(d[0].maps[1].to, "ops");
    assert_true(d[0].map_by_name);
    assert_string_equal(d[0].ca_file, "/etc/pc/certs/ca.pem");
    assert_int_equal(d[0].timeout_seconds, 7);
    assert_int_equal(d[0].connect_timeout_seconds, 3);
    assert_string_equal(d[0].group_base_dn, "dc=contoso,dc=com");
    /* defaults */
    assert_string_equal(d[1].user_filter, "(uid={user})");
    assert_string_equal(d[1].group_filter,
                        "(|(member={dn})(uniqueMember={dn}))");
    assert_int_equal(d[1].nested, DIRECTORY_NESTED_RECURSIVE);
    assert_null(d[1].bind);
    assert_int_equal(d[1].bind_password_sealed_len, 4);
    assert_non_null(directory_conf_find(d, n, "CONTOSO.com"));
    assert_null(directory_conf_find(d, n, "contoso"));
    directory_conf_free(d, n);
}

static void test_conf_errors(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"[directory \"c.com\"]\nurl = http://x\n", ":2: 'url' needs"},
        {"[directory \"c.com\"]\nurl = ldap://x\nbase_dn = dc=c\n",
         ":1: [directory \"c.com\"] needs bind"},
        {"[directory \"c.com\"]\nbase_dn = dc=c\nbind = {user}@c\n",
         "needs url and base_dn"},
        {"[directory \"c.com\"]\nbind = uid=x\n", ":2: 'bind' needs"},
        {"[directory \"c.com\"]\nuser_filter = uid={user}\n",
         ":2: 'user_filter' needs"},
        {"[directory \"c.com\"]\nbogus = 1\n", ":2: unknown key 'bogus'"},
        {"[directory \"c.com\"]\nmap_group = admins\n", ":2: 'map_group'"},
        {"[directory \"c.com\"]\ntimeout_seconds = 0\n",
         "an integer from 1 to 120"},
        {"[directory \"c.com\"]\nnested_groups = yes\n",
         "off, in_chain or recursive"},
        {"[directory \"c.com\"]\nbind_password_sealed = ***\n",
         "seal-password"},
        {"[directory \"c.com\"]\nurl = ldap://x\nbase_dn = dc=c\n"
         "bind_dn = cn=svc\n",
         "go together"},
        {"[directory \"c.com\"]\nurl = ldaps://x\nbase_dn = dc=c\n"
         "bind = {user}@c\nstarttls = true\n",
         "starttls is for ldap://"},
        {"[directory \"bad domain\"]\n", "must be a domain"},
        {"[directory \"c.com\"]\nurl=ldap://x\nbase_dn=d\nbind={user}\n"
         "[directory \"C.com\"]\n",
         ":5: [directory \"C.com\"] appears twice"},
    };
    struct directory_conf *d = NULL;
    char why[512];
    size_t n = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i].text, &d, &n, why, sizeof(why)),
                         ERR_CONFIG);
        if (strstr(why, bad[i].why) == NULL) {
            fail_msg("case %zu: '%s' lacks '%s'", i, why, bad[i].why);
        }
        assert_null(d);
        assert_int_equal(n, 0);
    }
}

static void test_config_subsections(void **state)
{
    struct config cfg;
    char why[256];
    const char *unknown = "[frobnicate \"x\"]\nurl = y\n";
    const char *good = "[directory \"a.b\"]\nurl = ldap://h\n[auth]\n"
                       "max_failures = 4\n";

    (void)state;
    /* only known kinds: anything else is still a bad section */
    assert_int_equal(config_parse_text(unknown, strlen(unknown),
                                       "/etc/portcullis.conf", &cfg, why,
                                       sizeof(why)),
                     ERR_CONFIG);
    assert_non_null(strstr(why, ":2: unknown key 'url'"));
    assert_int_equal(config_parse_text(good, strlen(good),
                                       "/etc/portcullis.conf", &cfg, why,
                                       sizeof(why)),
                     ERR_OK);
    assert_int_equal(cfg.nsubkeys, 2);
    assert_string_equal(cfg.subkeys[0].name, "a.b");
    assert_string_equal(cfg.subkeys[0].key, "");
    assert_string_equal(cfg.subkeys[1].key, "url");
    assert_string_equal(cfg.subkeys[1].value, "ldap://h");
    assert_int_equal(cfg.subkeys[1].line, 2);
    /* the section after it is an ordinary one again */
    assert_int_equal(cfg.max_failures, 4);
    config_free(&cfg);
}

struct steps {
    int n;
    char last[64];
};

static void count_step(void *arg, const char *step, const char *text)
{
    struct steps *s = arg;

    (void)text;
    s->n++;
    snprintf(s->last, sizeof(s->last), "%s", step);
}

static void test_empty_password_never_binds(void **state)
{
    struct directory_conf *d = NULL;
    struct directory_result res;
    struct steps st = {0, ""};
    char why[256];
    size_t n = 0;

    (void)state;
    /* port 1: were a connection tried, the trace would show "connect" */
    assert_int_equal(parse("[directory \"c.com\"]\nurl = ldap://127.0.0.1:1\n"
                           "base_dn = dc=c\nbind = uid={user},dc=c\n",
                           &d, &n, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(
        directory_check(&d[0], NULL, "alice", "", &res, count_step, &st),
        ERR_AUTH);
    assert_string_equal(res.why, "empty password");
    assert_string_equal(st.last, "bind");
    assert_int_equal(st.n, 1);
    directory_result_clear(&res);
    assert_int_equal(
        directory_check(&d[0], NULL, "alice", NULL, &res, count_step, &st),
        ERR_AUTH);
    directory_result_clear(&res);
    /* a user name the directory cannot be asked about */
    assert_int_equal(
        directory_check(&d[0], NULL, "", "pw", &res, count_step, &st),
        ERR_INVALID);
    directory_result_clear(&res);
    assert_int_equal(
        directory_check(&d[0], NULL, "a\nb", "pw", &res, count_step, &st),
        ERR_INVALID);
    directory_result_clear(&res);
    /* and a server that is not there: unreachable, with its name */
    assert_int_equal(
        directory_check(&d[0], NULL, "alice", "pw", &res, count_step, &st),
        ERR_CONNECT);
    assert_string_equal(res.why, "directory c.com unreachable");
    directory_result_clear(&res);
    directory_conf_free(d, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_escape),
        cmocka_unit_test(test_dn_escape),
        cmocka_unit_test(test_template),
        cmocka_unit_test(test_conf_full),
        cmocka_unit_test(test_conf_errors),
        cmocka_unit_test(test_config_subsections),
        cmocka_unit_test(test_empty_password_never_binds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
