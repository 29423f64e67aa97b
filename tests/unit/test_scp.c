/*
 * The legacy scp tracker: files and directories of uploads and downloads
 * are reported with their sizes whatever the chunking, and garbage stops
 * tracking without harm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "record/scp.h"

struct seen {
    char log[4096];
};

static void on_event(const char *op, const char *path, uint64_t bytes,
                     void *arg)
{
    struct seen *s = arg;
    size_t n = strlen(s->log);

    snprintf(s->log + n, sizeof(s->log) - n, "%s %s %llu;", op, path,
             (unsigned long long)bytes);
}

/* Feeds the stream in chunks of `chunk` bytes. */
static void feed(struct scp_tracker *t, bool from_client, const char *p,
                 size_t n, size_t chunk)
{
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        scp_tracker_feed(t, from_client, (const uint8_t *)p + i, k);
    }
}

static const char upload_stream[] = "T1700000000 0 1700000000 0\n"
                                    "C0644 5 a.txt\nhello\0"
                                    "D0755 0 sub\n"
                                    "C0600 3 b.bin\nxyz\0"
                                    "E\n"
                                    "C0644 0 empty\n\0";

static void test_upload_any_chunking(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= sizeof(upload_stream); chunk++) {
        struct seen s = {""};
        struct scp_tracker *t =
            scp_tracker_new("scp -r -t /tmp/dest", on_event, &s);

        assert_non_null(t);
        feed(t, true, upload_stream, sizeof(upload_stream) - 1, chunk);
        /* Acknowledgements from the target are ignored. */
        feed(t, false, "\0\0\0\0", 4, 1);
        assert_string_equal(s.log, "upload a.txt 5;mkdir sub 0;"
                                   "upload sub/b.bin 3;upload empty 0;");
        scp_tracker_free(t);
    }
}

static void test_download(void **state)
{
    struct seen s = {""};
    struct scp_tracker *t = scp_tracker_new("scp -f /etc/hosts", on_event, &s);
    static const char stream[] = "C0644 4 hosts\nabcd\0";

    (void)state;
    assert_non_null(t);
    /* The client's side of a download only acknowledges. */
    feed(t, true, "\0\0", 2, 1);
    feed(t, false, stream, sizeof(stream) - 1, 3);
    assert_string_equal(s.log, "download hosts 4;");
    scp_tracker_free(t);
}

static void test_not_scp(void **state)
{
    struct seen s = {""};

    (void)state;
    assert_null(scp_tracker_new("ls -l", on_event, &s));
    assert_null(scp_tracker_new("scp -v /x", on_event, &s));
    assert_null(scp_tracker_new("scp -t -f /x", on_event, &s));
}

static void test_garbage_stops_tracking(void **state)
{
    struct seen s = {""};
    struct scp_tracker *t = scp_tracker_new("scp -t /x", on_event, &s);
    static const char stream[] = "Zgarbage\nC0644 1 a\nq\0";

    (void)state;
    feed(t, true, stream, sizeof(stream) - 1, 1);
    assert_string_equal(s.log, "unparsed /x 0;");
    scp_tracker_free(t);
}

static void test_bad_names_and_sizes(void **state)
{
    static const char *const bad[] = {
        "C0644 5 ../etc/passwd\n",
        "C0644 5 a/b\n",
        "C0644 x a\n",
        "C064 5 a\n",
        "C0648 5 a\n",
        "D0755 0 ..\n",
        "E\n", /* leaving a directory never entered */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct seen s = {""};
        struct scp_tracker *t = scp_tracker_new("scp -t /x", on_event, &s);

        feed(t, true, bad[i], strlen(bad[i]), 1);
        assert_string_equal(s.log, "unparsed /x 0;");
        scp_tracker_free(t);
    }
}

static void test_overlong_line(void **state)
{
    static char line[SCP_LINE_MAX + 10];
    struct seen s = {""};
    struct scp_tracker *t = scp_tracker_new("scp -t /x", on_event, &s);

    (void)state;
    memset(line, 'C', sizeof(line));
    feed(t, true, line, sizeof(line), 100);
    assert_string_equal(s.log, "unparsed /x 0;");
    scp_tracker_free(t);
}

static void test_big_file_is_counted_not_buffered(void **state)
{
    static char data[1 << 16];
    struct seen s = {""};
    struct scp_tracker *t = scp_tracker_new("scp -t /x", on_event, &s);

    (void)state;
    feed(t, true, "C0644 1048576 big\n", 18, 5);
    for (int i = 0; i < 16; i++) {
        feed(t, true, data, sizeof(data), sizeof(data));
    }
    feed(t, true, "\0C0644 1 z\nq\0", 13, 2);
    assert_string_equal(s.log, "upload big 1048576;upload z 1;");
    scp_tracker_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upload_any_chunking),
        cmocka_unit_test(test_download),
        cmocka_unit_test(test_not_scp),
        cmocka_unit_test(test_garbage_stops_tracking),
        cmocka_unit_test(test_bad_names_and_sizes),
        cmocka_unit_test(test_overlong_line),
        cmocka_unit_test(test_big_file_is_counted_not_buffered),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
