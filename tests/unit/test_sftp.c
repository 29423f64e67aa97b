/*
 * Unit tests of the SFTP tracker (src/record/sftp.h) with hand-built SFTP
 * version 3 packets: a whole session (INIT/VERSION, OPEN/HANDLE,
 * WRITE/STATUS, READ/DATA, CLOSE, RENAME, posix-rename, REMOVE, MKDIR,
 * RMDIR, SETSTAT, a failed OPEN, directory listing) whose events are
 * compared as text; the same session fed a byte at a time, split at every
 * byte boundary, as one chunk per direction run, and in random chunks;
 * data packets larger than the buffering limit; oversize and malformed
 * packets; garbage; full tables; the end of a channel with files left
 * open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "record/sftp.h"

#define C true  /* client to server */
#define S false /* server to client */

enum {
    INIT = 1,
    VERSION = 2,
    OPEN = 3,
    CLOSE = 4,
    READ = 5,
    WRITE = 6,
    LSTAT = 7,
    SETSTAT = 9,
    OPENDIR = 11,
    READDIR = 12,
    REMOVE = 13,
    MKDIR = 14,
    RMDIR = 15,
    RENAME = 18,
    STATUS = 101,
    HANDLE = 102,
    DATA = 103,
    NAME = 104,
    ATTRS = 105,
    EXTENDED = 200,
};

/* --- what the tracker reported, as text -------------------------------- */

struct log {
    char *text;
    size_t len, cap;
    int events;
};

__attribute__((format(printf, 2, 3))) static void log_add(struct log *l,
                                                          const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    if (l->len + (size_t)n + 1 > l->cap) {
        l->cap = (l->len + (size_t)n + 1) * 2;
        l->text = realloc(l->text, l->cap);
        assert_non_null(l->text);
    }
    va_start(ap, fmt);
    vsnprintf(l->text + l->len, l->cap - l->len, fmt, ap);
    va_end(ap);
    l->len += (size_t)n;
}

static void on_event(const struct sftp_event *ev, void *arg)
{
    struct log *l = arg;

    assert_non_null(ev->path);
    assert_non_null(ev->path2);
    assert_non_null(ev->note);
    l->events++;
    log_add(l, "%s %s", sftp_op_str(ev->op), ev->path);
    if (ev->path2[0] != '\0') {
        log_add(l, " -> %s", ev->path2);
    }
    if (ev->path_truncated) {
        log_add(l, " (cut)");
    }
    if (ev->op == SFTP_OPEN || ev->op == SFTP_CLOSE) {
        log_add(l, " [%s%s%s]", ev->read ? "r" : "", ev->write ? "w" : "",
                ev->create ? "c" : "");
    }
    log_add(l, " st=%d", ev->status);
    if (ev->op == SFTP_READ || ev->op == SFTP_WRITE) {
        log_add(l, " off=%" PRIu64 " n=%" PRIu64, ev->offset, ev->bytes);
    }
    if (ev->op == SFTP_READ || ev->op == SFTP_WRITE || ev->op == SFTP_CLOSE) {
        log_add(l, " r=%" PRIu64 " w=%" PRIu64, ev->bytes_read,
                ev->bytes_written);
    }
    if (ev->note[0] != '\0') {
        log_add(l, " (%s)", ev->note);
    }
    log_add(l, "\n");
}

static void log_free(struct log *l)
{
    free(l->text);
    memset(l, 0, sizeof(*l));
}

/* --- building packets ------------------------------------------------------
 */

struct msg {
    bool from_client;
    uint8_t *p;
    size_t n;
};

struct script {
    struct msg m[4096];
    size_t n;
};

/*
 * Appends one packet. fmt: 'u' u32, 'q' u64, 's' C string, 'h' a handle
 * (C string), 'd' data: a size_t count of pattern bytes as an SFTP string,
 * 'a' empty ATTRS (flags 0).
 */
