/*
 * Fuzz target for the legacy scp tracker: the first byte picks the
 * command (upload or download), then each chunk is [1 byte: direction and
 * length][bytes]. Checks only that nothing crashes or reads out of
 * bounds (ASan) and that every reported path is bounded.
 */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "record/scp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_event(const char *op, const char *path, uint64_t bytes,
                     void *arg)
{
    (void)bytes;
    (void)arg;
    assert(op != NULL && path != NULL);
    assert(strlen(path) <= SCP_LINE_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct scp_tracker *t;
    size_t i = 1;

    if (size < 1) {
        return 0;
    }
    t = scp_tracker_new((data[0] & 1) ? "scp -r -t /dst" : "scp -f /src",
                        on_event, NULL);
    assert(t != NULL);
    while (i < size) {
        uint8_t h = data[i++];
        size_t n = (size_t)(h & 0x7f) + 1;

        if (n > size - i) {
            n = size - i;
        }
        scp_tracker_feed(t, (h & 0x80) != 0, data + i, n);
        i += n;
    }
    scp_tracker_free(t);
    return 0;
}
