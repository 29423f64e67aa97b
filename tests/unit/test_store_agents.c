/*
 * Unit tests of the store's agent side (src/store/agents.h,
 * store_agents.c) on a real SQLite file: credentials (add, get, list,
 * delete, the agents count, IDs in either case), agents (online creates
 * and refreshes, first_seen kept, offline, all offline, list order,
 * delete taking its tunnels), tunnels (add, the per-protocol unique local
 * port, an unknown agent, list by agent, ACL, state, touch, delete), and
 * the refusals every writer makes: over-long fields (ERR_TOO_LONG),
 * control characters and malformed IDs or JSON (ERR_INVALID), missing
 * rows (ERR_NOT_FOUND); and the nodes of a cluster (store/nodes.h) on
 * two handles of one store: each node's rows stay its own, and a dead
 * node is reaped exactly once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "store/agents.h"
#include "store/jobs.h"
#include "store/nodes.h"
#include "store/store.h"

#include "store_fx.h"

#define CRED1 "0123456789abcdef0123456789abcdef"
#define CRED2 "fedcba9876543210fedcba9876543210"
#define HASH "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"

static int setup(void **state)
{
    return fx_setup(state, "/tmp/test_store_agents.XXXXXX");
}

static void cred_make(struct store_credential *c, const char *id,
                      const char *name, int64_t at)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", id);
    snprintf(c->name, sizeof(c->name), "%s", name);
    snprintf(c->secret_hash, sizeof(c->secret_hash), "%s", HASH);
    snprintf(c->created_by, sizeof(c->created_by), "cli:root");
    c->created_at = at;
}

static void agent_make(struct store_agent *a, const char *id, const char *name)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->id, sizeof(a->id), "%s", id);
    snprintf(a->credential_id, sizeof(a->credential_id), "%s", CRED1);
    snprintf(a->name, sizeof(a->name), "%s", name);
    snprintf(a->hostname, sizeof(a->hostname), "%s.example", name);
    snprintf(a->os, sizeof(a->os), "Debian GNU/Linux 12 (bookworm)");
    snprintf(a->kernel, sizeof(a->kernel), "Linux 6.1.0-18-amd64");
    snprintf(a->arch, sizeof(a->arch), "x86_64");
    snprintf(a->version, sizeof(a->version), "0.1.0");
    snprintf(a->addresses, sizeof(a->addresses), "[\"10.1.2.8\",\"fe80::1\"]");
    snprintf(a->tags, sizeof(a->tags), "[\"prod\",\"db\"]");
    snprintf(a->remote_addr, sizeof(a->remote_addr), "192.0.2.7:40000");
}

static void tunnel_make(struct store_tunnel *t, const char *agent, bool udp,
                        int port)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->agent_id, sizeof(t->agent_id), "%s", agent);
    t->udp = udp;
    snprintf(t->remote_host, sizeof(t->remote_host), "127.0.0.1");
    t->remote_port = udp ? 53 : 22;
    t->local_port = port;
    snprintf(t->acl, sizeof(t->acl), "192.0.2.7/32");
    t->idle_minutes = 5;
    snprintf(t->created_by, sizeof(t->created_by), "admin");
    t->created_at = 1000;
}

/* --- credentials --------------------------------------------------------- */

