/*
 * The admin layer's shared rules: errors, validators, the descriptor
 * encoder, and the nouns without a file of their own (users and keys,
 * groups, sites, grants). See admin.h.
 */
#include "admin/admin.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/nthash.h"
#include "auth/password.h"
#include "auth/totp.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "common/vault.h"
#include "store/audit.h"

const char admin_msg_host[] = "host must be a host name or address";
const char admin_msg_fingerprint[] =
    "host key fingerprint must be SHA256:<43 base64 characters>, as "
    "ssh-keygen -l prints";
const char admin_msg_route[] =
    "route must be 'direct', 'agent:ID' or 'peer:NAME' (an agent ID or a "
    "peer name: 1-64 of A-Z a-z 0-9 . _ -)";

int admin_fail(struct admin_err *e, int code, const char *fmt, ...)
{
    va_list ap;

    if (e != NULL) {
        e->code = code;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A store error in words, naming what was looked for. */
static int admin_store_fail(struct admin_err *e, int r, const char *what,
                            const char *name)
{
    switch (r) {
    case ERR_NOT_FOUND:
        return admin_fail(e, r, "%s '%s' not found", what, name);
    case ERR_EXISTS:
        return admin_fail(e, r, "%s '%s' already exists", what, name);
    case ERR_TOO_LONG:
        return admin_fail(e, ERR_INVALID, "%s '%.64s': a value is too long",
                          what, name);
    case ERR_INVALID:
        return admin_fail(e, r, "%s '%.64s': invalid value", what, name);
    default:
        return admin_fail(e, r, "%s '%.64s': %s", what, name, err_str(r));
    }
}

int admin_set_name(char *dst, size_t size, const char *src, const char *what,
                   struct admin_err *e)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n == 0 || n >= size) {
        return admin_fail(e, ERR_INVALID, "a %s name is 1-%zu characters", what,
                          size - 1);
    }
    memcpy(dst, src, n + 1);
    return ERR_OK;
}

bool admin_host_valid(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && strchr(".-_:[]%", s[i]) == NULL) {
            return false;
        }
    }
    return i > 0 && i <= STORE_HOST_MAX;
}

bool admin_fingerprint_valid(const char *s)
{
    size_t i;

    if (strncmp(s, "SHA256:", 7) != 0) {
        return false;
    }
    s += 7;
    for (i = 0; s[i] != '\0'; i++) {
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/') {
            return false;
        }
    }
    return i == 43;
}

json_t *admin_json_time(int64_t t)
{
    char s[32];

    if (t == 0) {
        return json_null();
    }
    util_fmt_time(t, s, sizeof(s));
    return json_string(s);
}

json_t *admin_json_text(const char *s)
{
    json_t *j = json_string(s);
    char *copy;
    size_t i;

    if (j != NULL || (copy = strdup(s)) == NULL) {
        return j;
    }
    for (i = 0; copy[i] != '\0'; i++) {
        if ((unsigned char)copy[i] >= 0x80) {
            copy[i] = '?';
        }
    }
    j = json_string(copy);
    free(copy);
    return j;
}

/* --- descriptors --------------------------------------------------- */

/* "a,b" into ["a", "b"]. */
static json_t *admin_csv_json(const char *csv)
{
    json_t *a = json_array();
    size_t len;

    while (a != NULL && *csv != '\0') {
        len = strcspn(csv, ",");
        json_array_append_new(a, json_stringn(csv, len));
        csv += len;
        if (*csv == ',') {
            csv++;
        }
    }
    return a;
}

/* A stored JSON array of strings, each made valid UTF-8. */
static json_t *admin_list_json(const char *text)
{
    json_t *in = json_loads(text, JSON_DISABLE_EOF_CHECK, NULL), *v;
    json_t *out = json_array();
    size_t i;

    json_array_foreach(in, i, v)
    {
        if (json_is_string(v)) {
            json_array_append_new(out, json_incref(v));
        }
    }
    json_decref(in);
    return out;
}

json_t *admin_field_json(const struct admin_field *f, const void *obj)
{
    const void *p = (const char *)obj + f->offset;

    switch (f->type) {
    case AF_STR:
        return admin_json_text((const char *)p);
    case AF_BOOL:
        return json_boolean(*(const bool *)p);
    case AF_INT:
        return json_integer(*(const int *)p);
    case AF_NATIVE:
        return json_string(store_native_str(*(const int *)p));
    case AF_STRZ:
        return ((const char *)p)[0] != '\0' ? admin_json_text((const char *)p)
                                            : json_null();
    case AF_TIME:
        return admin_json_time(*(const int64_t *)p);
    case AF_SEALED:
        return json_boolean(*(uint8_t *const *)p != NULL);
    case AF_CSV:
        return admin_csv_json((const char *)p);
    case AF_JSONLIST:
        return admin_list_json((const char *)p);
    case AF_FN:
        return f->get(obj);
    }
    return NULL;
}

