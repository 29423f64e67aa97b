/*
 * Unit tests for the peer-node CONNECT proxy's parsers
 * (src/http/http_proxy.c): the allow list and the request head. The
 * proxy's behaviour on the wire is tests/e2e/test_http_proxy.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "http/http_proxy.h"

static void test_allow_parse_and_match(void **state)
{
    struct http_proxy_dest *d = NULL;
    size_t n = 0;
    char why[256];

    (void)state;
    assert_int_equal(http_proxy_allow_parse("10.0.0.0/8:22, 192.168.1.5:80-90 "
                                            "[fd00::]/8:* 127.0.0.1:3389",
                                            &d, &n, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(n, 4);
    assert_true(http_proxy_allow_match(d, n, "10.9.8.7", 22));
    assert_false(http_proxy_allow_match(d, n, "10.9.8.7", 23));
    assert_false(http_proxy_allow_match(d, n, "11.0.0.1", 22));
    assert_true(http_proxy_allow_match(d, n, "192.168.1.5", 80));
    assert_true(http_proxy_allow_match(d, n, "192.168.1.5", 90));
    assert_false(http_proxy_allow_match(d, n, "192.168.1.5", 91));
    assert_false(http_proxy_allow_match(d, n, "192.168.1.6", 85));
    assert_true(http_proxy_allow_match(d, n, "fd12::1", 1));
    assert_true(http_proxy_allow_match(d, n, "fd12::1", 65535));
    assert_false(http_proxy_allow_match(d, n, "fe80::1", 22));
    assert_true(http_proxy_allow_match(d, n, "127.0.0.1", 3389));
    free(d);

    /* empty: nothing allowed */
    assert_int_equal(http_proxy_allow_parse("", &d, &n, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(n, 0);
    assert_false(http_proxy_allow_match(d, n, "127.0.0.1", 22));
    free(d);
    assert_int_equal(http_proxy_allow_parse(NULL, &d, &n, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(n, 0);
    free(d);

    static const struct {
        const char *in, *why;
    } bad[] = {
        {"10.0.0.0/8", "no :PORTS"},
        {"fd00::/8:22", "IPv6 addresses go in brackets"},
        {"[fd00::/8:22", "no closing ']'"},
        {"10.0.0.0/33:22", "not an address or CIDR"},
        {"host.example:22", "not an address or CIDR"},
        {"10.0.0.1:0", "bad port"},
        {"10.0.0.1:65536", "bad port"},
        {"10.0.0.1:30-20", "bad port range"},
        {"10.0.0.1:-", "bad port range"},
        {"10.0.0.1:2x", "bad port"},
        {":22", "not an address or CIDR"},
        {"10.0.0.1:22 \x1b[2J:22", "not an address"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        assert_int_not_equal(
            http_proxy_allow_parse(bad[i].in, &d, &n, why, sizeof(why)),
            ERR_OK);
        if (strstr(why, bad[i].why) == NULL) {
            fail_msg("'%s': why '%s' lacks '%s'", bad[i].in, why, bad[i].why);
        }
        assert_null(strchr(why, 0x1b));
        assert_null(d);
    }
}

static int parse(const char *head, struct http_proxy_req *req, char *why)
{
    return http_proxy_parse_head(head, strlen(head), req, why, 256);
}

static void test_head(void **state)
{
    static struct http_proxy_req req;
    char why[256];

    (void)state;
    assert_int_equal(http_proxy_head_len("CONNECT a:1 HTTP/1.1\r\n", 22), 0);
    assert_int_equal(http_proxy_head_len("CONNECT a:1 HTTP/1.1\r\n\r\nxyz", 27),
                     24);
    assert_int_equal(http_proxy_head_len("CONNECT a:1 HTTP/1.1\n\nxyz", 25),
                     22);

    assert_int_equal(parse("CONNECT 10.0.0.5:22 HTTP/1.1\r\nHost: 10.0.0.5:22"
                           "\r\nProxy-Authorization:   Bearer  abc.DEF-_=.x  "
                           "\r\n\r\n",
                           &req, why),
                     0);
    assert_string_equal(req.host, "10.0.0.5");
    assert_int_equal(req.port, 22);
    assert_true(req.has_auth);
    assert_string_equal(req.token, "abc.DEF-_=.x");

    assert_int_equal(parse("CONNECT [fd00::1]:3389 HTTP/1.0\r\n"
                           "proxy-authorization: bearer t\r\n\r\n",
                           &req, why),
                     0);
    assert_string_equal(req.host, "fd00::1");
    assert_int_equal(req.port, 3389);
    assert_string_equal(req.token, "t");

    /* another scheme, a token with odd characters: auth seen, no token */
    assert_int_equal(parse("CONNECT h:1 HTTP/1.1\r\nProxy-Authorization: Basic "
                           "eDp5\r\n\r\n",
                           &req, why),
                     0);
    assert_true(req.has_auth);
    assert_string_equal(req.token, "");
    assert_int_equal(
        parse("CONNECT h:1 HTTP/1.1\r\nProxy-Authorization: Bearer "
              "a\"b\r\n\r\n",
              &req, why),
        0);
    assert_string_equal(req.token, "");
    assert_int_equal(parse("CONNECT h:1 HTTP/1.1\r\n\r\n", &req, why), 0);
    assert_false(req.has_auth);

    /* OPTIONS *: the check, no destination */
    assert_int_equal(parse("OPTIONS * HTTP/1.1\r\nProxy-Authorization: Bearer "
                           "t\r\n\r\n",
                           &req, why),
                     0);
    assert_true(req.check);
    assert_string_equal(req.host, "");
    assert_string_equal(req.token, "t");

    static const struct {
        const char *in;
        int status;
        const char *why;
    } bad[] = {
        {"GET / HTTP/1.1\r\n\r\n", 405, "CONNECT proxy"},
        {"OPTIONS / HTTP/1.1\r\n\r\n", 405, "CONNECT proxy"},
        {"OPTIONS ** HTTP/1.1\r\n\r\n", 405, "CONNECT proxy"},
        {"CONNECT h:22 HTTP/2.0\r\n\r\n", 505, "HTTP/1.0 and 1.1"},
        {"CONNECT h:22\r\n\r\n", 400, "request line"},
        {"CONNECT  h:22 HTTP/1.1\r\n\r\n", 400, "request line"},
        {"CONNECT h HTTP/1.1\r\n\r\n", 400, "HOST:PORT"},
        {"CONNECT h:0 HTTP/1.1\r\n\r\n", 400, "1-65535"},
        {"CONNECT h:65536 HTTP/1.1\r\n\r\n", 400, "1-65535"},
        {"CONNECT fd00::1:22 HTTP/1.1\r\n\r\n", 400, "brackets"},
        {"CONNECT [zz]:22 HTTP/1.1\r\n\r\n", 400, "IPv6"},
        {"CONNECT a;b:22 HTTP/1.1\r\n\r\n", 400, "not a host name"},
        {"CONNECT -a:22 HTTP/1.1\r\n\r\n", 400, "not a host name"},
        {"CONNECT h:22 HTTP/1.1\r\nBad header\r\n\r\n", 400, "header line"},
        {"CONNECT h:22 HTTP/1.1\r\n folded: x\r\n\r\n", 400, "header line"},
        {"CONNECT h:22 HTTP/1.1\r\nX: a\x01"
         "b\r\n\r\n",
         400, "control characters"},
        {"CONNECT h:22 HTTP/1.1\r\nProxy-Authorization: Bearer a\r\n"
         "Proxy-Authorization: Bearer b\r\n\r\n",
         400, "more than one"},
        {"", 400, "empty"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int st = parse(bad[i].in, &req, why);
        if (st != bad[i].status || strstr(why, bad[i].why) == NULL) {
            fail_msg("'%s': %d '%s', wanted %d '%s'", bad[i].in, st, why,
                     bad[i].status, bad[i].why);
        }
    }
}

/* Portcullis-Agent (a node's stream through an agent another node holds):
 * an agent ID's characters, once. */
static void test_agent_header(void **state)
{
    static struct http_proxy_req req;
    char why[256];

    (void)state;
    assert_int_equal(parse("CONNECT 127.0.0.1:22 HTTP/1.1\r\n"
                           "Portcullis-Agent: db-08.prod_1\r\n\r\n",
                           &req, why),
                     0);
    assert_string_equal(req.agent, "db-08.prod_1");
    assert_int_equal(parse("CONNECT a:1 HTTP/1.1\r\n\r\n", &req, why), 0);
    assert_string_equal(req.agent, "");
    assert_int_equal(parse("CONNECT a:1 HTTP/1.1\r\nPortcullis-Agent: a b"
                           "\r\n\r\n",
                           &req, why),
                     400);
    assert_string_equal(why, "bad Portcullis-Agent");
    assert_int_equal(parse("CONNECT a:1 HTTP/1.1\r\nPortcullis-Agent: a\r\n"
                           "portcullis-agent: b\r\n\r\n",
                           &req, why),
                     400);
    assert_int_equal(
        parse("CONNECT a:1 HTTP/1.1\r\nPortcullis-Agent:\r\n\r\n", &req, why),
        400);
}

/* Portcullis-Kind: udp (a UDP tunnel's flow between nodes): that one
 * value, once; without it a stream is TCP. */
static void test_kind_header(void **state)
{
    static struct http_proxy_req req;
    char why[256];

    (void)state;
    assert_int_equal(parse("CONNECT 127.0.0.1:53 HTTP/1.1\r\n"
                           "Portcullis-Agent: a1\r\n"
                           "Portcullis-Kind: udp\r\n\r\n",
                           &req, why),
                     0);
    assert_true(req.udp);
    assert_string_equal(req.agent, "a1");
    assert_int_equal(parse("CONNECT a:1 HTTP/1.1\r\n\r\n", &req, why), 0);
    assert_false(req.udp);
    assert_int_equal(
        parse("CONNECT a:1 HTTP/1.1\r\nPortcullis-Kind: tcp\r\n\r\n", &req,
              why),
        400);
    assert_string_equal(why, "bad Portcullis-Kind");
    assert_int_equal(parse("CONNECT a:1 HTTP/1.1\r\nPortcullis-Kind: udp\r\n"
                           "portcullis-kind: UDP\r\n\r\n",
                           &req, why),
                     400);
    assert_int_equal(
        parse("CONNECT a:1 HTTP/1.1\r\nPortcullis-Kind: udpx\r\n\r\n", &req,
              why),
        400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allow_parse_and_match),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_agent_header),
        cmocka_unit_test(test_kind_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
