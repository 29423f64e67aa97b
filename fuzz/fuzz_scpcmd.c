/*
 * libFuzzer target for the strict scp command reader
 * (src/sshproxy/scpcmd.c), which decides whether a client's exec request
 * may pass as an scp session.
 *
 * Besides ASan/UBSan's "no crash, no out-of-bounds read" (the input is
 * copied into an exact-size heap block), it checks what scpcmd.h
 * promises: an accepted command has one mode, one non-empty path without
 * control characters, globs only when downloading; no byte of the input
 * that a shell would act on (; | & $ ` < > ( ) { } # ! newline) stands
 * outside quotes (a scanner of its own, independent of the parser); the
 * canonical form fits, is printable, parses back to the same command and
 * formats to itself again. A refused command leaves the struct all zero.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "sshproxy/scpcmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_scpcmd: invariant failed: %s (line %d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Every byte the shell would act on is quoted: inside '...', inside "..."
 * (where $ and ` must not appear at all) or after a backslash. */
static void fuzz_no_live_metachars(const uint8_t *p, size_t n)
{
    enum { PLAIN, SINGLE, DOUBLE } q = PLAIN;

    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];

        FUZZ_CHECK(c >= 0x20 && c != 0x7f);
        switch (q) {
        case SINGLE:
            if (c == '\'') {
                q = PLAIN;
            }
            break;
        case DOUBLE:
            FUZZ_CHECK(c != '$' && c != '`');
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                q = PLAIN;
            }
            break;
        case PLAIN:
            FUZZ_CHECK(strchr(";|&$`<>(){}#!\t", c) == NULL);
            if (c == '\\') {
                i++;
            } else if (c == '\'') {
                q = SINGLE;
            } else if (c == '"') {
                q = DOUBLE;
            }
            break;
        }
    }
    FUZZ_CHECK(q == PLAIN);
}

static void fuzz_check_ok(const struct scpcmd *c, const uint8_t *data,
                          size_t size)
{
    static char out[SCPCMD_FORMAT_MAX], again[SCPCMD_FORMAT_MAX];
    static struct scpcmd back;
    size_t n, m;

    FUZZ_CHECK(c->mode == SCPCMD_TO || c->mode == SCPCMD_FROM);
    FUZZ_CHECK((c->flags & ~0x1fu) == 0);
    FUZZ_CHECK(c->path_len >= 1 && c->path_len <= SCPCMD_PATH_MAX);
    FUZZ_CHECK(c->path[c->path_len] == '\0');
    FUZZ_CHECK(strlen(c->path) == c->path_len);
    for (size_t i = 0; i < c->path_len; i++) {
        uint8_t ch = (uint8_t)c->path[i];

        FUZZ_CHECK(ch >= 0x20 && ch != 0x7f);
        if (c->live[i]) {
            FUZZ_CHECK(strchr("*?[]", ch) != NULL || (ch == '~' && i == 0));
            FUZZ_CHECK(c->mode == SCPCMD_FROM || ch == '~');
        }
    }
    FUZZ_CHECK(size >= 8 && memcmp(data, "scp ", 4) == 0);
    fuzz_no_live_metachars(data, size);

    n = scpcmd_format(c, out, sizeof(out));
    FUZZ_CHECK(n > 0 && n < sizeof(out) && n == strlen(out));
    FUZZ_CHECK(memcmp(out, "scp ", 4) == 0);
    fuzz_no_live_metachars((const uint8_t *)out, n);
    FUZZ_CHECK(scpcmd_parse(out, n, &back) == ERR_OK);
    FUZZ_CHECK(back.mode == c->mode && back.flags == c->flags);
    FUZZ_CHECK(back.path_len == c->path_len);
    FUZZ_CHECK(memcmp(back.path, c->path, c->path_len + 1) == 0);
    FUZZ_CHECK(memcmp(back.live, c->live, c->path_len) == 0);
    m = scpcmd_format(&back, again, sizeof(again));
    FUZZ_CHECK(m == n && memcmp(out, again, n + 1) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct scpcmd c;
    char *copy = malloc(size > 0 ? size : 1);
    int r;

    if (copy == NULL) {
        return 0;
    }
    if (size > 0) {
        memcpy(copy, data, size);
    }
    memset(&c, 0xa5, sizeof(c));
    r = scpcmd_parse(copy, size, &c);
    if (r == ERR_OK) {
        fuzz_check_ok(&c, data, size);
    } else {
        const uint8_t *z = (const uint8_t *)&c;

        FUZZ_CHECK(r == ERR_INVALID || r == ERR_TOO_LONG);
        for (size_t i = 0; i < sizeof(c); i++) {
            FUZZ_CHECK(z[i] == 0);
        }
    }
    free(copy);
    return 0;
}
