/*
 * The pairing installer's text (http_pair.c), as a pure function for the
 * route and the fuzz target fuzz_pair_render: every value is checked
 * against the small alphabet its field allows before it goes between the
 * script's single quotes, so none can end the quote, expand ($, `) or
 * start a new line (the certificate's PEM excepted: base64 lines).
 */
#ifndef PORTCULLIS_HTTP_PAIR_H
#define PORTCULLIS_HTTP_PAIR_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_PAIR_TAGS_MAX 16

struct http_pair_vals {
    bool tls;                /* https / wss */
    const char *host;        /* the Host the machine reached: name[:port] */
    const char *code;        /* the pairing code (base32) */
    const char *fingerprint; /* "SHA256:..." */
    const char *tls_pin;     /* "sha256//BASE64" or "" */
    const char *ca;          /* a PEM certificate or "" */
    const char *sha256;      /* the agent's, 64 hex digits */
    const char *credential;  /* "ID:SECRET" */
    const char *const *tags; /* ntags words */
    size_t ntags;
    const char *name; /* "" or a name */
};

/* Whether s (1-max characters) is made of A-Z a-z 0-9 . _ - : @ = (and a
 * space when space). */
bool http_pair_word_ok(const char *s, size_t max, bool space);
/* Whether host may stand in a URL in the script. */
bool http_pair_host_ok(const char *host);
/* The installer for v in *out (heap, NUL-terminated). ERR_INVALID (and
 * nothing made) when a value is outside its field's alphabet. */
int http_pair_render(const struct http_pair_vals *v, char **out);

#endif
