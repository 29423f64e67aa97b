/*
 * A tracker for SFTP (version 3, draft-ietf-secsh-filexfer-02, what
 * OpenSSH speaks), fed the plaintext bytes of both directions of an sftp
 * subsystem channel as they pass through the proxy, reporting the file
 * operations for the session's transfer records: opens, reads and writes
 * with their byte counts, closes with each file's totals, renames,
 * removes, mkdir, rmdir and setstat, each with the server's answer.
 *
 * Requests travel client to server, replies server to client; a reply
 * carries its request's id, so the tracker keeps the requests it cares
 * about until answered (OPEN until its HANDLE, READ until its DATA, ...)
 * and the open handles with their paths and counters.
 *
 * Bytes may arrive in any chunking: a packet split over many calls, many
 * packets in one call. The tracker buffers only what it looks at: a READ,
 * WRITE or DATA packet's header (its data is counted and passed over, so
 * data packets of any size are counted without being copied), and whole
 * OPEN, RENAME, ... packets up to SFTP_PACKET_MAX (larger ones are passed
 * over). All untrusted bytes are read with struct buf.
 *
 * It never fails the transfer: a packet it does not understand is
 * skipped; if framing is lost (an impossible length, a stream that does
 * not start with INIT / VERSION 3) it stops and emits one SFTP_UNPARSED
 * event, and every later call returns at once. Memory is bounded by the
 * limits below (the oldest request, or the least recently used handle, is
 * dropped when a table is full); it never blocks and does no I/O.
 *
 * Ownership: sftp_tracker_new() returns a tracker freed with
 * sftp_tracker_free() (NULL-safe), which emits nothing. Call
 * sftp_tracker_finish() first at the end of the channel to get events for
 * requests never answered and handles never closed. Strings in an event
 * live only during the callback.
 */
#ifndef PORTCULLIS_SFTP_H
#define PORTCULLIS_SFTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest packet buffered whole (OpenSSH's own limit); data packets of any
 * size are counted without buffering. */
#define SFTP_PACKET_MAX (256 * 1024)
/* A packet length above this means the byte stream is not SFTP (or
 * framing was lost). */
#define SFTP_FRAME_MAX (64u * 1024 * 1024)
#define SFTP_HANDLES_MAX 1024  /* open handles tracked */
#define SFTP_REQUESTS_MAX 1024 /* requests awaiting a reply */
#define SFTP_PATH_MAX 4096     /* bytes of a path kept (longer: cut) */
#define SFTP_HANDLE_LEN_MAX 256
/* Bytes of paths held by pending requests, and by open handles. */
#define SFTP_REQUEST_PATH_BYTES (256 * 1024)
#define SFTP_HANDLE_PATH_BYTES (1024 * 1024)

/* SSH_FXF_* open flags */
#define SFTP_FXF_READ 0x01
#define SFTP_FXF_WRITE 0x02
#define SFTP_FXF_APPEND 0x04
#define SFTP_FXF_CREAT 0x08
#define SFTP_FXF_TRUNC 0x10
#define SFTP_FXF_EXCL 0x20

enum sftp_op {
    SFTP_OPEN,    /* on the reply: path, pflags, status */
    SFTP_READ,    /* per DATA reply: path, offset, bytes */
    SFTP_WRITE,   /* per WRITE request: path, offset, bytes */
    SFTP_CLOSE,   /* path, bytes_read, bytes_written, status, note */
    SFTP_RENAME,  /* path -> path2, status */
    SFTP_REMOVE,  /* path, status */
    SFTP_MKDIR,   /* path, status */
    SFTP_RMDIR,   /* path, status */
    SFTP_SETSTAT, /* path (SETSTAT, or FSETSTAT's handle), status */
    SFTP_UNPARSED /* tracking stopped: note says why; nothing follows */
};

struct sftp_event {
    enum sftp_op op;
    const char *path;         /* never NULL; "" when not known (a handle opened
                                 before tracking began, or dropped) */
    const char *path2;        /* rename's new path; "" otherwise */
    bool path_truncated;      /* path or path2 was cut at SFTP_PATH_MAX */
    uint32_t pflags;          /* open (and close): the SFTP_FXF_* flags */
    bool read, write, create; /* pflags decoded */
    /* The server's SSH_FX_* status: 0 ok (an OPEN answered by a handle),
     * > 0 a failure, -1 no answer seen (the channel ended first, or the
     * request was dropped from a full table). */
    int status;
    uint64_t offset;                    /* read / write */
    uint64_t bytes;                     /* read / write: this packet's data */
    uint64_t bytes_read, bytes_written; /* totals of the handle so far */
    /* close: "closed", "not closed" (channel ended), "evicted" (table
     * full), "replaced" (the server reused the handle); unparsed: why. */
    const char *note;
};

typedef void (*sftp_event_fn)(const struct sftp_event *ev, void *arg);

struct sftp_stats {
    uint64_t packets;       /* packets framed, both directions */
    uint64_t skipped;       /* of those, not understood or too large */
    uint64_t bytes_read;    /* data of every DATA reply */
    uint64_t bytes_written; /* data of every WRITE request */
    bool stopped;           /* framing lost; tracking ended */
};

struct sftp_tracker;

/* fn may be NULL (count only). Returns NULL when out of memory. */
struct sftp_tracker *sftp_tracker_new(sftp_event_fn fn, void *arg);
/* from_client: true for client-to-server bytes (requests), false for
 * server-to-client (replies). */
void sftp_tracker_feed(struct sftp_tracker *t, bool from_client,
                       const uint8_t *p, size_t n);
/* Emits pending requests (status -1) and open handles (a close with note
 * "not closed"), then forgets them. Idempotent. */
void sftp_tracker_finish(struct sftp_tracker *t);
void sftp_tracker_stats(const struct sftp_tracker *t, struct sftp_stats *out);
void sftp_tracker_free(struct sftp_tracker *t);
/* "open", "read", ... for records and logs. */
const char *sftp_op_str(enum sftp_op op);

#endif
