/*
 * Pairing (docs/agent.md, "Install by pairing"; docs/security.md,
 * "Pairing codes"): a one-time code, kept only in this process's memory,
 * that a new machine trades for an installer of the agent.
 *
 *   POST /api/v1/pairing (or `portcullis agent pair`, which asks this
 *   process through DATA/run/ask.sock, common/notify.h) makes a code:
 *   PAIR_CODE_CHARS base32 characters (60 bits) that live [pairing]
 *   code_seconds (600), with the tags, name and credential it installs.
 *
 *   GET /pair/CODE uses it: the answer is a POSIX sh installer holding the
 *   server's URL (as the machine reached us: the Host header), the pinned
 *   SSH host key fingerprint, the TLS key pin (https), the credential
 *   (made now, unless the code names one, whose secret it then holds) and
 *   the SHA-256 of the static agent. ?os=windows answers a PowerShell
 *   script that says there is no Windows agent yet, and leaves the code
 *   unused.
 *
 *   GET /pair/CODE/agent then serves the static agent itself, a few times
 *   within the code's life, only after the installer was served.
 *
 * Against guessing: the code space is 2^60; codes are compared in
 * constant time; every failed lookup (unknown, used or expired) counts
 * against its source address (PAIR_SRC_FAILS in PAIR_SRC_WINDOW) and
 * against everyone (PAIR_ALL_FAILS per PAIR_ALL_WINDOW), and past either
 * limit every lookup (good codes too, or the limit would still let a
 * guess through) answers 429. Error answers are shell scripts that print
 * the reason and exit 1, so `curl ... | sh` shows it; they hold nothing
 * else.
 *
 * Ownership: struct http_pairs belongs to struct http (http_pairs_free);
 * secrets in it are wiped when a code is used up, expires or is freed.
 */
#include "http/http_internal.h"
#include "http/http_pair.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "admin/admin.h"
#include "common/err.h"
#include "common/hostkey.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/secret.h"
#include "common/util.h"
#include "store/audit.h"
#include "store/store_worker.h"

#define PAIR_CODE_CHARS 12 /* base32: 60 bits */
#define PAIR_MAX 64        /* codes alive at once */
#define PAIR_TAGS_MAX 16
#define PAIR_TAG_MAX 64
#define PAIR_NAME_MAX 128
#define PAIR_DOWNLOADS 3 /* agent downloads per used code */
#define PAIR_SRCS 256    /* sources remembered for the rate limit */
#define PAIR_SRC_FAILS 10
#define PAIR_SRC_WINDOW 600
#define PAIR_ALL_FAILS 100
#define PAIR_ALL_WINDOW 60
#define PAIR_AGENT_MAX (64 * 1024 * 1024)
/* Questions of `portcullis agent pair` waiting for their store work off
 * the loop (a named credential's read); more are refused at once. */
#define PAIR_ASK_WAITING 4
#define PAIR_ASK_DEADLINE_MS 3000 /* [store] statement_deadline_ms unset */

static const char pair_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

struct pair_code {
    bool live;
    bool used; /* the installer was served */
    char code[PAIR_CODE_CHARS + 1];
    int64_t expires;
    int downloads;
    char tags[PAIR_TAGS_MAX][PAIR_TAG_MAX + 1];
    size_t ntags;
    char name[PAIR_NAME_MAX + 1];
    char actor[STORE_NAME_MAX + 1];
    char cred_id[STORE_ID_MAX + 1]; /* "" : make one when used */
    char cred_secret[SECRET_CHARS + 1];
};

struct pair_src {
    char ip[64];
    int64_t since;
    int fails;
};

struct pair_ask;

struct http_pairs {
    struct http *h; /* the owner */
    struct pair_code codes[PAIR_MAX];
    struct pair_src srcs[PAIR_SRCS];
    int64_t all_since;
    int all_fails;
    char fingerprint[128]; /* the Ed25519 host key's, agents pin it */
    char tls_pin[128];     /* "sha256//BASE64" of the TLS key, or "" */
    char *tls_ca;          /* the certificate (PEM) if self-signed */
    /* the CLI's questions' credential reads (http_pair_ask), on a
     * connection of their own on a database server; inline on SQLite */
    struct store_worker *w;
    struct http_waiters asks; /* given to w, their done not run yet */
    int deadline_ms;          /* a question is answered by then */
};

static void pair_wipe(struct pair_code *p)
{
    sodium_memzero(p, sizeof(*p));
}

/* The TLS certificate's key pin (curl --pinnedpubkey) and, when it
 * signed itself, its PEM for the agent's `ca`. */
static void pair_load_tls(struct http_pairs *ps, const char *cert)
{
    unsigned char *der = NULL, md[32];
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    FILE *f = fopen(cert, "r");
    X509 *x = NULL;
    BIO *mem = NULL;
    BUF_MEM *bm = NULL;
    int n;

    if (f == NULL) {
        return;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        return;
    }
    n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (n > 0) {
        crypto_hash_sha256(md, der, (unsigned long long)n);
        sodium_bin2base64(b64, sizeof(b64), md, sizeof(md),
                          sodium_base64_VARIANT_ORIGINAL);
        snprintf(ps->tls_pin, sizeof(ps->tls_pin), "sha256//%s", b64);
        OPENSSL_free(der);
    }
    if (X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0 &&
        (mem = BIO_new(BIO_s_mem())) != NULL && PEM_write_bio_X509(mem, x) &&
        BIO_get_mem_ptr(mem, &bm) == 1 && bm->length < 16384) {
        ps->tls_ca = strndup(bm->data, bm->length);
    }
    BIO_free(mem);
    X509_free(x);
}

