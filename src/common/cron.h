/*
 * Cron expressions for schedules (issue 14): five fields, minute (0-59),
 * hour (0-23), day of month (1-31), month (1-12), day of week (0-7, 0 and
 * 7 are Sunday). Each field is "*" or a comma-separated list of N, N-M,
 * with an optional "/STEP" after "*" or a range. As in Vixie cron, when
 * both day fields are restricted a day matches if either does.
 *
 * cron_parse() reads text from an administrator (and the store); it is
 * pure and fuzzed (fuzz/fuzz_cron.c). Times are broken down in the
 * process's time zone (localtime_r), the server's.
 */
#ifndef PORTCULLIS_COMMON_CRON_H
#define PORTCULLIS_COMMON_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define CRON_TEXT_MAX 255

struct cron {
    uint64_t minute; /* bit N: minute N */
    uint32_t hour;
    uint32_t dom;   /* bits 1-31 */
    uint16_t month; /* bits 1-12 */
    uint8_t dow;    /* bits 0-6 (7 folded into 0) */
    bool dom_star, dow_star;
};

/* ERR_OK, or ERR_INVALID with why naming the field. */
int cron_parse(const char *text, struct cron *out, char *why, size_t whylen);
/* Whether the minute tm (local time) matches. */
bool cron_match(const struct cron *c, const struct tm *tm);
/* The first matching minute strictly after t (a minute boundary or not),
 * looking at most limit minutes ahead; -1 if none. */
int64_t cron_next(const struct cron *c, int64_t t, int64_t limit);
/* Matching minutes m with from < m <= to (minute starts), counting at
 * most limit of them and looking at most a year ahead of from. */
int64_t cron_count(const struct cron *c, int64_t from, int64_t to,
                   int64_t limit);

#endif
