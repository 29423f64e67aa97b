/*
 * Unit tests of the store (src/store/) through its interface (store.h), on
 * a real SQLite file in a fresh temporary directory per test, or on the
 * store PORTCULLIS_TEST_STORE names (store_fx.h): every function's happy path
 * and its refusals, the cascades a user deletion implies, role inheritance
 * through groups and ancestor sites, the TOTP replay guard, host-key TOFU, the
 * session report, migrations on reopen, and two processes writing the same
 * file at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/err.h"
#include "common/util.h"
#include "store/access.h"
#include "store/store.h"
#include "store/store_internal.h"

#include "store_fx.h"

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_store.XXXXXX");
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

static void add_user(struct store *st, const char *name, struct store_user *u)
{
    assert_int_equal(store_user_add(st, name, "", false, u), ERR_OK);
}

static void add_asset(struct store *st, const char *site, const char *name,
                      struct store_asset *a)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->site_path, sizeof(a->site_path), "%s", site);
    snprintf(a->protocol, sizeof(a->protocol), "ssh");
    snprintf(a->host, sizeof(a->host), "10.0.0.1");
    a->port = 22;
    assert_int_equal(store_asset_add(st, a), ERR_OK);
}

/* --- names ---------------------------------------------------------------- */

static void test_site_normalize(void **state)
{
    static const struct {
        const char *in, *out;
        int r;
    } cases[] = {
        {"DevOps", "/root/DevOps", ERR_OK},
        {"/DevOps", "/root/DevOps", ERR_OK},
        {"/root/DevOps", "/root/DevOps", ERR_OK},
        {"root/DevOps/Linux/", "/root/DevOps/Linux", ERR_OK},
        {"root", "/root", ERR_OK},
        {"/root", "/root", ERR_OK},
        {"/root/", "/root", ERR_OK},
        {"", "/root", ERR_OK},
        {NULL, "/root", ERR_OK},
        {"/rootx", "/root/rootx", ERR_OK},
        {"/a/root", "/root/a/root", ERR_OK},
        {"/root/a//b", "", ERR_INVALID},
        {"//", "", ERR_INVALID},
        {"/root/../etc", "", ERR_INVALID},
        {"..", "", ERR_INVALID},
        {"a/./b", "", ERR_INVALID},
        {"a?b", "", ERR_INVALID},
        {"a#b", "", ERR_INVALID},
        {"a\nb", "", ERR_INVALID},
        {"/root/efaecd97-f9d4-4ac4-b35b-b2d71491354d", "", ERR_INVALID},
    };
    char out[STORE_PATH_MAX + 1], big[STORE_PATH_MAX + 8];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = store_site_normalize(cases[i].in, out, sizeof(out));

        if (r != cases[i].r || strcmp(out, cases[i].out) != 0) {
            fail_msg("normalize(\"%s\") = %d \"%s\", want %d \"%s\"",
                     cases[i].in ? cases[i].in : "(null)", r, out, cases[i].r,
                     cases[i].out);
        }
    }
    /* "/root/" + 506 characters is exactly STORE_PATH_MAX. */
    memset(big, 'x', sizeof(big));
    big[STORE_PATH_MAX - 6] = '\0';
    assert_int_equal(store_site_normalize(big, out, sizeof(out)), ERR_OK);
    assert_int_equal(strlen(out), STORE_PATH_MAX);
    big[STORE_PATH_MAX - 6] = 'x';
    big[STORE_PATH_MAX - 5] = '\0';
    assert_int_equal(store_site_normalize(big, out, sizeof(out)), ERR_TOO_LONG);
    assert_int_equal(store_site_normalize("a", out, 4), ERR_TOO_LONG);
}

static void test_role_names(void **state)
{
    (void)state;
    assert_string_equal(store_role_str(ROLE_VIEWER), "viewer");
    assert_string_equal(store_role_str(ROLE_OWNER), "owner");
    assert_string_equal(store_role_str(42), "none");
    assert_int_equal(store_role_parse("editor"), ROLE_EDITOR);
    assert_int_equal(store_role_parse("admin"), -1);
    assert_int_equal(store_role_parse(NULL), -1);
    assert_string_equal(store_native_str(NATIVE_RECORD), "record");
    assert_int_equal(store_native_parse("allow"), NATIVE_ALLOW);
    assert_int_equal(store_native_parse("Allow"), -1);
}

static void test_name_index_and_grantee(void **state)
{
    static const char *const names[] = {"zero", "one", "two"};
    static const char id[] = "0AF3D2C1-0000-4000-8000-00000000000A";
    struct store_grantee g;

    (void)state;
    assert_int_equal(store_name_index(names, 0, 2, "two"), 2);
    assert_int_equal(store_name_index(names, 1, 2, "zero"), -1); /* < lo */
    assert_int_equal(store_name_index(names, 0, 1, "two"), -1);  /* > hi */
    assert_int_equal(store_name_index(names, 0, 2, "Two"), -1);
    assert_int_equal(store_name_index(names, 0, 2, ""), -1);
    assert_int_equal(store_name_index(names, 0, 2, NULL), -1);
    assert_string_equal(site_role_str(SITE_ROLE_CONFIG),
                        "configuration-manager");
    assert_string_equal(site_role_str(9), "none");
    assert_int_equal(site_role_parse("administrator"), SITE_ROLE_ADMIN);
    assert_int_equal(site_role_parse("none"), -1); /* not grantable */
    assert_int_equal(site_role_parse(NULL), -1);

    /* exactly one of a user and a group, as a lower-case ID */
    assert_true(store_grantee_norm(&g, id, ""));
    assert_string_equal(g.user_id, "0af3d2c1-0000-4000-8000-00000000000a");
    assert_null(g.group_id);
    assert_true(store_grantee_norm(&g, NULL, id));
    assert_null(g.user_id);
    assert_string_equal(g.group_id, "0af3d2c1-0000-4000-8000-00000000000a");
    assert_false(store_grantee_norm(&g, id, id));
    assert_false(store_grantee_norm(&g, "", ""));
    assert_false(store_grantee_norm(&g, NULL, NULL));
    assert_false(store_grantee_norm(&g, "alice", ""));
    assert_false(store_grantee_norm(&g, "", "0af3d2c1-0000-4000-8000"));
    assert_null(g.user_id);
    assert_null(g.group_id);
}

/* Users, groups and profiles are found by name or by ID (either case),
 * never by another noun's ID or a near name (store_get_named). */
static void test_get_by_name_or_id(void **state)
{
    struct store *st = S(state);
    struct store_user u, ugot;
    struct store_group g, ggot;
    struct store_profile p, pgot;
    char id[STORE_ID_MAX + 1];
    static const char *const none[] = {"", "nope", "Ops",
                                       "00000000-0000-4000-8000-000000000000"};

    add_user(st, "ops", &u); /* the same name in three nouns */
    assert_int_equal(store_group_add(st, "ops", &g), ERR_OK);
    memset(&p, 0, sizeof(p));
    snprintf(p.name, sizeof(p.name), "ops");
    p.native = NATIVE_ALLOW;
    assert_int_equal(store_profile_add(st, &p), ERR_OK);

    assert_int_equal(store_user_get(st, "ops", &ugot), ERR_OK);
    assert_string_equal(ugot.id, u.id);
    assert_int_equal(store_group_get(st, "ops", &ggot), ERR_OK);
    assert_string_equal(ggot.id, g.id);
    assert_int_equal(store_profile_get(st, "ops", &pgot), ERR_OK);
    assert_string_equal(pgot.id, p.id);
    snprintf(id, sizeof(id), "%s", u.id);
    upper(id);
    assert_int_equal(store_user_get(st, id, &ugot), ERR_OK);
    assert_string_equal(ugot.name, "ops");
    snprintf(id, sizeof(id), "%s", g.id);
    upper(id);
    assert_int_equal(store_group_get(st, id, &ggot), ERR_OK);
    assert_string_equal(ggot.name, "ops");
    snprintf(id, sizeof(id), "%s", p.id);
    upper(id);
    assert_int_equal(store_profile_get(st, id, &pgot), ERR_OK);
    assert_string_equal(pgot.name, "ops");

    /* another noun's ID; a miss leaves out empty */
    assert_int_equal(store_user_get(st, g.id, &ugot), ERR_NOT_FOUND);
    assert_string_equal(ugot.id, "");
    assert_int_equal(store_group_get(st, p.id, &ggot), ERR_NOT_FOUND);
    assert_string_equal(ggot.id, "");
    assert_int_equal(store_profile_get(st, u.id, &pgot), ERR_NOT_FOUND);
    assert_string_equal(pgot.id, "");
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        assert_int_equal(store_user_get(st, none[i], &ugot), ERR_NOT_FOUND);
        assert_int_equal(store_group_get(st, none[i], &ggot), ERR_NOT_FOUND);
        assert_int_equal(store_profile_get(st, none[i], &pgot), ERR_NOT_FOUND);
    }
    assert_int_equal(store_user_get(st, NULL, &ugot), ERR_NOT_FOUND);
    assert_int_equal(store_group_get(st, NULL, &ggot), ERR_NOT_FOUND);
    assert_int_equal(store_profile_get(st, NULL, &pgot), ERR_NOT_FOUND);
    assert_int_equal(store_user_get(st, "ops", NULL), ERR_INVALID);
}