json_t *admin_json_encode(const struct admin_field *f, const void *obj)
{
    json_t *o = json_object(), *v;

    for (; o != NULL && f->json != NULL; f++) {
        if (f->flags & AF_NOJSON) {
            continue;
        }
        v = admin_field_json(f, obj);
        if (v == NULL || json_object_set_new(o, f->json, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

void admin_field_text(const struct admin_field *f, const void *obj, char *out,
                      size_t outlen)
{
    json_t *v = admin_field_json(f, obj), *x;
    size_t used = 0, i;
    int n;

    out[0] = '\0';
    if (json_is_string(v)) {
        snprintf(out, outlen, "%s", json_string_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, outlen, "%s", json_is_true(v) ? "yes" : "no");
    } else if (json_is_integer(v)) {
        snprintf(out, outlen, "%lld", (long long)json_integer_value(v));
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x)
        {
            if (!json_is_string(x) || used >= outlen) {
                continue;
            }
            n = snprintf(out + used, outlen - used, "%s%s", used > 0 ? "," : "",
                         json_string_value(x));
            used = n < 0 ? outlen : used + (size_t)n;
        }
    }
    json_decref(v);
}

const struct admin_field *admin_field_find(const struct admin_field *f,
                                           const char *json)
{
    for (; f->json != NULL; f++) {
        if (strcmp(f->json, json) == 0 ||
            (f->in != NULL && strcmp(f->in, json) == 0)) {
            return f;
        }
    }
    return NULL;
}

void admin_body_schema(const struct admin_field *f, bool create,
                       void (*fn)(void *arg, const char *key, const char *type,
                                  bool required, long lo, long hi),
                       void *arg)
{
    const char *key;
    bool req;
    long lo;

    for (; f->json != NULL; f++) {
        if ((f->flags & AF_READONLY) || (!create && (f->flags & AF_FIXED)) ||
            (create && (f->flags & AF_NOCREATE))) {
            continue;
        }
        key = f->in != NULL ? f->in : f->json;
        req = create && (f->flags & AF_REQUIRED);
        lo = (f->flags & AF_EMPTY) ? 0 : 1;
        switch (f->type) {
        case AF_STR:
            fn(arg, key, "string", req, lo, (long)f->size - 1);
            break;
        case AF_STRZ:
            fn(arg, key, create ? "string" : "string_null", req, lo,
               (long)f->size - 1);
            break;
        case AF_NATIVE:
            fn(arg, key, "string", req, 1, 16);
            break;
        case AF_BOOL:
            fn(arg, key, "bool", req, 0, 0);
            break;
        case AF_INT:
            fn(arg, key, "int", req, f->lo, f->hi);
            break;
        case AF_CSV:
            fn(arg, key, "list", req, 0, f->hi);
            break;
        default:
            break;
        }
    }
}

/* A JSON array of strings (none holding a comma) joined into dst; dst
 * is left as it was when the list is refused. */
static int admin_csv_apply(const char *key, const json_t *v, char *dst,
                           size_t size, struct admin_err *e)
{
    size_t i, used = 0, len;
    char *tmp;
    json_t *x;

    if (!json_is_array(v)) {
        return admin_fail(e, ERR_INVALID, "%s must be a list of strings", key);
    }
    if ((tmp = calloc(1, size)) == NULL) {
        return admin_fail(e, ERR_NOMEM, "%s: %s", key, err_str(ERR_NOMEM));
    }
    json_array_foreach(v, i, x)
    {
        if (!json_is_string(x) || strchr(json_string_value(x), ',') != NULL) {
            free(tmp);
            return admin_fail(e, ERR_INVALID,
                              "%s must be a list of strings without commas",
                              key);
        }
        len = json_string_length(x);
        if (used + (used > 0) + len + 1 > size) {
            free(tmp);
            return admin_fail(e, ERR_INVALID,
                              "%s is too long (at most %zu characters)", key,
                              size - 1);
        }
        if (used > 0) {
            tmp[used++] = ',';
        }
        memcpy(tmp + used, json_string_value(x), len + 1);
        used += len;
    }
    memcpy(dst, tmp, used + 1);
    free(tmp);
    return ERR_OK;
}

int admin_field_apply(const struct admin_field *f, const json_t *body,
                      void *obj, struct admin_err *e)
{
    char *base = obj;
    const char *key = f->in != NULL ? f->in : f->json;
    json_t *v;
    int n, r;

    if ((f->flags & AF_READONLY) || (v = json_object_get(body, key)) == NULL) {
        return ERR_OK;
    }
    {
        switch (f->type) {
        case AF_TIME:
        case AF_SEALED:
        case AF_JSONLIST:
        case AF_FN:
            break;
        case AF_CSV:
            if ((r = admin_csv_apply(key, v, base + f->offset, f->size, e)) !=
                ERR_OK) {
                return r;
            }
            break;
        case AF_STRZ:
            if (json_is_null(v)) {
                ((char *)(base + f->offset))[0] = '\0';
                break;
            }
            /* fall through */
        case AF_STR:
            if (!json_is_string(v) ||
                (json_string_length(v) == 0 && !(f->flags & AF_EMPTY)) ||
                json_string_length(v) >= f->size) {
                return admin_fail(e, ERR_INVALID,
                                  "%s must be %d-%zu characters", key,
                                  (f->flags & AF_EMPTY) ? 0 : 1, f->size - 1);
            }
            memcpy(base + f->offset, json_string_value(v),
                   json_string_length(v) + 1);
            break;
        case AF_BOOL:
            if (!json_is_boolean(v)) {
                return admin_fail(e, ERR_INVALID, "%s must be true or false",
                                  key);
            }
            *(bool *)(base + f->offset) = json_is_true(v);
            break;
        case AF_INT:
            if (!json_is_integer(v) || json_integer_value(v) < f->lo ||
                json_integer_value(v) > f->hi) {
                return admin_fail(e, ERR_INVALID,
                                  "%s must be a whole number from %ld to %ld",
                                  key, f->lo, f->hi);
            }
            *(int *)(base + f->offset) = (int)json_integer_value(v);
            break;
        case AF_NATIVE:
            if (!json_is_string(v) ||
                (n = store_native_parse(json_string_value(v))) < 0) {
                return admin_fail(e, ERR_INVALID,
                                  "%s must be deny, allow or record", key);
            }
            *(int *)(base + f->offset) = n;
            break;
        }
    }
    return ERR_OK;
}

int admin_json_apply(const struct admin_field *f, const json_t *body, void *obj,
                     struct admin_err *e)
{
    int r;

    for (; f->json != NULL; f++) {
        if ((r = admin_field_apply(f, body, obj, e)) != ERR_OK) {
            return r;
        }
    }
    return ERR_OK;
}

/* --- users and keys ------------------------------------------------ */

/* Hashes pw into hash[STORE_HASH_MAX + 1] ("" for NULL). */
static int admin_hash(const char *pw, char *hash, struct admin_err *e)
{
    int r;

    hash[0] = '\0';
    if (pw == NULL) {
        return ERR_OK;
    }
    if (pw[0] == '\0' || strlen(pw) > PASSWORD_MAX) {
        return admin_fail(e, ERR_INVALID, "a password is 1-%d bytes",
                          PASSWORD_MAX);
    }
    if ((r = password_hash(pw, hash, STORE_HASH_MAX + 1)) != ERR_OK) {
        return admin_fail(e, r, "cannot hash the password: %s", err_str(r));
    }
    return ERR_OK;
}

/*
 * The NT hash of a new password, sealed, for the RDP proxy's NLA
 * (docs/rdp.md). Without the vault (a caller that did not open it) the
 * user gets one at the next password login instead; a failure here is
 * logged, never a refusal of the password change.
 */
void admin_user_keep_nt(const struct admin_ctx *c, const char *user_id,
                        const char *pw)
{
    uint8_t nt[NTHASH_LEN], *sealed = NULL;
    size_t sealed_len = 0;
    char ad[VAULT_AD_MAX];

    if (c->vault == NULL || pw == NULL || user_id == NULL) {
        return;
    }
    vault_ad(ad, VAULT_AD_USER_NTHASH, user_id);
    if (nthash_v1(pw, nt) != ERR_OK ||
        vault_seal(c->vault, ad, nt, sizeof(nt), &sealed, &sealed_len) !=
            ERR_OK ||
        store_user_nt_set(c->st, user_id, sealed, sealed_len) != ERR_OK) {
        log_warn("cannot store the NT hash of user %s; it is made at the "
                 "next password login",
                 user_id);
    }
    free(sealed);
    sodium_memzero(nt, sizeof(nt));
}

int admin_user_add(const struct admin_ctx *c, const char *name, const char *pw,
                   bool disabled, struct store_user *out, struct admin_err *e)
{
    char hash[STORE_HASH_MAX + 1];
    struct store_user made;
    int r;

    if (name == NULL || name[0] == '\0' || strlen(name) > STORE_NAME_MAX) {
        return admin_fail(e, ERR_INVALID, "a user name is 1-%d characters",
                          STORE_NAME_MAX);
    }
    if ((r = admin_hash(pw, hash, e)) != ERR_OK) {
        return r;
    }
    memset(&made, 0, sizeof(made));
    r = store_user_add(c->st, name, hash, disabled, &made);
    sodium_memzero(hash, sizeof(hash));
    if (r != ERR_OK) {
        return admin_store_fail(e, r, "user", name);
    }
    admin_user_keep_nt(c, made.id, pw);
    if (out != NULL) {
        *out = made;
    }
    sodium_memzero(&made, sizeof(made));
    return admin_audit(c, "user.add", name,
                       disabled
                           ? (pw != NULL ? "password disabled" : "disabled")
                           : (pw != NULL ? "password" : ""),
                       e);
}

int admin_user_set_password(struct store *st, const struct store_user *u,
                            const char *pw, struct admin_err *e)
{
    char hash[STORE_HASH_MAX + 1];
    int r;

    if (pw == NULL) {
        return admin_fail(e, ERR_INVALID, "no password given");
    }
    if ((r = admin_hash(pw, hash, e)) != ERR_OK) {
        return r;
    }
    r = store_user_set_password(st, u->id, hash);
    sodium_memzero(hash, sizeof(hash));
    return r == ERR_OK ? r : admin_store_fail(e, r, "user", u->name);
}

static json_t *admin_user_has_password(const void *obj)
{
    return json_boolean(((const struct store_user *)obj)->password_hash[0] !=
                        '\0');
}

const struct admin_field admin_user_fields[] = {
    ADMIN_FIELD(struct store_user, "id", AF_STR, id, .flags = AF_READONLY,
                .col = "ID"),
    ADMIN_FIELD(struct store_user, "name", AF_STR, name,
                .flags = AF_REQUIRED | AF_FIXED, .cli = "NAME", .col = "NAME"),
    ADMIN_FIELD(struct store_user, "disabled", AF_BOOL, disabled,
                .cli = "--disabled", .col = "DISABLED"),
    ADMIN_FIELD(struct store_user, "totp_enabled", AF_BOOL, totp_enabled,
                .flags = AF_READONLY, .col = "TOTP"),
    /* a domain user's, from the directory (read only here) */
    ADMIN_FIELD(struct store_user, "display_name", AF_STRZ, display_name,
                .flags = AF_READONLY),
    ADMIN_FIELD(struct store_user, "mail", AF_STRZ, mail, .flags = AF_READONLY),
    ADMIN_FIELD_FN("has_password", admin_user_has_password,
                   .cli = "--password-stdin"),
    ADMIN_FIELD(struct store_user, "created_at", AF_TIME, created_at,
                .flags = AF_READONLY, .col = "CREATED"),
    ADMIN_FIELD_END,
};

json_t *admin_user_json(const struct store_user *u)
{
    return admin_json_encode(admin_user_fields, u);
}

int admin_user_update(const struct admin_ctx *c, const struct store_user *u,
                      const char *pw, int disabled, const char *action,
                      struct admin_err *e)
{
    char detail[64] = "";
    int r;

    if (pw != NULL) {
        if ((r = admin_user_set_password(c->st, u, pw, e)) != ERR_OK) {
            return r;
        }
        admin_user_keep_nt(c, u->id, pw);
        snprintf(detail, sizeof(detail), "password");
    }
    if (disabled >= 0) {
        r = store_user_set_disabled(c->st, u->id, disabled != 0);
        if (r != ERR_OK) {
            return admin_store_fail(e, r, "user", u->name);
        }
        snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                 "%sdisabled=%s", detail[0] != '\0' ? " " : "",
                 disabled ? "true" : "false");
    }
    return admin_audit(c, action, u->name, detail, e);
}

int admin_user_delete(const struct admin_ctx *c, const struct store_user *u,
                      struct admin_err *e)
{
    int r = store_user_delete(c->st, u->id);

    if (r != ERR_OK) {
        return admin_store_fail(e, r, "user", u->name);
    }
    return admin_audit(c, "user.delete", u->name, NULL, e);
}

int admin_user_detail_json(struct store *st, const struct store_user *u,
                           json_t **out)
{
    struct store_group *groups = NULL;
    struct store_profile *profiles = NULL;
    size_t ng = 0, np = 0, i;
    json_t *jg, *jp;
    int r;

    *out = NULL;
    if ((r = store_user_groups(st, u->id, &groups, &ng)) != ERR_OK ||
        (r = store_user_profiles(st, u->id, &profiles, &np)) != ERR_OK) {
        store_list_free(groups);
        return r;
    }
    jg = json_array();
    jp = json_array();
    for (i = 0; i < ng; i++) {
        json_array_append_new(jg, json_string(groups[i].name));
    }
    for (i = 0; i < np; i++) {
        json_array_append_new(jp, json_string(profiles[i].name));
    }
    store_list_free(groups);
    store_list_free(profiles);
    *out = admin_user_json(u);
    json_object_set_new(*out, "groups", jg);
    json_object_set_new(*out, "profiles", jp);
    return *out != NULL ? ERR_OK : ERR_NOMEM;
}

const struct admin_field admin_key_fields[] = {
    ADMIN_FIELD(struct store_user_key, "id", AF_STR, id, .flags = AF_READONLY,
                .col = "ID"),
    ADMIN_FIELD(struct store_user_key, "type", AF_STR, type,
                .flags = AF_READONLY, .col = "TYPE"),
    ADMIN_FIELD(struct store_user_key, "fingerprint", AF_STR, fingerprint,
                .flags = AF_READONLY, .col = "FINGERPRINT"),
    ADMIN_FIELD(struct store_user_key, "comment", AF_STR, comment,
                .flags = AF_READONLY, .col = "COMMENT"),
    ADMIN_FIELD_END,
};

json_t *admin_key_json(const struct store_user_key *k)
{
    return admin_json_encode(admin_key_fields, k);
}

int admin_key_fingerprint(ssh_key key, char *out, size_t outlen)
{
    unsigned char *hash = NULL;
    size_t hlen = 0;
    char *fp = NULL;
    int r = ERR_CRYPTO;

    out[0] = '\0';
    if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) !=
        SSH_OK) {
        goto out;
    }
    fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
    if (fp == NULL || strlen(fp) >= outlen) {
        goto out;
    }
    snprintf(out, outlen, "%s", fp);
    r = ERR_OK;
out:
    ssh_string_free_char(fp);
    ssh_clean_pubkey_hash(&hash);
    return r;
}

