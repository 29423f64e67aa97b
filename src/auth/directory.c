/*
 * Directory logins; see directory.h for the layers and
 * docs/directories.md for the configuration.
 *
 * libldap (OpenLDAP 2.5, thread-safe) is used with its synchronous calls
 * and one LDAP handle per check, on a worker thread: the handle, its TLS
 * context (LDAP_OPT_X_TLS_NEWCTX) and its options belong to that check
 * only, so checks share nothing but the read-only directory_conf. Every
 * call has a network timeout (connect, TLS) and an operation timeout; the
 * service's timer in the loop's thread is the last word on how long a
 * user waits, since no libldap timeout is a promise about the whole.
 */
#include "auth/directory.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <ldap.h>
#include <sodium.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/util.h"
#include "common/vault.h"

/* --- escaping ------------------------------------------------------- */

static const char directory_hex[] = "0123456789abcdef";

int directory_escape_filter(const char *in, size_t len, char *out,
                            size_t outlen)
{
    size_t o = 0;

    if (outlen == 0) {
        return ERR_TOO_LONG;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        bool esc = c == '*' || c == '(' || c == ')' || c == '\\' || c == 0;

        if (o + (esc ? 3 : 1) >= outlen) {
            out[o] = '\0';
            return ERR_TOO_LONG;
        }
        if (esc) {
            out[o++] = '\\';
            out[o++] = directory_hex[c >> 4];
            out[o++] = directory_hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return ERR_OK;
}

int directory_escape_dn(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen == 0) {
        return ERR_TOO_LONG;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        bool hex = c < 0x20 || c == 0x7f;
        bool esc = strchr("\"+,;<>\\=", c) != NULL ||
                   (i == 0 && (c == '#' || c == ' ')) ||
                   (i + 1 == len && c == ' ');

        if (c == 0) {
            hex = true;
            esc = false;
        }
        if (o + (hex ? 3 : esc ? 2 : 1) >= outlen) {
            out[o] = '\0';
            return ERR_TOO_LONG;
        }
        if (hex) {
            out[o++] = '\\';
            out[o++] = directory_hex[c >> 4];
            out[o++] = directory_hex[c & 15];
        } else {
            if (esc) {
                out[o++] = '\\';
            }
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return ERR_OK;
}

int directory_template(const char *tmpl, const char *name, const char *value,
                       char *out, size_t outlen)
{
    char key[32];
    size_t klen, vlen = strlen(value), o = 0;
    const char *p = tmpl, *hit;

    klen = (size_t)snprintf(key, sizeof(key), "{%s}", name);
    if (outlen == 0 || klen >= sizeof(key)) {
        return ERR_TOO_LONG;
    }
    while ((hit = strstr(p, key)) != NULL) {
        size_t pre = (size_t)(hit - p);

        if (o + pre + vlen >= outlen) {
            out[0] = '\0';
            return ERR_TOO_LONG;
        }
        memcpy(out + o, p, pre);
        o += pre;
        memcpy(out + o, value, vlen);
        o += vlen;
        p = hit + klen;
    }
    if (o + strlen(p) >= outlen) {
        out[0] = '\0';
        return ERR_TOO_LONG;
    }
    memcpy(out + o, p, strlen(p) + 1);
    return ERR_OK;
}

void directory_result_clear(struct directory_result *res)
{
    if (res == NULL) {
        return;
    }
    free(res->groups);
    for (size_t i = 0; i < res->nmapped; i++) {
        free(res->mapped[i]);
    }
    free(res->mapped);
    memset(res, 0, sizeof(*res));
}

/* --- one check -------------------------------------------------------- */

/*
 * How the service's deadline frees a thread stuck in libldap. libldap
 * 2.5's network timeout covers the TCP connect, but an ldaps:// handshake
 * then reads a blocking socket (GnuTLS) without limit, so a server that
 * accepts and never answers would hold the thread for ever. The socket
 * of the check is noted here (libldap's connection callbacks, in the
 * worker's thread); at the deadline the loop's thread shuts it down, and
 * the read returns. The lock makes sure the fd is still the check's.
 */
struct dcancel {
    pthread_mutex_t lock;
    int fd;         /* the check's socket now, -1 if none */
    bool cancelled; /* set at the deadline: connect no more */
};

/* Closes the noted socket (k->lock held). */
static void dcancel_drop(struct dcancel *k)
{
    if (k->fd >= 0) {
        close(k->fd);
        k->fd = -1;
    }
}

struct dcheck {
    const struct directory_conf *d;
    LDAP *ld;
    ldap_conncb conncb;     /* dcheck_on_connect, alive as long as ld */
    struct dcancel *cancel; /* the service's, or NULL */
    struct directory_result *res;
    directory_trace_fn trace;
    void *arg;
};

static void dcheck_trace(struct dcheck *c, const char *step, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));

static void dcheck_trace(struct dcheck *c, const char *step, const char *fmt,
                         ...)
{
    char text[1536];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (c->trace != NULL) {
        c->trace(c->arg, step, text);
    }
    log_debug("directory %s: %s: %s", c->d->name, step, text);
}

/* Sets the result's status and reason (the first one set wins). */
static int dcheck_fail(struct dcheck *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int dcheck_fail(struct dcheck *c, int status, const char *fmt, ...)
{
    va_list ap;

    if (c->res->status == ERR_OK) {
        c->res->status = status;
        va_start(ap, fmt);
        vsnprintf(c->res->why, sizeof(c->res->why), fmt, ap);
        va_end(ap);
    }
    return c->res->status;
}

/* The libldap codes that mean no server is there to ask. */
static bool dcheck_down(int rc)
{
    return rc == LDAP_SERVER_DOWN || rc == LDAP_TIMEOUT ||
           rc == LDAP_CONNECT_ERROR || rc == LDAP_UNAVAILABLE ||
           rc == LDAP_BUSY || rc == LDAP_TIMELIMIT_EXCEEDED;
}

/* A failed operation: unreachable, or refused with libldap's words. */
static int dcheck_ldap_fail(struct dcheck *c, const char *what, int rc)
{
    char *diag = NULL;

    if (c->ld != NULL) {
        (void)ldap_get_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
    }
    dcheck_trace(c, what, "failed: %s%s%s", ldap_err2string(rc),
                 diag && *diag ? ": " : "", diag ? diag : "");
    ldap_memfree(diag);
    if (dcheck_down(rc)) {
        return dcheck_fail(c, rc == LDAP_TIMEOUT ? ERR_TIMEOUT : ERR_CONNECT,
                           "directory %s unreachable", c->d->name);
    }
    return dcheck_fail(c, ERR_DENIED, "directory %s refused the %s: %s",
                       c->d->name, what, ldap_err2string(rc));
}

static void dcheck_close(struct dcheck *c)
{
    if (c->ld != NULL) {
        ldap_unbind_ext_s(c->ld, NULL, NULL);
        c->ld = NULL;
    }
    if (c->cancel != NULL) {
        pthread_mutex_lock(&c->cancel->lock);
        dcancel_drop(c->cancel);
        pthread_mutex_unlock(&c->cancel->lock);
    }
}

static int dcheck_on_connect(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv,
                             struct sockaddr *addr, struct ldap_conncb *ctx)
{
    struct dcancel *k = ctx->lc_arg;
    int fd = -1, r = LDAP_SUCCESS;

    (void)ld;
    (void)srv;
    (void)addr;
    if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) != 1) {
        fd = -1;
    }
    pthread_mutex_lock(&k->lock);
    if (k->cancelled) {
        r = LDAP_TIMEOUT; /* the deadline passed: no new connection */
    } else if (fd >= 0) {
        dcancel_drop(k);
        /* A duplicate of our own: libldap may close its fd on a path
         * without a callback, and the number could then be another
         * thread's socket; ours stays this socket until we close it. */
        k->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    }
    pthread_mutex_unlock(&k->lock);
    return r;
}

static void dcheck_on_close(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
    struct dcancel *k = ctx->lc_arg;

    (void)ld;
    (void)sb;
    pthread_mutex_lock(&k->lock);
    dcancel_drop(k);
    pthread_mutex_unlock(&k->lock);
}

/* Opens one server: options, connection, TLS. LDAP result code. */
static int dcheck_open(struct dcheck *c, const char *url, const char **stage)
{
    const struct directory_conf *d = c->d;
    struct timeval nt = {.tv_sec = d->connect_timeout_seconds};
    struct timeval ot = {.tv_sec = d->timeout_seconds};
    int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0, rc;

    *stage = "connect";
    if ((rc = ldap_initialize(&c->ld, url)) != LDAP_SUCCESS) {
        return rc;
    }
    if ((rc = ldap_set_option(c->ld, LDAP_OPT_PROTOCOL_VERSION, &v3)) ||
        (rc = ldap_set_option(c->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF)) ||
        (rc = ldap_set_option(c->ld, LDAP_OPT_NETWORK_TIMEOUT, &nt)) ||
        (rc = ldap_set_option(c->ld, LDAP_OPT_TIMEOUT, &ot)) ||
        (rc = ldap_set_option(c->ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand))) {
        return rc;
    }
    if (d->ca_file != NULL &&
        (rc = ldap_set_option(c->ld, LDAP_OPT_X_TLS_CACERTFILE, d->ca_file))) {
        return rc;
    }
    if (c->cancel != NULL) {
        c->conncb.lc_add = dcheck_on_connect;
        c->conncb.lc_del = dcheck_on_close;
        c->conncb.lc_arg = c->cancel;
        if ((rc = ldap_set_option(c->ld, LDAP_OPT_CONNECT_CB, &c->conncb))) {
            return rc;
        }
    }
    if ((rc = ldap_set_option(c->ld, LDAP_OPT_X_TLS_NEWCTX, &zero))) {
        return rc;
    }
    if ((rc = ldap_connect(c->ld)) != LDAP_SUCCESS) {
        return rc;
    }
    dcheck_trace(c, "connect", "%s: connected", url);
    if (strncasecmp(url, "ldaps://", 8) == 0) {
        dcheck_trace(c, "tls", "ldaps: TLS established, certificate checked");
    }
    if (d->starttls) {
        *stage = "tls";
        if ((rc = ldap_start_tls_s(c->ld, NULL, NULL)) != LDAP_SUCCESS) {
            return rc;
        }
        dcheck_trace(c, "tls",
                     "StartTLS: TLS established, certificate "
                     "checked");
    }
    return LDAP_SUCCESS;
}

/* The first server that answers, in the order of url. */
static int dcheck_connect(struct dcheck *c)
{
    const char *stage = "connect";
    char *diag = NULL;
    int rc = LDAP_SERVER_DOWN;

    for (size_t i = 0; i < c->d->nurls; i++) {
        rc = dcheck_open(c, c->d->urls[i], &stage);
        if (rc == LDAP_SUCCESS) {
            return ERR_OK;
        }
        if (c->ld != NULL) {
            (void)ldap_get_option(c->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
        }
        dcheck_trace(c, stage, "%s: %s%s%s", c->d->urls[i], ldap_err2string(rc),
                     diag && *diag ? ": " : "", diag ? diag : "");
        log_warn("directory %s: %s %s: %s%s%s", c->d->name, c->d->urls[i],
                 stage, ldap_err2string(rc), diag && *diag ? ": " : "",
                 diag ? diag : "");
        ldap_memfree(diag);
        diag = NULL;
        dcheck_close(c);
    }
    return dcheck_fail(c, ERR_CONNECT, "directory %s unreachable", c->d->name);
}

static int dcheck_bind(struct dcheck *c, const char *dn, const char *pw)
{
    struct berval cred;

    /* Never an anonymous or unauthenticated bind (RFC 4513 5.1.2). */
    if (pw == NULL || pw[0] == '\0') {
        return LDAP_INAPPROPRIATE_AUTH;
    }
    cred.bv_val = (char *)(uintptr_t)pw;
    cred.bv_len = strlen(pw);
    return ldap_sasl_bind_s(c->ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
                            NULL);
}

static void dcheck_value(struct dcheck *c, LDAPMessage *e, const char *attr,
                         char *out, size_t outlen)
{
    struct berval **v;

    out[0] = '\0';
    if (attr == NULL || (v = ldap_get_values_len(c->ld, e, attr)) == NULL) {
        return;
    }
    if (v[0] != NULL && memchr(v[0]->bv_val, 0, v[0]->bv_len) == NULL) {
        snprintf(out, outlen, "%.*s", (int)v[0]->bv_len, v[0]->bv_val);
    }
    ldap_value_free_len(v);
}

static int dcheck_search(struct dcheck *c, const char *base, const char *filter,
                         char **attrs, int sizelimit, LDAPMessage **msg)
{
    struct timeval tv = {.tv_sec = c->d->timeout_seconds};

    *msg = NULL;
    return ldap_search_ext_s(c->ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0,
                             NULL, NULL, &tv, sizelimit, msg);
}

/* The user's one entry by user_filter: dn, display name, mail, and the
 * group attribute's values as the direct groups. */
static int dcheck_entry(struct dcheck *c, const char *user)
{
    const struct directory_conf *d = c->d;
    char esc[DIRECTORY_USER_MAX * 3 + 1], filter[DIRECTORY_FILTER_MAX];
    char *attrs[5] = {d->display_name_attribute, d->mail_attribute,
                      d->group_attribute, NULL, NULL};
    LDAPMessage *msg = NULL, *e;
    char *dn;
    int rc, n;

    if (directory_escape_filter(user, strlen(user), esc, sizeof(esc)) ||
        directory_template(d->user_filter, "user", esc, filter,
                           sizeof(filter))) {
        return dcheck_fail(c, ERR_INVALID, "user name too long");
    }
    if (d->group_attribute == NULL) {
        attrs[2] = NULL;
    }
    rc = dcheck_search(c, d->base_dn, filter, attrs, 2, &msg);
    if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
        ldap_msgfree(msg);
        return dcheck_ldap_fail(c, "user search", rc);
    }
    n = ldap_count_entries(c->ld, msg);
    if (n != 1 || rc == LDAP_SIZELIMIT_EXCEEDED) {
        ldap_msgfree(msg);
        dcheck_trace(c, "entry", "%s under %s: %s", filter, d->base_dn,
                     n == 0 ? "no entry (unknown, or disabled by the filter)"
                            : "more than one entry");
        return dcheck_fail(c, n == 0 ? ERR_NOT_FOUND : ERR_DENIED,
                           n == 0 ? "user %s not found or disabled in "
                                    "directory %s"
                                  : "user %s is ambiguous in directory %s",
                           user, d->name);
    }
    e = ldap_first_entry(c->ld, msg);
    dn = ldap_get_dn(c->ld, e);
    snprintf(c->res->dn, sizeof(c->res->dn), "%s", dn ? dn : "");
    ldap_memfree(dn);
    dcheck_value(c, e, d->display_name_attribute, c->res->display_name,
                 sizeof(c->res->display_name));
    dcheck_value(c, e, d->mail_attribute, c->res->mail, sizeof(c->res->mail));
    if (d->group_attribute != NULL) {
        struct berval **v = ldap_get_values_len(c->ld, e, d->group_attribute);

        for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
            struct directory_group *g;

            if (c->res->ngroups == DIRECTORY_GROUPS_MAX ||
                v[i]->bv_len > DIRECTORY_DN_MAX) {
                continue;
            }
            g = &c->res->groups[c->res->ngroups++];
            memset(g, 0, sizeof(*g));
            snprintf(g->dn, sizeof(g->dn), "%.*s", (int)v[i]->bv_len,
                     v[i]->bv_val);
        }
        ldap_value_free_len(v);
    }
    ldap_msgfree(msg);
    dcheck_trace(c, "entry", "%s (display name '%s', mail '%s')", c->res->dn,
                 c->res->display_name, c->res->mail);
    return ERR_OK;
}

