/*
 * The exec command of a legacy scp session, read strictly; see scpcmd.h.
 *
 * Why a tokenizer of our own and not "starts with scp": the client's
 * string goes to the target's shell, so anything the shell would read
 * differently from us (a `;`, a `$(...)`, a second word) could run a
 * command under a profile that allows only scp. So this reads the
 * command the way a POSIX shell splits words, accepts only the small
 * part of the shell language scp users need for a path, refuses the rest
 * and lets the caller send the canonical form it rebuilds, never the
 * original. A byte we cannot account for makes the command "not scp".
 */
#include "sshproxy/scpcmd.h"

#include <stdbool.h>
#include <string.h>

#include "common/err.h"

/* One shell word: its value after quote removal, and which of its bytes
 * the shell would still expand (unquoted glob characters, a leading ~). */
struct scpcmd_word {
    size_t len;
    bool any_live;
    char s[SCPCMD_PATH_MAX + 1];
    uint8_t live[SCPCMD_PATH_MAX];
};

static bool scpcmd_ctrl(unsigned char c)
{
    return c < 0x20 || c == 0x7f;
}

/* Characters with no meaning to sh or bash anywhere in a word. Bytes of
 * UTF-8 names (>= 0x80) are ordinary word characters to both. */
static bool scpcmd_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '/' || c == '.' || c == '_' ||
           c == '-' || c == '+' || c == ',' || c == ':' || c == '@' ||
           c == '%' || c == '=' || c >= 0x80;
}

static bool scpcmd_glob(unsigned char c)
{
    return c == '*' || c == '?' || c == '[' || c == ']';
}

static int scpcmd_push(struct scpcmd_word *w, char c, bool live)
{
    if (w->len >= SCPCMD_PATH_MAX) {
        return ERR_TOO_LONG;
    }
    w->s[w->len] = c;
    w->live[w->len] = live ? 1 : 0;
    w->len++;
    w->s[w->len] = '\0';
    w->any_live |= live;
    return ERR_OK;
}

/* '...' starting at p[*i]: everything up to the next ' is literal. */
static int scpcmd_single(const char *p, size_t n, size_t *i,
                         struct scpcmd_word *w)
{
    size_t j = *i + 1;
    int r;

    for (; j < n && p[j] != '\''; j++) {
        if (scpcmd_ctrl((unsigned char)p[j])) {
            return ERR_INVALID;
        }
        if ((r = scpcmd_push(w, p[j], false)) != ERR_OK) {
            return r;
        }
    }
    if (j >= n) {
        return ERR_INVALID; /* unterminated */
    }
    *i = j + 1;
    return ERR_OK;
}

/* "..." starting at p[*i]: no expansions allowed inside ($ and backquote
 * refused); a backslash quotes only $ ` " \ and is literal before any
 * other character, as in sh. */
static int scpcmd_double(const char *p, size_t n, size_t *i,
                         struct scpcmd_word *w)
{
    size_t j = *i + 1;
    int r;

    for (;;) {
        unsigned char c;

        if (j >= n) {
            return ERR_INVALID; /* unterminated */
        }
        c = (unsigned char)p[j];
        if (c == '"') {
            break;
        }
        if (scpcmd_ctrl(c) || c == '$' || c == '`') {
            return ERR_INVALID;
        }
        if (c == '\\' && j + 1 < n &&
            (p[j + 1] == '$' || p[j + 1] == '`' || p[j + 1] == '"' ||
             p[j + 1] == '\\')) {
            j++;
            c = (unsigned char)p[j];
        }
        if ((r = scpcmd_push(w, (char)c, false)) != ERR_OK) {
            return r;
        }
        j++;
    }
    *i = j + 1;
    return ERR_OK;
}

/* Reads one word starting at p[*pos], up to an unquoted space or the end. */
static int scpcmd_word(const char *p, size_t n, size_t *pos,
                       struct scpcmd_word *w)
{
    size_t i = *pos, start = *pos;
    int r = ERR_OK;

