/*
 * Larger socket reads under libssh (readahead.c).
 *
 * libssh 0.10 reads its socket 4 KiB at a time, one poll() per read
 * (socket.c: a 4,096-byte stack buffer, MAX_BUF_SIZE, compiled in). At
 * hundreds of MB/s that is ~260,000 recv() and as many poll() calls per
 * GiB and direction, half of a session child's CPU (bench/README.md).
 * meson.build links with -Wl,--wrap=recv,--wrap=poll,--wrap=close: for a
 * descriptor registered here, one recvmsg() fills libssh's 4 KiB and up
 * to READAHEAD_SIZE more into a buffer of ours; the next reads are served
 * from it, and poll() reports the descriptor readable without asking the
 * kernel while bytes wait there (what the kernel would have said had they
 * stayed in its socket buffer). Nothing else changes: same bytes, same
 * order, same blocking and end-of-file behaviour; close() drops the
 * buffer. Unregistered descriptors (every other caller in the process)
 * go straight to libc.
 */
#ifndef PORTCULLIS_SSHPROXY_READAHEAD_H
#define PORTCULLIS_SSHPROXY_READAHEAD_H

#include <stdbool.h>

#define READAHEAD_SIZE (256 * 1024)
#define READAHEAD_MAX_FDS 4

/* Reads of fd from now on go through a buffer; false if the table is full
 * or memory is short (reads then stay as they were). */
bool readahead_register(int fd);

/* Stops reading ahead on fd (close() does it too). Bytes still buffered
 * are dropped: call it only when the descriptor is done with. */
void readahead_forget(int fd);

#endif
