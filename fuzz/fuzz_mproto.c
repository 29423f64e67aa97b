/*
 * libFuzzer target for the bytes a session child sends the monitor: the
 * mproto transport and, above all, the struct buf getters every request
 * is parsed with (src/common/buf.c, src/sshproxy/mproto.c).
 *
 * First the input goes through mproto_send/mproto_recv on a socketpair
 * and must arrive unchanged. Then it is loaded into a struct buf whose
 * maximum is the input size, so its storage is exactly that size and ASan
 * sees any read past the end, and read back as a script: each op byte,
 * taken from the buffer itself, picks an operation (low 3 bits) and a
 * parameter (high 5 bits), and the op runs on the buffer and on a plain
 * array model of it side by side. After every op the two must agree on
 * the return code, the values read and the bytes left; a failed getter
 * must have reset its out-parameters and left the buffer as it was; and
 * off <= len <= cap <= max must hold throughout.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "sshproxy/mproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_mproto: invariant failed: %s (line %d)\n",   \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* String maxima and destination sizes an op's parameter picks from. */
static const size_t fuzz_maxes[8] = {0, 1, 2, 4, 16, 255, 65536, SIZE_MAX};
static const size_t fuzz_dstsizes[8] = {0, 1, 2, 3, 5, 17, 256, 4096};

/* The model: the unread bytes, front first, and the ceiling on them. */
struct fuzz_model {
    uint8_t *d;
    size_t len;
    size_t max;
};

static void model_consume(struct fuzz_model *m, size_t n)
{
    memmove(m->d, m->d + n, m->len - n);
    m->len -= n;
}

static uint64_t model_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* The model's verdict on a u32-length string of at most max bytes. */
static int model_string(const struct fuzz_model *m, size_t max, size_t *n)
{
    *n = 0;
    if (m->len < 4) {
        return ERR_PROTO;
    }
    *n = (size_t)model_be(m->d, 4);
    if (*n > max) {
        return ERR_TOO_LONG;
    }
    if (*n > m->len - 4) {
        return ERR_PROTO;
    }
    return ERR_OK;
}

static int model_put(struct fuzz_model *m, const void *p, size_t n)
{
    if (n > m->max || m->len > m->max - n) {
        return ERR_TOO_LONG;
    }
    memcpy(m->d + m->len, p, n);
    m->len += n;
    return ERR_OK;
}

static void fuzz_check_same(const struct buf *b, const struct fuzz_model *m)
{
    FUZZ_CHECK(b->off <= b->len);
    FUZZ_CHECK(b->len <= b->cap);
    FUZZ_CHECK(b->cap <= b->max);
    FUZZ_CHECK(b->max == m->max);
    FUZZ_CHECK(buf_avail(b) == m->len);
    FUZZ_CHECK(m->len == 0 || memcmp(buf_ptr(b), m->d, m->len) == 0);
    FUZZ_CHECK(buf_expect_end(b) == (m->len == 0 ? ERR_OK : ERR_PROTO));
}

/* A pointer a getter returned lies inside the readable data. */
static void fuzz_check_inside(const struct buf *b, const uint8_t *p, size_t n)
{
    FUZZ_CHECK(b->data != NULL);
    FUZZ_CHECK(p >= b->data && p <= b->data + b->len);
    FUZZ_CHECK(n <= (size_t)(b->data + b->len - p));
}