int http_pairs_new(struct http *h)
{
    struct http_pairs *ps = calloc(1, sizeof(*ps));
    int r;

    if (ps == NULL) {
        return ERR_NOMEM;
    }
    r = hostkey_fingerprint(h->cfg->ssh_host_key, ps->fingerprint,
                            sizeof(ps->fingerprint));
    if (r != ERR_OK) {
        log_warn("pairing: cannot read the SSH host key's fingerprint (%s): "
                 "pairing is off",
                 err_str(r));
        ps->fingerprint[0] = '\0';
    }
    if (h->tls) {
        pair_load_tls(ps, h->cfg->http_tls_cert);
    }
    ps->h = h;
    ps->deadline_ms = h->cfg->store_statement_deadline_ms > 0
                          ? h->cfg->store_statement_deadline_ms
                          : PAIR_ASK_DEADLINE_MS;
    /* connects at its first job, not now */
    ps->w = store_worker_new(h->loop, h->store, h->cfg->store_path, 1,
                             "the pairing questions' store reads", ps);
    if (ps->w == NULL) {
        free(ps->tls_ca);
        free(ps);
        return ERR_NOMEM;
    }
    h->pairs = ps;
    return ERR_OK;
}

static void pair_asks_stop(struct http_pairs *ps);

void http_pairs_free(struct http_pairs *ps)
{
    if (ps == NULL) {
        return;
    }
    pair_asks_stop(ps);
    for (size_t i = 0; i < PAIR_MAX; i++) {
        pair_wipe(&ps->codes[i]);
    }
    free(ps->tls_ca);
    free(ps);
}

static int64_t pair_life(const struct http *h)
{
    return h->cfg->pairing_code_seconds > 0 ? h->cfg->pairing_code_seconds
                                            : 600;
}

/* Drops expired codes. */
static void pair_sweep(struct http_pairs *ps, int64_t now)
{
    for (size_t i = 0; i < PAIR_MAX; i++) {
        if (ps->codes[i].live && now >= ps->codes[i].expires) {
            pair_wipe(&ps->codes[i]);
        }
    }
}

/* A tag or name as pairing takes it: it ends up in a shell script and a
 * config file, so only characters safe in both (http_pair.h). */
bool http_pair_word_ok(const char *s, size_t max, bool space)
{
    size_t n = strlen(s);

    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
              c == ':' || c == '@' || c == '=' || (space && c == ' '))) {
            return false;
        }
    }
    return true;
}

/* Whether pairing is on: the host key's fingerprint was read (it never
 * changes once the API is up). */
static bool pair_on(const struct http *h)
{
    return h->pairs != NULL && h->pairs->fingerprint[0] != '\0';
}

/* What a code asks for, checked: its tags and name, and a credential it
 * names with that credential's secret (a store read, on st: a worker's
 * connection for POST /pairing and the CLI's question on a database
 * server). on: pair_on(), found on the loop. */
static int pair_check(bool on, struct store *st, const json_t *req, char *why,
                      size_t whylen)
{
    struct store_credential cred;
    const char *name = json_string_value(json_object_get(req, "name"));
    const char *cid = json_string_value(json_object_get(req, "credential"));
    const char *sec = json_string_value(json_object_get(req, "secret"));
    json_t *tags = json_object_get(req, "tags"), *v;
    size_t i;
    int r;

    if (!on) {
        snprintf(why, whylen,
                 "pairing is off: the server cannot read its "
                 "SSH host key");
        return ERR_INTERNAL;
    }
    if (tags != NULL && !json_is_array(tags)) {
        snprintf(why, whylen, "tags must be a list");
        return ERR_INVALID;
    }
    if (json_array_size(tags) > PAIR_TAGS_MAX) {
        snprintf(why, whylen, "at most %d tags", PAIR_TAGS_MAX);
        return ERR_INVALID;
    }
    json_array_foreach(tags, i, v)
    {
        if (!json_is_string(v) ||
            !http_pair_word_ok(json_string_value(v), PAIR_TAG_MAX, false)) {
            snprintf(why, whylen,
                     "a tag is 1-%d of A-Z a-z 0-9 . _ - : @ =", PAIR_TAG_MAX);
            return ERR_INVALID;
        }
    }
    if (name != NULL && !http_pair_word_ok(name, PAIR_NAME_MAX, true)) {
        snprintf(why, whylen,
                 "a name is 1-%d of A-Z a-z 0-9 . _ - : @ = and space",
                 PAIR_NAME_MAX);
        return ERR_INVALID;
    }
    if (cid != NULL && cid[0] != '\0') {
        if (sec == NULL || sec[0] == '\0') {
            snprintf(why, whylen,
                     "credential %.64s: its secret is needed "
                     "(the agent logs in with it)",
                     cid);
            return ERR_INVALID;
        }
        if (strlen(sec) > SECRET_CHARS ||
            store_credential_get(st, cid, &cred) != ERR_OK) {
            snprintf(why, whylen, "credential %.64s not found", cid);
            return ERR_NOT_FOUND;
        }
        r = secret_verify(cred.secret_hash, sec);
        sodium_memzero(&cred, sizeof(cred));
        if (r != ERR_OK) {
            snprintf(why, whylen, "credential %.64s: wrong secret", cid);
            return ERR_DENIED;
        }
    }
    return ERR_OK;
}

/* The code for a request pair_check passed, made on the loop (the codes
 * are the loop's: one slot per code, taken here and nowhere else). */
