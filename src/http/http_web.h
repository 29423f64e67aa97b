/*
 * The web UI's side of the HTTP listener: the built UI (web/dist) served
 * at / by http_static.c, the security headers of every answer, and the
 * settings route the UI reads (http_res_settings.c). See docs/web.md.
 *
 * A GET or HEAD whose path is not under /api/ (nor /healthz, /metrics or
 * /agent) is the UI's: http_static_get() answers it from [http] web_root
 * with a file, 404 for a missing file of a type it serves (.js, .css,
 * ...), index.html for any other path (the UI routes in the browser), or,
 * when the UI is not built, a short text saying how to build it.
 *
 * Ownership: struct http_static_resp owns its body (heap);
 * http_static_resp_clear() frees it and may be called on a zeroed one.
 */
#ifndef PORTCULLIS_HTTP_WEB_H
#define PORTCULLIS_HTTP_WEB_H

#include <stdbool.h>
#include <stddef.h>

#include <libwebsockets.h>

#include "common/config.h"

#define HTTP_STATIC_FILE_MAX (32 * 1024 * 1024) /* largest file served */

struct http_static_resp {
    int status;
    char *body;        /* the bytes to send (NULL for HEAD); heap */
    size_t len;        /* bytes in body */
    size_t length;     /* the Content-Length (also for HEAD) */
    const char *type;  /* Content-Type */
    const char *cache; /* Cache-Control */
    bool gzip;         /* Content-Encoding: gzip */
    bool vary;         /* Vary: Accept-Encoding (a .gz sibling exists) */
};

/* Whether a request of method for path is the web UI's (not the API's). */
bool http_static_claims(int method, const char *path);

/* Answers a GET (head false) or HEAD (head true) of path from cfg's
 * web_root; accept_gzip says the client's Accept-Encoding takes gzip.
 * Always fills out (status 200, 404, 500 or 503): ERR_OK, or ERR_NOMEM. */
int http_static_get(const struct config *cfg, const char *path, bool head,
                    bool accept_gzip, struct http_static_resp *out);
void http_static_resp_clear(struct http_static_resp *r);

/* Whether an Accept-Encoding header value accepts gzip (not "gzip;q=0"). */
bool http_static_accepts_gzip(const char *accept_encoding);

/* Adds the security headers of an answer: the UI's Content-Security-Policy
 * when ui is true, else the API's (nothing may load); nosniff, no
 * referrer, no framing on both. Returns non-zero when they do not fit. */
int http_web_security_headers(struct lws *wsi, bool ui, unsigned char **p,
                              unsigned char *end);

/* The UI's Content-Security-Policy (for docs and tests). */
extern const char http_web_csp[];

struct http_req;

/* GET /api/v1/settings: the SSH proxy's address, port and host-key
 * fingerprint and the HTTP listener's URL, for the UI's command lines. */
int http_h_settings(struct http_req *req);

#endif
