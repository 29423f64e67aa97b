/*
 * Moving bytes between a client channel and a target channel.
 *
 * Why the callbacks consume nothing: libssh processes incoming packets for
 * every session of the event inside any call that touches a socket, so
 * data for one channel can arrive while we service another. If a data
 * callback consumed bytes we would have to buffer them ourselves without
 * bound. Instead the data callbacks only note how much libssh holds for
 * the stream (the callback sees the whole buffered length) and return 0;
 * libssh keeps the bytes and does not grow the window past what it holds,
 * so a fast side is held back by the SSH window (backpressure), and
 * memory per channel stays bounded. relay_pump() then reads what libssh
 * holds, all of it and only once what it read before went on
 * (relay_can_take: libssh 0.10 grants a new window on every read, so
 * reading a part at a time let a fast side send without end to a slow
 * one), writing only what the destination's window accepts: RELAY_CHUNK
 * bytes of its own per stream while the destination keeps up, up to a
 * window when it does not. The same contract, for a channel bridged to a
 * file descriptor rather than to another channel, is written out in
 * common/chanpump.h with the libssh behaviour it relies on; this file
 * keeps its own channel-to-channel loop (three streams, packet-sized
 * writes, recording).
 *
 * Order at the end matters to OpenSSH clients: data first, then EOF, then
 * exit-status, then close, and the channel is freed only after the
 * client's own close arrives. The EOF waits for the target's exit status
 * (or its close, or RELAY_EOF_HOLD_MS): Dropbear's dbclient closes its
 * side as soon as it has an EOF and its output is written, and an exit
 * status that arrives after that close is never relayed (the exit code
 * read 0; test_clients.py test_dropbear_dbclient, on a loaded machine).
 */
#define RELAY_EOF_HOLD_MS 1000
#include "sshproxy/session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "policy/policy.h"

/*
 * The one buffer transfer records (JSON lines) are formatted in. A record
 * can hold a 64 KiB command line escaped, so it is large (132 KiB): it is
 * allocated once by relay_init(), before the session child enters its
 * sandbox, rather than on the child's stack at every record. The child
 * has one thread and a record is written before the next is formatted.
 */
#define RELAY_LINE_MAX (2 * 65536 + 1024)
static char *relay_line;

int relay_init(void)
{
    if (relay_line == NULL && (relay_line = malloc(RELAY_LINE_MAX)) == NULL) {
        return ERR_NOMEM;
    }
    return ERR_OK;
}

struct relay_chan *relay_chan_new(struct session_child *sc)
{
    struct relay_chan *ch = calloc(1, sizeof(*ch));

    if (ch == NULL) {
        return NULL;
    }
    ch->sc = sc;
    ch->exit_status = -1;
    ch->last_activity_ms = util_mono_ms();
    return ch;
}

void relay_chan_free(struct relay_chan *ch)
{
    if (ch == NULL) {
        return;
    }
    /* libssh may free a channel later (when the peer's close arrives) and
     * call its callbacks then: detach them from this struct first. */
    if (ch->down != NULL) {
        if (ch->down_cb.userdata == ch) {
            ssh_remove_channel_callbacks(ch->down, &ch->down_cb);
        }
        ssh_channel_free(ch->down);
    }
    if (ch->up != NULL) {
        if (ch->up_cb.userdata == ch) {
            ssh_remove_channel_callbacks(ch->up, &ch->up_cb);
        }
        ssh_channel_free(ch->up);
    }
    for (int i = 0; i < 3; i++) {
        free(ch->s[i].pend);
    }
    for (int i = 0; i < ch->nenv; i++) {
        free(ch->env_name[i]);
        free(ch->env_value[i]);
    }
    record_free(ch->rec);
    scp_tracker_free(ch->scp);
    sftp_tracker_free(ch->sftp);
    free(ch->detail);
    free(ch->x11_proto);
    free(ch->x11_cookie);
    free(ch->fail_msg);
    free(ch->result);
    free(ch->exit_signal);
    free(ch);
}

