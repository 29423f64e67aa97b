/*
 * Client groups (admin_client_group.h).
 */
#include "admin/admin_client_group.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

#define CG_PATTERNS_MAX 64
#define CG_PATTERN_MAX 128

static const char *const cg_fields[] = {"id", "name", "hostname",
                                        "os", "tags", NULL};

static int cg_check_rules(const json_t *rules, struct admin_err *e)
{
    const char *key;
    json_t *v;

    if (!json_is_object(rules)) {
        return admin_fail(e, ERR_INVALID,
                          "rules: an object of id, name, hostname, os, tags");
    }
    json_object_foreach((json_t *)(uintptr_t)rules, key, v)
    {
        bool known = false;
        size_t i;
        json_t *p;

        for (size_t k = 0; cg_fields[k] != NULL; k++) {
            known = known || strcmp(key, cg_fields[k]) == 0;
        }
        if (!known) {
            return admin_fail(e, ERR_INVALID,
                              "rules: unknown field '%.40s' (id, name, "
                              "hostname, os, tags)",
                              key);
        }
        if (!json_is_array(v) || json_array_size(v) == 0 ||
            json_array_size(v) > CG_PATTERNS_MAX) {
            return admin_fail(e, ERR_INVALID,
                              "rules.%s: a list of 1-%d patterns", key,
                              CG_PATTERNS_MAX);
        }
        json_array_foreach(v, i, p)
        {
            const char *s = json_string_value(p);
            if (s == NULL || s[0] == '\0' || strlen(s) > CG_PATTERN_MAX) {
                return admin_fail(e, ERR_INVALID,
                                  "rules.%s: patterns of 1-%d characters", key,
                                  CG_PATTERN_MAX);
            }
        }
    }
    return ERR_OK;
}

int admin_client_group_add(const struct admin_ctx *c,
                           const struct admin_client_group_req *q,
                           struct store_client_group *out, struct admin_err *e)
{
    json_t *a;
    char *txt;
    int r;

    memset(out, 0, sizeof(*out));
    if (q->name == NULL || q->name[0] == '\0' || strlen(q->name) > 64 ||
        strspn(q->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                        "0123456789._-") != strlen(q->name) ||
        util_is_uuid(q->name)) {
        return admin_fail(e, ERR_INVALID,
                          "name: 1-64 letters, digits, '.', '_' or '-'");
    }
    if (q->rules != NULL && (r = cg_check_rules(q->rules, e)) != ERR_OK) {
        return r;
    }
    if (q->nagents == 0 &&
        (q->rules == NULL || json_object_size(q->rules) == 0)) {
        return admin_fail(e, ERR_INVALID,
                          "a group needs agents (static) or rules (dynamic)");
    }
    a = json_array();
    for (size_t i = 0; i < q->nagents; i++) {
        if (q->agents[i] == NULL || q->agents[i][0] == '\0' ||
            strlen(q->agents[i]) > AGENT_ID_MAX) {
            json_decref(a);
            return admin_fail(e, ERR_INVALID, "agents: IDs of 1-%d characters",
                              AGENT_ID_MAX);
        }
        json_array_append_new(a, json_string(q->agents[i]));
    }
    txt = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (txt == NULL || strlen(txt) > CGROUP_JSON_MAX) {
        free(txt);
        return admin_fail(e, ERR_INVALID, "too many agents");
    }
    snprintf(out->agents, sizeof(out->agents), "%s", txt);
    free(txt);
    txt = q->rules != NULL ? json_dumps(q->rules, JSON_COMPACT | JSON_SORT_KEYS)
                           : strdup("{}");
    if (txt == NULL || strlen(txt) > CGROUP_JSON_MAX) {
        free(txt);
        return admin_fail(e, ERR_INVALID, "rules too long");
    }
    snprintf(out->rules, sizeof(out->rules), "%s", txt);
    free(txt);
    snprintf(out->name, sizeof(out->name), "%s", q->name);
    snprintf(out->description, sizeof(out->description), "%.*s",
             CGROUP_DESC_MAX, q->description != NULL ? q->description : "");
    snprintf(out->created_by, sizeof(out->created_by), "%s",
             c->actor != NULL ? c->actor : "");
    if ((r = store_client_group_add(c->st, out)) != ERR_OK) {
        return admin_fail(e, r,
                          r == ERR_EXISTS ? "a client group '%s' exists"
                                          : "cannot record client group '%s'",
                          q->name);
    }
    (void)admin_audit(c, "client_group.add", out->name, out->rules, NULL);
    return ERR_OK;
}

int admin_client_group_delete(const struct admin_ctx *c, const char *ref,
                              struct admin_err *e)
{
    int r = store_client_group_delete(c->st, ref);

    if (r != ERR_OK) {
        return admin_fail(e, r,
                          r == ERR_NOT_FOUND ? "client group '%s' not found"
                                             : "cannot delete '%s'",
                          ref);
    }
    (void)admin_audit(c, "client_group.delete", ref, NULL, NULL);
    return ERR_OK;
}

