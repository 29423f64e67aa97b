/*
 * Recording writer; see record.h.
 */
#include "record/record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

struct record {
    int fd;
    char *buf; /* pending output */
    size_t len, cap;
    int64_t start_ms; /* monotonic time of the header */
    uint8_t carry[4]; /* an incomplete UTF-8 sequence from the last chunk */
    size_t ncarry;
    uint64_t size;
    crypto_hash_sha256_state sha;
    bool failed;
    uint64_t limit; /* 0: none */
    bool limit_hit;
};

struct record *record_new(int fd)
{
    struct record *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->fd = fd;
    r->start_ms = util_mono_ms();
    crypto_hash_sha256_init(&r->sha);
    return r;
}

static int record_reserve(struct record *r, size_t n)
{
    size_t ncap;
    char *nb;

    if (r->len + n <= r->cap) {
        return ERR_OK;
    }
    ncap = r->cap ? r->cap : 8192;
    while (ncap < r->len + n) {
        ncap *= 2;
    }
    if ((nb = realloc(r->buf, ncap)) == NULL) {
        return ERR_NOMEM;
    }
    r->buf = nb;
    r->cap = ncap;
    return ERR_OK;
}

static int record_maybe_flush(struct record *r);

static int record_put(struct record *r, const char *p, size_t n)
{
    int e;

    if ((e = record_reserve(r, n)) != ERR_OK) {
        return e;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return ERR_OK;
}

int record_bytes(struct record *r, const void *p, size_t n)
{
    int e;

    if (r->failed) {
        return ERR_IO;
    }
    if (r->limit != 0 && (n > r->limit || r->size + r->len > r->limit - n)) {
        r->limit_hit = true;
        return ERR_TOO_LONG;
    }
    if ((e = record_put(r, p, n)) != ERR_OK) {
        return e;
    }
    return record_maybe_flush(r);
}

void record_set_limit(struct record *r, uint64_t max_bytes)
{
    r->limit = max_bytes;
}

bool record_limit_hit(const struct record *r)
{
    return r->limit_hit;
}

uint64_t record_size(const struct record *r)
{
    return r->size + r->len;
}

int record_flush(struct record *r)
{
    size_t off = 0;
    ssize_t n;

    if (r->failed) {
        return ERR_IO;
    }
    while (off < r->len) {
        n = write(r->fd, r->buf + off, r->len - off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            log_error("recording: write failed: %s",
                      n < 0 ? strerror(errno) : "no progress");
            r->failed = true;
            return ERR_IO;
        }
        crypto_hash_sha256_update(&r->sha, (const uint8_t *)r->buf + off,
                                  (unsigned long long)n);
        r->size += (uint64_t)n;
        off += (size_t)n;
    }
    r->len = 0;
    return ERR_OK;
}

static int record_maybe_flush(struct record *r)
{
    return r->len >= RECORD_FLUSH_BYTES ? record_flush(r) : ERR_OK;
}

/* Length of the UTF-8 sequence starting with byte c; 0 if c cannot
 * start one. */
static size_t record_utf8_len(uint8_t c)
{
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        return 2;
    }
    if (c >= 0xe0 && c <= 0xef) {
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        return 4;
    }
    return 0;
}

/* true if p[0..n) is one valid UTF-8 sequence (no overlongs, no
 * surrogates, at most U+10FFFF). */
static bool record_utf8_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return false;
        }
    }
    if (n == 3) {
        if (p[0] == 0xe0 && p[1] < 0xa0) {
            return false;
        }
        if (p[0] == 0xed && p[1] >= 0xa0) {
            return false;
        }
    }
    if (n == 4) {
        if (p[0] == 0xf0 && p[1] < 0x90) {
            return false;
        }
        if (p[0] == 0xf4 && p[1] >= 0x90) {
            return false;
        }
    }
    return true;
}

/*
 * Appends the JSON string body (no quotes) for bytes p[0..n) to r. With
 * carry, an incomplete sequence at the end is kept for the next call.
 */
