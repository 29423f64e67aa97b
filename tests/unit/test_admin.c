/*
 * The admin layer (src/admin/): the rules both the CLI and the API go
 * through. Profiles (the descriptor table and the rule it cannot say),
 * public keys (type, blob, canonical base64, comment length), the host
 * and fingerprint validators, assets (defaults, checks, sealing under
 * the vault's associated data) and the vault_ad spelling; the
 * descriptor machinery every noun's table drives (JSON encoding, a body
 * applied, table cells), the tables themselves, and the agent side's
 * and tokens' rules with the one audit event admin writes per change.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admin/admin.h"
#include "store/peers.h"
#include "common/err.h"
#include "common/vault.h"
#include "store/audit.h"
#include "store_fx.h"

/* An ed25519 public key, made with ssh-keygen for this test. */
#define ED_B64                                                                 \
    "AAAAC3NzaC1lZDI1NTE5AAAAIG3GkinxOXl7iY4TBuCp1JmqPmLMc3cG4HvOa3hK4U7c"

static void assert_one_event(struct store *st, const char *action,
                             const char *target, const char *actor);

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_admin.XXXXXX");
}

static void test_profile_rules(void **state)
{
    struct fx *f = *state;
    struct admin_ctx c = {.st = f->st, .actor = "tester", .source = "test"};
    struct store_profile p, got;
    struct admin_err e;

    admin_profile_defaults(&p);
    assert_true(p.shell && p.exec && p.sftp && p.scp);
    assert_false(p.local_forward || p.x11 || p.record_input);
    /* RDP: the clipboard (no files) and audio on, devices off */
    assert_true(p.rdp_clipboard_text && p.rdp_audio);
    assert_false(p.rdp_clipboard_files || p.rdp_drive || p.rdp_printer);
    assert_true(p.rdp);
    snprintf(p.name, sizeof(p.name), "ops");
    p.native = NATIVE_ALLOW;
    p.record_input = true;
    assert_int_equal(admin_profile_add(&c, &p, &e), ERR_INVALID);
    assert_string_equal(e.msg,
                        "record input needs native sessions set to record");
    assert_int_equal(store_profile_get(f->st, "ops", &got), ERR_NOT_FOUND);
    p.native = NATIVE_RECORD;
    p.max_session_minutes = ADMIN_MINUTES_MAX + 1;
    assert_int_equal(admin_profile_add(&c, &p, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "527040"));
    p.max_session_minutes = ADMIN_MINUTES_MAX;
    assert_int_equal(admin_profile_add(&c, &p, &e), ERR_OK);
    assert_int_equal(store_profile_get(f->st, "ops", &got), ERR_OK);
    assert_int_equal(got.max_session_minutes, 527040);
    /* an update is held to the same rule */
    got.native = NATIVE_DENY;
    assert_int_equal(admin_profile_update(&c, &got, &e), ERR_INVALID);
    assert_int_equal(admin_profile_add(&c, &p, &e), ERR_EXISTS);
    assert_string_equal(e.msg, "profile 'ops' already exists");
    /* files on the RDP clipboard need the clipboard */
    got = p;
    snprintf(got.name, sizeof(got.name), "files");
    got.rdp_clipboard_text = false;
    got.rdp_clipboard_files = true;
    assert_int_equal(admin_profile_add(&c, &got, &e), ERR_INVALID);
    assert_string_equal(e.msg, "clipboard files need the clipboard (text) on");
    /* one audit event, by admin, for the one change made */
    assert_one_event(f->st, "profile.add", "ops", "tester");
}