    w->len = 0;
    w->any_live = false;
    w->s[0] = '\0';
    while (i < n && p[i] != ' ' && r == ERR_OK) {
        unsigned char c = (unsigned char)p[i];

        if (scpcmd_ctrl(c)) {
            return ERR_INVALID;
        }
        if (scpcmd_plain(c)) {
            r = scpcmd_push(w, (char)c, false);
            i++;
        } else if (scpcmd_glob(c)) {
            r = scpcmd_push(w, (char)c, true);
            i++;
        } else if (c == '~' && i == start &&
                   (i + 1 == n || p[i + 1] == '/' || p[i + 1] == ' ')) {
            /* Only the user's own home: not ~user, not ~ mid-word (bash
             * expands ~ after = and : in some words). */
            r = scpcmd_push(w, '~', true);
            i++;
        } else if (c == '\\') {
            if (i + 1 >= n || scpcmd_ctrl((unsigned char)p[i + 1])) {
                return ERR_INVALID;
            }
            r = scpcmd_push(w, p[i + 1], false);
            i += 2;
        } else if (c == '\'') {
            r = scpcmd_single(p, n, &i, w);
        } else if (c == '"') {
            r = scpcmd_double(p, n, &i, w);
        } else {
            return ERR_INVALID; /* ; | & $ ` < > ( ) { } # ! ^ and the like */
        }
    }
    *pos = i;
    return r;
}

/* The letters of an option word such as "-rp" or "-t". */
static int scpcmd_options(const struct scpcmd_word *w, struct scpcmd *out)
{
    if (w->len < 2 || w->any_live) {
        return ERR_INVALID;
    }
    for (size_t k = 1; k < w->len; k++) {
        switch (w->s[k]) {
        case 'v':
            out->flags |= SCPCMD_VERBOSE;
            break;
        case 'r':
            out->flags |= SCPCMD_RECURSIVE;
            break;
        case 'p':
            out->flags |= SCPCMD_PRESERVE;
            break;
        case 'd':
            out->flags |= SCPCMD_DIR;
            break;
        case 'q':
            out->flags |= SCPCMD_QUIET;
            break;
        case 't':
        case 'f':
            if (out->mode != 0 && out->mode != w->s[k]) {
                return ERR_INVALID; /* both -t and -f */
            }
            out->mode = w->s[k];
            break;
        default:
            return ERR_INVALID; /* -S, -o, -P, ...: not what scp sends */
        }
    }
    return ERR_OK;
}

static int scpcmd_parse_words(const char *cmd, size_t len, struct scpcmd *out,
                              struct scpcmd_word *w)
{
    size_t pos;
    bool options = true, have_path = false;
    int r;

    /* The program is the three bytes scp sends, unquoted: a shell would
     * also run `""scp` or `'scp'`, but no scp client writes that. */
    if (len < 4 || memcmp(cmd, "scp ", 4) != 0) {
        return ERR_INVALID;
    }
    pos = 3;
    while (pos < len) {
        while (pos < len && cmd[pos] == ' ') {
            pos++;
        }
        if (pos == len) {
            return ERR_INVALID; /* trailing blanks */
        }
        if ((r = scpcmd_word(cmd, len, &pos, w)) != ERR_OK) {
            return r;
        }
        if (options && w->len > 0 && w->s[0] == '-') {
            if (w->len == 2 && w->s[1] == '-' && !w->any_live) {
                options = false;
                continue;
            }
            if ((r = scpcmd_options(w, out)) != ERR_OK) {
                return r;
            }
            continue;
        }
        if (have_path || w->len == 0) {
            return ERR_INVALID; /* a second path, or an empty one */
        }
        memcpy(out->path, w->s, w->len + 1);
        memcpy(out->live, w->live, w->len);
        out->path_len = w->len;
        have_path = true;
        options = false;
    }
    if (!have_path || out->mode == 0) {
        return ERR_INVALID;
    }
    if (out->mode == SCPCMD_TO) {
        /* Uploads name one target: no glob (the leading ~ may stay). */
        for (size_t i = 0; i < out->path_len; i++) {
            if (out->live[i] && out->path[i] != '~') {
                return ERR_INVALID;
            }
        }
    }
    return ERR_OK;
}

