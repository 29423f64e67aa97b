/*
 * The monitor protocol: typed messages between a session child and the
 * main process over a SOCK_SEQPACKET socketpair (one datagram = one
 * message, so no framing bugs), and between the spawner and the main
 * process.
 *
 * A message is one u8 type followed by a payload encoded with struct buf
 * (big-endian integers, u32-length strings). A message may carry one file
 * descriptor (SCM_RIGHTS): the main process hands a child its connected
 * upstream socket this way, and the spawner hands the main process its end
 * of a new child's socketpair.
 *
 * The child is untrusted: the main process parses every request with the
 * buf getters, checks buf_expect_end, and permits each type only in the
 * states listed in monitor.c.
 */
#ifndef PORTCULLIS_MPROTO_H
#define PORTCULLIS_MPROTO_H

#include <stdint.h>

#include "common/buf.h"

#define MPROTO_MAX 65536 /* largest message, payload included */
#define MPROTO_MAX_FDS 2 /* descriptors one message may carry */

enum mproto_type {
    /* child -> main */
    MP_AUTH_PASSWORD = 1, /* login, password */
    MP_AUTH_PUBKEY,       /* login, u8 signed; unsigned (a probe): key
                             blob; signed: the signed bytes, signature */
    MP_AUTH_TOTP,         /* code (second factor after a partial success) */
    MP_AUTHORIZE,         /* u8 kind, detail */
    MP_CONNECT,           /* row ID (the authorize reply's session id
                             whose channel needs the target): connect to
                             the authorized asset */
    MP_CREDENTIALS,       /* row ID: the asset's vaulted login */
    MP_HOSTKEY,           /* row ID, fingerprint the target presented */
    MP_SESSION_END,       /* session id, u64 up, u64 down, u32 exit+1,
                             result, u64 recording size, recording sha256 */
    MP_RECORD_OPEN,       /* session id, u8 format (0 cast, 1 jsonl;
                             2 rdprec, an RDP child's only) */
    MP_KEX_SIGN,          /* host key type, u8 digest, exchange hash */
    MP_RDP_NTLM,          /* login, domain (UTF-8, as the RDP client sent
                             them in NTLM), server challenge (8 bytes),
                             the client's NTLMv2 response: the NTOWFv2
                             key NLA needs, if the response proves it */
    /* main -> child */
    MP_AUTH_REPLY = 64,   /* u8 verdict, u32 delay ms, reason */
    MP_AUTHORIZE_REPLY,   /* u8 ok, session id, message, asset name, u32
                             max minutes, u32 idle minutes, u8 record (bit
                             0; bit 1: input too), user name, u8 RDP
                             virtual channels (POLICY_RDP_*) */
    MP_CONNECT_REPLY,     /* u8 ok, message; fd attached when ok */
    MP_CREDENTIALS_REPLY, /* u8 ok, user, password, private key */
    MP_HOSTKEY_REPLY,     /* u8 ok, message */
    MP_ACK,               /* (empty) */
    MP_RECORD_OPEN_REPLY, /* u8 ok, message; fd attached when ok;
                             u64 size limit in bytes */
    MP_KEX_SIGN_REPLY,    /* signature blob */
    MP_RDP_NTLM_REPLY,    /* u8 ok, message, key (16 bytes when ok) */
    /* spawner -> main */
    MP_SPAWN_NEW = 96, /* u32 pid, client address; the main process's
                          end of the child's monitor socket and a pidfd
                          of the child attached */
    MP_SPAWN_EXIT,     /* u32 pid, u32 wait status */
    /* main -> spawner */
    MP_SPAWN_AUTHED = 112, /* u32 pid: gives back its pre-auth slots */
    /* main -> spawner, once at start */
    MP_SPAWN_HOSTKEYS = 113, /* the public host keys (hostkeys.h) */
};

/* The reason of an MP_AUTH_FAIL the store caused (the database did not
 * answer): the child tells the user so in a banner, and the failure is not
 * counted against the user or the address. */
#define MP_REASON_STORE_DOWN "store unavailable"

enum mproto_auth_verdict {
    MP_AUTH_FAIL = 0,
    MP_AUTH_OK = 1,
    MP_AUTH_PARTIAL = 2,  /* first factor accepted; TOTP still needed */
    MP_AUTH_TOO_MANY = 3, /* failed, and [ssh] max_auth_tries reached: the
                             child disconnects ("Too many authentication
                             failures"); no further auth request is
                             permitted */
};

/* Sends type + payload (payload may be NULL), with fd attached unless
 * fd < 0. Blocking unless nonblock is set. */
int mproto_send(int sock, uint8_t type, const struct buf *payload, int fd,
                int nonblock);
/* Receives one message: *type, payload appended to b (reset first), *fd
 * set to a received descriptor or -1 (fd may be NULL: any received
 * descriptor is then closed). ERR_IO with errno 0 on orderly EOF. */
int mproto_recv(int sock, uint8_t *type, struct buf *b, int *fd);
/* The same with up to MPROTO_MAX_FDS descriptors: fds[0..nfds) are set,
 * the rest of fds[0..maxfds) are -1; descriptors beyond maxfds are
 * closed. */
int mproto_send_fds(int sock, uint8_t type, const struct buf *payload,
                    const int *fds, size_t nfds, int nonblock);
int mproto_recv_fds(int sock, uint8_t *type, struct buf *b, int *fds,
                    size_t maxfds, size_t *nfds);

#endif