static void test_profile_descriptor(void **state)
{
    struct store_profile p;
    struct admin_err e;
    json_t *j, *body;
    char *s;

    (void)state;
    admin_profile_defaults(&p);
    snprintf(p.id, sizeof(p.id), "id1");
    snprintf(p.name, sizeof(p.name), "n");
    body = json_pack("{s:s, s:b, s:i, s:s}", "native", "record", "x11", 1,
                     "idle_timeout_minutes", 30, "id", "not-settable");
    assert_int_equal(admin_json_apply(admin_profile_fields, body, &p, &e),
                     ERR_OK);
    json_decref(body);
    assert_string_equal(p.id, "id1"); /* read-only */
    assert_int_equal(p.native, NATIVE_RECORD);
    assert_true(p.x11);
    j = admin_profile_json(&p);
    s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(
        s, "{\"agent_forward\":false,\"exec\":true,\"id\":\"id1\","
           "\"idle_timeout_minutes\":30,\"local_forward\":false,"
           "\"max_session_minutes\":0,\"name\":\"n\",\"native_session\":"
           "\"record\",\"rdp\":true,\"rdp_audio\":true,"
           "\"rdp_clipboard_files\":false,"
           "\"rdp_clipboard_text\":true,\"rdp_drive\":false,"
           "\"rdp_printer\":false,\"record_input\":false,"
           "\"remote_forward\":false,"
           "\"scp\":true,\"sftp\":true,\"shell\":true,\"x11\":true}");
    free(s);
    json_decref(j);
    body = json_pack("{s:i}", "max_session_minutes", ADMIN_MINUTES_MAX + 1);
    assert_int_equal(admin_json_apply(admin_profile_fields, body, &p, &e),
                     ERR_INVALID);
    json_decref(body);
    body = json_pack("{s:s}", "native", "sometimes");
    assert_int_equal(admin_json_apply(admin_profile_fields, body, &p, &e),
                     ERR_INVALID);
    assert_string_equal(e.msg, "native must be deny, allow or record");
    json_decref(body);
}

