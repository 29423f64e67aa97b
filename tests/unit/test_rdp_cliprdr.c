/*
 * The cliprdr filter (src/rdpproxy/rdp_cliprdr.c): file formats taken
 * out of Format Lists while text crosses, file PDUs refused, requests
 * only for announced formats, and truncated or hostile PDUs refused
 * without a read past the input. Each session is a table of steps
 * (rdp_steps.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "le_pdu.h"
#include "rdp_steps.h"
#include "rdpproxy/rdp_cliprdr.h"

#define UP RDP_CLIP_UP
#define DOWN RDP_CLIP_DOWN
#define SAME RDP_STEP_SAME
/* the capabilities both sides announce in the handshake */
#define CAPS_ALL                                                               \
    (RDP_CB_USE_LONG_FORMAT_NAMES | RDP_CB_STREAM_FILECLIP_ENABLED |           \
     RDP_CB_CAN_LOCK_CLIPDATA)

static struct rdp_cliprdr clip;

static int clip_run(void *state, int dir, const uint8_t *in, size_t len,
                    uint8_t *out, size_t *outlen, struct rdp_filter_result *r)
{
    return rdp_cliprdr_filter(state, dir, in, len, out, outlen, r);
}

static const struct rdp_steps_filter filter = {clip_run, &clip};

/* --- the PDUs --- */

static void pstr16(struct pdu *p, const char *s)
{
    do {
        p16(p, (uint16_t)(unsigned char)*s);
    } while (*s++ != '\0');
}

static void head(struct pdu *p, uint16_t type, uint16_t flags)
{
    p->n = 0;
    p16(p, type);
    p16(p, flags);
    p32(p, 0); /* dataLen, set by done() */
}

static void done(struct pdu *p)
{
    uint32_t d = (uint32_t)(p->n - 8);

    memcpy(p->b + 4,
           (uint8_t[]){(uint8_t)d, (uint8_t)(d >> 8), (uint8_t)(d >> 16),
                       (uint8_t)(d >> 24)},
           4);
}

/* Capabilities with generalFlags a. */
static void caps(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)b;
    head(p, RDP_CB_CLIP_CAPS, 0);
    p16(p, 1); /* one set */
    p16(p, 0);
    p16(p, 1); /* general */
    p16(p, 12);
    p32(p, 2); /* version */
    p32(p, a);
    done(p);
}

/* A long-name Format List: text, FileGroupDescriptorW, FileContents,
 * CF_HDROP, HTML. */
static void file_list(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    head(p, RDP_CB_FORMAT_LIST, 0);
    p32(p, RDP_CF_UNICODETEXT);
    pstr16(p, "");
    p32(p, 0xc0a4);
    pstr16(p, "FileGroupDescriptorW");
    p32(p, 0xc0a5);
    pstr16(p, "FileContents");
    p32(p, RDP_CF_HDROP);
    pstr16(p, "");
    p32(p, 0xc0b0);
    pstr16(p, "HTML Format");
    done(p);
}

/* That list with its file formats taken off. */
static void text_list(struct pdu *p)
{
    head(p, RDP_CB_FORMAT_LIST, 0);
    p32(p, RDP_CF_UNICODETEXT);
    pstr16(p, "");
    p32(p, 0xc0b0);
    pstr16(p, "HTML Format");
    done(p);
}

/* A Format Data Request for format a. */
static void request(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)b;
    head(p, RDP_CB_FORMAT_DATA_REQUEST, 0);
    p32(p, a);
    done(p);
}

static void hello_response(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    head(p, RDP_CB_FORMAT_DATA_RESPONSE, RDP_CB_RESPONSE_OK);
    pstr16(p, "hello");
    done(p);
}

/* A File Contents Request for stream a: b's low byte the file's index,
 * its next byte the flags (0: a range of 100 bytes), its high half a
 * clipDataId to send (0: none). */
static void contents_request(struct pdu *p, uint32_t a, uint32_t b)
{
    uint32_t flags = (b >> 8) & 0xff;

    head(p, RDP_CB_FILECONTENTS_REQUEST, 0);
    p32(p, a);
    p32(p, b & 0xff);
    p32(p, flags ? flags : RDP_CB_FILECONTENTS_RANGE);
    p32(p, 0);
    p32(p, 0);
    p32(p, flags == RDP_CB_FILECONTENTS_SIZE ? 8 : 100);
    if (b >> 16) {
        p32(p, b >> 16);
    }
    done(p);
}