/* Finds the one key line and splits it in place into type, base64 and
 * the comment (the rest of the line, possibly empty). */
static int admin_pubkey_split(char *text, char **type, char **b64,
                              char **comment, struct admin_err *e)
{
    char *line, *next, *end;
    const char *ws = " \t\r";

    *type = *b64 = *comment = NULL;
    for (line = text; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        line += strspn(line, ws);
        if (*line == '\0' || *line == '#') {
            continue;
        }
        if (strncmp(line, "-----BEGIN", 10) == 0) {
            return admin_fail(e, ERR_INVALID,
                              "a private key; give the public key (.pub)");
        }
        if (*type != NULL) {
            return admin_fail(e, ERR_INVALID,
                              "more than one key; give one at a time");
        }
        *type = line;
        line += strcspn(line, ws);
        if (*line != '\0') {
            *line++ = '\0';
            line += strspn(line, ws);
        }
        *b64 = line;
        line += strcspn(line, ws);
        if (*line != '\0') {
            *line++ = '\0';
            line += strspn(line, ws);
        }
        *comment = line;
        end = line + strlen(line);
        while (end > line && strchr(ws, end[-1]) != NULL) {
            *--end = '\0';
        }
    }
    if (*type == NULL || **b64 == '\0') {
        return admin_fail(e, ERR_INVALID,
                          "no public key (expected \"TYPE BASE64 "
                          "[COMMENT]\")");
    }
    return ERR_OK;
}