static void test_pubkey_parse(void **state)
{
    struct admin_pubkey k;
    struct admin_err e;
    char text[1024];

    (void)state;
    /* a comment line, a blank line, then the key with a spaced comment */
    snprintf(text, sizeof(text),
             "# mine\n\nssh-ed25519 " ED_B64 " me@host x \n");
    assert_int_equal(admin_pubkey_parse(text, &k, &e), ERR_OK);
    assert_string_equal(k.type, "ssh-ed25519");
    assert_string_equal(k.b64, ED_B64);
    assert_string_equal(k.comment, "me@host x");
    assert_memory_equal(k.fp, "SHA256:", 7);
    assert_int_equal(strlen(k.fp), 7 + 43);
    admin_pubkey_clear(&k);
    /* the blob is not an RSA key */
    snprintf(text, sizeof(text), "ssh-rsa " ED_B64);
    assert_int_equal(admin_pubkey_parse(text, &k, &e), ERR_INVALID);
    assert_string_equal(e.msg, "not a valid ssh-rsa public key");
    snprintf(text, sizeof(text), "ssh-ed25519 " ED_B64 " %0129d", 0);
    assert_int_equal(admin_pubkey_parse(text, &k, &e), ERR_INVALID);
    assert_string_equal(e.msg, "key comment longer than 128 characters");
    snprintf(text, sizeof(text), "ssh-ed25519 " ED_B64 " %0128d", 0);
    assert_int_equal(admin_pubkey_parse(text, &k, &e), ERR_OK);
    assert_int_equal(strlen(k.comment), 128);
    admin_pubkey_clear(&k);
    snprintf(text, sizeof(text), "ssh-ed25519 " ED_B64 "\nssh-ed25519 " ED_B64);
    assert_int_equal(admin_pubkey_parse(text, &k, &e), ERR_INVALID);
    snprintf(text, sizeof(text), "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    assert_int_equal(admin_pubkey_parse(text, &k, &e), ERR_INVALID);
    snprintf(text, sizeof(text), "from=\"x\" ssh-ed25519 " ED_B64);
    assert_int_equal(admin_pubkey_parse(text, &k, &e), ERR_INVALID);
    snprintf(text, sizeof(text), "  \n# only\n");
    assert_int_equal(admin_pubkey_parse(text, &k, &e), ERR_INVALID);
}

static void test_validators(void **state)
{
    (void)state;
    assert_true(admin_host_valid("db-1.example.com"));
    assert_true(admin_host_valid("[fe80::1%eth0]"));
    assert_false(admin_host_valid(""));
    assert_false(admin_host_valid("a b"));
    assert_false(admin_host_valid("a;b"));
    assert_true(admin_fingerprint_valid(
        "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"));
    assert_false(admin_fingerprint_valid(
        "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2"));
    assert_false(admin_fingerprint_valid(
        "MD5:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"));
    assert_false(admin_fingerprint_valid(
        "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2="));
}

static void test_asset_rules_and_sealing(void **state)
{
    struct fx *f = *state;
    struct admin_ctx c = {.st = f->st, .actor = "tester", .source = "test"};
    struct store_asset a, got;
    struct admin_err e;
    struct vault *v = NULL;
    char key[160], ad[VAULT_AD_MAX];
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    json_t *j, *body;

    snprintf(key, sizeof(key), "%s/vault.key", f->dir);
    assert_int_equal(vault_create_key(key), ERR_OK);
    assert_int_equal(vault_load(key, &v), ERR_OK);
    admin_asset_defaults(&a);
    assert_string_equal(a.protocol, "ssh");
    assert_int_equal(a.port, 22);
    assert_string_equal(a.route, "direct");
    assert_int_equal(strlen(a.id), 36);
    snprintf(a.name, sizeof(a.name), "web");
    snprintf(a.host, sizeof(a.host), "10.0.0.1");
    assert_int_equal(admin_asset_set_site(f->st, &a, NULL, &e), ERR_OK);
    assert_string_equal(a.site_path, "/root");
    assert_int_equal(admin_asset_set_site(f->st, &a, "/root/nope", &e),
                     ERR_NOT_FOUND);
    snprintf(a.protocol, sizeof(a.protocol), "ftp");
    assert_int_equal(admin_asset_add(&c, &a, &e), ERR_INVALID);
    assert_string_equal(e.msg, "protocol must be ssh, rdp or tcp");
    snprintf(a.protocol, sizeof(a.protocol), "tcp");
    /* a sealed login needs a login user */
    assert_int_equal(admin_asset_seal_password(v, &a, "pw", &e), ERR_OK);
    assert_int_equal(admin_asset_add(&c, &a, &e), ERR_INVALID);
    assert_string_equal(e.msg, "a vaulted password or key needs a login");
    snprintf(a.login_user, sizeof(a.login_user), "ops");
    assert_int_equal(admin_asset_seal_key(v, &a, "not a key", 9, &e),
                     ERR_INVALID);
    assert_int_equal(admin_asset_add(&c, &a, &e), ERR_OK);
    assert_int_equal(store_asset_get(f->st, a.id, &got), ERR_OK);
    assert_string_equal(got.protocol, "tcp");
    /* sealed under "asset-password:<id>", and under nothing else */
    vault_ad(ad, VAULT_AD_ASSET_PASSWORD, a.id);
    assert_memory_equal(ad, "asset-password:", 15);
    assert_int_equal(vault_open(v, ad, got.password_sealed,
                                got.password_sealed_len, &plain, &plain_len),
                     ERR_OK);
    assert_string_equal((char *)plain, "pw");
    vault_secret_free(plain, plain_len);
    vault_ad(ad, VAULT_AD_ASSET_KEY, a.id);
    assert_int_equal(vault_open(v, ad, got.password_sealed,
                                got.password_sealed_len, &plain, &plain_len),
                     ERR_CRYPTO);
    /* the descriptor: JSON with nulls for empty, secrets as has_* */
    j = admin_asset_json(&got);
    assert_string_equal(json_string_value(json_object_get(j, "login_user")),
                        "ops");
    assert_true(json_is_true(json_object_get(j, "has_password")));
    assert_true(json_is_false(json_object_get(j, "has_key")));
    assert_true(json_is_null(json_object_get(j, "host_key_fingerprint")));
    assert_string_equal(json_string_value(json_object_get(j, "site_id")),
                        got.site_id);
    json_decref(j);
    body = json_pack("{s:n, s:i}", "login", "port", 70000);
    assert_int_equal(admin_json_apply(admin_asset_fields, body, &got, &e),
                     ERR_INVALID);
    json_decref(body);
    body = json_pack("{s:n, s:b}", "login", "has_key", 1);
    assert_int_equal(admin_json_apply(admin_asset_fields, body, &got, &e),
                     ERR_OK);
    json_decref(body);
    assert_string_equal(got.login_user, "");
    assert_null(got.key_sealed);
    /* a bad pin is refused by retrust as by add */
    assert_int_equal(admin_asset_retrust(&c, &a, "SHA256:x", &e), ERR_INVALID);
    assert_string_equal(e.msg, admin_msg_fingerprint);
    store_asset_clear(&got);
    store_asset_clear(&a);
    vault_free(v);
    unlink(key);
}

/* A struct with one member of each descriptor type. */
struct dx {
    char id[8];
    char name[8];
    char note[8];
    bool on;
    int n;
    int native;
    int64_t when;
    uint8_t *sealed;
    char csv[16];
    char list[32];
};

static json_t *dx_twice(const void *obj)
{
    return json_integer(2 * ((const struct dx *)obj)->n);
}

static const struct admin_field dx_fields[] = {
    ADMIN_FIELD(struct dx, "id", AF_STR, id, .flags = AF_READONLY, .col = "ID"),
    ADMIN_FIELD(struct dx, "name", AF_STR, name, .col = "NAME"),
    ADMIN_FIELD(struct dx, "note", AF_STRZ, note),
    ADMIN_FIELD(struct dx, "on", AF_BOOL, on, .col = "ON"),
    ADMIN_FIELD(struct dx, "n", AF_INT, n, .lo = 1, .hi = 9, .in = "count"),
    ADMIN_FIELD(struct dx, "native", AF_NATIVE, native),
    ADMIN_FIELD(struct dx, "when", AF_TIME, when, .flags = AF_READONLY),
    ADMIN_FIELD(struct dx, "sealed", AF_SEALED, sealed),
    ADMIN_FIELD(struct dx, "csv", AF_CSV, csv, .col = "CSV"),
    ADMIN_FIELD(struct dx, "list", AF_JSONLIST, list),
    ADMIN_FIELD_FN("twice", dx_twice, .col = "TWICE"),
    ADMIN_FIELD(struct dx, "hidden", AF_STR, name, .flags = AF_NOJSON,
                .col = "HIDDEN"),
    ADMIN_FIELD_END,
};

static void test_descriptor_encode(void **state)
{
    static uint8_t blob[1] = {1};
    struct dx d = {.id = "i1",
                   .name = "ab\xff",
                   .on = true,
                   .n = 3,
                   .native = NATIVE_RECORD,
                   .when = 86400,
                   .sealed = blob,
                   .csv = "a,b",
                   .list = "[\"x\", 7, \"y\"]"};
    char text[64];
    json_t *j;
    char *s;

    (void)state;
    j = admin_json_encode(dx_fields, &d);
    assert_non_null(j);
    s = json_dumps(j, JSON_COMPACT);
    /* table order; "" null; bytes that are not UTF-8 as '?'; lists both
     * ways; computed fields; no table-only field */
    assert_string_equal(
        s, "{\"id\":\"i1\",\"name\":\"ab?\",\"note\":null,\"on\":true,"
           "\"n\":3,\"native\":\"record\",\"when\":\"1970-01-02T00:00:00Z\","
           "\"sealed\":true,\"csv\":[\"a\",\"b\"],\"list\":[\"x\",\"y\"],"
           "\"twice\":6}");
    free(s);
    json_decref(j);

    /* table cells */
    admin_field_text(admin_field_find(dx_fields, "on"), &d, text, sizeof(text));
    assert_string_equal(text, "yes");
    admin_field_text(admin_field_find(dx_fields, "csv"), &d, text,
                     sizeof(text));
    assert_string_equal(text, "a,b");
    admin_field_text(admin_field_find(dx_fields, "note"), &d, text,
                     sizeof(text));
    assert_string_equal(text, "");
    admin_field_text(admin_field_find(dx_fields, "twice"), &d, text,
                     sizeof(text));
    assert_string_equal(text, "6");
    assert_ptr_equal(admin_field_find(dx_fields, "count"), &dx_fields[4]);
    assert_null(admin_field_find(dx_fields, "nope"));
}

static void test_descriptor_apply(void **state)
{
    struct dx d = {.id = "keep", .note = "x", .n = 1};
    struct admin_err e;
    json_t *body;

    (void)state;
    body = json_pack("{s:s, s:s, s:n, s:b, s:i, s:s, s:[s,s], s:s, s:s}", "id",
                     "other", "name", "bob", "note", "on", 1, "count", 9,
                     "native", "allow", "csv", "10.0.0.1", "::1", "when",
                     "2020", "unknown", "x");
    assert_int_equal(admin_json_apply(dx_fields, body, &d, &e), ERR_OK);
    json_decref(body);
    /* read-only, time and unknown keys left alone */
    assert_string_equal(d.id, "keep");
    assert_int_equal(d.when, 0);
    assert_string_equal(d.name, "bob");
    assert_string_equal(d.note, "");
    assert_true(d.on);
    assert_int_equal(d.n, 9);
    assert_int_equal(d.native, NATIVE_ALLOW);
    assert_string_equal(d.csv, "10.0.0.1,::1");

    /* refusals name the body's key and the limit */
    body = json_pack("{s:i}", "count", 10);
    assert_int_equal(admin_json_apply(dx_fields, body, &d, &e), ERR_INVALID);
    assert_string_equal(e.msg, "count must be a whole number from 1 to 9");
    json_decref(body);
    body = json_pack("{s:s}", "name", "12345678");
    assert_int_equal(admin_json_apply(dx_fields, body, &d, &e), ERR_INVALID);
    assert_string_equal(e.msg, "name must be 1-7 characters");
    json_decref(body);
    body = json_pack("{s:[s]}", "csv", "a,b");
    assert_int_equal(admin_json_apply(dx_fields, body, &d, &e), ERR_INVALID);
    assert_string_equal(e.msg, "csv must be a list of strings without commas");
    json_decref(body);
    body = json_pack("{s:[s,s,s]}", "csv", "aaaaa", "bbbbb", "ccccc");
    assert_int_equal(admin_json_apply(dx_fields, body, &d, &e), ERR_INVALID);
    assert_string_equal(e.msg, "csv is too long (at most 15 characters)");
    json_decref(body);
    body = json_pack("{s:s}", "on", "yes");
    assert_int_equal(admin_json_apply(dx_fields, body, &d, &e), ERR_INVALID);
    assert_string_equal(e.msg, "on must be true or false");
    json_decref(body);
    /* the value before a refusal is kept */
    assert_string_equal(d.csv, "10.0.0.1,::1");
}

/* Every noun's table: unique JSON keys, at most 12 columns, a member
 * inside its struct, and a JSON form of an empty object. */
static void test_descriptor_tables(void **state)
{
    static const struct {
        const struct admin_field *f;
        size_t size;
    } tables[] = {
        {admin_user_fields, sizeof(struct store_user)},
        {admin_key_fields, sizeof(struct store_user_key)},
        {admin_group_fields, sizeof(struct store_group)},
        {admin_site_fields, sizeof(struct store_site)},
        {admin_grant_fields, sizeof(struct store_grant)},
        {admin_site_role_fields, sizeof(struct store_site_role)},
        {admin_profile_fields, sizeof(struct store_profile)},
        {admin_asset_fields, sizeof(struct store_asset)},
        {admin_token_fields, sizeof(struct store_api_token)},
        {admin_credential_fields, sizeof(struct store_credential)},
        {admin_agent_fields, sizeof(struct store_agent)},
        {admin_tunnel_fields, sizeof(struct store_tunnel)},
        {admin_peer_fields, sizeof(struct store_peer)},
    };
    const struct admin_field *f, *g;
    size_t i, cols;
    void *obj;
    json_t *j;

    (void)state;
    for (i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        cols = 0;
        for (f = tables[i].f; f->json != NULL; f++) {
            cols += f->col != NULL;
            for (g = f + 1; g->json != NULL; g++) {
                assert_string_not_equal(f->json, g->json);
            }
            if (f->type == AF_FN) {
                assert_non_null(f->get);
            } else {
                assert_true(f->size > 0);
                assert_true(f->offset + f->size <= tables[i].size);
            }
        }
        assert_true(cols > 0 && cols <= 12);
        obj = calloc(1, tables[i].size);
        assert_non_null(obj);
        if (tables[i].f == admin_agent_fields) {
            snprintf(((struct store_agent *)obj)->tags, 8, "[]");
        }
        j = admin_json_encode(tables[i].f, obj);
        assert_non_null(j);
        json_decref(j);
        free(obj);
    }
}

static void schema_line(void *arg, const char *key, const char *type,
                        bool required, long lo, long hi)
{
    char *out = arg;
    size_t n = strlen(out);

    snprintf(out + n, 1024 - n, "%s%s:%s%s:%ld-%ld", n > 0 ? " " : "", key,
             type, required ? "!" : "", lo, hi);
}

/* The API's body schemas come from the descriptors: what a create and an
 * update may set, with the limits the table holds. */
static void test_descriptor_schema(void **state)
{
    char out[1024] = "";

    (void)state;
    admin_body_schema(admin_asset_fields, true, schema_line, out);
    assert_string_equal(out, "name:string!:1-128 protocol:string:1-15 "
                             "host:string!:1-255 port:int:1-65535 "
                             "login:string:1-128 route:string:1-160 "
                             "host_key_fingerprint:string:1-64");
    out[0] = '\0';
    /* an update: nothing required, optional text may be cleared (null) */
    admin_body_schema(admin_asset_fields, false, schema_line, out);
    assert_non_null(strstr(out, "name:string:1-128"));
    assert_non_null(strstr(out, "login:string_null:1-128"));
    out[0] = '\0';
    /* a user's name is fixed at create */
    admin_body_schema(admin_user_fields, false, schema_line, out);
    assert_string_equal(out, "disabled:bool:0-0");
    out[0] = '\0';
    /* a token is enabled by an update, not at create; "" describes */
    admin_body_schema(admin_token_fields, true, schema_line, out);
    assert_string_equal(out, "description:string:0-256 "
                             "filter_cidrs:list:0-32 filter_paths:list:0-32");
}

/* The single audit event of action on target, or fail. */
static void assert_one_event(struct store *st, const char *action,
                             const char *target, const char *actor)
{
    struct audit_filter flt = {.action = action};
    struct audit_entry *list = NULL;
    size_t n = 0, i, hits = 0;

    assert_int_equal(audit_list(st, &flt, &list, &n), ERR_OK);
    for (i = 0; i < n; i++) {
        if (strcmp(list[i].action, action) == 0 &&
            strcmp(list[i].target, target) == 0) {
            hits++;
            assert_string_equal(list[i].actor, actor);
            assert_string_equal(list[i].source, "test");
        }
    }
    free(list);
    assert_int_equal(hits, 1);
}

static void test_credential_rules(void **state)
{
    struct fx *f = *state;
    struct admin_ctx c = {.st = f->st, .actor = "alice", .source = "test"};
    char secret[64], big[STORE_NAME_MAX + 2];
    struct store_credential cr, got;
    struct admin_notice n;
    struct admin_err e;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(
        admin_credential_add(&c, big, &cr, secret, sizeof(secret), &e),
        ERR_INVALID);
    assert_string_equal(e.msg, "name is limited to 128 characters");
    assert_string_equal(secret, "");

    assert_int_equal(
        admin_credential_add(&c, "edge", &cr, secret, sizeof(secret), &e),
        ERR_OK);
    assert_int_equal(strlen(cr.id), 32);
    assert_true(strlen(secret) >= 40);
    assert_int_equal(store_credential_get(f->st, cr.id, &got), ERR_OK);
    assert_string_equal(got.created_by, "alice");
    /* only the hash is stored, and it is not the secret */
    assert_null(strstr(got.secret_hash, secret));
    assert_one_event(f->st, "credential.add", cr.id, "alice");

    assert_int_equal(admin_credential_delete(&c, "f00d", &n, &e),
                     ERR_NOT_FOUND);
    assert_string_equal(e.msg, "credential 'f00d' not found");
    /* no server to tell: no warning */
    assert_int_equal(admin_credential_delete(&c, cr.id, &n, &e), ERR_OK);
    assert_string_equal(n.warn, "");
    assert_false(n.delivered);
    assert_one_event(f->st, "credential.delete", cr.id, "alice");

    assert_int_equal(admin_agent_delete(&c, "nobody", NULL, &e), ERR_NOT_FOUND);
    assert_string_equal(e.msg, "agent 'nobody' not found");
    assert_int_equal(admin_tunnel_delete(&c, "nope", NULL, &e), ERR_NOT_FOUND);
    assert_string_equal(e.msg, "tunnel 'nope' not found");
    assert_int_equal(admin_tunnel_set_acl(&c, "nope", "10.0.0.0/33",
                                          &(struct store_tunnel){0}, NULL, &e),
                     ERR_INVALID);
    assert_non_null(strstr(e.msg, "acl: "));
}

static void test_token_rules(void **state)
{
    struct admin_token_req req = {.user = "bob", .expires = "2d"};
    struct admin_err e;
    int64_t life = 0;

    (void)state;
    assert_int_equal(admin_token_check(&req, &life, &e), ERR_OK);
    assert_int_equal(life, 2 * 86400);
    req.expires = NULL; /* the default: 30 days */
    assert_int_equal(admin_token_check(&req, &life, &e), ERR_OK);
    assert_int_equal(life, 30 * 86400);
    req.expires = "soon";
    assert_int_equal(admin_token_check(&req, &life, &e), ERR_INVALID);
    assert_string_equal(e.msg, "the expiry needs a duration like 30d, 12h, "
                               "15m or 3600s (at most 10 years)");
    req.expires = "1h";
    req.cidrs = "10.0.0.0/99";
    assert_int_equal(admin_token_check(&req, &life, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "source filter"));
    req.cidrs = "10.0.0.0/8,::1";
    req.paths = "api";
    assert_int_equal(admin_token_check(&req, &life, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "path filter"));
    req.paths = "/api/v1/assets";
    assert_int_equal(admin_token_check(&req, &life, &e), ERR_OK);
}

/* Peer nodes: name, pin or plain HTTP, the token's shape and sealing, via
 * chains without loops; audited without the token. */
static void test_peer_rules(void **state)
{
    struct fx *f = *state;
    struct admin_ctx c = {.st = f->st, .actor = "alice", .source = "test"};
    struct store_peer p, q;
    struct admin_err e;
    struct vault *v = NULL;
    struct audit_entry *ev = NULL;
    struct audit_filter af = {.action = "peer."};
    char key[600], fp[200];
    uint8_t *plain = NULL;
    size_t plen = 0, nev = 0, i;
    json_t *body;
    static const char tok[] = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";

    snprintf(key, sizeof(key), "%s/vault.key", f->dir);
    assert_int_equal(vault_create_key(key), ERR_OK);
    assert_int_equal(vault_load(key, &v), ERR_OK);
    c.vault = v;
    /* lower case, no colons: stored in init's spelling */
    snprintf(fp, sizeof(fp), "sha256:");
    for (i = 0; i < 32; i++) {
        snprintf(fp + strlen(fp), sizeof(fp) - strlen(fp), "%02x",
                 (unsigned)(i * 7 + 1));
    }
    body = json_pack("{s:s, s:s, s:s}", "name", "plant7", "host", "10.20.0.5",
                     "tls_fingerprint", fp);
    assert_int_equal(admin_peer_add(&c, body, "not-a-jwt", &p, &e),
                     ERR_INVALID);
    assert_non_null(strstr(e.msg, "the token must be the peer's API token"));
    assert_int_equal(admin_peer_add(&c, body, tok, &p, &e), ERR_OK);
    json_decref(body);
    assert_int_equal(p.port, ADMIN_PEER_DEFAULT_PORT);
    assert_int_equal(strncmp(p.tls_fingerprint, "SHA256:01:08:0F:", 16), 0);
    assert_int_equal(strlen(p.tls_fingerprint), 7 + 32 * 3 - 1);
    /* the token is sealed to this peer's ID */
    assert_int_equal(store_peer_get(f->st, "plant7", &q), ERR_OK);
    assert_null(memmem(q.token_sealed, q.token_sealed_len, tok, 10));
    {
        char ad[VAULT_AD_MAX];
        vault_ad(ad, VAULT_AD_PEER_TOKEN, q.id);
        assert_int_equal(vault_open(v, ad, q.token_sealed, q.token_sealed_len,
                                    &plain, &plen),
                         ERR_OK);
        assert_string_equal((char *)plain, tok);
        vault_secret_free(plain, plen);
        vault_ad(ad, VAULT_AD_PEER_TOKEN,
                 "00000000-0000-4000-8000-000000000000");
        assert_int_not_equal(vault_open(v, ad, q.token_sealed,
                                        q.token_sealed_len, &plain, &plen),
                             ERR_OK);
    }
    /* refusals */
    body = json_pack("{s:s, s:s}", "name", "bad name", "host", "10.0.0.1");
    assert_int_equal(admin_peer_add(&c, body, tok, &p, &e), ERR_INVALID);
    json_decref(body);
    body = json_pack("{s:s, s:s}", "name", "nopin", "host", "10.0.0.1");
    assert_int_equal(admin_peer_add(&c, body, tok, &p, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "TLS fingerprint is needed"));
    json_decref(body);
    body = json_pack("{s:s, s:s, s:s, s:b}", "name", "both", "host", "10.0.0.1",
                     "tls_fingerprint", fp, "plain_http", 1);
    assert_int_equal(admin_peer_add(&c, body, tok, &p, &e), ERR_INVALID);
    json_decref(body);
    body = json_pack("{s:s, s:s, s:s}", "name", "shortpin", "host", "10.0.0.1",
                     "tls_fingerprint", "SHA256:AB:CD");
    assert_int_equal(admin_peer_add(&c, body, tok, &p, &e), ERR_INVALID);
    json_decref(body);
    /* a chain, then the loop it would make */
    body = json_pack("{s:s, s:s, s:b, s:s}", "name", "inner", "host",
                     "10.30.0.5", "plain_http", 1, "via", "peer:plant7");
    assert_int_equal(admin_peer_add(&c, body, tok, &p, &e), ERR_OK);
    json_decref(body);
    body = json_pack("{s:s}", "via", "peer:inner");
    assert_int_equal(admin_peer_update(&c, "plant7", body, NULL, &p, &e),
                     ERR_INVALID);
    assert_non_null(strstr(e.msg, "would make a loop back to peer plant7"));
    json_decref(body);
    body = json_pack("{s:s}", "via", "peer:nosuch");
    assert_int_equal(admin_peer_update(&c, "inner", body, NULL, &p, &e),
                     ERR_NOT_FOUND);
    json_decref(body);
    assert_int_equal(admin_peer_delete(&c, "plant7", &e), ERR_DENIED);
    assert_non_null(strstr(e.msg, "still the route of 1"));
    assert_int_equal(admin_peer_delete(&c, "inner", &e), ERR_OK);
    assert_int_equal(admin_peer_delete(&c, "plant7", &e), ERR_OK);
    /* audited: add, add, delete, delete; never the token */
    assert_int_equal(audit_list(f->st, &af, &ev, &nev), ERR_OK);
    assert_int_equal(nev, 4);
    for (i = 0; i < nev; i++) {
        assert_null(strstr(ev[i].detail, tok));
        assert_string_equal(ev[i].actor, "alice");
    }
    free(ev);
    vault_free(v);
}

/* The JSON forms of a tunnel, a credential (never its hash) and an
 * agent (its facts need not be UTF-8) by their descriptors: what the CLI's
 * --json and the API print. */
static void test_agent_side_json(void **state)
{
    struct store_tunnel t;
    struct store_credential c;
    struct store_agent *a = calloc(1, sizeof(*a));
    char *dump;
    json_t *j;

    (void)state;
    assert_non_null(a);
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "00000000-0000-4000-8000-000000000000");
    snprintf(t.agent_id, sizeof(t.agent_id), "ag");
    snprintf(t.remote_host, sizeof(t.remote_host), "::1");
    t.remote_port = 22;
    t.local_port = 20000;
    snprintf(t.acl, sizeof(t.acl), "10.0.0.0/8,::1/128");
    j = admin_json_encode(admin_tunnel_fields, &t);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")),
                        "pending");
    assert_string_equal(json_string_value(json_object_get(j, "protocol")),
                        "tcp");
    assert_int_equal(json_array_size(json_object_get(j, "acl")), 2);
    assert_true(json_is_null(json_object_get(j, "last_used")));
    json_decref(j);

    /* a credential's JSON never holds its hash */
    memset(&c, 0, sizeof(c));
    snprintf(c.id, sizeof(c.id), "0123456789abcdef0123456789abcdef");
    snprintf(c.secret_hash, sizeof(c.secret_hash), "$argon2id$secret-hash");
    j = admin_json_encode(admin_credential_fields, &c);
    assert_non_null(j);
    assert_null(json_object_get(j, "secret_hash"));
    dump = json_dumps(j, 0);
    assert_non_null(dump);
    assert_null(strstr(dump, "argon2id"));
    free(dump);
    json_decref(j);

    /* facts that are not UTF-8 do not fail the answer */
    snprintf(a->id, sizeof(a->id), "ag");
    snprintf(a->hostname, sizeof(a->hostname), "bad\xff\xfehost");
    snprintf(a->tags, sizeof(a->tags), "[\"x\"]");
    j = admin_agent_json(NULL, a);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "hostname")),
                        "bad??host");
    assert_int_equal(json_array_size(json_object_get(j, "tags")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "addresses")), 0);
    json_decref(j);
    free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_profile_rules, setup, teardown),
        cmocka_unit_test(test_profile_descriptor),
        cmocka_unit_test(test_pubkey_parse),
        cmocka_unit_test(test_validators),
        cmocka_unit_test_setup_teardown(test_asset_rules_and_sealing, setup,
                                        teardown),
        cmocka_unit_test(test_descriptor_encode),
        cmocka_unit_test(test_descriptor_apply),
        cmocka_unit_test(test_descriptor_tables),
        cmocka_unit_test(test_descriptor_schema),
        cmocka_unit_test_setup_teardown(test_credential_rules, setup, teardown),
        cmocka_unit_test(test_token_rules),
        cmocka_unit_test(test_agent_side_json),
        cmocka_unit_test_setup_teardown(test_peer_rules, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
