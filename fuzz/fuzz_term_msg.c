/*
 * libFuzzer target for the browser terminal's message parser
 * (http_term_msg_parse in src/http/http_term.c): the first bytes a page
 * sends on /api/v1/terminal, before anything about it is known.
 *
 * Besides "no crash, no out-of-bounds read" (ASan/UBSan), it checks what
 * http_internal.h promises: on success a known type whose fields are
 * within their maximums (NUL-terminated strings, dimensions 1..1000);
 * on failure a zeroed result and a reason.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "http/http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "check failed: %s\n", #cond);                      \
            abort();                                                           \
        }                                                                      \
    } while (0)

static bool fuzz_zeroed(const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return false;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_term_msg m;
    const char *why = NULL;
    int r = http_term_msg_parse((const char *)data, size, &m, &why);

    if (r != ERR_OK) {
        FUZZ_CHECK(r == ERR_INVALID && why != NULL && why[0] != '\0');
        FUZZ_CHECK(fuzz_zeroed(&m, sizeof(m)));
        return 0;
    }
    FUZZ_CHECK(size <= HTTP_TERM_MSG_MAX);
    FUZZ_CHECK(memchr(m.token, '\0', sizeof(m.token)) != NULL);
    FUZZ_CHECK(memchr(m.asset, '\0', sizeof(m.asset)) != NULL);
    FUZZ_CHECK(memchr(m.text, '\0', sizeof(m.text)) != NULL);
    switch (m.type) {
    case HTTP_TERM_AUTH:
        FUZZ_CHECK(m.token[0] != '\0' && m.asset[0] != '\0');
        /* fall through */
    case HTTP_TERM_RESIZE:
        FUZZ_CHECK(m.cols >= 1 && m.cols <= HTTP_TERM_DIM_MAX);
        FUZZ_CHECK(m.rows >= 1 && m.rows <= HTTP_TERM_DIM_MAX);
        break;
    case HTTP_TERM_ANSWER:
        FUZZ_CHECK(m.text[0] != '\0');
        break;
    default:
        FUZZ_CHECK(!"unknown type accepted");
    }
    return 0;
}
