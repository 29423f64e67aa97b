/*
 * Unit tests for src/hub/tunnel_def.c, the rules the CLI and the API
 * share for tunnels: ACL canonical form and refusals, ACL matching
 * (IPv4-mapped clients included), the default ACL of one address, the
 * HOST:PORT parser, the port choice (range, ports used by tunnels of the
 * same protocol, a port another socket holds, the lowest free one), and a
 * whole definition against a real store (unknown agent, explicit and
 * picked ports, duplicates), and tunnels through a peer node (the peer
 * must exist, TCP only, agent or peer but not both; the peer cannot be
 * deleted while a tunnel uses it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/config.h"
#include "common/err.h"
#include "hub/tunnel_def.h"
#include "store/agents.h"
#include "store/peers.h"

#include "store_fx.h"

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_tunnel_def.XXXXXX");
}

static void expect_acl(const char *in, const char *want)
{
    char out[TUNNEL_ACL_MAX + 1], why[256] = "";

    if (tunnel_acl_normalize(in, out, sizeof(out), why, sizeof(why)) !=
        ERR_OK) {
        fail_msg("\"%s\" refused: %s", in, why);
    }
    assert_string_equal(out, want);
}

static void expect_acl_bad(const char *in, int err, const char *needle)
{
    char out[TUNNEL_ACL_MAX + 1], why[256] = "";

    assert_int_equal(
        tunnel_acl_normalize(in, out, sizeof(out), why, sizeof(why)), err);
    assert_string_equal(out, "");
    if (strstr(why, needle) == NULL) {
        fail_msg("\"%s\": why \"%s\" lacks \"%s\"", in, why, needle);
    }
}

static void test_acl_normalize(void **state)
{
    char big[TUNNEL_ACL_MAX + 64];
    size_t i;

    (void)state;
    expect_acl("192.0.2.7", "192.0.2.7/32");
    expect_acl("10.1.2.3/8", "10.0.0.0/8");
    expect_acl(" 10.0.0.0/8 , 192.0.2.1,::1 ",
               "10.0.0.0/8,192.0.2.1/32,::1/128");
    expect_acl("2001:db8::1/32", "2001:db8::/32");
    expect_acl("fe80::1/10", "fe80::/10");
    expect_acl("0.0.0.0/0,::/0", "0.0.0.0/0,::/0");
    expect_acl("10.0.0.255/31", "10.0.0.254/31");

    expect_acl_bad("", ERR_INVALID, "empty");
    expect_acl_bad(NULL, ERR_INVALID, "empty");
    expect_acl_bad("bogus", ERR_INVALID, "'bogus'");
    expect_acl_bad("10.0.0.0/33", ERR_INVALID, "'10.0.0.0/33'");
    expect_acl_bad("::1/129", ERR_INVALID, "'::1/129'");
    expect_acl_bad("10.0.0.0/", ERR_INVALID, "10.0.0.0/");
    expect_acl_bad("1.2.3.4,", ERR_INVALID, "separated by commas");
    expect_acl_bad(",1.2.3.4", ERR_INVALID, "separated by commas");
    expect_acl_bad("1.2.3.4,,5.6.7.8", ERR_INVALID, "separated by commas");
    expect_acl_bad("1.2.3.4 5.6.7.8", ERR_INVALID, "not an address");
    expect_acl_bad("host.example", ERR_INVALID, "not an address");

    /* more entries than fit */
    big[0] = '\0';
    for (i = 0; strlen(big) + 20 < sizeof(big); i++) {
        snprintf(big + strlen(big), sizeof(big) - strlen(big), "%s10.0.%zu.1",
                 i > 0 ? "," : "", i % 256);
    }
    expect_acl_bad(big, ERR_TOO_LONG, "too long");
}