static void test_credentials(void **state)
{
    struct fx *f = *state;
    struct store_credential c, got, *list = NULL;
    struct store_agent a;
    size_t n = 0;

    cred_make(&c, CRED2, "second", 200);
    assert_int_equal(store_credential_add(f->st, &c), ERR_OK);
    /* upper case is the same ID, kept lower-case */
    cred_make(&c, "0123456789ABCDEF0123456789ABCDEF", "first", 100);
    assert_int_equal(store_credential_add(f->st, &c), ERR_OK);
    assert_int_equal(store_credential_add(f->st, &c), ERR_EXISTS);

    assert_int_equal(store_credential_get(f->st, CRED1, &got), ERR_OK);
    assert_string_equal(got.id, CRED1);
    assert_string_equal(got.name, "first");
    assert_string_equal(got.secret_hash, HASH);
    assert_string_equal(got.created_by, "cli:root");
    assert_int_equal(got.created_at, 100);
    assert_int_equal(got.agents, 0);
    assert_int_equal(
        store_credential_get(f->st, "0123456789ABCDEF0123456789ABCDEF", &got),
        ERR_OK);
    assert_string_equal(got.id, CRED1);

    /* oldest first; the agents that used it are counted */
    agent_make(&a, "a1", "one");
    assert_int_equal(store_agent_online(f->st, &a, 5000), ERR_OK);
    agent_make(&a, "a2", "two");
    assert_int_equal(store_agent_online(f->st, &a, 5000), ERR_OK);
    assert_int_equal(store_credential_list(f->st, &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, CRED1);
    assert_int_equal(list[0].agents, 2);
    assert_string_equal(list[1].id, CRED2);
    assert_int_equal(list[1].agents, 0);
    store_credential_list_free(list, n);

    /* deleting a credential keeps the agents that used it */
    assert_int_equal(store_credential_delete(f->st, CRED1), ERR_OK);
    assert_int_equal(store_credential_delete(f->st, CRED1), ERR_NOT_FOUND);
    assert_int_equal(store_credential_get(f->st, CRED1, &got), ERR_NOT_FOUND);
    assert_int_equal(store_agent_get(f->st, "a1", &a), ERR_OK);
    assert_int_equal(store_credential_list(f->st, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    store_credential_list_free(list, n);
}

static void test_credential_refusals(void **state)
{
    struct fx *f = *state;
    struct store_credential c, got;

    /* IDs are 32 hex digits */
    cred_make(&c, "0123456789abcdef0123456789abcde", "x", 1);
    assert_int_equal(store_credential_add(f->st, &c), ERR_INVALID);
    cred_make(&c, "0123456789abcdef0123456789abcdeg", "x", 1);
    assert_int_equal(store_credential_add(f->st, &c), ERR_INVALID);
    cred_make(&c, "00000000-0000-4000-8000-000000000000", "x", 1);
    assert_int_equal(store_credential_add(f->st, &c), ERR_INVALID);
    /* a hash and a time are needed */
    cred_make(&c, CRED1, "x", 1);
    c.secret_hash[0] = '\0';
    assert_int_equal(store_credential_add(f->st, &c), ERR_INVALID);
    cred_make(&c, CRED1, "x", 0);
    assert_int_equal(store_credential_add(f->st, &c), ERR_INVALID);
    /* control characters, unterminated fields */
    cred_make(&c, CRED1, "bad\nname", 1);
    assert_int_equal(store_credential_add(f->st, &c), ERR_INVALID);
    cred_make(&c, CRED1, "x", 1);
    memset(c.name, 'n', sizeof(c.name));
    assert_int_equal(store_credential_add(f->st, &c), ERR_TOO_LONG);
    cred_make(&c, CRED1, "x", 1);
    memset(c.created_by, 'u', sizeof(c.created_by));
    assert_int_equal(store_credential_add(f->st, &c), ERR_TOO_LONG);
    cred_make(&c, CRED1, "x", 1);
    memset(c.secret_hash, 'h', sizeof(c.secret_hash));
    assert_int_equal(store_credential_add(f->st, &c), ERR_TOO_LONG);
    /* nothing was written */
    assert_int_equal(store_credential_get(f->st, CRED1, &got), ERR_NOT_FOUND);
    assert_int_equal(store_credential_get(f->st, "nonsense", &got),
                     ERR_NOT_FOUND);
    assert_int_equal(store_credential_get(f->st, NULL, &got), ERR_NOT_FOUND);
    assert_int_equal(store_credential_delete(f->st, "nonsense"), ERR_NOT_FOUND);
}

/* --- agents -------------------------------------------------------------- */

static void test_agent_online_offline(void **state)
{
    struct fx *f = *state;
    struct store_agent a, got;

    agent_make(&a, "3f1c0ad7b2e54f6d9a0b1c2d3e4f5a6b", "db-08");
    assert_int_equal(store_agent_online(f->st, &a, 1000), ERR_OK);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_string_equal(got.id, a.id);
    assert_string_equal(got.credential_id, CRED1);
    assert_string_equal(got.name, "db-08");
    assert_string_equal(got.hostname, "db-08.example");
    assert_string_equal(got.os, "Debian GNU/Linux 12 (bookworm)");
    assert_string_equal(got.kernel, "Linux 6.1.0-18-amd64");
    assert_string_equal(got.arch, "x86_64");
    assert_string_equal(got.version, "0.1.0");
    assert_string_equal(got.addresses, "[\"10.1.2.8\",\"fe80::1\"]");
    assert_string_equal(got.tags, "[\"prod\",\"db\"]");
    assert_string_equal(got.remote_addr, "192.0.2.7:40000");
    assert_true(got.online);
    assert_int_equal(got.first_seen, 1000);
    assert_int_equal(got.connected_at, 1000);
    assert_int_equal(got.last_seen, 1000);

    assert_int_equal(store_agent_offline(f->st, a.id, 1500), ERR_OK);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_false(got.online);
    assert_int_equal(got.last_seen, 1500);
    assert_int_equal(got.connected_at, 1000);

    /* back, with new facts: first_seen stays, the rest is replaced */
    snprintf(a.name, sizeof(a.name), "db-08-renamed");
    a.tags[0] = '\0'; /* none: stored as [] */
    snprintf(a.remote_addr, sizeof(a.remote_addr), "[2001:db8::7]:41000");
    assert_int_equal(store_agent_online(f->st, &a, 2000), ERR_OK);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_true(got.online);
    assert_string_equal(got.name, "db-08-renamed");
    assert_string_equal(got.tags, "[]");
    assert_string_equal(got.remote_addr, "[2001:db8::7]:41000");
    assert_int_equal(got.first_seen, 1000);
    assert_int_equal(got.connected_at, 2000);
    assert_int_equal(got.last_seen, 2000);

    assert_int_equal(store_agent_offline(f->st, "nobody", 1), ERR_NOT_FOUND);
    assert_int_equal(store_agent_offline(f->st, "bad id!", 1), ERR_NOT_FOUND);
    assert_int_equal(store_agent_get(f->st, "nobody", &got), ERR_NOT_FOUND);
    /* agent IDs keep their case: another agent */
    assert_int_equal(
        store_agent_get(f->st, "3F1C0AD7B2E54F6D9A0B1C2D3E4F5A6B", &got),
        ERR_NOT_FOUND);
}

/* An agent ID belongs to the credential that first announced it: another
 * credential is refused (and changes nothing) until it is rebound or
 * unbound. */
static void test_agent_binding(void **state)
{
    struct fx *f = *state;
    struct store_agent a, got;

    agent_make(&a, "bound-1", "one");
    assert_int_equal(store_agent_online(f->st, &a, 1000), ERR_OK);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_string_equal(got.bound_credential, CRED1);
    assert_int_equal(store_agent_offline(f->st, a.id, 1100), ERR_OK);

    /* another credential: refused, the row untouched */
    snprintf(a.credential_id, sizeof(a.credential_id), "%s", CRED2);
    snprintf(a.name, sizeof(a.name), "thief");
    assert_int_equal(store_agent_online(f->st, &a, 1200), ERR_DENIED);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_false(got.online);
    assert_string_equal(got.name, "one");
    assert_string_equal(got.credential_id, CRED1);
    assert_string_equal(got.bound_credential, CRED1);

    /* the owner still comes back */
    snprintf(a.credential_id, sizeof(a.credential_id), "%s", CRED1);
    snprintf(a.name, sizeof(a.name), "one");
    assert_int_equal(store_agent_online(f->st, &a, 1300), ERR_OK);

    /* rebound: now only the new credential */
    assert_int_equal(store_agent_bind(f->st, a.id, CRED2), ERR_OK);
    assert_int_equal(store_agent_online(f->st, &a, 1400), ERR_DENIED);
    snprintf(a.credential_id, sizeof(a.credential_id), "%s", CRED2);
    assert_int_equal(store_agent_online(f->st, &a, 1500), ERR_OK);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_string_equal(got.credential_id, CRED2);
    assert_string_equal(got.bound_credential, CRED2);

    /* unbound: the next credential to announce binds it */
    assert_int_equal(store_agent_bind(f->st, a.id, NULL), ERR_OK);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_string_equal(got.bound_credential, "");
    snprintf(a.credential_id, sizeof(a.credential_id), "%s", CRED1);
    assert_int_equal(store_agent_online(f->st, &a, 1600), ERR_OK);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_string_equal(got.bound_credential, CRED1);
    snprintf(a.credential_id, sizeof(a.credential_id), "%s", CRED2);
    assert_int_equal(store_agent_online(f->st, &a, 1700), ERR_DENIED);

    assert_int_equal(store_agent_bind(f->st, "nobody", CRED1), ERR_NOT_FOUND);
    assert_int_equal(store_agent_bind(f->st, a.id, "not-a-credential"),
                     ERR_INVALID);
}

static void test_agent_all_offline_and_list(void **state)
{
    struct fx *f = *state;
    struct store_agent a, *list = NULL;
    size_t n = 0;

    agent_make(&a, "id-c", "beta");
    assert_int_equal(store_agent_online(f->st, &a, 100), ERR_OK);
    agent_make(&a, "id-b", "alpha");
    assert_int_equal(store_agent_online(f->st, &a, 200), ERR_OK);
    agent_make(&a, "id-a", "beta");
    assert_int_equal(store_agent_online(f->st, &a, 300), ERR_OK);
    assert_int_equal(store_agent_offline(f->st, "id-c", 400), ERR_OK);

    assert_int_equal(store_agent_all_offline(f->st), ERR_OK);
    assert_int_equal(store_agent_list(f->st, &list, &n), ERR_OK);
    assert_int_equal(n, 3);
    /* by name, then ID */
    assert_string_equal(list[0].id, "id-b");
    assert_string_equal(list[1].id, "id-a");
    assert_string_equal(list[2].id, "id-c");
    for (size_t i = 0; i < n; i++) {
        assert_false(list[i].online);
    }
    /* last_seen kept */
    assert_int_equal(list[0].last_seen, 200);
    assert_int_equal(list[1].last_seen, 300);
    assert_int_equal(list[2].last_seen, 400);
    store_agent_list_free(list, n);
    /* twice is fine */
    assert_int_equal(store_agent_all_offline(f->st), ERR_OK);
}

static void test_agent_refusals(void **state)
{
    struct fx *f = *state;
    struct store_agent a, got;

    agent_make(&a, "", "x");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_INVALID);
    agent_make(&a, "has space", "x");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_INVALID);
    agent_make(&a, "a/b", "x");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_INVALID);
    agent_make(&a, "x", "x");
    memset(a.id, 'i', sizeof(a.id)); /* 65 characters, no NUL */
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_TOO_LONG);
    agent_make(&a, "x", "x");
    snprintf(a.credential_id, sizeof(a.credential_id), "not-a-credential");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_INVALID);
    agent_make(&a, "x", "x");
    memset(a.hostname, 'h', sizeof(a.hostname));
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_TOO_LONG);
    agent_make(&a, "x", "x");
    memset(a.arch, 'a', sizeof(a.arch));
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_TOO_LONG);
    agent_make(&a, "x", "x");
    memset(a.tags, 't', sizeof(a.tags));
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_TOO_LONG);
    agent_make(&a, "x", "x");
    snprintf(a.os, sizeof(a.os), "Linux\x1b[31m");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_INVALID);
    agent_make(&a, "x", "x");
    snprintf(a.tags, sizeof(a.tags), "prod,db");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_INVALID);
    agent_make(&a, "x", "x");
    snprintf(a.addresses, sizeof(a.addresses), "[\"10.0.0.1\", 7]");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_INVALID);
    agent_make(&a, "x", "x");
    snprintf(a.tags, sizeof(a.tags), "{\"a\":\"b\"}");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_INVALID);
    assert_int_equal(store_agent_online(f->st, NULL, 1), ERR_INVALID);
    assert_int_equal(store_agent_get(f->st, "x", &got), ERR_NOT_FOUND);

    /* the longest ID and facts fit */
    agent_make(&a, "x", "x");
    memset(a.id, 'i', AGENT_ID_MAX);
    a.id[AGENT_ID_MAX] = '\0';
    memset(a.hostname, 'h', AGENT_FACT_MAX);
    a.hostname[AGENT_FACT_MAX] = '\0';
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_OK);
    assert_int_equal(store_agent_get(f->st, a.id, &got), ERR_OK);
    assert_int_equal(strlen(got.hostname), AGENT_FACT_MAX);
}