static int pair_make(struct http *h, const json_t *req, const char *actor,
                     char code[PAIR_CODE_BUF], int64_t *expires, char *why,
                     size_t whylen)
{
    struct http_pairs *ps = h->pairs;
    struct pair_code *p = NULL;
    const char *name = json_string_value(json_object_get(req, "name"));
    const char *cid = json_string_value(json_object_get(req, "credential"));
    const char *sec = json_string_value(json_object_get(req, "secret"));
    json_t *tags = json_object_get(req, "tags"), *v;
    unsigned char raw[PAIR_CODE_CHARS];
    int64_t now = util_now();
    size_t i;

    pair_sweep(ps, now);
    for (i = 0; i < PAIR_MAX; i++) {
        if (!ps->codes[i].live) {
            p = &ps->codes[i];
            break;
        }
    }
    if (p == NULL) {
        snprintf(why, whylen,
                 "%d pairing codes are alive already; wait for "
                 "some to be used or expire",
                 PAIR_MAX);
        return ERR_LOCKED;
    }
    randombytes_buf(raw, sizeof(raw));
    for (i = 0; i < PAIR_CODE_CHARS; i++) {
        p->code[i] = pair_alphabet[raw[i] & 31];
    }
    p->code[PAIR_CODE_CHARS] = '\0';
    sodium_memzero(raw, sizeof(raw));
    json_array_foreach(tags, i, v)
    {
        snprintf(p->tags[i], sizeof(p->tags[i]), "%s", json_string_value(v));
    }
    p->ntags = json_array_size(tags);
    snprintf(p->name, sizeof(p->name), "%s", name != NULL ? name : "");
    snprintf(p->actor, sizeof(p->actor), "%s", actor != NULL ? actor : "-");
    if (cid != NULL && cid[0] != '\0') {
        snprintf(p->cred_id, sizeof(p->cred_id), "%s", cid);
        snprintf(p->cred_secret, sizeof(p->cred_secret), "%s", sec);
    }
    p->expires = now + pair_life(h);
    p->live = true;
    memcpy(code, p->code, PAIR_CODE_CHARS + 1);
    *expires = p->expires;
    return ERR_OK;
}

int http_pair_create(struct http *h, const json_t *req, const char *actor,
                     char code[PAIR_CODE_BUF], int64_t *expires, char *why,
                     size_t whylen)
{
    int r;

    code[0] = '\0';
    if ((r = pair_check(pair_on(h), h->store, req, why, whylen)) != ERR_OK) {
        return r;
    }
    return pair_make(h, req, actor, code, expires, why, whylen);
}

/* The rate limit: true when this source, or everyone, failed too often. */
static bool pair_limited(struct http_pairs *ps, const char *ip, int64_t now)
{
    if (now - ps->all_since >= PAIR_ALL_WINDOW) {
        ps->all_since = now;
        ps->all_fails = 0;
    }
    if (ps->all_fails >= PAIR_ALL_FAILS) {
        return true;
    }
    for (size_t i = 0; i < PAIR_SRCS; i++) {
        struct pair_src *s = &ps->srcs[i];

        if (s->ip[0] != '\0' && strcmp(s->ip, ip) == 0) {
            if (now - s->since >= PAIR_SRC_WINDOW) {
                s->since = now;
                s->fails = 0;
            }
            return s->fails >= PAIR_SRC_FAILS;
        }
    }
    return false;
}

static void pair_failed(struct http_pairs *ps, const char *ip, int64_t now)
{
    struct pair_src *s = NULL, *oldest = &ps->srcs[0];

    ps->all_fails++;
    for (size_t i = 0; i < PAIR_SRCS; i++) {
        if (ps->srcs[i].ip[0] != '\0' && strcmp(ps->srcs[i].ip, ip) == 0) {
            s = &ps->srcs[i];
            break;
        }
        if (ps->srcs[i].since < oldest->since) {
            oldest = &ps->srcs[i];
        }
    }
    if (s == NULL) {
        s = oldest; /* the longest-known source makes room */
        snprintf(s->ip, sizeof(s->ip), "%s", ip);
        s->since = now;
        s->fails = 0;
    }
    s->fails++;
}

/* The live code equal to code, compared in constant time, or NULL. */
static struct pair_code *pair_find(struct http_pairs *ps, const char *code)
{
    struct pair_code *found = NULL;

    if (strlen(code) != PAIR_CODE_CHARS) {
        return NULL;
    }
    for (size_t i = 0; i < PAIR_MAX; i++) {
        if (ps->codes[i].live &&
            sodium_memcmp(ps->codes[i].code, code, PAIR_CODE_CHARS) == 0) {
            found = &ps->codes[i];
        }
    }
    return found;
}

/* An answer that is a script printing why and failing. */
static int pair_refuse(struct http_req *req, int status, const char *msg)
{
    char *body = NULL;
    int n;

    if (strcmp(req->query_os, "windows") == 0) {
        n = asprintf(&body, "Write-Error 'portcullis: %s'\r\nexit 1\r\n", msg);
        req->raw_type = "text/plain; charset=utf-8";
    } else {
        n = asprintf(&body, "#!/bin/sh\necho 'portcullis: %s' >&2\nexit 1\n",
                     msg);
        req->raw_type = "text/x-shellscript; charset=utf-8";
    }
    if (n < 0) {
        req->status = 500;
        return http_error(req, 500, "internal", "Internal error", "no memory");
    }
    req->status = status;
    req->raw = body;
    return 0;
}

/* Where the static agent is: [pairing] agent_binary, else beside this
 * program (an install), else in its build tree. */