int admin_pubkey_parse(char *text, struct admin_pubkey *k, struct admin_err *e)
{
    char *type, *b64, *comment, *canon = NULL;
    enum ssh_keytypes_e kt;
    ssh_key key = NULL;
    int r;

    memset(k, 0, sizeof(*k));
    if ((r = admin_pubkey_split(text, &type, &b64, &comment, e)) != ERR_OK) {
        return r;
    }
    kt = ssh_key_type_from_name(type);
    if (kt == SSH_KEYTYPE_UNKNOWN || strlen(type) >= sizeof(k->type)) {
        return admin_fail(e, ERR_INVALID,
                          "unknown key type '%.40s' (key options are not "
                          "supported)",
                          type);
    }
    r = ERR_INVALID;
    if (ssh_pki_import_pubkey_base64(b64, kt, &key) != SSH_OK ||
        ssh_key_type(key) != kt) {
        admin_fail(e, r, "not a valid %s public key", type);
        goto out;
    }
    if (strlen(comment) > STORE_NAME_MAX) {
        admin_fail(e, r, "key comment longer than %d characters",
                   STORE_NAME_MAX);
        goto out;
    }
    if (ssh_pki_export_pubkey_base64(key, &canon) != SSH_OK ||
        admin_key_fingerprint(key, k->fp, sizeof(k->fp)) != ERR_OK ||
        (k->b64 = strdup(canon)) == NULL) {
        r = admin_fail(e, ERR_CRYPTO, "cannot encode the key");
        goto out;
    }
    snprintf(k->type, sizeof(k->type), "%s", type);
    snprintf(k->comment, sizeof(k->comment), "%s", comment);
    r = ERR_OK;
out:
    ssh_string_free_char(canon);
    ssh_key_free(key);
    return r;
}