#define SIZE_OF(index) ((uint32_t)(index) | (RDP_CB_FILECONTENTS_SIZE << 8))
#define LOCKED(index, id) ((uint32_t)(index) | ((uint32_t)(id) << 16))

/* A File Contents Response for stream a with b bytes. */
static void contents_response(struct pdu *p, uint32_t a, uint32_t b)
{
    head(p, RDP_CB_FILECONTENTS_RESPONSE, RDP_CB_RESPONSE_OK);
    p32(p, a);
    memset(p->b + p->n, 0x5a, b);
    p->n += b;
    done(p);
}

/* The answer to a request for FileGroupDescriptorW: a count of a files,
 * b descriptors. */
static void descriptor(struct pdu *p, uint32_t a, uint32_t b)
{
    head(p, RDP_CB_FORMAT_DATA_RESPONSE, RDP_CB_RESPONSE_OK);
    p32(p, a);
    memset(p->b + p->n, 0, (size_t)b * RDP_CLIP_FILEDESCRIPTORW);
    p->n += (size_t)b * RDP_CLIP_FILEDESCRIPTORW;
    done(p);
}

/* A Lock (a RDP_CB_LOCK_CLIPDATA) or Unlock PDU of clipDataId b. */
static void lock_pdu(struct pdu *p, uint32_t a, uint32_t b)
{
    head(p, (uint16_t)a, 0);
    p32(p, b);
    done(p);
}

/* A PDU of type a with 8 bytes of data. */
static void typed(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)b;
    head(p, (uint16_t)a, RDP_CB_RESPONSE_OK);
    p32(p, 7);
    p32(p, 0);
    done(p);
}

/* A PDU of type a without data. */
static void bare(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)b;
    head(p, (uint16_t)a, 0);
    done(p);
}

/* A short-name (36-byte entries, ASCII) list: CF_TEXT and
 * FileGroupDescriptorW; b bytes cut off its end. */
static void short_list(struct pdu *p, uint32_t a, uint32_t b)
{
    const char *fgd = "FileGroupDescriptorW";

    (void)a;
    head(p, RDP_CB_FORMAT_LIST, RDP_CB_ASCII_NAMES);
    p32(p, RDP_CF_TEXT);
    memset(p->b + p->n, 0, 32);
    p->n += 32;
    p32(p, 0xc001);
    memset(p->b + p->n, 0, 32);
    memcpy(p->b + p->n, fgd, strlen(fgd));
    p->n += 32;
    p->n -= b;
    done(p);
}

/* A short-name UTF-16 list (no ASCII flag): CF_UNICODETEXT, then each
 * file format's name as FreeRDP and Windows write a longer one, cut to
 * 16 units without a terminator ("FileGroupDescrip"), and an HTML format
 * whose name fits. */
static void short_list16(struct pdu *p, uint32_t a, uint32_t b)
{
    static const char *const names[] = {"FileGroupDescriptorW",
                                        "Preferred DropEffect",
                                        "Shell IDList Array",
                                        "UniformResourceLocatorW",
                                        "application/x-kde-cutselection",
                                        "HTML Format"};
    uint32_t id = 0xc100;

    (void)a;
    (void)b;
    head(p, RDP_CB_FORMAT_LIST, 0);
    p32(p, RDP_CF_UNICODETEXT);
    memset(p->b + p->n, 0, 32);
    p->n += 32;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        p32(p, id++);
        memset(p->b + p->n, 0, 32);
        for (size_t k = 0; k < 16 && names[i][k] != '\0'; k++) {
            p->b[p->n + 2 * k] = (uint8_t)names[i][k];
        }
        p->n += 32;
    }
    done(p);
}

static void text_and_html_short16(const uint8_t *out, size_t n,
                                  const struct rdp_filter_result *r)
{
    (void)r;
    assert_int_equal(n, 8 + 2 * 36);
    assert_int_equal(g32(out + 8), RDP_CF_UNICODETEXT);
    assert_int_equal(g32(out + 8 + 36), 0xc105);
}

static void data_len_beyond(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    head(p, RDP_CB_FORMAT_LIST, 0);
    done(p);
    p->b[4] = 0xff;
}