/* Runs one op, parameter param, on both; returns the buffer's result. */
static int fuzz_op(struct buf *b, struct fuzz_model *m, unsigned op,
                   unsigned param)
{
    static const char letters[] = "abcdefg";
    uint8_t v8 = 0xa5, raw[8];
    uint32_t v32 = 0xa5a5a5a5;
    uint64_t v64 = 0xa5a5a5a5a5a5a5a5ULL;
    const uint8_t *p = (const uint8_t *)letters, *before = buf_ptr(b);
    size_t n = 0xa5, want_n = 0, max = fuzz_maxes[param & 7];
    char *s = (char *)raw, *dst;
    int r = ERR_OK, want = ERR_OK;

    switch (op) {
    case 0:
        r = buf_get_u8(b, &v8);
        want = m->len < 1 ? ERR_PROTO : ERR_OK;
        FUZZ_CHECK(r == want);
        FUZZ_CHECK(v8 == (r == ERR_OK ? m->d[0] : 0));
        if (r == ERR_OK) {
            model_consume(m, 1);
        }
        break;
    case 1:
        r = buf_get_u32(b, &v32);
        want = m->len < 4 ? ERR_PROTO : ERR_OK;
        FUZZ_CHECK(r == want);
        FUZZ_CHECK(v32 == (r == ERR_OK ? model_be(m->d, 4) : 0));
        if (r == ERR_OK) {
            model_consume(m, 4);
        }
        break;
    case 2:
        r = buf_get_u64(b, &v64);
        want = m->len < 8 ? ERR_PROTO : ERR_OK;
        FUZZ_CHECK(r == want);
        FUZZ_CHECK(v64 == (r == ERR_OK ? model_be(m->d, 8) : 0));
        if (r == ERR_OK) {
            model_consume(m, 8);
        }
        break;
    case 3:
        r = buf_get_string_ptr(b, max, &p, (param & 8) ? NULL : &n);
        want = model_string(m, max, &want_n);
        FUZZ_CHECK(r == want);
        if (r != ERR_OK) {
            FUZZ_CHECK(p == NULL);
            FUZZ_CHECK((param & 8) || n == 0);
            break;
        }
        FUZZ_CHECK((param & 8) || n == want_n);
        FUZZ_CHECK(p == before + 4);
        fuzz_check_inside(b, p, want_n);
        FUZZ_CHECK(want_n == 0 || memcmp(p, m->d + 4, want_n) == 0);
        model_consume(m, 4 + want_n);
        break;
    case 4:
        r = buf_get_cstring(b, max, &s);
        want = model_string(m, max, &want_n);
        if (want == ERR_OK && memchr(m->d + 4, '\0', want_n) != NULL) {
            want = ERR_INVALID;
        }
        FUZZ_CHECK(r == want || (r == ERR_NOMEM && want == ERR_OK));
        if (r != ERR_OK) {
            FUZZ_CHECK(s == NULL);
            break;
        }
        FUZZ_CHECK(strlen(s) == want_n);
        FUZZ_CHECK(memcmp(s, m->d + 4, want_n) == 0);
        free(s);
        model_consume(m, 4 + want_n);
        break;
    case 5:
        n = fuzz_dstsizes[param & 7];
        /* Exactly n bytes, so ASan sees a write past the caller's array. */
        if ((dst = malloc(n > 0 ? n : 1)) == NULL) {
            return ERR_NOMEM;
        }
        memset(dst, 0xa5, n > 0 ? n : 1);
        r = buf_get_cstring_into(b, dst, n);
        if (n == 0) {
            want = ERR_INTERNAL;
        } else {
            want = model_string(m, n - 1, &want_n);
            if (want == ERR_OK && memchr(m->d + 4, '\0', want_n) != NULL) {
                want = ERR_INVALID;
            }
        }
        FUZZ_CHECK(r == want);
        if (n > 0) {
            FUZZ_CHECK(memchr(dst, '\0', n) != NULL);
        }
        if (r == ERR_OK) {
            FUZZ_CHECK(strlen(dst) == want_n);
            FUZZ_CHECK(memcmp(dst, m->d + 4, want_n) == 0);
            model_consume(m, 4 + want_n);
        } else if (n > 0) {
            FUZZ_CHECK(dst[0] == '\0');
        }
        free(dst);
        break;
    case 6:
        r = buf_expect_end(b);
        FUZZ_CHECK(r == (m->len == 0 ? ERR_OK : ERR_PROTO));
        break;
    default:
        /* The rest: raw reads of 0..7 bytes and puts onto the same
         * buffer, which exercise compaction and the ceiling. */
        n = param >> 2;
        switch (param & 3) {
        case 0:
            memset(raw, 0xa5, sizeof(raw));
            r = buf_get(b, raw, n);
            want = n > m->len ? ERR_PROTO : ERR_OK;
            FUZZ_CHECK(r == want);
            if (r == ERR_OK) {
                FUZZ_CHECK(n == 0 || memcmp(raw, m->d, n) == 0);
                model_consume(m, n);
            } else {
                FUZZ_CHECK(model_be(raw, n) == 0);
            }
            break;
        case 1:
            v8 = (uint8_t)param;
            r = buf_put_u8(b, v8);
            FUZZ_CHECK(r == model_put(m, &v8, 1));
            break;
        case 2:
            v64 = 0x0102030405060708ULL * param;
            r = buf_put_u64(b, v64);
            for (n = 0; n < 8; n++) {
                raw[n] = (uint8_t)(v64 >> (56 - 8 * n));
            }
            FUZZ_CHECK(r == model_put(m, raw, 8));
            break;
        default:
            r = buf_put_string(b, letters, n);
            want = ERR_TOO_LONG;
            if (n + 4 <= m->max && m->len <= m->max - (n + 4)) {
                raw[0] = raw[1] = raw[2] = 0;
                raw[3] = (uint8_t)n;
                FUZZ_CHECK(model_put(m, raw, 4) == ERR_OK);
                FUZZ_CHECK(model_put(m, letters, n) == ERR_OK);
                want = ERR_OK;
            }
            FUZZ_CHECK(r == want);
            break;
        }
        break;
    }
    return r;
}

