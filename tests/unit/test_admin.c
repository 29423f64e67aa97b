/*
 * The admin layer (src/admin/): the rules both the CLI and the API go
 * through. Profiles (the descriptor table and the rule it cannot say),
 * public keys (type, blob, canonical base64, comment length), the host
 * and fingerprint validators, assets (defaults, checks, sealing under
 * the vault's associated data) and the vault_ad spelling.
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
#include "common/err.h"
#include "common/vault.h"
#include "store_fx.h"

/* An ed25519 public key, made with ssh-keygen for this test. */
#define ED_B64                                                                 \
    "AAAAC3NzaC1lZDI1NTE5AAAAIG3GkinxOXl7iY4TBuCp1JmqPmLMc3cG4HvOa3hK4U7c"

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_admin.XXXXXX");
}

static void test_profile_rules(void **state)
{
    struct fx *f = *state;
    struct store_profile p, got;
    struct admin_err e;

    admin_profile_defaults(&p);
    assert_true(p.shell && p.exec && p.sftp && p.scp);
    assert_false(p.local_forward || p.x11 || p.record_input);
    snprintf(p.name, sizeof(p.name), "ops");
    p.native = NATIVE_ALLOW;
    p.record_input = true;
    assert_int_equal(admin_profile_add(f->st, &p, &e), ERR_INVALID);
    assert_string_equal(e.msg,
                        "record input needs native sessions set to record");
    assert_int_equal(store_profile_get(f->st, "ops", &got), ERR_NOT_FOUND);
    p.native = NATIVE_RECORD;
    p.max_session_minutes = ADMIN_MINUTES_MAX + 1;
    assert_int_equal(admin_profile_add(f->st, &p, &e), ERR_INVALID);
    assert_non_null(strstr(e.msg, "527040"));
    p.max_session_minutes = ADMIN_MINUTES_MAX;
    assert_int_equal(admin_profile_add(f->st, &p, &e), ERR_OK);
    assert_int_equal(store_profile_get(f->st, "ops", &got), ERR_OK);
    assert_int_equal(got.max_session_minutes, 527040);
    /* an update is held to the same rule */
    got.native = NATIVE_DENY;
    assert_int_equal(admin_profile_update(f->st, &got, &e), ERR_INVALID);
    assert_int_equal(admin_profile_add(f->st, &p, &e), ERR_EXISTS);
    assert_string_equal(e.msg, "profile 'ops' already exists");
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
           "\"record\",\"record_input\":false,\"remote_forward\":false,"
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
    assert_int_equal(admin_asset_add(f->st, &a, &e), ERR_INVALID);
    assert_string_equal(e.msg, "protocol must be ssh, rdp or tcp");
    snprintf(a.protocol, sizeof(a.protocol), "tcp");
    /* a sealed login needs a login user */
    assert_int_equal(admin_asset_seal_password(v, &a, "pw", &e), ERR_OK);
    assert_int_equal(admin_asset_add(f->st, &a, &e), ERR_INVALID);
    assert_string_equal(e.msg, "a vaulted password or key needs a login");
    snprintf(a.login_user, sizeof(a.login_user), "ops");
    assert_int_equal(admin_asset_seal_key(v, &a, "not a key", 9, &e),
                     ERR_INVALID);
    assert_int_equal(admin_asset_add(f->st, &a, &e), ERR_OK);
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
    assert_int_equal(admin_asset_retrust(f->st, a.id, "SHA256:x", &e),
                     ERR_INVALID);
    assert_string_equal(e.msg, admin_msg_fingerprint);
    store_asset_clear(&got);
    store_asset_clear(&a);
    vault_free(v);
    unlink(key);
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
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