static void name_unterminated(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    head(p, RDP_CB_FORMAT_LIST, 0);
    p32(p, 0xc0a4);
    p16(p, 'F');
    p16(p, 'i');
    done(p);
}

/* A Monitor Ready with a 32-bit word a after it (padding if zero). */
static void ready_then(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)b;
    head(p, RDP_CB_MONITOR_READY, 0);
    done(p);
    p32(p, a);
}

static void caps_overrun(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    head(p, RDP_CB_CLIP_CAPS, 0);
    p16(p, 2);
    p16(p, 0);
    p16(p, 1);
    p16(p, 12);
    p32(p, 2);
    p32(p, 0);
    p16(p, 5);
    p16(p, 200);
    done(p);
}

static void caps_short_general(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    head(p, RDP_CB_CLIP_CAPS, 0);
    p16(p, 1);
    p16(p, 0);
    p16(p, 1);
    p16(p, 8);
    p32(p, 2);
    done(p);
}

static void request_short(struct pdu *p, uint32_t a, uint32_t b)
{
    (void)a;
    (void)b;
    head(p, RDP_CB_FORMAT_DATA_REQUEST, 0);
    p16(p, 13);
    done(p);
}

/* --- checks of what was forwarded --- */

static void long_names_only(const uint8_t *out, size_t n,
                            const struct rdp_filter_result *r)
{
    (void)n;
    (void)r;
    assert_int_equal(g32(out + 20), RDP_CB_USE_LONG_FORMAT_NAMES);
}

static void is_text_list(const uint8_t *out, size_t n,
                         const struct rdp_filter_result *r)
{
    struct pdu want;

    (void)r;
    text_list(&want);
    assert_int_equal(n, want.n);
    assert_memory_equal(out, want.b, want.n);
}

static void hello_text(const uint8_t *out, size_t n,
                       const struct rdp_filter_result *r)
{
    char t[64];

    (void)out;
    (void)n;
    assert_true(r->text_utf16);
    assert_int_equal(r->text_len, 12);
    assert_int_equal(rdp_cliprdr_text(r->text, r->text_len, true, t, sizeof(t)),
                     5);
    assert_string_equal(t, "hello");
}

static void text_only_short(const uint8_t *out, size_t n,
                            const struct rdp_filter_result *r)
{
    (void)n;
    (void)r;
    assert_int_equal(g32(out + 4), 36);
    assert_int_equal(g32(out + 8), RDP_CF_TEXT);
}

/* Both sides exchange capabilities with long names and file streams
 * (with files refused, the file flags are cleared: same length). */
#define HANDSHAKE                                                              \
    {"caps from the target", DOWN, caps, CAPS_ALL, 0, ERR_OK, 24, 0, 0, NULL}, \
    {                                                                          \
        "caps from the client", UP, caps, CAPS_ALL, 0, ERR_OK, 24, 0, 0, NULL  \
    }

/* --- the sessions --- */

static void test_caps_lose_file_flags(void **state)
{
    static const struct rdp_step refused[] = {
        {"file flags cleared", DOWN, caps,
         CAPS_ALL | RDP_CB_HUGE_FILE_SUPPORT_ENABLED, 0, ERR_OK, 24, false, 0,
         long_names_only},
    };
    static const struct rdp_step allowed[] = {
        {"as it came", DOWN, caps, CAPS_ALL | RDP_CB_HUGE_FILE_SUPPORT_ENABLED,
         0, ERR_OK, SAME, false, 0, NULL},
    };

    (void)state;
    rdp_cliprdr_init(&clip, false);
    RDP_STEPS(&filter, refused);
    rdp_cliprdr_init(&clip, true);
    RDP_STEPS(&filter, allowed);
}

static void test_file_formats_stripped(void **state)
{
    static const struct rdp_step steps[] = {
        HANDSHAKE,
        {"file formats taken off", UP, file_list, 0, 0, ERR_OK, 42, false, 3,
         is_text_list},
        /* the target cannot ask for a stripped format by its number */
        {"a stripped format asked for", DOWN, request, 0xc0a4, 0, ERR_OK, 0,
         true, 0, NULL},
        /* and text is asked for and answered */
        {"text asked for", DOWN, request, RDP_CF_UNICODETEXT, 0, ERR_OK, SAME,
         false, 0, NULL},
        {"text answered", UP, hello_response, 0, 0, ERR_OK, SAME, false, 0,
         hello_text},
        {"a second answer nobody asked for", UP, hello_response, 0, 0, ERR_OK,
         0, true, 0, NULL},
    };

    (void)state;
    rdp_cliprdr_init(&clip, false);
    RDP_STEPS(&filter, steps);
}

