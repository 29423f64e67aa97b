/*
 * libFuzzer target for the hub's parser of a job's result stream
 * (src/hub/job_msg.c): bytes from an authenticated but untrusted agent.
 * The input is fed in pieces whose sizes come from its first byte. Besides
 * "no crash" (ASan/UBSan), it checks what the hub relies on: the chunks
 * handed over add up to the totals and never exceed the cap per stream;
 * a result that is accepted has a known status, and its lengths are the
 * totals.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "hub/job_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_job_msg: invariant failed: %s (line %d)\n",  \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

struct tally {
    size_t out, err;
};

static void on_chunk(void *arg, int stream, const uint8_t *p, size_t n)
{
    struct tally *t = arg;

    (void)p;
    FUZZ_CHECK(stream == 1 || stream == 2);
    FUZZ_CHECK(n > 0 && n <= JOB_MSG_CHUNK_MAX);
    if (stream == 1) {
        t->out += n;
    } else {
        t->err += n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct job_msg m;
    struct tally t = {0};
    char why[160] = "";
    size_t piece, at = 1;
    int r = ERR_OK;

    if (size == 0) {
        return 0;
    }
    piece = (size_t)data[0] % 17 + 1;
    job_msg_init(&m);
    while (at < size && r == ERR_OK) {
        size_t n = size - at < piece ? size - at : piece;
        r = job_msg_feed(&m, data + at, n, on_chunk, &t, why, sizeof(why));
        at += n;
    }
    /* the totals count a frame from its header on, the chunks as its
     * bytes arrive: equal once no frame is half-read */
    FUZZ_CHECK(t.out <= m.out_len && t.err <= m.err_len);
    FUZZ_CHECK(t.out <= JOB_MSG_OUT_MAX && t.err <= JOB_MSG_OUT_MAX);
    if (r != ERR_OK) {
        FUZZ_CHECK(why[0] != '\0');
        return 0;
    }
    if (m.need == 0) {
        FUZZ_CHECK(t.out == m.out_len && t.err == m.err_len);
    }
    if (job_msg_end(&m, (data[0] & 0x80) != 0, why, sizeof(why)) == ERR_OK) {
        FUZZ_CHECK(m.done);
        FUZZ_CHECK(strcmp(m.status, "ok") == 0 ||
                   strcmp(m.status, "failed") == 0 ||
                   strcmp(m.status, "timeout") == 0 ||
                   strcmp(m.status, "refused") == 0 ||
                   ((data[0] & 0x80) != 0 && strcmp(m.status, "unknown") == 0));
        FUZZ_CHECK(m.exit_code >= -1 && m.exit_code <= 255);
        FUZZ_CHECK(m.signal >= 0 && m.signal < 128);
        for (const char *p = m.why; *p != '\0'; p++) {
            FUZZ_CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
        }
    } else {
        FUZZ_CHECK(why[0] != '\0');
    }
    return 0;
}
