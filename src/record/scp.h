/*
 * A tracker for OpenSSH's legacy scp protocol (`scp -O`), fed the bytes of
 * both directions of an scp exec session as they pass through the proxy,
 * reporting each file and directory transferred, for the session's
 * transfer records.
 *
 * The protocol: the side that sends files writes control lines
 *   C<mode> <size> <name>\n   a file of <size> bytes follows, then \0
 *   D<mode> 0 <name>\n        enter a directory
 *   E\n                       leave it
 *   T<mtime> 0 <atime> 0\n    times of the next file
 * and the receiving side answers each with \0 (ok) or \1/\2 + message.
 * For `scp -t DIR` (an upload) the client sends; for `scp -f PATH` (a
 * download) the target does.
 *
 * Bounded and never failing: a control line longer than SCP_LINE_MAX or
 * anything unexpected stops tracking (one "unparsed" event); the bytes
 * still flow. Pure: no I/O, no allocation after scp_tracker_new().
 */
#ifndef PORTCULLIS_SCP_H
#define PORTCULLIS_SCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCP_LINE_MAX 4096
#define SCP_DEPTH_MAX 64

/* op: "upload", "download", "mkdir", "unparsed"; path relative to the
 * command's target (directories joined with '/'). */
typedef void (*scp_event_fn)(const char *op, const char *path, uint64_t bytes,
                             void *arg);

struct scp_tracker;

/* command: the exec command ("scp -t /tmp", "scp -r -f /var/log").
 * Returns NULL if it is not a legacy scp command or out of memory. */
struct scp_tracker *scp_tracker_new(const char *command, scp_event_fn fn,
                                    void *arg);
void scp_tracker_feed(struct scp_tracker *t, bool from_client, const uint8_t *p,
                      size_t n);
void scp_tracker_free(struct scp_tracker *t);

#endif
