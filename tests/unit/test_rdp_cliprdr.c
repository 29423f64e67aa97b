/*
 * The cliprdr filter (src/rdpproxy/rdp_cliprdr.c): file formats taken
 * out of Format Lists while text crosses, file PDUs refused, requests
 * only for announced formats, and truncated or hostile PDUs refused
 * without a read past the input.
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
#include "rdpproxy/rdp_cliprdr.h"

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

static void caps_pdu(struct pdu *p, uint32_t gflags)
{
    head(p, RDP_CB_CLIP_CAPS, 0);
    p16(p, 1); /* one set */
    p16(p, 0);
    p16(p, 1); /* general */
    p16(p, 12);
    p32(p, 2); /* version */
    p32(p, gflags);
    done(p);
}

static int run(struct rdp_cliprdr *c, int dir, const struct pdu *p,
               uint8_t *out, size_t *outlen, struct rdp_filter_result *r)
{
    return rdp_cliprdr_filter(c, dir, p->b, p->n, out, outlen, r);
}

/* Both sides exchange capabilities with long names and file streams. */
static void handshake(struct rdp_cliprdr *c, bool files)
{
    struct pdu p;
    uint8_t out[4096];
    size_t n = 0;
    struct rdp_filter_result r;

    rdp_cliprdr_init(c, files);
    caps_pdu(&p, RDP_CB_USE_LONG_FORMAT_NAMES | RDP_CB_STREAM_FILECLIP_ENABLED |
                     RDP_CB_CAN_LOCK_CLIPDATA);
    assert_int_equal(run(c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(run(c, RDP_CLIP_UP, &p, out, &n, &r), ERR_OK);
}

static void test_caps_lose_file_flags(void **state)
{
    struct rdp_cliprdr c;
    struct pdu p;
    uint8_t out[4096];
    size_t n = 0;
    struct rdp_filter_result r;

    (void)state;
    rdp_cliprdr_init(&c, false);
    caps_pdu(&p, RDP_CB_USE_LONG_FORMAT_NAMES | RDP_CB_STREAM_FILECLIP_ENABLED |
                     RDP_CB_CAN_LOCK_CLIPDATA |
                     RDP_CB_HUGE_FILE_SUPPORT_ENABLED);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_OK);
    assert_int_equal(n, p.n);
    assert_int_equal(g32(out + 20), RDP_CB_USE_LONG_FORMAT_NAMES);
    /* with files allowed, as it came */
    rdp_cliprdr_init(&c, true);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_OK);
    assert_memory_equal(out, p.b, p.n);
}

/* A long-name Format List: text, FileGroupDescriptorW, FileContents,
 * CF_HDROP, HTML. */
static void file_list(struct pdu *p)
{
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

static void test_file_formats_stripped(void **state)
{
    struct rdp_cliprdr c;
    struct pdu p, want, req;
    uint8_t out[4096];
    size_t n = 0;
    struct rdp_filter_result r;

    (void)state;
    handshake(&c, false);
    file_list(&p);
    assert_int_equal(run(&c, RDP_CLIP_UP, &p, out, &n, &r), ERR_OK);
    assert_int_equal(r.stripped, 3);
    assert_null(r.refused);
    head(&want, RDP_CB_FORMAT_LIST, 0);
    p32(&want, RDP_CF_UNICODETEXT);
    pstr16(&want, "");
    p32(&want, 0xc0b0);
    pstr16(&want, "HTML Format");
    done(&want);
    assert_int_equal(n, want.n);
    assert_memory_equal(out, want.b, want.n);

    /* the target cannot ask for a stripped format by its number */
    head(&req, RDP_CB_FORMAT_DATA_REQUEST, 0);
    p32(&req, 0xc0a4);
    done(&req);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &req, out, &n, &r), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
    /* and text is asked for and answered */
    head(&req, RDP_CB_FORMAT_DATA_REQUEST, 0);
    p32(&req, RDP_CF_UNICODETEXT);
    done(&req);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &req, out, &n, &r), ERR_OK);
    assert_int_equal(n, req.n);
    head(&p, RDP_CB_FORMAT_DATA_RESPONSE, RDP_CB_RESPONSE_OK);
    pstr16(&p, "hello");
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_UP, &p, out, &n, &r), ERR_OK);
    assert_int_equal(n, p.n);
    assert_true(r.text_utf16);
    assert_int_equal(r.text_len, 12);
    {
        char t[64];

        assert_int_equal(
            rdp_cliprdr_text(r.text, r.text_len, true, t, sizeof(t)), 5);
        assert_string_equal(t, "hello");
    }
    /* a second answer nobody asked for is dropped */
    assert_int_equal(run(&c, RDP_CLIP_UP, &p, out, &n, &r), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
}

