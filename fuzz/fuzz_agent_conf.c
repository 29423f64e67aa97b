/*
 * libFuzzer target for the agent's configuration file (agent/agent_conf.c
 * read by common/config.c's table-driven reader), through its from-memory
 * entry point agent_conf_parse_text(), then agent_conf_finish() (the URL
 * and proxy parsers).
 *
 * The file is the operator's, but a bad line must be one clear error,
 * never a crash. Checked besides ASan/UBSan: a refusal is one non-empty
 * line naming the file; after success no string holds a control
 * character, the numbers lie in their keys' ranges and the lists in
 * their bounds; agent_conf_free() leaves nothing (ASan's leak check).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent_conf.h"
#include "common/err.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_agent_conf: invariant failed: %s (%d)\n",    \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_PATH "/fuzz/agent.conf"

static void fuzz_clean(const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        FUZZ_CHECK((unsigned char)*s >= 0x20 && *s != 0x7f);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct agent_conf c;
    char why[512];
    int r;

    log_set_level(LOG_ERROR); /* finish() may warn */
    agent_conf_init(&c);
    why[0] = '\0';
    r = agent_conf_parse_text(&c, (const char *)data, size, FUZZ_PATH, why,
                              sizeof(why));
    if (r != ERR_OK) {
        FUZZ_CHECK(r == ERR_CONFIG || r == ERR_NOMEM);
        if (r == ERR_CONFIG) {
            FUZZ_CHECK(strncmp(why, FUZZ_PATH ":", strlen(FUZZ_PATH) + 1) == 0);
            FUZZ_CHECK(strchr(why, '\n') == NULL);
        }
        agent_conf_free(&c);
        return 0;
    }
    fuzz_clean(c.server);
    fuzz_clean(c.fingerprint);
    fuzz_clean(c.cred_id);
    fuzz_clean(c.cred_secret);
    fuzz_clean(c.id);
    fuzz_clean(c.name);
    fuzz_clean(c.proxy);
    fuzz_clean(c.ca);
    FUZZ_CHECK(c.keepalive >= 1 && c.keepalive <= 3600);
    FUZZ_CHECK(c.timeout >= 1 && c.timeout <= 3600);
    FUZZ_CHECK(c.ntags <= AGENT_TAGS_MAX);
    for (size_t i = 0; i < c.ntags; i++) {
        FUZZ_CHECK(c.tags[i][0] != '\0' && strlen(c.tags[i]) <= AGENT_TAG_MAX);
        fuzz_clean(c.tags[i]);
    }
    FUZZ_CHECK(c.id == NULL || agent_conf_valid_id(c.id));
    why[0] = '\0';
    r = agent_conf_finish(&c, true, why, sizeof(why));
    if (r == ERR_CONFIG) {
        FUZZ_CHECK(why[0] != '\0' && strchr(why, '\n') == NULL);
    } else if (r == ERR_OK) {
        FUZZ_CHECK(c.host != NULL && c.host[0] != '\0');
        FUZZ_CHECK(c.port >= 1 && c.port <= 65535);
        FUZZ_CHECK(c.path != NULL && c.path[0] == '/');
        FUZZ_CHECK(c.timeout > c.keepalive);
    }
    agent_conf_free(&c);
    return 0;
}
