/*
 * Unit tests for src/auth/nthash.c: MD4 against RFC 1320's test suite,
 * NTOWFv1 and NTOWFv2 against MS-NLMP §4.2.4's example (user "User",
 * domain "Domain", password "Password") and a hash FreeRDP's winpr-hash
 * printed, NTLMv2's proof against §4.2.4.2.2, and the UTF-8 to UTF-16LE
 * conversion's refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth/nthash.h"
#include "common/err.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", b[i]);
    }
}

static void test_md4_rfc1320(void **state)
{
    static const struct {
        const char *in, *md;
    } v[] = {
        {"", "31d6cfe0d16ae931b73c59d7e0c089c0"},
        {"a", "bde52cb31de33e46245e05fbdbd6fb24"},
        {"abc", "a448017aaf21d8525fc10ae87aa6729d"},
        {"message digest", "d9130a8164549fe818874806e1c7014b"},
        {"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "043f8582f241db351ce627e153e7f0e4"},
        {"1234567890123456789012345678901234567890123456789012345678901234"
         "5678901234567890",
         "e33b4ddc9c38f2199c3e7b164fcc0536"},
    };
    uint8_t md[NTHASH_LEN];
    char h[2 * NTHASH_LEN + 1];

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        nthash_md4((const uint8_t *)v[i].in, strlen(v[i].in), md);
        hex(md, sizeof(md), h);
        assert_string_equal(h, v[i].md);
    }
}

static void test_ntowf(void **state)
{
    uint8_t nt[NTHASH_LEN], v2[NTHASH_LEN];
    char h[2 * NTHASH_LEN + 1];

    (void)state;
    assert_int_equal(nthash_v1("Password", nt), ERR_OK);
    hex(nt, sizeof(nt), h);
    assert_string_equal(h, "a4f49c406510bdcab6824ee7c30fd852");
    assert_int_equal(nthash_v2(nt, "User", "Domain", v2), ERR_OK);
    hex(v2, sizeof(v2), h);
    assert_string_equal(h, "0c868a403bfd7a93a3001ef22ef02e3f");
    /* the user name is upper-cased, the domain is not */
    assert_int_equal(nthash_v2(nt, "user", "Domain", v2), ERR_OK);
    hex(v2, sizeof(v2), h);
    assert_string_equal(h, "0c868a403bfd7a93a3001ef22ef02e3f");
    assert_int_equal(nthash_v2(nt, "User", "DOMAIN", v2), ERR_OK);
    hex(v2, sizeof(v2), h);
    assert_string_not_equal(h, "0c868a403bfd7a93a3001ef22ef02e3f");
    /* what `winpr-hash -u tuser -p Target-pw1` prints */
    assert_int_equal(nthash_v1("Target-pw1", nt), ERR_OK);
    hex(nt, sizeof(nt), h);
    assert_string_equal(h, "a0514b0aa5ca02ae9e5b596a82047ec0");
    /* non-ASCII passwords: UTF-16LE of U+00E9 and U+1F600 */
    assert_int_equal(nthash_v1("caf\xc3\xa9\xf0\x9f\x98\x80", nt), ERR_OK);
}

/* MS-NLMP §4.2.4.2.2: the NTLMv2 response of the example (server
 * challenge 0123456789abcdef, client challenge aa..., time 0, the
 * server's AV pairs NbDomainName "Domain" and NbComputerName "Server")
 * has NTProofStr 68cd0ab851e51c96aabc927bebef6a1c. The proof holds for
 * that key and challenge only, and for no blob but the one it signed. */