static void pkt(struct script *s, bool from_client, uint8_t type,
                const char *fmt, ...)
{
    struct buf *body = buf_new(64 * 1024 * 1024);
    struct buf *out = buf_new(64 * 1024 * 1024);
    struct msg *m;
    va_list ap;
    size_t n;
    uint8_t *d;

    assert_non_null(body);
    assert_non_null(out);
    assert_true(s->n < sizeof(s->m) / sizeof(s->m[0]));
    va_start(ap, fmt);
    for (; *fmt != '\0'; fmt++) {
        switch (*fmt) {
        case 'u':
            assert_int_equal(buf_put_u32(body, va_arg(ap, uint32_t)), ERR_OK);
            break;
        case 'q':
            assert_int_equal(buf_put_u64(body, va_arg(ap, uint64_t)), ERR_OK);
            break;
        case 's':
        case 'h':
            assert_int_equal(buf_put_cstring(body, va_arg(ap, const char *)),
                             ERR_OK);
            break;
        case 'd':
            n = va_arg(ap, size_t);
            assert_int_equal(buf_put_u32(body, (uint32_t)n), ERR_OK);
            assert_int_equal(buf_reserve(body, n, &d), n > 0 ? ERR_OK : ERR_OK);
            for (size_t i = 0; i < n; i++) {
                d[i] = (uint8_t)(i * 7);
            }
            break;
        case 'a':
            assert_int_equal(buf_put_u32(body, 0), ERR_OK);
            break;
        default:
            fail();
        }
    }
    va_end(ap);
    assert_int_equal(buf_put_u32(out, (uint32_t)buf_avail(body) + 1), ERR_OK);
    assert_int_equal(buf_put_u8(out, type), ERR_OK);
    assert_int_equal(buf_put(out, buf_ptr(body), buf_avail(body)), ERR_OK);
    m = &s->m[s->n++];
    m->from_client = from_client;
    m->n = buf_avail(out);
    m->p = malloc(m->n);
    assert_non_null(m->p);
    memcpy(m->p, buf_ptr(out), m->n);
    buf_free(body);
    buf_free(out);
}

/* Raw bytes as one message (for malformed input). */
static void raw(struct script *s, bool from_client, const void *p, size_t n)
{
    struct msg *m = &s->m[s->n++];

    m->from_client = from_client;
    m->n = n;
    m->p = malloc(n);
    assert_non_null(m->p);
    memcpy(m->p, p, n);
}

static void script_free(struct script *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->m[i].p);
    }
    free(s);
}

static struct script *script_new(void)
{
    struct script *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    return s;
}

static void hello(struct script *s)
{
    pkt(s, C, INIT, "u", 3);
    pkt(s, S, VERSION, "uss", 3, "posix-rename@openssh.com", "1");
}

#define FL_READ 0x01
#define FL_WRITE 0x02
#define FL_CREAT 0x08
#define FL_TRUNC 0x10

