/*
 * libFuzzer target for the tunnel definitions' parsers
 * (src/hub/tunnel_def.c): the ACL (a CIDR list from the CLI or the REST
 * API), "HOST:PORT" remotes, and the one-address ACL of a client.
 *
 * The input is two lines. The first is an ACL: when it normalises, the
 * canonical form normalises to itself and says the same about the probe
 * address (the second line); on failure there is a reason (one line
 * unless the input itself had a line break: reasons quote the input). The
 * second is a remote: when it parses, the port is 1..65535 and the host is
 * non-empty, bracket-free and fits. As an address, its own ACL normalises to
 * itself and allows it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "hub/tunnel_def.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr,                                                    \
                    "fuzz_tunnel_def: invariant failed: %s (line %d)\n",       \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_ACL_MAX 4096

static char *fuzz_str(const uint8_t *d, size_t n)
{
    char *s = malloc(n + 1);

    if (s != NULL) {
        memcpy(s, d, n);
        s[n] = '\0';
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char norm[FUZZ_ACL_MAX], again[FUZZ_ACL_MAX], one[FUZZ_ACL_MAX];
    char host[STORE_HOST_MAX + 1], why[256];
    const uint8_t *nl = memchr(data, '\n', size);
    size_t na = nl != NULL ? (size_t)(nl - data) : size;
    char *acl = fuzz_str(data, na);
    char *other = fuzz_str(nl != NULL ? nl + 1 : data + size,
                           nl != NULL ? size - na - 1 : 0);
    int port = -1, r;

    if (acl == NULL || other == NULL || size > 8192) {
        goto out;
    }
    why[0] = '\0';
    r = tunnel_acl_normalize(acl, norm, sizeof(norm), why, sizeof(why));
    if (r == ERR_OK) {
        FUZZ_CHECK(tunnel_acl_normalize(norm, again, sizeof(again), why,
                                        sizeof(why)) == ERR_OK);
        FUZZ_CHECK(strcmp(norm, again) == 0);
        FUZZ_CHECK(strchr(norm, ' ') == NULL);
        (void)tunnel_acl_allows(norm, other);
    } else {
        FUZZ_CHECK(why[0] != '\0' &&
                   (strchr(acl, '\n') != NULL || !strchr(why, '\n')));
    }
    why[0] = '\0';
    r = tunnel_remote_parse(other, host, sizeof(host), &port, why, sizeof(why));
    if (r == ERR_OK) {
        FUZZ_CHECK(port >= 1 && port <= 65535);
        FUZZ_CHECK(host[0] != '\0' && memchr(host, 0, sizeof(host)) != NULL);
        FUZZ_CHECK(strchr(host, '[') == NULL && strchr(host, ']') == NULL);
    } else {
        /* (a reason quotes the input, control characters and all) */
        FUZZ_CHECK(why[0] != '\0' &&
                   (strchr(other, '\n') != NULL || !strchr(why, '\n')));
    }
    if (tunnel_acl_of_ip(other, one, sizeof(one)) == ERR_OK) {
        FUZZ_CHECK(tunnel_acl_normalize(one, again, sizeof(again), why,
                                        sizeof(why)) == ERR_OK);
        FUZZ_CHECK(strcmp(one, again) == 0);
        FUZZ_CHECK(tunnel_acl_allows(one, other));
    }
out:
    free(acl);
    free(other);
    return 0;
}
