/*
 * The SFTP tracker (sftp.h): framing of each direction, the table of
 * requests awaiting a reply and the table of open handles.
 *
 * Framing: a packet is a u32 length, a u8 type and length - 1 bytes of
 * payload. Each direction collects the 5-byte head, decides from the type
 * how much of the payload it needs (sftp_want()), collects that much,
 * parses it with the buf getters and passes over the rest by counting. So
 * a 256 KiB WRITE costs a copy of its ~20-byte header, and a packet of a
 * type the tracker does not care about costs nothing but the count.
 *
 * Tables: small arrays grown on demand up to their maximum and searched
 * linearly (a reply's id, a packet's handle). A full table drops its
 * oldest request or least recently used handle, emitting what is known
 * about it, and path bytes held by each table have their own budget.
 * Allocation failures only mean something is not tracked.
 */
#include "record/sftp.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

/* SSH_FXP_* packet types of version 3 */
enum {
    FXP_INIT = 1,
    FXP_VERSION = 2,
    FXP_OPEN = 3,
    FXP_CLOSE = 4,
    FXP_READ = 5,
    FXP_WRITE = 6,
    FXP_LSTAT = 7,
    FXP_FSTAT = 8,
    FXP_SETSTAT = 9,
    FXP_FSETSTAT = 10,
    FXP_OPENDIR = 11,
    FXP_READDIR = 12,
    FXP_REMOVE = 13,
    FXP_MKDIR = 14,
    FXP_RMDIR = 15,
    FXP_REALPATH = 16,
    FXP_STAT = 17,
    FXP_RENAME = 18,
    FXP_READLINK = 19,
    FXP_SYMLINK = 20,
    FXP_STATUS = 101,
    FXP_HANDLE = 102,
    FXP_DATA = 103,
    FXP_NAME = 104,
    FXP_ATTRS = 105,
    FXP_EXTENDED = 200,
    FXP_EXTENDED_REPLY = 201,
};

#define SFTP_VERSION 3
#define SFTP_HEAD_LEN 5 /* u32 length, u8 type */
/* What READ and WRITE carry before their data: id, handle, offset,
 * length. */
#define SFTP_IO_HEAD (4 + 4 + SFTP_HANDLE_LEN_MAX + 8 + 4)
/* A reply's id and its status code, or DATA's id and data length. */
#define SFTP_REPLY_HEAD 8
#define SFTP_EXT_NAME_MAX 256
#define SFTP_TABLE_START 8
#define SFTP_NONE ((size_t)-1)

struct sftp_handle {
    bool used;
    bool closing; /* a CLOSE was sent; no longer matched */
    uint8_t h[SFTP_HANDLE_LEN_MAX];
    size_t hlen;
    char *path; /* heap, NUL-terminated */
    size_t path_bytes;
    bool trunc;
    uint32_t pflags;
    uint64_t bytes_read, bytes_written;
    uint64_t last_use; /* for dropping the least recently used */
    uint64_t gen;      /* tells a reused slot from the one a request saw */
};

struct sftp_req {
    bool used;
    uint32_t id;
    uint8_t type; /* FXP_* of the request; posix-rename as FXP_RENAME */
    uint64_t age; /* arrival order, for dropping the oldest */
    size_t slot;  /* READ, CLOSE, FSETSTAT: the handle's slot ... */
    uint64_t gen; /* ... while it has this generation */
    uint64_t offset;
    uint32_t pflags;
    char *path, *path2; /* heap or NULL */
    size_t path_bytes;
    bool trunc;
};

enum sftp_state { ST_HEAD, ST_BODY, ST_SKIP };

struct sftp_stream {
    struct buf *pkt; /* the head, then the part of the payload parsed */
    enum sftp_state state;
    uint8_t type;
    uint32_t payload; /* length - 1 */
    size_t want;      /* payload bytes to collect */
    uint64_t skip;    /* payload bytes left to pass over */
    bool started;     /* the first packet (INIT / VERSION) was seen */
};