/* A session of every operation; big selects large data packets. */
static void session(struct script *s, size_t big)
{
    hello(s);
    /* upload */
    pkt(s, C, OPEN, "usua", 1, "/up/file.txt", FL_WRITE | FL_CREAT | FL_TRUNC);
    pkt(s, S, HANDLE, "uh", 1, "h1");
    pkt(s, C, WRITE, "uhqd", 2, "h1", (uint64_t)0, big);
    pkt(s, C, WRITE, "uhqd", 3, "h1", (uint64_t)big, (size_t)30);
    pkt(s, S, STATUS, "uuss", 2, 0, "ok", "");
    pkt(s, S, STATUS, "uuss", 3, 0, "ok", "");
    pkt(s, C, CLOSE, "uh", 4, "h1");
    pkt(s, S, STATUS, "uuss", 4, 0, "ok", "");
    /* download */
    pkt(s, C, OPEN, "usua", 5, "/down/big.bin", FL_READ);
    pkt(s, S, HANDLE, "uh", 5, "h2");
    pkt(s, C, READ, "uhqu", 6, "h2", (uint64_t)0, (uint32_t)big);
    pkt(s, C, READ, "uhqu", 7, "h2", (uint64_t)big, (uint32_t)big);
    pkt(s, S, DATA, "ud", 6, big);
    pkt(s, S, DATA, "ud", 7, (size_t)10);
    pkt(s, C, READ, "uhqu", 8, "h2", (uint64_t)big + 10, (uint32_t)big);
    pkt(s, S, STATUS, "uuss", 8, 1, "EOF", "");
    pkt(s, C, CLOSE, "uh", 9, "h2");
    pkt(s, S, STATUS, "uuss", 9, 0, "ok", "");
    /* names */
    pkt(s, C, RENAME, "uss", 10, "/up/file.txt", "/up/final.txt");
    pkt(s, S, STATUS, "uuss", 10, 0, "ok", "");
    pkt(s, C, REMOVE, "us", 11, "/up/old");
    pkt(s, S, STATUS, "uuss", 11, 2, "No such file", "");
    pkt(s, C, MKDIR, "usa", 12, "/up/dir");
    pkt(s, S, STATUS, "uuss", 12, 0, "ok", "");
    pkt(s, C, RMDIR, "us", 13, "/up/dir");
    pkt(s, S, STATUS, "uuss", 13, 0, "ok", "");
    pkt(s, C, EXTENDED, "usss", 14, "posix-rename@openssh.com", "/a", "/b");
    pkt(s, S, STATUS, "uuss", 14, 0, "ok", "");
    pkt(s, C, OPEN, "usua", 15, "/etc/shadow", FL_READ);
    pkt(s, S, STATUS, "uuss", 15, 3, "Permission denied", "");
    pkt(s, C, SETSTAT, "usa", 16, "/up/final.txt");
    pkt(s, S, STATUS, "uuss", 16, 0, "ok", "");
    /* things that are not recorded */
    pkt(s, C, LSTAT, "us", 17, "/");
    pkt(s, S, ATTRS, "ua", 17);
    pkt(s, C, OPENDIR, "us", 18, "/");
    pkt(s, S, HANDLE, "uh", 18, "d1");
    pkt(s, C, READDIR, "uh", 19, "d1");
    pkt(s, S, NAME, "uusssa", 19, 1, "f", "-rw-r--r-- f", "");
    pkt(s, C, CLOSE, "uh", 20, "d1");
    pkt(s, S, STATUS, "uuss", 20, 0, "ok", "");
}

static char *expected_session(size_t big)
{
    char *e = NULL;
    int n;

    n = asprintf(&e,
                 "open /up/file.txt [wc] st=0\n"
                 "write /up/file.txt st=-1 off=0 n=%zu r=0 w=%zu\n"
                 "write /up/file.txt st=-1 off=%zu n=30 r=0 w=%zu\n"
                 "close /up/file.txt [wc] st=0 r=0 w=%zu (closed)\n"
                 "open /down/big.bin [r] st=0\n"
                 "read /down/big.bin st=-1 off=0 n=%zu r=%zu w=0\n"
                 "read /down/big.bin st=-1 off=%zu n=10 r=%zu w=0\n"
                 "close /down/big.bin [r] st=0 r=%zu w=0 (closed)\n"
                 "rename /up/file.txt -> /up/final.txt st=0\n"
                 "remove /up/old st=2\n"
                 "mkdir /up/dir st=0\n"
                 "rmdir /up/dir st=0\n"
                 "rename /a -> /b st=0\n"
                 "open /etc/shadow [r] st=3\n"
                 "setstat /up/final.txt st=0\n",
                 big, big, big, big + 30, big + 30, big, big, big, big + 10,
                 big + 10);
    assert_true(n > 0);
    return e;
}

/* --- feeding -------------------------------------------------------------
 */

static struct sftp_tracker *tracker(struct log *l)
{
    struct sftp_tracker *t = sftp_tracker_new(on_event, l);

