/*
 * SSH host key fingerprints as OpenSSH prints them: "SHA256:" followed by
 * the unpadded base64 of the SHA-256 of the public key blob. `portcullis
 * init` prints the server's (fingerprint=...), agents pin it, and the API's
 * settings show it.
 *
 * hostkey_create() makes the three host keys `init` writes (and `serve`
 * makes when one is missing, as Debian's sshd-keygen does): Ed25519, the
 * one agents pin; ECDSA P-256 and RSA 3072 for users' clients that lack
 * Ed25519 (PuTTY before 0.68, old Dropbear, some Java and network-device
 * stacks).
 */
#ifndef PORTCULLIS_HOSTKEY_H
#define PORTCULLIS_HOSTKEY_H

#include <stddef.h>

#define HOSTKEY_FP_MAX 64 /* "SHA256:" + 43 characters, and room */

/* The fingerprint of the private (or public) key file at path. ERR_OK, or
 * ERR_IO when it cannot be read. */
int hostkey_fingerprint(const char *path, char *out, size_t outlen);

enum hostkey_type {
    HOSTKEY_ED25519,
    HOSTKEY_ECDSA, /* NIST P-256 */
    HOSTKEY_RSA,   /* 3072 bits, signed with rsa-sha2-256/512 */
};

#define HOSTKEY_RSA_BITS 3072
#define HOSTKEY_RSA_MIN_BITS 2048 /* the smallest an imported key may be */

/* "ed25519", "ecdsa", "rsa": for messages and init's fingerprint_* keys. */
const char *hostkey_type_name(enum hostkey_type type);

/* Generates a key of type and writes it to path (mode 0600, O_EXCL: never
 * over an existing file, ERR_EXISTS) and its OpenSSH public line to
 * path.pub (0644, also O_EXCL). On failure neither file is left behind.
 * fp receives the fingerprint of the key as written (HOSTKEY_FP_MAX). */
int hostkey_create(const char *path, enum hostkey_type type, char *fp,
                   size_t fplen);

/* Adopts an existing unencrypted private key (OpenSSH or PEM format, such
 * as sshd's /etc/ssh/ssh_host_*_key) of type from src: checks that only
 * its owner may read it, that it is of type (ECDSA: P-256; RSA: at least
 * HOSTKEY_RSA_MIN_BITS) and writes it to path and path.pub as
 * hostkey_create() does. On failure why says what is wrong (the key's
 * bytes are never part of it). */
int hostkey_import(const char *src, const char *path, enum hostkey_type type,
                   char *fp, size_t fplen, char *why, size_t whylen);

#endif
