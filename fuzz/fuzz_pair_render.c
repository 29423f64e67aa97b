/*
 * The pairing installer's text (src/http/http_pair.h): values that reach
 * it come from the network (the Host header) and from administrators
 * (tags, name). Whatever they are, http_pair_render() either refuses them
 * or makes a script in which no value could end its single quotes: the
 * number of quotes equals the template's, and no refused character
 * ($, `, \, a quote; a newline outside the certificate) got through.
 *
 * Input: fields separated by NUL: host, code, fingerprint, tls_pin, ca,
 * sha256, credential, name, then tags; the first byte's low bit is tls.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "http/http_pair.h"

#define FIELDS 8

static size_t quotes(const char *s)
{
    size_t n = 0;

    for (; *s != '\0'; s++) {
        n += *s == '\'';
    }
    return n;
}

static bool clean(const char *s, bool newline_ok)
{
    return strpbrk(s, "'$`\\\"") == NULL &&
           (newline_ok || strchr(s, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static size_t ref_quotes = (size_t)-1;
    const char *f[FIELDS], *tags[HTTP_PAIR_TAGS_MAX];
    struct http_pair_vals v;
    char *buf, *p, *end, *out = NULL;
    size_t nf = 0, nt = 0;

    if (ref_quotes == (size_t)-1) {
        const char *t[] = {"prod"};
        struct http_pair_vals ok = {
            false,
            "127.0.0.1:8080",
            "abcdefghijkl",
            "SHA256:abc",
            "",
            "",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "id:secret",
            t,
            1,
            "box"};

        if (http_pair_render(&ok, &out) != ERR_OK) {
            abort();
        }
        ref_quotes = quotes(out);
        free(out);
        out = NULL;
    }
    if (size < 1 || size > 65536 || (buf = malloc(size + 1)) == NULL) {
        return 0;
    }
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    p = buf;
    end = buf + size - 1;
    while (p <= end && nf < FIELDS) {
        f[nf++] = p;
        p += strlen(p) + 1;
    }
    while (p <= end && nt < HTTP_PAIR_TAGS_MAX) {
        tags[nt++] = p;
        p += strlen(p) + 1;
    }
    while (nf < FIELDS) {
        f[nf++] = "";
    }
    v = (struct http_pair_vals){
        .tls = data[0] & 1,
        .host = f[0],
        .code = f[1],
        .fingerprint = f[2],
        .tls_pin = f[3],
        .ca = f[4],
        .sha256 = f[5],
        .credential = f[6],
        .name = f[7],
        .tags = tags,
        .ntags = nt,
    };
    if (http_pair_render(&v, &out) == ERR_OK) {
        if (quotes(out) != ref_quotes || strncmp(out, "#!/bin/sh\n", 10) != 0) {
            abort();
        }
        for (size_t i = 0; i < FIELDS; i++) {
            if (!clean(f[i], i == 4)) {
                abort();
            }
        }
        for (size_t i = 0; i < nt; i++) {
            if (!clean(tags[i], false) || strchr(tags[i], ' ') != NULL) {
                abort();
            }
        }
    }
    free(out);
    free(buf);
    return 0;
}
