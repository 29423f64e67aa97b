/*
 * Unit tests for the monitor's MP_RDP_NTLM (sshproxy/monitor.c, docs/rdp.md,
 * docs/security.md "The RDP proxy"): the NTOWFv2 key it hands a
 * pre-authentication RDP child can be attacked offline, so each key handed
 * out counts as a failed password for that user and address until the
 * same child's password check succeeds; a locked user gets no key; a
 * failed NLA (reported as an empty password) is counted once, not twice.
 *
 * A real monitor (store, vault and lockout in a temporary directory, no
 * loop: password checks run in line) and children that are socketpairs.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/nthash.h"
#include "auth/password.h"
#include "common/config.h"
#include "common/err.h"
#include "common/vault.h"
#include "sshproxy/monitor.h"
#include "sshproxy/mproto.h"
#include "store/store.h"

#include "monitor_fx.h"

#define PASSWORD "Alice-Pass-42"

struct t {
    char dir[64];
    struct config cfg;
    struct monitor m;
    pid_t next_pid;
};

static int setup_n(void **state, int max_failures)
{
    struct t *t = calloc(1, sizeof(*t));
    char hash[256], ad[VAULT_AD_MAX];
    uint8_t nt[NTHASH_LEN], *sealed = NULL;
    size_t sealed_len = 0;
    struct store_user u;

    assert_non_null(t);
    snprintf(t->dir, sizeof(t->dir), "/tmp/pc-rdpntlm-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    mfx_config(&t->cfg, t->dir);
    t->cfg.max_failures = max_failures;
    t->cfg.failure_window_seconds = 300;
    t->cfg.lockout_seconds = 300;
    assert_int_equal(monitor_init(&t->m, &t->cfg, NULL), ERR_OK);
    assert_int_equal(password_hash(PASSWORD, hash, sizeof(hash)), ERR_OK);
    assert_int_equal(store_user_add(t->m.store, "alice", hash, false, &u),
                     ERR_OK);
    assert_int_equal(nthash_v1(PASSWORD, nt), ERR_OK);
    vault_ad(ad, VAULT_AD_USER_NTHASH, u.id);
    assert_int_equal(
        vault_seal(t->m.vault, ad, nt, sizeof(nt), &sealed, &sealed_len),
        ERR_OK);
    assert_int_equal(store_user_nt_set(t->m.store, u.id, sealed, sealed_len),
                     ERR_OK);
    free(sealed);
    t->next_pid = 900000;
    *state = t;
    return 0;
}

static int setup3(void **state)
{
    return setup_n(state, 3);
}

static int setup4(void **state)
{
    return setup_n(state, 4);
}

static int teardown(void **state)
{
    struct t *t = *state;
    char cmd[128];

    monitor_free(&t->m);
    config_free(&t->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
    free(t);
    return 0;
}

/* A new RDP child from 192.0.2.7; *peer is the child's end. */
static struct mchild *child(struct t *t, int *peer)
{
    struct mchild *c = mfx_child(&t->m, &t->next_pid, peer);

    c->rdp = true;
    return c;
}

/* A request of alice for asset srv with password pw, into b. */
static void alice_req(struct buf *b, const char *pw)
{
    assert_int_equal(buf_put_cstring(b, "alice#srv"), ERR_OK);
    assert_int_equal(buf_put_cstring(b, pw), ERR_OK);
}

/* Asks type (alice_req with pw) and reads the reply, of type want: its
 * first byte; the rest stays in b, reset before the request. */
static uint8_t ask(struct t *t, struct mchild *c, int peer, struct buf *b,
                   uint8_t type, const char *pw, uint8_t want)
{
    uint8_t got = 0, first = 0;

    buf_reset(b);
    alice_req(b, pw);
    assert_int_equal(monitor_request(&t->m, c, type, b), ERR_OK);
    buf_reset(b);
    assert_int_equal(mproto_recv(peer, &got, b, NULL), ERR_OK);
    assert_int_equal(got, want);
    assert_int_equal(buf_get_u8(b, &first), ERR_OK);
    return first;
}