static void test_ntlmv2_proof(void **state)
{
    static const uint8_t challenge[8] = {0x01, 0x23, 0x45, 0x67,
                                         0x89, 0xab, 0xcd, 0xef};
    static const uint8_t proof[16] = {0x68, 0xcd, 0x0a, 0xb8, 0x51, 0xe5,
                                      0x1c, 0x96, 0xaa, 0xbc, 0x92, 0x7b,
                                      0xeb, 0xef, 0x6a, 0x1c};
    static const uint8_t avpairs[] = {
        0x02, 0x00, 0x0c, 0x00, 'D',  0,    'o',  0,    'm',  0,    'a',  0,
        'i',  0,    'n',  0,    0x01, 0x00, 0x0c, 0x00, 'S',  0,    'e',  0,
        'r',  0,    'v',  0,    'e',  0,    'r',  0,    0x00, 0x00, 0x00, 0x00};
    uint8_t nt[NTHASH_LEN], v2[NTHASH_LEN], resp[128], other[8];
    size_t n = 0;

    (void)state;
    memset(resp, 0, sizeof(resp));
    memcpy(resp, proof, 16);
    n = 16;
    resp[n++] = 1; /* RespType */
    resp[n++] = 1; /* HiRespType */
    n += 6 + 8;    /* reserved, time stamp 0 */
    memset(resp + n, 0xaa, 8);
    n += 8 + 4; /* client challenge, reserved */
    memcpy(resp + n, avpairs, sizeof(avpairs));
    n += sizeof(avpairs) + 4;
    assert_int_equal(nthash_v1("Password", nt), ERR_OK);
    assert_int_equal(nthash_v2(nt, "User", "Domain", v2), ERR_OK);
    assert_true(nthash_v2_proof_ok(v2, challenge, resp, n));
    /* another server challenge, another key, a changed blob or proof */
    memcpy(other, challenge, sizeof(other));
    other[7] ^= 1;
    assert_false(nthash_v2_proof_ok(v2, other, resp, n));
    assert_int_equal(nthash_v2(nt, "User", "DOMAIN", v2), ERR_OK);
    assert_false(nthash_v2_proof_ok(v2, challenge, resp, n));
    assert_int_equal(nthash_v2(nt, "User", "Domain", v2), ERR_OK);
    resp[30] ^= 1;
    assert_false(nthash_v2_proof_ok(v2, challenge, resp, n));
    resp[30] ^= 1;
    resp[0] ^= 1;
    assert_false(nthash_v2_proof_ok(v2, challenge, resp, n));
    resp[0] ^= 1;
    /* too short to be NTLMv2 (an NTLMv1 response is 24 bytes), too long */
    assert_false(nthash_v2_proof_ok(v2, challenge, resp, 24));
    assert_false(nthash_v2_proof_ok(v2, challenge, resp, 16 + 27));
    assert_false(
        nthash_v2_proof_ok(v2, challenge, resp, NTHASH_RESPONSE_MAX + 1));
    assert_true(nthash_v2_proof_ok(v2, challenge, resp, n));
}

/* NTOWFv2's upper case as Windows makes it (every BMP letter with an upper
 * case) and as WinPR makes it (ASCII only): the same for ASCII names. */
static void test_ntowf_unicode_upper(void **state)
{
    uint8_t nt[NTHASH_LEN], a[NTHASH_LEN], b[NTHASH_LEN], out[64];
    size_t n = 0;

    (void)state;
    /* e-acute, y-diaeresis (to U+0178), sharp s (none), final sigma, an
     * emoji (beyond the BMP: as is) */
    assert_int_equal(nthash_utf16le("\xc3\xa9\xc3\xbf\xc3\x9f\xcf\x82\xf0\x9f"
                                    "\x98\x80z",
                                    13, NTHASH_UPPER_UNICODE, out, sizeof(out),
                                    &n),
                     ERR_OK);
    assert_int_equal(n, 14);
    assert_memory_equal(out,
                        "\xc9\x00\x78\x01\xdf\x00\xa3\x03\x3d\xd8\x00\xde"
                        "Z\x00",
                        14);
    assert_int_equal(nthash_v1("Password", nt), ERR_OK);
    assert_int_equal(nthash_v2_upper(nt, "\xc3\xa9mile#b\xc3\xbcro", "Dom",
                                     NTHASH_UPPER_UNICODE, a),
                     ERR_OK);
    assert_int_equal(nthash_v2(nt, "\xc3\x89MILE#B\xc3\x9cRO", "Dom", b),
                     ERR_OK);
    assert_memory_equal(a, b, NTHASH_LEN);
    assert_int_equal(nthash_v2(nt, "\xc3\xa9mile#b\xc3\xbcro", "Dom", b),
                     ERR_OK);
    assert_memory_not_equal(a, b, NTHASH_LEN);
    assert_int_equal(
        nthash_v2_upper(nt, "User", "Domain", NTHASH_UPPER_UNICODE, a), ERR_OK);
    assert_int_equal(nthash_v2(nt, "User", "Domain", b), ERR_OK);
    assert_memory_equal(a, b, NTHASH_LEN);
}

