/*
 * The monitor's own check of a user's public-key signature (RFC 4252 §7),
 * as OpenSSH's monitor does it (monitor_valid_userblob): the child sends
 * the bytes the client signed and the signature; the monitor checks that
 * those bytes are exactly a "publickey" request for this login over the
 * session identifier the monitor itself signed, and that the signature
 * verifies with the key named inside them. A child can thus not log in
 * with only a victim's public key, nor replay a signature made for
 * another session of this server.
 */
#ifndef PORTCULLIS_USERAUTH_SIG_H
#define PORTCULLIS_USERAUTH_SIG_H

#include <stddef.h>
#include <stdint.h>

#include <libssh/libssh.h>

#define USERAUTH_DATA_MAX 16384 /* signed bytes: ids, names, one key blob */

/* The fields of the signed bytes, pointing into them. */
struct userauth_fields {
    const uint8_t *session_id;
    size_t session_id_len;
    const uint8_t *user;
    size_t user_len;
    const uint8_t *alg;
    size_t alg_len;
    const uint8_t *key;
    size_t key_len;
};

/* Parses the signed bytes of a "publickey" request with a signature:
 * string session id, byte 50, string user, string "ssh-connection",
 * string "publickey", boolean TRUE, string algorithm, string key blob,
 * nothing after. Pure; ERR_PROTO for anything else. */
int userauth_parse(const uint8_t *data, size_t len, struct userauth_fields *f);

/* Checks data and sig for login over session_id (both the monitor's
 * own); on success *key is the user's public key (the caller frees it).
 * ctx is any libssh session (for RSA size limits). ERR_AUTH when
 * anything does not match or the signature does not verify. */
int userauth_sig_check(ssh_session ctx, const uint8_t *session_id,
                       size_t session_id_len, const char *login,
                       const uint8_t *data, size_t dlen, const uint8_t *sig,
                       size_t slen, ssh_key *key);

#endif