/* Files on: a file copied on the client, read by the target (the list,
 * its size, a range), and what a hostile end cannot ask or answer. */
static void test_files_allowed_pass(void **state)
{
    static const struct rdp_step steps[] = {
        HANDSHAKE,
        {"file formats kept", UP, file_list, 0, 0, ERR_OK, SAME, false, 0,
         NULL},
        {"contents before the file list was sent", DOWN, contents_request, 1,
         SIZE_OF(0), ERR_OK, 0, true, 0, NULL},
        {"the file list asked for", DOWN, request, 0xc0a4, 0, ERR_OK, SAME,
         false, 0, NULL},
        {"a list claiming more files than it holds", UP, descriptor, 3, 2,
         ERR_PROTO, 0, false, 0, NULL},
        {"the file list, two files", UP, descriptor, 2, 2, ERR_OK, SAME, false,
         0, NULL},
        {"the first file's size", DOWN, contents_request, 1, SIZE_OF(0), ERR_OK,
         SAME, false, 0, NULL},
        {"a size of 9 bytes", UP, contents_response, 1, 9, ERR_OK, 0, true, 0,
         NULL},
        {"its size", UP, contents_response, 1, 8, ERR_OK, SAME, false, 0, NULL},
        {"the same answer again", UP, contents_response, 1, 8, ERR_OK, 0, true,
         0, NULL},
        {"a third file, past the list", DOWN, contents_request, 2, 2, ERR_OK, 0,
         true, 0, NULL},
        {"a range of the second file", DOWN, contents_request, 3, 1, ERR_OK,
         SAME, false, 0, NULL},
        {"an answer to a stream never asked for", UP, contents_response, 4, 10,
         ERR_OK, 0, true, 0, NULL},
        {"more than the range asked", UP, contents_response, 3, 101, ERR_OK, 0,
         true, 0, NULL},
        {"the range", UP, contents_response, 3, 100, ERR_OK, SAME, false, 0,
         NULL},
        {"the client asks the target, which offered nothing", UP,
         contents_request, 5, 0, ERR_OK, 0, true, 0, NULL},
        {"a request of the wrong size", DOWN, typed,
         RDP_CB_FILECONTENTS_REQUEST, 0, ERR_PROTO, 0, false, 0, NULL},
        /* a new list voids the old files */
        {"a new list", UP, file_list, 0, 0, ERR_OK, SAME, false, 0, NULL},
        {"the old list's first file", DOWN, contents_request, 6, 0, ERR_OK, 0,
         true, 0, NULL},
    };

    (void)state;
    rdp_cliprdr_init(&clip, true);
    RDP_STEPS(&filter, steps);
}

/* A list kept by a Lock PDU stays readable under its clipDataId after a
 * new list, until unlocked; the other way round too (the target offers,
 * the client reads). */
