/*
 * Unit tests for src/http/http_addr.c: which [http] listen addresses count
 * as loopback (and so may serve plain HTTP), and the rule `serve` applies
 * before it binds: plain HTTP off loopback is refused unless TLS is set or
 * [http] allow_plain_http = true, which config_load() reads as a strict
 * boolean.
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
#include "common/addr.h"

static void test_loopback_addresses(void **state)
{
    static const char *const yes[] = {
        "127.0.0.1",
        "127.0.0.2",
        "127.255.255.254",
        "127.1.2.3",
        "::1",
        "[::1]",
        "0:0:0:0:0:0:0:1",
        "::ffff:127.0.0.1",
        "[::ffff:127.9.9.9]",
        "localhost",
        "LOCALHOST",
        "LocalHost",
    };

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (!addr_is_loopback(yes[i])) {
            fail_msg("%s should be loopback", yes[i]);
        }
    }
}

static void test_other_addresses(void **state)
{
    static const char *const no[] = {
        "0.0.0.0",
        "::",
        "[::]",
        "192.0.2.1",
        "10.0.0.1",
        "128.0.0.1",
        "126.255.255.255",
        "1.127.0.0",
        "::2",
        "::ffff:10.0.0.1",
        "fe80::1",
        "[::1",
        "::1]",
        "[]",
        "[",
        "",
        "127.1",
        "0x7f.0.0.1",
        "127.0.0.1 ",
        " 127.0.0.1",
        "127.0.0.1.",
        "localhost.example",
        "localhost.",
        "mylocalhost",
        "lo",
        "example.com",
    };

    assert_false(addr_is_loopback(NULL));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (addr_is_loopback(no[i])) {
            fail_msg("'%s' should not be loopback", no[i]);
        }
    }
}

/* A config as `serve` would see it: listen, TLS on or off, the override. */
static int check(const char *listen, int port, const char *cert,
                 bool allow_plain, char *why, size_t whylen)
{
    struct config cfg;
    int r;

    assert_int_equal(config_defaults(&cfg, "/nonexistent"), ERR_OK);
    free(cfg.http_listen);
    cfg.http_listen = strdup(listen);
    assert_non_null(cfg.http_listen);
    cfg.http_port = port;
    if (cert != NULL) {
        cfg.http_tls_cert = strdup(cert);
        assert_non_null(cfg.http_tls_cert);
    }
    cfg.http_allow_plain_http = allow_plain;
    why[0] = '\0';
    r = addr_check_plain_http(&cfg, why, whylen);
    config_free(&cfg);
    return r;
}

static void test_plain_http_only_on_loopback(void **state)
{
    char why[512];

    assert_int_equal(check("127.0.0.1", 8080, NULL, false, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(check("::1", 8080, NULL, false, why, sizeof(why)), ERR_OK);
    assert_int_equal(check("localhost", 8080, NULL, false, why, sizeof(why)),
                     ERR_OK);

    assert_int_equal(check("192.0.2.1", 8080, NULL, false, why, sizeof(why)),
                     ERR_CONFIG);
    /* one line that names the address and both ways out */
    assert_non_null(strstr(why, "192.0.2.1"));
    assert_non_null(strstr(why, "tls_cert"));
    assert_non_null(strstr(why, "allow_plain_http = true"));
    assert_null(strchr(why, '\n'));

    assert_int_equal(check("0.0.0.0", 8080, NULL, false, why, sizeof(why)),
                     ERR_CONFIG);
    assert_int_equal(check("::", 8080, NULL, false, why, sizeof(why)),
                     ERR_CONFIG);
    /* an empty tls_cert is no certificate */
    assert_int_equal(check("0.0.0.0", 8080, "", false, why, sizeof(why)),
                     ERR_CONFIG);
}

static void test_tls_override_or_off_pass(void **state)
{
    char why[512];

    assert_int_equal(
        check("0.0.0.0", 8080, "/d/tls.crt", false, why, sizeof(why)), ERR_OK);
    assert_int_equal(check("192.0.2.1", 8080, NULL, true, why, sizeof(why)),
                     ERR_OK);
    /* port 0: the listener is off, nothing to refuse */
    assert_int_equal(check("192.0.2.1", 0, NULL, false, why, sizeof(why)),
                     ERR_OK);
}

/* --- [http] allow_plain_http in portcullis.conf --- */

static int load(const char *text, struct config *cfg, char *why, size_t whylen)
{
    char tmpl[] = "/tmp/portcullis-test-http-addr-XXXXXX";
    char path[PATH_MAX];
    FILE *f;
    int r;

    assert_non_null(mkdtemp(tmpl));
    snprintf(path, sizeof(path), "%s/portcullis.conf", tmpl);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
    r = config_load(path, cfg, why, whylen);
    unlink(path);
    rmdir(tmpl);
    return r;
}

static void test_allow_plain_http_key(void **state)
{
    struct config cfg;
    char why[512] = "";

    assert_int_equal(
        load("[http]\nlisten = 192.0.2.1\n", &cfg, why, sizeof(why)), ERR_OK);
    assert_false(cfg.http_allow_plain_http); /* the default */
    assert_int_equal(addr_check_plain_http(&cfg, why, sizeof(why)), ERR_CONFIG);
    config_free(&cfg);

    assert_int_equal(load("[http]\nlisten = 192.0.2.1\n"
                          "allow_plain_http = true\n",
                          &cfg, why, sizeof(why)),
                     ERR_OK);
    assert_true(cfg.http_allow_plain_http);
    assert_int_equal(addr_check_plain_http(&cfg, why, sizeof(why)), ERR_OK);
    config_free(&cfg);

    assert_int_equal(
        load("[http]\nallow_plain_http = false\n", &cfg, why, sizeof(why)),
        ERR_OK);
    assert_false(cfg.http_allow_plain_http);
    config_free(&cfg);
}

static void test_allow_plain_http_needs_true_or_false(void **state)
{
    static const char *const bad[] = {"yes", "1", "on", "TRUE", ""};
    struct config cfg;
    char text[128], why[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text), "[http]\n\nallow_plain_http = %s\n",
                 bad[i]);
        why[0] = '\0';
        assert_int_equal(load(text, &cfg, why, sizeof(why)), ERR_CONFIG);
        assert_non_null(strstr(why, ":3:"));
        assert_non_null(strstr(why, "true or false"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_addresses),
        cmocka_unit_test(test_other_addresses),
        cmocka_unit_test(test_plain_http_only_on_loopback),
        cmocka_unit_test(test_tls_override_or_off_pass),
        cmocka_unit_test(test_allow_plain_http_key),
        cmocka_unit_test(test_allow_plain_http_needs_true_or_false),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