struct sftp_tracker {
    sftp_event_fn fn;
    void *arg;
    struct sftp_stream dir[2]; /* [0] server to client, [1] client to server */
    struct sftp_handle *handles;
    size_t handles_cap;
    size_t handle_bytes;
    struct sftp_req *reqs;
    size_t reqs_cap;
    size_t req_bytes;
    uint64_t clock; /* stamps for ages and last use */
    uint64_t gen;
    struct sftp_stats stats;
};

const char *sftp_op_str(enum sftp_op op)
{
    static const char *const names[] = {
        [SFTP_OPEN] = "open",       [SFTP_READ] = "read",
        [SFTP_WRITE] = "write",     [SFTP_CLOSE] = "close",
        [SFTP_RENAME] = "rename",   [SFTP_REMOVE] = "remove",
        [SFTP_MKDIR] = "mkdir",     [SFTP_RMDIR] = "rmdir",
        [SFTP_SETSTAT] = "setstat", [SFTP_UNPARSED] = "unparsed",
    };

    if ((unsigned)op >= sizeof(names) / sizeof(names[0])) {
        return "unknown";
    }
    return names[op];
}

/* --- events --------------------------------------------------------------
 */

static void ev_init(struct sftp_event *ev, enum sftp_op op)
{
    memset(ev, 0, sizeof(*ev));
    ev->op = op;
    ev->path = "";
    ev->path2 = "";
    ev->note = "";
    ev->status = -1;
}

static void ev_flags(struct sftp_event *ev, uint32_t pflags)
{
    ev->pflags = pflags;
    ev->read = (pflags & SFTP_FXF_READ) != 0;
    ev->write = (pflags & (SFTP_FXF_WRITE | SFTP_FXF_APPEND)) != 0;
    ev->create = (pflags & SFTP_FXF_CREAT) != 0;
}

static void ev_handle(struct sftp_event *ev, const struct sftp_handle *h)
{
    ev->path = h->path != NULL ? h->path : "";
    ev->path_truncated = h->trunc;
    ev->bytes_read = h->bytes_read;
    ev->bytes_written = h->bytes_written;
    ev_flags(ev, h->pflags);
}

static void emit(struct sftp_tracker *t, const struct sftp_event *ev)
{
    if (t->fn != NULL) {
        t->fn(ev, t->arg);
    }
}

/* A heap copy of a path from the wire, cut at SFTP_PATH_MAX; NULL when
 * out of memory. */
static char *path_dup(const uint8_t *p, size_t n, bool *trunc)
{
    char *s;

    if (n > SFTP_PATH_MAX) {
        n = SFTP_PATH_MAX;
        *trunc = true;
    }
    if ((s = malloc(n + 1)) == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(s, p, n);
    }
    s[n] = '\0';
    return s;
}

/* --- open handles -----------------------------------------------------------
 */

static void handle_clear(struct sftp_tracker *t, struct sftp_handle *h)
{
    t->handle_bytes -= h->path_bytes;
    free(h->path);
    memset(h, 0, sizeof(*h));
}

/* Emits a close with the handle's totals and frees the slot. */
static void handle_drop(struct sftp_tracker *t, size_t i, const char *note,
                        int status)
{
    struct sftp_handle *h = &t->handles[i];
    struct sftp_event ev;

    ev_init(&ev, SFTP_CLOSE);
    ev_handle(&ev, h);
    ev.note = note;
    ev.status = status;
    emit(t, &ev);
    handle_clear(t, h);
}

/* The open (not closing) handle with these bytes, or SFTP_NONE. */
static size_t handle_find(const struct sftp_tracker *t, const uint8_t *h,
                          size_t hlen)
{
    for (size_t i = 0; i < t->handles_cap; i++) {
        const struct sftp_handle *x = &t->handles[i];

        if (x->used && !x->closing && x->hlen == hlen &&
            memcmp(x->h, h, hlen) == 0) {
            return i;
        }
    }
    return SFTP_NONE;
}

