/*
 * The parts of the store that do not depend on a database: role and
 * native-session names, site path normalization, and the input checks in
 * store_internal.h. Every store driver shares them, so a name refused by
 * SQLite is refused by PostgreSQL too.
 */
#include "store/store.h"

#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/store_internal.h"

static const char *const store_role_names[] = {"none", "viewer", "editor",
                                               "owner"};
static const char *const store_native_names[] = {"deny", "allow", "record"};

int store_name_index(const char *const *names, int lo, int hi, const char *s)
{
    for (int i = lo; s != NULL && i <= hi; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

const char *store_role_str(int role)
{
    if (role < ROLE_NONE || role > ROLE_OWNER) {
        return "none";
    }
    return store_role_names[role];
}

int store_role_parse(const char *s)
{
    return store_name_index(store_role_names, ROLE_NONE, ROLE_OWNER, s);
}

const char *store_native_str(int native)
{
    if (native < NATIVE_DENY || native > NATIVE_RECORD) {
        return "deny";
    }
    return store_native_names[native];
}

int store_native_parse(const char *s)
{
    return store_name_index(store_native_names, NATIVE_DENY, NATIVE_RECORD, s);
}

static bool store_has_ctrl(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f) {
            return true;
        }
    }
    return false;
}

int store_check_len(const char *s, size_t max)
{
    if (s != NULL && strnlen(s, max + 1) > max) {
        return ERR_TOO_LONG;
    }
    return ERR_OK;
}

int store_check_text(const char *s, size_t max, bool required)
{
    size_t len;

    if (s == NULL || s[0] == '\0') {
        return required ? ERR_INVALID : ERR_OK;
    }
    if ((len = strnlen(s, max + 1)) > max) {
        return ERR_TOO_LONG;
    }
    return store_has_ctrl(s, len) ? ERR_INVALID : ERR_OK;
}

int store_check_name(const char *s)
{
    int r = store_check_text(s, STORE_NAME_MAX, true);

    if (r != ERR_OK) {
        return r;
    }
    return util_is_uuid(s) ? ERR_INVALID : ERR_OK;
}

int store_check_user_name(const char *s)
{
    int r = store_check_name(s);

    if (r != ERR_OK) {
        return r;
    }
    return strpbrk(s, "/?#") != NULL ? ERR_INVALID : ERR_OK;
}

bool store_id_norm(const char *s, char *out)
{
    if (s == NULL || !util_is_uuid(s)) {
        return false;
    }
    for (size_t i = 0; i <= UTIL_UUID_LEN; i++) {
        char c = s[i];

        out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    return true;
}

bool store_grantee_norm(struct store_grantee *g, const char *user_id,
                        const char *group_id)
{
    bool has_user = user_id != NULL && user_id[0] != '\0';
    bool has_group = group_id != NULL && group_id[0] != '\0';

    memset(g, 0, sizeof(*g));
    if (has_user == has_group ||
        (has_user && !store_id_norm(user_id, g->user)) ||
        (has_group && !store_id_norm(group_id, g->group))) {
        return false;
    }
    g->user_id = has_user ? g->user : NULL;
    g->group_id = has_group ? g->group : NULL;
    return true;
}

/* One path segment: not empty, not "." or "..", no control characters and
 * none of the login grammar's '?' and '#' (a site named so could never be
 * written in a login), and not a UUID (site references take an ID too). */
static int store_site_segment_ok(const char *seg, size_t len)
{
    char id[UTIL_UUID_LEN + 1];

    if (len == 0 || (len == 1 && seg[0] == '.') ||
        (len == 2 && seg[0] == '.' && seg[1] == '.')) {
        return ERR_INVALID;
    }
    if (store_has_ctrl(seg, len) || memchr(seg, '?', len) != NULL ||
        memchr(seg, '#', len) != NULL) {
        return ERR_INVALID;
    }
    if (len == UTIL_UUID_LEN) {
        memcpy(id, seg, len);
        id[len] = '\0';
        if (util_is_uuid(id)) {
            return ERR_INVALID;
        }
    }
    return ERR_OK;
}

int store_site_normalize(const char *in, char *out, size_t outlen)
{
    static const char root[] = "/root";
    const char *p = in == NULL ? "" : in;
    size_t len, o, max;
    bool first = true;
    int r;

    if (outlen > 0) {
        out[0] = '\0';
    }
    max = outlen > 0 ? outlen - 1 : 0;
    if (max > STORE_PATH_MAX) {
        max = STORE_PATH_MAX;
    }
    if (max < sizeof(root) - 1) {
        return ERR_TOO_LONG;
    }
    if (strstr(p, "//") != NULL) {
        return ERR_INVALID;
    }
    len = strlen(p);
    if (len > 0 && p[len - 1] == '/') {
        len--;
    }
    if (len > 0 && p[0] == '/') {
        p++;
        len--;
    }
    memcpy(out, root, sizeof(root));
    o = sizeof(root) - 1;
    while (len > 0) {
        const char *slash = memchr(p, '/', len);
        size_t seg = slash != NULL ? (size_t)(slash - p) : len;

        if ((r = store_site_segment_ok(p, seg)) != ERR_OK) {
            out[0] = '\0';
            return r;
        }
        /* "root" as the first segment names /root itself. */
        if (!(first && seg == 4 && memcmp(p, "root", 4) == 0)) {
            if (o + 1 + seg > max) {
                out[0] = '\0';
                return ERR_TOO_LONG;
            }
            out[o++] = '/';
            memcpy(out + o, p, seg);
            o += seg;
            out[o] = '\0';
        }
        first = false;
        if (slash == NULL) {
            break;
        }
        /* A trailing slash was stripped above, so text follows this one. */
        len -= seg + 1;
        p = slash + 1;
    }
    return ERR_OK;
}

bool store_route_valid(const char *route)
{
    const char *id;
    size_t n = 0;

    if (route == NULL) {
        return false;
    }
    if (strcmp(route, "direct") == 0) {
        return true;
    }
    if (strncmp(route, "agent:", 6) == 0) {
        id = route + 6;
    } else if (strncmp(route, "peer:", 5) == 0) {
        id = route + 5;
    } else {
        return false;
    }
    /* an agent ID (docs/agent-protocol.md) or a peer's name: 1-64 of
     * A-Z a-z 0-9 . _ - */
    for (; id[n] != '\0'; n++) {
        char c = id[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= 64;
}