/* The input survives the monitor transport unchanged. */
static void fuzz_transport(const uint8_t *data, size_t size)
{
    static int sp[2] = {-1, -1};
    struct buf *out = NULL, *in = NULL;
    uint8_t type = 0;
    int fd = 0;

    if (size == 0 || size > MPROTO_MAX) {
        return;
    }
    if (sp[0] < 0 && socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) != 0) {
        return;
    }
    out = buf_new(MPROTO_MAX);
    in = buf_new(MPROTO_MAX);
    FUZZ_CHECK(out != NULL && in != NULL);
    FUZZ_CHECK(buf_put(out, data + 1, size - 1) == ERR_OK);
    FUZZ_CHECK(mproto_send(sp[0], data[0], out, -1, 0) == ERR_OK);
    FUZZ_CHECK(mproto_recv(sp[1], &type, in, &fd) == ERR_OK);
    FUZZ_CHECK(type == data[0]);
    FUZZ_CHECK(fd == -1);
    FUZZ_CHECK(buf_avail(in) == size - 1);
    FUZZ_CHECK(size == 1 || memcmp(buf_ptr(in), data + 1, size - 1) == 0);
    buf_free(out);
    buf_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_model m;
    struct buf *b;
    size_t steps, max = size > 0 ? size : 1;
    uint8_t op = 0;

    fuzz_transport(data, size);

    b = buf_new(max);
    m.d = malloc(max);
    FUZZ_CHECK(b != NULL && m.d != NULL);
    m.len = 0;
    m.max = max;
    FUZZ_CHECK(buf_put(b, data, size) == ERR_OK);
    FUZZ_CHECK(model_put(&m, data, size) == ERR_OK);
    fuzz_check_same(b, &m);

    /* Every op consumes its op byte, but puts add bytes back: bound the
     * loop so a script that feeds itself still ends. */
    for (steps = 0; steps < 4 * max + 16; steps++) {
        if (buf_get_u8(b, &op) != ERR_OK) {
            FUZZ_CHECK(op == 0 && m.len == 0);
            break;
        }
        FUZZ_CHECK(m.len > 0 && op == m.d[0]);
        model_consume(&m, 1);
        fuzz_check_same(b, &m);
        if (fuzz_op(b, &m, op & 7, op >> 3) == ERR_NOMEM) {
            break;
        }
        fuzz_check_same(b, &m);
    }
    buf_free(b);
    free(m.d);
    return 0;
}