static size_t handle_lru(const struct sftp_tracker *t)
{
    size_t best = SFTP_NONE;

    for (size_t i = 0; i < t->handles_cap; i++) {
        if (t->handles[i].used &&
            (best == SFTP_NONE ||
             t->handles[i].last_use < t->handles[best].last_use)) {
            best = i;
        }
    }
    return best;
}

/* A free slot: an unused one, a new one while the table may grow, or the
 * least recently used one, dropped. SFTP_NONE when out of memory. */
static size_t handle_slot(struct sftp_tracker *t)
{
    struct sftp_handle *p;
    size_t i, ncap;

    for (i = 0; i < t->handles_cap; i++) {
        if (!t->handles[i].used) {
            return i;
        }
    }
    if (t->handles_cap < SFTP_HANDLES_MAX) {
        ncap = t->handles_cap == 0 ? SFTP_TABLE_START : t->handles_cap * 2;
        if (ncap > SFTP_HANDLES_MAX) {
            ncap = SFTP_HANDLES_MAX;
        }
        if ((p = realloc(t->handles, ncap * sizeof(*p))) != NULL) {
            memset(p + t->handles_cap, 0, (ncap - t->handles_cap) * sizeof(*p));
            t->handles = p;
            i = t->handles_cap;
            t->handles_cap = ncap;
            return i;
        }
    }
    if ((i = handle_lru(t)) != SFTP_NONE) {
        handle_drop(t, i, "evicted", -1);
    }
    return i;
}

/* A HANDLE answered an OPEN: the handle now names the request's path. */
static void handle_add(struct sftp_tracker *t, const uint8_t *h, size_t hlen,
                       struct sftp_req *r)
{
    struct sftp_handle *x;
    size_t i, lru;

    if (hlen > SFTP_HANDLE_LEN_MAX) {
        return;
    }
    /* A server reuses a handle only after closing it: whatever still held
     * it (a close whose reply was missed) is over. */
    for (i = 0; i < t->handles_cap; i++) {
        x = &t->handles[i];
        if (x->used && x->hlen == hlen && memcmp(x->h, h, hlen) == 0) {
            handle_drop(t, i, x->closing ? "closed" : "replaced", -1);
        }
    }
    while (t->handle_bytes + r->path_bytes > SFTP_HANDLE_PATH_BYTES &&
           (lru = handle_lru(t)) != SFTP_NONE) {
        handle_drop(t, lru, "evicted", -1);
    }
    if ((i = handle_slot(t)) == SFTP_NONE) {
        return;
    }
    x = &t->handles[i];
    x->used = true;
    memcpy(x->h, h, hlen);
    x->hlen = hlen;
    /* The request's path moves into the handle. */
    x->path = r->path;
    x->path_bytes = r->path_bytes;
    x->trunc = r->trunc;
    r->path = NULL;
    t->req_bytes -= r->path_bytes;
    r->path_bytes = 0;
    t->handle_bytes += x->path_bytes;
    x->pflags = r->pflags;
    x->last_use = ++t->clock;
    x->gen = ++t->gen;
}

/* The handle a request saw, if its slot still holds it. */
static struct sftp_handle *handle_of(struct sftp_tracker *t,
                                     const struct sftp_req *r)
{
    struct sftp_handle *h;

    if (r->slot >= t->handles_cap) {
        return NULL;
    }
    h = &t->handles[r->slot];
    return h->used && h->gen == r->gen ? h : NULL;
}

/* --- requests awaiting a reply ------------------------------------------ */

static void req_clear(struct sftp_tracker *t, struct sftp_req *r)
{
    t->req_bytes -= r->path_bytes;
    free(r->path);
    free(r->path2);
    memset(r, 0, sizeof(*r));
}

