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
#include <stdint.h>
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
#define HOSTKEY_FILE_MAX 65536 /* an RSA 16384 key in PEM is under 13 KiB */

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

/* Writes key to path (0600, O_EXCL) and its OpenSSH public line to
 * path.pub (0644, O_EXCL); fp receives the fingerprint of the file as
 * written. The private key file's text is text when given (an adopted
 * file, kept byte for byte: libssh 0.10 cannot re-export an RSA key read
 * from OpenSSH's format), else libssh's export of key. On failure neither
 * file is left behind. */
static int hostkey_write(ssh_key key, const char *text, size_t textlen,
                         const char *path, char *fp, size_t fplen)
{
    char *priv = NULL, *pub = NULL, *line = NULL, *pubpath = NULL;
    bool wrote_priv = false;
    int n, r = ERR_CRYPTO;

    if (asprintf(&pubpath, "%s.pub", path) < 0) {
        pubpath = NULL;
        r = ERR_NOMEM;
        goto out;
    }
    if ((text == NULL && ssh_pki_export_privkey_base64(key, NULL, NULL, NULL,
                                                       &priv) != SSH_OK) ||
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
    if (text == NULL) {
        text = priv;
        textlen = strlen(priv);
    }
    if ((r = util_write_file_excl(path, text, textlen, 0600)) != ERR_OK) {
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
    return r;
}

int hostkey_create(const char *path, enum hostkey_type type, char *fp,
                   size_t fplen)
{
    enum ssh_keytypes_e kt;
    ssh_key key = NULL;
    int bits = 0, r;

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
    if (ssh_pki_generate(kt, bits, &key) != SSH_OK) {
        return ERR_CRYPTO;
    }
    r = hostkey_write(key, NULL, 0, path, fp, fplen);
    ssh_key_free(key);
    return r;
}

/* The bit length of an RSA public key's modulus, from its wire blob
 * (string "ssh-rsa", mpint e, mpint n): libssh 0.10 has no public call
 * for it. 0 when the blob is not that shape. */
static int hostkey_rsa_bits(ssh_key key)
{
    unsigned char blob[2048];
    char *b64 = NULL;
    size_t len = 0, off = 0, i, n = 0, bits;
    uint32_t field;
    int k, result = 0;

    if (ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK) {
        return 0;
    }
    if (sodium_base642bin(blob, sizeof(blob), b64, strlen(b64), NULL, &len,
                          NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
        goto out;
    }
    for (k = 0; k < 3; k++) {
        if (len - off < 4) {
            goto out;
        }
        field = (uint32_t)blob[off] << 24 | (uint32_t)blob[off + 1] << 16 |
                (uint32_t)blob[off + 2] << 8 | blob[off + 3];
        off += 4;
        if (field > len - off) {
            goto out;
        }
        n = field;
        if (k < 2) {
            off += n;
        }
    }
    /* n: the modulus, big-endian, perhaps with a leading zero byte */
    for (i = 0; i < n && blob[off + i] == 0; i++) {
    }
    if (i == n) {
        goto out;
    }
    bits = (n - i) * 8;
    for (field = blob[off + i]; (field & 0x80) == 0; field <<= 1) {
        bits--;
    }
    result = (int)bits;
out:
    ssh_string_free_char(b64);
    return result;
}

int hostkey_import(const char *src, const char *path, enum hostkey_type type,
                   char *fp, size_t fplen, char *why, size_t whylen)
{
    struct stat sb;
    ssh_key key = NULL;
    enum ssh_keytypes_e kt;
    uint8_t *text = NULL;
    size_t textlen = 0;
    int bits, r = ERR_INVALID;

    if (stat(src, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(why, whylen, "%s: not a readable file", src);
        return ERR_IO;
    }
    /* sshd refuses a private host key others can read; so do we, rather
     * than adopt a key that may already be copied elsewhere. */
    if ((sb.st_mode & 0077) != 0) {
        snprintf(why, whylen,
                 "%s: permissions %04o are too open (the key must be "
                 "readable by its owner only)",
                 src, (unsigned)(sb.st_mode & 07777));
        return ERR_INVALID;
    }
    if (util_read_file(src, HOSTKEY_FILE_MAX, &text, &textlen) != ERR_OK) {
        snprintf(why, whylen, "%s: cannot be read (or over %d bytes)", src,
                 HOSTKEY_FILE_MAX);
        return ERR_IO;
    }
    if (ssh_pki_import_privkey_base64((const char *)text, NULL,
                                      hostkey_no_passphrase, NULL,
                                      &key) != SSH_OK) {
        snprintf(why, whylen,
                 "%s: not an unencrypted OpenSSH or PEM private key", src);
        key = NULL;
        goto out;
    }
    kt = ssh_key_type(key);
    switch (type) {
    case HOSTKEY_ED25519:
        if (kt != SSH_KEYTYPE_ED25519) {
            snprintf(why, whylen, "%s: a %s key, not Ed25519", src,
                     ssh_key_type_to_char(kt));
            goto out;
        }
        break;
    case HOSTKEY_ECDSA:
        if (kt != SSH_KEYTYPE_ECDSA_P256) {
            snprintf(why, whylen,
                     "%s: a %s key; the ECDSA host key must be NIST P-256", src,
                     ssh_key_type_to_char(kt));
            goto out;
        }
        break;
    case HOSTKEY_RSA:
        if (kt != SSH_KEYTYPE_RSA) {
            snprintf(why, whylen, "%s: a %s key, not RSA", src,
                     ssh_key_type_to_char(kt));
            goto out;
        }
        if ((bits = hostkey_rsa_bits(key)) < HOSTKEY_RSA_MIN_BITS) {
            snprintf(why, whylen,
                     "%s: RSA key of %d bits; at least %d are needed", src,
                     bits, HOSTKEY_RSA_MIN_BITS);
            goto out;
        }
        break;
    default:
        snprintf(why, whylen, "unknown host key type");
        goto out;
    }
    r = hostkey_write(key, (const char *)text, textlen, path, fp, fplen);
    if (r != ERR_OK) {
        snprintf(why, whylen, "cannot write %s: %s", path, err_str(r));
    }
out:
    ssh_key_free(key);
    sodium_memzero(text, textlen);
    free(text);
    return r;
}