    assert_non_null(t);
    return t;
}

/* Each message in pieces of at most `chunk` bytes (0: whole). */
static void feed_chunked(struct sftp_tracker *t, const struct script *s,
                         size_t chunk)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct msg *m = &s->m[i];
        size_t off = 0, k;

        while (off < m->n) {
            k = chunk == 0 || m->n - off < chunk ? m->n - off : chunk;
            sftp_tracker_feed(t, m->from_client, m->p + off, k);
            off += k;
        }
    }
}

static void run_session(const struct script *s, size_t chunk, struct log *l)
{
    struct sftp_tracker *t = tracker(l);

    feed_chunked(t, s, chunk);
    sftp_tracker_finish(t);
    sftp_tracker_free(t);
}

/* --- tests ----------------------------------------------------------------
 */

static void test_session(void **state)
{
    struct script *s = script_new();
    struct sftp_tracker *t;
    struct sftp_stats st;
    struct log l = {0};
    char *want = expected_session(5000);

    (void)state;
    session(s, 5000);
    t = tracker(&l);
    feed_chunked(t, s, 0);
    sftp_tracker_stats(t, &st);
    sftp_tracker_finish(t);
    sftp_tracker_free(t);
    assert_string_equal(l.text, want);
    assert_int_equal(st.packets, s->n);
    assert_int_equal(st.skipped, 0);
    assert_int_equal(st.bytes_written, 5030);
    assert_int_equal(st.bytes_read, 5010);
    assert_false(st.stopped);
    free(want);
    log_free(&l);
    script_free(s);
}

/* Data packets larger than SFTP_PACKET_MAX are counted, not buffered. */
static void test_big_data(void **state)
{
    struct script *s = script_new();
    struct log l = {0};
    size_t big = 3 * SFTP_PACKET_MAX + 17;
    char *want = expected_session(big);

    (void)state;
    session(s, big);
    run_session(s, 0, &l);
    assert_string_equal(l.text, want);
    log_free(&l);
    /* and fed in odd pieces */
    run_session(s, 4093, &l);
    assert_string_equal(l.text, want);
    free(want);
    log_free(&l);
    script_free(s);
}

static void test_byte_at_a_time(void **state)
{
    struct script *s = script_new();
    struct log l = {0};
    char *want = expected_session(40000);

    (void)state;
    session(s, 40000);
    run_session(s, 1, &l);
    assert_string_equal(l.text, want);
    free(want);
    log_free(&l);
    script_free(s);
}

/* Every message split in two at every byte boundary. */
static void test_every_boundary(void **state)
{
    struct script *s = script_new();
    char *want = expected_session(100);

    (void)state;
    session(s, 100);
    for (size_t i = 0; i < s->n; i++) {
        for (size_t cut = 1; cut < s->m[i].n; cut++) {
            struct log l = {0};
            struct sftp_tracker *t = tracker(&l);

            for (size_t j = 0; j < s->n; j++) {
                const struct msg *m = &s->m[j];

                if (j == i) {
                    sftp_tracker_feed(t, m->from_client, m->p, cut);
                    sftp_tracker_feed(t, m->from_client, m->p + cut,
                                      m->n - cut);
                } else {
                    sftp_tracker_feed(t, m->from_client, m->p, m->n);
                }
            }
            sftp_tracker_finish(t);
            sftp_tracker_free(t);
            if (l.text == NULL || strcmp(l.text, want) != 0) {
                fail_msg("message %zu cut at %zu:\n%s", i, cut,
                         l.text != NULL ? l.text : "(no events)");
            }
            log_free(&l);
        }
    }
    free(want);
    script_free(s);
}

/* Many packets in one call: each run of one direction fed at once, and
 * one chunk may hold the end of one packet and the start of the next. */