/* What a request's answer (status, or -1 for none) means for the record. */
static void req_answer(struct sftp_tracker *t, struct sftp_req *r, int status)
{
    struct sftp_handle *h;
    struct sftp_event ev;

    switch (r->type) {
    case FXP_OPEN:
        ev_init(&ev, SFTP_OPEN);
        ev_flags(&ev, r->pflags);
        break;
    case FXP_RENAME:
        ev_init(&ev, SFTP_RENAME);
        break;
    case FXP_REMOVE:
        ev_init(&ev, SFTP_REMOVE);
        break;
    case FXP_MKDIR:
        ev_init(&ev, SFTP_MKDIR);
        break;
    case FXP_RMDIR:
        ev_init(&ev, SFTP_RMDIR);
        break;
    case FXP_SETSTAT:
        ev_init(&ev, SFTP_SETSTAT);
        break;
    case FXP_FSETSTAT:
        if ((h = handle_of(t, r)) == NULL) {
            return;
        }
        ev_init(&ev, SFTP_SETSTAT);
        ev_handle(&ev, h);
        ev.status = status;
        emit(t, &ev);
        return;
    case FXP_CLOSE:
        if (handle_of(t, r) != NULL) {
            handle_drop(t, r->slot, "closed", status);
        }
        return;
    default: /* READ: its DATA was counted, a STATUS is its EOF */
        return;
    }
    ev.path = r->path != NULL ? r->path : "";
    ev.path2 = r->path2 != NULL ? r->path2 : "";
    ev.path_truncated = r->trunc;
    ev.status = status;
    emit(t, &ev);
}

/* Drops request slot i, reporting it as never answered. */
static void req_drop(struct sftp_tracker *t, size_t i)
{
    req_answer(t, &t->reqs[i], -1);
    req_clear(t, &t->reqs[i]);
}

static size_t req_oldest(const struct sftp_tracker *t)
{
    size_t best = SFTP_NONE;

    for (size_t i = 0; i < t->reqs_cap; i++) {
        if (t->reqs[i].used &&
            (best == SFTP_NONE || t->reqs[i].age < t->reqs[best].age)) {
            best = i;
        }
    }
    return best;
}

static size_t req_find(const struct sftp_tracker *t, uint32_t id)
{
    for (size_t i = 0; i < t->reqs_cap; i++) {
        if (t->reqs[i].used && t->reqs[i].id == id) {
            return i;
        }
    }
    return SFTP_NONE;
}

static size_t req_slot(struct sftp_tracker *t)
{
    struct sftp_req *p;
    size_t i, ncap;

    for (i = 0; i < t->reqs_cap; i++) {
        if (!t->reqs[i].used) {
            return i;
        }
    }
    if (t->reqs_cap < SFTP_REQUESTS_MAX) {
        ncap = t->reqs_cap == 0 ? SFTP_TABLE_START : t->reqs_cap * 2;
        if (ncap > SFTP_REQUESTS_MAX) {
            ncap = SFTP_REQUESTS_MAX;
        }
        if ((p = realloc(t->reqs, ncap * sizeof(*p))) != NULL) {
            memset(p + t->reqs_cap, 0, (ncap - t->reqs_cap) * sizeof(*p));
            t->reqs = p;
            i = t->reqs_cap;
            t->reqs_cap = ncap;
            return i;
        }
    }
    if ((i = req_oldest(t)) != SFTP_NONE) {
        req_drop(t, i);
    }
    return i;
}

/* Files request r (its paths are taken over, or freed on failure). */
static void req_add(struct sftp_tracker *t, struct sftp_req *r)
{
    size_t i;

    /* A client reusing an id gave up on the first request. */
    if ((i = req_find(t, r->id)) != SFTP_NONE) {
        req_drop(t, i);
    }
    while (t->req_bytes + r->path_bytes > SFTP_REQUEST_PATH_BYTES &&
           (i = req_oldest(t)) != SFTP_NONE) {
        req_drop(t, i);
    }
    if ((i = req_slot(t)) == SFTP_NONE) {
        free(r->path);
        free(r->path2);
        return;
    }
    t->reqs[i] = *r;
    t->reqs[i].used = true;
    t->reqs[i].age = ++t->clock;
    t->req_bytes += r->path_bytes;
}

