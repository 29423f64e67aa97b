/*
 * Unit tests for agent/allow.c: parsing allow-list entries and targets,
 * and the verdicts for names, addresses, CIDRs, port ranges and UDP, as
 * docs/agent-protocol.md §4 states them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "agent/allow.h"
#include "common/err.h"

static struct allow_list list_of(const char *const *entries)
{
    struct allow_list l = {0};
    char why[160];

    for (size_t i = 0; entries[i] != NULL; i++) {
        if (allow_list_add(&l, entries[i], why, sizeof(why)) != ERR_OK) {
            fail_msg("entry %s: %s", entries[i], why);
        }
    }
    return l;
}

static enum allow_verdict verdict(const struct allow_list *l, const char *host,
                                  uint32_t port)
{
    struct allow_target t;
    char why[160];

    assert_int_equal(allow_target_parse(host, port, &t, why, sizeof(why)),
                     ERR_OK);
    return allow_check(l, &t);
}

static void test_entry_parse_ok(void **state)
{
    static const char *const good[] = {
        "127.0.0.1:22",         "[::1]:*",
        "localhost:*",          "udp:10.0.0.0/8:53",
        "[fd00::]/8:1-1024",    "db-1.internal:5432",
        "udp:[::1]:53",         "0.0.0.0/0:443",
        "Host_x.example:65535", NULL,
    };
    struct allow_entry e;
    char why[160];

    for (size_t i = 0; good[i] != NULL; i++) {
        assert_int_equal(allow_entry_parse(good[i], &e, why, sizeof(why)),
                         ERR_OK);
    }
    assert_int_equal(
        allow_entry_parse("udp:10.1.2.3/8:53", &e, why, sizeof(why)), ERR_OK);
    assert_int_equal(e.proto, ALLOW_UDP);
    assert_int_equal(e.kind, ALLOW_KIND_NET);
    assert_int_equal(e.prefix, 8);
    assert_int_equal(e.addr[0], 10);
    assert_int_equal(e.addr[1], 0); /* host bits cleared */
    assert_int_equal(e.port_lo, 53);
    assert_int_equal(e.port_hi, 53);
    assert_int_equal(allow_entry_parse("LocalHost:1-9", &e, why, sizeof(why)),
                     ERR_OK);
    assert_string_equal(e.name, "localhost");
    assert_int_equal(e.port_lo, 1);
    assert_int_equal(e.port_hi, 9);
}

static void test_entry_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",          "127.0.0.1",      "127.0.0.1:0",  "127.0.0.1:65536",
        "::1:22",    "[::1:22",        "[::1]22",      "host:9-1",
        "host/8:22", "10.0.0.0/33:22", "[::]/129:22",  "bad host:22",
        "a..b:22",   "127.0.0.1:-5",   "127.0.0.1:1-", "udp:",
        "tcp:x:22",  "127.0.0.1:22x",  "[zz::1]:22",   "10.0.0.0/:22",
        NULL,
    };
    struct allow_entry e;
    char why[160];

    for (size_t i = 0; bad[i] != NULL; i++) {
        why[0] = '\0';
        if (allow_entry_parse(bad[i], &e, why, sizeof(why)) == ERR_OK) {
            fail_msg("accepted bad entry '%s'", bad[i]);
        }
        assert_true(why[0] != '\0');
        assert_null(strchr(why, '\n'));
    }
}

static void test_defaults_loopback_only(void **state)
{
    struct allow_list l = {0};

    assert_int_equal(allow_list_add_defaults(&l), ERR_OK);
    assert_int_equal(verdict(&l, "127.0.0.1", 22), ALLOW_YES);
    assert_int_equal(verdict(&l, "::1", 22), ALLOW_YES);
    assert_int_equal(verdict(&l, "[::1]", 22), ALLOW_YES);
    assert_int_equal(verdict(&l, "localhost", 5432), ALLOW_YES);
    assert_int_equal(verdict(&l, "LOCALHOST", 5432), ALLOW_YES);
    assert_int_equal(verdict(&l, "udp:127.0.0.1", 53), ALLOW_YES);
    assert_int_equal(verdict(&l, "udp:::1", 53), ALLOW_YES);
    assert_int_equal(verdict(&l, "udp:localhost", 53), ALLOW_YES);
    /* Not the rest of 127/8, not the network, not an arbitrary name. */
    assert_int_equal(verdict(&l, "127.0.0.2", 22), ALLOW_NO);
    assert_int_equal(verdict(&l, "10.0.0.1", 22), ALLOW_NO);
    /* A name could still resolve to 127.0.0.1: only after resolving. */
    assert_int_equal(verdict(&l, "example.com", 22), ALLOW_RESOLVE);
    allow_list_clear(&l);
}

static void test_tcp_entry_does_not_allow_udp(void **state)
{
    static const char *const e[] = {"10.0.0.5:53", "dns.internal:53", NULL};
    struct allow_list l = list_of(e);

    assert_int_equal(verdict(&l, "10.0.0.5", 53), ALLOW_YES);
    assert_int_equal(verdict(&l, "udp:10.0.0.5", 53), ALLOW_NO);
    assert_int_equal(verdict(&l, "dns.internal", 53), ALLOW_YES);
    assert_int_equal(verdict(&l, "udp:dns.internal", 53), ALLOW_NO);
    allow_list_clear(&l);
}

