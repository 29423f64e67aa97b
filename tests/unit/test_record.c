/*
 * The recording writer: every line is valid JSON, text is valid UTF-8
 * (split sequences joined, invalid bytes replaced), the SHA-256 and size
 * match the file, and a failing write is reported.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "common/err.h"
#include "record/record.h"

static char path[] = "/tmp/pc-record-XXXXXX";

static int open_tmp(void)
{
    int fd;

    strcpy(path, "/tmp/pc-record-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    return fd;
}

static char *slurp(size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *b = malloc(1 << 20);

    assert_non_null(f);
    *n = fread(b, 1, (1 << 20) - 1, f);
    b[*n] = '\0';
    fclose(f);
    return b;
}

/* Returns line i (0-based) parsed as JSON. */
static json_t *line_json(const char *text, int i)
{
    const char *p = text;
    json_error_t e;

    for (int k = 0; k < i; k++) {
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    return json_loadb(p, strcspn(p, "\n"), 0, &e);
}

static void test_cast_lines_and_hash(void **state)
{
    struct record *r = record_new(open_tmp());
    const char *snow = "\xe2\x98\x83"; /* U+2603, split over two chunks */
    uint64_t size = 0;
    char sha[65], want[65];
    unsigned char d[32];
    size_t n;
    char *text;
    json_t *j;

    (void)state;
    assert_int_equal(
        record_cast_header(r, 100, 30, 1700000000, "t \"q\"", "xterm-256color"),
        ERR_OK);
    assert_int_equal(record_cast_data(r, 'o', (const uint8_t *)"a\x01\"", 3),
                     ERR_OK);
    assert_int_equal(record_cast_data(r, 'o', (const uint8_t *)snow, 1),
                     ERR_OK);
    assert_int_equal(record_cast_data(r, 'o', (const uint8_t *)snow + 1, 2),
                     ERR_OK);
    assert_int_equal(record_cast_data(r, 'o', (const uint8_t *)"\xff!", 2),
                     ERR_OK);
    assert_int_equal(record_cast_resize(r, 120, 40), ERR_OK);
    assert_int_equal(record_close(r, &size, sha), ERR_OK);
    text = slurp(&n);
    assert_int_equal(size, n);
    crypto_hash_sha256(d, (const unsigned char *)text, n);
    sodium_bin2hex(want, sizeof(want), d, sizeof(d));
    assert_string_equal(sha, want);

    j = line_json(text, 0);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "width")), 100);
    assert_string_equal(json_string_value(json_object_get(j, "title")),
                        "t \"q\"");
    json_decref(j);
    j = line_json(text, 1);
    assert_string_equal(json_string_value(json_array_get(j, 1)), "o");
    assert_string_equal(json_string_value(json_array_get(j, 2)), "a\x01\"");
    json_decref(j);
    /* The split snowman: the first event holds nothing of it, the second
     * all of it. */
    j = line_json(text, 2);
    assert_string_equal(json_string_value(json_array_get(j, 2)), "");
    json_decref(j);
    j = line_json(text, 3);
    assert_string_equal(json_string_value(json_array_get(j, 2)), snow);
    json_decref(j);
    j = line_json(text, 4);
    assert_string_equal(json_string_value(json_array_get(j, 2)),
                        "\xef\xbf\xbd!");
    json_decref(j);
    j = line_json(text, 5);
    assert_string_equal(json_string_value(json_array_get(j, 1)), "r");
    assert_string_equal(json_string_value(json_array_get(j, 2)), "120x40");
    json_decref(j);
    free(text);
    unlink(path);
}

static void test_invalid_utf8_forms(void **state)
{
    static const char *const bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\x80",             /* lone continuation */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct record *r = record_new(open_tmp());
        uint64_t size;
        char sha[65], *text;
        size_t n;
        json_t *j;

        assert_int_equal(record_cast_header(r, 80, 24, 1, NULL, NULL), ERR_OK);
        assert_int_equal(
            record_cast_data(r, 'o', (const uint8_t *)bad[i], strlen(bad[i])),
            ERR_OK);
        assert_int_equal(record_close(r, &size, sha), ERR_OK);
        text = slurp(&n);
        j = line_json(text, 1);
        assert_non_null(j);
        assert_non_null(
            strstr(json_string_value(json_array_get(j, 2)), "\xef\xbf\xbd"));
        json_decref(j);
        free(text);
        unlink(path);
    }
}

static void test_write_failure_is_sticky(void **state)
{
    int fd = open("/dev/full", O_WRONLY);
    struct record *r;
    uint64_t size;
    char sha[65];

    (void)state;
    if (fd < 0) {
        skip();
    }
    r = record_new(fd);
    assert_int_not_equal(record_cast_header(r, 80, 24, 1, NULL, NULL), ERR_OK);
    assert_true(record_failed(r));
    assert_int_not_equal(record_cast_data(r, 'o', (const uint8_t *)"x", 1),
                         ERR_OK);
    assert_int_not_equal(record_close(r, &size, sha), ERR_OK);
}

/* [record] ssh_max_mb: an event that would pass the limit is not written
 * at all (no half line), the limit is sticky, and lifting it lets an end
 * marker in; every line of the file still parses. */
static void test_limit_whole_events(void **state)
{
    struct record *r = record_new(open_tmp());
    uint8_t chunk[100];
    uint64_t size, limit;
    char sha[65], *text;
    size_t n, lines = 0;
    int e = ERR_OK, events = 0;

    (void)state;
    memset(chunk, 'x', sizeof(chunk));
    chunk[sizeof(chunk) - 1] = 0xe2; /* a sequence split across events */
    assert_int_equal(record_cast_header(r, 80, 24, 1, NULL, NULL), ERR_OK);
    limit = record_size(r) + 1000;
    record_set_limit(r, limit);
    while (events < 100 &&
           (e = record_cast_data(r, 'o', chunk, sizeof(chunk))) == ERR_OK) {
        events++;
    }
    assert_int_equal(e, ERR_TOO_LONG);
    assert_true(record_limit_hit(r));
    assert_true(events >= 5 && events < 10);
    assert_true(record_size(r) <= limit);
    assert_false(record_failed(r));
    /* still refused at the limit */
    assert_int_equal(record_cast_data(r, 'o', chunk, sizeof(chunk)),
                     ERR_TOO_LONG);
    record_set_limit(r, limit + 200);
    assert_int_equal(record_cast_data(r, 'o', (const uint8_t *)"[end]", 5),
                     ERR_OK);
    assert_int_equal(record_close(r, &size, sha), ERR_OK);
    assert_true(size <= limit + 200);
    text = slurp(&n);
    assert_int_equal((uint64_t)n, size);
    for (const char *p = text; *p != '\0'; p = strchr(p, '\n') + 1) {
        json_t *j = line_json(p, 0);

        assert_non_null(j);
        if (lines++ > 0) {
            assert_true(json_is_array(j) && json_array_size(j) == 3);
        }
        json_decref(j);
    }
    assert_int_equal(lines, (size_t)events + 2);
    assert_non_null(strstr(text, "[end]\"]\n"));
    free(text);
    unlink(path);
}

static void test_json_string(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(record_json_string(out, sizeof(out), "a\"b\\c\n"), 11);
    assert_string_equal(out, "\"a\\\"b\\\\c\\n\"");
    assert_int_equal(record_json_string(out, 4, "toolong"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cast_lines_and_hash),
        cmocka_unit_test(test_invalid_utf8_forms),
        cmocka_unit_test(test_write_failure_is_sticky),
        cmocka_unit_test(test_limit_whole_events),
        cmocka_unit_test(test_json_string),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