void admin_pubkey_clear(struct admin_pubkey *k)
{
    free(k->b64);
    k->b64 = NULL;
}

int admin_user_key_add(const struct admin_ctx *c, const struct store_user *u,
                       char *text, struct store_user_key *out,
                       struct admin_err *e)
{
    struct admin_pubkey k;
    int r;

    memset(out, 0, sizeof(*out));
    if ((r = admin_pubkey_parse(text, &k, e)) != ERR_OK) {
        return r;
    }
    r = store_user_key_add(c->st, u->id, k.type, k.b64, k.fp, k.comment, out);
    if (r == ERR_EXISTS) {
        admin_fail(e, r, "key %s is already registered for user '%s'", k.fp,
                   u->name);
    } else if (r != ERR_OK) {
        admin_store_fail(e, r, "key", k.fp);
    } else {
        r = admin_audit(c, "user.key.add", u->name, k.fp, e);
    }
    admin_pubkey_clear(&k);
    return r;
}

int admin_user_key_delete(const struct admin_ctx *c, const struct store_user *u,
                          const char *ref, struct admin_err *e)
{
    int r = store_user_key_delete(c->st, u->id, ref);

    if (r == ERR_NOT_FOUND) {
        return admin_fail(e, r, "user '%s' has no key '%.200s'", u->name, ref);
    }
    if (r != ERR_OK) {
        return admin_store_fail(e, r, "key", ref);
    }
    return admin_audit(c, "user.key.delete", u->name, ref, e);
}

