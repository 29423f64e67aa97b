/*
 * Legacy scp protocol tracker; see scp.h.
 */
#include "record/scp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum scp_state {
    SCP_LINE = 0, /* reading a control line */
    SCP_DATA,     /* skipping a file's bytes */
    SCP_DATA_END, /* the \0 after a file */
    SCP_DEAD,     /* lost: no more tracking */
};

struct scp_tracker {
    scp_event_fn fn;
    void *arg;
    bool upload; /* control lines come from the client */
    enum scp_state state;
    char line[SCP_LINE_MAX + 1];
    size_t linelen;
    uint64_t left; /* data bytes still to skip */
    uint64_t size; /* size of the current file */
    char path[SCP_LINE_MAX + 1];
    size_t dirlen[SCP_DEPTH_MAX]; /* path length before each D */
    int depth;
    char base[SCP_LINE_MAX + 1]; /* the command's target path */
};

struct scp_tracker *scp_tracker_new(const char *command, scp_event_fn fn,
                                    void *arg)
{
    struct scp_tracker *t;
    const char *p;
    bool upload = false, download = false;

    if (command == NULL || strncmp(command, "scp ", 4) != 0) {
        return NULL;
    }
    /* Options come first; the last word is the target path. */
    for (p = command + 3; *p != '\0';) {
        while (*p == ' ') {
            p++;
        }
        if (p[0] == '-' && p[1] != '\0' && p[1] != '-') {
            for (const char *q = p + 1; *q != '\0' && *q != ' '; q++) {
                upload |= *q == 't';
                download |= *q == 'f';
            }
            while (*p != '\0' && *p != ' ') {
                p++;
            }
            continue;
        }
        if (p[0] == '-' && p[1] == '-' && (p[2] == ' ' || p[2] == '\0')) {
            p += 2;
            while (*p == ' ') {
                p++;
            }
        }
        break;
    }
    if (upload == download) {
        return NULL;
    }
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        return NULL;
    }
    t->fn = fn;
    t->arg = arg;
    t->upload = upload;
    snprintf(t->base, sizeof(t->base), "%s", *p ? p : ".");
    return t;
}

void scp_tracker_free(struct scp_tracker *t)
{
    free(t);
}

static void scp_lost(struct scp_tracker *t)
{
    t->state = SCP_DEAD;
    t->fn("unparsed", t->base, 0, t->arg);
}

/* Parses "<mode> <size> <name>" after the C or D. */
static bool scp_parse_entry(const char *s, uint64_t *size, const char **name)
{
    char *end = NULL;
    unsigned long long v;

    for (int i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '7') {
            return false;
        }
    }
    if (s[4] != ' ' || s[5] < '0' || s[5] > '9') {
        return false;
    }
    v = strtoull(s + 5, &end, 10);
    if (end == NULL || *end != ' ' || end[1] == '\0') {
        return false;
    }
    *size = v;
    *name = end + 1;
    /* A name is one path component: no '/', not "." or "..". */
    return strchr(*name, '/') == NULL && strcmp(*name, ".") != 0 &&
           strcmp(*name, "..") != 0;
}

/* out = path/name; false if it would not fit. */
static bool scp_join(const struct scp_tracker *t, const char *name, char *out,
                     size_t outlen)
{
    size_t a = strlen(t->path), b = strlen(name);

    if (a + 1 + b + 1 > outlen) {
        return false;
    }
    if (a > 0) {
        memcpy(out, t->path, a);
        out[a++] = '/';
    }
    memcpy(out + a, name, b + 1);
    return true;
}

static void scp_line(struct scp_tracker *t)
{
    char full[SCP_LINE_MAX + 1];
    const char *name = NULL;
    uint64_t size = 0;

    switch (t->line[0]) {
    case 'C':
        if (!scp_parse_entry(t->line + 1, &size, &name) ||
            !scp_join(t, name, full, sizeof(full))) {
            scp_lost(t);
            return;
        }
        t->fn(t->upload ? "upload" : "download", full, size, t->arg);
        t->size = size;
        t->left = size;
        t->state = size > 0 ? SCP_DATA : SCP_DATA_END;
        return;
    case 'D':
        if (!scp_parse_entry(t->line + 1, &size, &name) ||
            t->depth >= SCP_DEPTH_MAX ||
            !scp_join(t, name, full, sizeof(full))) {
            scp_lost(t);
            return;
        }
        t->fn("mkdir", full, 0, t->arg);
        t->dirlen[t->depth++] = strlen(t->path);
        memcpy(t->path, full, strlen(full) + 1);
        return;
    case 'E':
        if (t->depth == 0) {
            scp_lost(t);
            return;
        }
        t->path[t->dirlen[--t->depth]] = '\0';
        return;
    case 'T':
    case 'W':
        return;
    default:
        scp_lost(t);
        return;
    }
}

void scp_tracker_feed(struct scp_tracker *t, bool from_client, const uint8_t *p,
                      size_t n)
{
    size_t i = 0;

    if (t == NULL || t->state == SCP_DEAD) {
        return;
    }
    /* Only the sending side's stream carries control lines and data; the
     * other side sends acknowledgements, which we need not follow. */
    if (from_client != t->upload) {
        return;
    }
    while (i < n && t->state != SCP_DEAD) {
        switch (t->state) {
        case SCP_LINE:
            if (p[i] == '\n') {
                t->line[t->linelen] = '\0';
                t->linelen = 0;
                i++;
                if (memchr(t->line, '\0', strlen(t->line)) != NULL) {
                    scp_lost(t);
                    return;
                }
                scp_line(t);
                continue;
            }
            if (t->linelen == 0 && (p[i] == 1 || p[i] == 2)) {
                /* A warning or error from the sender: skip its line. */
                t->line[t->linelen++] = 'W';
                i++;
                continue;
            }
            if (p[i] == '\0' || t->linelen >= SCP_LINE_MAX) {
                scp_lost(t);
                return;
            }
            t->line[t->linelen++] = (char)p[i++];
            break;
        case SCP_DATA: {
            size_t k = n - i;

            if ((uint64_t)k > t->left) {
                k = (size_t)t->left;
            }
            t->left -= k;
            i += k;
            if (t->left == 0) {
                t->state = SCP_DATA_END;
            }
            break;
        }
        case SCP_DATA_END:
            if (p[i] != '\0') {
                scp_lost(t);
                return;
            }
            i++;
            t->state = SCP_LINE;
            break;
        default:
            return;
        }
    }
}