/* --- packets --------------------------------------------------------------
 */

/* One path (or two, for a rename) into r. */
static int parse_paths(struct buf *b, struct sftp_req *r, bool two)
{
    const uint8_t *p = NULL, *q = NULL;
    size_t n = 0, m = 0;
    int err;

    if ((err = buf_get_string_ptr(b, SFTP_PACKET_MAX, &p, &n)) != ERR_OK) {
        return err;
    }
    if (two &&
        (err = buf_get_string_ptr(b, SFTP_PACKET_MAX, &q, &m)) != ERR_OK) {
        return err;
    }
    if ((r->path = path_dup(p, n, &r->trunc)) == NULL) {
        return ERR_NOMEM;
    }
    r->path_bytes = strlen(r->path) + 1;
    if (two) {
        if ((r->path2 = path_dup(q, m, &r->trunc)) == NULL) {
            free(r->path);
            r->path = NULL;
            return ERR_NOMEM;
        }
        r->path_bytes += strlen(r->path2) + 1;
    }
    return ERR_OK;
}

/* A path-carrying request: id, then its path or paths. */
static int parse_path_req(struct buf *b, struct sftp_req *r, bool two)
{
    int err;

    if ((err = buf_get_u32(b, &r->id)) != ERR_OK) {
        return err;
    }
    return parse_paths(b, r, two);
}

/* Requests that name a handle: id and the handle's slot. */
static int parse_handle_req(struct sftp_tracker *t, struct buf *b,
                            struct sftp_req *r, size_t *slot)
{
    const uint8_t *h = NULL;
    size_t hlen = 0;
    int err;

    *slot = SFTP_NONE;
    if ((err = buf_get_u32(b, &r->id)) != ERR_OK ||
        (err = buf_get_string_ptr(b, SFTP_HANDLE_LEN_MAX, &h, &hlen)) !=
            ERR_OK) {
        return err;
    }
    *slot = handle_find(t, h, hlen);
    if (*slot != SFTP_NONE) {
        r->slot = *slot;
        r->gen = t->handles[*slot].gen;
        t->handles[*slot].last_use = ++t->clock;
    }
    return ERR_OK;
}

static int on_write(struct sftp_tracker *t, struct buf *b, size_t want,
                    uint32_t payload)
{
    struct sftp_req r;
    struct sftp_event ev;
    uint64_t offset = 0;
    uint32_t len = 0;
    size_t slot;
    int err;

    memset(&r, 0, sizeof(r));
    if ((err = parse_handle_req(t, b, &r, &slot)) != ERR_OK ||
        (err = buf_get_u64(b, &offset)) != ERR_OK ||
        (err = buf_get_u32(b, &len)) != ERR_OK) {
        return err;
    }
    /* The data is the rest of the packet, exactly. */
    if ((uint64_t)(want - buf_avail(b)) + len != payload) {
        return ERR_PROTO;
    }
    t->stats.bytes_written += len;
    ev_init(&ev, SFTP_WRITE);
    if (slot != SFTP_NONE) {
        t->handles[slot].bytes_written += len;
        ev_handle(&ev, &t->handles[slot]);
    }
    ev.offset = offset;
    ev.bytes = len;
    emit(t, &ev);
    return ERR_OK;
}

