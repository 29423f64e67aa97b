/*
 * Unit tests for src/auth/directory*.c: the RFC 4515 and RFC 4514
 * escapers (every special character, NUL, the leading and trailing
 * cases, a buffer too small), the template substitution, the
 * [directory "DOMAIN"] sections as config.c keeps them and
 * directory_conf_parse() checks them (defaults, mapping, every kind of
 * mistake with its line), that an empty password never reaches the
 * network (no connect step is tried), and the service: at most
 * max_concurrent_binds checks run, 8 times as many wait, more are refused
 * at once, and every accepted one is answered by timeout_seconds even by
 * a server that accepts connections and never answers (a listening socket
 * nobody accepts from), exactly once; a forgotten one never.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "auth/directory.h"
#include "common/config.h"
#include "common/err.h"
#include "common/loop.h"

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

/* A TCP listener on loopback that never accepts: the kernel completes
 * connections into its backlog, and nothing ever answers. */
static int blackhole(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

struct svc_fx {
    struct loop *l;
    int results[32];
    char why[32][256];
    int done, want;
};

static void svc_done(void *ctx, uint64_t tag,
                     const struct directory_result *res)
{
    struct svc_fx *fx = ctx;

    assert_true(tag < 32);
    assert_int_equal(fx->results[tag], -1); /* exactly once */
    fx->results[tag] = res->status;
    snprintf(fx->why[tag], sizeof(fx->why[tag]), "%s", res->why);
    if (++fx->done == fx->want) {
        loop_stop(fx->l);
    }
}

static void svc_stop(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_service_cap_queue_deadline(void **state)
{
    struct directory_service *s;
    struct svc_fx fx, other;
    struct config cfg;
    unsigned running = 0, waiting = 0;
    char text[512], why[256];
    int port, lfd, i, r;
    double t0, took;

    (void)state;
    memset(&fx, 0, sizeof(fx));
    memset(&other, 0, sizeof(other));
    for (i = 0; i < 32; i++) {
        fx.results[i] = other.results[i] = -1;
    }
    lfd = blackhole(&port);
    snprintf(text, sizeof(text),
             "[directory \"c.com\"]\nurl = ldap://127.0.0.1:%d\n"
             "base_dn = dc=c\nbind = uid={user},dc=c\ntimeout_seconds = 1\n"
             "connect_timeout_seconds = 1\nmax_concurrent_binds = 1\n",
             port);
    assert_int_equal(config_parse_text(text, strlen(text),
                                       "/etc/portcullis.conf", &cfg, why,
                                       sizeof(why)),
                     ERR_OK);
    assert_non_null(fx.l = loop_new());
    other.l = fx.l;
    assert_non_null(
        s = directory_service_new(fx.l, &cfg, NULL, why, sizeof(why)));
    config_free(&cfg);
    assert_int_equal(directory_service_count(s), 1);
    assert_int_equal(directory_service_workers(s), 1);
    assert_int_equal(
        directory_login_async(s, "nowhere.org", "a", "pw", svc_done, &fx, 0),
        ERR_NOT_FOUND);
    /* 1 running + 8 waiting accepted, the 10th refused at once */
    for (i = 0; i < 10; i++) {
        r = directory_login_async(s, "C.com", "alice", "pw", svc_done, &fx,
                                  (uint64_t)i);
        assert_int_equal(r, i < 9 ? ERR_OK : ERR_DENIED);
    }
    /* one more from another owner, forgotten: never answered */
    directory_service_load(s, &running, &waiting);
    assert_int_equal(running, 1);
    assert_int_equal(waiting, 8);
    fx.want = 9;
    t0 = now_s();
    assert_int_equal(loop_run(fx.l), ERR_OK);
    took = now_s() - t0;
    assert_int_equal(fx.done, 9);
    for (i = 0; i < 9; i++) {
        assert_true(fx.results[i] == ERR_TIMEOUT ||
                    fx.results[i] == ERR_CONNECT);
        assert_non_null(strstr(fx.why[i], "directory c.com unreachable"));
    }
    assert_int_equal(fx.results[9], -1);
    /* every one within the deadline (1 s), not one after another */
    assert_true(took < 1.9);
    /* forget: a request whose owner goes is never answered, not even by
     * its deadline */
    assert_int_equal(
        directory_login_async(s, "c.com", "bob", "pw", svc_done, &other, 0),
        ERR_OK);
    directory_service_forget(s, &other);
    assert_true(loop_add_timer(fx.l, 1500, svc_stop, fx.l) != 0);
    assert_int_equal(loop_run(fx.l), ERR_OK);
    assert_int_equal(other.results[0], -1);
    directory_service_free(s); /* running checks finish, then it goes */
    loop_free(fx.l);
    assert_int_equal(other.results[0], -1);
    close(lfd);
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
        cmocka_unit_test(test_service_cap_queue_deadline),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
