/*
 * The login-grammar parser; see login.h and SPEC §3.
 *
 * The SSH user name a client sends is the first untrusted input the proxy
 * sees, before any authentication, so this file is deliberately strict and
 * deliberately small: one pass over the raw bytes refuses NUL and control
 * characters everywhere, then the string is cut into spans (offset and
 * length into the caller's bytes, never pointers) at '#', '?', '/' and
 * '@', and each span is checked against its own character set and named
 * maximum before it is copied into the caller's struct.
 *
 * Error messages are static strings: they are shown to the user and
 * written to logs, so they never quote the input (the TOTP digits in
 * particular must never reach a log). On any failure the whole struct is
 * zeroed, so a half-parsed login (a TOTP code copied before the asset was
 * found bad, say) is never left behind.
 */
#include "login/login.h"

#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

/* A piece of the input: s[off .. off + len). */
struct login_span {
    size_t off;
    size_t len;
};

static bool login_is_alnum(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9');
}

static bool login_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Index of the first c in sp at or after sp.off + from, or SIZE_MAX. */
static size_t login_find(const char *s, struct login_span sp, size_t from,
                         char c)
{
    size_t i;

    for (i = from; i < sp.len; i++) {
        if (s[sp.off + i] == c) {
            return i;
        }
    }
    return SIZE_MAX;
}

/* Copies a checked span into dst, which has room for sp.len + 1. */
static void login_copy(char *dst, const char *s, struct login_span sp)
{
    if (sp.len > 0) {
        memcpy(dst, &s[sp.off], sp.len);
    }
    dst[sp.len] = '\0';
}

/* The part of sp from index a (inclusive) to b (exclusive). */
static struct login_span login_sub(struct login_span sp, size_t a, size_t b)
{
    struct login_span r = {sp.off + a, b - a};

    return r;
}

/* true if every byte of sp is a space (or sp is empty). */
static bool login_is_blank(const char *s, struct login_span sp)
{
    size_t i;

    for (i = 0; i < sp.len; i++) {
        if (s[sp.off + i] != ' ') {
            return false;
        }
    }
    return true;
}

/*
 * Decodes one UTF-8 sequence at s[i] (n bytes available). Returns its
 * length and the code point, or 0 if it is malformed: truncated, a stray
 * continuation byte, an over-long form, a surrogate or above U+10FFFF.
 * Refusing these keeps every asset name a string that JSON (the audit
 * log, the REST API) and the store can carry unchanged.
 */
