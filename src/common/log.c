/* Logging; see log.h. One write(2) per line so lines from many processes
 * sharing stderr do not interleave. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "portcullis";
static enum log_level log_level_cur = LOG_INFO;
static char log_session[64];
static int log_fd = STDERR_FILENO;

static const char *const log_names[] = {"error", "warn", "info", "debug"};

void log_init(const char *prog, enum log_level level)
{
    log_prog = prog;
    log_level_cur = level;
}

void log_set_fd(int fd)
{
    log_fd = fd;
}

void log_set_level(enum log_level level)
{
    log_level_cur = level;
}

enum log_level log_get_level(void)
{
    return log_level_cur;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, log_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void log_set_session(const char *session_id)
{
    if (session_id == NULL) {
        log_session[0] = '\0';
        return;
    }
    snprintf(log_session, sizeof(log_session), "%s", session_id);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int n, m;

    if (level > log_level_cur) {
        return;
    }
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = snprintf(line, sizeof(line),
                 "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %s%s%s: ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                 tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000, log_prog,
                 (long)getpid(), log_names[level],
                 log_session[0] ? " session=" : "", log_session);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        n = 0;
    }
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) {
        m = 0;
    }
    n += m;
    if ((size_t)n > sizeof(line) - 2) {
        n = (int)sizeof(line) - 2;
    }
    /* Control characters from peers must not forge log lines. */
    for (int i = 0; i < n; i++) {
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t') {
            line[i] = '?';
        }
    }
    line[n++] = '\n';
    (void)!write(log_fd, line, (size_t)n);
}

uint64_t log_limit_take(struct log_limit *l, int64_t now_ms, int64_t every_ms)
{
    uint64_t n;

    l->held++;
    if (l->said && now_ms - l->last_ms < every_ms) {
        return 0;
    }
    n = l->held;
    l->held = 0;
    l->last_ms = now_ms;
    l->said = 1;
    return n;
}

uint64_t log_limit_flush(struct log_limit *l)
{
    uint64_t n = l->held;

    l->held = 0;
    return n;
}