static void test_files_allowed_pass(void **state)
{
    struct rdp_cliprdr c;
    struct pdu p;
    uint8_t out[4096];
    size_t n = 0;
    struct rdp_filter_result r;

    (void)state;
    handshake(&c, true);
    file_list(&p);
    assert_int_equal(run(&c, RDP_CLIP_UP, &p, out, &n, &r), ERR_OK);
    assert_int_equal(r.stripped, 0);
    assert_int_equal(n, p.n);
    assert_memory_equal(out, p.b, p.n);
    head(&p, RDP_CB_FILECONTENTS_REQUEST, 0);
    p32(&p, 1);
    p32(&p, 0);
    p32(&p, 2);
    p32(&p, 0);
    p32(&p, 0);
    p32(&p, 100);
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_OK);
    assert_int_equal(n, p.n);
}

static void test_file_pdus_refused(void **state)
{
    static const uint16_t types[] = {
        RDP_CB_FILECONTENTS_REQUEST, RDP_CB_FILECONTENTS_RESPONSE,
        RDP_CB_LOCK_CLIPDATA, RDP_CB_UNLOCK_CLIPDATA, RDP_CB_TEMP_DIRECTORY};
    struct rdp_cliprdr c;
    struct pdu p;
    uint8_t out[4096];
    size_t n = 1;
    struct rdp_filter_result r;

    (void)state;
    handshake(&c, false);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        head(&p, types[i], RDP_CB_RESPONSE_OK);
        p32(&p, 7);
        p32(&p, 0);
        done(&p);
        for (int dir = 0; dir < 2; dir++) {
            assert_int_equal(run(&c, dir, &p, out, &n, &r), ERR_OK);
            assert_int_equal(n, 0);
            assert_non_null(r.refused);
        }
    }
    /* an unknown type too */
    head(&p, 0x77, 0);
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_UP, &p, out, &n, &r), ERR_OK);
    assert_int_equal(n, 0);
    assert_non_null(r.refused);
}

/* Short names (no long-name capability): 36-byte entries, UTF-16 or
 * ASCII by the msgFlags. */
static void test_short_names(void **state)
{
    struct rdp_cliprdr c;
    struct pdu p;
    uint8_t out[4096];
    size_t n = 0;
    struct rdp_filter_result r;
    const char *fgd = "FileGroupDescriptorW";

    (void)state;
    rdp_cliprdr_init(&c, false);
    head(&p, RDP_CB_FORMAT_LIST, RDP_CB_ASCII_NAMES);
    p32(&p, RDP_CF_TEXT);
    memset(p.b + p.n, 0, 32);
    p.n += 32;
    p32(&p, 0xc001);
    memset(p.b + p.n, 0, 32);
    memcpy(p.b + p.n, fgd, strlen(fgd));
    p.n += 32;
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_OK);
    assert_int_equal(r.stripped, 1);
    assert_int_equal(n, 8 + 36);
    assert_int_equal(g32(out + 4), 36);
    assert_int_equal(g32(out + 8), RDP_CF_TEXT);
    /* not a multiple of 36: refused */
    p.n -= 1;
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_PROTO);
    assert_int_equal(n, 0);
}

