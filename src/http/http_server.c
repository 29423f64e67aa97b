/*
 * The HTTP listener: libwebsockets in the main process's libuv loop.
 *
 * libwebsockets parses HTTP/1.1 (headers are bounded by
 * max_http_header_data) and, when [http] tls_cert / tls_key are set,
 * speaks TLS. This file turns its callbacks into one struct http_req per
 * request and writes the answer:
 *
 *  - a connection limit per client address, checked when a connection is
 *    accepted (LWS_CALLBACK_FILTER_NETWORK_CONNECTION) and counted from
 *    its adoption (SERVER_NEW_CLIENT_INSTANTIATED) to the wsi's
 *    destruction, or to its upgrade to a WebSocket; from then on, until
 *    it authenticates (the agent's SSH login, the terminal's token
 *    message: http_ws_authed()), it counts as a pre-auth WebSocket of its
 *    address, capped by [http] max_preauth_websockets_per_source (checked
 *    at the upgrade). An authenticated WebSocket counts nowhere here, so
 *    many agents may share one NAT address; the hub and the terminal
 *    bound their own numbers and give each pre-auth socket 10 s;
 *  - a body limit: a Content-Length above [http] max_body_bytes is
 *    answered 413 at once and the connection closed, without reading the
 *    body; a body without a Content-Length (chunked) is refused with 411;
 *  - timeouts: libwebsockets' own for headers and idle keep-alive, and a
 *    deadline for the body ([http] timeout_seconds);
 *  - the answer: written from the WRITEABLE callback in slices (so a big
 *    list never needs one huge write), delayed first when the handler
 *    asks (a failed login answers after failure_delay_ms, from a loop
 *    timer, without blocking the loop).
 *
 * Plain HTTP is served only on a loopback address unless [http]
 * allow_plain_http says otherwise (http_addr.h); `serve` checks this
 * before it binds anything, and http_start() checks again so no caller
 * can skip it.
 *
 * Everything runs in the loop's one thread, so nothing here locks.
 */
#include "http/http_internal.h"
#include "route/route.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <libwebsockets.h>
#include <uv.h>
#include <sodium.h>

#include "common/err.h"
#include "auth/directory.h"
#include "auth/password.h"
#include "common/log.h"
#include "common/addr.h"
#include "common/srccount.h"
#include "http/http_web.h"

#define HTTP_WRITE_SLICE 16384
#define HTTP_AUTH_HEADER_MAX (JWT_MAX + 64)
#define HTTP_LOGIN_SLOTS 4096
#define HTTP_STOP_MS 500    /* for libwebsockets to close everything */
#define HTTP_SERV_BUF 65536 /* libwebsockets' read size (pt_serv_buf_size) */

/* A wsi's place in its source's counts (common/srccount.h), its opaque
 * user data from its adoption until it goes or authenticates: an HTTP
 * connection (kind HTTP_SRC_CONN), or an upgraded WebSocket not yet
 * authenticated (HTTP_SRC_WS). */
enum { HTTP_SRC_CONN = 0, HTTP_SRC_WS = 1 };
struct http_hold {
    int kind;
    struct srccount_src *src;
};

/* Per connection (libwebsockets' per-session data, zeroed at bind). */
struct http_conn {
    struct http *h;
    struct lws *wsi;
    struct http_req *req;
    char *authz;
    char *body;
    size_t body_len, body_cap;
    bool awaiting_body, too_large;
    /* the answer */
    char *out;
    size_t out_len, out_off;
    bool responding, headers_sent, close_after;
    uint64_t timer;
    /* a file of the web UI (http_static.c) instead of an API answer */
    bool is_static;
    struct http_static_resp st;
    struct http_conn *next_deferred; /* in h->deferred while req waits */
    struct http_sse *sse;            /* a streamed answer (http_sse.c) */
};

const char *http_method_str(int m)
{
    static const char *const names[HM__COUNT] = {
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};

    return m >= 0 && m < HM__COUNT ? names[m] : "?";
}

/* --- connections per source ------------------------------------------- */

static bool http_fd_peer(int fd, char *ip, size_t iplen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
        return false;
    }
    if (ss.ss_family == AF_INET) {
        return inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip,
                         (socklen_t)iplen) != NULL;
    }
    if (ss.ss_family == AF_INET6) {
        return inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip,
                         (socklen_t)iplen) != NULL;
    }
    return false;
}

/* A new connection from ip: counted until its wsi goes. NULL (not
 * counted) when out of memory. */
static struct http_hold *http_hold_new(struct http *h, const char *ip)
{
    struct http_hold *k = calloc(1, sizeof(*k));

