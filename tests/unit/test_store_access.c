/*
 * Unit tests of the store's access nouns (access.h) through the interface:
 * site roles (add, get, list, delete, inheritance through groups and
 * ancestor sites), API tokens (add, get, find, list, update, delete) and
 * revoked session tokens, with their refusals: duplicates, missing rows,
 * malformed input, and the cascades a user deletion implies.
 *
 * Like the other store suites, the store is a fresh SQLite file per test or
 * the one PORTCULLIS_TEST_STORE names (store_fx.h).
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
#include "common/util.h"
#include "store/access.h"
#include "store/store.h"

#include "store_fx.h"

#define NO_SUCH_ID "0b6a2b9e-7c55-4a0e-9d1e-0b0b0b0b0b0b"

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_store_access.XXXXXX");
}

static struct store *S(void **state)
{
    return ((struct fx *)*state)->st;
}

static void upper(char *s)
{
    for (; *s != '\0'; s++) {
        if (*s >= 'a' && *s <= 'f') {
            *s = (char)(*s - 'a' + 'A');
        }
    }
}

static int role_add(struct store *st, const char *site_id, const char *user_id,
                    const char *group_id, int role, struct store_site_role *out)
{
    struct store_site_role r;
    int ret;

    memset(&r, 0, sizeof(r));
    snprintf(r.site_id, sizeof(r.site_id), "%s", site_id);
    snprintf(r.user_id, sizeof(r.user_id), "%s", user_id ? user_id : "");
    snprintf(r.group_id, sizeof(r.group_id), "%s", group_id ? group_id : "");
    r.role = role;
    ret = store_site_role_add(st, &r);
    if (out != NULL) {
        *out = r;
    }
    return ret;
}

static void test_site_roles(void **state)
{
    struct store *st = S(state);
    struct store_user alice, bob;
    struct store_group ops;
    struct store_site root, a, ab;
    struct store_site_role r1, r2, got, *list = NULL;
    char id[STORE_ID_MAX + 1];
    unsigned mask = 0;
    size_t n = 0;

    assert_int_equal(store_user_add(st, "alice", "", false, &alice), ERR_OK);
    assert_int_equal(store_user_add(st, "bob", "", false, &bob), ERR_OK);
    assert_int_equal(store_group_add(st, "ops", &ops), ERR_OK);
    assert_int_equal(store_group_member_add(st, ops.id, alice.id), ERR_OK);
    assert_int_equal(store_site_get(st, "/root", &root), ERR_OK);
    assert_int_equal(store_site_add(st, "/root/a/b", &ab), ERR_OK);
    assert_int_equal(store_site_get(st, "/root/a", &a), ERR_OK);

    /* create, and the names filled in */
    assert_int_equal(role_add(st, a.id, alice.id, NULL, SITE_ROLE_CONFIG, &r1),
                     ERR_OK);
    assert_true(util_is_uuid(r1.id));
    assert_string_equal(r1.site_path, "/root/a");
    assert_string_equal(r1.grantee_name, "alice");
    assert_int_equal(role_add(st, root.id, NULL, ops.id, SITE_ROLE_USER, &r2),
                     ERR_OK);
    assert_string_equal(r2.grantee_name, "ops");

    /* get, by either case of the ID */
    snprintf(id, sizeof(id), "%s", r1.id);
    upper(id);
    assert_int_equal(store_site_role_get(st, id, &got), ERR_OK);
    assert_string_equal(got.id, r1.id);
    assert_string_equal(got.user_id, alice.id);
    assert_string_equal(got.group_id, "");
    assert_int_equal(got.role, SITE_ROLE_CONFIG);

    /* list: by site path */
    assert_int_equal(store_site_role_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].site_path, "/root");
    assert_string_equal(list[1].site_path, "/root/a");
    store_list_free(list);

    /* inheritance: alice holds config on /root/a (and so on /root/a/b) and
     * user everywhere through ops; bob holds nothing */
    assert_int_equal(store_site_role_mask(st, alice.id, ab.id, &mask), ERR_OK);
    assert_int_equal(mask, SITE_ROLE_BIT(SITE_ROLE_CONFIG) |
                               SITE_ROLE_BIT(SITE_ROLE_USER));
    assert_int_equal(store_site_role_mask(st, alice.id, NULL, &mask), ERR_OK);
    assert_int_equal(mask, SITE_ROLE_BIT(SITE_ROLE_USER));
    assert_int_equal(store_site_role_mask_any(st, alice.id, &mask), ERR_OK);
    assert_int_equal(mask, SITE_ROLE_BIT(SITE_ROLE_CONFIG) |
                               SITE_ROLE_BIT(SITE_ROLE_USER));
    assert_int_equal(store_site_role_mask(st, bob.id, ab.id, &mask), ERR_OK);
    assert_int_equal(mask, 0);

    /* refusals: a duplicate, missing rows, malformed input */
    assert_int_equal(role_add(st, a.id, alice.id, NULL, SITE_ROLE_CONFIG, NULL),
                     ERR_EXISTS);
    assert_int_equal(role_add(st, a.id, alice.id, NULL, SITE_ROLE_ADMIN, NULL),
                     ERR_OK); /* another role on the same site is not */
    assert_int_equal(
        role_add(st, NO_SUCH_ID, alice.id, NULL, SITE_ROLE_USER, NULL),
        ERR_NOT_FOUND);
    assert_int_equal(role_add(st, a.id, NO_SUCH_ID, NULL, SITE_ROLE_USER, NULL),
                     ERR_NOT_FOUND);
    assert_int_equal(role_add(st, a.id, NULL, NO_SUCH_ID, SITE_ROLE_USER, NULL),
                     ERR_NOT_FOUND);
    assert_int_equal(role_add(st, a.id, alice.id, ops.id, SITE_ROLE_USER, NULL),
                     ERR_INVALID);
    assert_int_equal(role_add(st, a.id, NULL, NULL, SITE_ROLE_USER, NULL),
                     ERR_INVALID);
    assert_int_equal(role_add(st, a.id, alice.id, NULL, 0, NULL), ERR_INVALID);
    assert_int_equal(role_add(st, a.id, alice.id, NULL, 5, NULL), ERR_INVALID);
    assert_int_equal(role_add(st, "/root/a", alice.id, NULL, 1, NULL),
                     ERR_INVALID);
    assert_int_equal(store_site_role_get(st, NO_SUCH_ID, &got), ERR_NOT_FOUND);
    assert_int_equal(store_site_role_get(st, "nope", &got), ERR_NOT_FOUND);

    /* delete, and again */
    assert_int_equal(store_site_role_delete(st, r1.id), ERR_OK);
    assert_int_equal(store_site_role_delete(st, r1.id), ERR_NOT_FOUND);
    assert_int_equal(store_site_role_get(st, r1.id, &got), ERR_NOT_FOUND);
    assert_int_equal(store_site_role_delete(st, "nope"), ERR_NOT_FOUND);

    /* a user's roles go with the user, a group's with the group */
    assert_int_equal(store_user_delete(st, "alice"), ERR_OK);
    assert_int_equal(store_group_delete(st, "ops"), ERR_OK);
    assert_int_equal(store_site_role_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(list);
}

