/*
 * Session recordings, written by the session child as the session runs.
 *
 * A recording is a file the main process created exclusively (mode 0640,
 * never overwritten) and passed to the child as a file descriptor. Two
 * formats:
 *
 *  - asciicast v2 (.cast) for terminal and exec sessions: a JSON header
 *    line, then one JSON array per event: [seconds, "o", "text"] for
 *    output, "i" for input, "r" for a resize ("COLSxROWS"). Text is valid
 *    UTF-8 (invalid bytes become U+FFFD; a sequence split between two
 *    chunks is carried over), so `asciinema cat` prints what the user saw.
 *  - JSON lines (.jsonl) for file-transfer records (SFTP, scp).
 *
 * Durability: events are buffered in memory and written out when the
 * buffer passes RECORD_FLUSH_BYTES, when record_flush() is called (the
 * child's loop does so at least every second) and at close, which also
 * fsyncs. A write error is sticky: record_failed() then says so and the
 * child ends the session (a session that must be recorded never runs
 * unrecorded).
 *
 * The SHA-256 and size of everything written are kept as it goes and
 * returned by record_close().
 *
 * Ownership: record_new() takes ownership of fd; record_close() closes it
 * and frees the struct; record_free() (NULL-safe) does so without fsync,
 * for error paths.
 */
#ifndef PORTCULLIS_RECORD_H
#define PORTCULLIS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_FLUSH_BYTES 65536

struct record;

struct record *record_new(int fd);
/* The asciicast v2 header; title and term may be NULL. */
int record_cast_header(struct record *r, int cols, int rows, int64_t unix_ts,
                       const char *title, const char *term);
/* An asciicast event: type 'o' (output), 'i' (input). */
int record_cast_data(struct record *r, char type, const uint8_t *data,
                     size_t n);
/* An asciicast resize event. */
int record_cast_resize(struct record *r, int cols, int rows);
/* One JSON-lines record (line must be one JSON object, no newline). */
int record_line(struct record *r, const char *line);
/* Raw bytes (binary formats such as rdprec.h's). */
int record_bytes(struct record *r, const void *p, size_t n);
/*
 * A size limit for the whole file (0: none). A write that would take the
 * file past it is refused with ERR_TOO_LONG, nothing of it written, and
 * record_limit_hit() says so from then on; the recording stays usable
 * for smaller writes that still fit (an end marker).
 */
void record_set_limit(struct record *r, uint64_t max_bytes);
bool record_limit_hit(const struct record *r);
/* Bytes written and buffered so far. */
uint64_t record_size(const struct record *r);
/* Writes out what is buffered. */
int record_flush(struct record *r);
/* true once a write failed. */
bool record_failed(const struct record *r);
/* Flushes, fsyncs, closes; size and hex SHA-256 of the whole file. */
int record_close(struct record *r, uint64_t *size, char sha256_hex[65]);
void record_free(struct record *r);
/* Appends s as a JSON string (with quotes) to out, escaping as JSON
 * needs; used for the transfer records' fields too. Invalid UTF-8 bytes
 * become U+FFFD. Returns the new length or 0 if it does not fit. */
size_t record_json_string(char *out, size_t outlen, const char *s);

#endif
