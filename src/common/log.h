/*
 * Logging to stderr with levels and a per-process session tag.
 *
 * Every line carries the program name, pid, level and, once set, the
 * session ID, so lines from many forked session children can be told
 * apart. Never pass a secret (password, TOTP code, key) to these.
 */
#ifndef PORTCULLIS_LOG_H
#define PORTCULLIS_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
/* Where lines go from now on (default: stderr). A session child logs
 * through a descriptor of its own after pointing fds 0-2 at /dev/null. */
void log_set_fd(int fd);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; -1 if unknown. */
int log_level_parse(const char *s);
/* Tag added to every following line of this process; NULL clears it. */
void log_set_session(const char *session_id);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * A line that someone outside can cause again and again (a flood of
 * refused PDUs from a logged-in user, accept() failing for want of
 * descriptors) is said at once, then at most once per every_ms with how
 * many times it came meanwhile, so that nobody can fill the log. One
 * struct log_limit per kind of line (and per session, where it belongs
 * to one); zeroed to start.
 */
struct log_limit {
    int64_t last_ms; /* when the last line was said */
    uint64_t held;   /* occurrences since, not said */
    int said;        /* a line was said (last_ms is valid) */
};

/* Counts one occurrence at now_ms (util_mono_ms()). 0: hold the line
 * back; else say it now, for this many occurrences (this one and those
 * held back since the last line). */
uint64_t log_limit_take(struct log_limit *l, int64_t now_ms, int64_t every_ms);
/* The occurrences held back and not said yet (to say at the end of a
 * session, so no count is lost); clears them. */
uint64_t log_limit_flush(struct log_limit *l);

#endif