static int pair_agent_path(const struct http *h, char *out, size_t outlen)
{
    char self[PATH_MAX], *slash;
    ssize_t n;

    if (h->cfg->pairing_agent_binary != NULL &&
        h->cfg->pairing_agent_binary[0] != '\0') {
        snprintf(out, outlen, "%s", h->cfg->pairing_agent_binary);
        return ERR_OK;
    }
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        return ERR_NOT_FOUND;
    }
    self[n] = '\0';
    if ((slash = strrchr(self, '/')) == NULL) {
        return ERR_NOT_FOUND;
    }
    *slash = '\0';
    n = snprintf(out, outlen, "%s/portcullis-agent-static", self);
    if (n > 0 && (size_t)n < outlen && access(out, R_OK) == 0) {
        return ERR_OK;
    }
    n = snprintf(out, outlen, "%s/agent/portcullis-agent-static", self);
    return n > 0 && (size_t)n < outlen && access(out, R_OK) == 0
               ? ERR_OK
               : ERR_NOT_FOUND;
}

/* Reads the static agent whole (heap, *len bytes). */
static int pair_agent_read(const struct http *h, char **out, size_t *len)
{
    char path[PATH_MAX];
    struct stat sb;
    char *buf;
    size_t off = 0;
    ssize_t n;
    int fd;

    *out = NULL;
    *len = 0;
    if (pair_agent_path(h, path, sizeof(path)) != ERR_OK ||
        (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        return ERR_NOT_FOUND;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size <= 0 ||
        sb.st_size > PAIR_AGENT_MAX ||
        (buf = malloc((size_t)sb.st_size)) == NULL) {
        close(fd);
        return ERR_IO;
    }
    while (off < (size_t)sb.st_size) {
        n = read(fd, buf + off, (size_t)sb.st_size - off);
        if (n <= 0) {
            if (n < 0 && errno == EINTR) {
                continue;
            }
            free(buf);
            close(fd);
            return ERR_IO;
        }
        off += (size_t)n;
    }
    close(fd);
    *out = buf;
    *len = off;
    return ERR_OK;
}

/* The Host header as a URL authority we can put in a script: a name or
 * address, an optional port; nothing else. */
bool http_pair_host_ok(const char *host)
{
    size_t n = strlen(host);

    if (n == 0 || n > 255) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = host[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' ||
              c == '[' || c == ']')) {
            return false;
        }
    }
    return true;
}

/* The installer's template: @NAME@ fields are replaced by values that
 * pair_host_ok / http_pair_word_ok / the code's own alphabet let through
 * (no quote, no $, no backslash), so single quotes hold them safely. */
static const char pair_sh[] =
#include "http/pair_installer.sh.h"
    ;

static int pair_fill(const char *tpl, const char *const *keys,
                     const char *const *vals, size_t nkv, char **out)
{
    size_t cap = strlen(tpl) + 1, used = 0;
    const char *p = tpl;
    char *buf;

    for (size_t k = 0; k < nkv; k++) {
        cap += 8 * strlen(vals[k]); /* each field a few times at most */
    }
    if ((buf = malloc(cap)) == NULL) {
        return ERR_NOMEM;
    }
    while (*p != '\0') {
        bool hit = false;

        if (*p == '@') {
            for (size_t k = 0; k < nkv; k++) {
                size_t kl = strlen(keys[k]), vl = strlen(vals[k]);

                if (strncmp(p + 1, keys[k], kl) == 0 && p[kl + 1] == '@') {
                    if (used + vl + 1 > cap) {
                        free(buf);
                        return ERR_TOO_LONG;
                    }
                    memcpy(buf + used, vals[k], vl);
                    used += vl;
                    p += kl + 2;
                    hit = true;
                    break;
                }
            }
        }
        if (!hit) {
            if (used + 2 > cap) {
                free(buf);
                return ERR_TOO_LONG;
            }
            buf[used++] = *p++;
        }
    }
    buf[used] = '\0';
    *out = buf;
    return ERR_OK;
}

/* Whether s is 0-max characters of [A-Za-z0-9] and extra. */
static bool pair_chars_ok(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);

    if (n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr(extra, c) != NULL)) {
            return false;
        }
    }
    return true;
}

int http_pair_render(const struct http_pair_vals *v, char **out)
{
    char url[300], wsurl[300],
        tags[HTTP_PAIR_TAGS_MAX * (PAIR_TAG_MAX + 1) + 1];
    size_t used = 0;
    int r;

    *out = NULL;
    tags[0] = '\0';
    if (v->ntags > HTTP_PAIR_TAGS_MAX || !http_pair_host_ok(v->host) ||
        strlen(v->code) != PAIR_CODE_CHARS ||
        strspn(v->code, pair_alphabet) != PAIR_CODE_CHARS ||
        !pair_chars_ok(v->fingerprint, 200, "+/=:_-") ||
        v->fingerprint[0] == '\0' || !pair_chars_ok(v->tls_pin, 100, "+/=") ||
        !pair_chars_ok(v->ca, 16384, "+/=- \n") || strlen(v->sha256) != 64 ||
        !pair_chars_ok(v->sha256, 64, "") ||
        !pair_chars_ok(v->credential, 200, ":_-") || v->credential[0] == '\0' ||
        (v->name[0] != '\0' &&
         !http_pair_word_ok(v->name, PAIR_NAME_MAX, true))) {
        return ERR_INVALID;
    }
    for (size_t i = 0; i < v->ntags; i++) {
        if (!http_pair_word_ok(v->tags[i], PAIR_TAG_MAX, false)) {
            return ERR_INVALID;
        }
        r = snprintf(tags + used, sizeof(tags) - used, "%s%s", i > 0 ? " " : "",
                     v->tags[i]);
        used += r > 0 ? (size_t)r : 0;
    }
    snprintf(url, sizeof(url), "%s://%s", v->tls ? "https" : "http", v->host);
    snprintf(wsurl, sizeof(wsurl), "%s://%s", v->tls ? "wss" : "ws", v->host);
    {
        const char *keys[] = {"URL",    "WSURL", "CODE", "FINGERPRINT",
                              "TLSPIN", "CA",    "SHA",  "CREDENTIAL",
                              "TAGS",   "NAME"};
        const char *vals[] = {url,        wsurl,  v->code,   v->fingerprint,
                              v->tls_pin, v->ca,  v->sha256, v->credential,
                              tags,       v->name};

        return pair_fill(pair_sh, keys, vals, sizeof(keys) / sizeof(keys[0]),
                         out);
    }
}