static void test_agent_delete_takes_tunnels(void **state)
{
    struct fx *f = *state;
    struct store_agent a;
    struct store_tunnel t, keep, got, *list = NULL;
    size_t n = 0;

    agent_make(&a, "gone", "gone");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_OK);
    agent_make(&a, "stays", "stays");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_OK);
    tunnel_make(&t, "gone", false, 20000);
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_OK);
    tunnel_make(&t, "gone", true, 20000);
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_OK);
    tunnel_make(&keep, "stays", false, 20001);
    assert_int_equal(store_tunnel_add(f->st, &keep), ERR_OK);

    assert_int_equal(store_agent_delete(f->st, "gone"), ERR_OK);
    assert_int_equal(store_agent_get(f->st, "gone", &a), ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_get(f->st, t.id, &got), ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_list(f->st, NULL, &list, &n), ERR_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, keep.id);
    store_tunnel_list_free(list, n);
    assert_int_equal(store_agent_delete(f->st, "gone"), ERR_NOT_FOUND);
    assert_int_equal(store_agent_delete(f->st, "bad id"), ERR_NOT_FOUND);

    /* an agent that announces itself again keeps its tunnels (an upsert,
     * never delete-and-insert) */
    agent_make(&a, "stays", "stays-again");
    assert_int_equal(store_agent_online(f->st, &a, 2), ERR_OK);
    assert_int_equal(store_tunnel_get(f->st, keep.id, &got), ERR_OK);
}