int admin_user_totp_enable(const struct admin_ctx *c,
                           const struct store_user *u, char *b32, size_t b32len,
                           char *uri, size_t urilen, struct admin_err *e)
{
    const struct vault *v = c->vault;
    uint8_t secret[TOTP_SECRET_LEN], *sealed = NULL;
    char ad[VAULT_AD_MAX];
    size_t sealed_len = 0;
    int r;

    totp_new_secret(secret);
    vault_ad(ad, VAULT_AD_TOTP, u->id);
    if (v == NULL) {
        r = admin_fail(e, ERR_INTERNAL, "no vault to seal the TOTP secret");
        goto out;
    }
    r = vault_seal(v, ad, secret, sizeof(secret), &sealed, &sealed_len);
    if (r != ERR_OK) {
        admin_fail(e, r, "cannot seal the TOTP secret: %s", err_str(r));
        goto out;
    }
    if (sealed_len > STORE_SEALED_SMALL_MAX) {
        r = admin_fail(e, ERR_INTERNAL, "sealed TOTP secret too long");
        goto out;
    }
    /* Everything to be shown is ready before the store changes. */
    if ((r = totp_base32(secret, sizeof(secret), b32, b32len)) != ERR_OK ||
        (r = totp_uri(ADMIN_TOTP_ISSUER, u->name, b32, uri, urilen)) !=
            ERR_OK) {
        admin_fail(e, r, "cannot encode the TOTP secret: %s", err_str(r));
        goto out;
    }
    if ((r = store_user_set_totp(c->st, u->id, sealed, sealed_len)) != ERR_OK) {
        admin_store_fail(e, r, "user", u->name);
    } else {
        r = admin_audit(c, "user.totp.enable", u->name, NULL, e);
    }
out:
    sodium_memzero(secret, sizeof(secret));
    free(sealed);
    return r;
}

/* --- groups, sites, grants ----------------------------------------- */

int admin_user_totp_disable(const struct admin_ctx *c,
                            const struct store_user *u, struct admin_err *e)
{
    int r = store_user_set_totp(c->st, u->id, NULL, 0);

    if (r != ERR_OK) {
        return admin_store_fail(e, r, "user", u->name);
    }
    return admin_audit(c, "user.totp.disable", u->name, NULL, e);
}

int admin_group_member(const struct admin_ctx *c, const struct store_group *g,
                       const struct store_user *u, bool add,
                       struct admin_err *e)
{
    int r = add ? store_group_member_add(c->st, g->id, u->id)
                : store_group_member_remove(c->st, g->id, u->id);

    if (r == ERR_EXISTS) {
        return admin_fail(e, r, "user '%s' is already a member of group '%s'",
                          u->name, g->name);
    }
    if (r == ERR_NOT_FOUND) {
        return admin_fail(e, r, "user '%s' is not a member of group '%s'",
                          u->name, g->name);
    }
    if (r != ERR_OK) {
        return admin_store_fail(e, r, "group", g->name);
    }
    return admin_audit(c, add ? "group.member.add" : "group.member.remove",
                       g->name, u->name, e);
}

int admin_site_delete(const struct admin_ctx *c, const struct store_site *s,
                      struct admin_err *e)
{
    int r = store_site_delete(c->st, s->id);

    if (r == ERR_EXISTS) {
        return admin_fail(e, r, "site '%s' still has assets or sub-sites",
                          s->path);
    }
    if (r == ERR_DENIED) {
        return admin_fail(e, r, "site '%s' cannot be deleted", s->path);
    }
    if (r != ERR_OK) {
        return admin_store_fail(e, r, "site", s->path);
    }
    return admin_audit(c, "site.delete", s->path, NULL, e);
}

int admin_site_add(const struct admin_ctx *c, const char *path,
                   struct store_site *out, struct admin_err *e)
{
    struct store_site s;
    int r;

    if (path == NULL || path[0] == '\0' || strlen(path) > STORE_PATH_MAX) {
        return admin_fail(e, ERR_INVALID, "a site path is 1-%d characters",
                          STORE_PATH_MAX);
    }
    if ((r = store_site_add(c->st, path, out != NULL ? out : &s)) != ERR_OK) {
        return admin_store_fail(e, r, "site", path);
    }
    return admin_audit(c, "site.add", path, NULL, e);
}

int admin_group_add(const struct admin_ctx *c, const char *name,
                    struct store_group *out, struct admin_err *e)
{
    struct store_group g;
    int r;

