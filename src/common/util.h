/*
 * Small helpers shared by every program: UUIDs, time, whole-file I/O.
 */
#ifndef PORTCULLIS_UTIL_H
#define PORTCULLIS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTIL_UUID_LEN 36 /* characters, without the NUL */

/* A random (version 4) UUID, lower-case, into out[UTIL_UUID_LEN + 1]. */
void util_uuid4(char *out);
/* true if s is exactly a UUID in 8-4-4-4-12 hex form (either case). */
bool util_is_uuid(const char *s);
/* Copies src into dst[size], truncating; always NUL-terminates (size > 0).
 * Returns strlen(src), so a result >= size means it was truncated. */
size_t util_strlcpy(char *dst, const char *src, size_t size);
/* Seconds since the epoch. */
int64_t util_now(void);
/* Milliseconds from a monotonic clock. */
int64_t util_mono_ms(void);
/* Waits (10 ms naps) until *flag, set by another thread with
 * __atomic_store_n(..., __ATOMIC_RELEASE), is non-zero, for at most ms;
 * true when it is. For a job on a worker that its owner must let go. */
bool util_wait_flag(const int *flag, int ms);
/* Adds O_NONBLOCK to fd. ERR_OK or ERR_IO. */
int util_set_nonblock(int fd);
/* Reads a whole file of at most max bytes into a NUL-terminated heap
 * buffer the caller frees (and wipes, if it held a secret). */
int util_read_file(const char *path, size_t max, uint8_t **data, size_t *len);
/*
 * Reads a key file of exactly len bytes into key (the vault's, the JWT
 * secret, the audit key): a regular file (a symlink is followed only with
 * follow), readable by its owner only, of exactly len bytes, checked on
 * the open descriptor. ERR_OK; ERR_NOT_FOUND if there is no such file;
 * ERR_CRYPTO (logged, naming what and path) for one that is unsafe or not
 * a key; ERR_IO. key is wiped on failure.
 */
int util_read_key_file(const char *path, const char *what, bool follow,
                       void *key, size_t len);
/* Replaces control characters (and DEL) in s with '?': text that quotes
 * what someone sent, on its way to a terminal or a log. */
void util_strip_ctl(char *s);
/* Creates path exclusively (O_EXCL) with mode and writes data; fsyncs. */
int util_write_file_excl(const char *path, const void *data, size_t len,
                         unsigned mode);
/* Reads one line (without the newline) from fd 0 into a heap string of at
 * most max bytes; used for --password-stdin. */
int util_read_stdin_line(size_t max, char **out);
/*
 * true if the len bytes at p are a clean absolute path of at most max
 * bytes: it starts with '/', has no empty, "." or ".." component (so no
 * "//" and no trailing '/'), is not "/" itself, and holds no NUL, other
 * control character or DEL. The agent checks a pushed file's destination
 * with it, and the server the same destination before it sends the job.
 */
bool util_path_clean(const char *p, size_t len, size_t max);
/* Formats a UTC ISO-8601 time ("2026-11-21T05:06:33Z") into out[32]. */
void util_fmt_time(int64_t t, char *out, size_t outlen);

#endif
