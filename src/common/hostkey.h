/*
 * SSH host key fingerprints as OpenSSH prints them: "SHA256:" followed by
 * the unpadded base64 of the SHA-256 of the public key blob. `portcullis
 * init` prints the server's (fingerprint=...), agents pin it, and the API's
 * settings show it.
 */
#ifndef PORTCULLIS_HOSTKEY_H
#define PORTCULLIS_HOSTKEY_H

#include <stddef.h>

#define HOSTKEY_FP_MAX 64 /* "SHA256:" + 43 characters, and room */

/* The fingerprint of the private (or public) key file at path. ERR_OK, or
 * ERR_IO when it cannot be read. */
int hostkey_fingerprint(const char *path, char *out, size_t outlen);

#endif