/* --- target-side callbacks: note, never consume --- */

static int relay_up_data(ssh_session session, ssh_channel channel, void *data,
                         uint32_t len, int is_stderr, void *userdata)
{
    struct relay_chan *ch = userdata;

    ch->s[is_stderr ? 2 : 1].avail = len;
    ch->sc->activity = true;
    return 0;
}

static void relay_up_eof(ssh_session session, ssh_channel channel,
                         void *userdata)
{
    struct relay_chan *ch = userdata;

    if (!ch->up_eof) {
        ch->up_eof_ms = util_mono_ms();
    }
    ch->up_eof = true;
    ch->sc->activity = true;
}

static void relay_up_close(ssh_session session, ssh_channel channel,
                           void *userdata)
{
    struct relay_chan *ch = userdata;

    ch->up_closed = true;
    ch->sc->activity = true;
}

static void relay_up_exit_status(ssh_session session, ssh_channel channel,
                                 int exit_status, void *userdata)
{
    struct relay_chan *ch = userdata;

    ch->exit_status_set = true;
    ch->exit_status = exit_status;
    ch->sc->activity = true;
}

static void relay_up_exit_signal(ssh_session session, ssh_channel channel,
                                 const char *signal, int core,
                                 const char *errmsg, const char *lang,
                                 void *userdata)
{
    struct relay_chan *ch = userdata;

    free(ch->exit_signal);
    ch->exit_signal = strdup(signal ? signal : "KILL");
    ch->exit_core = core != 0;
    ch->sc->activity = true;
}

void relay_set_up_callbacks(struct relay_chan *ch)
{
    memset(&ch->up_cb, 0, sizeof(ch->up_cb));
    ch->up_cb.userdata = ch;
    ch->up_cb.channel_data_function = relay_up_data;
    ch->up_cb.channel_eof_function = relay_up_eof;
    ch->up_cb.channel_close_function = relay_up_close;
    ch->up_cb.channel_exit_status_function = relay_up_exit_status;
    ch->up_cb.channel_exit_signal_function = relay_up_exit_signal;
    ssh_callbacks_init(&ch->up_cb);
    ssh_set_channel_callbacks(ch->up, &ch->up_cb);
}

/* --- pumping --- */

static int relay_write(ssh_channel dst, int to_stderr, const uint8_t *p,
                       uint32_t len)
{
    return to_stderr ? ssh_channel_write_stderr(dst, p, len)
                     : ssh_channel_write(dst, p, len);
}

/* What the recording sees of the bytes just read from stream idx: how
 * many of them it took. The rest was refused (the recording's size
 * limit) and is not passed on, so nothing reaches the user unrecorded.
 * A read takes all libssh holds (up to a window, relay_can_take), so it
 * is recorded in RELAY_CHUNK pieces: what fits before the limit still
 * goes to the user, as it did when reads were a chunk each. */
static size_t relay_observe(struct relay_chan *ch, int idx, const uint8_t *p,
                            size_t n)
{
    size_t done = 0, k;
    char kind;

    if (ch->rec == NULL) {
        return n;
    }
    if (ch->record_cast) {
        if (idx == 0 && !ch->record_input) {
            return n;
        }
        kind = idx != 0 ? 'o' : 'i';
        while (done < n) {
            k = n - done < RELAY_CHUNK ? n - done : RELAY_CHUNK;
            if (record_cast_data(ch->rec, kind, p + done, k) == ERR_TOO_LONG) {
                break;
            }
            done += k;
        }
        return done;
    } else if (ch->scp != NULL && idx != 2) {
        scp_tracker_feed(ch->scp, idx == 0, p, n);
    } else if (ch->sftp != NULL && idx != 2) {
        sftp_tracker_feed(ch->sftp, idx == 0, p, n);
    }
    return n;
}

