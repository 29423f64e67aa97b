/*
 * `portcullis agent pair`: a pairing code (docs/agent.md, "Install by
 * pairing"). The code must live only in the running server's memory, so
 * this asks the server for one through DATA/run/ask.sock
 * (common/notify.h); the server's http_pair.c makes and keeps it, and
 * POST /api/v1/pairing reaches the same function from the API.
 *
 * The question carries the actor (for the audit event), the tags, the
 * name and, with --credential, that credential's secret (which the
 * installer then holds); the answer is the code, its URL, the one line
 * to run and when it expires.
 */
#include "admin/admin.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/notify.h"

#define ADMIN_PAIR_WAIT_MS 5000

int admin_agent_pair(const struct admin_ctx *c, const char *const *tags,
                     size_t ntags, const char *name, const char *credential,
                     const char *secret, json_t **answer, struct admin_err *e)
{
    json_t *q = json_object(), *t = json_array(), *a = NULL;
    char *qs = NULL, buf[NOTIFY_ASK_MAX];
    bool delivered = false;
    size_t got = 0;
    int r;

    *answer = NULL;
    if (q == NULL || t == NULL) {
        json_decref(q);
        json_decref(t);
        return admin_fail(e, ERR_NOMEM, "%s", err_str(ERR_NOMEM));
    }
    for (size_t i = 0; i < ntags; i++) {
        json_array_append_new(t, json_string(tags[i]));
    }
    json_object_set_new(q, "op", json_string("pair"));
    json_object_set_new(q, "actor", json_string(c->actor ? c->actor : "-"));
    json_object_set_new(q, "tags", t);
    if (name != NULL) {
        json_object_set_new(q, "name", json_string(name));
    }
    if (credential != NULL) {
        json_object_set_new(q, "credential", json_string(credential));
        json_object_set_new(q, "secret", json_string(secret ? secret : ""));
    }
    qs = json_dumps(q, JSON_COMPACT);
    json_decref(q);
    if (qs == NULL) {
        return admin_fail(e, ERR_INVALID,
                          "the tags, name or credential are not valid text");
    }
    r = notify_ask(c->data_dir, qs, strlen(qs), buf, sizeof(buf) - 1, &got,
                   &delivered, ADMIN_PAIR_WAIT_MS);
    sodium_memzero(qs, strlen(qs));
    free(qs);
    if (r == ERR_OK && !delivered) {
        return admin_fail(e, ERR_NOT_FOUND,
                          "no server is running: a pairing code lives in "
                          "the running server only");
    }
    if (r != ERR_OK) {
        return admin_fail(e, r, "the server did not answer: %s", err_str(r));
    }
    buf[got] = '\0';
    if ((a = json_loads(buf, 0, NULL)) == NULL || !json_is_object(a)) {
        json_decref(a);
        return admin_fail(e, ERR_PROTO, "the server's answer is not JSON");
    }
    if (json_is_string(json_object_get(a, "error"))) {
        r = admin_fail(e, ERR_INVALID, "%s",
                       json_string_value(json_object_get(a, "error")));
        json_decref(a);
        return r;
    }
    *answer = a;
    return ERR_OK;
}