/* MP_RDP_NTLM for alice: true if a key came back. */
static bool ntlm(struct t *t, struct mchild *c, int peer, char *why,
                 size_t whylen)
{
    struct buf *b = buf_new(MPROTO_MAX);
    uint8_t ok;

    assert_non_null(b);
    ok = ask(t, c, peer, b, MP_RDP_NTLM, "", MP_RDP_NTLM_REPLY);
    assert_int_equal(buf_get_cstring_into(b, why, whylen), ERR_OK);
    buf_free(b);
    return ok == 1;
}

/* MP_AUTH_PASSWORD for alice: the verdict. */
static int login(struct t *t, struct mchild *c, int peer, const char *pw)
{
    struct buf *b = buf_new(MPROTO_MAX);
    uint8_t verdict;

    assert_non_null(b);
    verdict = ask(t, c, peer, b, MP_AUTH_PASSWORD, pw, MP_AUTH_REPLY);
    buf_free(b);
    return verdict;
}

static void gone(struct t *t, struct mchild *c, int peer)
{
    monitor_child_exit(&t->m, c->pid, 0);
    close(peer);
}

/* Children that take alice's key and never report lock alice (and their
 * address) after max_failures keys; then no key and no login. Logins
 * that succeed before do not count. */
static void test_ntlm_keys_count_until_login(void **state)
{
    struct t *t = *state;
    struct mchild *c;
    char why[256];
    int peer;

    for (int i = 0; i < 4; i++) {
        c = child(t, &peer);
        assert_true(ntlm(t, c, peer, why, sizeof(why)));
        assert_int_equal(login(t, c, peer, PASSWORD), MP_AUTH_OK);
        gone(t, c, peer);
    }
    for (int i = 0; i < 3; i++) {
        c = child(t, &peer);
        assert_true(ntlm(t, c, peer, why, sizeof(why)));
        gone(t, c, peer); /* took the key, said nothing */
    }
    c = child(t, &peer);
    assert_false(ntlm(t, c, peer, why, sizeof(why)));
    assert_non_null(strstr(why, "locked out"));
    gone(t, c, peer);
    c = child(t, &peer);
    assert_int_equal(login(t, c, peer, PASSWORD), MP_AUTH_FAIL);
    gone(t, c, peer);
}

/* A failed NLA (the child reports an empty password after the key) is one
 * failure, not two: with 4 allowed, two failed NLAs leave the third
 * attempt's right password accepted. */
static void test_failed_nla_counts_once(void **state)
{
    struct t *t = *state;
    struct mchild *c;
    char why[256];
    int peer;

    for (int i = 0; i < 2; i++) {
        c = child(t, &peer);
        assert_true(ntlm(t, c, peer, why, sizeof(why)));
        assert_int_equal(login(t, c, peer, ""), MP_AUTH_FAIL);
        gone(t, c, peer);
    }
    c = child(t, &peer);
    assert_true(ntlm(t, c, peer, why, sizeof(why)));
    assert_int_equal(login(t, c, peer, PASSWORD), MP_AUTH_OK);
    gone(t, c, peer);
}

/* An SSH child asking for an NTLM key is compromised: ended (MC_DEAD),
 * with no reply and no key; the same request from an RDP child is
 * answered. */
static void test_ssh_child_gets_no_ntlm_key(void **state)
{
    struct t *t = *state;
    struct buf *b = buf_new(MPROTO_MAX);
    struct mchild *c;
    char why[256];
    uint8_t type = 0;
    int peer;

    assert_non_null(b);
    c = child(t, &peer);
    c->rdp = false;
    alice_req(b, "");
    assert_int_equal(monitor_request(&t->m, c, MP_RDP_NTLM, b), ERR_PROTO);
    assert_int_equal(c->state, MC_DEAD);
    assert_int_equal(fcntl(peer, F_SETFL, O_NONBLOCK), 0);
    /* nothing to read: no reply (EAGAIN), or the end (EOF) */
    assert_int_not_equal(mproto_recv(peer, &type, b, NULL), ERR_OK);
    buf_free(b);
    gone(t, c, peer);
    c = child(t, &peer);
    assert_true(ntlm(t, c, peer, why, sizeof(why)));
    gone(t, c, peer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ntlm_keys_count_until_login,
                                        setup3, teardown),
        cmocka_unit_test_setup_teardown(test_failed_nla_counts_once, setup4,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ssh_child_gets_no_ntlm_key, setup4,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
