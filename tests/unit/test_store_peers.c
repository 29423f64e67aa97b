/*
 * Unit tests for the peer nodes in the store (src/store/store_peers.c),
 * through the interface (store_fx.h: PORTCULLIS_TEST_STORE picks the
 * store).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "store/peers.h"
#include "store/store.h"

#include "store_fx.h"

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_store_peers.XXXXXX");
}

static struct store *S(void **state)
{
    return ((struct fx *)*state)->st;
}

static void peer(struct store_peer *p, const char *name, const char *via)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->host, sizeof(p->host), "10.20.0.5");
    p->port = 3128;
    memcpy(p->token_sealed, "sealed-bytes", 12);
    p->token_sealed_len = 12;
    snprintf(p->tls_fingerprint, sizeof(p->tls_fingerprint), "SHA256:AB:CD");
    snprintf(p->via, sizeof(p->via), "%s", via);
}

static void test_peers(void **state)
{
    struct store *st = S(state);
    struct store_peer a, b, got, *list = NULL;
    struct store_asset as;
    size_t n = 0;
    int users = -1;

    peer(&a, "plant-7", "");
    assert_int_equal(store_peer_add(st, &a), ERR_OK);
    assert_true(a.id[0] != '\0' && a.created_at > 0);
    peer(&b, "plant-7", "");
    assert_int_equal(store_peer_add(st, &b), ERR_EXISTS);
    peer(&b, "pci-zone", "peer:plant-7");
    b.plain_http = true;
    b.tls_fingerprint[0] = '\0';
    assert_int_equal(store_peer_add(st, &b), ERR_OK);

    /* by name and by ID, every field back */
    assert_int_equal(store_peer_get(st, "pci-zone", &got), ERR_OK);
    assert_string_equal(got.id, b.id);
    assert_string_equal(got.host, "10.20.0.5");
    assert_int_equal(got.port, 3128);
    assert_int_equal(got.token_sealed_len, 12);
    assert_memory_equal(got.token_sealed, "sealed-bytes", 12);
    assert_true(got.plain_http);
    assert_string_equal(got.tls_fingerprint, "");
    assert_string_equal(got.via, "peer:plant-7");
    assert_int_equal(store_peer_get(st, a.id, &got), ERR_OK);
    assert_string_equal(got.name, "plant-7");
    assert_int_equal(store_peer_get(st, "nope", &got), ERR_NOT_FOUND);
    assert_int_equal(store_peer_get(st, "", &got), ERR_NOT_FOUND);

    assert_int_equal(store_peer_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "pci-zone");
    assert_string_equal(list[1].name, "plant-7");
    store_peer_list_free(list, n);

    /* update: every field; a name taken by another is refused */
    got = b;
    snprintf(got.host, sizeof(got.host), "segment.example");
    got.port = 8443;
    got.plain_http = false;
    snprintf(got.tls_fingerprint, sizeof(got.tls_fingerprint), "SHA256:EF");
    assert_int_equal(store_peer_update(st, &got), ERR_OK);
    assert_int_equal(store_peer_get(st, b.id, &got), ERR_OK);
    assert_string_equal(got.host, "segment.example");
    assert_int_equal(got.port, 8443);
    assert_false(got.plain_http);
    snprintf(got.name, sizeof(got.name), "plant-7");
    assert_int_equal(store_peer_update(st, &got), ERR_EXISTS);

    /* refusals */
    peer(&got, "x", "");
    got.port = 0;
    assert_int_equal(store_peer_add(st, &got), ERR_INVALID);
    peer(&got, "x", "");
    got.token_sealed_len = 0;
    assert_int_equal(store_peer_add(st, &got), ERR_INVALID);
    peer(&got, "", "");
    assert_int_not_equal(store_peer_add(st, &got), ERR_OK);

    /* routes name peers; a peer in use is not deleted */
    assert_true(store_route_valid("peer:plant-7"));
    assert_false(store_route_valid("peer:"));
    assert_false(store_route_valid("peer:a b"));
    memset(&as, 0, sizeof(as));
    snprintf(as.name, sizeof(as.name), "behind");
    snprintf(as.protocol, sizeof(as.protocol), "ssh");
    snprintf(as.host, sizeof(as.host), "10.20.3.4");
    as.port = 22;
    snprintf(as.route, sizeof(as.route), "peer:pci-zone");
    assert_int_equal(store_asset_add(st, &as), ERR_OK);
    assert_int_equal(store_peer_delete(st, "plant-7", &users), ERR_DENIED);
    assert_int_equal(users, 1); /* pci-zone's via */
    assert_int_equal(store_peer_delete(st, "pci-zone", &users), ERR_DENIED);
    assert_int_equal(users, 1); /* the asset */
    assert_int_equal(store_asset_delete(st, as.id), ERR_OK);
    assert_int_equal(store_peer_delete(st, "pci-zone", &users), ERR_OK);
    assert_int_equal(store_peer_delete(st, "plant-7", NULL), ERR_OK);
    assert_int_equal(store_peer_delete(st, "plant-7", NULL), ERR_NOT_FOUND);
    assert_int_equal(store_peer_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_peer_list_free(list, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_peers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