/*
 * One SFTP transfer record per operation that changes or moves data:
 * open is implied by its close, which carries the handle's totals; reads
 * and writes are summed there rather than logged per packet.
 */
static void relay_sftp_event(const struct sftp_event *ev, void *arg)
{
    struct relay_chan *ch = arg;
    char when[32], p1[2 * 4096 + 8], p2[2 * 4096 + 8];
    const char *op;

    if (ch->rec == NULL || relay_line == NULL || ev->op == SFTP_READ ||
        ev->op == SFTP_WRITE) {
        return;
    }
    if (ev->op == SFTP_OPEN && ev->status == 0) {
        return; /* reported at close, with the bytes */
    }
    op = sftp_op_str(ev->op);
    if (record_json_string(p1, sizeof(p1), ev->path) == 0 ||
        record_json_string(p2, sizeof(p2), ev->path2) == 0) {
        return;
    }
    util_fmt_time(util_now(), when, sizeof(when));
    snprintf(relay_line, RELAY_LINE_MAX,
             "{\"time\": \"%s\", \"session\": \"%s\", \"op\": \"%s\", "
             "\"path\": %s, \"path2\": %s, \"read\": %s, \"write\": %s, "
             "\"bytes_read\": %llu, \"bytes_written\": %llu, \"status\": %d, "
             "\"note\": \"%s\"}",
             when, ch->session_id, op, p1, p2, ev->read ? "true" : "false",
             ev->write ? "true" : "false", (unsigned long long)ev->bytes_read,
             (unsigned long long)ev->bytes_written, ev->status,
             ev->note ? ev->note : "");
    (void)record_line(ch->rec, relay_line);
}

void relay_transfer_finish(struct relay_chan *ch)
{
    if (ch->sftp != NULL) {
        sftp_tracker_finish(ch->sftp);
    }
}

/* One transfer record: a JSON object on one line. */
static void relay_transfer_event(const char *op, const char *path,
                                 uint64_t bytes, void *arg)
{
    struct relay_chan *ch = arg;
    char when[32], jpath[2 * SCP_LINE_MAX];
    int64_t now = util_now();

    if (ch->rec == NULL || relay_line == NULL ||
        record_json_string(jpath, sizeof(jpath), path) == 0) {
        return;
    }
    util_fmt_time(now, when, sizeof(when));
    snprintf(relay_line, RELAY_LINE_MAX,
             "{\"time\": \"%s\", \"session\": \"%s\", \"op\": \"%s\", "
             "\"path\": %s, \"bytes\": %llu}",
             when, ch->session_id, op, jpath, (unsigned long long)bytes);
    (void)record_line(ch->rec, relay_line);
}

int relay_transfer_start(struct relay_chan *ch)
{
    char when[32], *cmd = NULL, user[6 * STORE_NAME_MAX + 3];
    size_t cap;

    if (relay_line == NULL) {
        return ERR_NOMEM;
    }
    util_fmt_time(util_now(), when, sizeof(when));
    cap = (ch->detail ? strlen(ch->detail) * 6 : 0) + 3;
    if ((cmd = malloc(cap)) == NULL ||
        record_json_string(cmd, cap, ch->detail ? ch->detail : "") == 0 ||
        record_json_string(user, sizeof(user), ch->user_name) == 0) {
        free(cmd);
        return ERR_NOMEM;
    }
    snprintf(relay_line, RELAY_LINE_MAX,
             "{\"time\": \"%s\", \"session\": \"%s\", \"op\": \"start\", "
             "\"kind\": \"%s\", \"user\": %s, \"command\": %s}",
             when, ch->session_id, policy_kind_str(ch->kind), user, cmd);
    free(cmd);
    if (ch->kind == KIND_SCP) {
        ch->scp = scp_tracker_new(ch->detail, relay_transfer_event, ch);
    } else if (ch->kind == KIND_SFTP) {
        ch->sftp = sftp_tracker_new(relay_sftp_event, ch);
    }
    return record_line(ch->rec, relay_line);
}

