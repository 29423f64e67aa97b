/*
 * The monitor's own check of users' public-key signatures
 * (sshproxy/userauth_sig.h) and the host-key signing behind it
 * (sshproxy/hostkeys.h), with real keys made by libssh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "sshproxy/hostkeys.h"
#include "sshproxy/libssh_priv.h"
#include "sshproxy/userauth_sig.h"

struct signed_req {
    struct buf *data;
    uint8_t sig[HOSTKEYS_BLOB_MAX];
    size_t slen;
};

static const uint8_t sid[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};

/* The bytes a client signs for a "publickey" request (RFC 4252 §7). */
static struct buf *make_data(const uint8_t *session_id, size_t sidlen,
                             const char *user, const char *service,
                             const char *alg, ssh_key key, uint8_t flag)
{
    struct buf *b = buf_new(USERAUTH_DATA_MAX);
    ssh_string blob = NULL;

    assert_non_null(b);
    assert_int_equal(ssh_pki_export_pubkey_blob(key, &blob), SSH_OK);
    assert_int_equal(
        buf_put_string(b, session_id, sidlen) || buf_put_u8(b, 50) ||
            buf_put_cstring(b, user) || buf_put_cstring(b, service) ||
            buf_put_cstring(b, "publickey") || buf_put_u8(b, flag) ||
            buf_put_cstring(b, alg) ||
            buf_put_string(b, ssh_string_data(blob), ssh_string_len(blob)),
        ERR_OK);
    ssh_string_free(blob);
    return b;
}

static void sign(ssh_key key, enum lsp_digest hash, struct signed_req *r)
{
    lsp_signature s =
        pki_do_sign(key, buf_ptr(r->data), buf_avail(r->data), hash);
    ssh_string blob = NULL;

    assert_non_null(s);
    assert_int_equal(ssh_pki_export_signature_blob(s, &blob), SSH_OK);
    assert_true(ssh_string_len(blob) <= sizeof(r->sig));
    memcpy(r->sig, ssh_string_data(blob), ssh_string_len(blob));
    r->slen = ssh_string_len(blob);
    ssh_string_free(blob);
    ssh_signature_free(s);
}

static int check(ssh_session ctx, const char *login, struct signed_req *r)
{
    ssh_key k = NULL;
    int rc = userauth_sig_check(ctx, sid, sizeof(sid), login, buf_ptr(r->data),
                                buf_avail(r->data), r->sig, r->slen, &k);

    if (rc == ERR_OK) {
        assert_non_null(k);
    } else {
        assert_null(k);
    }
    ssh_key_free(k);
    return rc;
}

static void test_each_key_type(void **state)
{
    static const struct {
        enum ssh_keytypes_e type;
        int bits;
        const char *alg;
        enum lsp_digest hash;
    } t[] = {
        {SSH_KEYTYPE_ED25519, 0, "ssh-ed25519", LSP_DIGEST_AUTO},
        {SSH_KEYTYPE_ECDSA_P256, 256, "ecdsa-sha2-nistp256", LSP_DIGEST_SHA256},
        {SSH_KEYTYPE_RSA, 2048, "rsa-sha2-512", LSP_DIGEST_SHA512},
        {SSH_KEYTYPE_RSA, 2048, "rsa-sha2-256", LSP_DIGEST_SHA256},
    };
    ssh_session ctx = ssh_new();

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        struct signed_req r;
        ssh_key key = NULL;

        assert_int_equal(ssh_pki_generate(t[i].type, t[i].bits, &key), SSH_OK);
        r.data = make_data(sid, sizeof(sid), "alice#db", "ssh-connection",
                           t[i].alg, key, 1);
        sign(key, t[i].hash, &r);
        assert_int_equal(check(ctx, "alice#db", &r), ERR_OK);
        /* Another login, one flipped byte of the signature. */
        assert_int_equal(check(ctx, "mallory#db", &r), ERR_AUTH);
        r.sig[r.slen - 1] ^= 1;
        assert_int_equal(check(ctx, "alice#db", &r), ERR_AUTH);
        buf_free(r.data);
        ssh_key_free(key);
    }
    ssh_free(ctx);
}

