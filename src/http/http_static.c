/*
 * The web UI's files: web/dist (built by `npm run build` in web/) served
 * at / from [http] web_root, in the main process's loop.
 *
 * Why it is careful: the path comes from the network and web_root is a
 * directory beside secrets (a data directory holds vault.key). So a path
 * is served only when
 *   - every segment is made of [A-Za-z0-9._~-] and none starts with '.'
 *     (no "..", no dotfiles), and it names a file of a known type (a path
 *     with other characters can only be a route: it gets index.html);
 *   - web_root holds an index.html (a directory that is not a built UI,
 *     say the data directory after a typo, serves nothing at all);
 *   - realpath() of the file lies inside realpath() of web_root (no
 *     symlink leads out), and it is a regular file no larger than
 *     HTTP_STATIC_FILE_MAX, opened with O_NOFOLLOW.
 *
 * Caching: Vite names what it puts under /assets/ by a hash of the
 * content, so those are immutable for a year; everything else (index.html
 * above all, which names the current hashes) is revalidated every time.
 * Compression: the build writes a .gz beside each text file; it is sent
 * when the client accepts gzip (Vary: Accept-Encoding either way).
 *
 * Any other path answers index.html, unless it names a file of a type we
 * serve (.js, .css, ...) that is missing: the UI routes in the browser
 * (/assets/<id>, /users/j.doe, ...), and a reload must work.
 *
 * Files are read whole, synchronously, like the store's SQLite calls: the
 * UI is a few hundred KiB, and the page cache serves them.
 */
#include "http/http_internal.h"
#include "http/http_web.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"

#define HTTP_STATIC_IMMUTABLE "public, max-age=31536000, immutable"
#define HTTP_STATIC_REVALIDATE "no-cache"

/*
 * script-src: 'self' only, so no inline script and no eval; the recording
 * player (asciinema-player) compiles its terminal emulator from
 * WebAssembly, which needs 'wasm-unsafe-eval' (it permits compiling wasm,
 * not eval of JavaScript). style-src 'self': no inline <style> or style=
 * attributes (styles set through the CSSOM by scripts are not affected).
 * connect-src 'self': CSP level 3 matches same-origin ws: and wss: by
 * 'self', which the browser terminal's WebSocket needs. img-src data: for
 * the TOTP QR code's canvas snapshot. No framing, no <base>, forms post
 * only to us.
 */
const char http_web_csp[] =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/* What an API answer may load: nothing (it is JSON, never a page). */
static const char http_api_csp[] = "default-src 'none'; frame-ancestors 'none'";

static const char http_not_built[] =
    "the web UI is not built; run: cd web && npm ci && npm run build\n";

static const struct {
    const char *ext;
    const char *type;
} http_static_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".wasm", "application/wasm"},
    {".txt", "text/plain; charset=utf-8"},
};

bool http_static_claims(int method, const char *path)
{
    if (method != HM_GET && method != HM_HEAD) {
        return false;
    }
    if (strcmp(path, "/api") == 0 || strncmp(path, "/api/", 5) == 0) {
        return false;
    }
    return strcmp(path, "/healthz") != 0 && strcmp(path, "/metrics") != 0 &&
           strcmp(path, "/agent") != 0 && strncmp(path, "/pair/", 6) != 0;
}

bool http_static_accepts_gzip(const char *ae)
{
    const char *p = ae, *q, *qv;
    size_t n;

    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        n = strcspn(p, ",;");
        while (n > 0 && p[n - 1] == ' ') {
            n--;
        }
        if ((n == 4 && strncasecmp(p, "gzip", 4) == 0) ||
            (n == 1 && p[0] == '*')) {
            q = p + strcspn(p, ",");
            /* "gzip;q=0" (or q=0.0...) refuses it */
            qv = strstr(p, "q=");
            if (qv != NULL && qv < q) {
                return strtod(qv + 2, NULL) > 0.0;
            }
            return true;
        }
        p = strchr(p, ',');
    }
    return false;
}

static const char *http_static_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash != NULL ? slash : path, '.');

    if (dot == NULL) {
        return NULL;
    }
    for (size_t i = 0;
         i < sizeof(http_static_types) / sizeof(http_static_types[0]); i++) {
        if (strcmp(dot, http_static_types[i].ext) == 0) {
            return http_static_types[i].type;
        }
    }
    return NULL;
}

/* What a path may be used for: looked up as a file (every segment of
 * safe characters), only answered with index.html (other characters,
 * such as a user name with a space, are never looked up), or nothing (an
 * empty or dot segment: "..", ".", dotfiles; or too long). */
enum http_static_path { HSP_BAD = 0, HSP_FILE, HSP_ROUTE };

static enum http_static_path http_static_path_kind(const char *path)
{
    enum http_static_path kind = HSP_FILE;
    const char *p = path;

    if (path[0] != '/' || strlen(path) > 512) {
        return HSP_BAD;
    }
    while (*p == '/') {
        p++;
        if (*p == '\0') {
            return kind; /* "/" or a trailing slash */
        }
        if (*p == '.' || *p == '/') {
            return HSP_BAD;
        }
        while (*p != '\0' && *p != '/') {
            char ch = *p++;

            if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
                  ch == '-' || ch == '~')) {
                kind = HSP_ROUTE;
            }
        }
    }
    return *p == '\0' ? kind : HSP_BAD;
}