static int record_put_json_bytes(struct record *r, const uint8_t *p, size_t n,
                                 bool carry)
{
    static const char hex[] = "0123456789abcdef";
    char esc[8];
    size_t i = 0, k;
    int e = ERR_OK;

    while (i < n && e == ERR_OK) {
        uint8_t c = p[i];

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i;
            while (j < n && p[j] >= 0x20 && p[j] < 0x80 && p[j] != '"' &&
                   p[j] != '\\') {
                j++;
            }
            e = record_put(r, (const char *)p + i, j - i);
            i = j;
            continue;
        }
        if (c < 0x80) {
            switch (c) {
            case '"':
                e = record_put(r, "\\\"", 2);
                break;
            case '\\':
                e = record_put(r, "\\\\", 2);
                break;
            case '\n':
                e = record_put(r, "\\n", 2);
                break;
            case '\r':
                e = record_put(r, "\\r", 2);
                break;
            case '\t':
                e = record_put(r, "\\t", 2);
                break;
            default:
                esc[0] = '\\';
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                e = record_put(r, esc, 6);
                break;
            }
            i++;
            continue;
        }
        k = record_utf8_len(c);
        if (k == 0) {
            e = record_put(r, "\xef\xbf\xbd", 3);
            i++;
            continue;
        }
        if (i + k > n) {
            /* Truncated: maybe the rest comes in the next chunk. */
            bool prefix_ok = true;
            for (size_t q = i + 1; q < n; q++) {
                prefix_ok &= (p[q] & 0xc0) == 0x80;
            }
            if (carry && prefix_ok) {
                memcpy(r->carry, p + i, n - i);
                r->ncarry = n - i;
                return ERR_OK;
            }
            e = record_put(r, "\xef\xbf\xbd", 3);
            i++;
            continue;
        }
        if (!record_utf8_valid(p + i, k)) {
            e = record_put(r, "\xef\xbf\xbd", 3);
            i++;
            continue;
        }
        e = record_put(r, (const char *)p + i, k);
        i += k;
    }
    return e;
}

/*
 * Whole events or nothing: an event is built in the buffer (no flush
 * happens inside one), then taken back if it passes the size limit.
 */
struct record_mark {
    size_t len;
    size_t ncarry;
    uint8_t carry[4];
};

static void record_mark(const struct record *r, struct record_mark *m)
{
    m->len = r->len;
    m->ncarry = r->ncarry;
    memcpy(m->carry, r->carry, sizeof(m->carry));
}

/* e is the event's error so far; ERR_TOO_LONG and nothing kept when the
 * event took the file past the limit. */
static int record_event_done(struct record *r, const struct record_mark *m,
                             int e)
{
    if (e == ERR_OK && r->limit != 0 &&
        (r->size > r->limit || r->len > r->limit - r->size)) {
        r->limit_hit = true;
        e = ERR_TOO_LONG;
    }
    if (e != ERR_OK) {
        r->len = m->len;
        r->ncarry = m->ncarry;
        memcpy(r->carry, m->carry, sizeof(m->carry));
        return e;
    }
    return record_maybe_flush(r);
}

static int record_event_start(struct record *r, char type)
{
    char head[64];
    int64_t ms = util_mono_ms() - r->start_ms;
    int n;

    n = snprintf(head, sizeof(head), "[%lld.%03lld, \"%c\", \"",
                 (long long)(ms / 1000), (long long)(ms % 1000), type);
    return record_put(r, head, (size_t)n);
}

int record_cast_header(struct record *r, int cols, int rows, int64_t unix_ts,
                       const char *title, const char *term)
{
    char head[160];
    int n, e;

    n = snprintf(head, sizeof(head),
                 "{\"version\": 2, \"width\": %d, \"height\": %d, "
                 "\"timestamp\": %lld",
                 cols > 0 ? cols : 80, rows > 0 ? rows : 24,
                 (long long)unix_ts);
    if ((e = record_put(r, head, (size_t)n)) != ERR_OK) {
        return e;
    }
    if (title != NULL) {
        if ((e = record_put(r, ", \"title\": \"", 12)) != ERR_OK ||
            (e = record_put_json_bytes(r, (const uint8_t *)title, strlen(title),
                                       false)) != ERR_OK ||
            (e = record_put(r, "\"", 1)) != ERR_OK) {
            return e;
        }
    }
    if (term != NULL) {
        if ((e = record_put(r, ", \"env\": {\"TERM\": \"", 19)) != ERR_OK ||
            (e = record_put_json_bytes(r, (const uint8_t *)term, strlen(term),
                                       false)) != ERR_OK ||
            (e = record_put(r, "\"}", 2)) != ERR_OK) {
            return e;
        }
    }
    if ((e = record_put(r, "}\n", 2)) != ERR_OK) {
        return e;
    }
    r->start_ms = util_mono_ms();
    return record_flush(r);
}