static void test_many_per_call(void **state)
{
    struct script *s = script_new();
    struct log l = {0};
    struct sftp_tracker *t;
    char *want = expected_session(700);
    uint8_t *joined = NULL;
    size_t i = 0, j, len, off;
    unsigned seed = 12345;

    (void)state;
    session(s, 700);
    t = tracker(&l);
    while (i < s->n) {
        len = 0;
        for (j = i; j < s->n && s->m[j].from_client == s->m[i].from_client;
             j++) {
            len += s->m[j].n;
        }
        joined = realloc(joined, len);
        assert_non_null(joined);
        off = 0;
        for (j = i; j < s->n && s->m[j].from_client == s->m[i].from_client;
             j++) {
            memcpy(joined + off, s->m[j].p, s->m[j].n);
            off += s->m[j].n;
        }
        /* random pieces across packet boundaries */
        for (off = 0; off < len;) {
            size_t k = 1 + (size_t)(rand_r(&seed) % 97);

            k = k < len - off ? k : len - off;
            sftp_tracker_feed(t, s->m[i].from_client, joined + off, k);
            off += k;
        }
        i = j;
    }
    sftp_tracker_finish(t);
    sftp_tracker_free(t);
    assert_string_equal(l.text, want);
    free(joined);
    free(want);
    log_free(&l);
    script_free(s);
}

/* An OPEN too large to buffer is skipped; what follows is still read. */
static void test_oversize_packet(void **state)
{
    struct script *s = script_new();
    struct sftp_tracker *t;
    struct sftp_stats st;
    struct log l = {0};
    char *path = malloc(SFTP_PACKET_MAX + 10);

    (void)state;
    assert_non_null(path);
    memset(path, 'p', SFTP_PACKET_MAX + 9);
    path[SFTP_PACKET_MAX + 9] = '\0';
    hello(s);
    pkt(s, C, OPEN, "usua", 1, path, FL_READ);
    pkt(s, S, HANDLE, "uh", 1, "h1");
    pkt(s, C, REMOVE, "us", 2, "/after");
    pkt(s, S, STATUS, "uuss", 2, 0, "", "");
    t = tracker(&l);
    feed_chunked(t, s, 1000);
    sftp_tracker_stats(t, &st);
    sftp_tracker_finish(t);
    sftp_tracker_free(t);
    assert_int_equal(st.skipped, 1);
    assert_false(st.stopped);
    assert_string_equal(l.text, "remove /after st=0\n");
    free(path);
    log_free(&l);
    script_free(s);
}

/* A path longer than SFTP_PATH_MAX is kept cut, and marked. */
static void test_long_path(void **state)
{
    struct script *s = script_new();
    struct log l = {0};
    char *path = malloc(SFTP_PATH_MAX + 101);
    char *want = malloc(SFTP_PATH_MAX + 64);

    (void)state;
    assert_non_null(path);
    assert_non_null(want);
    memset(path, 'x', SFTP_PATH_MAX + 100);
    path[SFTP_PATH_MAX + 100] = '\0';
    hello(s);
    pkt(s, C, MKDIR, "usa", 1, path);
    pkt(s, S, STATUS, "uuss", 1, 0, "", "");
    run_session(s, 0, &l);
    snprintf(want, SFTP_PATH_MAX + 64, "mkdir %.*s (cut) st=0\n", SFTP_PATH_MAX,
             path);
    assert_string_equal(l.text, want);
    free(path);
    free(want);
    log_free(&l);
    script_free(s);
}