/* realpath(root + rel) when it is a regular file inside root. */
static bool http_static_resolve(const char *root, const char *rel,
                                char out[PATH_MAX])
{
    char joined[PATH_MAX];
    struct stat st;
    size_t rl = strlen(root);
    int n;

    n = snprintf(joined, sizeof(joined), "%s%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof(joined) || realpath(joined, out) == NULL) {
        return false;
    }
    if (strncmp(out, root, rl) != 0 || out[rl] != '/') {
        return false;
    }
    return stat(out, &st) == 0 && S_ISREG(st.st_mode);
}

static int http_static_read(const char *file, bool head, char **body,
                            size_t *len, size_t *length)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    ssize_t n;
    int fd, r = ERR_IO;

    *body = NULL;
    *len = *length = 0;
    fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        return ERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > HTTP_STATIC_FILE_MAX) {
        goto out;
    }
    *length = (size_t)st.st_size;
    if (head || st.st_size == 0) {
        r = ERR_OK;
        goto out;
    }
    if ((buf = malloc((size_t)st.st_size)) == NULL) {
        r = ERR_NOMEM;
        goto out;
    }
    while (got < (size_t)st.st_size) {
        n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto out;
        }
        got += (size_t)n;
    }
    *body = buf;
    *len = got;
    buf = NULL;
    r = ERR_OK;
out:
    free(buf);
    close(fd);
    return r;
}

static int http_static_text(struct http_static_resp *out, int status,
                            const char *text, bool head)
{
    out->status = status;
    out->type = "text/plain; charset=utf-8";
    out->cache = "no-store";
    out->length = strlen(text);
    if (!head) {
        if ((out->body = strdup(text)) == NULL) {
            return ERR_NOMEM;
        }
        out->len = out->length;
    }
    return ERR_OK;
}

int http_static_get(const struct config *cfg, const char *path, bool head,
                    bool accept_gzip, struct http_static_resp *out)
{
    char root[PATH_MAX], file[PATH_MAX], gz[PATH_MAX], rel[600];
    enum http_static_path kind;
    const char *type;
    bool have_gz;
    int r;

    memset(out, 0, sizeof(*out));
    if (cfg->http_web_root == NULL || cfg->http_web_root[0] == '\0' ||
        realpath(cfg->http_web_root, root) == NULL ||
        !http_static_resolve(root, "/index.html", file)) {
        return http_static_text(out, 503, http_not_built, head);
    }
    kind = http_static_path_kind(path);
    if (kind == HSP_BAD) {
        return http_static_text(out, 404, "not found\n", head);
    }
    if (strcmp(path, "/") == 0) {
        snprintf(rel, sizeof(rel), "/index.html");
    } else {
        snprintf(rel, sizeof(rel), "%s", path);
    }
    type = kind == HSP_FILE ? http_static_type(rel) : NULL;
    if (type == NULL || !http_static_resolve(root, rel, file)) {
        if (type != NULL) {
            /* a missing file of the build (an old hash, a typo) */
            return http_static_text(out, 404, "not found\n", head);
        }
        /* a route of the UI: the page that routes it */
        snprintf(rel, sizeof(rel), "/index.html");
        type = http_static_type(rel);
        if (!http_static_resolve(root, rel, file)) {
            return http_static_text(out, 503, http_not_built, head);
        }
    }
    out->type = type;
    out->cache = strncmp(rel, "/assets/", 8) == 0 ? HTTP_STATIC_IMMUTABLE
                                                  : HTTP_STATIC_REVALIDATE;
    /* the pre-compressed sibling, if the build made one */
    if (strlen(rel) + 4 < sizeof(rel)) {
        strcat(rel, ".gz");
        have_gz = http_static_resolve(root, rel, gz);
    } else {
        have_gz = false;
    }
    out->vary = have_gz;
    if (have_gz && accept_gzip) {
        r = http_static_read(gz, head, &out->body, &out->len, &out->length);
        if (r == ERR_OK) {
            out->gzip = true;
            out->status = 200;
            return ERR_OK;
        }
    }
    r = http_static_read(file, head, &out->body, &out->len, &out->length);
    if (r == ERR_NOMEM) {
        return r;
    }
    if (r != ERR_OK) {
        log_warn("http: cannot read %s", file);
        return http_static_text(out, 500, "cannot read the file\n", head);
    }
    out->status = 200;
    return ERR_OK;
}

void http_static_resp_clear(struct http_static_resp *r)
{
    if (r == NULL) {
        return;
    }
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static int http_web_header(struct lws *wsi, const char *name, const char *value,
                           unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

int http_web_security_headers(struct lws *wsi, bool ui, unsigned char **p,
                              unsigned char *end)
{
    return http_web_header(wsi, "content-security-policy:",
                           ui ? http_web_csp : http_api_csp, p, end) ||
           http_web_header(wsi, "x-content-type-options:", "nosniff", p, end) ||
           http_web_header(wsi, "referrer-policy:", "no-referrer", p, end) ||
           http_web_header(wsi, "x-frame-options:", "DENY", p, end);
}