/* --- lifecycle ------------------------------------------------------------ */

static void test_open_migrate(void **state)
{
    struct fx *f = *state;
    struct store_site *sites = NULL;
    struct stat sb;
    sqlite3 *db = NULL;
    size_t n = 0;
    int v = 0;

    assert_int_equal(store_schema_version(f->st, &v), ERR_OK);
    assert_int_equal(v, (int)store_migrations_count);
    if (f->file) {
        assert_int_equal(stat(f->path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
    }
    FX_NEED_SHARED(f);

    /* Reopening applies nothing twice: one /root, same version. */
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(f->path, &f->st), ERR_OK);
    assert_int_equal(store_schema_version(f->st, &v), ERR_OK);
    assert_int_equal(v, (int)store_migrations_count);
    assert_int_equal(store_site_list(f->st, &sites, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(sites[0].path, "/root");
    assert_string_equal(sites[0].parent_id, "");
    assert_true(util_is_uuid(sites[0].id));
    store_list_free(sites);
    FX_NEED_FILE(f);

    /* A file written by a newer program is refused, not damaged. */
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO schema_version VALUES (999, 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(store_open(f->path, &f->st), ERR_STORE);
    assert_null(f->st);
}

static void test_open_bad_path(void **state)
{
    struct store *st = NULL;

    (void)state;
    assert_int_equal(store_open("/nonexistent-dir/x/y.db", &st), ERR_IO);
    assert_null(st);
    assert_int_equal(store_open("", &st), ERR_INVALID);
    store_close(NULL);
}

/* --- users ---------------------------------------------------------------- */

static void test_users(void **state)
{
    struct store *st = S(state);
    struct store_user u, v, *list = NULL;
    char id[STORE_ID_MAX + 1], longname[STORE_NAME_MAX + 2];
    size_t n = 0;

    assert_int_equal(store_user_add(st, "alice", "$argon2id$x", false, &u),
                     ERR_OK);
    assert_true(util_is_uuid(u.id));
    assert_string_equal(u.name, "alice");
    assert_true(u.created_at > 0);
    assert_int_equal(store_user_add(st, "bob@contoso.com", NULL, true, NULL),
                     ERR_OK);
    assert_int_equal(store_user_add(st, "alice", NULL, false, NULL),
                     ERR_EXISTS);

    assert_int_equal(store_user_get(st, "alice", &v), ERR_OK);
    assert_string_equal(v.id, u.id);
    assert_string_equal(v.password_hash, "$argon2id$x");
    assert_false(v.disabled);
    assert_false(v.totp_enabled);
    snprintf(id, sizeof(id), "%s", u.id);
    upper(id);
    assert_int_equal(store_user_get(st, id, &v), ERR_OK);
    assert_string_equal(v.name, "alice");
    assert_int_equal(store_user_get(st, "bob@contoso.com", &v), ERR_OK);
    assert_true(v.disabled);
    assert_int_equal(store_user_get(st, "carol", &v), ERR_NOT_FOUND);
    assert_int_equal(
        store_user_get(st, "00000000-0000-4000-8000-000000000000", &v),
        ERR_NOT_FOUND);

    /* Refusals: names that lookups or logins could not tell apart. */
    assert_int_equal(store_user_add(st, "", NULL, false, NULL), ERR_INVALID);
    assert_int_equal(store_user_add(st, NULL, NULL, false, NULL), ERR_INVALID);
    assert_int_equal(store_user_add(st, "a/b", NULL, false, NULL), ERR_INVALID);
    assert_int_equal(store_user_add(st, "a#b", NULL, false, NULL), ERR_INVALID);
    assert_int_equal(store_user_add(st, "a\tb", NULL, false, NULL),
                     ERR_INVALID);
    assert_int_equal(store_user_add(st, "efaecd97-f9d4-4ac4-b35b-b2d71491354d",
                                    NULL, false, NULL),
                     ERR_INVALID);
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(store_user_add(st, longname, NULL, false, NULL),
                     ERR_TOO_LONG);
    longname[STORE_NAME_MAX] = '\0';
    assert_int_equal(store_user_add(st, longname, NULL, false, NULL), ERR_OK);

    assert_int_equal(store_user_set_password(st, u.id, "$argon2id$y"), ERR_OK);
    assert_int_equal(store_user_set_disabled(st, u.id, true), ERR_OK);
    assert_int_equal(store_user_get(st, u.id, &v), ERR_OK);
    assert_string_equal(v.password_hash, "$argon2id$y");
    assert_true(v.disabled);
    assert_int_equal(store_user_set_password(st, "nobody", "x"), ERR_NOT_FOUND);
    /* a rehash keeps the NT hash and changes only the hash it remade */
    {
        const uint8_t nt[4] = {1, 2, 3, 4};
        uint8_t got[STORE_SEALED_SMALL_MAX];
        size_t gotlen = 0;

        assert_int_equal(store_user_nt_set(st, u.id, nt, sizeof(nt)), ERR_OK);
        assert_int_equal(
            store_user_rehash(st, u.id, "$argon2id$other", "$argon2id$z"),
            ERR_NOT_FOUND);
        assert_int_equal(
            store_user_rehash(st, u.id, "$argon2id$y", "$argon2id$z"), ERR_OK);
        assert_int_equal(store_user_get(st, u.id, &v), ERR_OK);
        assert_string_equal(v.password_hash, "$argon2id$z");
        assert_int_equal(store_user_nt_get(st, u.id, got, sizeof(got), &gotlen),
                         ERR_OK);
        assert_int_equal(gotlen, sizeof(nt));
        assert_int_equal(store_user_rehash(st, "nobody", "$argon2id$z", "x"),
                         ERR_NOT_FOUND);
    }
    assert_int_equal(store_user_set_disabled(
                         st, "00000000-0000-4000-8000-000000000000", true),
                     ERR_NOT_FOUND);

    assert_int_equal(store_user_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "alice");
    assert_string_equal(list[1].name, "bob@contoso.com");
    store_user_list_free(list, n);

    assert_int_equal(store_user_delete(st, "bob@contoso.com"), ERR_OK);
    assert_int_equal(store_user_delete(st, "bob@contoso.com"), ERR_NOT_FOUND);
    assert_int_equal(store_user_delete(st, u.id), ERR_OK);
    assert_int_equal(store_user_get(st, "alice", &v), ERR_NOT_FOUND);
    assert_int_equal(store_user_delete(st, longname), ERR_OK);
    assert_int_equal(store_user_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    assert_null(list);
    store_user_list_free(list, n);
}

static void test_totp(void **state)
{
    struct store *st = S(state);
    struct store_user u, v;
    uint8_t seed[STORE_SEALED_SMALL_MAX + 1];

    memset(seed, 0xa5, sizeof(seed));
    add_user(st, "alice", &u);
    assert_int_equal(store_user_set_totp(st, u.id, seed, 40), ERR_OK);
    assert_int_equal(store_user_get(st, u.id, &v), ERR_OK);
    assert_true(v.totp_enabled);
    assert_int_equal(v.totp_sealed_len, 40);
    assert_memory_equal(v.totp_sealed, seed, 40);
    assert_int_equal(v.totp_last_step, 0);

    assert_int_equal(store_user_totp_use(st, u.id, 1000), ERR_OK);
    assert_int_equal(store_user_totp_use(st, u.id, 1000), ERR_REPLAY);
    assert_int_equal(store_user_totp_use(st, u.id, 999), ERR_REPLAY);
    assert_int_equal(store_user_totp_use(st, u.id, 1001), ERR_OK);
    assert_int_equal(store_user_get(st, u.id, &v), ERR_OK);
    assert_int_equal(v.totp_last_step, 1001);
    assert_int_equal(store_user_totp_use(st, "nobody", 5000), ERR_NOT_FOUND);
    assert_int_equal(store_user_totp_use(st, u.id, 0), ERR_INVALID);

    /* A new seed starts a new guard. */
    assert_int_equal(store_user_set_totp(st, u.id, seed, 41), ERR_OK);
    assert_int_equal(store_user_totp_use(st, u.id, 500), ERR_OK);

    assert_int_equal(store_user_set_totp(st, u.id, seed, sizeof(seed)),
                     ERR_TOO_LONG);
    assert_int_equal(store_user_set_totp(st, u.id, seed, 0), ERR_INVALID);
    assert_int_equal(store_user_set_totp(st, u.id, NULL, 0), ERR_OK);
    assert_int_equal(store_user_get(st, u.id, &v), ERR_OK);
    assert_false(v.totp_enabled);
    assert_int_equal(v.totp_sealed_len, 0);
    assert_int_equal(v.totp_last_step, 0);
    assert_int_equal(store_user_set_totp(st, "nobody", NULL, 0), ERR_NOT_FOUND);
}

static void test_keys(void **state)
{
    struct store *st = S(state);
    struct store_user u, w;
    struct store_user_key k, *list = NULL;
    size_t n = 0;

    add_user(st, "alice", &u);
    add_user(st, "bob", &w);
    assert_int_equal(store_user_key_add(st, u.id, "ssh-ed25519", "AAAAC3Nz",
                                        "SHA256:aaa", "laptop", &k),
                     ERR_OK);
    assert_true(util_is_uuid(k.id));
    assert_string_equal(k.user_id, u.id);
    assert_string_equal(k.base64, "AAAAC3Nz");
    store_user_key_clear(&k);
    assert_null(k.base64);
    assert_int_equal(store_user_key_add(st, u.id, "ssh-rsa", "AAAAB3Nz",
                                        "SHA256:bbb", NULL, NULL),
                     ERR_OK);
    assert_int_equal(store_user_key_add(st, u.id, "ssh-ed25519", "AAAAC3Nz",
                                        "SHA256:aaa", "again", NULL),
                     ERR_EXISTS);
    /* Another user may register the same key. */
    assert_int_equal(store_user_key_add(st, w.id, "ssh-ed25519", "AAAAC3Nz",
                                        "SHA256:aaa", "", NULL),
                     ERR_OK);
    assert_int_equal(store_user_key_add(st,
                                        "00000000-0000-4000-8000-"
                                        "000000000000",
                                        "ssh-ed25519", "AAAA", "SHA256:c", NULL,
                                        NULL),
                     ERR_NOT_FOUND);
    assert_int_equal(
        store_user_key_add(st, u.id, "ssh-ed25519", "", "SHA256:c", NULL, NULL),
        ERR_INVALID);
    assert_int_equal(store_user_key_add(st, u.id,
                                        "ssh-ed25519-but-far-too-long-a-name",
                                        "AAAA", "SHA256:c", NULL, NULL),
                     ERR_TOO_LONG);

    assert_int_equal(store_user_key_match(st, u.id, "SHA256:aaa"), ERR_OK);
    assert_int_equal(store_user_key_match(st, u.id, "SHA256:zzz"),
                     ERR_NOT_FOUND);

    assert_int_equal(store_user_key_list(st, u.id, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_non_null(list[0].base64);
    assert_non_null(list[1].base64);
    assert_string_equal(list[0].user_id, u.id);
    snprintf(k.id, sizeof(k.id), "%s",
             strcmp(list[0].fingerprint, "SHA256:bbb") == 0 ? list[0].id
                                                            : list[1].id);
    store_user_key_list_free(list, n);

    assert_int_equal(store_user_key_delete(st, u.id, "SHA256:aaa"), ERR_OK);
    assert_int_equal(store_user_key_delete(st, u.id, "SHA256:aaa"),
                     ERR_NOT_FOUND);
    assert_int_equal(store_user_key_match(st, u.id, "SHA256:aaa"),
                     ERR_NOT_FOUND);
    assert_int_equal(store_user_key_match(st, w.id, "SHA256:aaa"), ERR_OK);
    /* A key is deleted only through its owner. */
    assert_int_equal(store_user_key_delete(st, w.id, k.id), ERR_NOT_FOUND);
    assert_int_equal(store_user_key_delete(st, u.id, k.id), ERR_OK);
    assert_int_equal(store_user_key_list(st, u.id, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_user_key_list_free(list, n);
    assert_int_equal(store_user_key_list(st, "nobody", &list, &n),
                     ERR_NOT_FOUND);
}

/* --- groups --------------------------------------------------------------- */

static void test_groups(void **state)
{
    struct store *st = S(state);
    struct store_user u, w, *members = NULL;
    struct store_group g, h, x, *groups = NULL;
    size_t n = 0;

    add_user(st, "alice", &u);
    add_user(st, "bob", &w);
    assert_int_equal(store_group_add(st, "ops", &g), ERR_OK);
    assert_true(util_is_uuid(g.id));
    assert_int_equal(store_group_add(st, "dev", &h), ERR_OK);
    assert_int_equal(store_group_add(st, "ops", NULL), ERR_EXISTS);
    assert_int_equal(store_group_add(st, "", NULL), ERR_INVALID);
    assert_int_equal(store_group_get(st, "ops", &x), ERR_OK);
    assert_string_equal(x.id, g.id);
    assert_int_equal(store_group_get(st, h.id, &x), ERR_OK);
    assert_string_equal(x.name, "dev");
    assert_int_equal(store_group_get(st, "qa", &x), ERR_NOT_FOUND);

    assert_int_equal(store_group_list(st, &groups, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(groups[0].name, "dev");
    assert_string_equal(groups[1].name, "ops");
    store_list_free(groups);

    assert_int_equal(store_group_member_add(st, g.id, u.id), ERR_OK);
    assert_int_equal(store_group_member_add(st, g.id, w.id), ERR_OK);
    assert_int_equal(store_group_member_add(st, h.id, u.id), ERR_OK);
    assert_int_equal(store_group_member_add(st, g.id, u.id), ERR_EXISTS);
    assert_int_equal(store_group_member_add(st, g.id, "nobody"), ERR_NOT_FOUND);
    assert_int_equal(store_group_member_add(
                         st, "00000000-0000-4000-8000-000000000000", u.id),
                     ERR_NOT_FOUND);

    assert_int_equal(store_group_members(st, g.id, &members, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(members[0].name, "alice");
    assert_string_equal(members[1].name, "bob");
    store_user_list_free(members, n);
    assert_int_equal(store_user_groups(st, u.id, &groups, &n), ERR_OK);
    assert_int_equal(n, 2);
    store_list_free(groups);

    assert_int_equal(store_group_member_remove(st, g.id, w.id), ERR_OK);
    assert_int_equal(store_group_member_remove(st, g.id, w.id), ERR_NOT_FOUND);
    assert_int_equal(store_user_groups(st, w.id, &groups, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(groups);

    /* Deleting a group ends its memberships. */
    assert_int_equal(store_group_delete(st, "ops"), ERR_OK);
    assert_int_equal(store_group_delete(st, "ops"), ERR_NOT_FOUND);
    assert_int_equal(store_user_groups(st, u.id, &groups, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(groups[0].name, "dev");
    store_list_free(groups);
    assert_int_equal(store_group_members(st, g.id, &members, &n),
                     ERR_NOT_FOUND);
}

/* --- sites ---------------------------------------------------------------- */

static void test_sites(void **state)
{
    struct store *st = S(state);
    struct store_site root, a, b, x, *list = NULL;
    struct store_asset as;
    size_t n = 0;

    assert_int_equal(store_site_get(st, "/root", &root), ERR_OK);
    assert_int_equal(store_site_add(st, "/root/a/b", &b), ERR_OK);
    assert_string_equal(b.path, "/root/a/b");
    assert_int_equal(store_site_get(st, "a", &a), ERR_OK);
    assert_string_equal(a.path, "/root/a");
    assert_string_equal(a.parent_id, root.id);
    assert_string_equal(b.parent_id, a.id);
    assert_int_equal(store_site_get(st, b.id, &x), ERR_OK);
    assert_string_equal(x.path, "/root/a/b");
    assert_int_equal(store_site_get(st, "/a/b/", &x), ERR_OK);
    assert_string_equal(x.id, b.id);

    assert_int_equal(store_site_add(st, "a/b", NULL), ERR_EXISTS);
    assert_int_equal(store_site_add(st, "/root", NULL), ERR_EXISTS);
    assert_int_equal(store_site_add(st, "root", NULL), ERR_EXISTS);
    assert_int_equal(store_site_add(st, "/root/../x", NULL), ERR_INVALID);
    assert_int_equal(store_site_add(st, "", NULL), ERR_INVALID);
    assert_int_equal(store_site_add(st, "ab", &x), ERR_OK);
    assert_string_equal(x.parent_id, root.id);
    assert_int_equal(store_site_get(st, "/root/c", &x), ERR_NOT_FOUND);

    assert_int_equal(store_site_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 4);
    assert_string_equal(list[0].path, "/root");
    assert_string_equal(list[1].path, "/root/a");
    assert_string_equal(list[2].path, "/root/a/b");
    assert_string_equal(list[3].path, "/root/ab");
    store_list_free(list);

    /* Not while it has sub-sites or assets; never /root. */
    assert_int_equal(store_site_delete(st, "/root/a"), ERR_EXISTS);
    add_asset(st, "/root/a/b", "db", &as);
    assert_int_equal(store_site_delete(st, "/root/a/b"), ERR_EXISTS);
    assert_int_equal(store_asset_delete(st, as.id), ERR_OK);
    store_asset_clear(&as);
    assert_int_equal(store_site_delete(st, "/root"), ERR_DENIED);
    assert_int_equal(store_site_delete(st, b.id), ERR_OK);
    assert_int_equal(store_site_delete(st, "a"), ERR_OK);
    assert_int_equal(store_site_delete(st, "a"), ERR_NOT_FOUND);
}

/* --- assets --------------------------------------------------------------- */

static void test_assets(void **state)
{
    struct store *st = S(state);
    struct store_asset a, b, c, d, x, *list = NULL;
    struct store_site s;
    uint8_t pw[] = {1, 2, 3, 4, 5};
    char id[STORE_ID_MAX + 1];
    size_t n = 0;

    assert_int_equal(store_site_add(st, "/root/DevOps", &s), ERR_OK);
    memset(&a, 0, sizeof(a));
    snprintf(a.name, sizeof(a.name), "Prod DB 08");
    snprintf(a.protocol, sizeof(a.protocol), "ssh");
    snprintf(a.host, sizeof(a.host), "db8.internal");
    a.port = 22;
    snprintf(a.login_user, sizeof(a.login_user), "root");
    a.password_sealed = pw;
    a.password_sealed_len = sizeof(pw);
    snprintf(a.host_key_fp, sizeof(a.host_key_fp), "SHA256:pinned");
    assert_int_equal(store_asset_add(st, &a), ERR_OK);
    assert_true(util_is_uuid(a.id));
    assert_string_equal(a.site_path, "/root");
    assert_string_equal(a.route, "direct");
    a.password_sealed = NULL; /* pw is not ours to free */
    a.password_sealed_len = 0;

    add_asset(st, "DevOps", "Prod DB 08", &b);
    assert_string_equal(b.site_id, s.id);
    assert_string_equal(b.site_path, "/root/DevOps");
    add_asset(st, "/root/DevOps", "Prod DB 08", &c);
    add_asset(st, "/root/DevOps", "web", &d);

    assert_int_equal(store_asset_get(st, a.id, &x), ERR_OK);
    assert_string_equal(x.name, "Prod DB 08");
    assert_string_equal(x.site_path, "/root");
    assert_string_equal(x.login_user, "root");
    assert_string_equal(x.host_key_fp, "SHA256:pinned");
    assert_int_equal(x.password_sealed_len, sizeof(pw));
    assert_memory_equal(x.password_sealed, pw, sizeof(pw));
    assert_null(x.key_sealed);
    store_asset_clear(&x);
    assert_null(x.password_sealed);
    assert_int_equal(
        store_asset_get(st, "00000000-0000-4000-8000-000000000000", &x),
        ERR_NOT_FOUND);
    assert_int_equal(store_asset_get(st, "Prod DB 08", &x), ERR_NOT_FOUND);

    /* By name: exactly the named site, no sub-sites, /root by default. */
    assert_int_equal(store_asset_find(st, NULL, "Prod DB 08", &list, &n),
                     ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, a.id);
    assert_string_equal(list[0].site_path, "/root");
    store_asset_list_free(list, n);
    assert_int_equal(store_asset_find(st, "", "web", &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    assert_null(list);
    assert_int_equal(store_asset_find(st, "DevOps", "Prod DB 08", &list, &n),
                     ERR_OK);
    assert_int_equal(n, 2); /* ambiguous: the caller lists both IDs */
    assert_true(
        (strcmp(list[0].id, b.id) == 0 && strcmp(list[1].id, c.id) == 0) ||
        (strcmp(list[0].id, c.id) == 0 && strcmp(list[1].id, b.id) == 0));
    assert_string_equal(list[0].site_path, "/root/DevOps");
    store_asset_list_free(list, n);
    assert_int_equal(store_asset_find(st, "/root/None", "web", &list, &n),
                     ERR_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_asset_find(st, "/root/../x", "web", &list, &n),
                     ERR_INVALID);

    /* By ID: any site, whatever site the login named, either case. */
    snprintf(id, sizeof(id), "%s", d.id);
    upper(id);
    assert_int_equal(store_asset_find(st, "/root", id, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "web");
    assert_string_equal(list[0].site_path, "/root/DevOps");
    store_asset_list_free(list, n);

    assert_int_equal(store_asset_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 4);
    assert_string_equal(list[0].site_path, "/root");
    store_asset_list_free(list, n);

    /* Refusals. */
    memset(&x, 0, sizeof(x));
    snprintf(x.name, sizeof(x.name), "x");
    snprintf(x.protocol, sizeof(x.protocol), "ssh");
    snprintf(x.host, sizeof(x.host), "h");
    x.port = 22;
    snprintf(x.site_path, sizeof(x.site_path), "/root/Nowhere");
    assert_int_equal(store_asset_add(st, &x), ERR_NOT_FOUND);
    x.site_path[0] = '\0';
    x.port = 0;
    assert_int_equal(store_asset_add(st, &x), ERR_INVALID);
    x.port = 70000;
    assert_int_equal(store_asset_add(st, &x), ERR_INVALID);
    x.port = 22;
    memset(x.host, 'h', sizeof(x.host)); /* no terminator in the field */
    assert_int_equal(store_asset_add(st, &x), ERR_TOO_LONG);
    snprintf(x.host, sizeof(x.host), "h");
    x.key_sealed_len = STORE_KEY_MAX + 1;
    x.key_sealed = calloc(1, x.key_sealed_len);
    assert_non_null(x.key_sealed);
    assert_int_equal(store_asset_add(st, &x), ERR_TOO_LONG);
    store_asset_clear(&x);
    memset(&x, 0, sizeof(x));
    snprintf(x.name, sizeof(x.name), "%s", a.id); /* a UUID as a name */
    snprintf(x.protocol, sizeof(x.protocol), "ssh");
    snprintf(x.host, sizeof(x.host), "h");
    x.port = 22;
    assert_int_equal(store_asset_add(st, &x), ERR_INVALID);
    /* A caller-chosen ID is kept, and cannot be taken twice. */
    snprintf(x.name, sizeof(x.name), "fixed");
    snprintf(x.id, sizeof(x.id), "EFAECD97-F9D4-4AC4-B35B-B2D71491354D");
    assert_int_equal(store_asset_add(st, &x), ERR_OK);
    assert_string_equal(x.id, "efaecd97-f9d4-4ac4-b35b-b2d71491354d");
    assert_int_equal(store_asset_add(st, &x), ERR_EXISTS);

    /* Update: move to DevOps, change the port, drop the password. */
    assert_int_equal(store_asset_get(st, a.id, &x), ERR_OK);
    x.port = 2222;
    x.site_id[0] = '\0';
    snprintf(x.site_path, sizeof(x.site_path), "DevOps");
    free(x.password_sealed);
    x.password_sealed = NULL;
    x.password_sealed_len = 0;
    assert_int_equal(store_asset_update(st, &x), ERR_OK);
    store_asset_clear(&x);
    assert_int_equal(store_asset_get(st, a.id, &x), ERR_OK);
    assert_int_equal(x.port, 2222);
    assert_string_equal(x.site_path, "/root/DevOps");
    assert_null(x.password_sealed);
    store_asset_clear(&x);

    assert_int_equal(store_asset_delete(st, a.id), ERR_OK);
    assert_int_equal(store_asset_delete(st, a.id), ERR_NOT_FOUND);
    assert_int_equal(store_asset_delete(st, "web"), ERR_NOT_FOUND);
    store_asset_clear(&a);
    store_asset_clear(&b);
    store_asset_clear(&c);
    store_asset_clear(&d);
}

static void test_host_key(void **state)
{
    struct store *st = S(state);
    struct store_asset a, x;

    add_asset(st, "/root", "srv", &a);
    assert_string_equal(a.host_key_fp, "");
    /* Trust on first use, then only the same key. */
    assert_int_equal(store_asset_pin_host_key(st, a.id, "SHA256:one"), ERR_OK);
    assert_int_equal(store_asset_pin_host_key(st, a.id, "SHA256:one"), ERR_OK);
    assert_int_equal(store_asset_pin_host_key(st, a.id, "SHA256:two"),
                     ERR_HOSTKEY);
    assert_int_equal(store_asset_get(st, a.id, &x), ERR_OK);
    assert_string_equal(x.host_key_fp, "SHA256:one");
    store_asset_clear(&x);
    /* Retrust: the admin clears the pin; the next key seen is pinned. */
    assert_int_equal(store_asset_set_host_key(st, a.id, ""), ERR_OK);
    assert_int_equal(store_asset_pin_host_key(st, a.id, "SHA256:two"), ERR_OK);
    assert_int_equal(store_asset_pin_host_key(st, a.id, "SHA256:one"),
                     ERR_HOSTKEY);
    assert_int_equal(store_asset_set_host_key(st, a.id, "SHA256:three"),
                     ERR_OK);
    assert_int_equal(store_asset_pin_host_key(st, a.id, "SHA256:two"),
                     ERR_HOSTKEY);
    assert_int_equal(store_asset_pin_host_key(st, a.id, "SHA256:three"),
                     ERR_OK);
    assert_int_equal(store_asset_pin_host_key(st, a.id, ""), ERR_INVALID);
    assert_int_equal(
        store_asset_pin_host_key(st, "00000000-0000-4000-8000-000000000000",
                                 "SHA256:one"),
        ERR_NOT_FOUND);
    assert_int_equal(store_asset_set_host_key(
                         st, "00000000-0000-4000-8000-000000000000", ""),
                     ERR_NOT_FOUND);
    store_asset_clear(&a);
}

/* --- grants --------------------------------------------------------------- */

static int role_of(struct store *st, const char *uid, const char *aid)
{
    int role = -1;

    assert_int_equal(store_user_asset_role(st, uid, aid, &role), ERR_OK);
    return role;
}

static void grant(struct store *st, const char *asset_id, const char *site_id,
                  const char *user_id, const char *group_id, int role,
                  struct store_grant *out)
{
    struct store_grant g;

    memset(&g, 0, sizeof(g));
    snprintf(g.asset_id, sizeof(g.asset_id), "%s", asset_id ? asset_id : "");
    snprintf(g.site_id, sizeof(g.site_id), "%s", site_id ? site_id : "");
    snprintf(g.user_id, sizeof(g.user_id), "%s", user_id ? user_id : "");
    snprintf(g.group_id, sizeof(g.group_id), "%s", group_id ? group_id : "");
    g.role = role;
    assert_int_equal(store_grant_add(st, &g), ERR_OK);
    assert_true(util_is_uuid(g.id));
    if (out != NULL) {
        *out = g;
    }
}

static void test_roles(void **state)
{
    struct store *st = S(state);
    struct store_user u, w;
    struct store_group g;
    struct store_site root, sa, sab, sab2;
    struct store_asset in_a, in_ab_sub, in_ab, in_root;
    struct store_grant gr, bad, *list = NULL;
    size_t n = 0;
    int role = 0;

    add_user(st, "alice", &u);
    add_user(st, "bob", &w);
    assert_int_equal(store_group_add(st, "ops", &g), ERR_OK);
    assert_int_equal(store_group_member_add(st, g.id, u.id), ERR_OK);
    assert_int_equal(store_site_get(st, "/root", &root), ERR_OK);
    assert_int_equal(store_site_add(st, "/root/a", &sa), ERR_OK);
    assert_int_equal(store_site_add(st, "/root/a/b", &sab), ERR_OK);
    assert_int_equal(store_site_add(st, "/root/ab", &sab2), ERR_OK);
    add_asset(st, "/root/a", "x", &in_a);
    add_asset(st, "/root/a/b", "x", &in_ab_sub);
    add_asset(st, "/root/ab", "x", &in_ab);
    add_asset(st, "/root", "x", &in_root);

    assert_int_equal(role_of(st, u.id, in_a.id), ROLE_NONE);

    /* A direct asset grant covers that asset only. */
    grant(st, in_root.id, NULL, u.id, NULL, ROLE_VIEWER, NULL);
    assert_int_equal(role_of(st, u.id, in_root.id), ROLE_VIEWER);
    assert_int_equal(role_of(st, u.id, in_a.id), ROLE_NONE);
    assert_int_equal(role_of(st, w.id, in_root.id), ROLE_NONE);

    /* A group's site grant covers the site and its sub-sites, but not
     * /root/ab, whose path merely starts with "/root/a". */
    grant(st, NULL, sa.id, NULL, g.id, ROLE_EDITOR, &gr);
    assert_string_equal(gr.target_name, "/root/a");
    assert_string_equal(gr.grantee_name, "ops");
    assert_int_equal(role_of(st, u.id, in_a.id), ROLE_EDITOR);
    assert_int_equal(role_of(st, u.id, in_ab_sub.id), ROLE_EDITOR);
    assert_int_equal(role_of(st, u.id, in_ab.id), ROLE_NONE);
    assert_int_equal(role_of(st, u.id, in_root.id), ROLE_VIEWER);
    assert_int_equal(role_of(st, w.id, in_a.id), ROLE_NONE);

    /* The best role wins; /root covers everything. */
    grant(st, NULL, root.id, w.id, NULL, ROLE_VIEWER, NULL);
    grant(st, in_ab_sub.id, NULL, u.id, NULL, ROLE_OWNER, NULL);
    assert_int_equal(role_of(st, u.id, in_ab_sub.id), ROLE_OWNER);
    assert_int_equal(role_of(st, w.id, in_ab_sub.id), ROLE_VIEWER);
    assert_int_equal(role_of(st, w.id, in_ab.id), ROLE_VIEWER);

    /* Leaving the group loses its grants. */
    assert_int_equal(store_group_member_remove(st, g.id, u.id), ERR_OK);
    assert_int_equal(role_of(st, u.id, in_a.id), ROLE_NONE);
    assert_int_equal(store_group_member_add(st, g.id, u.id), ERR_OK);

    /* Refusals. */
    memset(&bad, 0, sizeof(bad));
    snprintf(bad.asset_id, sizeof(bad.asset_id), "%s", in_a.id);
    snprintf(bad.site_id, sizeof(bad.site_id), "%s", sa.id);
    snprintf(bad.user_id, sizeof(bad.user_id), "%s", u.id);
    bad.role = ROLE_VIEWER;
    assert_int_equal(store_grant_add(st, &bad), ERR_INVALID);
    bad.site_id[0] = '\0';
    bad.role = 7;
    assert_int_equal(store_grant_add(st, &bad), ERR_INVALID);
    bad.role = ROLE_NONE;
    assert_int_equal(store_grant_add(st, &bad), ERR_INVALID);
    bad.role = ROLE_VIEWER;
    snprintf(bad.group_id, sizeof(bad.group_id), "%s", g.id);
    assert_int_equal(store_grant_add(st, &bad), ERR_INVALID);
    bad.group_id[0] = '\0';
    snprintf(bad.asset_id, sizeof(bad.asset_id),
             "00000000-0000-4000-8000-000000000000");
    assert_int_equal(store_grant_add(st, &bad), ERR_NOT_FOUND);
    snprintf(bad.asset_id, sizeof(bad.asset_id), "%s", in_root.id);
    assert_int_equal(store_grant_add(st, &bad), ERR_EXISTS);
    assert_int_equal(store_user_asset_role(st, u.id, "nope", &role),
                     ERR_NOT_FOUND);
    assert_int_equal(
        store_user_asset_role(st, "00000000-0000-4000-8000-000000000000",
                              in_a.id, &role),
        ERR_NOT_FOUND);

    assert_int_equal(store_grant_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++) {
        assert_true(list[i].target_name[0] != '\0');
        assert_true(list[i].grantee_name[0] != '\0');
    }
    store_list_free(list);

    assert_int_equal(store_grant_delete(st, gr.id), ERR_OK);
    assert_int_equal(store_grant_delete(st, gr.id), ERR_NOT_FOUND);
    assert_int_equal(role_of(st, u.id, in_a.id), ROLE_NONE);

    /* Deleting an asset or a site takes its grants along. */
    assert_int_equal(store_asset_delete(st, in_ab_sub.id), ERR_OK);
    grant(st, NULL, sab2.id, u.id, NULL, ROLE_OWNER, NULL);
    assert_int_equal(store_asset_delete(st, in_ab.id), ERR_OK);
    assert_int_equal(store_site_delete(st, sab2.id), ERR_OK);
    assert_int_equal(store_grant_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    store_list_free(list);

    store_asset_clear(&in_a);
    store_asset_clear(&in_ab_sub);
    store_asset_clear(&in_ab);
    store_asset_clear(&in_root);
}

/* --- profiles ------------------------------------------------------------- */

static void make_profile(struct store_profile *p, const char *name, int native)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->native = native;
    p->shell = true;
    p->sftp = true;
    p->max_session_minutes = 60;
}

static void test_profiles(void **state)
{
    struct store *st = S(state);
    struct store_user u, w;
    struct store_group g;
    struct store_profile p, q, x, *list = NULL;
    struct store_assignee *who = NULL;
    size_t n = 0;

    add_user(st, "alice", &u);
    add_user(st, "bob", &w);
    assert_int_equal(store_group_add(st, "ops", &g), ERR_OK);
    assert_int_equal(store_group_member_add(st, g.id, u.id), ERR_OK);

    make_profile(&p, "shell-only", NATIVE_ALLOW);
    assert_int_equal(store_profile_add(st, &p), ERR_OK);
    assert_true(util_is_uuid(p.id));
    make_profile(&q, "recorded", NATIVE_RECORD);
    q.exec = true;
    q.idle_timeout_minutes = 15;
    assert_int_equal(store_profile_add(st, &q), ERR_OK);
    make_profile(&x, "shell-only", NATIVE_DENY);
    assert_int_equal(store_profile_add(st, &x), ERR_EXISTS);
    x.native = 3;
    snprintf(x.name, sizeof(x.name), "other");
    assert_int_equal(store_profile_add(st, &x), ERR_INVALID);
    x.native = NATIVE_DENY;
    x.max_session_minutes = -1;
    assert_int_equal(store_profile_add(st, &x), ERR_INVALID);

    assert_int_equal(store_profile_get(st, "recorded", &x), ERR_OK);
    assert_string_equal(x.id, q.id);
    assert_int_equal(x.native, NATIVE_RECORD);
    assert_true(x.shell && x.exec && x.sftp);
    assert_false(x.scp || x.local_forward || x.remote_forward ||
                 x.agent_forward || x.x11);
    assert_int_equal(x.max_session_minutes, 60);
    assert_int_equal(x.idle_timeout_minutes, 15);
    assert_int_equal(store_profile_get(st, p.id, &x), ERR_OK);
    assert_string_equal(x.name, "shell-only");
    assert_int_equal(store_profile_get(st, "none", &x), ERR_NOT_FOUND);

    /* Directly, through a group, and both at once: each profile once. */
    assert_int_equal(store_profile_assign(st, p.id, u.id, NULL), ERR_OK);
    assert_int_equal(store_profile_assign(st, p.id, NULL, g.id), ERR_OK);
    assert_int_equal(store_profile_assign(st, q.id, NULL, g.id), ERR_OK);
    assert_int_equal(store_profile_assign(st, p.id, u.id, NULL), ERR_EXISTS);
    assert_int_equal(store_profile_assign(st, p.id, u.id, g.id), ERR_INVALID);
    assert_int_equal(store_profile_assign(st, p.id, NULL, NULL), ERR_INVALID);
    assert_int_equal(store_profile_assign(st, p.id, "nobody", NULL),
                     ERR_NOT_FOUND);
    assert_int_equal(
        store_profile_assign(st, "00000000-0000-4000-8000-000000000000", u.id,
                             NULL),
        ERR_NOT_FOUND);
    assert_int_equal(store_user_profiles(st, u.id, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "recorded");
    assert_string_equal(list[1].name, "shell-only");
    store_list_free(list);
    assert_int_equal(store_user_profiles(st, w.id, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(list);
    /* Who has p: the user, then the group; q: the group only. */
    assert_int_equal(store_profile_assignees(st, p.id, &who, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_false(who[0].group);
    assert_string_equal(who[0].id, u.id);
    assert_string_equal(who[0].name, "alice");
    assert_true(who[1].group);
    assert_string_equal(who[1].id, g.id);
    assert_string_equal(who[1].name, "ops");
    store_list_free(who);
    assert_int_equal(store_profile_assignees(st, q.id, &who, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_true(who[0].group);
    store_list_free(who);
    assert_int_equal(store_profile_assignees(
                         st, "00000000-0000-4000-8000-000000000000", &who, &n),
                     ERR_NOT_FOUND);
    assert_int_equal(store_profile_assignees(st, "shell-only", &who, &n),
                     ERR_NOT_FOUND); /* an ID, not a name */

    /* Through the group only. */
    assert_int_equal(store_group_member_add(st, g.id, w.id), ERR_OK);
    assert_int_equal(store_user_profiles(st, w.id, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    store_list_free(list);

    assert_int_equal(store_profile_unassign(st, p.id, NULL, g.id), ERR_OK);
    assert_int_equal(store_profile_unassign(st, p.id, NULL, g.id),
                     ERR_NOT_FOUND);
    assert_int_equal(store_user_profiles(st, w.id, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].name, "recorded");
    store_list_free(list);
    assert_int_equal(store_user_profiles(st, u.id, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    store_list_free(list);

    /* Update. */
    q.native = NATIVE_DENY;
    q.x11 = true;
    assert_int_equal(store_profile_update(st, &q), ERR_OK);
    assert_int_equal(store_profile_get(st, q.id, &x), ERR_OK);
    assert_int_equal(x.native, NATIVE_DENY);
    assert_true(x.x11);
    snprintf(q.name, sizeof(q.name), "shell-only");
    assert_int_equal(store_profile_update(st, &q), ERR_EXISTS);

    assert_int_equal(store_profile_list(st, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    store_list_free(list);

    /* Deleting a profile drops its assignments. */
    assert_int_equal(store_profile_delete(st, "recorded"), ERR_OK);
    assert_int_equal(store_profile_delete(st, "recorded"), ERR_NOT_FOUND);
    assert_int_equal(store_user_profiles(st, w.id, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(list);
}

/* --- cascades ------------------------------------------------------------- */

/* The sweep's question for many users at once: exists and enabled, in
 * the order asked, across more IDs than one query takes (16). */
static void test_users_active(void **state)
{
    struct store *st = S(state);
    struct store_user u[20];
    const char *ids[23];
    bool active[23];
    char upper[STORE_ID_MAX + 1], name[32], gone[STORE_ID_MAX + 1];

    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof(name), "act%02d", i);
        assert_int_equal(store_user_add(st, name, NULL, false, &u[i]), ERR_OK);
        ids[i] = u[i].id;
    }
    assert_int_equal(store_user_set_disabled(st, u[3].id, true), ERR_OK);
    assert_int_equal(store_user_set_disabled(st, u[17].id, true), ERR_OK);
    snprintf(gone, sizeof(gone), "%s", u[18].id);
    assert_int_equal(store_user_delete(st, gone), ERR_OK);
    ids[18] = gone;
    for (size_t k = 0; k < sizeof(upper) && u[5].id[k] != '\0'; k++) {
        upper[k] = (char)toupper((unsigned char)u[5].id[k]);
        upper[k + 1] = '\0';
    }
    ids[20] = upper;       /* the same user in capitals */
    ids[21] = "not-an-id"; /* matches nothing */
    ids[22] = u[19].id;    /* asked twice */
    memset(active, 1, sizeof(active));
    assert_int_equal(store_users_active(st, ids, 23, active), ERR_OK);
    for (int i = 0; i < 23; i++) {
        bool want = !(i == 3 || i == 17 || i == 18 || i == 21);

        if (active[i] != want) {
            fail_msg("id %d: active %d, want %d", i, active[i], want);
        }
    }
    assert_int_equal(store_users_active(st, NULL, 0, NULL), ERR_OK);
}

static void test_user_delete_cascades(void **state)
{
    struct store *st = S(state);
    struct store_user u, w, *members = NULL;
    struct store_group g;
    struct store_asset a;
    struct store_grant *grants = NULL;
    struct store_profile p, *profiles = NULL;
    struct store_session s, got;
    size_t n = 0;

    add_user(st, "alice", &u);
    add_user(st, "bob", &w);
    assert_int_equal(store_user_key_add(st, u.id, "ssh-ed25519", "AAAA",
                                        "SHA256:k", NULL, NULL),
                     ERR_OK);
    assert_int_equal(store_group_add(st, "ops", &g), ERR_OK);
    assert_int_equal(store_group_member_add(st, g.id, u.id), ERR_OK);
    assert_int_equal(store_group_member_add(st, g.id, w.id), ERR_OK);
    add_asset(st, "/root", "srv", &a);
    grant(st, a.id, NULL, u.id, NULL, ROLE_OWNER, NULL);
    grant(st, a.id, NULL, w.id, NULL, ROLE_VIEWER, NULL);
    make_profile(&p, "p", NATIVE_ALLOW);
    assert_int_equal(store_profile_add(st, &p), ERR_OK);
    assert_int_equal(store_profile_assign(st, p.id, u.id, NULL), ERR_OK);

    memset(&s, 0, sizeof(s));
    util_uuid4(s.id);
    snprintf(s.user_id, sizeof(s.user_id), "%s", u.id);
    snprintf(s.user_name, sizeof(s.user_name), "alice");
    snprintf(s.asset_id, sizeof(s.asset_id), "%s", a.id);
    snprintf(s.asset_name, sizeof(s.asset_name), "srv");
    s.started_at = 1000;
    assert_int_equal(store_session_open(st, &s), ERR_OK);
    assert_int_equal(store_session_close(st, s.id, 1010, 1, 2, 0, "ok"),
                     ERR_OK);

    assert_int_equal(store_user_delete(st, "alice"), ERR_OK);
    assert_int_equal(store_user_key_match(st, u.id, "SHA256:k"), ERR_NOT_FOUND);
    assert_int_equal(store_group_members(st, g.id, &members, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(members[0].name, "bob");
    store_user_list_free(members, n);
    assert_int_equal(store_grant_list(st, &grants, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(grants[0].user_id, w.id);
    store_list_free(grants);
    /* The assignment went too: re-creating "alice" inherits nothing. */
    add_user(st, "alice", &u);
    assert_int_equal(store_user_profiles(st, u.id, &profiles, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_list_free(profiles);
    assert_int_equal(role_of(st, u.id, a.id), ROLE_NONE);

    /* The report row outlives the user and the asset. */
    assert_int_equal(store_asset_delete(st, a.id), ERR_OK);
    assert_int_equal(store_session_get(st, s.id, &got), ERR_OK);
    assert_string_equal(got.user_name, "alice");
    assert_string_equal(got.asset_name, "srv");
    assert_string_equal(got.asset_id, a.id);
    assert_string_equal(got.result, "ok");
    store_asset_clear(&a);
}

/* --- sessions ------------------------------------------------------------- */

static void open_session(struct store *st, const char *user, const char *asset,
                         const char *kind, int64_t started,
                         struct store_session *out)
{
    struct store_session s;

    memset(&s, 0, sizeof(s));
    util_uuid4(s.id);
    snprintf(s.user_name, sizeof(s.user_name), "%s", user);
    snprintf(s.asset_id, sizeof(s.asset_id), "%s", asset);
    snprintf(s.kind, sizeof(s.kind), "%s", kind);
    snprintf(s.client_addr, sizeof(s.client_addr), "127.0.0.1:5000");
    s.started_at = started;
    assert_int_equal(store_session_open(st, &s), ERR_OK);
    if (out != NULL) {
        *out = s;
    }
}

/* store_session_batch: several rows in one transaction; one op's own
 * failure (a close of no open row, an invalid row) leaves the others. */
static void test_session_batch(void **state)
{
    struct store *st = S(state);
    struct store_session_op ops[4];
    struct store_session got;
    char open_id[STORE_ID_MAX + 1];

    /* an open row written on its own first, closed in the batch */
    memset(&ops, 0, sizeof(ops));
    util_uuid4(ops[0].s.id);
    snprintf(ops[0].s.kind, sizeof(ops[0].s.kind), "tunnel");
    ops[0].s.started_at = 2000;
    assert_int_equal(store_session_open(st, &ops[0].s), ERR_OK);
    memcpy(open_id, ops[0].s.id, sizeof(open_id));

    memset(&ops, 0, sizeof(ops));
    /* 0: a row written closed */
    ops[0].insert = true;
    util_uuid4(ops[0].s.id);
    snprintf(ops[0].s.kind, sizeof(ops[0].s.kind), "tunnel");
    ops[0].s.started_at = 2001;
    ops[0].s.ended_at = 2002;
    ops[0].s.bytes_up = 5;
    ops[0].s.bytes_down = 7;
    ops[0].s.exit_status = -1;
    snprintf(ops[0].s.result, sizeof(ops[0].s.result), "ok");
    /* 1: a close of no row at all */
    util_uuid4(ops[1].s.id);
    ops[1].s.ended_at = 2003;
    snprintf(ops[1].s.result, sizeof(ops[1].s.result), "ok");
    /* 2: a closed insert without a result: invalid */
    ops[2].insert = true;
    util_uuid4(ops[2].s.id);
    ops[2].s.ended_at = 2003;
    /* 3: the close of the open row */
    snprintf(ops[3].s.id, sizeof(ops[3].s.id), "%s", open_id);
    ops[3].s.ended_at = 2004;
    ops[3].s.bytes_up = 11;
    ops[3].s.bytes_down = 13;
    ops[3].s.exit_status = -1;
    snprintf(ops[3].s.result, sizeof(ops[3].s.result), "error: gone");
    assert_int_equal(store_session_batch(st, ops, 4), ERR_OK);
    assert_int_equal(ops[0].r, ERR_OK);
    assert_int_equal(ops[1].r, ERR_NOT_FOUND);
    assert_int_equal(ops[2].r, ERR_INVALID);
    assert_int_equal(ops[3].r, ERR_OK);

    assert_int_equal(store_session_get(st, ops[0].s.id, &got), ERR_OK);
    assert_int_equal(got.ended_at, 2002);
    assert_int_equal(got.bytes_up, 5);
    assert_int_equal(got.bytes_down, 7);
    assert_string_equal(got.result, "ok");
    assert_int_equal(store_session_get(st, ops[2].s.id, &got), ERR_NOT_FOUND);
    assert_int_equal(store_session_get(st, open_id, &got), ERR_OK);
    assert_int_equal(got.ended_at, 2004);
    assert_int_equal(got.bytes_up, 11);
    assert_string_equal(got.result, "error: gone");
    /* a closed row is never rewritten, in a batch either */
    ops[3].s.ended_at = 2005;
    snprintf(ops[3].s.result, sizeof(ops[3].s.result), "ok");
    assert_int_equal(store_session_batch(st, &ops[3], 1), ERR_OK);
    assert_int_equal(ops[3].r, ERR_NOT_FOUND);
    assert_int_equal(store_session_get(st, open_id, &got), ERR_OK);
    assert_string_equal(got.result, "error: gone");
    assert_int_equal(store_session_batch(st, NULL, 0), ERR_OK);
}

static void test_sessions(void **state)
{
    struct store *st = S(state);
    struct store_session a, b, c, d, e, x, *list = NULL;
    struct store_session_filter f;
    char result[STORE_RESULT_MAX + 2];
    size_t n = 0;
    int count = -1;

    open_session(st, "alice", "asset-1", "shell", 1000, &a);
    assert_int_equal(store_session_get(st, a.id, &x), ERR_OK);
    assert_string_equal(x.user_name, "alice");
    assert_string_equal(x.client_addr, "127.0.0.1:5000");
    assert_int_equal(x.started_at, 1000);
    assert_int_equal(x.ended_at, 0);
    assert_int_equal(x.exit_status, -1);
    assert_string_equal(x.result, "");
    assert_int_equal(store_session_open(st, &a), ERR_EXISTS);

    /* Update fills what it is given and keeps the rest. */
    memset(&x, 0, sizeof(x));
    snprintf(x.id, sizeof(x.id), "%s", a.id);
    snprintf(x.route, sizeof(x.route), "agent:1234");
    snprintf(x.detail, sizeof(x.detail), "uname -a");
    assert_int_equal(store_session_update(st, &x), ERR_OK);
    assert_int_equal(store_session_get(st, a.id, &x), ERR_OK);
    assert_string_equal(x.route, "agent:1234");
    assert_string_equal(x.detail, "uname -a");
    assert_string_equal(x.kind, "shell");
    assert_string_equal(x.asset_id, "asset-1");

    assert_int_equal(store_session_close(st, a.id, 1060, 10, 20, 0, "ok"),
                     ERR_OK);
    assert_int_equal(
        store_session_close(st, a.id, 1070, 99, 99, 1, "error: reaped"),
        ERR_NOT_FOUND);
    assert_int_equal(store_session_get(st, a.id, &x), ERR_OK);
    assert_int_equal(x.ended_at, 1060);
    assert_int_equal(x.bytes_up, 10);
    assert_int_equal(x.bytes_down, 20);
    assert_int_equal(x.exit_status, 0);
    assert_string_equal(x.result, "ok");
    assert_int_equal(store_session_close(st,
                                         "00000000-0000-4000-8000-000000000000",
                                         1, 0, 0, 0, "ok"),
                     ERR_NOT_FOUND);

    memset(result, 'r', sizeof(result) - 1);
    result[sizeof(result) - 1] = '\0';
    open_session(st, "bob", "asset-2", "sftp", 2000, &b);
    assert_int_equal(store_session_close(st, b.id, 2001, 0, 0, -1, result),
                     ERR_TOO_LONG);
    assert_int_equal(store_session_close(st, b.id, 2001, 0, 0, -1, ""),
                     ERR_INVALID);
    assert_int_equal(store_session_close(st, b.id, 2001, 0, 0, -1,
                                         "denied: no role on this asset"),
                     ERR_OK);
    open_session(st, "alice", "asset-2", "exec", 3000, &c);
    assert_int_equal(
        store_session_close(st, c.id, 3005, 0, 0, 2, "error: upstream closed"),
        ERR_OK);
    /* Same second as c: the later row still lists first. */
    open_session(st, "alice", "asset-1", "shell", 3000, &d);

    /* Written closed in one go: a refused login. */
    memset(&e, 0, sizeof(e));
    util_uuid4(e.id);
    snprintf(e.user_name, sizeof(e.user_name), "mallory");
    e.started_at = 4000;
    e.ended_at = 4000;
    snprintf(e.result, sizeof(e.result), "denied: authentication failed");
    assert_int_equal(store_session_open(st, &e), ERR_OK);
    assert_int_equal(store_session_get(st, e.id, &x), ERR_OK);
    assert_int_equal(x.ended_at, 4000);
    assert_string_equal(x.result, "denied: authentication failed");
    assert_int_equal(store_session_close(st, e.id, 4001, 0, 0, 0, "ok"),
                     ERR_NOT_FOUND);
    e.ended_at = 4000;
    e.result[0] = '\0';
    util_uuid4(e.id);
    assert_int_equal(store_session_open(st, &e), ERR_INVALID);
    snprintf(e.id, sizeof(e.id), "not-a-uuid");
    assert_int_equal(store_session_open(st, &e), ERR_INVALID);

    /* Newest first, no filter. */
    assert_int_equal(store_session_list(st, NULL, &list, &n), ERR_OK);
    assert_int_equal(n, 5);
    assert_string_equal(list[0].user_name, "mallory");
    assert_string_equal(list[1].id, d.id);
    assert_string_equal(list[2].id, c.id);
    assert_string_equal(list[3].id, b.id);
    assert_string_equal(list[4].id, a.id);
    store_list_free(list);

    memset(&f, 0, sizeof(f));
    f.user_name = "alice";
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 3);
    store_list_free(list);
    f.asset_id = "asset-1";
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    store_list_free(list);
    f.kind = "exec";
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    assert_null(list);

    memset(&f, 0, sizeof(f));
    f.result_prefix = "denied";
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].user_name, "mallory");
    assert_string_equal(list[1].user_name, "bob");
    store_list_free(list);
    f.result_prefix = "ok";
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, a.id);
    store_list_free(list);
    f.result_prefix = "OK"; /* case matters */
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    f.result_prefix = "%"; /* no LIKE wildcards */
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 0);

    memset(&f, 0, sizeof(f));
    f.since = 2000;
    f.until = 3000;
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, d.id);
    assert_string_equal(list[2].id, b.id);
    store_list_free(list);
    f.limit = 2;
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, d.id);
    assert_string_equal(list[1].id, c.id);
    store_list_free(list);
    memset(&f, 0, sizeof(f));
    f.since = 3001;
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    store_list_free(list);

    /* Every criterion at once: eight parameters, numbered in the order the
     * clauses are appended; a row must meet them all. */
    memset(&f, 0, sizeof(f));
    f.user_name = "alice";
    f.asset_id = "asset-1";
    f.kind = "shell";
    f.result_prefix = "ok";
    f.since = 1;
    f.until = 2999;
    f.limit = 5;
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, a.id);
    store_list_free(list);
    f.until = 999; /* a started later */
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    f.until = 2999;
    f.result_prefix = "error";
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 0);

    /* Server start: d (still open) and one more get closed. */
    open_session(st, "carol", "asset-3", "", 5000, NULL);
    assert_int_equal(store_session_close_dangling(
                         st, 6000, "error: server restarted", &count),
                     ERR_OK);
    assert_int_equal(count, 2);
    assert_int_equal(store_session_get(st, d.id, &x), ERR_OK);
    assert_int_equal(x.ended_at, 6000);
    assert_string_equal(x.result, "error: server restarted");
    assert_int_equal(store_session_get(st, a.id, &x), ERR_OK);
    assert_string_equal(x.result, "ok"); /* closed rows untouched */
    assert_int_equal(x.ended_at, 1060);
    assert_int_equal(
        store_session_close_dangling(st, 6001, "error: again", &count), ERR_OK);
    assert_int_equal(count, 0);
    assert_int_equal(store_session_get(st, "nope", &x), ERR_NOT_FOUND);

    /* A prefix is matched by characters, not bytes. */
    open_session(st, "dave", "asset-4", "shell", 7000, &e);
    assert_int_equal(store_session_close(st, e.id, 7001, 0, 0, -1,
                                         "error: Z\xc3\xbcrich unreachable"),
                     ERR_OK);
    memset(&f, 0, sizeof(f));
    f.result_prefix = "error: Z\xc3\xbc";
    assert_int_equal(store_session_list(st, &f, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, e.id);
    store_list_free(list);

    /* Updates refuse what does not fit, like every write. */
    memset(&x, 0, sizeof(x));
    snprintf(x.id, sizeof(x.id), "%s", e.id);
    memset(x.kind, 'k', sizeof(x.kind));
    assert_int_equal(store_session_update(st, &x), ERR_TOO_LONG);
    x.kind[0] = '\0';
    util_uuid4(x.id);
    assert_int_equal(store_session_update(st, &x), ERR_NOT_FOUND);
}

/* --- two processes -------------------------------------------------------- */

#define CONC_N 300

/* Each write is its own transaction; a lock the other process holds must
 * make this one wait, never fail. Returns the number of failed calls. */
static int conc_writes(struct store *st, const char *tag)
{
    struct store_session s;
    char name[64];
    int fails = 0;

    for (int i = 0; i < CONC_N; i++) {
        snprintf(name, sizeof(name), "%s-%d", tag, i);
        if (store_user_add(st, name, "", false, NULL) != ERR_OK) {
            fails++;
        }
        memset(&s, 0, sizeof(s));
        util_uuid4(s.id);
        snprintf(s.user_name, sizeof(s.user_name), "%s", name);
        s.started_at = 1000 + i;
        if (store_session_open(st, &s) != ERR_OK) {
            fails++;
        }
        if (store_session_close(st, s.id, 2000 + i, 1, 1, 0, "ok") != ERR_OK) {
            fails++;
        }
    }
    return fails;
}

static void test_two_writers(void **state)
{
    struct fx *f = *state;
    struct store_user *users = NULL;
    struct store_session *sessions = NULL;
    size_t n = 0;
    pid_t pid;
    int status = 0, fails;

    FX_NEED_SHARED(f);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store *mine = NULL;
        int r;

        /* The child opens its own handle, as a CLI process would. */
        if (store_open(f->path, &mine) != ERR_OK) {
            _exit(100);
        }
        r = conc_writes(mine, "child");
        store_close(mine);
        _exit(r > 99 ? 99 : r);
    }
    fails = conc_writes(f->st, "parent");
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(fails, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    assert_int_equal(store_user_list(f->st, &users, &n), ERR_OK);
    assert_int_equal(n, 2 * CONC_N);
    store_user_list_free(users, n);
    assert_int_equal(store_session_list(f->st, NULL, &sessions, &n), ERR_OK);
    assert_int_equal(n, 2 * CONC_N);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(sessions[i].result, "ok");
    }
    store_list_free(sessions);
}

/* Processes opening a file that does not exist yet all succeed, and the
 * migration runs once (one /root). */
static void test_concurrent_first_open(void **state)
{
    struct fx *f = *state;
    struct store_site *sites = NULL;
    char path[sizeof(f->path) + 64];
    pid_t pids[6];
    size_t n = 0;
    int status = 0, v = 0;

    /* A fresh file, or on PostgreSQL a fresh schema: the migrations run
     * under the write lock there too (the advisory lock). */
    if (!fx_fresh_location(f, "fresh.db", path, sizeof(path))) {
        skip();
    }
    for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            struct store *mine = NULL;
            int r = store_open(path, &mine);

            if (r == ERR_OK) {
                r = store_user_add(mine, i % 2 ? "odd" : "even", NULL, false,
                                   NULL);
                r = r == ERR_EXISTS ? ERR_OK : r;
            }
            store_close(mine);
            _exit(r == ERR_OK ? 0 : 1);
        }
    }
    for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    store_close(f->st);
    f->st = NULL;
    assert_int_equal(store_open(path, &f->st), ERR_OK);
    assert_int_equal(store_schema_version(f->st, &v), ERR_OK);
    assert_int_equal(v, (int)store_migrations_count);
    assert_int_equal(store_site_list(f->st, &sites, &n), ERR_OK);
    assert_int_equal(n, 1);
    store_list_free(sites);
    store_close(f->st);
    f->st = NULL;
    snprintf(path, sizeof(path), "%s/fresh.db", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/fresh.db-wal", f->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/fresh.db-shm", f->dir);
    unlink(path);
}

/* A handle inherited across fork is refused in the child, which must open
 * its own (sharing one SQLite connection between processes corrupts it). */
static void test_fork_guard(void **state)
{
    struct fx *f = *state;
    pid_t pid;
    int status = 0;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct store_user u;
        int r = store_user_get(f->st, "x", &u);

        store_close(f->st); /* frees only the struct in the child */
        _exit(r == ERR_STORE ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    add_user(f->st, "after-fork", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_normalize),
        cmocka_unit_test(test_role_names),
        cmocka_unit_test(test_name_index_and_grantee),
        cmocka_unit_test_setup_teardown(test_get_by_name_or_id, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_open_migrate, setup, teardown),
        cmocka_unit_test(test_open_bad_path),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_totp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_groups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sites, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profiles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_active, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_delete_cascades, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_guard, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
