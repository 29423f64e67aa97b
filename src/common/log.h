/*
 * Logging to stderr with levels and a per-process session tag.
 *
 * Every line carries the program name, pid, level and, once set, the
 * session ID, so lines from many forked session children can be told
 * apart. Never pass a secret (password, TOTP code, key) to these.
 */
#ifndef PORTCULLIS_LOG_H
#define PORTCULLIS_LOG_H

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

#endif