static void test_refusals(void **state)
{
    ssh_session ctx = ssh_new();
    ssh_key key = NULL, other = NULL, rsa = NULL;
    uint8_t sid2[32];
    struct signed_req r;

    (void)state;
    memset(sid2, 7, sizeof(sid2));
    assert_int_equal(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key), SSH_OK);
    assert_int_equal(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &other), SSH_OK);
    assert_int_equal(ssh_pki_generate(SSH_KEYTYPE_RSA, 2048, &rsa), SSH_OK);

    /* Signed over another session's identifier (a replay). */
    r.data = make_data(sid2, sizeof(sid2), "alice", "ssh-connection",
                       "ssh-ed25519", key, 1);
    sign(key, LSP_DIGEST_AUTO, &r);
    assert_int_equal(check(ctx, "alice", &r), ERR_AUTH);
    buf_free(r.data);

    /* The data names key, another key signed it. */
    r.data = make_data(sid, sizeof(sid), "alice", "ssh-connection",
                       "ssh-ed25519", key, 1);
    sign(other, LSP_DIGEST_AUTO, &r);
    assert_int_equal(check(ctx, "alice", &r), ERR_AUTH);
    buf_free(r.data);

    /* Another service, or the "no signature" flag. */
    r.data = make_data(sid, sizeof(sid), "alice", "ssh-userauth", "ssh-ed25519",
                       key, 1);
    sign(key, LSP_DIGEST_AUTO, &r);
    assert_int_equal(check(ctx, "alice", &r), ERR_AUTH);
    buf_free(r.data);
    r.data = make_data(sid, sizeof(sid), "alice", "ssh-connection",
                       "ssh-ed25519", key, 0);
    sign(key, LSP_DIGEST_AUTO, &r);
    assert_int_equal(check(ctx, "alice", &r), ERR_AUTH);
    buf_free(r.data);

    /* SHA-1 RSA ("ssh-rsa") is refused, and so is a request that names
     * rsa-sha2-512 with a signature made as rsa-sha2-256. */
    r.data = make_data(sid, sizeof(sid), "alice", "ssh-connection", "ssh-rsa",
                       rsa, 1);
    sign(rsa, LSP_DIGEST_SHA1, &r);
    assert_int_equal(check(ctx, "alice", &r), ERR_AUTH);
    buf_free(r.data);
    r.data = make_data(sid, sizeof(sid), "alice", "ssh-connection",
                       "rsa-sha2-512", rsa, 1);
    sign(rsa, LSP_DIGEST_SHA256, &r);
    assert_int_equal(check(ctx, "alice", &r), ERR_AUTH);
    buf_free(r.data);

    /* Trailing bytes after the key blob. */
    r.data = make_data(sid, sizeof(sid), "alice", "ssh-connection",
                       "ssh-ed25519", key, 1);
    assert_int_equal(buf_put_u8(r.data, 0), ERR_OK);
    sign(key, LSP_DIGEST_AUTO, &r);
    assert_int_equal(check(ctx, "alice", &r), ERR_AUTH);
    buf_free(r.data);

    ssh_key_free(key);
    ssh_key_free(other);
    ssh_key_free(rsa);
    ssh_free(ctx);
}

