/*
 * libFuzzer target for the browser terminal's one-time tickets
 * (src/auth/webticket.c). A ticket arrives as an SSH password, so the
 * whole input is what an unauthenticated client can send.
 *
 * Two tickets are issued for fixed bindings, then the input is tried: the
 * ticket test is the prefix (every well-formed ticket, prefix and 64 hex
 * digits, passes it), and it redeems only if it is byte for byte one of
 * the issued
 * tickets presented from its bound connection; a refusal leaves the grant
 * zeroed. The first input byte picks the connection it is presented on
 * (the bound one or another). Finally both tickets are redeemed properly
 * unless the input used one up: a wrong guess must not disturb others.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "auth/webticket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_webticket: invariant failed: %s (line %d)\n", #cond, \
                    __LINE__);                                                 \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_NOW_MS 1800000000000LL

static int fuzz_shape(const char *s)
{
    size_t p = strlen(WEBTICKET_PREFIX);

    if (strlen(s) != WEBTICKET_STR_LEN || strncmp(s, WEBTICKET_PREFIX, p)) {
        return 0;
    }
    for (size_t i = p; i < WEBTICKET_STR_LEN; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

static int fuzz_zero(const void *p, size_t n)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            return 0;
        }
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char t1[WEBTICKET_STR_LEN + 1], t2[WEBTICKET_STR_LEN + 1], *in;
    struct webticket_grant g;
    struct webtickets *wt;
    int used1 = 0, used2 = 0, r, bound;

    if (size == 0 || size > 4096 || sodium_init() < 0) {
        return 0;
    }
    if ((wt = webtickets_new()) == NULL || (in = malloc(size)) == NULL) {
        webtickets_free(wt);
        return 0;
    }
    memcpy(in, data + 1, size - 1);
    in[size - 1] = '\0';
    bound = data[0] & 1;
    FUZZ_CHECK(webticket_issue(wt, "u-1", "a-1", "127.0.0.1", 40001,
                               "192.0.2.1", 5000, FUZZ_NOW_MS, t1) == ERR_OK);
    FUZZ_CHECK(webticket_issue(wt, "u-2", "a-2", "127.0.0.1", 40002, "::1",
                               5001, FUZZ_NOW_MS, t2) == ERR_OK);
    FUZZ_CHECK(fuzz_shape(t1) && fuzz_shape(t2) && strcmp(t1, t2) != 0);

    /* the monitor's switch is the prefix alone (a malformed ticket is
     * refused as a ticket, never tried as a password); a well-formed one
     * always has it */
    FUZZ_CHECK(!webticket_is_ticket(in) ==
               !!strncmp(in, WEBTICKET_PREFIX, strlen(WEBTICKET_PREFIX)));
    FUZZ_CHECK(!fuzz_shape(in) || webticket_is_ticket(in));
    r = webticket_redeem(wt, in, "127.0.0.1", bound ? 40001 : 40003,
                         FUZZ_NOW_MS + 1000, &g);
    if (r == ERR_OK) {
        FUZZ_CHECK(bound && strcmp(in, t1) == 0);
        FUZZ_CHECK(strcmp(g.user_id, "u-1") == 0 &&
                   strcmp(g.asset_id, "a-1") == 0 &&
                   strcmp(g.browser_ip, "192.0.2.1") == 0);
    } else {
        FUZZ_CHECK(r == ERR_AUTH);
        FUZZ_CHECK(fuzz_zero(&g, sizeof(g)));
    }
    /* any attempt with an issued ticket uses it up, right binding or not */
    used1 = strcmp(in, t1) == 0;
    used2 = strcmp(in, t2) == 0;
    r = webticket_redeem(wt, t1, "127.0.0.1", 40001, FUZZ_NOW_MS + 2000, &g);
    FUZZ_CHECK((r == ERR_OK) == !used1);
    r = webticket_redeem(wt, t2, "127.0.0.1", 40002, FUZZ_NOW_MS + 2000, &g);
    FUZZ_CHECK((r == ERR_OK) == !used2);
    sodium_memzero(t1, sizeof(t1));
    sodium_memzero(t2, sizeof(t2));
    free(in);
    webtickets_free(wt);
    return 0;
}