static size_t login_utf8_next(const char *s, size_t i, size_t n, uint32_t *cp)
{
    unsigned char c = (unsigned char)s[i];
    size_t need;
    uint32_t v;
    uint32_t min;
    size_t k;

    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        v = c & 0x1fu;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        v = c & 0x0fu;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n - i < need) {
        return 0;
    }
    for (k = 1; k < need; k++) {
        unsigned char cc = (unsigned char)s[i + k];

        if ((cc & 0xc0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (cc & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) {
        return 0;
    }
    *cp = v;
    return need;
}

/*
 * Code points outside ASCII that an asset name may not hold: the C1
 * controls, and the line separators and bidirectional overrides that can
 * make a logged or displayed name read differently from what it is.
 */
static bool login_cp_forbidden(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
           cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* Asset: any printable text (it may hold spaces, '/', '?', '@'). */
static int login_check_asset(const char *s, struct login_span sp,
                             const char **why)
{
    bool blank = true;
    size_t i = 0;

    if (sp.len == 0) {
        *why = "missing asset name or ID after '#'";
        return ERR_INVALID;
    }
    if (sp.len > LOGIN_ASSET_MAX) {
        *why = "asset name or ID is too long";
        return ERR_TOO_LONG;
    }
    while (i < sp.len) {
        uint32_t cp = 0;
        size_t n = login_utf8_next(s, sp.off + i, sp.off + sp.len, &cp);

        if (n == 0) {
            *why = "asset name is not valid UTF-8";
            return ERR_INVALID;
        }
        if (login_cp_forbidden(cp)) {
            *why = "asset name contains a control character";
            return ERR_INVALID;
        }
        if (cp != ' ') {
            blank = false;
        }
        i += n;
    }
    if (blank) {
        *why = "asset name is blank";
        return ERR_INVALID;
    }
    return ERR_OK;
}

/*
 * Site: a name ("DevOps") or a path ("DevOps/Linux", "/root/DevOps").
 * Empty, "." and ".." components are refused so that one site has one
 * spelling: "DevOps//Linux" or "DevOps/./Linux" would otherwise be a
 * different string for the same place when policy looks it up.
 */
static int login_check_site(const char *s, struct login_span sp,
                            const char **why)
{
    size_t i;
    size_t start = 0;

    if (sp.len == 0) {
        *why = "missing site name after '/'";
        return ERR_INVALID;
    }
    if (sp.len > LOGIN_SITE_MAX) {
        *why = "site name is too long";
        return ERR_TOO_LONG;
    }
    for (i = 0; i < sp.len; i++) {
        unsigned char c = (unsigned char)s[sp.off + i];

        if (!login_is_alnum(c) && c != ' ' && c != '.' && c != '_' &&
            c != '-' && c != '/') {
            *why = "site name may contain only letters, digits, spaces, "
                   "'.', '_', '-' and '/'";
            return ERR_INVALID;
        }
    }
    /* Walk the components; a leading '/' (an absolute path) is allowed. */
    if (s[sp.off] == '/') {
        start = 1;
    }
    for (i = start; i <= sp.len; i++) {
        size_t n;

        if (i < sp.len && s[sp.off + i] != '/') {
            continue;
        }
        n = i - start;
        if (n == 0) {
            *why = "site path must not contain '//' or end with '/'";
            return ERR_INVALID;
        }
        if (login_is_blank(s, login_sub(sp, start, i))) {
            *why = "site name is blank";
            return ERR_INVALID;
        }
        if (s[sp.off + start] == '.' &&
            (n == 1 || (n == 2 && s[sp.off + start + 1] == '.'))) {
            *why = "site path must not contain '.' or '..' parts";
            return ERR_INVALID;
        }
        start = i + 1;
    }
    return ERR_OK;
}

static int login_check_totp(const char *s, struct login_span sp,
                            const char **why)
{
    size_t i;

    if (login_find(s, sp, 0, '/') != SIZE_MAX) {
        *why = "'/site' must come before '?TOTP' in login";
        return ERR_INVALID;
    }
    if (sp.len != LOGIN_TOTP_LEN) {
        *why = "TOTP code must be 6 digits";
        return ERR_INVALID;
    }
    for (i = 0; i < sp.len; i++) {
        if (!login_is_digit((unsigned char)s[sp.off + i])) {
            *why = "TOTP code must be 6 digits";
            return ERR_INVALID;
        }
    }
    return ERR_OK;
}

static int login_check_username(const char *s, struct login_span sp,
                                const char **why)
{
    size_t i;
    unsigned char first;

    if (sp.len == 0) {
        *why = "missing user name in login";
        return ERR_INVALID;
    }
    if (sp.len > LOGIN_USER_MAX) {
        *why = "user name is too long";
        return ERR_TOO_LONG;
    }
    for (i = 0; i < sp.len; i++) {
        unsigned char c = (unsigned char)s[sp.off + i];

        if (!login_is_alnum(c) && c != '.' && c != '_' && c != '-') {
            *why = "user name may contain only letters, digits, '.', '_' "
                   "and '-'";
            return ERR_INVALID;
        }
    }
    first = (unsigned char)s[sp.off];
    if (first == '-' || first == '.') {
        *why = "user name must not start with '-' or '.'";
        return ERR_INVALID;
    }
    return ERR_OK;
}

static int login_check_domain(const char *s, struct login_span sp,
                              const char **why)
{
    size_t i;

    if (sp.len == 0) {
        *why = "missing domain after '@'";
        return ERR_INVALID;
    }
    if (sp.len > LOGIN_DOMAIN_MAX) {
        *why = "domain is too long";
        return ERR_TOO_LONG;
    }
    for (i = 0; i < sp.len; i++) {
        unsigned char c = (unsigned char)s[sp.off + i];

        if (!login_is_alnum(c) && c != '.' && c != '-') {
            *why = "domain may contain only letters, digits, '.' and '-'";
            return ERR_INVALID;
        }
        if (c == '.' &&
            (i == 0 || i + 1 == sp.len || s[sp.off + i + 1] == '.')) {
            *why = "domain must not start or end with '.' or contain '..'";
            return ERR_INVALID;
        }
    }
    return ERR_OK;
}

/* principal = username [ "@" domain ]; fills username, domain, principal. */
static int login_parse_principal(const char *s, struct login_span sp,
                                 struct login *out, const char **why)
{
    size_t at = login_find(s, sp, 0, '@');
    struct login_span user = sp;
    struct login_span dom = {0, 0};
    int r;

    if (at != SIZE_MAX) {
        if (login_find(s, sp, at + 1, '@') != SIZE_MAX) {
            *why = "more than one '@' in user name";
            return ERR_INVALID;
        }
        user = login_sub(sp, 0, at);
        dom = login_sub(sp, at + 1, sp.len);
    }
    if ((r = login_check_username(s, user, why)) != ERR_OK) {
        return r;
    }
    if (at != SIZE_MAX && (r = login_check_domain(s, dom, why)) != ERR_OK) {
        return r;
    }
    login_copy(out->username, s, user);
    login_copy(out->domain, s, dom);
    /* username and "@domain" are contiguous in the input: copy both. */
    login_copy(out->principal, s, sp);
    return ERR_OK;
}

/* Everything before '#': principal [ "/" site ] [ "?" totp ]. */
static int login_parse_left(const char *s, struct login_span sp,
                            struct login *out, const char **why)
{
    size_t q = login_find(s, sp, 0, '?');
    size_t slash;
    struct login_span head = sp;
    struct login_span totp = {0, 0};
    struct login_span site = {0, 0};
    int r;

    if (q != SIZE_MAX) {
        head = login_sub(sp, 0, q);
        totp = login_sub(sp, q + 1, sp.len);
        if (login_find(s, totp, 0, '?') != SIZE_MAX) {
            *why = "more than one '?' in login";
            return ERR_INVALID;
        }
    }
    slash = login_find(s, head, 0, '/');
    if (slash != SIZE_MAX) {
        site = login_sub(head, slash + 1, head.len);
        head = login_sub(head, 0, slash);
    }
    if ((r = login_parse_principal(s, head, out, why)) != ERR_OK) {
        return r;
    }
    if (slash != SIZE_MAX) {
        if ((r = login_check_site(s, site, why)) != ERR_OK) {
            return r;
        }
        login_copy(out->site, s, site);
    }
    if (q != SIZE_MAX) {
        if ((r = login_check_totp(s, totp, why)) != ERR_OK) {
            return r;
        }
        login_copy(out->totp, s, totp);
    }
    return ERR_OK;
}

static int login_parse_inner(const char *s, size_t len, struct login *out,
                             const char **why)
{
    struct login_span all = {0, len};
    size_t hash;
    size_t i;
    int r;

    if (len == 0) {
        *why = "empty login";
        return ERR_INVALID;
    }
    if (len > LOGIN_MAX) {
        *why = "login is too long";
        return ERR_TOO_LONG;
    }
    /* Control bytes are refused in every part, so check them once. */
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\0') {
            *why = "NUL byte in login";
            return ERR_INVALID;
        }
        if (c < 0x20 || c == 0x7f) {
            *why = "control character in login";
            return ERR_INVALID;
        }
    }
    hash = login_find(s, all, 0, '#');
    if (hash == SIZE_MAX) {
        *why = "missing '#asset' in login";
        return ERR_INVALID;
    }
    if (login_find(s, all, hash + 1, '#') != SIZE_MAX) {
        *why = "more than one '#' in login";
        return ERR_INVALID;
    }
    if ((r = login_parse_left(s, login_sub(all, 0, hash), out, why)) !=
        ERR_OK) {
        return r;
    }
    if ((r = login_check_asset(s, login_sub(all, hash + 1, len), why)) !=
        ERR_OK) {
        return r;
    }
    login_copy(out->asset, s, login_sub(all, hash + 1, len));
    out->asset_is_id = util_is_uuid(out->asset);
    return ERR_OK;
}

int login_parse(const char *s, size_t len, struct login *out, const char **why)
{
    const char *reason = NULL;
    int r;

    if (out == NULL) {
        if (why != NULL) {
            *why = "internal error: no login struct";
        }
        return ERR_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if (s == NULL && len > 0) {
        r = ERR_INVALID;
        reason = "missing login";
    } else {
        r = login_parse_inner(s, len, out, &reason);
    }
    if (r != ERR_OK) {
        /* Also wipes a TOTP code copied before a later part failed. */
        memset(out, 0, sizeof(*out));
        if (why != NULL) {
            *why = reason != NULL ? reason : "invalid login";
        }
        return r;
    }
    if (why != NULL) {
        *why = NULL;
    }
    return ERR_OK;
}
