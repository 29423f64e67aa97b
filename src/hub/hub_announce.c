/*
 * The agent's announcement (docs/agent-protocol.md §2): one JSON object of
 * facts. Untrusted bytes from the network before the agent is online, so
 * this is pure, bounded, strict about the keys it knows and fuzzed
 * (fuzz/fuzz_announce.c). Unknown keys are ignored so that newer agents
 * can say more to older servers.
 */
#include "hub/hub_internal.h"

#include <string.h>

#include <jansson.h>

#include "common/err.h"

bool hub_agent_id_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL) {
        return false;
    }
    for (; s[n] != '\0'; n++) {
        char c = s[n];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= AGENT_ID_MAX;
}

static bool hub_text_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* An optional string of at most max bytes, no control characters. */
static int hub_take_str(json_t *obj, const char *key, char *out, size_t max,
                        char *why, size_t whylen)
{
    json_t *v = json_object_get(obj, key);
    size_t len;

    out[0] = '\0';
    if (v == NULL || json_is_null(v)) {
        return ERR_OK;
    }
    if (!json_is_string(v)) {
        snprintf(why, whylen, "'%s' must be a string", key);
        return ERR_INVALID;
    }
    len = json_string_length(v);
    if (len > max || !hub_text_ok(json_string_value(v), len)) {
        snprintf(why, whylen, "'%s' is too long or holds control characters",
                 key);
        return ERR_INVALID;
    }
    memcpy(out, json_string_value(v), len);
    out[len] = '\0';
    return ERR_OK;
}

/* An optional array of at most maxn strings of 1..maxlen bytes, written
 * back as compact JSON. */
static int hub_take_list(json_t *obj, const char *key, size_t maxn,
                         size_t maxlen, char *out, size_t outlen, char *why,
                         size_t whylen)
{
    json_t *v = json_object_get(obj, key), *item;
    char *s;
    size_t i;

    snprintf(out, outlen, "[]");
    if (v == NULL || json_is_null(v)) {
        return ERR_OK;
    }
    if (!json_is_array(v) || json_array_size(v) > maxn) {
        snprintf(why, whylen, "'%s' must be an array of at most %zu strings",
                 key, maxn);
        return ERR_INVALID;
    }
    json_array_foreach(v, i, item)
    {
        size_t len;

        if (!json_is_string(item) || (len = json_string_length(item)) == 0 ||
            len > maxlen || !hub_text_ok(json_string_value(item), len)) {
            snprintf(why, whylen,
                     "'%s' entries must be strings of 1 to %zu characters", key,
                     maxlen);
            return ERR_INVALID;
        }
    }
    if ((s = json_dumps(v, JSON_COMPACT)) == NULL) {
        return ERR_NOMEM;
    }
    if (strlen(s) >= outlen) {
        free(s);
        snprintf(why, whylen, "'%s' is too long", key);
        return ERR_INVALID;
    }
    snprintf(out, outlen, "%s", s);
    free(s);
    return ERR_OK;
}

int hub_announce_parse(const char *data, size_t len, struct hub_announce *out,
                       char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *root;
    int r;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > HUB_ANNOUNCE_MAX) {
        snprintf(why, whylen, "the announcement must be 1 to %d bytes",
                 HUB_ANNOUNCE_MAX);
        return ERR_INVALID;
    }
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(why, whylen, "not JSON: %s", jerr.text);
        return ERR_INVALID;
    }
    if (!json_is_object(root)) {
        snprintf(why, whylen, "not a JSON object");
        r = ERR_INVALID;
        goto out;
    }
    if ((r = hub_take_str(root, "id", out->id, AGENT_ID_MAX, why, whylen)) ||
        (r = hub_take_str(root, "name", out->name, STORE_NAME_MAX, why,
                          whylen)) ||
        (r = hub_take_str(root, "hostname", out->hostname, AGENT_FACT_MAX, why,
                          whylen)) ||
        (r = hub_take_str(root, "os", out->os, STORE_NAME_MAX, why, whylen)) ||
        (r = hub_take_str(root, "kernel", out->kernel, STORE_NAME_MAX, why,
                          whylen)) ||
        (r = hub_take_str(root, "arch", out->arch, 32, why, whylen)) ||
        (r = hub_take_str(root, "version", out->version, 64, why, whylen)) ||
        (r = hub_take_list(root, "addresses", 64, 64, out->addresses,
                           sizeof(out->addresses), why, whylen)) ||
        (r = hub_take_list(root, "tags", 32, 64, out->tags, sizeof(out->tags),
                           why, whylen))) {
        goto out;
    }
    if (!hub_agent_id_valid(out->id)) {
        snprintf(why, whylen, "'id' must be 1 to %d of A-Z a-z 0-9 . _ -",
                 AGENT_ID_MAX);
        r = ERR_INVALID;
        goto out;
    }
    if (out->name[0] == '\0' && out->hostname[0] != '\0') {
        /* the host name, cut to a name's length if need be */
        size_t n = strnlen(out->hostname, STORE_NAME_MAX);

        memcpy(out->name, out->hostname, n);
        out->name[n] = '\0';
    } else if (out->name[0] == '\0') {
        memcpy(out->name, out->id, strlen(out->id) + 1); /* 64 at most */
    }
    r = ERR_OK;
out:
    json_decref(root);
    return r;
}
