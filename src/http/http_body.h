/*
 * Strict JSON request bodies for the REST API.
 *
 * Every route that takes a body names its fields in a table: name, type,
 * required or not, and bounds. http_body_parse() accepts exactly that: a
 * JSON object whose keys are all in the table (an unknown key is an error,
 * not something silently ignored), each of the declared type and within
 * its bounds, every required one present, no key twice. The input is
 * untrusted bytes from the network: the parser is pure (no I/O, no
 * globals) and fuzzed (fuzz/fuzz_json_body.c).
 *
 * Ownership: on success *out is a new reference the caller releases with
 * json_decref(); on failure *out is NULL and why holds one line naming
 * the field at fault.
 */
#ifndef PORTCULLIS_HTTP_BODY_H
#define PORTCULLIS_HTTP_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum http_field_type {
    HF_STRING,      /* a string of lo..hi bytes, no control characters */
    HF_SECRET,      /* a string of lo..hi bytes (may hold any character) */
    HF_INT,         /* an integer in lo..hi */
    HF_BOOL,        /* true or false */
    HF_STRING_LIST, /* an array of at most hi strings, each of 1..255 */
    HF_STRING_NULL, /* a string as HF_SECRET, or null */
};

struct http_field {
    const char *name; /* NULL ends a table */
    enum http_field_type type;
    bool required;
    int64_t lo, hi;
};

#define HTTP_BODY_MAX_FIELDS 32

/* Parses len bytes of data against spec. An empty body (len 0) is an
 * empty object. Returns ERR_OK, or ERR_INVALID with why filled. */
int http_body_parse(const char *data, size_t len, const struct http_field *spec,
                    json_t **out, char *why, size_t whylen);

/* Accessors for a parsed body: NULL / false / dflt when absent. */
const char *http_body_str(const json_t *body, const char *name);
bool http_body_has(const json_t *body, const char *name);
bool http_body_bool(const json_t *body, const char *name, bool dflt);
int64_t http_body_int(const json_t *body, const char *name, int64_t dflt);

#endif
