/*
 * libFuzzer target for the cron parser (src/common/cron.c): the text of a
 * schedule an administrator (or a store edited by hand) gives. Besides "no
 * crash", it checks that a parsed expression has at least one value in
 * every field and only values in range, and that the next minute found
 * matches.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cron.h"
#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_cron: invariant failed: %s (line %d)\n",     \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[CRON_TEXT_MAX + 2], why[160] = "";
    struct cron c;
    int64_t next;

    if (size > CRON_TEXT_MAX + 1) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    if (cron_parse(text, &c, why, sizeof(why)) != ERR_OK) {
        FUZZ_CHECK(why[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(c.minute != 0 && (c.minute >> 60) == 0);
    FUZZ_CHECK(c.hour != 0 && (c.hour >> 24) == 0);
    FUZZ_CHECK(c.dom != 0 && (c.dom & 1) == 0);
    FUZZ_CHECK(c.month != 0 && (c.month & 1) == 0 && (c.month >> 13) == 0);
    FUZZ_CHECK(c.dow != 0 && (c.dow >> 7) == 0);
    next = cron_next(&c, 1796292000, 2000);
    if (next > 0) {
        time_t t = (time_t)next;
        struct tm tm;
        FUZZ_CHECK(next % 60 == 0 && localtime_r(&t, &tm) != NULL &&
                   cron_match(&c, &tm));
    }
    return 0;
}