    if (k == NULL) {
        return NULL;
    }
    if ((k->src = srccount_add(h->srcs, ip, HTTP_SRC_CONN)) == NULL) {
        free(k);
        return NULL;
    }
    k->kind = HTTP_SRC_CONN;
    return k;
}

/* The wsi is going: whatever it is counted as, it no longer is. */
static void http_hold_release(struct http *h, struct lws *wsi)
{
    struct http_hold *k = lws_get_opaque_user_data(wsi);

    lws_set_opaque_user_data(wsi, NULL);
    if (k == NULL) {
        return;
    }
    srccount_drop(h->srcs, k->src, k->kind);
    free(k);
}

/* An upgrade from src's address may go ahead: fewer than the cap of its
 * WebSockets are still unauthenticated. */
static bool http_ws_admit(struct http *h, struct lws *wsi)
{
    struct http_hold *k = lws_get_opaque_user_data(wsi);

    if (k == NULL || k->kind != HTTP_SRC_CONN) {
        return true;
    }
    if (k->src->n[HTTP_SRC_WS] >=
        (unsigned)h->cfg->http_max_preauth_ws_per_source) {
        log_warn("http: refusing a WebSocket from %s: %u not yet "
                 "authenticated already",
                 k->src->text, k->src->n[HTTP_SRC_WS]);
        return false;
    }
    return true;
}

/* The upgrade is done: the connection leaves its source's connection
 * count for its pre-auth WebSocket count. */
static void http_ws_established(struct http *h, struct lws *wsi)
{
    struct http_hold *k = lws_get_opaque_user_data(wsi);

    (void)h;
    if (k == NULL || k->kind != HTTP_SRC_CONN) {
        return;
    }
    srccount_move(k->src, HTTP_SRC_CONN, HTTP_SRC_WS);
    k->kind = HTTP_SRC_WS;
}

void http_ws_authed(struct lws *wsi)
{
    struct http_hold *k = lws_get_opaque_user_data(wsi);

    if (k != NULL && k->kind == HTTP_SRC_WS) {
        http_hold_release(lws_context_user(lws_get_context(wsi)), wsi);
    }
}

static void http_hub_authed(void *arg, struct lws *wsi)
{
    (void)arg;
    http_ws_authed(wsi);
}

/* --- requests ---------------------------------------------------------- */

/* Takes c off the list of requests answered later, if it is there. */
static void http_conn_undefer(struct http_conn *c)
{
    struct http_conn **pp;

    if (c->req == NULL || c->req->deferred == 0 || c->h == NULL) {
        return;
    }
    for (pp = &c->h->deferred; *pp != NULL; pp = &(*pp)->next_deferred) {
        if (*pp == c) {
            *pp = c->next_deferred;
            break;
        }
    }
    c->next_deferred = NULL;
    c->req->deferred = 0;
}

static void http_conn_reset(struct http_conn *c)
{
    http_conn_undefer(c);
    if (c->timer != 0 && c->h != NULL) {
        loop_del_timer(c->h->loop, c->timer);
    }
    c->timer = 0;
    if (c->req != NULL) {
        http_req_clear(c->req);
        free(c->req);
        c->req = NULL;
    }
    if (c->authz != NULL) {
        sodium_memzero(c->authz, strlen(c->authz));
        free(c->authz);
        c->authz = NULL;
    }
    if (c->body != NULL) {
        /* Bodies carry passwords (login, user add). */
        sodium_memzero(c->body, c->body_cap);
        free(c->body);
        c->body = NULL;
    }
    if (c->out != NULL) {
        sodium_memzero(c->out, c->out_len);
        free(c->out);
        c->out = NULL;
    }
    c->body_len = c->body_cap = c->out_len = c->out_off = 0;
    http_sse_free(c->sse);
    c->sse = NULL;
    c->is_static = false;
    http_static_resp_clear(&c->st);
    c->awaiting_body = c->too_large = false;
    c->responding = c->headers_sent = c->close_after = false;
}

static int http_method_of(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes tok;
        int m;
    } map[] = {
        {WSI_TOKEN_GET_URI, HM_GET},         {WSI_TOKEN_POST_URI, HM_POST},
        {WSI_TOKEN_PUT_URI, HM_PUT},         {WSI_TOKEN_PATCH_URI, HM_PATCH},
        {WSI_TOKEN_DELETE_URI, HM_DELETE},   {WSI_TOKEN_HEAD_URI, HM_HEAD},
        {WSI_TOKEN_OPTIONS_URI, HM_OPTIONS},
    };

    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (lws_hdr_total_length(wsi, map[i].tok) > 0) {
            return map[i].m;
        }
    }
    return -1;
}

/* The query string as "a=b&c=d" (each fragment is already URL-decoded by
 * libwebsockets; '&' and '=' inside values are therefore ambiguous, which
 * the list parameters never need). */
