/*
 * libFuzzer target for the agents' announcement parser
 * (src/hub/hub_announce.c): JSON from an authenticated but untrusted
 * agent. Besides "no crash" (ASan/UBSan), it checks what the hub relies
 * on: on success the ID is valid, every field is NUL-terminated within
 * its array, and addresses/tags are JSON arrays; on failure a reason was
 * given.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "hub/hub_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_announce: invariant failed: %s (line %d)\n", \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct hub_announce a;
    char why[200] = "";
    char *copy = malloc(size ? size : 1);

    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    if (hub_announce_parse(copy, size, &a, why, sizeof(why)) == ERR_OK) {
        FUZZ_CHECK(hub_agent_id_valid(a.id));
        FUZZ_CHECK(memchr(a.name, '\0', sizeof(a.name)) != NULL);
        FUZZ_CHECK(memchr(a.hostname, '\0', sizeof(a.hostname)) != NULL);
        FUZZ_CHECK(memchr(a.os, '\0', sizeof(a.os)) != NULL);
        FUZZ_CHECK(memchr(a.kernel, '\0', sizeof(a.kernel)) != NULL);
        FUZZ_CHECK(memchr(a.arch, '\0', sizeof(a.arch)) != NULL);
        FUZZ_CHECK(memchr(a.version, '\0', sizeof(a.version)) != NULL);
        FUZZ_CHECK(a.addresses[0] == '[' && a.tags[0] == '[');
        FUZZ_CHECK(a.name[0] != '\0');
    } else {
        FUZZ_CHECK(why[0] != '\0');
    }
    free(copy);
    return 0;
}