static bool dcheck_has_group(const struct directory_result *res, const char *dn)
{
    for (size_t i = 0; i < res->ngroups; i++) {
        if (strcasecmp(res->groups[i].dn, dn) == 0) {
            return true;
        }
    }
    return false;
}

/* Groups whose filter (group_filter, or in_chain's) matches member_dn. */
static int dcheck_groups_of(struct dcheck *c, const char *member_dn,
                            bool in_chain)
{
    const struct directory_conf *d = c->d;
    char esc[DIRECTORY_DN_MAX * 3 + 1], filter[DIRECTORY_FILTER_MAX];
    char *attrs[2] = {d->group_name_attribute, NULL};
    LDAPMessage *msg = NULL, *e;
    int rc;

    if (directory_escape_filter(member_dn, strlen(member_dn), esc,
                                sizeof(esc)) ||
        directory_template(in_chain ? "(member:1.2.840.113556.1.4.1941:={dn})"
                                    : d->group_filter,
                           "dn", esc, filter, sizeof(filter))) {
        return ERR_OK; /* a DN too long to ask about: no groups from it */
    }
    rc = dcheck_search(c, d->group_base_dn, filter, attrs, DIRECTORY_GROUPS_MAX,
                       &msg);
    if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
        ldap_msgfree(msg);
        return dcheck_ldap_fail(c, "group search", rc);
    }
    for (e = ldap_first_entry(c->ld, msg); e != NULL;
         e = ldap_next_entry(c->ld, e)) {
        char *dn = ldap_get_dn(c->ld, e);
        struct directory_group *g;

        if (dn != NULL && strlen(dn) <= DIRECTORY_DN_MAX &&
            !dcheck_has_group(c->res, dn) &&
            c->res->ngroups < DIRECTORY_GROUPS_MAX) {
            g = &c->res->groups[c->res->ngroups++];
            memset(g, 0, sizeof(*g));
            snprintf(g->dn, sizeof(g->dn), "%s", dn);
            dcheck_value(c, e, d->group_name_attribute, g->name,
                         sizeof(g->name));
        }
        ldap_memfree(dn);
    }
    ldap_msgfree(msg);
    return ERR_OK;
}

