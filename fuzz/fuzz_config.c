/*
 * libFuzzer target for the configuration parser (src/common/config.c),
 * through its from-memory entry point config_parse_text().
 *
 * portcullis.conf is written by administrators, not attackers, but every
 * command reads it and a bad line must be a clear error, never a crash or
 * a half-filled struct. Checked besides ASan/UBSan: on failure the reason
 * is one non-empty line and the struct is all zero (config_free'd); on
 * success every path is absolute, every integer lies in its key's range
 * and the cross-key rules hold.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_config: invariant failed: %s (line %d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_PATH "/fuzz/data/portcullis.conf"

static void fuzz_abs(const char *p)
{
    FUZZ_CHECK(p == NULL || p[0] == '/');
}

static int fuzz_all_zero(const void *p, size_t n)
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
    struct config cfg;
    char why[512] = "";
    char *copy = malloc(size > 0 ? size : 1);
    int r;

    if (copy == NULL) {
        return 0;
    }
    /* an exact-size copy, so ASan sees any read past the end */
    memcpy(copy, data, size);
    r = config_parse_text(copy, size, FUZZ_PATH, &cfg, why, sizeof(why));
    if (r != ERR_OK) {
        FUZZ_CHECK(r == ERR_CONFIG || r == ERR_NOMEM || r == ERR_TOO_LONG);
        FUZZ_CHECK(why[0] != '\0');
        FUZZ_CHECK(strchr(why, '\n') == NULL);
        FUZZ_CHECK(fuzz_all_zero(&cfg, sizeof(cfg)));
        free(copy);
        return 0;
    }
    FUZZ_CHECK(cfg.path != NULL && strcmp(cfg.path, FUZZ_PATH) == 0);
    FUZZ_CHECK(cfg.data_dir != NULL && cfg.store_path != NULL &&
               cfg.vault_key != NULL && cfg.log_level != NULL);
    fuzz_abs(cfg.data_dir);
    fuzz_abs(cfg.ssh_host_key);
    fuzz_abs(cfg.store_path);
    fuzz_abs(cfg.vault_key);
    fuzz_abs(cfg.record_dir);
    fuzz_abs(cfg.http_jwt_secret);
    fuzz_abs(cfg.http_tls_cert);
    fuzz_abs(cfg.http_tls_key);
    FUZZ_CHECK(cfg.ssh_port >= 0 && cfg.ssh_port <= 65535);
    FUZZ_CHECK(cfg.http_port >= 0 && cfg.http_port <= 65535);
    FUZZ_CHECK(cfg.tunnel_port_min >= 1 &&
               cfg.tunnel_port_min <= cfg.tunnel_port_max &&
               cfg.tunnel_port_max <= 65535);
    FUZZ_CHECK(cfg.agent_timeout_seconds > cfg.agent_keepalive_seconds);
    FUZZ_CHECK(strcmp(cfg.store_driver, "sqlite") == 0);
    config_free(&cfg);
    FUZZ_CHECK(fuzz_all_zero(&cfg, sizeof(cfg)));
    free(copy);
    return 0;
}