static int http_copy_query(struct lws *wsi, char *out, size_t outlen)
{
    char frag[512];
    size_t used = 0;
    int n, len;

    out[0] = '\0';
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) <= 0) {
        return ERR_OK;
    }
    if ((size_t)lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) >= outlen) {
        return ERR_TOO_LONG;
    }
    for (n = 0;; n++) {
        /* -1 past the last fragment (each is shorter than the total) */
        len = lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
                                    WSI_TOKEN_HTTP_URI_ARGS, n);
        if (len <= 0) {
            break;
        }
        if (used + (size_t)len + 2 > outlen) {
            return ERR_TOO_LONG;
        }
        if (used > 0) {
            out[used++] = '&';
        }
        memcpy(out + used, frag, (size_t)len);
        used += (size_t)len;
        out[used] = '\0';
    }
    return ERR_OK;
}

static void http_on_timer(struct loop *l, void *arg)
{
    struct http_conn *c = arg;

    c->timer = 0;
    lws_callback_on_writable(c->wsi);
}

/* Serializes the request's answer into c->out and asks to write it. */
static void http_respond(struct http_conn *c)
{
    struct http_req *req = c->req;
    json_t *doc = NULL;
    char *s = NULL;

    if (req->raw != NULL) {
        c->out = req->raw;
        c->out_len = req->raw_len > 0 ? req->raw_len : strlen(req->raw);
        req->raw = NULL;
    } else if (req->status != 204 && req->method != HM_HEAD) {
        if (req->errors != NULL) {
            doc = json_pack("{s:O}", "errors", req->errors);
        } else {
            /* "o" steals: hand it references of its own */
            doc = json_pack(
                "{s:o, s:o}", "data",
                req->data != NULL ? json_incref(req->data) : json_null(),
                "meta",
                req->meta != NULL ? json_incref(req->meta) : json_object());
        }
        if (doc == NULL || (s = json_dumps(doc, JSON_COMPACT)) == NULL) {
            req->status = 500;
            s = strdup("{\"errors\":[{\"code\":\"internal\",\"title\":"
                       "\"Internal error\",\"detail\":\"out of memory\"}]}");
        }
        json_decref(doc);
        c->out = s;
        c->out_len = s != NULL ? strlen(s) : 0;
    }
    if (req->status == 503 && req->retry_after == 0) {
        req->retry_after = 1; /* every 503: try again in a moment */
    }
    if (req->status >= 500) {
        c->h->m.responses_5xx++;
    } else if (req->status >= 400) {
        c->h->m.responses_4xx++;
    }
    c->responding = true;
    if (req->delay_ms > 0) {
        c->timer = loop_add_timer(c->h->loop, req->delay_ms, http_on_timer, c);
        if (c->timer != 0) {
            return;
        }
    }
    lws_callback_on_writable(c->wsi);
}

/* A request refused before it reached the route table (413, 411). */
static void http_refuse(struct http_conn *c, int status, const char *code,
                        const char *title, const char *detail)
{
    c->close_after = true;
    c->awaiting_body = false;
    http_error(c->req, status, code, title, "%s", detail);
    http_respond(c);
}

static void http_run(struct http_conn *c)
{
    c->req->authorization = c->authz;
    c->req->body_data = c->body != NULL ? c->body : "";
    c->req->body_len = c->body_len;
    c->req->conn = c;
    http_dispatch(c->req);
    if (c->req->deferred == 0 && c->sse == NULL) {
        http_respond(c);
    }
}

int http_conn_stream(struct http_req *req, struct http_sse *s)
{
    struct http_conn *c = req->conn;

    if (c == NULL || c->sse != NULL || req->deferred != 0) {
        return ERR_INVALID;
    }
    c->sse = s;
    c->close_after = true;
    lws_callback_on_writable(c->wsi);
    return ERR_OK;
}

struct lws *http_conn_wsi(struct http_req *req)
{
    return req->conn != NULL ? req->conn->wsi : NULL;
}

int http_defer(struct http_req *req, uint64_t *id)
{
    struct http_conn *c = req->conn;

    if (c == NULL || req->deferred != 0) {
        return ERR_INVALID;
    }
    req->deferred = ++req->h->next_deferred;
    c->next_deferred = req->h->deferred;
    req->h->deferred = c;
    *id = req->deferred;
    return ERR_OK;
}

void http_undefer(struct http_req *req)
{
    if (req->conn != NULL) {
        http_conn_undefer(req->conn);
    }
}

struct http_req *http_deferred(struct http *h, uint64_t id)
{
    for (struct http_conn *c = h->deferred; c != NULL; c = c->next_deferred) {
        if (c->req != NULL && c->req->deferred == id) {
            return c->req;
        }
    }
    return NULL;
}