static void test_files_locked(void **state)
{
    static const struct rdp_step steps[] = {
        HANDSHAKE,
        {"the target's list", DOWN, file_list, 0, 0, ERR_OK, SAME, false, 0,
         NULL},
        {"its file list asked for", UP, request, 0xc0a4, 0, ERR_OK, SAME, false,
         0, NULL},
        {"one file", DOWN, descriptor, 1, 1, ERR_OK, SAME, false, 0, NULL},
        {"locked as 7", UP, lock_pdu, RDP_CB_LOCK_CLIPDATA, 7, ERR_OK, SAME,
         false, 0, NULL},
        {"a new list", DOWN, file_list, 0, 0, ERR_OK, SAME, false, 0, NULL},
        {"the file under lock 7", UP, contents_request, 1, LOCKED(0, 7), ERR_OK,
         SAME, false, 0, NULL},
        {"answered", DOWN, contents_response, 1, 100, ERR_OK, SAME, false, 0,
         NULL},
        {"under lock 8, never taken", UP, contents_request, 2, LOCKED(0, 8),
         ERR_OK, 0, true, 0, NULL},
        {"without a lock: the new list, not sent", UP, contents_request, 2, 0,
         ERR_OK, 0, true, 0, NULL},
        {"unlocked", UP, lock_pdu, RDP_CB_UNLOCK_CLIPDATA, 7, ERR_OK, SAME,
         false, 0, NULL},
        {"lock 7 again, now gone", UP, contents_request, 3, LOCKED(0, 7),
         ERR_OK, 0, true, 0, NULL},
        /* a lock taken before the file list is asked for (as Windows
         * does when it pastes) keeps the list the answer brings */
        {"locked as 9 first", UP, lock_pdu, RDP_CB_LOCK_CLIPDATA, 9, ERR_OK,
         SAME, false, 0, NULL},
        {"under lock 9, nothing sent yet", UP, contents_request, 4,
         LOCKED(0, 9), ERR_OK, 0, true, 0, NULL},
        {"the new list asked for", UP, request, 0xc0a4, 0, ERR_OK, SAME, false,
         0, NULL},
        {"one file again", DOWN, descriptor, 1, 1, ERR_OK, SAME, false, 0,
         NULL},
        {"another new list", DOWN, file_list, 0, 0, ERR_OK, SAME, false, 0,
         NULL},
        {"under lock 9, the file its list brought", UP, contents_request, 5,
         LOCKED(0, 9), ERR_OK, SAME, false, 0, NULL},
        {"answered", DOWN, contents_response, 5, 100, ERR_OK, SAME, false, 0,
         NULL},
        {"under lock 9, past it", UP, contents_request, 6, LOCKED(1, 9), ERR_OK,
         0, true, 0, NULL},
        {"unlocked 9", UP, lock_pdu, RDP_CB_UNLOCK_CLIPDATA, 9, ERR_OK, SAME,
         false, 0, NULL},
        {"the last list asked for", UP, request, 0xc0a4, 0, ERR_OK, SAME, false,
         0, NULL},
        {"its one file", DOWN, descriptor, 1, 1, ERR_OK, SAME, false, 0, NULL},
    };
    struct pdu p;
    uint8_t out[4096];
    size_t n = 0, i;
    struct rdp_filter_result r;

    (void)state;
    rdp_cliprdr_init(&clip, true);
    RDP_STEPS(&filter, steps);
    /* locks and requests awaiting an answer are bounded */
    for (i = 0; i <= RDP_CLIP_LOCKS_MAX; i++) {
        lock_pdu(&p, RDP_CB_LOCK_CLIPDATA, 100 + (uint32_t)i);
        assert_int_equal(
            rdp_cliprdr_filter(&clip, RDP_CLIP_UP, p.b, p.n, out, &n, &r),
            ERR_OK);
        assert_int_equal(r.refused != NULL, i == RDP_CLIP_LOCKS_MAX);
    }
    for (i = 0; i <= RDP_CLIP_PENDING_MAX; i++) {
        contents_request(&p, 10 + (uint32_t)i, LOCKED(0, 100));
        assert_int_equal(
            rdp_cliprdr_filter(&clip, RDP_CLIP_UP, p.b, p.n, out, &n, &r),
            ERR_OK);
        assert_int_equal(r.refused != NULL, i == RDP_CLIP_PENDING_MAX);
    }
}