static int on_request(struct sftp_tracker *t, uint8_t type, struct buf *b,
                      size_t want, uint32_t payload)
{
    const uint8_t *name = NULL;
    struct sftp_req r;
    size_t slot, n = 0;
    uint32_t u = 0;
    int err;

    memset(&r, 0, sizeof(r));
    r.type = type;
    switch (type) {
    case FXP_INIT:
        return buf_get_u32(b, &u);
    case FXP_OPEN:
        if ((err = parse_path_req(b, &r, false)) != ERR_OK) {
            return err;
        }
        /* ATTRS follow; what matters is the flags. */
        if ((err = buf_get_u32(b, &r.pflags)) != ERR_OK) {
            free(r.path);
            return err;
        }
        break;
    case FXP_REMOVE:
    case FXP_MKDIR:
    case FXP_RMDIR:
    case FXP_SETSTAT:
        if ((err = parse_path_req(b, &r, false)) != ERR_OK) {
            return err;
        }
        break;
    case FXP_RENAME:
        if ((err = parse_path_req(b, &r, true)) != ERR_OK) {
            return err;
        }
        break;
    case FXP_EXTENDED:
        if ((err = buf_get_u32(b, &r.id)) != ERR_OK ||
            (err = buf_get_string_ptr(b, SFTP_EXT_NAME_MAX, &name, &n)) !=
                ERR_OK) {
            return err;
        }
        if (n != strlen("posix-rename@openssh.com") ||
            memcmp(name, "posix-rename@openssh.com", n) != 0) {
            return ERR_OK; /* other extensions change no file we follow */
        }
        r.type = FXP_RENAME;
        if ((err = parse_paths(b, &r, true)) != ERR_OK) {
            return err;
        }
        break;
    case FXP_READ:
        /* Kept even for an unknown handle: its DATA still counts. */
        if ((err = parse_handle_req(t, b, &r, &slot)) != ERR_OK ||
            (err = buf_get_u64(b, &r.offset)) != ERR_OK ||
            (err = buf_get_u32(b, &u)) != ERR_OK) {
            return err;
        }
        break;
    case FXP_CLOSE:
    case FXP_FSETSTAT:
        if ((err = parse_handle_req(t, b, &r, &slot)) != ERR_OK) {
            return err;
        }
        if (slot == SFTP_NONE) {
            return ERR_OK; /* a directory handle, or one never seen */
        }
        if (type == FXP_CLOSE) {
            t->handles[slot].closing = true;
        }
        break;
    case FXP_WRITE:
        return on_write(t, b, want, payload);
    default:
        return ERR_OK;
    }
    req_add(t, &r);
    return ERR_OK;
}

static int on_reply(struct sftp_tracker *t, uint8_t type, struct buf *b,
                    uint32_t payload)
{
    struct sftp_handle *h;
    struct sftp_event ev;
    const uint8_t *hb = NULL;
    uint32_t id = 0, u = 0;
    size_t i, hlen = 0;
    int err;

    if (type != FXP_STATUS && type != FXP_HANDLE && type != FXP_DATA) {
        return ERR_OK; /* NAME, ATTRS, ...: nothing to record */
    }
    if ((err = buf_get_u32(b, &id)) != ERR_OK) {
        return err;
    }
    switch (type) {
    case FXP_STATUS:
        if ((err = buf_get_u32(b, &u)) != ERR_OK) {
            return err;
        }
        if ((i = req_find(t, id)) != SFTP_NONE) {
            req_answer(t, &t->reqs[i], u > 0x7fffffff ? 0x7fffffff : (int)u);
            req_clear(t, &t->reqs[i]);
        }
        return ERR_OK;
    case FXP_HANDLE:
        if ((err = buf_get_string_ptr(b, SFTP_HANDLE_LEN_MAX, &hb, &hlen)) !=
            ERR_OK) {
            return err;
        }
        if ((i = req_find(t, id)) == SFTP_NONE) {
            return ERR_OK; /* OPENDIR's handle */
        }
        if (t->reqs[i].type == FXP_OPEN) {
            req_answer(t, &t->reqs[i], 0);
            handle_add(t, hb, hlen, &t->reqs[i]);
        }
        req_clear(t, &t->reqs[i]);
        return ERR_OK;
    case FXP_DATA:
        if ((err = buf_get_u32(b, &u)) != ERR_OK) {
            return err;
        }
        if ((uint64_t)u + SFTP_REPLY_HEAD > payload) {
            return ERR_PROTO;
        }
        t->stats.bytes_read += u;
        if ((i = req_find(t, id)) == SFTP_NONE || t->reqs[i].type != FXP_READ) {
            return ERR_OK;
        }
        ev_init(&ev, SFTP_READ);
        if ((h = handle_of(t, &t->reqs[i])) != NULL) {
            h->bytes_read += u;
            h->last_use = ++t->clock;
            ev_handle(&ev, h);
        }
        ev.offset = t->reqs[i].offset;
        ev.bytes = u;
        req_clear(t, &t->reqs[i]);
        emit(t, &ev);
        return ERR_OK;
    default:
        return ERR_OK;
    }
}

