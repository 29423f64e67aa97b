/*
 * One flat error enum for the whole code base. Functions return int: 0
 * (ERR_OK) on success or one of these codes, and hand results back through
 * out-parameters. err_str() gives a short English phrase for logs and for
 * one-line CLI errors.
 */
#ifndef PORTCULLIS_ERR_H
#define PORTCULLIS_ERR_H

enum err {
    ERR_OK = 0,
    ERR_NOMEM,     /* allocation failed */
    ERR_INVALID,   /* malformed input or argument */
    ERR_TOO_LONG,  /* input exceeds a named maximum */
    ERR_NOT_FOUND, /* no such object */
    ERR_EXISTS,    /* object already exists */
    ERR_IO,        /* file or socket I/O failed */
    ERR_STORE,     /* the store failed (SQL error, constraint) */
    ERR_CRYPTO,    /* sealing, hashing or a key failed */
    ERR_DENIED,    /* not permitted by policy or state */
    ERR_AUTH,      /* authentication failed */
    ERR_LOCKED,    /* locked out after repeated failures */
    ERR_AMBIGUOUS, /* a name matched several objects */
    ERR_PROTO,     /* peer broke a protocol */
    ERR_TIMEOUT,   /* an operation timed out */
    ERR_CONNECT,   /* could not connect to a target */
    ERR_HOSTKEY,   /* a target's host key does not match its pin */
    ERR_REPLAY,    /* a one-time code was used again */
    ERR_CONFIG,    /* bad configuration */
    ERR_INTERNAL,  /* a bug: should not happen */
    ERR__COUNT
};

const char *err_str(int err);

#endif
