/*
 * struct buf: the one door for untrusted bytes.
 *
 * A growable byte buffer with a read offset. Putters append at the end and
 * fail with ERR_TOO_LONG rather than grow past the buffer's maximum; getters
 * consume from the read offset, return an error code and reset their
 * out-parameters on failure, so a short or malformed message can never leave
 * a half-filled value behind. Wire format: integers big-endian, strings as a
 * u32 length followed by the bytes (as in SSH).
 *
 * Ownership: buf_new() returns a buffer the caller frees with buf_free();
 * buf_free(NULL) is a no-op. buf_free() wipes the contents (they may hold
 * secrets). Strings returned by buf_get_cstring() are heap copies the caller
 * frees; buf_get_string_ptr() points into the buffer and lives until the
 * next change to it.
 */
#ifndef PORTCULLIS_BUF_H
#define PORTCULLIS_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *data; /* storage, cap bytes */
    size_t off;    /* read offset */
    size_t len;    /* bytes written (end of readable data) */
    size_t cap;    /* allocated size */
    size_t max;    /* hard ceiling on len */
};

#define BUF_DEFAULT_MAX (1024 * 1024)

struct buf *buf_new(size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Bytes left to read. */
size_t buf_avail(const struct buf *b);
const uint8_t *buf_ptr(const struct buf *b);
/* Reserve n bytes at the end and return a pointer to them. */
int buf_reserve(struct buf *b, size_t n, uint8_t **out);
int buf_consume(struct buf *b, size_t n);

int buf_put(struct buf *b, const void *p, size_t n);
int buf_put_u8(struct buf *b, uint8_t v);
int buf_put_u32(struct buf *b, uint32_t v);
int buf_put_u64(struct buf *b, uint64_t v);
int buf_put_string(struct buf *b, const void *p, size_t n);
/* NULL is sent as the empty string. */
int buf_put_cstring(struct buf *b, const char *s);

int buf_get(struct buf *b, void *p, size_t n);
int buf_get_u8(struct buf *b, uint8_t *v);
int buf_get_u32(struct buf *b, uint32_t *v);
int buf_get_u64(struct buf *b, uint64_t *v);
/* Points into the buffer; *lenp may be NULL. Fails if longer than max. */
int buf_get_string_ptr(struct buf *b, size_t max, const uint8_t **p,
                       size_t *lenp);
/* A heap copy, NUL-terminated; fails on embedded NUL or length > max. */
int buf_get_cstring(struct buf *b, size_t max, char **out);
/* Copies into a caller array of size dstsize (incl. NUL). */
int buf_get_cstring_into(struct buf *b, char *dst, size_t dstsize);
/* ERR_OK if every byte was consumed, ERR_PROTO otherwise. */
int buf_expect_end(const struct buf *b);

#endif
