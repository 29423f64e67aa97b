/*
 * libFuzzer target for the agent's allow-list (agent/allow.c): the host and
 * port of a direct-tcpip open come from the server, which the agent must
 * not trust (a compromised server must not steer the agent past its
 * allow-list), and the entries come from the agent's config.
 *
 * Input: allow-list entries, one per line, then a NUL byte, then two bytes
 * of port (big-endian, plus a third for values above 65535) and the
 * target host. Besides "no crash" (ASan/UBSan) it checks what allow.h
 * promises: a YES for an address literal means allow_check_addr() agrees;
 * a YES for a name means a name entry of that protocol and port equals it
 * (case-insensitive); and a list of only address entries never says YES
 * to a name.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/allow.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_agent_allow: invariant failed: %s (%d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct allow_list l = {0};
    struct allow_target t;
    const uint8_t *nul = memchr(data, '\0', size);
    char *entries, *line, *next, *host, why[200];
    uint32_t port;
    size_t elen, rest;
    bool any_name = false;
    enum allow_verdict v;

    if (nul == NULL) {
        return 0;
    }
    elen = (size_t)(nul - data);
    rest = size - elen - 1;
    if (rest < 3) {
        return 0;
    }
    entries = malloc(elen + 1);
    memcpy(entries, data, elen);
    entries[elen] = '\0';
    for (line = entries; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        why[0] = '\0';
        if (allow_list_add(&l, line, why, sizeof(why)) != ERR_OK) {
            FUZZ_CHECK(why[0] != '\0' || l.n >= ALLOW_MAX_ENTRIES);
        }
    }
    for (size_t i = 0; i < l.n; i++) {
        FUZZ_CHECK(l.v[i].port_lo >= 1 && l.v[i].port_lo <= l.v[i].port_hi);
        if (l.v[i].kind == ALLOW_KIND_NAME) {
            any_name = true;
        } else {
            FUZZ_CHECK(l.v[i].prefix <= (l.v[i].family == 2 ? 32u : 128u));
        }
    }
    port = (uint32_t)nul[1] << 16 | (uint32_t)nul[2] << 8 | nul[3];
    host = malloc(rest - 3 + 1);
    memcpy(host, nul + 4, rest - 3);
    host[rest - 3] = '\0';
    if (allow_target_parse(host, port, &t, why, sizeof(why)) == ERR_OK) {
        FUZZ_CHECK(port >= 1 && port <= 65535 && t.port == port);
        FUZZ_CHECK(strlen(t.host) >= 1 && strlen(t.host) <= ALLOW_MAX_NAME);
        v = allow_check(&l, &t);
        if (t.is_addr) {
            FUZZ_CHECK(v != ALLOW_RESOLVE);
            FUZZ_CHECK((v == ALLOW_YES) ==
                       allow_check_addr(&l, t.proto, t.family, t.addr, t.port));
        } else if (v == ALLOW_YES) {
            bool found = false;
            FUZZ_CHECK(any_name);
            for (size_t i = 0; i < l.n; i++) {
                const struct allow_entry *e = &l.v[i];
                if (e->kind == ALLOW_KIND_NAME && e->proto == t.proto &&
                    t.port >= e->port_lo && t.port <= e->port_hi &&
                    strcasecmp(e->name, t.host) == 0) {
                    found = true;
                }
            }
            FUZZ_CHECK(found);
        }
    }
    free(host);
    free(entries);
    allow_list_clear(&l);
    return 0;
}