static void token_make(struct store_api_token *t, const char *user_id,
                       const char *jti, const char *desc)
{
    memset(t, 0, sizeof(*t));
    util_uuid4(t->id);
    snprintf(t->user_id, sizeof(t->user_id), "%s", user_id);
    snprintf(t->jti_hash, sizeof(t->jti_hash), "%s", jti);
    snprintf(t->description, sizeof(t->description), "%s", desc);
    t->enabled = true;
    t->expires_at = util_now() + 3600;
}

static void test_api_tokens(void **state)
{
    struct store *st = S(state);
    struct store_user alice, bob;
    struct store_api_token t1, t2, t3, got, *list = NULL;
    char id[STORE_ID_MAX + 1];
    size_t n = 0;

    assert_int_equal(store_user_add(st, "alice", "", false, &alice), ERR_OK);
    assert_int_equal(store_user_add(st, "bob", "", false, &bob), ERR_OK);

    /* create, get (either case), find by the jti hash */
    token_make(&t1, alice.id, "aa11", "deploy");
    snprintf(t1.filter_cidrs, sizeof(t1.filter_cidrs), "10.0.0.0/8");
    snprintf(t1.filter_paths, sizeof(t1.filter_paths), "/api/v1/assets");
    t1.created_at = 1000;
    assert_int_equal(store_api_token_add(st, &t1), ERR_OK);
    snprintf(id, sizeof(id), "%s", t1.id);
    upper(id);
    assert_int_equal(store_api_token_get(st, id, &got), ERR_OK);
    assert_string_equal(got.id, t1.id);
    assert_string_equal(got.user_name, "alice");
    assert_string_equal(got.description, "deploy");
    assert_string_equal(got.filter_cidrs, "10.0.0.0/8");
    assert_string_equal(got.filter_paths, "/api/v1/assets");
    assert_true(got.enabled);
    assert_true(got.expires_at == t1.expires_at);
    assert_true(got.created_at == 1000);
    assert_int_equal(store_api_token_find(st, "aa11", &got), ERR_OK);
    assert_string_equal(got.id, t1.id);

    /* list: every user's, newest first, or one user's */
    token_make(&t2, bob.id, "bb22", "ci");
    t2.created_at = 2000;
    assert_int_equal(store_api_token_add(st, &t2), ERR_OK);
    assert_int_equal(store_api_token_list(st, NULL, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, t2.id);
    assert_string_equal(list[1].id, t1.id);
    store_list_free(list);
    assert_int_equal(store_api_token_list(st, alice.id, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, t1.id);
    store_list_free(list);
    assert_int_equal(store_api_token_list(st, NO_SUCH_ID, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(list);

    /* update: description, filters, enabled; nothing else */
    got = t1;
    snprintf(got.description, sizeof(got.description), "deploy (old)");
    got.filter_cidrs[0] = '\0';
    got.enabled = false;
    snprintf(got.jti_hash, sizeof(got.jti_hash), "changed");
    assert_int_equal(store_api_token_update(st, &got), ERR_OK);
    assert_int_equal(store_api_token_get(st, t1.id, &got), ERR_OK);
    assert_string_equal(got.description, "deploy (old)");
    assert_string_equal(got.filter_cidrs, "");
    assert_false(got.enabled);
    assert_string_equal(got.jti_hash, "aa11");

    /* refusals */
    assert_int_equal(store_api_token_add(st, &t1), ERR_EXISTS); /* same ID */
    token_make(&t3, alice.id, "aa11", "same jti");
    assert_int_equal(store_api_token_add(st, &t3), ERR_EXISTS);
    token_make(&t3, NO_SUCH_ID, "cc33", "no user");
    assert_int_equal(store_api_token_add(st, &t3), ERR_NOT_FOUND);
    token_make(&t3, alice.id, "", "no jti");
    assert_int_equal(store_api_token_add(st, &t3), ERR_INVALID);
    token_make(&t3, alice.id, "dd44", "no expiry");
    t3.expires_at = 0;
    assert_int_equal(store_api_token_add(st, &t3), ERR_INVALID);
    token_make(&t3, alice.id, "dd44", "bad id");
    snprintf(t3.id, sizeof(t3.id), "not-a-uuid");
    assert_int_equal(store_api_token_add(st, &t3), ERR_INVALID);
    token_make(&t3, alice.id, "dd44", "ctl\n");
    assert_int_equal(store_api_token_add(st, &t3), ERR_INVALID);
    token_make(&t3, alice.id, "dd44", "missing");
    assert_int_equal(store_api_token_update(st, &t3), ERR_NOT_FOUND);
    assert_int_equal(store_api_token_get(st, NO_SUCH_ID, &got), ERR_NOT_FOUND);
    assert_int_equal(store_api_token_find(st, "zz", &got), ERR_NOT_FOUND);
    assert_int_equal(store_api_token_find(st, "", &got), ERR_NOT_FOUND);

    /* delete, and again; a user's tokens go with the user */
    assert_int_equal(store_api_token_delete(st, t1.id), ERR_OK);
    assert_int_equal(store_api_token_delete(st, t1.id), ERR_NOT_FOUND);
    assert_int_equal(store_api_token_delete(st, "nope"), ERR_NOT_FOUND);
    assert_int_equal(store_user_delete(st, "bob"), ERR_OK);
    assert_int_equal(store_api_token_get(st, t2.id, &got), ERR_NOT_FOUND);
    assert_int_equal(store_api_token_list(st, NULL, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(list);
}

static void test_jwt_revoke(void **state)
{
    struct store *st = S(state);
    bool revoked = true;

    assert_int_equal(store_jwt_is_revoked(st, "j1", &revoked), ERR_OK);
    assert_false(revoked);
    assert_int_equal(store_jwt_revoke(st, "j1", util_now() + 600), ERR_OK);
    /* revoked twice is revoked, not a failure */
    assert_int_equal(store_jwt_revoke(st, "j1", util_now() + 600), ERR_OK);
    assert_int_equal(store_jwt_is_revoked(st, "j1", &revoked), ERR_OK);
    assert_true(revoked);
    assert_int_equal(store_jwt_is_revoked(st, "j2", &revoked), ERR_OK);
    assert_false(revoked);

    /* an expired entry is forgotten by the next revocation */
    assert_int_equal(store_jwt_revoke(st, "old", util_now() - 10), ERR_OK);
    assert_int_equal(store_jwt_is_revoked(st, "old", &revoked), ERR_OK);
    assert_true(revoked);
    assert_int_equal(store_jwt_revoke(st, "j3", util_now() + 600), ERR_OK);
    assert_int_equal(store_jwt_is_revoked(st, "old", &revoked), ERR_OK);
    assert_false(revoked);
    assert_int_equal(store_jwt_is_revoked(st, "j1", &revoked), ERR_OK);
    assert_true(revoked);

    assert_int_equal(store_jwt_revoke(st, "", util_now()), ERR_INVALID);
    assert_int_equal(store_jwt_revoke(st, NULL, util_now()), ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_site_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jwt_revoke, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