static void test_cidr_and_ports(void **state)
{
    static const char *const e[] = {"10.1.0.0/16:22", "[fd00::]/8:8000-8080",
                                    "192.168.1.7:*", NULL};
    struct allow_list l = list_of(e);

    assert_int_equal(verdict(&l, "10.1.255.254", 22), ALLOW_YES);
    assert_int_equal(verdict(&l, "10.2.0.1", 22), ALLOW_NO);
    assert_int_equal(verdict(&l, "10.1.0.1", 23), ALLOW_NO);
    assert_int_equal(verdict(&l, "fd12:3456::1", 8000), ALLOW_YES);
    assert_int_equal(verdict(&l, "fd12:3456::1", 8080), ALLOW_YES);
    assert_int_equal(verdict(&l, "fd12:3456::1", 8081), ALLOW_NO);
    assert_int_equal(verdict(&l, "fe80::1", 8000), ALLOW_NO);
    assert_int_equal(verdict(&l, "192.168.1.7", 1), ALLOW_YES);
    assert_int_equal(verdict(&l, "192.168.1.7", 65535), ALLOW_YES);
    /* A name with only address entries: resolve, then every address. */
    assert_int_equal(verdict(&l, "host.internal", 22), ALLOW_RESOLVE);
    /* No entry could allow it at all (no UDP entries). */
    assert_int_equal(verdict(&l, "udp:host.internal", 22), ALLOW_NO);
    allow_list_clear(&l);
}

static void test_resolved_addresses(void **state)
{
    static const char *const e[] = {"10.1.0.0/16:22", "[::1]:22", NULL};
    struct allow_list l = list_of(e);
    uint8_t a4[4], a6[16];

    inet_pton(AF_INET, "10.1.2.3", a4);
    assert_true(allow_check_addr(&l, ALLOW_TCP, AF_INET, a4, 22));
    assert_false(allow_check_addr(&l, ALLOW_UDP, AF_INET, a4, 22));
    assert_false(allow_check_addr(&l, ALLOW_TCP, AF_INET, a4, 2222));
    inet_pton(AF_INET, "10.9.2.3", a4);
    assert_false(allow_check_addr(&l, ALLOW_TCP, AF_INET, a4, 22));
    inet_pton(AF_INET6, "::1", a6);
    assert_true(allow_check_addr(&l, ALLOW_TCP, AF_INET6, a6, 22));
    /* An IPv4-mapped IPv6 address is judged as the IPv4 address. */
    inet_pton(AF_INET6, "::ffff:10.1.0.9", a6);
    assert_true(allow_check_addr(&l, ALLOW_TCP, AF_INET6, a6, 22));
    inet_pton(AF_INET6, "::ffff:127.0.0.1", a6);
    assert_false(allow_check_addr(&l, ALLOW_TCP, AF_INET6, a6, 22));
    allow_list_clear(&l);
}

static void test_name_entry_equal_names_only(void **state)
{
    static const char *const e[] = {"db.internal:5432", NULL};
    struct allow_list l = list_of(e);

    assert_int_equal(verdict(&l, "db.internal", 5432), ALLOW_YES);
    assert_int_equal(verdict(&l, "DB.Internal", 5432), ALLOW_YES);
    assert_int_equal(verdict(&l, "db.internal.evil.com", 5432), ALLOW_NO);
    assert_int_equal(verdict(&l, "xdb.internal", 5432), ALLOW_NO);
    /* The address it may resolve to is not allowed by a name entry. */
    assert_int_equal(verdict(&l, "10.0.0.8", 5432), ALLOW_NO);
    allow_list_clear(&l);
}

static void test_bad_targets(void **state)
{
    static const char *const bad[] = {"",     "udp:", "a b", "x;y",
                                      "[::1", "a..b", "-\n", NULL};
    struct allow_target t;
    char why[160];

    for (size_t i = 0; bad[i] != NULL; i++) {
        if (allow_target_parse(bad[i], 22, &t, why, sizeof(why)) == ERR_OK) {
            fail_msg("accepted bad target '%s'", bad[i]);
        }
    }
    assert_int_not_equal(
        allow_target_parse("127.0.0.1", 0, &t, why, sizeof(why)), ERR_OK);
    assert_int_not_equal(
        allow_target_parse("127.0.0.1", 65536, &t, why, sizeof(why)), ERR_OK);
}

static void test_list_limit(void **state)
{
    struct allow_list l = {0};
    char why[160];

    for (int i = 0; i < ALLOW_MAX_ENTRIES; i++) {
        assert_int_equal(allow_list_add(&l, "127.0.0.1:22", why, sizeof(why)),
                         ERR_OK);
    }
    assert_int_equal(allow_list_add(&l, "127.0.0.1:22", why, sizeof(why)),
                     ERR_TOO_LONG);
    allow_list_clear(&l);
    assert_int_equal(l.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry_parse_ok),
        cmocka_unit_test(test_entry_parse_bad),
        cmocka_unit_test(test_defaults_loopback_only),
        cmocka_unit_test(test_tcp_entry_does_not_allow_udp),
        cmocka_unit_test(test_cidr_and_ports),
        cmocka_unit_test(test_resolved_addresses),
        cmocka_unit_test(test_name_entry_equal_names_only),
        cmocka_unit_test(test_bad_targets),
        cmocka_unit_test(test_list_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
