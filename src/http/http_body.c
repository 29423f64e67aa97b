/*
 * Strict JSON bodies (see http_body.h). jansson does the lexing with
 * duplicate keys refused and NUL characters refused; everything after
 * that (unknown keys, types, bounds, required keys) is checked here
 * against the route's table, so a handler only ever sees fields it
 * declared, of the types it declared.
 */
#include "http/http_body.h"

#include <stdio.h>
#include <string.h>

#include "common/err.h"

#define HTTP_LIST_ITEM_MAX 255

static bool http_body_clean(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

static int http_body_check(const struct http_field *f, json_t *v, char *why,
                           size_t whylen)
{
    size_t len, i;
    json_t *item;
    json_int_t x;

    switch (f->type) {
    case HF_STRING_NULL:
        if (json_is_null(v)) {
            return ERR_OK;
        }
        /* fall through */
    case HF_STRING:
    case HF_SECRET:
        if (!json_is_string(v)) {
            snprintf(why, whylen, "field '%s' must be a string%s", f->name,
                     f->type == HF_STRING_NULL ? " or null" : "");
            return ERR_INVALID;
        }
        len = json_string_length(v);
        if ((int64_t)len < f->lo || (int64_t)len > f->hi) {
            snprintf(why, whylen, "field '%s' must be %lld to %lld bytes long",
                     f->name, (long long)f->lo, (long long)f->hi);
            return ERR_INVALID;
        }
        if (f->type == HF_STRING &&
            !http_body_clean(json_string_value(v), len)) {
            snprintf(why, whylen, "field '%s' must not hold control characters",
                     f->name);
            return ERR_INVALID;
        }
        return ERR_OK;
    case HF_INT:
        if (!json_is_integer(v)) {
            snprintf(why, whylen, "field '%s' must be an integer", f->name);
            return ERR_INVALID;
        }
        x = json_integer_value(v);
        if (x < f->lo || x > f->hi) {
            snprintf(why, whylen, "field '%s' must be from %lld to %lld",
                     f->name, (long long)f->lo, (long long)f->hi);
            return ERR_INVALID;
        }
        return ERR_OK;
    case HF_BOOL:
        if (!json_is_boolean(v)) {
            snprintf(why, whylen, "field '%s' must be true or false", f->name);
            return ERR_INVALID;
        }
        return ERR_OK;
    case HF_STRING_LIST:
        if (!json_is_array(v) || (int64_t)json_array_size(v) > f->hi) {
            snprintf(why, whylen,
                     "field '%s' must be an array of at most %lld strings",
                     f->name, (long long)f->hi);
            return ERR_INVALID;
        }
        json_array_foreach(v, i, item)
        {
            if (!json_is_string(item) || json_string_length(item) == 0 ||
                json_string_length(item) > HTTP_LIST_ITEM_MAX ||
                !http_body_clean(json_string_value(item),
                                 json_string_length(item))) {
                snprintf(why, whylen,
                         "field '%s' item %zu must be a string of 1 to %d "
                         "printable bytes",
                         f->name, i, HTTP_LIST_ITEM_MAX);
                return ERR_INVALID;
            }
        }
        return ERR_OK;
    }
    snprintf(why, whylen, "field '%s': bad field table", f->name);
    return ERR_INVALID;
}

int http_body_parse(const char *data, size_t len, const struct http_field *spec,
                    json_t **out, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *root = NULL, *v;
    const char *key;
    size_t i;
    int r = ERR_INVALID;

    *out = NULL;
    if (whylen > 0) {
        why[0] = '\0';
    }
    if (len == 0) {
        root = json_object();
        if (root == NULL) {
            return ERR_NOMEM;
        }
    } else {
        root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL) {
            snprintf(why, whylen, "malformed JSON at line %d column %d: %s",
                     jerr.line, jerr.column, jerr.text);
            goto out;
        }
    }
    if (!json_is_object(root)) {
        snprintf(why, whylen, "the body must be a JSON object");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        for (i = 0; spec != NULL && spec[i].name != NULL; i++) {
            if (strcmp(spec[i].name, key) == 0) {
                break;
            }
        }
        if (spec == NULL || spec[i].name == NULL) {
            snprintf(why, whylen, "unknown field '%.64s'", key);
            goto out;
        }
        if ((r = http_body_check(&spec[i], v, why, whylen)) != ERR_OK) {
            goto out;
        }
        r = ERR_INVALID;
    }
    for (i = 0; spec != NULL && spec[i].name != NULL; i++) {
        if (spec[i].required && json_object_get(root, spec[i].name) == NULL) {
            snprintf(why, whylen, "missing field '%s'", spec[i].name);
            goto out;
        }
    }
    *out = root;
    root = NULL;
    r = ERR_OK;
out:
    json_decref(root);
    /* jansson quotes the input near an error: keep the reason one line */
    for (i = 0; r != ERR_OK && i < whylen && why[i] != '\0'; i++) {
        if ((unsigned char)why[i] < 0x20 || why[i] == 0x7f) {
            why[i] = '?';
        }
    }
    return r;
}

const char *http_body_str(const json_t *body, const char *name)
{
    return json_string_value(json_object_get(body, name));
}

bool http_body_has(const json_t *body, const char *name)
{
    return json_object_get(body, name) != NULL;
}

bool http_body_bool(const json_t *body, const char *name, bool dflt)
{
    json_t *v = json_object_get(body, name);

    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int64_t http_body_int(const json_t *body, const char *name, int64_t dflt)
{
    json_t *v = json_object_get(body, name);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}