/* Malformed packets of known types are skipped one by one. */
static void test_malformed(void **state)
{
    struct script *s = script_new();
    struct sftp_tracker *t;
    struct sftp_stats st;
    struct log l = {0};
    static const uint8_t short_open[] = {0, 0, 0, 3, OPEN, 0, 0};
    static const uint8_t bad_string[] = {0, 0, 0,    9,    REMOVE, 0,   0,
                                         0, 1, 0xff, 0xff, 0xff,   0xff};
    static const uint8_t unknown_type[] = {0, 0, 0, 2, 77, 1};

    (void)state;
    hello(s);
    raw(s, C, short_open, sizeof(short_open));
    raw(s, C, bad_string, sizeof(bad_string));
    raw(s, C, unknown_type, sizeof(unknown_type));
    /* WRITE whose data length disagrees with the packet */
    pkt(s, C, OPEN, "usua", 1, "/f", FL_WRITE);
    pkt(s, S, HANDLE, "uh", 1, "h");
    pkt(s, C, WRITE, "uhquu", 2, "h", (uint64_t)0, (uint32_t)100, 7);
    /* a handle longer than the protocol allows */
    pkt(s, C, CLOSE, "us", 3,
        "0123456789012345678901234567890123456789012345678901234567890123"
        "0123456789012345678901234567890123456789012345678901234567890123"
        "0123456789012345678901234567890123456789012345678901234567890123"
        "0123456789012345678901234567890123456789012345678901234567890123"
        "x");
    pkt(s, C, WRITE, "uhqd", 4, "h", (uint64_t)0, (size_t)5);
    /* replies: STATUS without its code, DATA longer than its packet */
    pkt(s, S, STATUS, "u", 4);
    pkt(s, S, DATA, "uu", 9, 1000);
    t = tracker(&l);
    feed_chunked(t, s, 0);
    sftp_tracker_stats(t, &st);
    sftp_tracker_finish(t);
    sftp_tracker_free(t);
    assert_int_equal(st.skipped, 7);
    assert_false(st.stopped);
    assert_string_equal(l.text, "open /f [w] st=0\n"
                                "write /f st=-1 off=0 n=5 r=0 w=5\n"
                                "close /f [w] st=-1 r=0 w=5 (not closed)\n");
    log_free(&l);
    script_free(s);
}

/* Bytes that are not SFTP: one "unparsed" event, then silence. */
static void test_garbage(void **state)
{
    struct log l = {0};
    struct sftp_tracker *t;
    struct sftp_stats st;
    static const char banner[] = "SSH-2.0-OpenSSH_9.6\r\n";
    uint8_t noise[4096];
    unsigned seed = 7;

    (void)state;
    t = tracker(&l);
    sftp_tracker_feed(t, C, (const uint8_t *)banner, sizeof(banner) - 1);
    for (size_t i = 0; i < sizeof(noise); i++) {
        noise[i] = (uint8_t)rand_r(&seed);
    }
    sftp_tracker_feed(t, S, noise, sizeof(noise));
    sftp_tracker_feed(t, C, noise, sizeof(noise));
    sftp_tracker_stats(t, &st);
    sftp_tracker_finish(t);
    sftp_tracker_free(t);
    assert_true(st.stopped);
    assert_int_equal(l.events, 1);
    assert_non_null(strstr(l.text, "unparsed"));
    log_free(&l);

    /* random bytes in random chunks to both sides: never a crash, at most
     * one event */
    for (int round = 0; round < 200; round++) {
        t = tracker(&l);
        for (size_t i = 0; i < sizeof(noise); i++) {
            noise[i] = (uint8_t)rand_r(&seed);
        }
        for (size_t off = 0; off < sizeof(noise);) {
            size_t k = 1 + (size_t)(rand_r(&seed) % 64);

            k = k < sizeof(noise) - off ? k : sizeof(noise) - off;
            sftp_tracker_feed(t, rand_r(&seed) & 1, noise + off, k);
            off += k;
        }
        sftp_tracker_finish(t);
        sftp_tracker_free(t);
        assert_true(l.events <= 1);
        log_free(&l);
    }
}