/* An AUTHENTICATE message of n bytes at m whose NtChallengeResponseFields
 * say len bytes at off. */
static void auth_msg(uint8_t *m, size_t n, unsigned len, unsigned off)
{
    memset(m, 0, n);
    memcpy(m, "NTLMSSP\0\3\0\0\0", 12);
    m[20] = (uint8_t)len;
    m[21] = (uint8_t)(len >> 8);
    m[24] = (uint8_t)off;
    m[25] = (uint8_t)(off >> 8);
    m[26] = (uint8_t)(off >> 16);
    m[27] = (uint8_t)(off >> 24);
}

/* The NT response is found in the last AUTHENTICATE message of the three,
 * and never outside the buffer. */
static void test_ntlm_response_found(void **state)
{
    uint8_t msgs[200];
    const uint8_t *resp = NULL;
    size_t len = 0;

    (void)state;
    memset(msgs, 0, sizeof(msgs));
    memcpy(msgs, "NTLMSSP\0\1\0\0\0", 12);      /* NEGOTIATE */
    memcpy(msgs + 40, "NTLMSSP\0\2\0\0\0", 12); /* CHALLENGE */
    auth_msg(msgs + 100, 100, 60, 40);          /* AUTHENTICATE */
    memset(msgs + 140, 0x77, 60);
    assert_true(nthash_ntlm_response(msgs, sizeof(msgs), &resp, &len));
    assert_ptr_equal(resp, msgs + 140);
    assert_int_equal(len, 60);
    /* a type-3 look-alike earlier (in a name) does not count */
    auth_msg(msgs + 60, 28, 5, 0);
    assert_true(nthash_ntlm_response(msgs, sizeof(msgs), &resp, &len));
    assert_ptr_equal(resp, msgs + 140);
    /* a response reaching past the end, an offset past it, a cut header */
    auth_msg(msgs + 100, 28, 61, 40);
    assert_false(nthash_ntlm_response(msgs, sizeof(msgs), &resp, &len));
    auth_msg(msgs + 100, 28, 0, 101);
    assert_false(nthash_ntlm_response(msgs, sizeof(msgs), &resp, &len));
    auth_msg(msgs + 100, 28, 0, 0xffffffffu);
    assert_false(nthash_ntlm_response(msgs, sizeof(msgs), &resp, &len));
    auth_msg(msgs + 100, 28, 0, 100);
    assert_true(nthash_ntlm_response(msgs, sizeof(msgs), &resp, &len));
    assert_int_equal(len, 0);
    assert_false(nthash_ntlm_response(msgs, 100 + 27, &resp, &len));
    assert_false(nthash_ntlm_response(msgs, 40, &resp, &len));
    assert_false(nthash_ntlm_response(NULL, 0, &resp, &len));
}

static void test_utf16le(void **state)
{
    uint8_t out[16];
    size_t n = 0;

    (void)state;
    assert_int_equal(nthash_utf16le("aZ", 2, 1, out, sizeof(out), &n), ERR_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "A\0Z\0", 4);
    assert_int_equal(
        nthash_utf16le("\xf0\x9f\x98\x80", 4, 0, out, sizeof(out), &n), ERR_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "\x3d\xd8\x00\xde", 4);
    /* refusals: overlong, surrogate, truncated, stray continuation, too
     * long for the output */
    assert_int_equal(nthash_utf16le("\xc0\xaf", 2, 0, out, sizeof(out), &n),
                     ERR_INVALID);
    assert_int_equal(nthash_utf16le("\xed\xa0\x80", 3, 0, out, sizeof(out), &n),
                     ERR_INVALID);
    assert_int_equal(nthash_utf16le("\xe2\x82", 2, 0, out, sizeof(out), &n),
                     ERR_INVALID);
    assert_int_equal(nthash_utf16le("\x80", 1, 0, out, sizeof(out), &n),
                     ERR_INVALID);
    assert_int_equal(nthash_utf16le("123456789", 9, 0, out, sizeof(out), &n),
                     ERR_TOO_LONG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_md4_rfc1320),
        cmocka_unit_test(test_ntowf),
        cmocka_unit_test(test_ntlmv2_proof),
        cmocka_unit_test(test_ntlm_response_found),
        cmocka_unit_test(test_ntowf_unicode_upper),
        cmocka_unit_test(test_utf16le),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
