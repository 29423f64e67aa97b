/*
 * libFuzzer target for the main node's parser of a peer's proxy answer
 * (src/route/peer_link.c, peer_link_parse_answer): what a peer node (or
 * whatever answers on its address) sends back to a CONNECT or OPTIONS.
 *
 * Invariants: the status is 0 or 100..599; the Server text fits, ends,
 * and holds no control characters; the body length is at most 512.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route/peer_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_peer_answer: invariant failed: %s (line %d)\n",      \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char server[128], *copy;
    size_t want = 99999;
    int status = -1;

    if (size > 16384 || (copy = malloc(size + 1)) == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    copy[size] = '\0';
    memset(server, 'x', sizeof(server));
    peer_link_parse_answer(copy, size, &status, server, sizeof(server), &want);
    FUZZ_CHECK(status == 0 || (status >= 100 && status <= 599));
    FUZZ_CHECK(memchr(server, '\0', sizeof(server)) != NULL);
    for (size_t i = 0; server[i] != '\0'; i++) {
        FUZZ_CHECK((unsigned char)server[i] >= 0x20 && server[i] != 0x7f);
    }
    FUZZ_CHECK(want <= 512);
    free(copy);
    return 0;
}