static void test_framing_lost(void **state)
{
    struct script *s;
    struct log l = {0};
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff, WRITE};
    static const uint8_t zero[] = {0, 0, 0, 0};

    (void)state;
    /* a length beyond SFTP_FRAME_MAX */
    s = script_new();
    hello(s);
    raw(s, C, huge, sizeof(huge));
    pkt(s, C, REMOVE, "us", 1, "/x");
    pkt(s, S, STATUS, "uuss", 1, 0, "", "");
    run_session(s, 0, &l);
    assert_int_equal(l.events, 1);
    assert_non_null(strstr(l.text, "unparsed"));
    log_free(&l);
    script_free(s);

    /* a zero length */
    s = script_new();
    hello(s);
    raw(s, S, zero, sizeof(zero));
    raw(s, S, zero, 1);
    run_session(s, 0, &l);
    assert_int_equal(l.events, 1);
    log_free(&l);
    script_free(s);

    /* a server speaking another version */
    s = script_new();
    pkt(s, C, INIT, "u", 6);
    pkt(s, S, VERSION, "u", 6);
    pkt(s, C, REMOVE, "us", 1, "/x");
    pkt(s, S, STATUS, "uuss", 1, 0, "", "");
    run_session(s, 0, &l);
    assert_string_equal(l.text,
                        "unparsed  st=-1 (SFTP version other than 3)\n");
    log_free(&l);
    script_free(s);

    /* a client that does not start with INIT */
    s = script_new();
    pkt(s, C, REMOVE, "us", 1, "/x");
    run_session(s, 0, &l);
    assert_int_equal(l.events, 1);
    assert_non_null(strstr(l.text, "INIT"));
    log_free(&l);
    script_free(s);
}

/* At the end of the channel: requests never answered and files never
 * closed are reported, with what was counted. */
static void test_finish(void **state)
{
    struct script *s = script_new();
    struct log l = {0};

    (void)state;
    hello(s);
    pkt(s, C, OPEN, "usua", 1, "/open", FL_READ | FL_WRITE);
    pkt(s, S, HANDLE, "uh", 1, "h");
    pkt(s, C, WRITE, "uhqd", 2, "h", (uint64_t)0, (size_t)64);
    pkt(s, C, REMOVE, "us", 3, "/pending");
    run_session(s, 0, &l);
    assert_string_equal(l.text, "open /open [rw] st=0\n"
                                "write /open st=-1 off=0 n=64 r=0 w=64\n"
                                "remove /pending st=-1\n"
                                "close /open [rw] st=-1 r=0 w=64 "
                                "(not closed)\n");
    log_free(&l);
    script_free(s);
}

/* A server may hand out a closed handle's bytes again. */
static void test_handle_reuse(void **state)
{
    struct script *s = script_new();
    struct log l = {0};

    (void)state;
    hello(s);
    pkt(s, C, OPEN, "usua", 1, "/one", FL_WRITE);
    pkt(s, S, HANDLE, "uh", 1, "h");
    pkt(s, C, WRITE, "uhqd", 2, "h", (uint64_t)0, (size_t)3);
    pkt(s, C, CLOSE, "uh", 3, "h");
    pkt(s, C, OPEN, "usua", 4, "/two", FL_WRITE);
    pkt(s, S, HANDLE, "uh", 4, "h"); /* before the CLOSE's STATUS */
    pkt(s, S, STATUS, "uuss", 3, 0, "", "");
    pkt(s, C, WRITE, "uhqd", 5, "h", (uint64_t)0, (size_t)4);
    pkt(s, C, CLOSE, "uh", 6, "h");
    pkt(s, S, STATUS, "uuss", 6, 0, "", "");
    run_session(s, 0, &l);
    assert_string_equal(l.text, "open /one [w] st=0\n"
                                "write /one st=-1 off=0 n=3 r=0 w=3\n"
                                "open /two [w] st=0\n"
                                "close /one [w] st=-1 r=0 w=3 (closed)\n"
                                "write /two st=-1 off=0 n=4 r=0 w=4\n"
                                "close /two [w] st=0 r=0 w=4 (closed)\n");
    log_free(&l);
    script_free(s);
}

/* More open files than the table holds: the least recently used one is
 * reported and dropped, the rest are still tracked. */
