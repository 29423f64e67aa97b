/*
 * The result stream of a job, as the agent sends it
 * (docs/agent-protocol.md §6): frames of one type byte, a 4-byte
 * big-endian length and that many bytes. 'O' and 'E' carry stdout and
 * stderr as they arrive (1-65,536 bytes each), 'R' ends the stream with
 * the JSON result header (at most 4,096 bytes); nothing may follow it.
 *
 * job_msg_feed() takes the bytes as they come, in any pieces, and hands
 * each output chunk to a callback; job_msg_end() checks, at EOF, that the
 * result arrived and agrees with the chunks. The bytes come from an
 * authenticated but untrusted agent: the parser is pure (no I/O, no
 * globals) and fuzzed (fuzz/fuzz_job_msg.c).
 */
#ifndef PORTCULLIS_HUB_JOB_MSG_H
#define PORTCULLIS_HUB_JOB_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JOB_MSG_CHUNK_MAX 65536
#define JOB_MSG_HEADER_MAX 4096
/* per stream: the agent's cap and its truncation marker */
#define JOB_MSG_OUT_MAX (4 * 1024 * 1024 + 128)
#define JOB_MSG_STATUS_MAX 15
#define JOB_MSG_WHY_MAX 255

struct job_msg {
    /* the frame being read */
    uint8_t head[5];
    size_t head_len;
    uint8_t type;
    uint32_t need; /* bytes of the frame still to come */
    char hdr[JOB_MSG_HEADER_MAX + 1];
    size_t hdr_len;
    bool done; /* the 'R' frame is complete */
    /* totals so far */
    size_t out_len, err_len;
    /* filled by job_msg_end() */
    char status[JOB_MSG_STATUS_MAX + 1];
    int exit_code;                 /* -1: none */
    int signal;                    /* 0: none */
    char why[JOB_MSG_WHY_MAX + 1]; /* control characters made spaces */
    bool sudo; /* the header says the job ran through sudo */
};

/* stream 1: stdout, 2: stderr. */
typedef void (*job_msg_chunk_fn)(void *arg, int stream, const uint8_t *p,
                                 size_t n);

void job_msg_init(struct job_msg *m);
/* ERR_OK, or ERR_INVALID with why (the stream is then unusable). */
int job_msg_feed(struct job_msg *m, const uint8_t *data, size_t len,
                 job_msg_chunk_fn fn, void *arg, char *why, size_t whylen);
/* At EOF. ERR_OK with status etc. filled, or ERR_INVALID with why.
 * unknown_ok admits the status "unknown" (the answer to a fetch, when the
 * agent kept no result). */
int job_msg_end(struct job_msg *m, bool unknown_ok, char *why, size_t whylen);

#endif