int record_cast_data(struct record *r, char type, const uint8_t *data, size_t n)
{
    uint8_t joined[4 + 4];
    struct record_mark m;
    size_t take = 0;
    int e;

    if (r->failed) {
        return ERR_IO;
    }
    if (n == 0) {
        return ERR_OK;
    }
    record_mark(r, &m);
    if ((e = record_event_start(r, type)) != ERR_OK) {
        return record_event_done(r, &m, e);
    }
    /* Finish a sequence split at the end of the last chunk. */
    if (r->ncarry > 0) {
        size_t need = record_utf8_len(r->carry[0]) - r->ncarry;

        memcpy(joined, r->carry, r->ncarry);
        while (take < need && take < n && (data[take] & 0xc0) == 0x80) {
            joined[r->ncarry + take] = data[take];
            take++;
        }
        e = record_put_json_bytes(r, joined, r->ncarry + take, false);
        r->ncarry = 0;
        if (e != ERR_OK) {
            return record_event_done(r, &m, e);
        }
    }
    if ((e = record_put_json_bytes(r, data + take, n - take, true)) == ERR_OK) {
        e = record_put(r, "\"]\n", 3);
    }
    return record_event_done(r, &m, e);
}

int record_cast_resize(struct record *r, int cols, int rows)
{
    struct record_mark m;
    char body[48];
    int n, e;

    if (r->failed) {
        return ERR_IO;
    }
    record_mark(r, &m);
    if ((e = record_event_start(r, 'r')) == ERR_OK) {
        n = snprintf(body, sizeof(body), "%dx%d\"]\n", cols, rows);
        e = record_put(r, body, (size_t)n);
    }
    return record_event_done(r, &m, e);
}

int record_line(struct record *r, const char *line)
{
    struct record_mark m;
    int e;

    if (r->failed) {
        return ERR_IO;
    }
    record_mark(r, &m);
    if ((e = record_put(r, line, strlen(line))) == ERR_OK) {
        e = record_put(r, "\n", 1);
    }
    return record_event_done(r, &m, e);
}

bool record_failed(const struct record *r)
{
    return r->failed;
}

int record_close(struct record *r, uint64_t *size, char sha256_hex[65])
{
    uint8_t digest[crypto_hash_sha256_BYTES];
    int e;

    e = record_flush(r);
    if (e == ERR_OK && fsync(r->fd) != 0) {
        log_error("recording: fsync failed: %s", strerror(errno));
        e = ERR_IO;
    }
    if (close(r->fd) != 0 && e == ERR_OK) {
        e = ERR_IO;
    }
    r->fd = -1;
    crypto_hash_sha256_final(&r->sha, digest);
    sodium_bin2hex(sha256_hex, 65, digest, sizeof(digest));
    *size = r->size;
    free(r->buf);
    free(r);
    return e;
}

void record_free(struct record *r)
{
    if (r == NULL) {
        return;
    }
    if (r->fd >= 0) {
        close(r->fd);
    }
    free(r->buf);
    free(r);
}

size_t record_json_string(char *out, size_t outlen, const char *s)
{
    struct record tmp;
    size_t n;

    memset(&tmp, 0, sizeof(tmp));
    if (record_put(&tmp, "\"", 1) != ERR_OK ||
        record_put_json_bytes(&tmp, (const uint8_t *)s, strlen(s), false) !=
            ERR_OK ||
        record_put(&tmp, "\"", 1) != ERR_OK || tmp.len + 1 > outlen) {
        free(tmp.buf);
        return 0;
    }
    memcpy(out, tmp.buf, tmp.len);
    out[tmp.len] = '\0';
    n = tmp.len;
    free(tmp.buf);
    return n;
}