/* On st: the loop's store (h->store: on a database server its audit
 * appends are queued, not made, on the loop) or a worker's. */
static void pair_audit(struct store *st, const struct http_req *req,
                       const char *action, const struct pair_code *p,
                       const char *detail)
{
    char target[32];

    snprintf(target, sizeof(target), "%.4s...", p->code);
    if (audit_write(st, p->actor, req->client, action, target, detail) !=
        ERR_OK) {
        log_error("pairing: cannot write the audit event %s", action);
    }
}

/* The installer of used code p into req's answer (the secret leaves in
 * it, and nothing keeps it afterwards), audited on st. */
static int pair_installer(struct http *h, struct http_req *req,
                          struct pair_code *p, const char *sha,
                          struct store *st)
{
    struct http_pairs *ps = h->pairs;
    char credential[160], detail[256];
    int r;

    snprintf(credential, sizeof(credential), "%s:%s", p->cred_id,
             p->cred_secret);
    {
        const char *tagv[PAIR_TAGS_MAX];
        struct http_pair_vals v = {
            .tls = h->tls,
            .host = req->host,
            .code = p->code,
            .fingerprint = ps->fingerprint,
            .tls_pin = ps->tls_pin,
            .ca = ps->tls_ca != NULL ? ps->tls_ca : "",
            .sha256 = sha,
            .credential = credential,
            .tags = tagv,
            .ntags = p->ntags,
            .name = p->name,
        };

        for (size_t i = 0; i < p->ntags; i++) {
            tagv[i] = p->tags[i];
        }
        free(req->raw);
        req->raw = NULL;
        r = http_pair_render(&v, &req->raw);
    }
    sodium_memzero(credential, sizeof(credential));
    snprintf(detail, sizeof(detail), "credential=%s", p->cred_id);
    /* the secret has left in this answer; nothing keeps it now */
    sodium_memzero(p->cred_secret, sizeof(p->cred_secret));
    if (r != ERR_OK) {
        return pair_refuse(req, 500, "the installer could not be made");
    }
    req->status = 200;
    req->raw_type = "text/x-shellscript; charset=utf-8";
    pair_audit(st, req, "pairing.use", p, detail);
    return 0;
}

/* A used code's credential, made off the loop (http_off_hand): the code
 * is claimed (used) on the loop first, so a second GET of it meanwhile
 * is refused as a used one, and given back if none was made or its
 * installer reached nobody. */
struct pair_use {
    char code[PAIR_CODE_CHARS + 1];
    char name[PAIR_NAME_MAX + 1];
    char actor[STORE_NAME_MAX + 1];
    char sha[65];
    char cred_id[STORE_ID_MAX + 1];
    char secret[SECRET_CHARS + 1];
    bool made;
};

static void pair_use_free(void *ctx)
{
    struct pair_use *u = ctx;

    sodium_memzero(u, sizeof(*u)); /* a credential's secret */
    free(u);
}

static void pair_use_work(struct http_req *w, struct store *st, void *ctx)
{
    struct pair_use *u = ctx;
    struct store_credential cred;
    struct admin_ctx ac;
    struct admin_err e;
    int r;

    memset(&cred, 0, sizeof(cred));
    http_admin_ctx(w, &ac);
    ac.st = st;
    ac.actor = u->actor;
    r = admin_credential_add(&ac, u->name[0] != '\0' ? u->name : "paired",
                             &cred, u->secret, sizeof(u->secret), &e);
    /* an audit failure after the credential was made: it is made */
    if (r == ERR_OK || u->secret[0] != '\0') {
        snprintf(u->cred_id, sizeof(u->cred_id), "%s", cred.id);
        u->made = true;
    }
    sodium_memzero(&cred, sizeof(cred));
}

static void pair_use_then(struct http *h, struct http_req *w,
                          struct http_req *req, void *ctx, bool ran)
{
    struct pair_use *u = ctx;
    struct pair_code *p =
        h->pairs != NULL ? pair_find(h->pairs, u->code) : NULL;

    if (p != NULL && ran && u->made) {
        snprintf(p->cred_id, sizeof(p->cred_id), "%s", u->cred_id);
        snprintf(p->cred_secret, sizeof(p->cred_secret), "%s", u->secret);
    }
    if (p == NULL) {
        /* expired meanwhile (its credential, if made, stays unused) */
        if (ran) {
            (void)pair_refuse(w, 404,
                              "this pairing code is unknown, used or "
                              "expired; ask your administrator for a new "
                              "one");
        }
    } else if (!ran || !u->made || req == NULL) {
        /* nothing made, or nobody to take the installer: the code is
         * unused again (with the credential made, if one was) */
        p->used = false;
        if (ran && !u->made) {
            (void)pair_refuse(w, 500, "the server could not make a credential");
        }
    } else {
        (void)pair_installer(h, w, p, u->sha, h->store);
    }
    pair_use_free(u);
}

