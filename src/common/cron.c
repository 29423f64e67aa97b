/*
 * Cron expressions (cron.h).
 */
#include "common/cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static int cron_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cron_fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return ERR_INVALID;
}

/* A decimal number of at most 3 digits at *p. */
static bool cron_num(const char **p, int *out)
{
    int v = 0, n = 0;

    while (**p >= '0' && **p <= '9' && n < 3) {
        v = v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    if (n == 0 || (**p >= '0' && **p <= '9')) {
        return false;
    }
    *out = v;
    return true;
}

/* One field (text from f to end) into bits lo..hi. */
static bool cron_field(const char *f, const char *end, int lo, int hi,
                       uint64_t *bits, bool *star)
{
    const char *p = f;

    *bits = 0;
    *star = end - f == 1 && *f == '*';
    while (p < end) {
        int a, b, step = 1;

        if (*p == '*') {
            a = lo;
            b = hi;
            p++;
        } else {
            if (!cron_num(&p, &a)) {
                return false;
            }
            b = a;
            if (p < end && *p == '-') {
                p++;
                if (!cron_num(&p, &b)) {
                    return false;
                }
            }
        }
        if (p < end && *p == '/') {
            p++;
            if (!cron_num(&p, &step) || step < 1) {
                return false;
            }
        }
        if (a < lo || b > hi || a > b) {
            return false;
        }
        for (int v = a; v <= b; v += step) {
            *bits |= (uint64_t)1 << v;
        }
        if (p < end) {
            if (*p != ',' || p + 1 == end) {
                return false;
            }
            p++;
        }
    }
    return *bits != 0;
}

int cron_parse(const char *text, struct cron *out, char *why, size_t whylen)
{
    static const char *const names[] = {"minute", "hour", "day of month",
                                        "month", "day of week"};
    static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
    const char *p = text;
    uint64_t bits[5];
    bool star[5];
    int n = 0;

    memset(out, 0, sizeof(*out));
    if (text == NULL || strlen(text) > CRON_TEXT_MAX) {
        return cron_fail(why, whylen, "cron: at most %d characters",
                         CRON_TEXT_MAX);
    }
    for (;;) {
        const char *s;
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        if (n == 5) {
            return cron_fail(why, whylen,
                             "cron: five fields (minute hour day-of-month "
                             "month day-of-week)");
        }
        s = p;
        while (*p != '\0' && *p != ' ' && *p != '\t') {
            p++;
        }
        if (!cron_field(s, p, lo[n], hi[n], &bits[n], &star[n])) {
            return cron_fail(why, whylen, "cron: bad %s field '%.*s' (%d-%d)",
                             names[n], (int)(p - s > 40 ? 40 : p - s), s, lo[n],
                             hi[n]);
        }
        n++;
    }
    if (n != 5) {
        return cron_fail(why, whylen,
                         "cron: five fields (minute hour day-of-month month "
                         "day-of-week)");
    }
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    out->dow = (uint8_t)((bits[4] & 0x7f) | (bits[4] >> 7 & 1));
    out->dom_star = star[2];
    out->dow_star = star[4];
    return ERR_OK;
}

bool cron_match(const struct cron *c, const struct tm *tm)
{
    bool dom = (c->dom >> tm->tm_mday & 1) != 0;
    bool dow = (c->dow >> tm->tm_wday & 1) != 0;
    bool day;

    if (c->dom_star || c->dow_star) {
        day = dom && dow;
    } else {
        day = dom || dow;
    }
    return (c->minute >> tm->tm_min & 1) != 0 &&
           (c->hour >> tm->tm_hour & 1) != 0 &&
           (c->month >> (tm->tm_mon + 1) & 1) != 0 && day;
}

static bool cron_match_at(const struct cron *c, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    return localtime_r(&tt, &tm) != NULL && cron_match(c, &tm);
}

int64_t cron_next(const struct cron *c, int64_t t, int64_t limit)
{
    int64_t m = t - (t % 60 + 60) % 60 + 60;

    for (int64_t i = 0; i < limit; i++, m += 60) {
        if (cron_match_at(c, m)) {
            return m;
        }
    }
    return -1;
}

int64_t cron_count(const struct cron *c, int64_t from, int64_t to,
                   int64_t limit)
{
    int64_t n = 0;
    int64_t m = from - (from % 60 + 60) % 60 + 60;

    /* at most a year of minutes is looked at */
    for (int64_t i = 0; m <= to && n < limit && i < 527040; m += 60, i++) {
        if (cron_match_at(c, m)) {
            n++;
        }
    }
    return n;
}
