/*
 * SSH host keys under privilege separation.
 *
 * Only the main process (the monitor) holds the private host keys. The
 * spawner and the session children know the public halves and hold
 * "stand-ins": private keys of the same types, generated at start and
 * never used to sign anything a client sees. libssh runs the key exchange
 * in the child with the stand-ins; three hooks (libssh_hooks.c, through
 * the linker's --wrap) make it announce the real public key and send the
 * exchange hash to the monitor for signing, as OpenSSH's monitor does. The
 * monitor keeps the first hash it signs for a child as that child's
 * session identifier and verifies users' public-key signatures over it
 * itself (auth/userauth_sig.h), so a compromised child can neither sign
 * as the server offline nor log in with only a victim's public key.
 *
 * Ownership: a struct hostkeys / hostkey_standins owns its keys and
 * strings; *_free() releases them and takes NULL fields.
 */
#ifndef PORTCULLIS_HOSTKEYS_H
#define PORTCULLIS_HOSTKEYS_H

#include <stddef.h>
#include <stdint.h>

#include <libssh/libssh.h>
#include <libssh/server.h>

#include "common/buf.h"

#define HOSTKEYS_MAX 4
/* An exchange hash is a SHA-1, SHA-256, SHA-384 or SHA-512 digest. */
#define HOSTKEYS_HASH_MAX 64
#define HOSTKEYS_BLOB_MAX 2048 /* a public key or signature blob */

/* The monitor's private host keys. */
struct hostkeys {
    ssh_key keys[HOSTKEYS_MAX];
    size_t n;
};

/* Loads each private key file (n <= HOSTKEYS_MAX, one per type). */
int hostkeys_load(struct hostkeys *hk, const char *const *paths, size_t n);
/* Takes ownership of keys[0..n) (n <= HOSTKEYS_MAX, one per type); the
 * array's entries are set to NULL. */
int hostkeys_adopt(struct hostkeys *hk, ssh_key *keys, size_t n);
void hostkeys_free(struct hostkeys *hk);
/* Appends the public keys: u8 count, then a string blob each. */
int hostkeys_put_public(const struct hostkeys *hk, struct buf *b);
/* Signs an exchange hash (data, 20/32/48/64 bytes) with the key of the
 * type named by type (ssh_key_type_to_char) and hash (enum lsp_digest);
 * appends the signature blob to out as a string. ERR_INVALID for a bad
 * request, ERR_NOT_FOUND without such a key. */
int hostkeys_sign(const struct hostkeys *hk, const char *type, uint8_t hash,
                  const uint8_t *data, size_t len, struct buf *out);

/* What the spawner and the children hold. */
struct hostkey_standins {
    ssh_key pub[HOSTKEYS_MAX];      /* the real public keys */
    ssh_string blob[HOSTKEYS_MAX];  /* their blobs */
    ssh_key stand_in[HOSTKEYS_MAX]; /* same type and size, never shown */
    size_t n;
};

/* Reads what hostkeys_put_public wrote and generates the stand-ins. */
int hostkeys_standins_make(struct buf *b, struct hostkey_standins *s);
void hostkeys_standins_free(struct hostkey_standins *s);
/* Gives bind a copy of every stand-in. */
int hostkeys_standins_bind(const struct hostkey_standins *s, ssh_bind bind);

/*
 * The child's side. sign() is called from inside libssh's key exchange on
 * session `down` with the type name, digest and exchange hash; it returns
 * ERR_OK and appends the signature blob (as a string) to out.
 */
typedef int (*hostkeys_sign_fn)(void *arg, const char *type, uint8_t hash,
                                const uint8_t *data, size_t len,
                                struct buf *out);
void hostkeys_hook(ssh_session down, const struct hostkey_standins *s,
                   hostkeys_sign_fn sign, void *arg);
void hostkeys_unhook(void);
/* The last user-authentication signature libssh checked on `down`: the
 * signed data and the signature blob, valid until the next one or
 * hostkeys_unhook. ERR_NOT_FOUND if there is none. */
int hostkeys_last_userauth(const uint8_t **data, size_t *dlen,
                           const uint8_t **sig, size_t *slen);
/* Forgets it (after it was used once). */
void hostkeys_forget_userauth(void);

#endif