/*
 * May the source be read now? Only for everything libssh holds: libssh
 * 0.10 grants the peer a whole new window (1,280,000 bytes) on every
 * read that finds the window below half of that, however much it still
 * holds, so a read of a part let a fast source send another window for
 * every part a slow destination took, and what libssh held (the session
 * child's memory) grew with the output (test_relay_slow_reader.py). Read
 * whole, each grant follows an emptied buffer: libssh holds at most a
 * window, and pend at most what came before it. Into RELAY_CHUNK while
 * that is enough; a larger buffer only when pend is empty.
 */
static bool relay_can_take(const struct relay_stream *st)
{
    uint32_t cap = st->pend_cap > RELAY_CHUNK ? st->pend_cap : RELAY_CHUNK;

    return st->avail > 0 && (st->pend_len == st->pend_off ||
                             st->pend_len - st->pend_off + st->avail <= cap);
}

/* Room in st->pend for want more bytes after what it holds (compacted);
 * false when out of memory. */
static bool relay_room(struct relay_stream *st, uint32_t want)
{
    uint32_t held = st->pend_len - st->pend_off;
    uint32_t cap = held + want > RELAY_CHUNK ? held + want : RELAY_CHUNK;
    uint8_t *p;

    if (held == 0) {
        st->pend_off = st->pend_len = 0;
    }
    if (st->pend != NULL && st->pend_cap < cap) {
        if (held > 0) {
            if ((p = malloc(cap)) == NULL) {
                return false;
            }
            memcpy(p, st->pend + st->pend_off, held);
            free(st->pend);
            st->pend = p;
            st->pend_off = 0;
            st->pend_len = held;
            st->pend_cap = cap;
            return true;
        }
        free(st->pend);
        st->pend = NULL;
    } else if (st->pend != NULL && held == 0 && st->pend_cap > RELAY_CHUNK &&
               cap == RELAY_CHUNK) {
        /* back to the small buffer once the burst is written */
        free(st->pend);
        st->pend = NULL;
    }
    if (st->pend == NULL) {
        if ((st->pend = malloc(cap)) == NULL) {
            return false;
        }
        st->pend_cap = cap;
    }
    if (st->pend_off > 0) {
        memmove(st->pend, st->pend + st->pend_off, held);
        st->pend_len = held;
        st->pend_off = 0;
    }
    return true;
}

/*
 * One direction: read what the source holds (all of it: relay_can_take),
 * write no more than the destination's window takes. While more data is coming,
 * writes are whole multiples of RELAY_PACKET, because libssh splits a
 * write into packets of the peer's maximum less 10 bytes: writing the
 * 32 KiB a client packet carries would cost a second, 10-byte packet
 * (with its own encryption and syscall) every time. The tail goes out as
 * soon as the source has nothing more buffered, so interactive traffic is
 * not delayed. Returns true if any byte moved; sets *err when the
 * destination failed.
 */
static bool relay_stream_pump(struct relay_chan *ch, int idx, ssh_channel src,
                              int from_stderr, ssh_channel dst, int to_stderr,
                              uint64_t *count, bool *err)
{
    struct relay_stream *st = &ch->s[idx];
    bool moved = false;
    uint32_t win, want, have;
    int n;

    for (;;) {
        if (relay_can_take(st)) {
            want = st->avail < RELAY_TAKE_MAX ? st->avail : RELAY_TAKE_MAX;
            if (!relay_room(st, want)) {
                *err = true;
                break;
            }
            n = ssh_channel_read_timeout(src, st->pend + st->pend_len, want,
                                         from_stderr, 0);
            if (n <= 0) {
                /* Nothing after all (or the source failed: its close or
                 * the session error is noticed by the caller). */
                st->avail = 0;
            } else {
                st->avail =
                    (uint32_t)n >= st->avail ? 0 : st->avail - (uint32_t)n;
                st->pend_len += (uint32_t)relay_observe(
                    ch, idx, st->pend + st->pend_len, (size_t)n);
                *count += (uint64_t)n;
                moved = true;
            }
        }
        have = st->pend_len - st->pend_off;
        if (have == 0) {
            break;
        }
        win = ssh_channel_window_size(dst);
        want = have < win ? have : win;
        if (want >= RELAY_PACKET) {
            want -= want % RELAY_PACKET;
        } else if (relay_can_take(st)) {
            continue; /* read more before sending a short packet */
        }
        if (want == 0) {
            break;
        }
        n = relay_write(dst, to_stderr, st->pend + st->pend_off, want);
        if (n < 0) {
            *err = true;
            break;
        }
        if (n == 0) {
            break;
        }
        moved = true;
        st->pend_off += (uint32_t)n;
        if (st->pend_off == st->pend_len) {
            st->pend_off = st->pend_len = 0;
        } else if ((uint32_t)n < want) {
            break; /* the destination took less: wait */
        }
    }
    return moved;
}