/* A group's name from its DN when the search gave none: the first RDN's
 * value ("cn=ops,ou=groups,..." -> "ops"). */
static void dcheck_rdn_name(struct directory_group *g)
{
    LDAPDN dn = NULL;

    if (g->name[0] != '\0') {
        return;
    }
    if (ldap_str2dn(g->dn, &dn, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS &&
        dn != NULL && dn[0] != NULL && dn[0][0] != NULL) {
        snprintf(g->name, sizeof(g->name), "%.*s",
                 (int)dn[0][0]->la_value.bv_len, dn[0][0]->la_value.bv_val);
    }
    ldap_dnfree(dn);
}

static int dcheck_groups(struct dcheck *c)
{
    const struct directory_conf *d = c->d;
    size_t i, direct;
    int r = ERR_OK;

    if (d->nested == DIRECTORY_NESTED_IN_CHAIN) {
        r = dcheck_groups_of(c, c->res->dn, true);
    } else if (d->group_attribute == NULL) {
        r = dcheck_groups_of(c, c->res->dn, false);
    }
    direct = c->res->ngroups;
    /* Breadth first: each group found is asked about once; the cap on
     * groups bounds the searches. */
    if (r == ERR_OK && d->nested == DIRECTORY_NESTED_RECURSIVE) {
        for (i = 0; i < c->res->ngroups && r == ERR_OK; i++) {
            r = dcheck_groups_of(c, c->res->groups[i].dn, false);
        }
    }
    if (r != ERR_OK) {
        return r;
    }
    for (i = 0; i < c->res->ngroups; i++) {
        dcheck_rdn_name(&c->res->groups[i]);
        dcheck_trace(c, "groups", "%s%s (%s)", c->res->groups[i].name,
                     i >= direct ? " [nested]" : "", c->res->groups[i].dn);
    }
    if (c->res->ngroups == 0) {
        dcheck_trace(c, "groups", "none");
    }
    return ERR_OK;
}

static int dcheck_add_mapped(struct directory_result *res, const char *name)
{
    char **n;

    for (size_t i = 0; i < res->nmapped; i++) {
        if (strcmp(res->mapped[i], name) == 0) {
            return ERR_OK;
        }
    }
    if ((n = realloc(res->mapped, (res->nmapped + 1) * sizeof(*n))) == NULL) {
        return ERR_NOMEM;
    }
    res->mapped = n;
    if ((n[res->nmapped] = strdup(name)) == NULL) {
        return ERR_NOMEM;
    }
    res->nmapped++;
    return ERR_OK;
}

static int dcheck_map(struct dcheck *c)
{
    const struct directory_conf *d = c->d;
    const struct directory_group *g;
    bool any;

    for (size_t i = 0; i < c->res->ngroups; i++) {
        g = &c->res->groups[i];
        any = false;
        for (size_t j = 0; j < d->nmaps; j++) {
            if (strcasecmp(d->maps[j].from, g->name) == 0 ||
                strcasecmp(d->maps[j].from, g->dn) == 0) {
                if (dcheck_add_mapped(c->res, d->maps[j].to) != ERR_OK) {
                    return dcheck_fail(c, ERR_NOMEM, "out of memory");
                }
                dcheck_trace(c, "map", "%s -> %s", g->name, d->maps[j].to);
                any = true;
            }
        }
        if (d->map_by_name && g->name[0] != '\0') {
            if (dcheck_add_mapped(c->res, g->name) != ERR_OK) {
                return dcheck_fail(c, ERR_NOMEM, "out of memory");
            }
            dcheck_trace(c, "map", "%s -> %s (by name, if it exists)", g->name,
                         g->name);
            any = true;
        }
        if (!any) {
            dcheck_trace(c, "map", "%s -> (not mapped)", g->name);
        }
    }
    return ERR_OK;
}

static bool directory_user_ok(const char *user)
{
    size_t len = strnlen(user, DIRECTORY_USER_MAX + 1);

    if (len == 0 || len > DIRECTORY_USER_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)user[i] < 0x20 || user[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

static int dcheck_login(const struct directory_conf *d,
                        const char *svc_password, const char *user,
                        const char *password, struct directory_result *res,
                        directory_trace_fn trace, void *arg,
                        struct dcancel *cancel);
static int dcheck_lookup(const struct directory_conf *d,
                         const char *svc_password, const char *user,
                         struct directory_result *res, directory_trace_fn trace,
                         void *arg, struct dcancel *cancel);

int directory_check(const struct directory_conf *d, const char *svc_password,
                    const char *user, const char *password,
                    struct directory_result *res, directory_trace_fn trace,
                    void *arg)
{
    return dcheck_login(d, svc_password, user, password, res, trace, arg, NULL);
}

int directory_lookup(const struct directory_conf *d, const char *svc_password,
                     const char *user, struct directory_result *res,
                     directory_trace_fn trace, void *arg)
{
    return dcheck_lookup(d, svc_password, user, res, trace, arg, NULL);
}

static int dcheck_login(const struct directory_conf *d,
                        const char *svc_password, const char *user,
                        const char *password, struct directory_result *res,
                        directory_trace_fn trace, void *arg,
                        struct dcancel *cancel)
{
    struct dcheck c = {
        .d = d, .res = res, .trace = trace, .arg = arg, .cancel = cancel};
    char esc[DIRECTORY_USER_MAX * 3 + 1], bind[DIRECTORY_DN_MAX + 1];
    int rc, r;

    memset(res, 0, sizeof(*res));
    if (user == NULL || !directory_user_ok(user)) {
        return dcheck_fail(&c, ERR_INVALID, "invalid user name");
    }
    if (password == NULL || password[0] == '\0') {
        dcheck_trace(&c, "bind",
                     "refused: empty password (it would be an "
                     "anonymous bind)");
        return dcheck_fail(&c, ERR_AUTH, "empty password");
    }
    if ((res->groups = calloc(DIRECTORY_GROUPS_MAX, sizeof(*res->groups))) ==
        NULL) {
        return dcheck_fail(&c, ERR_NOMEM, "out of memory");
    }
    if (dcheck_connect(&c) != ERR_OK) {
        goto out;
    }
    if (d->bind_dn != NULL) {
        /* The service account finds the entry (and so the DN to bind). */
        if ((rc = dcheck_bind(&c, d->bind_dn, svc_password)) != LDAP_SUCCESS) {
            (void)dcheck_ldap_fail(&c, "service account bind", rc);
            goto out;
        }
        dcheck_trace(&c, "bind", "service account %s: ok", d->bind_dn);
        if (dcheck_entry(&c, user) != ERR_OK) {
            /* No password was checked: an unknown (or disabled) user must
             * look like a wrong password, or anyone could list users. */
            if (res->status == ERR_NOT_FOUND) {
                res->status = ERR_AUTH;
                snprintf(res->why, sizeof(res->why),
                         "wrong user name or password");
            }
            goto out;
        }
    }
    if (d->bind != NULL) {
        /* A DN template takes the user name as an attribute value; a
         * UPN ("{user}@contoso.com") takes it as it is. */
        if (strchr(d->bind, '=') != NULL) {
            r = directory_escape_dn(user, strlen(user), esc, sizeof(esc));
        } else {
            r = snprintf(esc, sizeof(esc), "%s", user) < (int)sizeof(esc)
                    ? ERR_OK
                    : ERR_TOO_LONG;
        }
        if (r != ERR_OK ||
            directory_template(d->bind, "user", esc, bind, sizeof(bind))) {
            (void)dcheck_fail(&c, ERR_INVALID, "user name too long");
            goto out;
        }
    } else {
        snprintf(bind, sizeof(bind), "%s", res->dn);
    }
    rc = dcheck_bind(&c, bind, password);
    if (rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INVALID_DN_SYNTAX ||
        rc == LDAP_NO_SUCH_OBJECT) {
        dcheck_trace(&c, "bind", "as %s: %s", bind, ldap_err2string(rc));
        (void)dcheck_fail(&c, ERR_AUTH, "wrong user name or password");
        goto out;
    }
    if (rc != LDAP_SUCCESS) {
        (void)dcheck_ldap_fail(&c, "bind", rc);
        goto out;
    }
    dcheck_trace(&c, "bind", "as %s: ok", bind);
    if (d->bind_dn != NULL) {
        /* Back to the service account: users may not read groups. */
        if ((rc = dcheck_bind(&c, d->bind_dn, svc_password)) != LDAP_SUCCESS) {
            (void)dcheck_ldap_fail(&c, "service account bind", rc);
            goto out;
        }
    } else if (dcheck_entry(&c, user) != ERR_OK) {
        goto out;
    }
    if (dcheck_groups(&c) != ERR_OK) {
        goto out;
    }
    (void)dcheck_map(&c);
out:
    dcheck_close(&c);
    sodium_memzero(esc, sizeof(esc));
    return res->status;
}

static int dcheck_lookup(const struct directory_conf *d,
                         const char *svc_password, const char *user,
                         struct directory_result *res, directory_trace_fn trace,
                         void *arg, struct dcancel *cancel)
{
    struct dcheck c = {
        .d = d, .res = res, .trace = trace, .arg = arg, .cancel = cancel};
    int rc;

    memset(res, 0, sizeof(*res));
    if (user == NULL || !directory_user_ok(user)) {
        return dcheck_fail(&c, ERR_INVALID, "invalid user name");
    }
    if (d->bind_dn == NULL) {
        return dcheck_fail(&c, ERR_DENIED,
                           "directory %s has no service account (bind_dn) "
                           "to check key logins",
                           d->name);
    }
    if ((res->groups = calloc(DIRECTORY_GROUPS_MAX, sizeof(*res->groups))) ==
        NULL) {
        return dcheck_fail(&c, ERR_NOMEM, "out of memory");
    }
    if (dcheck_connect(&c) != ERR_OK) {
        goto out;
    }
    if ((rc = dcheck_bind(&c, d->bind_dn, svc_password)) != LDAP_SUCCESS) {
        (void)dcheck_ldap_fail(&c, "service account bind", rc);
        goto out;
    }
    dcheck_trace(&c, "bind", "service account %s: ok", d->bind_dn);
    if (dcheck_entry(&c, user) != ERR_OK || dcheck_groups(&c) != ERR_OK) {
        goto out;
    }
    (void)dcheck_map(&c);
out:
    dcheck_close(&c);
    return res->status;
}

/* --- the service ------------------------------------------------------ */

struct djob {
    struct djob *next;     /* in its directory's waiting FIFO */
    struct djob *run_next; /* in the service's running list */
    struct directory_service *s;
    size_t dir;             /* index of its directory */
    directory_done_fn done; /* NULL: answered or forgotten */
    void *ctx;
    uint64_t tag;
    uint64_t timer; /* the deadline; 0 once gone */
    bool running;
    bool lookup; /* a key login's directory_lookup, no password */
    char user[DIRECTORY_USER_MAX + 1];
    char *password; /* sodium_malloc'd, wiped */
    struct directory_result res;
    struct dcancel cancel; /* shared with the worker while running */
};

/* Users the directory confirmed lately, for key logins: a small ring,
 * the oldest entry overwritten. */
#define DIRECTORY_CACHE_SLOTS 256

struct dcache {
    char user[DIRECTORY_USER_MAX + 1];
    int64_t until_ms; /* util_mono_ms(); 0: empty */
};

struct dslot {
    unsigned running, waiting;
    struct djob *head, *tail;
    char *svc_password; /* opened bind_password_sealed, sodium_malloc'd */
    struct dcache cache[DIRECTORY_CACHE_SLOTS];
    unsigned cache_next;
};

struct directory_service {
    struct loop *loop;
    struct directory_conf *dirs;
    size_t ndirs;
    struct dslot *slots;
    unsigned running_total; /* jobs on worker threads, answered or not */
    struct djob *run_head;  /* those jobs */
    bool dying;             /* freed once the last running job is back */
};

static struct directory_service *directory_shared;

struct directory_service *directory_service_shared(void)
{
    return directory_shared;
}

void directory_service_set_shared(struct directory_service *s)
{
    directory_shared = s;
}

static char *dsecret_dup(const char *s, size_t len)
{
    char *p = sodium_malloc(len + 1);

    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static void dsecret_free(char *s)
{
    if (s != NULL) {
        sodium_free(s); /* sodium_free wipes */
    }
}

struct directory_service *directory_service_new(struct loop *l,
                                                const struct config *cfg,
                                                const struct vault *v,
                                                char *why, size_t whylen)
{
    struct directory_service *s = calloc(1, sizeof(*s));
    char ad[VAULT_AD_MAX];
    uint8_t *plain = NULL;
    size_t plen = 0;

    /* sodium_malloc (the passwords' copies) needs it; idempotent */
    if (s == NULL || sodium_init() < 0) {
        snprintf(why, whylen, "out of memory");
        free(s);
        return NULL;
    }
    s->loop = l;
    if (directory_conf_parse(cfg, &s->dirs, &s->ndirs, why, whylen) != ERR_OK) {
        free(s);
        return NULL;
    }
    if (s->ndirs > 0) {
        int version = 0;

        /* libldap initialises its globals (and reads ldap.conf) on first
         * use, unlocked: make that happen here, in the loop's thread,
         * before any worker thread calls it. */
        (void)ldap_get_option(NULL, LDAP_OPT_PROTOCOL_VERSION, &version);
    }
    if (s->ndirs > 0 &&
        (s->slots = calloc(s->ndirs, sizeof(*s->slots))) == NULL) {
        snprintf(why, whylen, "out of memory");
        directory_service_free(s);
        return NULL;
    }
    for (size_t i = 0; i < s->ndirs; i++) {
        if (s->dirs[i].bind_password_sealed == NULL) {
            continue;
        }
        vault_ad(ad, DIRECTORY_AD_BIND, s->dirs[i].name);
        if (v == NULL || vault_open(v, ad, s->dirs[i].bind_password_sealed,
                                    s->dirs[i].bind_password_sealed_len, &plain,
                                    &plen) != ERR_OK) {
            snprintf(why, whylen,
                     "%s:%d: [directory \"%s\"] bind_password_sealed does "
                     "not open with this vault key (seal it again with "
                     "`portcullis directory seal-password %s`)",
                     cfg->path, s->dirs[i].line, s->dirs[i].name,
                     s->dirs[i].name);
            directory_service_free(s);
            return NULL;
        }
        s->slots[i].svc_password = dsecret_dup((const char *)plain, plen);
        vault_secret_free(plain, plen);
        if (s->slots[i].svc_password == NULL) {
            snprintf(why, whylen, "out of memory");
            directory_service_free(s);
            return NULL;
        }
    }
    return s;
}

static void djob_free(struct djob *j)
{
    if (j == NULL) {
        return;
    }
    dcancel_drop(&j->cancel); /* the worker is done: no lock needed */
    pthread_mutex_destroy(&j->cancel.lock);
    dsecret_free(j->password);
    directory_result_clear(&j->res);
    sodium_memzero(j->user, sizeof(j->user));
    free(j);
}

static void directory_service_destroy(struct directory_service *s)
{
    for (size_t i = 0; s->slots != NULL && i < s->ndirs; i++) {
        dsecret_free(s->slots[i].svc_password);
    }
    free(s->slots);
    directory_conf_free(s->dirs, s->ndirs);
    if (directory_shared == s) {
        directory_shared = NULL;
    }
    free(s);
}

void directory_service_free(struct directory_service *s)
{
    struct djob *j;

    if (s == NULL) {
        return;
    }
    for (size_t i = 0; s->slots != NULL && i < s->ndirs; i++) {
        while ((j = s->slots[i].head) != NULL) {
            s->slots[i].head = j->next;
            if (j->timer != 0) {
                loop_del_timer(s->loop, j->timer);
            }
            djob_free(j);
        }
        s->slots[i].tail = NULL;
        s->slots[i].waiting = 0;
    }
    if (directory_shared == s) {
        directory_shared = NULL;
    }
    if (s->running_total > 0) {
        /* Their threads still read the configuration: the last one back
         * frees the rest (djob_after). Their timers go now. */
        for (j = s->run_head; j != NULL; j = j->run_next) {
            j->done = NULL;
            if (j->timer != 0) {
                loop_del_timer(s->loop, j->timer);
                j->timer = 0;
            }
            /* and they end now: serve's stop waits for its threads */
            pthread_mutex_lock(&j->cancel.lock);
            j->cancel.cancelled = true;
            if (j->cancel.fd >= 0) {
                (void)shutdown(j->cancel.fd, SHUT_RDWR);
            }
            pthread_mutex_unlock(&j->cancel.lock);
        }
        s->dying = true;
        return;
    }
    directory_service_destroy(s);
}

size_t directory_service_count(const struct directory_service *s)
{
    return s != NULL ? s->ndirs : 0;
}

unsigned directory_service_workers(const struct directory_service *s)
{
    unsigned n = 0;

    for (size_t i = 0; s != NULL && i < s->ndirs; i++) {
        n += (unsigned)s->dirs[i].max_concurrent_binds;
    }
    return n;
}

const struct directory_conf *
directory_service_find(const struct directory_service *s, const char *domain)
{
    return s != NULL ? directory_conf_find(s->dirs, s->ndirs, domain) : NULL;
}

const struct directory_conf *
directory_service_nth(const struct directory_service *s, size_t i)
{
    return s != NULL && i < s->ndirs ? &s->dirs[i] : NULL;
}

void directory_service_load(const struct directory_service *s,
                            unsigned *running, unsigned *waiting)
{
    *running = s != NULL ? s->running_total : 0;
    *waiting = 0;
    for (size_t i = 0; s != NULL && i < s->ndirs; i++) {
        *waiting += s->slots[i].waiting;
    }
}

/* On a worker thread: touches the job and the read-only configuration. */
static void djob_work(void *arg)
{
    struct djob *j = arg;
    struct directory_service *s = j->s;

    if (j->lookup) {
        (void)dcheck_lookup(&s->dirs[j->dir], s->slots[j->dir].svc_password,
                            j->user, &j->res, NULL, NULL, &j->cancel);
    } else {
        (void)dcheck_login(&s->dirs[j->dir], s->slots[j->dir].svc_password,
                           j->user, j->password, &j->res, NULL, NULL,
                           &j->cancel);
    }
}

static void dslot_start(struct directory_service *s, size_t dir);

static struct dcache *dslot_cached(struct dslot *sl, const char *user)
{
    for (unsigned i = 0; i < DIRECTORY_CACHE_SLOTS; i++) {
        if (sl->cache[i].until_ms != 0 &&
            strcasecmp(sl->cache[i].user, user) == 0) {
            return &sl->cache[i];
        }
    }
    return NULL;
}

static void dslot_remember(struct directory_service *s, size_t dir,
                           const char *user)
{
    struct dslot *sl = &s->slots[dir];
    struct dcache *e = dslot_cached(sl, user);
    int secs = s->dirs[dir].key_cache_seconds;

    if (secs == 0) {
        return;
    }
    if (e == NULL) {
        e = &sl->cache[sl->cache_next];
        sl->cache_next = (sl->cache_next + 1) % DIRECTORY_CACHE_SLOTS;
        snprintf(e->user, sizeof(e->user), "%s", user);
    }
    e->until_ms = util_mono_ms() + (int64_t)secs * 1000;
}

bool directory_service_cached(const struct directory_service *s,
                              const char *domain, const char *user)
{
    const struct directory_conf *d = directory_service_find(s, domain);
    struct dcache *e;

    if (d == NULL) {
        return false;
    }
    e = dslot_cached(&s->slots[d - s->dirs], user);
    return e != NULL && e->until_ms > util_mono_ms();
}

/* Answers j once (done is cleared), unless forgotten. */
static void djob_answer(struct djob *j, const struct directory_result *res)
{
    directory_done_fn done = j->done;

    j->done = NULL;
    if (j->timer != 0) {
        loop_del_timer(j->s->loop, j->timer);
        j->timer = 0;
    }
    if (done != NULL) {
        done(j->ctx, j->tag, res);
    }
}

static void djob_after(struct loop *l, void *arg)
{
    struct djob *j = arg, **pp;
    struct directory_service *s = j->s;
    size_t dir = j->dir;

    (void)l;
    for (pp = &s->run_head; *pp != NULL; pp = &(*pp)->run_next) {
        if (*pp == j) {
            *pp = j->run_next;
            break;
        }
    }
    s->running_total--;
    s->slots[dir].running--;
    if (!s->dying && j->res.status == ERR_OK) {
        dslot_remember(s, dir, j->user);
    }
    if (!s->dying) {
        djob_answer(j, &j->res);
    }
    djob_free(j);
    if (s->dying) {
        if (s->running_total == 0) {
            directory_service_destroy(s);
        }
        return;
    }
    dslot_start(s, dir);
}

static int djob_run(struct directory_service *s, struct djob *j)
{
    if (loop_work(s->loop, djob_work, djob_after, j) != ERR_OK) {
        return ERR_IO;
    }
    j->running = true;
    j->run_next = s->run_head;
    s->run_head = j;
    s->running_total++;
    s->slots[j->dir].running++;
    return ERR_OK;
}

static void dslot_start(struct directory_service *s, size_t dir)
{
    struct dslot *sl = &s->slots[dir];
    struct djob *j;

    while (sl->running < (unsigned)s->dirs[dir].max_concurrent_binds &&
           (j = sl->head) != NULL) {
        sl->head = j->next;
        if (sl->head == NULL) {
            sl->tail = NULL;
        }
        sl->waiting--;
        j->next = NULL;
        if (djob_run(s, j) != ERR_OK) {
            struct directory_result res = {.status = ERR_CONNECT};

            snprintf(res.why, sizeof(res.why), "directory %s unreachable",
                     s->dirs[dir].name);
            djob_answer(j, &res);
            djob_free(j);
        }
    }
}

/* The deadline: whatever libldap is doing, the user gets an answer now;
 * a job still running is answered no more (its result is dropped). */
static void djob_on_deadline(struct loop *l, void *arg)
{
    struct djob *j = arg, **pp;
    struct directory_service *s = j->s;
    struct dslot *sl = &s->slots[j->dir];
    struct directory_result res = {.status = ERR_TIMEOUT};

    (void)l;
    j->timer = 0;
    snprintf(res.why, sizeof(res.why),
             "directory %s unreachable (no answer within %d s)",
             s->dirs[j->dir].name, s->dirs[j->dir].timeout_seconds);
    log_warn("%s", res.why);
    djob_answer(j, &res);
    if (j->running) {
        /* free its thread: whatever it waits for on the socket ends */
        pthread_mutex_lock(&j->cancel.lock);
        j->cancel.cancelled = true;
        if (j->cancel.fd >= 0) {
            (void)shutdown(j->cancel.fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&j->cancel.lock);
    } else {
        for (pp = &sl->head; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == j) {
                *pp = j->next;
                break;
            }
        }
        sl->tail = NULL;
        for (struct djob *t = sl->head; t != NULL; t = t->next) {
            sl->tail = t;
        }
        sl->waiting--;
        djob_free(j);
    }
}

static int directory_submit(struct directory_service *s, const char *domain,
                            const char *user, const char *password, bool lookup,
                            directory_done_fn done, void *ctx, uint64_t tag);

int directory_login_async(struct directory_service *s, const char *domain,
                          const char *user, const char *password,
                          directory_done_fn done, void *ctx, uint64_t tag)
{
    return directory_submit(s, domain, user, password, false, done, ctx, tag);
}

int directory_lookup_async(struct directory_service *s, const char *domain,
                           const char *user, directory_done_fn done, void *ctx,
                           uint64_t tag)
{
    return directory_submit(s, domain, user, "", true, done, ctx, tag);
}

static int directory_submit(struct directory_service *s, const char *domain,
                            const char *user, const char *password, bool lookup,
                            directory_done_fn done, void *ctx, uint64_t tag)
{
    const struct directory_conf *d = directory_service_find(s, domain);
    struct djob *j;
    struct dslot *sl;
    size_t dir;

    if (d == NULL) {
        return ERR_NOT_FOUND;
    }
    dir = (size_t)(d - s->dirs);
    sl = &s->slots[dir];
    if (sl->running >= (unsigned)d->max_concurrent_binds &&
        sl->waiting >= (unsigned)d->max_concurrent_binds * 8) {
        return ERR_DENIED;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        return ERR_NOMEM;
    }
    pthread_mutex_init(&j->cancel.lock, NULL);
    j->cancel.fd = -1;
    j->s = s;
    j->dir = dir;
    j->lookup = lookup;
    j->done = done;
    j->ctx = ctx;
    j->tag = tag;
    snprintf(j->user, sizeof(j->user), "%s", user != NULL ? user : "");
    password = password != NULL ? password : "";
    if ((j->password = dsecret_dup(password, strlen(password))) == NULL) {
        djob_free(j);
        return ERR_NOMEM;
    }
    j->timer = loop_add_timer(s->loop, (int64_t)d->timeout_seconds * 1000,
                              djob_on_deadline, j);
    if (j->timer == 0) {
        djob_free(j);
        return ERR_NOMEM;
    }
    if (sl->running < (unsigned)d->max_concurrent_binds) {
        if (djob_run(s, j) != ERR_OK) {
            loop_del_timer(s->loop, j->timer);
            djob_free(j);
            return ERR_IO;
        }
        return ERR_OK;
    }
    if (sl->tail != NULL) {
        sl->tail->next = j;
    } else {
        sl->head = j;
    }
    sl->tail = j;
    sl->waiting++;
    return ERR_OK;
}

void directory_service_forget(struct directory_service *s, const void *ctx)
{
    struct djob **pp, *j;

    for (size_t i = 0; s != NULL && i < s->ndirs; i++) {
        struct dslot *sl = &s->slots[i];

        for (pp = &sl->head; (j = *pp) != NULL;) {
            if (j->ctx == ctx) {
                *pp = j->next;
                sl->waiting--;
                if (j->timer != 0) {
                    loop_del_timer(s->loop, j->timer);
                }
                djob_free(j);
            } else {
                pp = &j->next;
            }
        }
        sl->tail = NULL;
        for (j = sl->head; j != NULL; j = j->next) {
            sl->tail = j;
        }
    }
    /* Running ones finish on their threads, unanswered. */
    for (j = s != NULL ? s->run_head : NULL; j != NULL; j = j->run_next) {
        if (j->ctx == ctx) {
            j->done = NULL;
            if (j->timer != 0) {
                loop_del_timer(s->loop, j->timer);
                j->timer = 0;
            }
        }
    }
}
