/*
 * SSH host keys under privilege separation (hostkeys.h): the monitor's
 * private keys and its signing of exchange hashes, and the public halves
 * and stand-in keys the spawner and the session children hold.
 */
#include "sshproxy/hostkeys.h"

#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "sshproxy/libssh_priv.h"

int hostkeys_load(struct hostkeys *hk, const char *const *paths, size_t n)
{
    size_t i, j;

    memset(hk, 0, sizeof(*hk));
    if (n == 0 || n > HOSTKEYS_MAX) {
        return ERR_CONFIG;
    }
    for (i = 0; i < n; i++) {
        ssh_key k = NULL;

        if (ssh_pki_import_privkey_file(paths[i], NULL, NULL, NULL, &k) !=
            SSH_OK) {
            log_error("cannot read the SSH host key %s", paths[i]);
            hostkeys_free(hk);
            return ERR_CONFIG;
        }
        for (j = 0; j < hk->n; j++) {
            if (ssh_key_type(hk->keys[j]) == ssh_key_type(k)) {
                log_error("two SSH host keys of type %s (%s)",
                          ssh_key_type_to_char(ssh_key_type(k)), paths[i]);
                ssh_key_free(k);
                hostkeys_free(hk);
                return ERR_CONFIG;
            }
        }
        hk->keys[hk->n++] = k;
    }
    return ERR_OK;
}

int hostkeys_adopt(struct hostkeys *hk, ssh_key *keys, size_t n)
{
    size_t i;

    hostkeys_free(hk);
    if (n == 0 || n > HOSTKEYS_MAX) {
        return ERR_CONFIG;
    }
    for (i = 0; i < n; i++) {
        hk->keys[hk->n++] = keys[i];
        keys[i] = NULL;
    }
    return ERR_OK;
}

void hostkeys_free(struct hostkeys *hk)
{
    size_t i;

    for (i = 0; i < hk->n; i++) {
        ssh_key_free(hk->keys[i]);
        hk->keys[i] = NULL;
    }
    hk->n = 0;
}

int hostkeys_put_public(const struct hostkeys *hk, struct buf *b)
{
    size_t i;
    int r;

    if ((r = buf_put_u8(b, (uint8_t)hk->n)) != ERR_OK) {
        return r;
    }
    for (i = 0; i < hk->n; i++) {
        ssh_string blob = NULL;

        if (ssh_pki_export_pubkey_blob(hk->keys[i], &blob) != SSH_OK) {
            return ERR_CRYPTO;
        }
        r = buf_put_string(b, ssh_string_data(blob), ssh_string_len(blob));
        ssh_string_free(blob);
        if (r != ERR_OK) {
            return r;
        }
    }
    return ERR_OK;
}

int hostkeys_sign(const struct hostkeys *hk, const char *type, uint8_t hash,
                  const uint8_t *data, size_t len, struct buf *out)
{
    enum ssh_keytypes_e want = ssh_key_type_from_name(type);
    lsp_signature sig = NULL;
    ssh_string blob = NULL;
    ssh_key key = NULL;
    size_t i;
    int r;

    /* Only what a key exchange signs: a digest of a known size. */
    if (want == SSH_KEYTYPE_UNKNOWN || hash > LSP_DIGEST_SHA512 ||
        (len != 20 && len != 32 && len != 48 && len != 64)) {
        return ERR_INVALID;
    }
    for (i = 0; i < hk->n; i++) {
        if (ssh_key_type(hk->keys[i]) == want) {
            key = hk->keys[i];
        }
    }
    if (key == NULL) {
        return ERR_NOT_FOUND;
    }
    /* pki_do_sign refuses a digest the key type does not use. */
    sig = pki_do_sign(key, data, len, (enum lsp_digest)hash);
    if (sig == NULL) {
        return ERR_INVALID;
    }
    r = ssh_pki_export_signature_blob(sig, &blob) == SSH_OK ? ERR_OK
                                                            : ERR_CRYPTO;
    ssh_signature_free(sig);
    if (r == ERR_OK) {
        r = buf_put_string(out, ssh_string_data(blob), ssh_string_len(blob));
    }
    ssh_string_free(blob);
    return r;
}

/* A private key of the same type as pub, to stand in for it. */
static ssh_key hostkeys_stand_in(ssh_key pub)
{
    enum ssh_keytypes_e t = ssh_key_type(pub);
    ssh_key k = NULL;
    int bits = 0;

    switch (t) {
    case SSH_KEYTYPE_RSA:
        /* The size of a stand-in does not matter (it signs nothing a
         * client sees); 2048 bits pass libssh's minimum and are quick to
         * make at start. */
        bits = 2048;
        break;
    case SSH_KEYTYPE_ECDSA_P256:
        bits = 256;
        break;
    case SSH_KEYTYPE_ECDSA_P384:
        bits = 384;
        break;
    case SSH_KEYTYPE_ECDSA_P521:
        bits = 521;
        break;
    case SSH_KEYTYPE_ED25519:
        break;
    default:
        return NULL;
    }
    if (ssh_pki_generate(t, bits, &k) != SSH_OK) {
        return NULL;
    }
    return k;
}

int hostkeys_standins_make(struct buf *b, struct hostkey_standins *s)
{
    const uint8_t *p = NULL;
    uint8_t n = 0;
    size_t len = 0, i;

    memset(s, 0, sizeof(*s));
    if (buf_get_u8(b, &n) != ERR_OK || n == 0 || n > HOSTKEYS_MAX) {
        return ERR_PROTO;
    }
    for (i = 0; i < n; i++) {
        if (buf_get_string_ptr(b, HOSTKEYS_BLOB_MAX, &p, &len) != ERR_OK ||
            (s->blob[i] = ssh_string_new(len)) == NULL ||
            ssh_string_fill(s->blob[i], p, len) != 0) {
            hostkeys_standins_free(s);
            return ERR_PROTO;
        }
        s->n = i + 1;
        if (ssh_pki_import_pubkey_blob(s->blob[i], &s->pub[i]) != SSH_OK ||
            (s->stand_in[i] = hostkeys_stand_in(s->pub[i])) == NULL) {
            hostkeys_standins_free(s);
            return ERR_CRYPTO;
        }
    }
    return ERR_OK;
}

void hostkeys_standins_free(struct hostkey_standins *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        ssh_key_free(s->pub[i]);
        ssh_string_free(s->blob[i]);
        ssh_key_free(s->stand_in[i]);
        s->pub[i] = s->stand_in[i] = NULL;
        s->blob[i] = NULL;
    }
    s->n = 0;
}

int hostkeys_standins_bind(const struct hostkey_standins *s, ssh_bind bind)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        /* The bind takes ownership of the key it is given. */
        ssh_key copy = ssh_key_dup(s->stand_in[i]);

        if (copy == NULL ||
            ssh_bind_options_set(bind, SSH_BIND_OPTIONS_IMPORT_KEY, copy) !=
                SSH_OK) {
            ssh_key_free(copy);
            return ERR_INTERNAL;
        }
    }
    return ERR_OK;
}