    if ((r = admin_set_name(g.name, sizeof(g.name), name, "group", e)) !=
        ERR_OK) {
        return r;
    }
    if ((r = store_group_add(c->st, name, out != NULL ? out : &g)) != ERR_OK) {
        return admin_store_fail(e, r, "group", name);
    }
    return admin_audit(c, "group.add", name, NULL, e);
}

int admin_group_delete(const struct admin_ctx *c, const struct store_group *g,
                       struct admin_err *e)
{
    int r = store_group_delete(c->st, g->id);

    if (r != ERR_OK) {
        return admin_store_fail(e, r, "group", g->name);
    }
    return admin_audit(c, "group.delete", g->name, NULL, e);
}

const struct admin_field admin_group_fields[] = {
    ADMIN_FIELD(struct store_group, "id", AF_STR, id, .flags = AF_READONLY,
                .col = "ID"),
    ADMIN_FIELD(struct store_group, "name", AF_STR, name,
                .flags = AF_REQUIRED | AF_FIXED, .cli = "NAME", .col = "NAME"),
    ADMIN_FIELD_END,
};

json_t *admin_group_json(struct store *st, const struct store_group *g)
{
    struct store_user *members = NULL;
    size_t n = 0, i;
    json_t *arr = json_array(), *j;

    if (store_group_members(st, g->id, &members, &n) == ERR_OK) {
        for (i = 0; i < n; i++) {
            json_array_append_new(arr, json_string(members[i].name));
        }
        store_user_list_free(members, n);
    }
    j = admin_json_encode(admin_group_fields, g);
    if (j == NULL || json_object_set_new(j, "members", arr) != 0) {
        json_decref(j);
        return NULL;
    }
    return j;
}

const struct admin_field admin_site_fields[] = {
    ADMIN_FIELD(struct store_site, "id", AF_STR, id, .flags = AF_READONLY,
                .col = "ID"),
    ADMIN_FIELD(struct store_site, "path", AF_STR, path,
                .flags = AF_REQUIRED | AF_FIXED, .cli = "PATH", .col = "PATH"),
    ADMIN_FIELD(struct store_site, "parent_id", AF_STRZ, parent_id,
                .flags = AF_READONLY),
    ADMIN_FIELD_END,
};

json_t *admin_site_json(const struct store_site *s)
{
    return admin_json_encode(admin_site_fields, s);
}

static json_t *admin_site_role_type(const void *obj)
{
    return json_string(((const struct store_site_role *)obj)->user_id[0] != '\0'
                           ? "user"
                           : "group");
}

static json_t *admin_site_role_name(const void *obj)
{
    return json_string(
        site_role_str(((const struct store_site_role *)obj)->role));
}

#define SR(j, t, m, ...)                                                       \
    ADMIN_FIELD(struct store_site_role, j, t, m, __VA_ARGS__)

const struct admin_field admin_site_role_fields[] = {
    SR("id", AF_STR, id, .flags = AF_READONLY, .col = "ID"),
    SR("site", AF_STR, site_path, .flags = AF_READONLY, .cli = "--site",
       .col = "SITE"),
    SR("site_id", AF_STR, site_id, .flags = AF_READONLY),
    ADMIN_FIELD_FN("grantee_type", admin_site_role_type, .col = "TYPE"),
    SR("grantee", AF_STR, grantee_name, .flags = AF_READONLY,
       .cli = "--user/--group", .col = "GRANTEE"),
    ADMIN_FIELD_FN("role", admin_site_role_name, .cli = "--role",
                   .col = "ROLE"),
    ADMIN_FIELD_END,
};

int admin_site_role_parse(const char *role, struct admin_err *e)
{
    int rv = role != NULL ? site_role_parse(role) : -1;

    if (rv < 0) {
        admin_fail(e, ERR_INVALID,
                   "role must be administrator, "
                   "configuration-manager, service or user");
    }
    return rv;
}

int admin_site_role_add(const struct admin_ctx *c, struct store_site_role *sr,
                        const char *role, const char *grantee, const char *site,
                        struct admin_err *e)
{
    char detail[STORE_NAME_MAX + 64];
    int rv, r;

    if ((rv = admin_site_role_parse(role, e)) < 0) {
        return ERR_INVALID;
    }
    sr->role = rv;
    r = store_site_role_add(c->st, sr);
    if (r == ERR_EXISTS) {
        return admin_fail(e, r, "%s '%s' already has the role %s on %s",
                          sr->user_id[0] != '\0' ? "user" : "group", grantee,
                          site_role_str(rv), site);
    }
    if (r != ERR_OK) {
        return admin_store_fail(e, r, "role", role);
    }
    snprintf(detail, sizeof(detail), "%s=%s role=%s",
             sr->user_id[0] != '\0' ? "user" : "group", grantee,
             site_role_str(rv));
    return admin_audit(c, "role.grant", site, detail, e);
}

int admin_site_role_delete(const struct admin_ctx *c, const char *id,
                           struct admin_err *e)
{
    struct store_site_role sr;
    char detail[STORE_NAME_MAX + 64];
    int r = store_site_role_get(c->st, id, &sr);

