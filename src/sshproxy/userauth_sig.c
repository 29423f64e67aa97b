/*
 * The monitor's check of a user's public-key signature (userauth_sig.h).
 */
#include "sshproxy/userauth_sig.h"

#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/err.h"
#include "sshproxy/libssh_priv.h"

#define USERAUTH_REQUEST 50 /* SSH_MSG_USERAUTH_REQUEST */

static bool userauth_is(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

int userauth_parse(const uint8_t *data, size_t len, struct userauth_fields *f)
{
    const uint8_t *base, *p = NULL;
    struct buf *b = NULL;
    uint8_t type = 0, flag = 0;
    size_t n = 0;
    int r = ERR_PROTO;

    memset(f, 0, sizeof(*f));
    if (data == NULL || len == 0 || len > USERAUTH_DATA_MAX ||
        (b = buf_new(len)) == NULL || buf_put(b, data, len) != ERR_OK) {
        goto out;
    }
    base = buf_ptr(b);
#define UA_AT(ptr) (data + ((ptr)-base))
    if (buf_get_string_ptr(b, 64, &p, &n) != ERR_OK || n == 0) {
        goto out;
    }
    f->session_id = UA_AT(p);
    f->session_id_len = n;
    if (buf_get_u8(b, &type) != ERR_OK || type != USERAUTH_REQUEST ||
        buf_get_string_ptr(b, 1024, &p, &n) != ERR_OK) {
        goto out;
    }
    f->user = UA_AT(p);
    f->user_len = n;
    if (buf_get_string_ptr(b, 64, &p, &n) != ERR_OK ||
        !userauth_is(p, n, "ssh-connection") ||
        buf_get_string_ptr(b, 64, &p, &n) != ERR_OK ||
        !userauth_is(p, n, "publickey") || buf_get_u8(b, &flag) != ERR_OK ||
        flag != 1 || buf_get_string_ptr(b, 64, &p, &n) != ERR_OK || n == 0) {
        goto out;
    }
    f->alg = UA_AT(p);
    f->alg_len = n;
    if (buf_get_string_ptr(b, USERAUTH_DATA_MAX, &p, &n) != ERR_OK || n == 0) {
        goto out;
    }
    f->key = UA_AT(p);
    f->key_len = n;
#undef UA_AT
    r = buf_expect_end(b);
out:
    buf_free(b);
    if (r != ERR_OK) {
        memset(f, 0, sizeof(*f));
    }
    return r;
}

/* The signature algorithms a key type may use; SHA-1 "ssh-rsa" is not
 * among them, as in OpenSSH 8.8 and later. */
static bool userauth_alg_fits(enum ssh_keytypes_e t, const uint8_t *alg,
                              size_t n)
{
    switch (t) {
    case SSH_KEYTYPE_ED25519:
        return userauth_is(alg, n, "ssh-ed25519");
    case SSH_KEYTYPE_ECDSA_P256:
        return userauth_is(alg, n, "ecdsa-sha2-nistp256");
    case SSH_KEYTYPE_ECDSA_P384:
        return userauth_is(alg, n, "ecdsa-sha2-nistp384");
    case SSH_KEYTYPE_ECDSA_P521:
        return userauth_is(alg, n, "ecdsa-sha2-nistp521");
    case SSH_KEYTYPE_RSA:
        return userauth_is(alg, n, "rsa-sha2-256") ||
               userauth_is(alg, n, "rsa-sha2-512");
    default:
        return false;
    }
}

/* The algorithm name at the start of a signature blob must be the one
 * the request names (no RSA hash downgrade between the two). */
static bool userauth_sig_alg_is(const uint8_t *sig, size_t slen,
                                const uint8_t *alg, size_t n)
{
    const uint8_t *p = NULL;
    struct buf *b = buf_new(slen);
    size_t len = 0;
    bool ok;

    ok = b != NULL && buf_put(b, sig, slen) == ERR_OK &&
         buf_get_string_ptr(b, 64, &p, &len) == ERR_OK && len == n &&
         memcmp(p, alg, n) == 0;
    buf_free(b);
    return ok;
}

int userauth_sig_check(ssh_session ctx, const uint8_t *session_id,
                       size_t session_id_len, const char *login,
                       const uint8_t *data, size_t dlen, const uint8_t *sig,
                       size_t slen, ssh_key *key)
{
    struct userauth_fields f;
    ssh_string kblob = NULL, sblob = NULL;
    lsp_signature s = NULL;
    ssh_key k = NULL;
    int r = ERR_AUTH;

    *key = NULL;
    if (ctx == NULL || session_id == NULL || session_id_len == 0 ||
        login == NULL || sig == NULL || slen == 0 || slen > USERAUTH_DATA_MAX ||
        userauth_parse(data, dlen, &f) != ERR_OK) {
        goto out;
    }
    /* Signed for this session of ours, by this login. */
    if (f.session_id_len != session_id_len ||
        sodium_memcmp(f.session_id, session_id, session_id_len) != 0 ||
        !userauth_is(f.user, f.user_len, login)) {
        goto out;
    }
    if ((kblob = ssh_string_new(f.key_len)) == NULL ||
        ssh_string_fill(kblob, f.key, f.key_len) != 0 ||
        ssh_pki_import_pubkey_blob(kblob, &k) != SSH_OK ||
        !userauth_alg_fits(ssh_key_type(k), f.alg, f.alg_len) ||
        !userauth_sig_alg_is(sig, slen, f.alg, f.alg_len)) {
        goto out;
    }
    if ((sblob = ssh_string_new(slen)) == NULL ||
        ssh_string_fill(sblob, sig, slen) != 0 ||
        ssh_pki_import_signature_blob(sblob, k, &s) != SSH_OK ||
        ssh_pki_signature_verify(ctx, s, k, data, dlen) != SSH_OK) {
        goto out;
    }
    *key = k;
    k = NULL;
    r = ERR_OK;
out:
    ssh_signature_free(s);
    ssh_string_free(sblob);
    ssh_string_free(kblob);
    ssh_key_free(k);
    return r;
}