/* GET /pair/{code}: the installer, once. On the loop (the codes, the
 * rate limit); a credential it must make is made off the loop. */
int http_h_pair_get(struct http_req *req)
{
    struct http_pairs *ps = req->h->pairs;
    struct pair_code *p;
    struct pair_use *u;
    char sha[65];
    unsigned char md[32];
    char *bin = NULL;
    size_t binlen = 0;
    int64_t now = util_now();

    if (ps == NULL || ps->fingerprint[0] == '\0') {
        return pair_refuse(req, 503, "pairing is off on this server");
    }
    pair_sweep(ps, now);
    if (pair_limited(ps, req->client_ip, now)) {
        return pair_refuse(req, 429,
                           "too many wrong pairing codes; wait and try again");
    }
    if ((p = pair_find(ps, req->params[0])) == NULL || p->used) {
        pair_failed(ps, req->client_ip, now);
        return pair_refuse(req, 404,
                           "this pairing code is unknown, used or expired; "
                           "ask your administrator for a new one");
    }
    if (strcmp(req->query_os, "windows") == 0) {
        /* the code stays unused: the machine may still take the sh one */
        req->status = 501;
        req->raw_type = "text/plain; charset=utf-8";
        req->raw = strdup(
            "Write-Error 'portcullis: there is no Windows agent yet; this "
            "pairing code is still unused and works with the Linux "
            "installer (curl ... | sh)'\r\nexit 1\r\n");
        return req->raw != NULL ? 0 : pair_refuse(req, 500, "no memory");
    }
    if (!http_pair_host_ok(req->host)) {
        return pair_refuse(req, 400, "the request names no usable Host");
    }
    if (pair_agent_read(req->h, &bin, &binlen) != ERR_OK) {
        log_error("pairing: the static agent binary cannot be read "
                  "([pairing] agent_binary)");
        return pair_refuse(req, 503,
                           "this server has no agent binary to "
                           "install; tell your administrator");
    }
    crypto_hash_sha256(md, (const unsigned char *)bin, binlen);
    free(bin);
    sodium_bin2hex(sha, sizeof(sha), md, sizeof(md));
    p->used = true; /* from here on, one use only */
    if (p->cred_id[0] != '\0') {
        return pair_installer(req->h, req, p, sha, req->store);
    }
    if ((u = calloc(1, sizeof(*u))) == NULL) {
        p->used = false;
        return pair_refuse(req, 500, "no memory");
    }
    snprintf(u->code, sizeof(u->code), "%s", p->code);
    snprintf(u->name, sizeof(u->name), "%s", p->name);
    snprintf(u->actor, sizeof(u->actor), "%s", p->actor);
    snprintf(u->sha, sizeof(u->sha), "%s", sha);
    http_off_hand(req, pair_use_work, pair_use_then, u, pair_use_free);
    return 0;
}

/* GET /pair/{code}/agent: the static agent, for a used code's installer. */
int http_h_pair_agent(struct http_req *req)
{
    struct http_pairs *ps = req->h->pairs;
    struct pair_code *p;
    int64_t now = util_now();

    if (ps == NULL) {
        return pair_refuse(req, 503, "pairing is off on this server");
    }
    pair_sweep(ps, now);
    if (pair_limited(ps, req->client_ip, now)) {
        return pair_refuse(req, 429,
                           "too many wrong pairing codes; wait and try again");
    }
    if ((p = pair_find(ps, req->params[0])) == NULL || !p->used ||
        p->downloads >= PAIR_DOWNLOADS) {
        pair_failed(ps, req->client_ip, now);
        return pair_refuse(req, 404, "no agent download for this code");
    }
    p->downloads++;
    if (pair_agent_read(req->h, &req->raw, &req->raw_len) != ERR_OK) {
        return pair_refuse(req, 503, "this server has no agent binary");
    }
    req->status = 200;
    req->raw_type = "application/octet-stream";
    return 0;
}

/* The URL a code's installer is fetched from, and the one line to run. */
static void pair_urls(const struct http *h, const char *host, const char *code,
                      char *url, size_t urllen, char *cmd, size_t cmdlen)
{
    const char *base = h->cfg->pairing_url;
    char def[300];

    if (base == NULL || base[0] == '\0') {
        if (host != NULL && http_pair_host_ok(host)) {
            snprintf(def, sizeof(def), "%s://%s", h->tls ? "https" : "http",
                     host);
        } else {
            snprintf(def, sizeof(def), "%s://%s:%d", h->tls ? "https" : "http",
                     h->cfg->http_listen, h->cfg->http_port);
        }
        base = def;
    }
    snprintf(url, urllen, "%s/pair/%s", base, code);
    if (h->pairs != NULL && h->pairs->tls_pin[0] != '\0') {
        /* -k: the pin is the check (a self-signed certificate is fine) */
        snprintf(cmd, cmdlen,
                 "curl -sS -k --pinnedpubkey '%s' '%s' | sudo sh -s --",
                 h->pairs->tls_pin, url);
    } else {
        snprintf(cmd, cmdlen, "curl -sS '%s' | sudo sh -s --", url);
    }
}