    if (r == ERR_OK) {
        r = store_site_role_delete(c->st, sr.id);
    }
    if (r != ERR_OK) {
        return admin_store_fail(e, r, "role", id);
    }
    snprintf(detail, sizeof(detail), "%s=%s role=%s",
             sr.user_id[0] != '\0' ? "user" : "group", sr.grantee_name,
             site_role_str(sr.role));
    return admin_audit(c, "role.revoke", sr.site_path, detail, e);
}

int admin_role_parse(const char *role, struct admin_err *e)
{
    int rv = role != NULL ? store_role_parse(role) : -1;

    if (rv < ROLE_VIEWER) {
        admin_fail(e, ERR_INVALID, "role must be viewer, editor or owner");
        return -1;
    }
    return rv;
}

int admin_grant_add(const struct admin_ctx *c, struct store_grant *g,
                    const char *role, const char *grantee, const char *target,
                    struct admin_err *e)
{
    char detail[STORE_NAME_MAX + 48];
    int rv, r;

    if ((rv = admin_role_parse(role, e)) < 0) {
        return ERR_INVALID;
    }
    g->role = rv;
    util_uuid4(g->id);
    if ((r = store_grant_add(c->st, g)) == ERR_EXISTS) {
        return admin_fail(e, r, "%s '%s' already has a grant on %s '%s'",
                          g->user_id[0] != '\0' ? "user" : "group", grantee,
                          g->asset_id[0] != '\0' ? "asset" : "site", target);
    }
    if (r != ERR_OK) {
        return admin_fail(e, r, "cannot add the grant: %s", err_str(r));
    }
    snprintf(detail, sizeof(detail), "%s=%s role=%s",
             g->user_id[0] != '\0' ? "user" : "group", grantee,
             store_role_str(g->role));
    return admin_audit(c, "grant.add", target, detail, e);
}

int admin_grant_delete(const struct admin_ctx *c, const char *id,
                       struct admin_err *e)
{
    int r = store_grant_delete(c->st, id);

    if (r != ERR_OK) {
        return admin_store_fail(e, r, "grant", id);
    }
    return admin_audit(c, "grant.delete", id, NULL, e);
}

static json_t *admin_grant_target_type(const void *obj)
{
    const struct store_grant *g = obj;

    return json_string(g->asset_id[0] != '\0' ? "asset" : "site");
}

static json_t *admin_grant_grantee_type(const void *obj)
{
    const struct store_grant *g = obj;

    return json_string(g->user_id[0] != '\0' ? "user" : "group");
}

static json_t *admin_grant_role(const void *obj)
{
    return json_string(store_role_str(((const struct store_grant *)obj)->role));
}

static json_t *admin_grant_target_text(const void *obj)
{
    const struct store_grant *g = obj;

    return json_pack("s++", g->asset_id[0] != '\0' ? "asset" : "site", " ",
                     g->target_name);
}

static json_t *admin_grant_grantee_text(const void *obj)
{
    const struct store_grant *g = obj;

    return json_pack("s++", g->user_id[0] != '\0' ? "user" : "group", " ",
                     g->grantee_name);
}

const struct admin_field admin_grant_fields[] = {
    ADMIN_FIELD(struct store_grant, "id", AF_STR, id, .flags = AF_READONLY,
                .col = "ID"),
    ADMIN_FIELD_FN("target_type", admin_grant_target_type),
    ADMIN_FIELD(struct store_grant, "asset_id", AF_STRZ, asset_id,
                .flags = AF_READONLY),
    ADMIN_FIELD(struct store_grant, "site_id", AF_STRZ, site_id,
                .flags = AF_READONLY),
    ADMIN_FIELD(struct store_grant, "target", AF_STR, target_name,
                .flags = AF_READONLY, .cli = "--asset/--site"),
    ADMIN_FIELD_FN("grantee_type", admin_grant_grantee_type),
    ADMIN_FIELD(struct store_grant, "user_id", AF_STRZ, user_id,
                .flags = AF_READONLY),
    ADMIN_FIELD(struct store_grant, "group_id", AF_STRZ, group_id,
                .flags = AF_READONLY),
    ADMIN_FIELD(struct store_grant, "grantee", AF_STR, grantee_name,
                .flags = AF_READONLY, .cli = "--user/--group"),
    ADMIN_FIELD_FN("role", admin_grant_role, .cli = "--role"),
    /* the table: "asset web1", "user bob", the role */
    ADMIN_FIELD_FN("target_text", admin_grant_target_text, .flags = AF_NOJSON,
                   .col = "TARGET"),
    ADMIN_FIELD_FN("grantee_text", admin_grant_grantee_text, .flags = AF_NOJSON,
                   .col = "GRANTEE"),
    ADMIN_FIELD_FN("role_text", admin_grant_role, .flags = AF_NOJSON,
                   .col = "ROLE"),
    ADMIN_FIELD_END,
};

json_t *admin_grant_json(const struct store_grant *g)
{
    return admin_json_encode(admin_grant_fields, g);
}