/* --- tunnels ------------------------------------------------------------- */

static void test_tunnels(void **state)
{
    struct fx *f = *state;
    struct store_agent a;
    struct store_tunnel t1, t2, t3, got, *list = NULL;
    size_t n = 0;

    agent_make(&a, "ag1", "one");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_OK);
    agent_make(&a, "ag2", "two");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_OK);

    tunnel_make(&t1, "ag1", false, 20005);
    assert_int_equal(store_tunnel_add(f->st, &t1), ERR_OK);
    assert_true(util_is_uuid(t1.id));
    assert_int_equal(store_tunnel_get(f->st, t1.id, &got), ERR_OK);
    assert_string_equal(got.id, t1.id);
    assert_string_equal(got.agent_id, "ag1");
    assert_false(got.udp);
    assert_string_equal(got.remote_host, "127.0.0.1");
    assert_int_equal(got.remote_port, 22);
    assert_int_equal(got.local_port, 20005);
    assert_string_equal(got.acl, "192.0.2.7/32");
    assert_int_equal(got.idle_minutes, 5);
    assert_string_equal(got.created_by, "admin");
    assert_int_equal(got.created_at, 1000);
    assert_string_equal(got.state, "");
    assert_int_equal(got.last_used, 0);

    /* the same port: refused for TCP, fine for UDP */
    tunnel_make(&t2, "ag2", false, 20005);
    assert_int_equal(store_tunnel_add(f->st, &t2), ERR_EXISTS);
    assert_string_equal(t2.id, "");
    tunnel_make(&t2, "ag2", true, 20005);
    assert_int_equal(store_tunnel_add(f->st, &t2), ERR_OK);
    tunnel_make(&t3, "ag2", true, 20005);
    assert_int_equal(store_tunnel_add(f->st, &t3), ERR_EXISTS);
    tunnel_make(&t3, "ag2", false, 20002);
    assert_int_equal(store_tunnel_add(f->st, &t3), ERR_OK);
    assert_int_equal(store_tunnel_get(f->st, t2.id, &got), ERR_OK);
    assert_true(got.udp);

    /* an unknown agent */
    tunnel_make(&got, "nobody", false, 20009);
    assert_int_equal(store_tunnel_add(f->st, &got), ERR_NOT_FOUND);

    /* by local port, then protocol; filtered by agent */
    assert_int_equal(store_tunnel_list(f->st, NULL, &list, &n), ERR_OK);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].id, t3.id);
    assert_string_equal(list[1].id, t1.id);
    assert_string_equal(list[2].id, t2.id);
    store_tunnel_list_free(list, n);
    assert_int_equal(store_tunnel_list(f->st, "ag2", &list, &n), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].id, t3.id);
    assert_string_equal(list[1].id, t2.id);
    store_tunnel_list_free(list, n);
    assert_int_equal(store_tunnel_list(f->st, "nobody", &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    store_tunnel_list_free(list, n);
    assert_int_equal(store_tunnel_list(f->st, "bad id", &list, &n), ERR_OK);
    assert_int_equal(n, 0);
    assert_null(list);

    /* ACL, state, touch; IDs in upper case too */
    assert_int_equal(store_tunnel_set_acl(f->st, t1.id, "10.0.0.0/8,::1/128"),
                     ERR_OK);
    assert_int_equal(store_tunnel_set_state(f->st, t1.id, "listening"), ERR_OK);
    for (char *p = t1.id; *p != '\0'; p++) {
        if (*p >= 'a' && *p <= 'f') {
            *p = (char)(*p - 'a' + 'A');
        }
    }
    assert_int_equal(store_tunnel_touch(f->st, t1.id, 4242), ERR_OK);
    assert_int_equal(store_tunnel_get(f->st, t1.id, &got), ERR_OK);
    assert_string_equal(got.acl, "10.0.0.0/8,::1/128");
    assert_string_equal(got.state, "listening");
    assert_int_equal(got.last_used, 4242);
    /* an older use (another node's, written late) does not go back */
    assert_int_equal(store_tunnel_touch(f->st, t1.id, 4000), ERR_OK);
    assert_int_equal(store_tunnel_get(f->st, t1.id, &got), ERR_OK);
    assert_int_equal(got.last_used, 4242);

    /* an idle delete: not while a use (4242) or the creation (1000)
     * later than the caller's last use is recorded; then yes */
    int64_t last = 0;

    assert_int_equal(store_tunnel_delete_idle(f->st, t1.id, 4241, &last),
                     ERR_DENIED);
    assert_int_equal(last, 4242);
    assert_int_equal(store_tunnel_delete_idle(f->st, t3.id, 999, &last),
                     ERR_DENIED);
    assert_int_equal(last, 1000);
    assert_int_equal(store_tunnel_delete_idle(f->st, t3.id, 1000, NULL),
                     ERR_OK);
    assert_int_equal(store_tunnel_get(f->st, t3.id, &got), ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_delete_idle(f->st, t3.id, 1000, NULL),
                     ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_delete_idle(f->st, "nope", 1000, NULL),
                     ERR_NOT_FOUND);

    /* delete */
    assert_int_equal(store_tunnel_delete(f->st, t1.id), ERR_OK);
    assert_int_equal(store_tunnel_delete(f->st, t1.id), ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_get(f->st, t1.id, &got), ERR_NOT_FOUND);
    /* the port is free again */
    tunnel_make(&t1, "ag1", false, 20005);
    assert_int_equal(store_tunnel_add(f->st, &t1), ERR_OK);
}

static void test_tunnel_refusals(void **state)
{
    struct fx *f = *state;
    struct store_agent a;
    struct store_tunnel t, got;
    char big[TUNNEL_ACL_MAX + 2];
    const char *missing = "00000000-0000-4000-8000-000000000000";

    agent_make(&a, "ag", "ag");
    assert_int_equal(store_agent_online(f->st, &a, 1), ERR_OK);

    tunnel_make(&t, "ag", false, 0);
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_INVALID);
    tunnel_make(&t, "ag", false, 65536);
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_INVALID);
    tunnel_make(&t, "ag", false, 20000);
    t.remote_port = 0;
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_INVALID);
    tunnel_make(&t, "ag", false, 20000);
    t.idle_minutes = -1;
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_INVALID);
    tunnel_make(&t, "ag", false, 20000);
    t.acl[0] = '\0';
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_INVALID);
    tunnel_make(&t, "ag", false, 20000);
    t.remote_host[0] = '\0';
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_INVALID);
    tunnel_make(&t, "bad agent", false, 20000);
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_INVALID);
    tunnel_make(&t, "ag", false, 20000);
    memset(t.remote_host, 'r', sizeof(t.remote_host));
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_TOO_LONG);
    tunnel_make(&t, "ag", false, 20000);
    memset(t.acl, '1', sizeof(t.acl));
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_TOO_LONG);
    tunnel_make(&t, "ag", false, 20000);
    memset(t.agent_id, 'a', sizeof(t.agent_id));
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_TOO_LONG);

    tunnel_make(&t, "ag", false, 20000);
    assert_int_equal(store_tunnel_add(f->st, &t), ERR_OK);
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(store_tunnel_set_acl(f->st, t.id, big), ERR_TOO_LONG);
    big[TUNNEL_ACL_MAX] = '\0'; /* exactly the maximum fits */
    assert_int_equal(store_tunnel_set_acl(f->st, t.id, big), ERR_OK);
    assert_int_equal(store_tunnel_set_acl(f->st, t.id, ""), ERR_INVALID);
    assert_int_equal(store_tunnel_set_acl(f->st, t.id, "a\nb"), ERR_INVALID);
    assert_int_equal(store_tunnel_set_acl(f->st, missing, "10.0.0.0/8"),
                     ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_set_acl(f->st, "nonsense", "10.0.0.0/8"),
                     ERR_NOT_FOUND);

    memset(big, 's', sizeof(big) - 1);
    big[TUNNEL_STATE_MAX + 1] = '\0';
    assert_int_equal(store_tunnel_set_state(f->st, t.id, big), ERR_TOO_LONG);
    assert_int_equal(store_tunnel_set_state(f->st, missing, "listening"),
                     ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_set_state(f->st, t.id, ""), ERR_OK);
    assert_int_equal(store_tunnel_touch(f->st, missing, 1), ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_delete_idle(f->st, missing, 1, NULL),
                     ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_delete(f->st, missing), ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_delete(f->st, NULL), ERR_NOT_FOUND);
    assert_int_equal(store_tunnel_get(f->st, "nonsense", &got), ERR_NOT_FOUND);
    /* the refused writes changed nothing */
    assert_int_equal(store_tunnel_get(f->st, t.id, &got), ERR_OK);
    assert_int_equal(strlen(got.acl), TUNNEL_ACL_MAX);
}

