/*
 * Unit tests for the monitor's MP_RDP_NTLM (sshproxy/monitor.c, docs/rdp.md,
 * docs/security.md "The RDP proxy"): the NTOWFv2 key it hands a
 * pre-authentication RDP child can be attacked offline, so it is handed
 * out only against an NTLMv2 response that proves it: a child whose
 * client does not know the password never holds it, and a response that
 * proves nothing is a wrong password, counted at once (a compromised
 * child may never report); a locked user gets no key; a failed NLA
 * (reported as an empty password) is counted once, not twice.
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
#include <openssl/hmac.h>
#include <sodium.h>

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

/* What a client that knows password pw answers to a random server
 * challenge (MS-NLMP §3.3.2, NTLMv2), after alice_req's login and an empty
 * domain, into b; *v2 is the key it used. */
static void ntlm_req_upper(struct buf *b, const char *login, const char *pw,
                           int upper, uint8_t v2[NTHASH_LEN])
{
    uint8_t nt[NTHASH_LEN], sc[NTHASH_CHALLENGE_LEN], resp[16 + 40];
    uint8_t in[sizeof(sc) + sizeof(resp) - 16];
    unsigned int maclen = 0;

    assert_int_equal(buf_put_cstring(b, login), ERR_OK);
    assert_int_equal(buf_put_cstring(b, ""), ERR_OK);
    assert_int_equal(nthash_v1(pw, nt), ERR_OK);
    assert_int_equal(nthash_v2_upper(nt, login, "", upper, v2), ERR_OK);
    randombytes_buf(sc, sizeof(sc));
    memset(resp, 0, sizeof(resp));
    resp[16] = resp[17] = 1;        /* RespType, HiRespType */
    randombytes_buf(resp + 24, 16); /* time stamp, client challenge */
    memcpy(in, sc, sizeof(sc));     /* then AV pairs: just the end */
    memcpy(in + sizeof(sc), resp + 16, sizeof(resp) - 16);
    assert_non_null(
        HMAC(EVP_md5(), v2, NTHASH_LEN, in, sizeof(in), resp, &maclen));
    assert_int_equal(buf_put_string(b, sc, sizeof(sc)), ERR_OK);
    assert_int_equal(buf_put_string(b, resp, sizeof(resp)), ERR_OK);
}

static void ntlm_req_as(struct buf *b, const char *login, const char *pw,
                        uint8_t v2[NTHASH_LEN])
{
    ntlm_req_upper(b, login, pw, NTHASH_UPPER_ASCII, v2);
}

static void ntlm_req(struct buf *b, const char *pw, uint8_t v2[NTHASH_LEN])
{
    ntlm_req_as(b, "alice#srv", pw, v2);
}

/* Sends the MP_RDP_NTLM request in b and reads the reply into b: its ok
 * byte (the rest stays in b). */
static uint8_t ntlm_send(struct t *t, struct mchild *c, int peer, struct buf *b)
{
    uint8_t got = 0, ok = 0;

    assert_int_equal(monitor_request(&t->m, c, MP_RDP_NTLM, b), ERR_OK);
    buf_reset(b);
    assert_int_equal(mproto_recv(peer, &got, b, NULL), ERR_OK);
    assert_int_equal(got, MP_RDP_NTLM_REPLY);
    assert_int_equal(buf_get_u8(b, &ok), ERR_OK);
    return ok;
}

/* MP_RDP_NTLM for alice from a client that knows pw: true if a key came
 * back (and then it is the key the client used). */
static bool ntlm_pw(struct t *t, struct mchild *c, int peer, const char *pw,
                    char *why, size_t whylen)
{
    struct buf *b = buf_new(MPROTO_MAX);
    uint8_t ok = 0, v2[NTHASH_LEN];
    const uint8_t *key = NULL;
    size_t keylen = 0;

    assert_non_null(b);
    ntlm_req(b, pw, v2);
    ok = ntlm_send(t, c, peer, b);
    assert_int_equal(buf_get_cstring_into(b, why, whylen), ERR_OK);
    assert_int_equal(buf_get_string_ptr(b, NTHASH_LEN, &key, &keylen), ERR_OK);
    if (ok) {
        assert_int_equal(keylen, NTHASH_LEN);
        assert_memory_equal(key, v2, NTHASH_LEN);
    } else {
        assert_int_equal(keylen, 0);
    }
    buf_free(b);
    return ok == 1;
}

