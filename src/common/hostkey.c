/*
 * SSH host key fingerprints; see hostkey.h.
 *
 * The key is read with libssh's pki functions (a private key file as
 * `portcullis init` writes it, or a public key file), hashed with
 * ssh_get_publickey_hash(SHA256) over the public key blob, and encoded
 * here: "SHA256:" and the unpadded standard base64 of the 32 bytes, which
 * is exactly what `ssh-keygen -lf` prints. We do not use
 * ssh_get_fingerprint_hash() for the text because its form has changed
 * between libssh releases, and an agent compares the string byte for byte.
 */
#include "common/hostkey.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>
#include <sodium.h>

#include "common/err.h"
#include "common/util.h"

#define HOSTKEY_SHA256_LEN 32

/* A key file protected by a passphrase is not one we can use: say no
 * rather than prompt. */
static int hostkey_no_passphrase(const char *prompt, char *buf, size_t len,
                                 int echo, int verify, void *userdata)
{
    return -1;
}

int hostkey_fingerprint(const char *path, char *out, size_t outlen)
{
    char b64[sodium_base64_ENCODED_LEN(
        HOSTKEY_SHA256_LEN, sodium_base64_VARIANT_ORIGINAL_NO_PADDING)];
    unsigned char *hash = NULL;
    size_t hlen = 0;
    ssh_key key = NULL;
    int r = ERR_IO;

    if (out == NULL || outlen == 0) {
        return ERR_INVALID;
    }
    out[0] = '\0';
    if (path == NULL) {
        return ERR_IO;
    }
    if (ssh_pki_import_privkey_file(path, NULL, hostkey_no_passphrase, NULL,
                                    &key) != SSH_OK &&
        ssh_pki_import_pubkey_file(path, &key) != SSH_OK) {
        key = NULL;
        goto out;
    }
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) !=
            SSH_OK ||
        hlen != HOSTKEY_SHA256_LEN) {
        r = ERR_CRYPTO;
        goto out;
    }
    sodium_bin2base64(b64, sizeof(b64), hash, hlen,
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    if (outlen < 7 + strlen(b64) + 1) {
        r = ERR_TOO_LONG;
        goto out;
    }
    memcpy(out, "SHA256:", 7);
    memcpy(out + 7, b64, strlen(b64) + 1);
    r = ERR_OK;
out:
    ssh_clean_pubkey_hash(&hash);
    ssh_key_free(key);
    return r;
}

const char *hostkey_type_name(enum hostkey_type type)
{
    switch (type) {
    case HOSTKEY_ED25519:
        return "ed25519";
    case HOSTKEY_ECDSA:
        return "ecdsa";
    case HOSTKEY_RSA:
        return "rsa";
    }
    return "?";
}

int hostkey_create(const char *path, enum hostkey_type type, char *fp,
                   size_t fplen)
{
    enum ssh_keytypes_e kt;
    ssh_key key = NULL;
    char *priv = NULL, *pub = NULL, *line = NULL, *pubpath = NULL;
    bool wrote_priv = false;
    int bits = 0, n, r = ERR_CRYPTO;

    switch (type) {
    case HOSTKEY_ED25519:
        kt = SSH_KEYTYPE_ED25519;
        break;
    case HOSTKEY_ECDSA:
        kt = SSH_KEYTYPE_ECDSA_P256;
        bits = 256;
        break;
    case HOSTKEY_RSA:
        kt = SSH_KEYTYPE_RSA;
        bits = HOSTKEY_RSA_BITS;
        break;
    default:
        return ERR_INVALID;
    }
    if (asprintf(&pubpath, "%s.pub", path) < 0) {
        pubpath = NULL;
        r = ERR_NOMEM;
        goto out;
    }
    if (ssh_pki_generate(kt, bits, &key) != SSH_OK ||
        ssh_pki_export_privkey_base64(key, NULL, NULL, NULL, &priv) != SSH_OK ||
        ssh_pki_export_pubkey_base64(key, &pub) != SSH_OK) {
        r = ERR_CRYPTO;
        goto out;
    }
    if ((n = asprintf(&line, "%s %s\n", ssh_key_type_to_char(ssh_key_type(key)),
                      pub)) < 0) {
        line = NULL;
        r = ERR_NOMEM;
        goto out;
    }
    if ((r = util_write_file_excl(path, priv, strlen(priv), 0600)) != ERR_OK) {
        goto out;
    }
    wrote_priv = true;
    if ((r = util_write_file_excl(pubpath, line, (size_t)n, 0644)) != ERR_OK) {
        goto out;
    }
    /* The CLI's umask is 077; a public key may be read by anyone. */
    (void)chmod(pubpath, 0644);
    /* From the file just written, as the server will load it. */
    r = hostkey_fingerprint(path, fp, fplen);
    if (r != ERR_OK) {
        (void)unlink(pubpath);
    }
out:
    if (r != ERR_OK && wrote_priv) {
        (void)unlink(path);
    }
    if (priv != NULL) {
        sodium_memzero(priv, strlen(priv));
        ssh_string_free_char(priv);
    }
    ssh_string_free_char(pub);
    free(line);
    free(pubpath);
    ssh_key_free(key);
    return r;
}