static bool relay_stream_empty(const struct relay_stream *st)
{
    return st->avail == 0 && st->pend_len == st->pend_off;
}

bool relay_fail(struct relay_chan *ch)
{
    char line[600];
    uint32_t n;

    bool moved = false, held = false;

    if (ch->sent_down_close || ch->down_closed) {
        ch->state = CHAN_CLOSING;
        return true;
    }
    if (ch->fail_ms == 0) {
        ch->fail_ms = util_mono_ms();
    }
    /* What was read (and recorded) before the failure goes to the client
     * first, as its window allows, then the message: a read takes all
     * libssh holds, up to a window, so that can be much. */
    for (int idx = 1; idx <= 2 && !ch->sent_down_eof; idx++) {
        struct relay_stream *st = &ch->s[idx];
        uint32_t win, want;
        int w;

        while (st->pend_off < st->pend_len &&
               (win = ssh_channel_window_size(ch->down)) > 0) {
            want = st->pend_len - st->pend_off;
            want = want < win ? want : win;
            if ((w = relay_write(ch->down, idx == 2, st->pend + st->pend_off,
                                 want)) <= 0) {
                break;
            }
            st->pend_off += (uint32_t)w;
            moved = true;
        }
        held = held || st->pend_off < st->pend_len;
    }
    if (held && util_mono_ms() - ch->fail_ms < RELAY_FAIL_WAIT_MS) {
        return moved;
    }
    /* a message and an exit status only where a client reads them: not
     * on a forwarded connection */
    if ((ch->kind == KIND_SHELL || ch->kind == KIND_EXEC ||
         ch->kind == KIND_SFTP || ch->kind == KIND_SCP) &&
        ch->fail_msg != NULL) {
        (void)snprintf(line, sizeof(line), "portcullis: %s\r\n", ch->fail_msg);
        n = (uint32_t)strnlen(line, sizeof(line));
        /* the message waits for the client to make room too, a while */
        if (ssh_channel_window_size(ch->down) < n &&
            util_mono_ms() - ch->fail_ms < RELAY_FAIL_WAIT_MS) {
            return moved;
        }
        ssh_channel_write_stderr(ch->down, line, n);
        /* 255, as ssh itself exits when it cannot reach a host or loses
         * the connection (and as it does when a jump host refuses): what
         * ran is not the command's own failure. Ansible reports 255 as
         * "UNREACHABLE: Failed to connect to the host via ssh: <stderr>",
         * so the user reads our line instead of a guess about a remote
         * temporary directory; scripts tell it from the command's 1. */
        ssh_channel_request_send_exit_status(ch->down, RELAY_FAIL_STATUS);
    }
    if (!ch->sent_down_eof) {
        ssh_channel_send_eof(ch->down);
        ch->sent_down_eof = true;
    }
    ssh_channel_close(ch->down);
    ch->sent_down_close = true;
    ch->state = CHAN_CLOSING;
    return true;
}