int scpcmd_parse(const char *cmd, size_t len, struct scpcmd *out)
{
    struct scpcmd_word w;
    int r;

    memset(out, 0, sizeof(*out));
    if (cmd == NULL) {
        return ERR_INVALID;
    }
    if (len > SCPCMD_CMD_MAX) {
        return ERR_TOO_LONG;
    }
    r = scpcmd_parse_words(cmd, len, out, &w);
    if (r != ERR_OK) {
        memset(out, 0, sizeof(*out));
    }
    return r;
}

/* --- the canonical command --- */

struct scpcmd_out {
    char *p;
    size_t cap, len;
    bool ok;
};

static void scpcmd_put(struct scpcmd_out *o, const char *s, size_t n)
{
    if (!o->ok || n >= o->cap - o->len) {
        o->ok = false;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void scpcmd_puts(struct scpcmd_out *o, const char *s)
{
    scpcmd_put(o, s, strlen(s));
}

/* Literal bytes: bare if none means anything to a shell, else in single
 * quotes (a ' itself as '\''). */
static void scpcmd_put_literal(struct scpcmd_out *o, const char *s, size_t n)
{
    bool plain = true;

    for (size_t i = 0; i < n; i++) {
        plain &= scpcmd_plain((unsigned char)s[i]);
    }
    if (plain) {
        scpcmd_put(o, s, n);
        return;
    }
    scpcmd_put(o, "'", 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'') {
            scpcmd_put(o, "'\\''", 4);
        } else {
            scpcmd_put(o, s + i, 1);
        }
    }
    scpcmd_put(o, "'", 1);
}

size_t scpcmd_format(const struct scpcmd *c, char *out, size_t outlen)
{
    static const struct {
        unsigned flag;
        const char *text;
    } flags[] = {{SCPCMD_VERBOSE, " -v"},
                 {SCPCMD_RECURSIVE, " -r"},
                 {SCPCMD_PRESERVE, " -p"},
                 {SCPCMD_DIR, " -d"},
                 {SCPCMD_QUIET, " -q"}};
    struct scpcmd_out o = {out, outlen, 0, outlen > 0};
    size_t i = 0;

    if (outlen == 0) {
        return 0;
    }
    out[0] = '\0';
    if ((c->mode != SCPCMD_TO && c->mode != SCPCMD_FROM) || c->path_len == 0 ||
        c->path_len > SCPCMD_PATH_MAX) {
        return 0;
    }
    scpcmd_puts(&o, "scp");
    for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
        if (c->flags & flags[k].flag) {
            scpcmd_puts(&o, flags[k].text);
        }
    }
    scpcmd_puts(&o, c->mode == SCPCMD_TO ? " -t" : " -f");
    /* A path that starts with '-', or with a glob that may expand to a
     * name starting with '-', must not be read as an option. */
    if (c->path[0] == '-' || (c->live[0] && c->path[0] != '~')) {
        scpcmd_puts(&o, " --");
    }
    scpcmd_puts(&o, " ");
    if (c->live[0] && c->path[0] == '~') {
        /* The shell expands ~ only before an unquoted '/' (or alone):
         * `~'/a b'` would be the literal name "~/a b". */
        i = c->path_len > 1 && c->path[1] == '/' ? 2 : 1;
        scpcmd_put(&o, c->path, i);
    }
    while (i < c->path_len) {
        size_t j = i;

        if (c->live[i]) {
            scpcmd_put(&o, c->path + i, 1);
            i++;
            continue;
        }
        while (j < c->path_len && !c->live[j]) {
            j++;
        }
        scpcmd_put_literal(&o, c->path + i, j - i);
        i = j;
    }
    if (!o.ok) {
        out[0] = '\0';
        return 0;
    }
    return o.len;
}
