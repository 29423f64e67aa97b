/*
 * libFuzzer target for the peer-node CONNECT proxy's parsers of untrusted
 * bytes (src/http/http_proxy.c): the request head a client sends before
 * it is authenticated, and the [http_proxy] allow list. A parsed
 * `OPTIONS *` (peer check) names no destination.
 *
 * The first byte picks the parser. Head: http_proxy_head_len() never
 * points past the input; a parsed request has a non-empty host without
 * control characters, a port in 1..65535 and a token of base64url/JWT
 * characters; a refusal is a 4xx/5xx status with a reason free of control
 * characters. Allow: every parsed entry has 1 <= lo <= hi <= 65535, and
 * matching any probe address does not crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "http/http_proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_http_proxy: invariant failed: %s (line %d)\n",       \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

static void fuzz_no_ctl(const char *s)
{
    for (size_t i = 0; s[i] != '\0'; i++) {
        FUZZ_CHECK((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
    }
}

static void fuzz_head(const char *s, size_t n)
{
    static struct http_proxy_req req;
    char why[256];
    size_t hl = http_proxy_head_len(s, n);
    int st;

    FUZZ_CHECK(hl <= n);
    st = http_proxy_parse_head(s, hl > 0 ? hl : n, &req, why, sizeof(why));
    if (st == 0 && req.check) {
        FUZZ_CHECK(req.host[0] == '\0' && req.port == 0);
    } else if (st == 0) {
        FUZZ_CHECK(req.host[0] != '\0');
        fuzz_no_ctl(req.host);
        FUZZ_CHECK(req.port >= 1 && req.port <= 65535);
        for (size_t i = 0; req.token[i] != '\0'; i++) {
            char c = req.token[i];
            FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                       c == '.' || c == '=');
        }
        FUZZ_CHECK(req.token[0] == '\0' || req.has_auth);
    } else {
        FUZZ_CHECK(st >= 400 && st <= 599);
        fuzz_no_ctl(why);
    }
}

static void fuzz_allow(const char *s)
{
    struct http_proxy_dest *d = NULL;
    size_t n = 0;
    char why[256];

    if (http_proxy_allow_parse(s, &d, &n, why, sizeof(why)) == ERR_OK) {
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(d[i].port_lo >= 1 && d[i].port_lo <= d[i].port_hi &&
                       d[i].port_hi <= 65535);
        }
        (void)http_proxy_allow_match(d, n, "10.1.2.3", 22);
        (void)http_proxy_allow_match(d, n, "fd00::1", 3389);
        free(d);
    } else {
        fuzz_no_ctl(why);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s;

    if (size < 1 || size > 16384) {
        return 0;
    }
    if ((s = malloc(size)) == NULL) {
        return 0;
    }
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] & 1) {
        fuzz_allow(s);
    } else {
        fuzz_head(s, size - 1);
    }
    free(s);
    return 0;
}