static void test_handle_table_full(void **state)
{
    struct script *s = script_new();
    struct sftp_tracker *t;
    struct log l = {0};
    char path[32], h[16];
    uint32_t i, id = 1, n = SFTP_HANDLES_MAX + 10;

    (void)state;
    hello(s);
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "/f%u", i);
        snprintf(h, sizeof(h), "h%u", i);
        if (i == SFTP_HANDLES_MAX) {
            /* /f0 was used last, so /f1 is the least recently used */
            pkt(s, C, READ, "uhqu", id, "h0", (uint64_t)0, 10);
            pkt(s, S, DATA, "ud", id++, (size_t)10);
        }
        pkt(s, C, OPEN, "usua", id, path, FL_READ);
        pkt(s, S, HANDLE, "uh", id++, h);
    }
    pkt(s, C, READ, "uhqu", id, "h0", (uint64_t)10, 10);
    pkt(s, S, DATA, "ud", id++, (size_t)10);
    t = tracker(&l);
    feed_chunked(t, s, 0);
    assert_int_equal(l.events, (int)n + 2 + 10);
    assert_non_null(strstr(l.text, "close /f1 [r] st=-1 r=0 w=0 (evicted)"));
    assert_null(strstr(l.text, "close /f0"));
    assert_non_null(strstr(l.text, "read /f0 st=-1 off=10 n=10 r=20 w=0\n"));
    sftp_tracker_finish(t);
    assert_int_equal(l.events, (int)n + 2 + (int)n);
    sftp_tracker_free(t);
    log_free(&l);
    script_free(s);
}

/* More unanswered requests than the table holds: the oldest are reported
 * as unanswered (status -1) when dropped. */
static void test_request_table_full(void **state)
{
    struct script *s = script_new(), *s2 = script_new();
    struct sftp_tracker *t;
    struct log l = {0};
    char path[32];
    uint32_t i, n = SFTP_REQUESTS_MAX + 5;

    (void)state;
    hello(s);
    for (i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "/r%u", i);
        pkt(s, C, REMOVE, "us", i + 1, path);
    }
    t = tracker(&l);
    feed_chunked(t, s, 0);
    assert_int_equal(l.events, 5);
    assert_true(strncmp(l.text, "remove /r0 st=-1\n", 17) == 0);
    /* the newest is still waiting and gets its answer */
    pkt(s2, S, STATUS, "uuss", n, 0, "", "");
    feed_chunked(t, s2, 0);
    assert_int_equal(l.events, 6);
    assert_non_null(strstr(l.text, "remove /r1028 st=0\n"));
    sftp_tracker_finish(t);
    assert_int_equal(l.events, (int)n);
    sftp_tracker_free(t);
    log_free(&l);
    script_free(s);
    script_free(s2);
}

static void test_null_safe(void **state)
{
    struct sftp_stats st;
    struct sftp_tracker *t = sftp_tracker_new(NULL, NULL);
    static const uint8_t init[] = {0, 0, 0, 5, INIT, 0, 0, 0, 3};

    (void)state;
    assert_non_null(t);
    sftp_tracker_feed(t, C, init, sizeof(init));
    sftp_tracker_feed(t, C, NULL, 0);
    sftp_tracker_stats(t, &st);
    assert_int_equal(st.packets, 1);
    sftp_tracker_finish(t);
    sftp_tracker_free(t);
    sftp_tracker_free(NULL);
    sftp_tracker_finish(NULL);
    assert_string_equal(sftp_op_str(SFTP_MKDIR), "mkdir");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session),
        cmocka_unit_test(test_big_data),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_every_boundary),
        cmocka_unit_test(test_many_per_call),
        cmocka_unit_test(test_oversize_packet),
        cmocka_unit_test(test_long_path),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_framing_lost),
        cmocka_unit_test(test_finish),
        cmocka_unit_test(test_handle_reuse),
        cmocka_unit_test(test_handle_table_full),
        cmocka_unit_test(test_request_table_full),
        cmocka_unit_test(test_null_safe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
