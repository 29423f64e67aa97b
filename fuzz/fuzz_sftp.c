/*
 * Fuzz target for the SFTP tracker (src/record/sftp.h). The input is a
 * list of chunks, each [1 byte: bit 7 direction (1 = client to server),
 * bits 0-6 length - 1][bytes]; the length 0x7f instead takes the next two
 * bytes (big-endian) as the chunk's length, so whole packets fit in one
 * chunk as well as split ones. Both directions go to one tracker, as the
 * proxy feeds them.
 *
 * Checks, besides ASan/UBSan: every event's strings are set and bounded,
 * counters add up, and after the one "unparsed" event the feed reports
 * nothing more.
 */
#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "record/sftp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
    int unparsed;
    bool finishing;
    uint64_t written; /* sum of WRITE events */
    uint64_t read;    /* sum of READ events */
};

static void on_event(const struct sftp_event *ev, void *arg)
{
    struct fz *f = arg;

    assert(ev->path != NULL && ev->path2 != NULL && ev->note != NULL);
    assert(strlen(ev->path) <= SFTP_PATH_MAX);
    assert(strlen(ev->path2) <= SFTP_PATH_MAX);
    assert(ev->status >= -1);
    assert(ev->op <= SFTP_UNPARSED);
    /* Nothing comes from the stream once it stopped; finish() may still
     * report what was open. */
    assert(f->unparsed == 0 || f->finishing);
    switch (ev->op) {
    case SFTP_UNPARSED:
        f->unparsed++;
        break;
    case SFTP_WRITE:
        f->written += ev->bytes;
        assert(ev->bytes <= SFTP_FRAME_MAX);
        break;
    case SFTP_READ:
        f->read += ev->bytes;
        assert(ev->bytes <= SFTP_FRAME_MAX);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sftp_tracker *t;
    struct sftp_stats st;
    struct fz f;
    size_t i = 0, n;

    memset(&f, 0, sizeof(f));
    t = sftp_tracker_new(on_event, &f);
    assert(t != NULL);
    while (i < size) {
        uint8_t h = data[i++];

        n = (size_t)(h & 0x7f) + 1;
        if ((h & 0x7f) == 0x7f && size - i >= 2) {
            n = (size_t)data[i] << 8 | data[i + 1];
            i += 2;
        }
        if (n > size - i) {
            n = size - i;
        }
        sftp_tracker_feed(t, (h & 0x80) != 0, data + i, n);
        i += n;
    }
    sftp_tracker_stats(t, &st);
    assert(f.unparsed <= 1);
    assert(st.stopped == (f.unparsed == 1));
    assert(st.skipped <= st.packets);
    /* Every counted byte was reported, and only those. */
    assert(f.written == st.bytes_written);
    assert(f.read <= st.bytes_read);
    f.finishing = true;
    sftp_tracker_finish(t);
    sftp_tracker_finish(t);
    sftp_tracker_free(t);
    return 0;
}