bool relay_pump(struct relay_chan *ch)
{
    bool moved = false, err = false;

    if (ch->state != CHAN_RELAYING) {
        return false;
    }
    /* client stdin -> target */
    if (!ch->sent_up_eof && !ch->up_closed) {
        moved |= relay_stream_pump(ch, 0, ch->down, 0, ch->up, 0, &ch->bytes_up,
                                   &err);
    } else {
        ch->s[0].avail = 0;
    }
    /* target stdout/stderr -> client */
    if (!ch->down_closed && !ch->sent_down_eof) {
        moved |= relay_stream_pump(ch, 1, ch->up, 0, ch->down, 0,
                                   &ch->bytes_down, &err);
        moved |= relay_stream_pump(ch, 2, ch->up, 1, ch->down, 1,
                                   &ch->bytes_down, &err);
    }
    if (err) {
        log_debug("relay: write failed on channel; closing");
    }
    /* EOF from the client, once its data is through. */
    if (ch->down_eof && !ch->sent_up_eof && relay_stream_empty(&ch->s[0]) &&
        !ch->up_closed) {
        ssh_channel_send_eof(ch->up);
        ch->sent_up_eof = true;
        moved = true;
    }
    /* EOF from the target, once its data is through and its exit status
     * is known (or it closed, or it keeps running past the hold). */
    if ((ch->up_eof || ch->up_closed) && !ch->sent_down_eof &&
        relay_stream_empty(&ch->s[1]) && relay_stream_empty(&ch->s[2]) &&
        !ch->down_closed &&
        (ch->up_closed || ch->exit_status_set || ch->exit_signal != NULL ||
         util_mono_ms() - ch->up_eof_ms >= RELAY_EOF_HOLD_MS)) {
        ssh_channel_send_eof(ch->down);
        ch->sent_down_eof = true;
        moved = true;
    }
    /* The exit status right after the EOF, before the client can close. */
    if (ch->sent_down_eof && !ch->sent_exit && !ch->down_closed &&
        (ch->exit_signal != NULL || ch->exit_status_set)) {
        if (ch->exit_signal != NULL) {
            ssh_channel_request_send_exit_signal(ch->down, ch->exit_signal,
                                                 ch->exit_core ? 1 : 0, "", "");
        } else {
            ssh_channel_request_send_exit_status(ch->down, ch->exit_status);
        }
        ch->sent_exit = true;
        moved = true;
    }
    /* The target closed: close towards the client. */
    if (ch->up_closed && ch->sent_down_eof && !ch->sent_down_close) {
        if (!ch->down_closed) {
            ssh_channel_close(ch->down);
        }
        ch->sent_down_close = true;
        ch->state = CHAN_CLOSING;
        moved = true;
    }
    /* The client went away (or a write failed): close towards the target. */
    if ((ch->down_closed || err) && ch->state == CHAN_RELAYING) {
        if (!ch->up_closed) {
            ssh_channel_close(ch->up);
        }
        if (!ch->sent_down_close && !ch->down_closed) {
            ssh_channel_close(ch->down);
        }
        ch->sent_down_close = true;
        ch->state = CHAN_CLOSING;
        if (err && ch->result == NULL) {
            ch->result = strdup("error: relay failed");
        }
        moved = true;
    }
    if (moved) {
        ch->last_activity_ms = ch->sc->now_ms;
    }
    return moved;
}

void relay_abort(struct relay_chan *ch, const char *msg, const char *result)
{
    if (ch->up != NULL && !ch->up_closed) {
        ssh_channel_close(ch->up);
    }
    free(ch->fail_msg);
    ch->fail_msg = strdup(msg);
    free(ch->result);
    ch->result = strdup(result);
    ch->state = CHAN_FAILING;
}

bool relay_finished(const struct relay_chan *ch)
{
    if (ch->state == CHAN_CLOSING) {
        return ch->down_closed || ssh_channel_is_closed(ch->down);
    }
    return ch->down_closed && ch->state == CHAN_NEW;
}
