/*
 * Store-change notices from the CLI to a running server.
 *
 * The CLI writes the store directly; a running server must still act at
 * once on some changes (a deleted credential's agents drop, a new tunnel
 * starts listening). After such a change the CLI sends one datagram to
 * the server's unix socket DATA/run/notify.sock (made by the server, mode
 * 0600, in a 0700 directory). The datagram is a decimal mask of
 * enum hub_change ("1", "2", ...). It carries no authority: the server
 * only re-reads the store, so a forged notice can at most cause a
 * re-read. A lost notice (no server running) is not an error.
 */
#ifndef PORTCULLIS_NOTIFY_H
#define PORTCULLIS_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

#include "common/loop.h"

struct notify;

typedef void (*notify_fn)(void *arg, unsigned what);

/* Sends what to the server of data_dir. ERR_OK, also when no server
 * listens (nothing to tell). */
int notify_send(const char *data_dir, unsigned what);
/* As notify_send; *delivered says whether a server took the notice (so a
 * caller knows whether waiting for the server's answer makes sense). */
int notify_tell(const char *data_dir, unsigned what, bool *delivered);

/* Binds DATA/run/notify.sock (replacing a stale one) and calls fn for
 * every notice, in the loop. */
int notify_listen(struct notify **out, struct loop *loop, const char *data_dir,
                  notify_fn fn, void *arg);
void notify_close(struct notify *n);

/*
 * Questions with answers, on a second socket DATA/run/ask.sock (same mode
 * and directory): the CLI asks the running server for something only it
 * can do, such as a pairing code that must live in its memory alone
 * (admin_pair.c). A question is one datagram of at most NOTIFY_ASK_MAX
 * bytes; the answer goes back to the asker's autobound abstract address.
 * Unlike a notice, a question may carry authority: the socket's mode
 * (0600 in a 0700 directory) limits it to the server's own user and root,
 * who can write the store directly anyway.
 *
 * The server may answer later (its store work off the loop: http_pair.c):
 * each question comes with a reply, which keeps a copy of the asker's
 * address, and is answered with notify_answer() once, now or from a
 * later turn of the loop. An asker that gave up meanwhile (its timeout,
 * or killed) has unbound its address: the late answer is dropped.
 * At most NOTIFY_ASK_PENDING replies wait at once; a question past that
 * is dropped unanswered (its asker times out), so a flood of questions
 * cannot grow the server's memory. The owner's own bound should be
 * smaller, with an answer that says so.
 */
#define NOTIFY_ASK_MAX 4096
#define NOTIFY_ASK_PENDING 64

struct notify_reply;

/* A question (q: its qlen bytes, NUL-terminated; it holds secrets and is
 * wiped when fn returns: copy what a later answer needs). fn owns r and
 * must pass it to notify_answer() exactly once. */
typedef void (*notify_ask_fn)(void *arg, const char *q, size_t qlen,
                              struct notify_reply *r);

/* Sends a (alen bytes, at most NOTIFY_ASK_MAX; alen 0: no answer, the
 * asker times out) to r's asker and frees r. Dropped, without an error,
 * when the asker is gone or the socket was closed (notify_close) since
 * the question came. The caller wipes a. On the loop's thread. */
void notify_answer(struct notify_reply *r, const char *a, size_t alen);
/* Replies of n not answered yet. */
unsigned notify_ask_pending(const struct notify *n);

/* Asks the server of data_dir; its answer (up to alen bytes) goes to a,
 * *got its length. *delivered false (and ERR_OK): no server runs.
 * ERR_TIMEOUT: no answer within timeout_ms. */
int notify_ask(const char *data_dir, const char *q, size_t qlen, char *a,
               size_t alen, size_t *got, bool *delivered, int timeout_ms);
/* Binds DATA/run/ask.sock and gives every question to fn, in the loop.
 * notify_close() leaves the replies still out to their holders: each
 * one's notify_answer() then only frees it. */
int notify_listen_ask(struct notify **out, struct loop *loop,
                      const char *data_dir, notify_ask_fn fn, void *arg);

/*
 * Streams, on DATA/run/NAME (SOCK_STREAM, same mode and directory): the
 * CLI follows something the running server pushes as it happens (a
 * job's output: hub_watchsock.c). As for questions, the socket's mode is
 * the whole of the check.
 */
/* Binds and listens (replacing a stale socket); *fd is non-blocking. */
int notify_stream_listen(const char *data_dir, const char *name, int *fd);
/* Closes the listener and removes its socket file. */
void notify_stream_close(const char *data_dir, const char *name, int fd);
/* Connects; ERR_NOT_FOUND when no server listens. */
int notify_stream_connect(const char *data_dir, const char *name, int *fd);

#endif