/* How much of a packet's payload to collect before parsing it. */
static size_t sftp_want(bool from_client, uint8_t type, uint32_t payload)
{
    size_t cap;

    if (from_client) {
        switch (type) {
        case FXP_INIT:
            cap = 4;
            break;
        case FXP_READ:
        case FXP_WRITE:
            cap = SFTP_IO_HEAD;
            break;
        case FXP_OPEN:
        case FXP_CLOSE:
        case FXP_SETSTAT:
        case FXP_FSETSTAT:
        case FXP_REMOVE:
        case FXP_MKDIR:
        case FXP_RMDIR:
        case FXP_RENAME:
        case FXP_EXTENDED:
            /* Whole, or not at all. */
            return payload <= SFTP_PACKET_MAX ? payload : 0;
        default:
            return 0;
        }
    } else {
        switch (type) {
        case FXP_VERSION:
            cap = 4;
            break;
        case FXP_STATUS:
        case FXP_DATA:
            cap = SFTP_REPLY_HEAD;
            break;
        case FXP_HANDLE:
            cap = 4 + 4 + SFTP_HANDLE_LEN_MAX;
            break;
        default:
            return 0;
        }
    }
    return payload < cap ? payload : cap;
}

static bool sftp_known(bool from_client, uint8_t type)
{
    if (from_client) {
        return type == FXP_INIT || (type >= FXP_OPEN && type <= FXP_SYMLINK) ||
               type == FXP_EXTENDED;
    }
    return type == FXP_VERSION || (type >= FXP_STATUS && type <= FXP_ATTRS) ||
           type == FXP_EXTENDED_REPLY;
}

static void sftp_stop(struct sftp_tracker *t, const char *why)
{
    struct sftp_event ev;

    t->stats.stopped = true;
    for (int d = 0; d < 2; d++) {
        buf_free(t->dir[d].pkt);
        t->dir[d].pkt = NULL;
    }
    ev_init(&ev, SFTP_UNPARSED);
    ev.note = why;
    emit(t, &ev);
}

/* One whole packet's head is known: check it and plan its payload. */
static void sftp_head(struct sftp_tracker *t, bool from_client,
                      struct sftp_stream *s)
{
    uint32_t len = 0;
    uint8_t type = 0;

    if (buf_get_u32(s->pkt, &len) != ERR_OK ||
        buf_get_u8(s->pkt, &type) != ERR_OK) {
        sftp_stop(t, "internal framing error");
        return;
    }
    buf_reset(s->pkt);
    if (len == 0 || len > SFTP_FRAME_MAX) {
        sftp_stop(t, "packet length out of range: not an SFTP stream");
        return;
    }
    if (!s->started) {
        if (type != (from_client ? FXP_INIT : FXP_VERSION)) {
            sftp_stop(t, from_client ? "client did not start with INIT"
                                     : "server did not start with VERSION");
            return;
        }
        s->started = true;
    }
    s->type = type;
    s->payload = len - 1;
    s->want = sftp_want(from_client, type, s->payload);
    s->skip = (uint64_t)s->payload - s->want;
    s->state = ST_BODY;
    t->stats.packets++;
}

/* The wanted part of the payload is in s->pkt. */
static void sftp_packet(struct sftp_tracker *t, bool from_client,
                        struct sftp_stream *s)
{
    uint32_t version = 0;
    int err = ERR_OK;