static void test_acl_allows(void **state)
{
    (void)state;
    assert_true(tunnel_acl_allows("192.0.2.7/32", "192.0.2.7"));
    assert_false(tunnel_acl_allows("192.0.2.7/32", "192.0.2.8"));
    assert_true(tunnel_acl_allows("10.0.0.0/8,::1/128", "10.200.0.1"));
    assert_true(tunnel_acl_allows("10.0.0.0/8,::1/128", "::1"));
    assert_false(tunnel_acl_allows("10.0.0.0/8,::1/128", "::2"));
    /* an IPv4 client on a dual-stack socket */
    assert_true(tunnel_acl_allows("127.0.0.1/32", "::ffff:127.0.0.1"));
    assert_false(tunnel_acl_allows("", "127.0.0.1"));
    assert_false(tunnel_acl_allows(NULL, "127.0.0.1"));
    assert_false(tunnel_acl_allows("0.0.0.0/0", "not-an-ip"));
}

static void test_acl_of_ip(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(tunnel_acl_of_ip("192.0.2.7", out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "192.0.2.7/32");
    assert_int_equal(tunnel_acl_of_ip("2001:DB8::7", out, sizeof(out)), ERR_OK);
    assert_string_equal(out, "2001:db8::7/128");
    assert_int_equal(tunnel_acl_of_ip("::ffff:10.0.0.1", out, sizeof(out)),
                     ERR_OK);
    assert_string_equal(out, "10.0.0.1/32");
    assert_int_equal(tunnel_acl_of_ip("host", out, sizeof(out)), ERR_INVALID);
    assert_int_equal(tunnel_acl_of_ip("10.0.0.0/8", out, sizeof(out)),
                     ERR_INVALID);
    assert_int_equal(tunnel_acl_of_ip(NULL, out, sizeof(out)), ERR_INVALID);
}

static void test_remote_parse(void **state)
{
    char host[STORE_HOST_MAX + 1], why[256], big[400];
    int port = -1;

    (void)state;
    assert_int_equal(tunnel_remote_parse("127.0.0.1:22", host, sizeof(host),
                                         &port, why, sizeof(why)),
                     ERR_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 22);
    assert_int_equal(tunnel_remote_parse("db.internal:5432", host, sizeof(host),
                                         &port, why, sizeof(why)),
                     ERR_OK);
    assert_string_equal(host, "db.internal");
    assert_int_equal(port, 5432);
    assert_int_equal(tunnel_remote_parse("[::1]:65535", host, sizeof(host),
                                         &port, why, sizeof(why)),
                     ERR_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 65535);

    /* what a refusal quotes carries no control characters */
    assert_int_not_equal(tunnel_remote_parse("ev\x1b[2Jil\r\n:22", host,
                                             sizeof(host), &port, why,
                                             sizeof(why)),
                         ERR_OK);
    assert_non_null(strstr(why, "ev?[2Jil??"));
    for (size_t i = 0; why[i] != '\0'; i++) {
        assert_true((unsigned char)why[i] >= 0x20 && why[i] != 0x7f);
    }
    assert_int_not_equal(tunnel_acl_normalize("10.0.0.0/8,\x1b]0;x\x07", big,
                                              sizeof(big), why, sizeof(why)),
                         ERR_OK);
    assert_null(strchr(why, 0x1b));
    assert_null(strchr(why, 0x07));

    static const char *const bad[] = {
        "",         "host",    "host:",    ":22",      "host:0",  "host:65536",
        "host:22x", "host:-1", "::1:22",   "[::1]22",  "[::1:22", "[host]:22",
        "a b:22",   "-x:22",   "host:+22", "host: 22", "[]:22",   "h;rm -rf:22",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        port = -1;
        if (tunnel_remote_parse(bad[i], host, sizeof(host), &port, why,
                                sizeof(why)) == ERR_OK) {
            fail_msg("\"%s\" accepted", bad[i]);
        }
        assert_int_equal(port, 0);
        assert_string_equal(host, "");
    }
    memset(big, 'h', 300);
    snprintf(big + 300, sizeof(big) - 300, ":22");
    assert_int_equal(
        tunnel_remote_parse(big, host, sizeof(host), &port, why, sizeof(why)),
        ERR_TOO_LONG);
}

/* A loopback port range of 8 ports nobody listens on, found by binding. */
static int free_range(int n)
{
    for (int base = 41000; base < 60000; base += 97) {
        int ok = 1;

        for (int p = base; p < base + n && ok; p++) {
            struct sockaddr_in sa;
            int fd = socket(AF_INET, SOCK_STREAM, 0), fd2;

            memset(&sa, 0, sizeof(sa));
            sa.sin_family = AF_INET;
            sa.sin_port = htons((uint16_t)p);
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
            close(fd);
            fd2 = socket(AF_INET, SOCK_DGRAM, 0);
            ok = ok && bind(fd2, (struct sockaddr *)&sa, sizeof(sa)) == 0;
            close(fd2);
        }
        if (ok) {
            return base;
        }
    }
    return -1;
}

static void add_agent(struct store *st, const char *id)
{
    struct store_agent *a = calloc(1, sizeof(*a));

    assert_non_null(a);
    snprintf(a->id, sizeof(a->id), "%s", id);
    assert_int_equal(store_agent_online(st, a, 1), ERR_OK);
    free(a);
}

static void test_ports_and_add(void **state)
{
    struct fx *f = *state;
    struct config cfg;
    struct tunnel_def_req req;
    struct store_tunnel t;
    struct sockaddr_in sa;
    char why[512];
    int base = free_range(8), port = 0, holder;

    assert_true(base > 0);
    assert_int_equal(config_defaults(&cfg, "/tmp"), ERR_OK);
    free(cfg.tunnel_listen);
    cfg.tunnel_listen = strdup("127.0.0.1");
    cfg.tunnel_port_min = base;
    cfg.tunnel_port_max = base + 7;
    add_agent(f->st, "ag");

    memset(&req, 0, sizeof(req));
    req.agent_id = "ag";
    req.remote = "127.0.0.1:22";
    req.default_ip = "::ffff:192.0.2.7";
    req.created_by = "admin";

    /* the lowest free port; the default ACL is the creator's address */
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(t.local_port, base);
    assert_string_equal(t.acl, "192.0.2.7/32");
    assert_string_equal(t.created_by, "admin");
    assert_string_equal(tunnel_def_state(&t), "pending");
    /* the next one skips it; UDP may reuse the number */
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(t.local_port, base + 1);
    req.udp = true;
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(t.local_port, base);
    assert_true(t.udp);
    req.udp = false;

    /* a port held by another socket is skipped, and refused when asked for */
    holder = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)(base + 2));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(holder, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(holder, 1), 0);
    assert_int_equal(
        tunnel_port_pick(f->st, &cfg, false, 0, &port, why, sizeof(why)),
        ERR_OK);
    assert_int_equal(port, base + 3);
    req.local_port = base + 2;
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_EXISTS);
    assert_non_null(strstr(why, "cannot be bound"));
    close(holder);

    /* explicit: in range and free; used by a tunnel; out of range */
    req.local_port = base + 5;
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(t.local_port, base + 5);
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_EXISTS);
    assert_non_null(strstr(why, "already used by tunnel"));
    req.local_port = base + 8;
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_INVALID);
    assert_non_null(strstr(why, "outside the tunnel port range"));
    req.local_port = 0;

    /* the range runs out */
    req.acl = "10.0.0.0/8";
    for (int i = 0; i < 8; i++) {
        if (tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)) != ERR_OK) {
            break;
        }
    }
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_EXISTS);
    assert_non_null(strstr(why, "no free tcp port"));

    /* refusals before anything is written */
    req.agent_id = "nobody";
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_NOT_FOUND);
    assert_non_null(strstr(why, "agent 'nobody' not found"));
    req.agent_id = "ag";
    req.acl = "10.0.0.0/99";
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_INVALID);
    req.acl = NULL;
    req.default_ip = "not an address";
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_INVALID);
    req.default_ip = "127.0.0.1";
    req.remote = "nohost";
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_INVALID);
    req.remote = "h:1";
    req.idle_minutes = TUNNEL_IDLE_MAX + 1;
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_INVALID);
    config_free(&cfg);
}