void http_resume(struct http_req *req)
{
    struct http_conn *c = req->conn;

    http_conn_undefer(c);
    if (req->errors == NULL && req->data == NULL && req->raw == NULL &&
        req->status != 204) {
        http_error(req, 500, "internal", "Internal error",
                   "the handler gave no answer");
    }
    http_respond(c);
}

void http_share_auth(struct http *h, struct password_pool *p, struct lockout *l)
{
    if (h == NULL) {
        return;
    }
    h->hashes = p;
    if (l != NULL) {
        if (!h->lockout_borrowed) {
            lockout_free(h->lockout);
        }
        h->lockout = l;
        h->lockout_borrowed = true;
    }
}

/* A GET or HEAD of the web UI (http_static.c): no token, no body. */
static int http_on_static(struct http_conn *c, struct lws *wsi)
{
    char ae[256] = "";

    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_ACCEPT_ENCODING) > 0 &&
        lws_hdr_copy(wsi, ae, sizeof(ae), WSI_TOKEN_HTTP_ACCEPT_ENCODING) < 0) {
        ae[0] = '\0';
    }
    if (http_static_get(c->h->cfg, c->req->path, c->req->method == HM_HEAD,
                        http_static_accepts_gzip(ae), &c->st) != ERR_OK) {
        return -1;
    }
    c->is_static = true;
    c->req->status = c->st.status;
    c->out = c->st.body; /* c->out owns it from here */
    c->st.body = NULL;
    c->out_len = c->st.len;
    c->responding = true;
    lws_callback_on_writable(wsi);
    return 0;
}

static int http_on_request(struct http_conn *c, struct lws *wsi,
                           const char *path)
{
    struct http_req *req;
    char clen[32];
    long long want = 0;
    int alen;

    http_conn_reset(c);
    c->h = lws_context_user(lws_get_context(wsi));
    c->wsi = wsi;
    if ((c->req = calloc(1, sizeof(*c->req))) == NULL) {
        return -1;
    }
    req = c->req;
    req->h = c->h;
    c->h->m.requests++;
    req->method = http_method_of(wsi);
    snprintf(req->path, sizeof(req->path), "%s", path != NULL ? path : "/");
    lws_get_peer_simple(wsi, req->client_ip, sizeof(req->client_ip));
    snprintf(req->client, sizeof(req->client), "%s", req->client_ip);
    if (req->method < 0) {
        http_refuse(c, 405, "method_not_allowed", "Method not allowed",
                    "this method is not supported");
        return 0;
    }
    if (strlen(path != NULL ? path : "") >= sizeof(req->path) ||
        http_copy_query(wsi, req->query, sizeof(req->query)) != ERR_OK) {
        http_refuse(c, 414, "uri_too_long", "URI too long",
                    "the path or query string is too long");
        return 0;
    }
    if (http_static_claims(req->method, req->path)) {
        return http_on_static(c, wsi);
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HOST) > 0 &&
        lws_hdr_copy(wsi, req->host, sizeof(req->host), WSI_TOKEN_HOST) < 0) {
        req->host[0] = '\0';
    }
    alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    if (alen > 0) {
        if (alen > HTTP_AUTH_HEADER_MAX ||
            (c->authz = malloc((size_t)alen + 1)) == NULL ||
            lws_hdr_copy(wsi, c->authz, alen + 1,
                         WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
            http_refuse(c, 400, "bad_request", "Bad request",
                        "the Authorization header is too long");
            return 0;
        }
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        http_refuse(c, 411, "length_required", "Length required",
                    "send the body with a Content-Length");
        return 0;
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        if (lws_hdr_copy(wsi, clen, sizeof(clen),
                         WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0) {
            want = -1;
        } else {
            char *end = NULL;

            errno = 0;
            want = strtoll(clen, &end, 10);
            if (errno != 0 || end == clen || *end != '\0' || want < 0) {
                want = -1;
            }
        }
        if (want < 0) {
            http_refuse(c, 400, "bad_request", "Bad request",
                        "malformed Content-Length");
            return 0;
        }
        if (want > c->h->cfg->http_max_body) {
            http_refuse(c, 413, "payload_too_large", "Payload too large",
                        "the body is larger than the server accepts");
            return 0;
        }
        if (want > 0) {
            c->body_cap = (size_t)want + 1;
            if ((c->body = malloc(c->body_cap)) == NULL) {
                return -1;
            }
            c->awaiting_body = true;
            lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT,
                            c->h->cfg->http_timeout_seconds);
            return 0;
        }
        if (req->method == HM_POST) {
            /* libwebsockets follows a POST with an explicit zero length
             * with HTTP_BODY_COMPLETION. */
            c->awaiting_body = true;
            return 0;
        }
    }
    http_run(c);
    return 0;
}