static void test_file_pdus_refused(void **state)
{
#define REFUSED_BOTH_WAYS(type)                                                \
    {#type " up", UP, typed, type, 0, ERR_OK, 0, true, 0, NULL},               \
    {                                                                          \
#type " down", DOWN, typed, type, 0, ERR_OK, 0, true, 0, NULL          \
    }
    static const struct rdp_step steps[] = {
        HANDSHAKE,
        REFUSED_BOTH_WAYS(RDP_CB_FILECONTENTS_REQUEST),
        REFUSED_BOTH_WAYS(RDP_CB_FILECONTENTS_RESPONSE),
        REFUSED_BOTH_WAYS(RDP_CB_LOCK_CLIPDATA),
        REFUSED_BOTH_WAYS(RDP_CB_UNLOCK_CLIPDATA),
        REFUSED_BOTH_WAYS(RDP_CB_TEMP_DIRECTORY),
        {"an unknown type", UP, bare, 0x77, 0, ERR_OK, 0, true, 0, NULL},
    };
#undef REFUSED_BOTH_WAYS

    (void)state;
    rdp_cliprdr_init(&clip, false);
    RDP_STEPS(&filter, steps);
}

/* Short names (no long-name capability): 36-byte entries, UTF-16 or
 * ASCII by the msgFlags. */
static void test_short_names(void **state)
{
    static const struct rdp_step steps[] = {
        {"file format taken off", DOWN, short_list, 0, 0, ERR_OK, 8 + 36, false,
         1, text_only_short},
        {"not a multiple of 36", DOWN, short_list, 0, 1, ERR_PROTO, 0, false, 0,
         NULL},
        /* UTF-16 names cut to 16 units: still file formats */
        {"cut file formats taken off", UP, short_list16, 0, 0, ERR_OK,
         8 + 2 * 36, false, 5, text_and_html_short16},
    };

    (void)state;
    rdp_cliprdr_init(&clip, false);
    RDP_STEPS(&filter, steps);
}

static void test_hostile(void **state)
{
    static const struct rdp_step steps[] = {
        HANDSHAKE,
        {"dataLen beyond the message", UP, data_len_beyond, 0, 0, ERR_PROTO, 0,
         false, 0, NULL},
        {"a name without its terminator", UP, name_unterminated, 0, 0,
         ERR_PROTO, 0, false, 0, NULL},
        {"trailing garbage", DOWN, ready_then, 0x41414141, 0, ERR_PROTO, 0,
         false, 0, NULL},
        {"zero padding tolerated and kept", DOWN, ready_then, 0, 0, ERR_OK, 12,
         false, 0, NULL},
        {"a capability set running past the end", DOWN, caps_overrun, 0, 0,
         ERR_PROTO, 0, false, 0, NULL},
        {"a general set too short for its flags", DOWN, caps_short_general, 0,
         0, ERR_PROTO, 0, false, 0, NULL},
        {"a request of the wrong size", DOWN, request_short, 0, 0, ERR_PROTO, 0,
         false, 0, NULL},
        {"no such direction", 2, request_short, 0, 0, ERR_INVALID, 0, false, 0,
         NULL},
    };
    struct pdu p;
    uint8_t out[4096], *copy;
    size_t n = 0, len;
    struct rdp_filter_result r;

    (void)state;
    rdp_cliprdr_init(&clip, false);
    RDP_STEPS(&filter, steps);
    /* every truncation of a Format List is refused or forwarded whole,
     * never read past (ASan would say): here each is a heap copy of
     * exactly its length */
    file_list(&p, 0, 0);
    for (len = 0; len < p.n; len++) {
        copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, p.b, len);
        assert_int_equal(
            rdp_cliprdr_filter(&clip, RDP_CLIP_UP, copy, len, out, &n, &r),
            ERR_PROTO);
        assert_int_equal(n, 0);
        free(copy);
    }
    assert_int_equal(rdp_cliprdr_filter(NULL, 0, p.b, p.n, out, &n, &r),
                     ERR_INVALID);
}

static void test_text_conversion(void **state)
{
    static const struct {
        const char *what;
        const uint8_t *in;
        size_t n;
        bool utf16;
        size_t cap;
        const char *want;
    } cases[] = {
        {"UTF-16: BMP, a surrogate pair, a lone low surrogate, a stop at NUL",
         (const uint8_t *)"a\0\xe9\0\x3d\xd8\x00\xde\x00\xdcz\0\0\0x\0", 16,
         true, 64, "a\xc3\xa9\xf0\x9f\x98\x80?z"},
        {"cut on a character boundary",
         (const uint8_t *)"a\0\xe9\0\x3d\xd8\x00\xde\x00\xdcz\0\0\0x\0", 16,
         true, 5, "a\xc3\xa9"},
        {"8-bit: above 0x7f is '?', a stop at NUL",
         (const uint8_t *)"ok\xff\0n", 5, false, 64, "ok?"},
        {"an odd byte at the end ignored", (const uint8_t *)"a\0b", 3, true, 64,
         "a"},
    };
    char out[64];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t got = rdp_cliprdr_text(cases[i].in, cases[i].n, cases[i].utf16,
                                      out, cases[i].cap);

        if (got != strlen(cases[i].want) || strcmp(out, cases[i].want) != 0) {
            fail_msg("%s: \"%s\" (%zu bytes)", cases[i].what, out, got);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_lose_file_flags),
        cmocka_unit_test(test_file_formats_stripped),
        cmocka_unit_test(test_files_allowed_pass),
        cmocka_unit_test(test_files_locked),
        cmocka_unit_test(test_file_pdus_refused),
        cmocka_unit_test(test_short_names),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_text_conversion),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