    if (!sftp_known(from_client, s->type)) {
        t->stats.skipped++;
    } else if (s->want == 0 && s->payload > 0 &&
               sftp_want(from_client, s->type, 1) > 0) {
        t->stats.skipped++; /* too large to look at */
    } else if (!from_client && s->type == FXP_VERSION) {
        if (buf_get_u32(s->pkt, &version) != ERR_OK ||
            version != SFTP_VERSION) {
            sftp_stop(t, "SFTP version other than 3");
            return;
        }
    } else if (from_client) {
        err = on_request(t, s->type, s->pkt, s->want, s->payload);
    } else {
        err = on_reply(t, s->type, s->pkt, s->payload);
    }
    if (err != ERR_OK) {
        t->stats.skipped++;
    }
    buf_reset(s->pkt);
    s->state = s->skip > 0 ? ST_SKIP : ST_HEAD;
}

void sftp_tracker_feed(struct sftp_tracker *t, bool from_client,
                       const uint8_t *p, size_t n)
{
    struct sftp_stream *s;
    size_t take;

    if (t == NULL || t->stats.stopped || p == NULL) {
        return;
    }
    s = &t->dir[from_client ? 1 : 0];
    while (n > 0 && !t->stats.stopped) {
        switch (s->state) {
        case ST_HEAD:
            take = SFTP_HEAD_LEN - buf_avail(s->pkt);
            take = take < n ? take : n;
            if (buf_put(s->pkt, p, take) != ERR_OK) {
                sftp_stop(t, "out of memory");
                return;
            }
            if (buf_avail(s->pkt) == SFTP_HEAD_LEN) {
                sftp_head(t, from_client, s);
                if (!t->stats.stopped && s->want == 0) {
                    sftp_packet(t, from_client, s);
                }
            }
            break;
        case ST_BODY:
            take = s->want - buf_avail(s->pkt);
            take = take < n ? take : n;
            if (buf_put(s->pkt, p, take) != ERR_OK) {
                sftp_stop(t, "out of memory");
                return;
            }
            if (buf_avail(s->pkt) == s->want) {
                sftp_packet(t, from_client, s);
            }
            break;
        case ST_SKIP:
        default:
            take = s->skip < n ? (size_t)s->skip : n;
            s->skip -= take;
            if (s->skip == 0) {
                s->state = ST_HEAD;
            }
            break;
        }
        p += take;
        n -= take;
    }
}

struct sftp_tracker *sftp_tracker_new(sftp_event_fn fn, void *arg)
{
    struct sftp_tracker *t = calloc(1, sizeof(*t));

    if (t == NULL) {
        return NULL;
    }
    t->fn = fn;
    t->arg = arg;
    for (int d = 0; d < 2; d++) {
        if ((t->dir[d].pkt = buf_new(SFTP_PACKET_MAX)) == NULL) {
            sftp_tracker_free(t);
            return NULL;
        }
    }
    return t;
}

void sftp_tracker_finish(struct sftp_tracker *t)
{
    size_t i;

    if (t == NULL) {
        return;
    }
    /* Oldest first, so the record keeps the order they were made in. */
    while ((i = req_oldest(t)) != SFTP_NONE) {
        req_drop(t, i);
    }
    for (i = 0; i < t->handles_cap; i++) {
        if (t->handles[i].used) {
            handle_drop(t, i, t->handles[i].closing ? "closed" : "not closed",
                        -1);
        }
    }
}

void sftp_tracker_stats(const struct sftp_tracker *t, struct sftp_stats *out)
{
    if (t == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = t->stats;
}

void sftp_tracker_free(struct sftp_tracker *t)
{
    size_t i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < t->reqs_cap; i++) {
        free(t->reqs[i].path);
        free(t->reqs[i].path2);
    }
    for (i = 0; i < t->handles_cap; i++) {
        free(t->handles[i].path);
    }
    free(t->reqs);
    free(t->handles);
    for (int d = 0; d < 2; d++) {
        buf_free(t->dir[d].pkt);
    }
    free(t);
}