json_t *http_pair_answer(const struct http *h, const char *host,
                         const char *code, int64_t expires)
{
    char url[512], cmd[1024];

    pair_urls(h, host, code, url, sizeof(url), cmd, sizeof(cmd));
    return json_pack("{s:s, s:s, s:s, s:o, s:b}", "code", code, "url", url,
                     "command", cmd, "expires_at", admin_json_time(expires),
                     "plain_http", !h->tls);
}

static int pair_add_error(struct http_req *req, int r, const char *why)
{
    return http_error(req,
                      r == ERR_NOT_FOUND ? 404
                      : r == ERR_LOCKED  ? 429
                      : r == ERR_DENIED  ? 403
                      : r == ERR_INVALID ? 400
                                         : 500,
                      "pairing", "Cannot pair", "%s", why);
}

/* The code of a checked POST /pairing made (on the loop), answered into
 * req and audited on st. */
static int pair_add_finish(struct http *h, struct http_req *req,
                           struct store *st)
{
    char code[PAIR_CODE_BUF], why[256], target[32];
    int64_t expires;
    const char *actor = req->auth.ok ? req->auth.user.name : "-";
    json_t *data;
    int r = pair_make(h, req->body, actor, code, &expires, why, sizeof(why));

    if (r != ERR_OK) {
        return pair_add_error(req, r, why);
    }
    data = http_pair_answer(h, req->host, code, expires);
    snprintf(target, sizeof(target), "%.4s...", code);
    sodium_memzero(code, sizeof(code));
    if (audit_write(st, actor, req->client, "pairing.create", target, "") !=
        ERR_OK) {
        log_error("http: cannot write the audit event pairing.create");
    }
    return http_ok(req, 201, data, NULL);
}

/* POST /api/v1/pairing. On a database server the check (the token, the
 * body, a named credential's secret) runs off the loop and the code is
 * made by the route's loop part (http_then_pairing): 202 between the
 * two says the check passed. */
int http_h_pairing_add(struct http_req *req)
{
    char why[256];
    int r =
        pair_check(pair_on(req->h), req->store, req->body, why, sizeof(why));

    if (r != ERR_OK) {
        return pair_add_error(req, r, why);
    }
    if (req->on_worker) {
        return http_ok(req, 202, json_object(), NULL);
    }
    return pair_add_finish(req->h, req, req->store);
}

void http_then_pairing(struct http *h, struct http_req *req)
{
    if (req->status != 202) {
        return;
    }
    if (req->deferred == 0) {
        /* its client went, or was answered at the deadline: a code
         * nobody sees would only take a slot */
        http_error(req, 503, "store_unavailable", "Database unavailable",
                   "the access server's database did not answer in time");
        return;
    }
    (void)pair_add_finish(h, req, h->store);
}

/*
 * A question on ask.sock (common/notify.h) from `portcullis agent pair`:
 * {"op":"pair","actor":..,"tags":[..],"name":..,"credential":..,
 *  "secret":..}; the answer is http_pair_answer's JSON or {"error":..}.
 *
 * A question that names a credential needs its row (the secret's hash):
 * on a database server that read runs on a store worker of the
 * questions' own (one connection; a locked credentials table or a
 * stopped database holds it, never the loop) and the code is made and
 * answered on the loop when it comes back. Bounds: PAIR_ASK_WAITING
 * questions wait at once (more are answered "busy" at once), and each
 * is answered by the statement deadline at the latest (a read that comes
 * back later makes no code: nobody would see it). Without a credential
 * the question needs no statement on the loop (the audit event is
 * queued to the audit log's writer there, store_audit.c) and is answered
 * at once, as is every question on SQLite (a local file: the worker runs
 * its job inline).
 */
struct pair_ask {
    struct store_work job;   /* first: the worker's */
    struct http_pairs *ps;   /* NULL once the API stopped */
    struct notify_reply *to; /* NULL once answered (at the deadline) */
    json_t *q;               /* the question (with the secret) */
    char actor[STORE_NAME_MAX + 1];
    bool on; /* pair_on(), read on the loop */
    int r;   /* pair_check's, on the worker */
    char why[256];
    struct http_waiter waiter; /* in ps->asks; its deadline */
};

/* The question's secret wiped, and the question freed. */
static void pair_q_free(json_t *q)
{
    json_t *sv = json_object_get(q, "secret");

    if (json_is_string(sv)) {
        sodium_memzero((char *)(uintptr_t)json_string_value(sv),
                       strlen(json_string_value(sv)));
    }
    json_decref(q);
}

/* ans (taken; NULL: out of memory, no answer) to *to's asker, once. */
static void pair_reply(struct notify_reply **to, json_t *ans)
{
    char *s = ans != NULL ? json_dumps(ans, JSON_COMPACT) : NULL;

    json_decref(ans);
    notify_answer(*to, s, s != NULL ? strlen(s) : 0);
    *to = NULL;
    if (s != NULL) {
        sodium_memzero(s, strlen(s)); /* the code */
        free(s);
    }
}

static json_t *pair_ask_error(const char *why)
{
    return json_pack("{s:s}", "error", why);
}

/* The answer to a question pair_check answered r (why) for: the code
 * made, on the loop, and audited. */
static json_t *pair_ask_answer(struct http *h, const json_t *q,
                               const char *actor, int r, const char *why)
{
    char code[PAIR_CODE_BUF], why2[256], target[32];
    int64_t expires;
    json_t *ans;

    if (r != ERR_OK) {
        return pair_ask_error(why);
    }
    if ((r = pair_make(h, q, actor, code, &expires, why2, sizeof(why2))) !=
        ERR_OK) {
        return pair_ask_error(why2);
    }
    ans = http_pair_answer(h, NULL, code, expires);
    snprintf(target, sizeof(target), "%.4s...", code);
    sodium_memzero(code, sizeof(code));
    if (audit_write(h->store, actor, "cli", "pairing.create", target, "") !=
        ERR_OK) {
        log_error("pairing: cannot write the audit event");
    }
    return ans;
}