static void test_hostile(void **state)
{
    struct rdp_cliprdr c;
    struct pdu p;
    uint8_t out[4096];
    size_t n = 0, len;
    struct rdp_filter_result r;
    uint8_t *copy;

    (void)state;
    handshake(&c, false);
    /* every truncation of a Format List is refused or forwarded whole,
     * never read past (ASan would say): here each is a heap copy of
     * exactly its length */
    file_list(&p);
    for (len = 0; len < p.n; len++) {
        copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, p.b, len);
        assert_int_equal(
            rdp_cliprdr_filter(&c, RDP_CLIP_UP, copy, len, out, &n, &r),
            ERR_PROTO);
        assert_int_equal(n, 0);
        free(copy);
    }
    /* dataLen beyond the message */
    head(&p, RDP_CB_FORMAT_LIST, 0);
    done(&p);
    p.b[4] = 0xff;
    assert_int_equal(run(&c, RDP_CLIP_UP, &p, out, &n, &r), ERR_PROTO);
    /* a name without its terminator */
    head(&p, RDP_CB_FORMAT_LIST, 0);
    p32(&p, 0xc0a4);
    p16(&p, 'F');
    p16(&p, 'i');
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_UP, &p, out, &n, &r), ERR_PROTO);
    /* trailing garbage after the PDU */
    head(&p, RDP_CB_MONITOR_READY, 0);
    done(&p);
    p32(&p, 0x41414141);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_PROTO);
    /* zero padding is tolerated and kept */
    head(&p, RDP_CB_MONITOR_READY, 0);
    done(&p);
    p32(&p, 0);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_OK);
    assert_int_equal(n, 12);
    /* capability sets with a length that runs past the end */
    head(&p, RDP_CB_CLIP_CAPS, 0);
    p16(&p, 2);
    p16(&p, 0);
    p16(&p, 1);
    p16(&p, 12);
    p32(&p, 2);
    p32(&p, 0);
    p16(&p, 5);
    p16(&p, 200);
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_PROTO);
    /* a general set too short to hold its flags */
    head(&p, RDP_CB_CLIP_CAPS, 0);
    p16(&p, 1);
    p16(&p, 0);
    p16(&p, 1);
    p16(&p, 8);
    p32(&p, 2);
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_PROTO);
    /* a request of the wrong size */
    head(&p, RDP_CB_FORMAT_DATA_REQUEST, 0);
    p16(&p, 13);
    done(&p);
    assert_int_equal(run(&c, RDP_CLIP_DOWN, &p, out, &n, &r), ERR_PROTO);
    /* bad arguments */
    assert_int_equal(rdp_cliprdr_filter(&c, 2, p.b, p.n, out, &n, &r),
                     ERR_INVALID);
    assert_int_equal(rdp_cliprdr_filter(NULL, 0, p.b, p.n, out, &n, &r),
                     ERR_INVALID);
}

static void test_text_conversion(void **state)
{
    const uint8_t u16[] = {'a',  0,    0xe9, 0, 0x3d, 0xd8, 0x00, 0xde, /* 😀 */
                           0x00, 0xdc, /* lone low surrogate */
                           'z',  0,    0,    0, 'x',  0};
    const uint8_t ansi[] = {'o', 'k', 0xff, 0, 'n'};
    char out[64];

    (void)state;
    assert_int_equal(rdp_cliprdr_text(u16, sizeof(u16), true, out, sizeof(out)),
                     1 + 2 + 4 + 1 + 1);
    assert_string_equal(out, "a\xc3\xa9\xf0\x9f\x98\x80?z");
    /* cut on a character boundary */
    assert_int_equal(rdp_cliprdr_text(u16, sizeof(u16), true, out, 5), 3);
    assert_string_equal(out, "a\xc3\xa9");
    assert_int_equal(
        rdp_cliprdr_text(ansi, sizeof(ansi), false, out, sizeof(out)), 3);
    assert_string_equal(out, "ok?");
    /* an odd byte at the end is ignored */
    assert_int_equal(
        rdp_cliprdr_text((const uint8_t *)"a\0b", 3, true, out, sizeof(out)),
        1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caps_lose_file_flags),
        cmocka_unit_test(test_file_formats_stripped),
        cmocka_unit_test(test_files_allowed_pass),
        cmocka_unit_test(test_file_pdus_refused),
        cmocka_unit_test(test_short_names),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_text_conversion),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