static void test_parse(void **state)
{
    struct userauth_fields f;
    ssh_key key = NULL;
    struct buf *d;

    (void)state;
    assert_int_equal(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key), SSH_OK);
    d = make_data(sid, sizeof(sid), "bob#x", "ssh-connection", "ssh-ed25519",
                  key, 1);
    assert_int_equal(userauth_parse(buf_ptr(d), buf_avail(d), &f), ERR_OK);
    assert_int_equal(f.session_id_len, sizeof(sid));
    assert_memory_equal(f.session_id, sid, sizeof(sid));
    assert_int_equal(f.user_len, 5);
    assert_memory_equal(f.user, "bob#x", 5);
    /* Every truncation is refused. */
    for (size_t n = 0; n < buf_avail(d); n++) {
        assert_int_equal(userauth_parse(buf_ptr(d), n, &f), ERR_PROTO);
        assert_null(f.user);
    }
    buf_free(d);
    ssh_key_free(key);
}

/* The monitor signs only digest-sized data, with a key it has. */
static void test_hostkeys_sign(void **state)
{
    char path[] = "/tmp/test_userauth_sig.XXXXXX";
    const char *paths[1];
    struct hostkeys hk;
    struct hostkey_standins si;
    struct buf *b = buf_new(0), *pub = buf_new(0);
    const uint8_t *p = NULL;
    ssh_string blob = NULL;
    lsp_signature s = NULL;
    ssh_key key = NULL;
    uint8_t h[32] = {9};
    size_t n = 0;
    int fd;

    (void)state;
    assert_int_equal(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key), SSH_OK);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    assert_int_equal(ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path),
                     SSH_OK);
    paths[0] = path;
    assert_int_equal(hostkeys_load(&hk, paths, 1), ERR_OK);
    unlink(path);

    assert_int_equal(
        hostkeys_sign(&hk, "ssh-ed25519", LSP_DIGEST_AUTO, h, sizeof(h), b),
        ERR_OK);
    assert_int_equal(buf_get_string_ptr(b, HOSTKEYS_BLOB_MAX, &p, &n), ERR_OK);
    blob = ssh_string_new(n);
    assert_int_equal(ssh_string_fill(blob, p, n), 0);
    assert_int_equal(ssh_pki_import_signature_blob(blob, key, &s), SSH_OK);
    {
        /* libssh verifies with public keys only. */
        ssh_session ctx = ssh_new();
        ssh_key pubk = NULL;

        assert_int_equal(ssh_pki_export_privkey_to_pubkey(key, &pubk), SSH_OK);
        assert_int_equal(ssh_pki_signature_verify(ctx, s, pubk, h, sizeof(h)),
                         SSH_OK);
        h[0] ^= 1;
        assert_int_not_equal(
            ssh_pki_signature_verify(ctx, s, pubk, h, sizeof(h)), SSH_OK);
        h[0] ^= 1;
        ssh_key_free(pubk);
        ssh_free(ctx);
    }
    ssh_signature_free(s);
    ssh_string_free(blob);
    buf_reset(b);
    assert_int_equal(
        hostkeys_sign(&hk, "ssh-ed25519", LSP_DIGEST_AUTO, h, 31, b),
        ERR_INVALID);
    assert_int_equal(hostkeys_sign(&hk, "ecdsa-sha2-nistp256",
                                   LSP_DIGEST_SHA256, h, sizeof(h), b),
                     ERR_NOT_FOUND);

    /* The stand-ins: same type, not the same key; the public half is. */
    assert_int_equal(hostkeys_put_public(&hk, pub), ERR_OK);
    assert_int_equal(hostkeys_standins_make(pub, &si), ERR_OK);
    assert_int_equal(si.n, 1);
    assert_int_equal(ssh_key_cmp(si.pub[0], key, SSH_KEY_CMP_PUBLIC), 0);
    assert_int_not_equal(ssh_key_cmp(si.stand_in[0], key, SSH_KEY_CMP_PUBLIC),
                         0);
    assert_int_equal(ssh_key_type(si.stand_in[0]), SSH_KEYTYPE_ED25519);
    hostkeys_standins_free(&si);

    hostkeys_free(&hk);
    ssh_key_free(key);
    buf_free(b);
    buf_free(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_key_type),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_hostkeys_sign),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