/* The v5 tables exist in a store made by store_open, and a database file
 * that the CLI and the server share sees the same rows. */
static void test_shared_file(void **state)
{
    struct fx *f = *state;
    struct store *other = NULL;
    struct store_credential c, got;

    FX_NEED_SHARED(f);
    assert_int_equal(store_open(f->path, &other), ERR_OK);
    cred_make(&c, CRED1, "shared", 1);
    assert_int_equal(store_credential_add(other, &c), ERR_OK);
    assert_int_equal(store_credential_get(f->st, CRED1, &got), ERR_OK);
    assert_string_equal(got.name, "shared");
    store_close(other);
}

#define NODE1 "11111111111111111111111111111111"
#define NODE2 "22222222222222222222222222222222"
#define NODE3 "33333333333333333333333333333333"

static void node_make(struct store_node *n, const char *id, const char *name)
{
    memset(n, 0, sizeof(*n));
    snprintf(n->id, sizeof(n->id), "%s", id);
    snprintf(n->name, sizeof(n->name), "%s", name);
    snprintf(n->addresses, sizeof(n->addresses), "ssh=127.0.0.1:2203");
    snprintf(n->version, sizeof(n->version), "0.1.0");
}

static void session_make(struct store_session *s, const char *user)
{
    memset(s, 0, sizeof(*s));
    util_uuid4(s->id);
    snprintf(s->user_name, sizeof(s->user_name), "%s", user);
    snprintf(s->asset_name, sizeof(s->asset_name), "web1");
    snprintf(s->kind, sizeof(s->kind), "shell");
    s->started_at = 100;
}