static void test_peer_tunnels(void **state)
{
    struct fx *f = *state;
    struct config cfg;
    struct tunnel_def_req req;
    struct store_tunnel t, got, *list = NULL;
    struct store_peer p;
    char why[512];
    size_t n = 0;
    int base = free_range(8), users = 0;

    assert_true(base > 0);
    assert_int_equal(config_defaults(&cfg, "/tmp"), ERR_OK);
    free(cfg.tunnel_listen);
    cfg.tunnel_listen = strdup("127.0.0.1");
    cfg.tunnel_port_min = base;
    cfg.tunnel_port_max = base + 7;
    add_agent(f->st, "ag");
    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "plant-7");
    snprintf(p.host, sizeof(p.host), "10.20.0.5");
    p.port = 3128;
    memcpy(p.token_sealed, "sealed", 6);
    p.token_sealed_len = 6;
    assert_int_equal(store_peer_add(f->st, &p), ERR_OK);

    memset(&req, 0, sizeof(req));
    req.remote = "10.9.0.4:22";
    req.acl = "127.0.0.1";
    req.created_by = "admin";

    /* refusals: an unknown peer, UDP, an agent and a peer at once */
    req.peer = "nope";
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_NOT_FOUND);
    assert_string_equal(why, "peer 'nope' not found");
    req.peer = "plant-7";
    req.udp = true;
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_INVALID);
    assert_non_null(strstr(why, "TCP only"));
    req.udp = false;
    req.agent_id = "ag";
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_INVALID);
    assert_non_null(strstr(why, "not both"));
    req.agent_id = NULL;

    /* by the peer's ID too: the name is stored; no agent */
    req.peer = p.id;
    assert_int_equal(tunnel_def_add(f->st, &cfg, &req, &t, why, sizeof(why)),
                     ERR_OK);
    assert_int_equal(t.local_port, base);
    assert_int_equal(store_tunnel_get(f->st, t.id, &got), ERR_OK);
    assert_string_equal(got.peer, "plant-7");
    assert_string_equal(got.agent_id, "");
    assert_string_equal(got.remote_host, "10.9.0.4");
    assert_int_equal(store_tunnel_list(f->st, NULL, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].peer, "plant-7");
    store_tunnel_list_free(list, n);
    assert_int_equal(store_tunnel_list(f->st, "ag", &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_tunnel_list_free(list, n);

    /* the store's own rules, whatever the caller */
    got.id[0] = '\0';
    got.local_port = base + 1;
    got.udp = true;
    assert_int_equal(store_tunnel_add(f->st, &got), ERR_INVALID);
    got.udp = false;
    snprintf(got.agent_id, sizeof(got.agent_id), "ag");
    assert_int_equal(store_tunnel_add(f->st, &got), ERR_INVALID);
    got.peer[0] = '\0';
    assert_int_equal(store_tunnel_add(f->st, &got), ERR_OK);
    got.agent_id[0] = '\0';
    got.local_port = base + 2;
    assert_int_equal(store_tunnel_add(f->st, &got), ERR_INVALID);

    /* the peer stays while its tunnel does; deleting the agent leaves the
     * peer's tunnel */
    assert_int_equal(store_peer_delete(f->st, "plant-7", &users), ERR_DENIED);
    assert_int_equal(users, 1);
    assert_int_equal(store_agent_delete(f->st, "ag"), ERR_OK);
    assert_int_equal(store_tunnel_get(f->st, t.id, &got), ERR_OK);
    assert_int_equal(store_tunnel_delete(f->st, t.id), ERR_OK);
    assert_int_equal(store_peer_delete(f->st, "plant-7", &users), ERR_OK);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acl_normalize),
        cmocka_unit_test(test_acl_allows),
        cmocka_unit_test(test_acl_of_ip),
        cmocka_unit_test(test_remote_parse),
        cmocka_unit_test_setup_teardown(test_ports_and_add, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_tunnels, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