/* MP_RDP_NTLM for alice from a client that knows her password. */
static bool ntlm(struct t *t, struct mchild *c, int peer, char *why,
                 size_t whylen)
{
    return ntlm_pw(t, c, peer, PASSWORD, why, whylen);
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

/* A key costs nothing to a child whose client proved the password: four
 * children that log in and four that take the key and never report leave
 * alice unlocked (3 allowed), and her next login works. */
static void test_proved_keys_count_nothing(void **state)
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
    for (int i = 0; i < 4; i++) {
        c = child(t, &peer);
        assert_true(ntlm(t, c, peer, why, sizeof(why)));
        gone(t, c, peer); /* took the key, said nothing */
    }
    c = child(t, &peer);
    assert_true(ntlm(t, c, peer, why, sizeof(why)));
    assert_int_equal(login(t, c, peer, PASSWORD), MP_AUTH_OK);
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

/* A child whose client does not know the password gets no key, whatever
 * it sends: a response made with another password, or a forged one; each
 * is a wrong password counted at once (so children that never report
 * still lock alice), and the child's report of its failed NLA is not a
 * second. With 3 allowed: two wrong answers then the right one gets the
 * key; after three wrong, alice is locked. */
static void test_ntlm_key_needs_the_password(void **state)
{
    struct t *t = *state;
    struct buf *b = buf_new(MPROTO_MAX);
    struct mchild *c;
    uint8_t v2[NTHASH_LEN], ok = 1;
    char why[256];
    int peer;

    assert_non_null(b);
    c = child(t, &peer);
    assert_false(ntlm_pw(t, c, peer, "Not-Her-Pass", why, sizeof(why)));
    assert_string_equal(why, "authentication failed");
    assert_int_equal(login(t, c, peer, ""), MP_AUTH_FAIL);
    gone(t, c, peer);
    /* a response of the right shape whose proof is noise */
    c = child(t, &peer);
    ntlm_req(b, PASSWORD, v2);
    b->data[b->len - 40 - 16] ^= 0x5a; /* the proof's first byte */
    ok = ntlm_send(t, c, peer, b);
    assert_int_equal(ok, 0);
    gone(t, c, peer); /* never reports */
    c = child(t, &peer);
    assert_true(ntlm(t, c, peer, why, sizeof(why)));
    assert_int_equal(login(t, c, peer, PASSWORD), MP_AUTH_OK);
    gone(t, c, peer);
    for (int i = 0; i < 3; i++) {
        c = child(t, &peer);
        assert_false(ntlm_pw(t, c, peer, "Not-Her-Pass", why, sizeof(why)));
        gone(t, c, peer);
    }
    c = child(t, &peer);
    assert_false(ntlm(t, c, peer, why, sizeof(why)));
    assert_non_null(strstr(why, "locked out"));
    gone(t, c, peer);
    /* the question without the challenge and response: a child that
     * does not follow the protocol is ended */
    c = child(t, &peer);
    buf_reset(b);
    alice_req(b, "");
    assert_int_equal(monitor_request(&t->m, c, MP_RDP_NTLM, b), ERR_PROTO);
    assert_int_equal(c->state, MC_DEAD);
    gone(t, c, peer);
    buf_free(b);
}

/* Names that are no user are wrong passwords, as over SSH: with 3 allowed,
 * three children asking for made-up users' keys lock their address, and
 * alice's right answer from it then gets no key. */
static void test_unknown_names_count(void **state)
{
    struct t *t = *state;
    struct buf *b = buf_new(MPROTO_MAX);
    struct mchild *c;
    uint8_t v2[NTHASH_LEN], ok = 1;
    char login[32], why[256];
    int peer;

    assert_non_null(b);
    for (int i = 0; i < 3; i++) {
        c = child(t, &peer);
        snprintf(login, sizeof(login), "nobody%d#srv", i);
        buf_reset(b);
        ntlm_req_as(b, login, PASSWORD, v2);
        ok = ntlm_send(t, c, peer, b);
        assert_int_equal(ok, 0);
        gone(t, c, peer);
    }
    c = child(t, &peer);
    assert_false(ntlm(t, c, peer, why, sizeof(why)));
    assert_non_null(strstr(why, "locked out"));
    gone(t, c, peer);
    buf_free(b);
}

/* A login with letters beyond ASCII (here the asset's name): a client
 * that upper-cases them as Windows does (mstsc) and one that does not
 * (xfreerdp) both get the key their response proves. */
static void test_unicode_login_either_upper_case(void **state)
{
    struct t *t = *state;
    struct buf *b = buf_new(MPROTO_MAX);
    struct mchild *c;
    uint8_t v2[NTHASH_LEN], ok = 0;
    const uint8_t *key = NULL;
    size_t keylen = 0;
    char why[256];
    int peer;
    const int uppers[] = {NTHASH_UPPER_ASCII, NTHASH_UPPER_UNICODE};

    assert_non_null(b);
    for (size_t i = 0; i < 2; i++) {
        c = child(t, &peer);
        buf_reset(b);
        ntlm_req_upper(b, "alice#b\xc3\xbcro", PASSWORD, uppers[i], v2);
        ok = ntlm_send(t, c, peer, b);
        assert_int_equal(ok, 1);
        assert_int_equal(buf_get_cstring_into(b, why, sizeof(why)), ERR_OK);
        assert_int_equal(buf_get_string_ptr(b, NTHASH_LEN, &key, &keylen),
                         ERR_OK);
        assert_int_equal(keylen, NTHASH_LEN);
        assert_memory_equal(key, v2, NTHASH_LEN);
        assert_int_equal(login(t, c, peer, PASSWORD), MP_AUTH_OK);
        gone(t, c, peer);
    }
    buf_free(b);
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
        cmocka_unit_test_setup_teardown(test_proved_keys_count_nothing, setup3,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_nla_counts_once, setup4,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ssh_child_gets_no_ntlm_key, setup4,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ntlm_key_needs_the_password,
                                        setup3, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_names_count, setup3,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unicode_login_either_upper_case,
                                        setup3, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