static const struct store_node *node_find(const struct store_node *l, size_t n,
                                          const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].id, id) == 0) {
            return &l[i];
        }
    }
    fail_msg("node %s not listed", id);
    return NULL;
}

/* Two nodes on one store: who holds what, a restart cleaning up only its
 * own rows, and the reaper. */
static void test_nodes(void **state)
{
    struct fx *f = *state;
    struct store *b = NULL, *c = NULL;
    struct store_node n, *list = NULL;
    struct store_node_reaped rp;
    struct store_session s1, s2, *rows = NULL;
    struct store_session_filter filter = {0};
    struct store_agent a;
    struct store_job j1, j2, got;
    size_t cnt = 0, nrows = 0;
    bool was_dead = true;

    FX_NEED_SHARED(f);
    assert_int_equal(store_open(f->path, &b), ERR_OK);
    assert_int_equal(store_open(f->path, &c), ERR_OK);
    assert_int_equal(store_set_node(f->st, "not-hex"), ERR_INVALID);
    assert_int_equal(store_set_node(f->st, NODE1), ERR_OK);
    assert_int_equal(store_set_node(b, NODE2), ERR_OK);
    assert_int_equal(store_set_node(c, NODE3), ERR_OK);
    assert_string_equal(store_node_self(b), NODE2);
    node_make(&n, NODE1, "alpha");
    assert_int_equal(store_node_register(f->st, &n, 1000), ERR_OK);
    node_make(&n, NODE2, "beta");
    assert_int_equal(store_node_register(b, &n, 1000), ERR_OK);
    node_make(&n, "x", "bad");
    assert_int_equal(store_node_register(b, &n, 1000), ERR_INVALID);

    /* an agent and an open session on each node */
    agent_make(&a, "ag-1", "one");
    assert_int_equal(store_agent_online(f->st, &a, 1000), ERR_OK);
    agent_make(&a, "ag-2", "two");
    assert_int_equal(store_agent_online(b, &a, 1000), ERR_OK);
    session_make(&s1, "u1");
    assert_int_equal(store_session_open(f->st, &s1), ERR_OK);
    session_make(&s2, "u2");
    assert_int_equal(store_session_open(b, &s2), ERR_OK);
    assert_int_equal(store_agent_get(f->st, "ag-2", &a), ERR_OK);
    assert_string_equal(a.node, NODE2);
    /* who holds which, as node 1 sees it */
    {
        char held[NODE_ID_MAX + 1] = "";
        bool away = true;

        assert_int_equal(store_agent_holder(f->st, "ag-1", &away, held),
                         ERR_OK);
        assert_false(away); /* its own */
        assert_int_equal(store_agent_holder(f->st, "ag-2", &away, held),
                         ERR_OK);
        assert_true(away);
        assert_string_equal(held, NODE2);
        assert_true(store_agent_elsewhere(f->st, "ag-2", NULL));
        assert_int_equal(store_agent_holder(f->st, "nobody", &away, NULL),
                         ERR_OK);
        assert_false(away); /* held nowhere */
        assert_false(store_agent_elsewhere(b, "ag-2", NULL));
    }
    /* a job running on each node */
    memset(&j1, 0, sizeof(j1));
    snprintf(j1.agent_id, sizeof(j1.agent_id), "ag-1");
    snprintf(j1.command, sizeof(j1.command), "uptime");
    j1.timeout = 10;
    j2 = j1;
    assert_int_equal(store_job_add(f->st, &j1), ERR_OK);
    assert_int_equal(store_job_add(b, &j2), ERR_OK);

    assert_int_equal(store_node_list(c, 990, &list, &cnt), ERR_OK);
    assert_int_equal(cnt, 2);
    assert_string_equal(list[0].name, "alpha");
    assert_int_equal(node_find(list, cnt, NODE1)->agents, 1);
    assert_int_equal(node_find(list, cnt, NODE2)->sessions, 1);
    assert_true(node_find(list, cnt, NODE2)->online);
    store_node_list_free(list, cnt);

    /* node 1 restarting cleans up its own rows only; node 1 marking
     * node 2's agent offline changes nothing */
    assert_int_equal(store_agent_all_offline(f->st), ERR_OK);
    assert_int_equal(store_agent_offline(f->st, "ag-2", 1001), ERR_OK);
    assert_int_equal(store_agent_get(f->st, "ag-2", &a), ERR_OK);
    assert_true(a.online);
    assert_int_equal(store_agent_get(f->st, "ag-1", &a), ERR_OK);
    assert_false(a.online);
    assert_int_equal(
        store_session_close_dangling(f->st, 1002, "error: interrupted", NULL),
        ERR_OK);
    assert_int_equal(store_session_list(f->st, &filter, &rows, &nrows), ERR_OK);
    assert_int_equal(nrows, 2);
    for (size_t i = 0; i < nrows; i++) {
        if (strcmp(rows[i].id, s2.id) == 0) {
            assert_int_equal(rows[i].ended_at, 0);
        } else {
            assert_string_equal(rows[i].result, "error: interrupted");
        }
    }
    free(rows);

    /* node 1 heartbeats, node 2 goes silent: node 3 and node 1 both look;
     * only one of them reaps */
    assert_int_equal(store_node_heartbeat(f->st, NODE1, 1050, &was_dead),
                     ERR_OK);
    assert_false(was_dead);
    assert_int_equal(store_node_reap(c, NODE3, 1040, 1060, "error: gone", &rp),
                     ERR_OK);
    assert_int_equal(rp.nodes, 1);
    assert_int_equal(rp.sessions, 1);
    assert_int_equal(rp.agents, 1);
    assert_int_equal(
        store_node_reap(f->st, NODE1, 1040, 1061, "error: gone", &rp), ERR_OK);
    assert_int_equal(rp.nodes, 0);
    assert_int_equal(rp.sessions, 0);
    assert_int_equal(store_agent_get(f->st, "ag-2", &a), ERR_OK);
    assert_false(a.online);
    assert_string_equal(a.node, "");
    assert_int_equal(store_job_get(f->st, j2.id, &got), ERR_OK);
    assert_string_equal(got.status, "lost");
    assert_string_equal(got.why, "its node stopped answering");
    store_job_free_output(&got);
    assert_int_equal(store_session_list(f->st, &filter, &rows, &nrows), ERR_OK);
    for (size_t i = 0; i < nrows; i++) {
        if (strcmp(rows[i].id, s2.id) == 0) {
            assert_string_equal(rows[i].result, "error: gone");
            assert_int_equal(rows[i].ended_at, 1060);
        }
    }
    free(rows);
    assert_int_equal(store_node_list(c, 1040, &list, &cnt), ERR_OK);
    assert_string_equal(node_find(list, cnt, NODE2)->state, "dead");
    assert_string_equal(node_find(list, cnt, NODE2)->reaped_by, NODE3);
    assert_false(node_find(list, cnt, NODE2)->online);
    assert_true(node_find(list, cnt, NODE1)->online);
    store_node_list_free(list, cnt);

    /* node 2 comes back and learns it was declared dead; it writes the
     * agent it still holds back as its own (unless another node took it) */
    assert_int_equal(store_node_heartbeat(b, NODE2, 1100, &was_dead), ERR_OK);
    assert_true(was_dead);
    assert_int_equal(store_agent_reclaim(b, "ag-2", 1101), ERR_OK);
    assert_int_equal(store_agent_get(f->st, "ag-2", &a), ERR_OK);
    assert_true(a.online);
    assert_string_equal(a.node, NODE2);
    assert_int_equal(store_agent_reclaim(b, "nobody", 1101), ERR_NOT_FOUND);
    agent_make(&a, "ag-3", "three");
    assert_int_equal(store_agent_online(f->st, &a, 1102), ERR_OK);
    assert_int_equal(store_agent_reclaim(b, "ag-3", 1103), ERR_NOT_FOUND);
    assert_int_equal(store_agent_get(f->st, "ag-3", &a), ERR_OK);
    assert_string_equal(a.node, NODE1);
    assert_int_equal(store_node_heartbeat(b, NODE2, 1105, &was_dead), ERR_OK);
    assert_false(was_dead);
    assert_int_equal(store_node_heartbeat(b, NODE3, 1105, NULL), ERR_NOT_FOUND);

    /* a clean stop */
    agent_make(&a, "ag-2", "two");
    assert_int_equal(store_agent_online(b, &a, 1110), ERR_OK);
    assert_int_equal(store_node_stop(b, NODE2, 1120), ERR_OK);
    assert_int_equal(store_agent_get(f->st, "ag-2", &a), ERR_OK);
    assert_false(a.online);
    assert_int_equal(store_node_list(c, 1040, &list, &cnt), ERR_OK);
    assert_string_equal(node_find(list, cnt, NODE2)->state, "stopped");
    store_node_list_free(list, cnt);
    store_close(b);
    store_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credential_refusals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_online_offline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_all_offline_and_list, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_agent_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_delete_takes_tunnels, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tunnels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tunnel_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nodes, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
