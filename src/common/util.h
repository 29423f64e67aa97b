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
/* Adds O_NONBLOCK to fd. ERR_OK or ERR_IO. */
int util_set_nonblock(int fd);
/* Reads a whole file of at most max bytes into a NUL-terminated heap
 * buffer the caller frees (and wipes, if it held a secret). */
int util_read_file(const char *path, size_t max, uint8_t **data, size_t *len);
/* Creates path exclusively (O_EXCL) with mode and writes data; fsyncs. */
int util_write_file_excl(const char *path, const void *data, size_t len,
                         unsigned mode);
/* Reads one line (without the newline) from fd 0 into a heap string of at
 * most max bytes; used for --password-stdin. */
int util_read_stdin_line(size_t max, char **out);
/* Formats a UTC ISO-8601 time ("2026-11-21T05:06:33Z") into out[32]. */
void util_fmt_time(int64_t t, char *out, size_t outlen);

#endif