static void pair_ask_free(struct pair_ask *a)
{
    pair_q_free(a->q);
    sodium_memzero(a, sizeof(*a));
    free(a);
}

/* On the worker thread: the credential's read. Touches only a and st. */
static void pair_ask_work(struct store_work *j, struct store *st)
{
    struct pair_ask *a = (struct pair_ask *)j;

    a->r = pair_check(a->on, st, a->q, a->why, sizeof(a->why));
}

/* On the loop, before the job starts: not if it was answered at its
 * deadline meanwhile (or the API stopped). */
static bool pair_ask_wanted(void *owner, const struct store_work *j)
{
    const struct pair_ask *a = (const struct pair_ask *)j;

    return owner != NULL && a->ps != NULL && a->to != NULL;
}

static void pair_ask_done(void *owner, struct store_work *j)
{
    struct pair_ask *a = (struct pair_ask *)j;
    struct http_pairs *ps = a->ps;

    (void)owner; /* NULL also for a job dropped unrun: a->ps says */
    if (ps != NULL) {
        http_waiter_unlink(&a->waiter);
    }
    if (a->to != NULL) {
        pair_reply(&a->to,
                   ps == NULL ? pair_ask_error("the server stopped before "
                                               "it could answer; try again "
                                               "once it runs")
                   : !j->ran
                       ? pair_ask_error("the server's database is unreachable; "
                                        "try again in a moment")
                       : pair_ask_answer(ps->h, a->q, a->actor, a->r, a->why));
    }
    pair_ask_free(a);
}

/* Its deadline: answered now; the job stays counted until it comes back
 * (and then makes no code). */
static void pair_ask_on_timer(void *arg)
{
    struct pair_ask *a = arg;

    log_warn("pairing: the database did not answer a pairing question's "
             "credential read within %d ms",
             a->ps->deadline_ms);
    pair_reply(&a->to, pair_ask_error("the server's database did not answer "
                                      "in time; try again in a moment"));
}

/* A question still out at the API's stop: answered (the server stopped)
 * and forgotten (its done, when its read comes back, only frees it). */
static void pair_ask_let_go(void *arg)
{
    struct pair_ask *a = arg;

    if (a->to != NULL) {
        pair_reply(&a->to, pair_ask_error("the server stopped before it "
                                          "could answer; try again once "
                                          "it runs"));
    }
    a->ps = NULL;
}

/* At the API's stop: the questions still out let go; the worker stops. */
static void pair_asks_stop(struct http_pairs *ps)
{
    http_waiters_forget(&ps->asks, pair_ask_let_go);
    (void)store_worker_stop(ps->w, 200);
    ps->w = NULL;
}

/* The question (q, taken) handed to the worker, or refused at once (too
 * many wait, no memory). */
static void pair_ask_later(struct http *h, json_t *q, const char *actor,
                           struct notify_reply *to)
{
    struct http_pairs *ps = h->pairs;
    struct pair_ask *a;

    if (ps->asks.n >= PAIR_ASK_WAITING) {
        pair_q_free(q);
        pair_reply(&to, pair_ask_error("too many pairing questions wait for "
                                       "the server's database; try again in "
                                       "a moment"));
        return;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        pair_q_free(q);
        pair_reply(&to, pair_ask_error("the server is out of memory"));
        return;
    }
    a->ps = ps;
    a->to = to;
    a->q = q;
    a->on = pair_on(h);
    snprintf(a->actor, sizeof(a->actor), "%s", actor);
    a->job.work = pair_ask_work;
    a->job.done = pair_ask_done;
    a->job.wanted = pair_ask_wanted;
    http_waiter_link(&ps->asks, &a->waiter, a);
    (void)http_waiter_arm(&a->waiter, h->loop, ps->deadline_ms,
                          pair_ask_on_timer);
    store_worker_run(ps->w, &a->job); /* a may be gone now */
}

void http_pair_ask(void *arg, const char *q, size_t qlen,
                   struct notify_reply *to)
{
    struct http *h = arg;
    json_error_t jerr;
    json_t *req = json_loadb(q, qlen, JSON_REJECT_DUPLICATES, &jerr), *ans;
    const char *op = json_string_value(json_object_get(req, "op"));
    const char *actor = json_string_value(json_object_get(req, "actor"));
    const char *cid = json_string_value(json_object_get(req, "credential"));
    char who[STORE_NAME_MAX + 1], why[256];

    if (req == NULL || !json_is_object(req) || op == NULL ||
        strcmp(op, "pair") != 0) {
        pair_q_free(req);
        pair_reply(&to, pair_ask_error("not a question this server knows"));
        return;
    }
    snprintf(who, sizeof(who), "%s", actor != NULL ? actor : "-");
    if (cid != NULL && cid[0] != '\0' && h->pairs != NULL &&
        store_worker_async(h->pairs->w)) {
        pair_ask_later(h, req, who, to);
        return;
    }
    /* no statement on the loop (or SQLite): at once */
    ans = pair_ask_answer(
        h, req, who, pair_check(pair_on(h), h->store, req, why, sizeof(why)),
        why);
    pair_q_free(req);
    pair_reply(&to, ans);
}