static bool cg_any(const json_t *patterns, const char *value)
{
    size_t i;
    json_t *p;

    json_array_foreach(patterns, i, p)
    {
        if (fnmatch(json_string_value(p), value, 0) == 0) {
            return true;
        }
    }
    return false;
}

bool admin_client_group_has(const struct store_client_group *g,
                            const struct store_agent *a)
{
    json_t *st = json_loads(g->agents, 0, NULL);
    json_t *rules = json_loads(g->rules, 0, NULL);
    bool in = false;
    size_t i;
    json_t *v;

    json_array_foreach(st, i, v)
    {
        in = in ||
             (json_is_string(v) && strcmp(json_string_value(v), a->id) == 0);
    }
    if (!in && json_is_object(rules) && json_object_size(rules) > 0) {
        const char *key;
        json_t *pats;
        in = true;
        json_object_foreach(rules, key, pats)
        {
            if (!json_is_array(pats)) {
                in = false;
            } else if (strcmp(key, "tags") == 0) {
                json_t *tags = json_loads(a->tags, 0, NULL);
                bool any = false;
                size_t k;
                json_t *t;
                json_array_foreach(tags, k, t)
                {
                    any = any || (json_is_string(t) &&
                                  cg_any(pats, json_string_value(t)));
                }
                json_decref(tags);
                in = in && any;
            } else {
                const char *val = strcmp(key, "id") == 0         ? a->id
                                  : strcmp(key, "name") == 0     ? a->name
                                  : strcmp(key, "hostname") == 0 ? a->hostname
                                  : strcmp(key, "os") == 0       ? a->os
                                                                 : NULL;
                in = in && val != NULL && cg_any(pats, val);
            }
        }
    }
    json_decref(st);
    json_decref(rules);
    return in;
}

json_t *admin_client_group_json(const struct store_client_group *g,
                                bool members, const struct store_agent *agents,
                                size_t n)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_string(g->id));
    json_object_set_new(o, "name", json_string(g->name));
    json_object_set_new(o, "description", json_string(g->description));
    json_object_set_new(o, "agents", json_loads(g->agents, 0, NULL));
    json_object_set_new(o, "rules", json_loads(g->rules, 0, NULL));
    json_object_set_new(o, "created_by", json_string(g->created_by));
    json_object_set_new(o, "created", admin_json_time(g->created_at));
    if (members) {
        json_t *m = json_array();
        for (size_t i = 0; i < n; i++) {
            if (admin_client_group_has(g, &agents[i])) {
                json_array_append_new(m, json_string(agents[i].id));
            }
        }
        json_object_set_new(o, "members", m);
    }
    return o;
}

int admin_client_group_member(const struct admin_ctx *c, const char *ref,
                              const char *agent, bool add,
                              struct store_client_group *out,
                              struct admin_err *e)
{
    json_t *a, *v;
    size_t i, at = (size_t)-1;
    char *txt, detail[AGENT_ID_MAX + 16];
    int r;

    if (agent == NULL || agent[0] == '\0' || strlen(agent) > AGENT_ID_MAX) {
        return admin_fail(e, ERR_INVALID, "agent: an ID of 1-%d characters",
                          AGENT_ID_MAX);
    }
    if ((r = store_client_group_get(c->st, ref, out)) != ERR_OK) {
        return admin_fail(e, r,
                          r == ERR_NOT_FOUND ? "client group '%s' not found"
                                             : "cannot read client group '%s'",
                          ref);
    }
    if ((a = json_loads(out->agents, 0, NULL)) == NULL || !json_is_array(a)) {
        json_decref(a);
        a = json_array();
    }
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), agent) == 0) {
            at = i;
        }
    }
    if (add && at != (size_t)-1) {
        json_decref(a);
        return admin_fail(e, ERR_EXISTS, "agent %s is already in %s", agent,
                          out->name);
    }
    if (!add && at == (size_t)-1) {
        json_decref(a);
        return admin_fail(e, ERR_NOT_FOUND,
                          "agent %s is not a static member of %s", agent,
                          out->name);
    }
    if (add) {
        json_array_append_new(a, json_string(agent));
    } else {
        json_array_remove(a, at);
    }
    txt = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (txt == NULL || strlen(txt) > CGROUP_JSON_MAX) {
        free(txt);
        return admin_fail(e, ERR_INVALID, "too many agents");
    }
    r = store_client_group_set_agents(c->st, out->id, txt);
    if (r == ERR_OK) {
        snprintf(out->agents, sizeof(out->agents), "%s", txt);
    }
    free(txt);
    if (r != ERR_OK) {
        return admin_fail(e, r, "cannot change client group '%s'", out->name);
    }
    snprintf(detail, sizeof(detail), "%s %s", add ? "added" : "removed", agent);
    (void)admin_audit(c, "client_group.update", out->name, detail, NULL);
    return ERR_OK;
}