static int http_on_body(struct http_conn *c, const void *in, size_t len)
{
    if (!c->awaiting_body || c->req == NULL || len == 0) {
        return 0;
    }
    if (c->body == NULL || len > c->body_cap - 1 - c->body_len) {
        c->too_large = true;
        return 0;
    }
    memcpy(c->body + c->body_len, in, len);
    c->body_len += len;
    c->body[c->body_len] = '\0';
    return 0;
}

static int http_on_body_done(struct http_conn *c, struct lws *wsi)
{
    if (!c->awaiting_body || c->req == NULL) {
        return 0;
    }
    c->awaiting_body = false;
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    if (c->too_large) {
        http_refuse(c, 413, "payload_too_large", "Payload too large",
                    "the body is larger than its Content-Length");
        return 0;
    }
    http_run(c);
    return 0;
}

static int http_add_header(struct lws *wsi, const char *name, const char *value,
                           unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

static int http_on_writeable(struct http_conn *c, struct lws *wsi)
{
    unsigned char buf[LWS_PRE + HTTP_WRITE_SLICE];
    unsigned char *start = buf + LWS_PRE, *p = start;
    unsigned char *end = buf + sizeof(buf) - 1;
    struct http_req *req = c->req;
    const char *type;
    char retry[16];
    size_t n;
    bool last;

    if (c->sse != NULL) {
        /* a stream: it closes the connection when it is complete */
        return http_sse_writeable(c->sse, wsi) == 0 ? 0 : -1;
    }
    if (!c->responding || req == NULL || c->timer != 0) {
        return 0;
    }
    if (!c->headers_sent && c->is_static) {
        if (lws_add_http_common_headers(wsi, (unsigned)req->status, c->st.type,
                                        c->st.length, &p, end) ||
            http_add_header(wsi, "cache-control:", c->st.cache, &p, end) ||
            (c->st.gzip &&
             http_add_header(wsi, "content-encoding:", "gzip", &p, end)) ||
            (c->st.vary &&
             http_add_header(wsi, "vary:", "Accept-Encoding", &p, end)) ||
            http_web_security_headers(wsi, true, &p, end) ||
            lws_finalize_write_http_header(wsi, start, &p, end)) {
            return -1;
        }
        c->headers_sent = true;
        if (c->out_len > 0) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else if (!c->headers_sent) {
        snprintf(retry, sizeof(retry), "%d", req->retry_after);
        type = req->raw_type != NULL ? req->raw_type : "application/json";
        if (lws_add_http_common_headers(
                wsi, (unsigned)req->status, type,
                c->out_len > 0
                    ? (lws_filepos_t)c->out_len
                    : (req->status == 204 ? LWS_ILLEGAL_HTTP_CONTENT_LEN : 0),
                &p, end) ||
            http_add_header(wsi, "cache-control:", "no-store", &p, end) ||
            http_web_security_headers(wsi, false, &p, end) ||
            (req->allow[0] != '\0' &&
             http_add_header(wsi, "allow:", req->allow, &p, end)) ||
            (req->www_auth &&
             http_add_header(wsi, "www-authenticate:",
                             "Bearer realm=\"portcullis\"", &p, end)) ||
            (req->retry_after > 0 &&
             http_add_header(wsi, "retry-after:", retry, &p, end)) ||
            (c->close_after &&
             http_add_header(wsi, "connection:", "close", &p, end)) ||
            lws_finalize_write_http_header(wsi, start, &p, end)) {
            return -1;
        }
        c->headers_sent = true;
        if (c->out_len > 0) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    } else {
        n = c->out_len - c->out_off;
        last = n <= HTTP_WRITE_SLICE;
        if (!last) {
            n = HTTP_WRITE_SLICE;
        }
        memcpy(start, c->out + c->out_off, n);
        if (lws_write(wsi, start, n,
                      last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) != (int)n) {
            return -1;
        }
        c->out_off += n;
        if (!last) {
            lws_callback_on_writable(wsi);
            return 0;
        }
    }
    /* The whole answer is out. */
    if (c->close_after) {
        return -1;
    }
    http_conn_reset(c);
    if (lws_http_transaction_completed(wsi)) {
        return -1;
    }
    return 0;
}

static const struct lws_protocols http_protocol;

/* Descriptors are allocated lowest first, so a new connection's number
 * is at least how many are open. Within HTTP_FD_RESERVE of the limit a
 * new connection is closed at once (a clean refusal the client sees as
 * a close) and the rest stay for what open agents, SQLite and the log
 * need. Without it the process ran out: accept() failed with EMFILE,
 * the listener stayed readable, and the loop spun on it (and
 * libwebsockets logged "accept: errno 24" ~400,000 times a second).
 * The limit is read each time: an operator may change it (prlimit). */
#define HTTP_FD_RESERVE 64

static bool http_fd_low(int fd)
{
    static struct timespec said;
    static unsigned refused;
    struct timespec now;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        (rlim_t)fd + HTTP_FD_RESERVE < rl.rlim_cur) {
        return false;
    }
    refused++;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (said.tv_sec == 0 || now.tv_sec - said.tv_sec >= 10) {
        log_warn("http: refusing connections: descriptor %d of at most %llu "
                 "open (%u refused since the last such line; raise "
                 "LimitNOFILE, or lower [agent] max_agents)",
                 fd, (unsigned long long)rl.rlim_cur, refused);
        refused = 0;
        said = now;
    }
    return true;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason,
                         void *user, void *in, size_t len)
{
    struct http *h = lws_context_user(lws_get_context(wsi));
    struct http_conn *c = user;
    struct srccount_src *src;
    char ip[64];

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        if (http_fd_low((int)(intptr_t)in)) {
            return 1;
        }
        if (http_fd_peer((int)(intptr_t)in, ip, sizeof(ip)) &&
            (src = srccount_find(h->srcs, ip)) != NULL &&
            src->n[HTTP_SRC_CONN] >=
                (unsigned)h->cfg->http_max_conns_per_source) {
            log_warn("http: refusing a connection from %s (source %s): %u "
                     "open already",
                     ip, src->text, src->n[HTTP_SRC_CONN]);
            return 1;
        }
        return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        /* (WSI_CREATE comes before the socket is attached) */
        if (http_fd_peer(lws_get_socket_fd(wsi), ip, sizeof(ip))) {
            lws_set_opaque_user_data(wsi, http_hold_new(h, ip));
        }
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        http_hold_release(h, wsi);
        /* Only a connection still on the HTTP protocol has a struct
         * http_conn as its user data: an upgraded WebSocket's (agents, the
         * terminal) belongs to its own protocol. */
        if (c != NULL && lws_get_protocol(wsi) == &http_protocol) {
            http_conn_undefer(c); /* its memory goes now */
            /* a stream's watcher must not wake this wsi any more */
            http_sse_free(c->sse);
            c->sse = NULL;
        }
        return 0;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* A WebSocket upgrade without a subprotocol of ours lands here. */
        return 1;
    case LWS_CALLBACK_HTTP:
        return http_on_request(c, wsi, in);
    case LWS_CALLBACK_HTTP_BODY:
        return http_on_body(c, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return http_on_body_done(c, wsi);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_on_writeable(c, wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (c != NULL) {
            http_conn_reset(c);
        }
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* tx_packet_size: without it libwebsockets sends at most its service
 * buffer (4 KiB) per send() and keeps the rest of each slice for later
 * turns of the loop, one 4 KiB piece per POLLOUT; a busy loop (1,000
 * agents returning job results) then took seconds to write a 500 KB
 * answer. */
static const struct lws_protocols http_protocol = {
    "http", http_callback, sizeof(struct http_conn), 0,
    0,      NULL,          HTTP_WRITE_SLICE};

/* The agents' WebSocket: the HTTP side's part is the path (GET /agent
 * only) and the per-source counts: an upgraded connection leaves the
 * connection count for the pre-auth WebSocket count, which it leaves in
 * turn when the agent authenticates (the hub tells http_hub_authed), so
 * many agents may share one NAT address while one address cannot hold
 * many unauthenticated sockets. Everything else is the hub's
 * (lws_get_protocol(wsi)->user). */
static int http_agent_callback(struct lws *wsi,
                               enum lws_callback_reasons reason, void *user,
                               void *in, size_t len)
{
    struct http *h = lws_context_user(lws_get_context(wsi));
    char uri[64];

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, "/agent") != 0 || !http_ws_admit(h, wsi)) {
            return 1;
        }
        break;
    case LWS_CALLBACK_ESTABLISHED:
        http_ws_established(h, wsi);
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        http_hold_release(h, wsi);
        break;
    default:
        break;
    }
    return h->hub_callback(wsi, reason, user, in, len);
}

/* The browser terminal's WebSocket (http_term.c): as the agents' one, the
 * path (GET /api/v1/terminal only) is checked here and the upgraded
 * connection counts as a pre-auth WebSocket of its address until its
 * token message is accepted (http_term.c calls http_ws_authed; it bounds
 * terminals itself); everything else is http_term_callback's. */
static int http_term_route_callback(struct lws *wsi,
                                    enum lws_callback_reasons reason,
                                    void *user, void *in, size_t len)
{
    struct http *h = lws_context_user(lws_get_context(wsi));
    char uri[64];

    switch (reason) {
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (h->tickets == NULL ||
            lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
            strcmp(uri, HTTP_TERM_PATH) != 0 || !http_ws_admit(h, wsi)) {
            return 1;
        }
        break;
    case LWS_CALLBACK_ESTABLISHED:
        http_ws_established(h, wsi);
        break;
    case LWS_CALLBACK_WSI_DESTROY:
        http_hold_release(h, wsi);
        break;
    default:
        break;
    }
    return http_term_callback(wsi, reason, user, in, len);
}

/* An error libwebsockets repeats (out of descriptors, every turn of the
 * loop retries the accept and says "accept: errno 24") is logged once,
 * then once per HTTP_LWS_REPEAT_S with how often it came meanwhile,
 * instead of a thousand lines a second. */
#define HTTP_LWS_REPEAT_S 10

static void http_lws_log(int level, const char *line)
{
    static char last[512];
    static unsigned repeats;
    static struct timespec since;
    struct timespec now;
    char msg[512];
    size_t n;

    snprintf(msg, sizeof(msg), "%s", line);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    if (!(level & LLL_ERR)) {
        log_debug("lws: %s", msg);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (strcmp(msg, last) == 0) {
        repeats++;
        if (now.tv_sec - since.tv_sec < HTTP_LWS_REPEAT_S) {
            return;
        }
        log_error("lws: %s (%u times in the last %d s)", msg, repeats,
                  (int)(now.tv_sec - since.tv_sec));
    } else {
        if (repeats > 0) {
            log_error("lws: %s (%u more times)", last, repeats);
        }
        log_error("lws: %s", msg);
        snprintf(last, sizeof(last), "%s", msg);
    }
    repeats = 0;
    since = now;
}

/* --- start and stop ---------------------------------------------------- */

int http_start(struct http **out, const struct config *cfg, struct loop *loop,
               struct store *store, struct vault *vault, struct hub *hub,
               struct webtickets *tickets)
{
    size_t np = 0;
    struct lws_context_creation_info info;
    struct http *h = NULL;
    void *loops[1];
    char why[512];
    int r;

    *out = NULL;
    if (cfg->http_port == 0) {
        log_info("http: port 0, the HTTP listener is off");
        return ERR_OK;
    }
    if ((r = addr_check_plain_http(cfg, why, sizeof(why))) != ERR_OK) {
        log_error("http: %s", why);
        return r;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        return ERR_NOMEM;
    }
    h->cfg = cfg;
    h->loop = loop;
    h->store = store;
    h->vault = vault;
    h->hub = hub;
    /* peer checks reach a peer's proxy as sessions do (route/route.h) */
    if ((h->routes = routes_new(loop, cfg, hub)) == NULL) {
        free(h);
        return ERR_NOMEM;
    }
    routes_set_store(h->routes, store, vault);
    h->tickets = tickets;
    if ((h->srcs = srccount_new()) == NULL) {
        r = ERR_NOMEM;
        goto fail;
    }
    if ((r = jwt_key_load(cfg->http_jwt_secret, true, &h->key)) != ERR_OK) {
        log_error("http: cannot load the JWT secret %s: %s",
                  cfg->http_jwt_secret, err_str(r));
        goto fail;
    }
    h->lockout = lockout_new(cfg->max_failures, cfg->failure_window_seconds,
                             cfg->lockout_seconds, HTTP_LOGIN_SLOTS);
    if (h->lockout == NULL) {
        r = ERR_NOMEM;
        goto fail;
    }
    lws_set_log_level(LLL_ERR | (log_get_level() >= LOG_DEBUG ? LLL_NOTICE : 0),
                      http_lws_log);
    /* libwebsockets loads its libuv glue as a plugin and unloads it when
     * the context is destroyed, while libuv may still hold handles whose
     * close callbacks live in it (seen when the server is stopped right
     * after it started: a jump into the unmapped plugin). Keep it loaded
     * for the life of the process. */
    if (dlopen("libwebsockets-evlib_uv.so", RTLD_NOW | RTLD_NODELETE) == NULL) {
        log_warn("http: cannot pin libwebsockets' libuv plugin: %s", dlerror());
    }
    memset(&info, 0, sizeof(info));
    loops[0] = loop_uv(loop);
    info.foreign_loops = loops;
    /* Security headers (CSP, nosniff, ...) are ours: http_web.h. */
    info.options = LWS_SERVER_OPTION_LIBUV;
    if (strchr(cfg->http_listen, ':') == NULL) {
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    }
    info.port = cfg->http_port;
    info.iface = cfg->http_listen;
    /* The first protocol takes plain HTTP; WebSocket upgrades pick theirs
     * by Sec-WebSocket-Protocol (the agents' one comes from the hub). */
    h->protocols[np++] = http_protocol;
    if (hub != NULL) {
        hub_set_auth_fn(hub, http_hub_authed, h);
        h->protocols[np] = *hub_lws_protocol(hub);
        h->hub_callback = h->protocols[np].callback;
        h->protocols[np++].callback = http_agent_callback;
    }
    h->protocols[np].name = HTTP_TERM_PROTOCOL;
    h->protocols[np].callback = http_term_route_callback;
    h->protocols[np++].per_session_data_size = http_term_pss_size;
    memset(&h->protocols[np], 0, sizeof(h->protocols[np]));
    info.protocols = h->protocols;
    info.user = h;
    info.pcontext = &h->ctx;
    info.timeout_secs = (unsigned)cfg->http_timeout_seconds;
    info.keepalive_timeout = cfg->http_timeout_seconds;
    info.max_http_header_data = 8192;
    /* The service buffer every read lands in (one per service thread):
     * 4 KiB by default, which read an agent's 64 KiB frames (a download
     * through a tunnel) 4 KiB and one turn of the loop at a time. */
    info.pt_serv_buf_size = HTTP_SERV_BUF;
    info.server_string = "portcullis";
    info.alpn = "http/1.1";
    if (cfg->http_tls_cert != NULL && cfg->http_tls_cert[0] != '\0') {
        if (cfg->http_tls_key == NULL || cfg->http_tls_key[0] == '\0') {
            log_error("http: tls_cert needs tls_key");
            r = ERR_CONFIG;
            goto fail;
        }
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->http_tls_cert;
        info.ssl_private_key_filepath = cfg->http_tls_key;
        h->tls = true;
    }
    h->ctx = lws_create_context(&info);
    if (h->ctx == NULL) {
        log_error("http: cannot listen on %s port %d", cfg->http_listen,
                  cfg->http_port);
        r = ERR_IO;
        goto fail;
    }
    if ((r = http_pairs_new(h)) != ERR_OK) {
        goto fail;
    }
    if ((r = http_off_new(h)) != ERR_OK) {
        goto fail;
    }
    log_info("http: listening on %s port %d (%s)", cfg->http_listen,
             cfg->http_port, h->tls ? "https" : "http");
    *out = h;
    return ERR_OK;
fail:
    lockout_free(h->lockout);
    jwt_key_free(h->key);
    routes_free(h->routes);
    srccount_free(h->srcs);
    free(h);
    return r;
}

static void http_stop_expired(struct loop *l, void *arg)
{
    *(bool *)arg = true;
}

void http_stop(struct http *h)
{
    uint64_t deadline;
    bool expired = false;

    if (h == NULL) {
        return;
    }
    /* The pool outlives h: none of its answers may come here any more. */
    password_pool_forget(h->hashes, h);
    directory_service_forget(directory_service_shared(), h);
    if (h->ctx != NULL) {
        lws_context_destroy(h->ctx);
        /* On a foreign loop the context finishes closing its handles in
         * their close callbacks (and timers), and clears h->ctx (pcontext)
         * when it is gone: run the loop until then, with a deadline. Its
         * last step needs lws_context_destroy() once more after the close
         * callbacks ran; without that call here every stop waited for the
         * whole deadline (0.5 s a server stop, ~40 % of the e2e core's
         * time), the loop idle. */
        deadline =
            loop_add_timer(h->loop, HTTP_STOP_MS, http_stop_expired, &expired);
        while (h->ctx != NULL && !expired && deadline != 0) {
            uv_run(loop_uv(h->loop), UV_RUN_ONCE);
            if (h->ctx != NULL) {
                lws_context_destroy(h->ctx);
            }
        }
        if (!expired) {
            loop_del_timer(h->loop, deadline);
        }
        /* Its last step may have been deferred (it was inside its own
         * service when the handles closed): a second call finishes it. */
        for (int i = 0; i < 3 && h->ctx != NULL; i++) {
            lws_context_destroy(h->ctx);
            uv_run(loop_uv(h->loop), UV_RUN_NOWAIT);
        }
        if (h->ctx != NULL) {
            log_warn("http: libwebsockets did not finish closing");
        }
    }
    http_job_follows_free(h);
    http_job_waits_forget(h);
    http_tunnel_waits_forget(h);
    /* after the connections: an answer that comes back finds none */
    http_off_free(h);
    http_sse_stop();
    srccount_free(h->srcs);
    http_pairs_free(h->pairs);
    /* after the connections: a pending check answers no one now */
    routes_free(h->routes);
    if (!h->lockout_borrowed) {
        lockout_free(h->lockout);
    }
    jwt_key_free(h->key);
    free(h);
}
