/*
 * Unit tests for the login-grammar parser (src/login/login.c, SPEC §3).
 *
 * Every example login from SPEC §3 and from the 12Port native-client
 * document is parsed and every field of the result is checked; then a
 * table of malformed logins checks the return code, that the struct was
 * zeroed and that the reason given to the user names the problem without
 * quoting the TOTP digits.
 *
 * Each input is copied into a heap block of exactly its length, with no
 * NUL after it, so an ASan build of this test catches any read past the
 * length the parser was given.
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
#include "login/login.h"

#define UUID "efaecd97-f9d4-4ac4-b35b-b2d71491354d"
#define RDP_UUID "28b15a95-cb64-4025-99b6-5fbc2ad99957"

/* What a successful parse must produce; NULL fields mean "". */
struct want {
    const char *username;
    const char *domain;
    const char *principal;
    const char *site;
    const char *totp;
    const char *asset;
    bool asset_is_id;
};

/* Parses the first len bytes of s from an exact-size heap copy. */
static int parse_exact(const char *s, size_t len, struct login *out,
                       const char **why)
{
    char *copy = malloc(len > 0 ? len : 1);
    int r;

    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, s, len);
    }
    r = login_parse(copy, len, out, why);
    free(copy);
    return r;
}

static void check_field(const char *input, const char *name, const char *got,
                        const char *want)
{
    if (want == NULL) {
        want = "";
    }
    if (strcmp(got, want) != 0) {
        fail_msg("login \"%s\": %s is \"%s\", want \"%s\"", input, name, got,
                 want);
    }
}

static void expect_ok(const char *s, const struct want *w)
{
    struct login l;
    const char *why = "unchanged";
    int r;

    memset(&l, 0xa5, sizeof(l));
    r = parse_exact(s, strlen(s), &l, &why);
    if (r != ERR_OK) {
        fail_msg("login \"%s\": rc %d (%s), want ERR_OK", s, r,
                 why != NULL ? why : "(null)");
    }
    assert_null(why);
    check_field(s, "username", l.username, w->username);
    check_field(s, "domain", l.domain, w->domain);
    check_field(s, "principal", l.principal, w->principal);
    check_field(s, "site", l.site, w->site);
    check_field(s, "totp", l.totp, w->totp);
    check_field(s, "asset", l.asset, w->asset);
    if (l.asset_is_id != w->asset_is_id) {
        fail_msg("login \"%s\": asset_is_id %d, want %d", s, l.asset_is_id,
                 w->asset_is_id);
    }
}

static bool all_zero(const struct login *l)
{
    const unsigned char *p = (const unsigned char *)l;
    size_t i;

    for (i = 0; i < sizeof(*l); i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Makes a printable copy of s for failure messages. */
static const char *show(const char *s, size_t len)
{
    static char buf[4 * LOGIN_MAX + 64];
    size_t o = 0;
    size_t i;

    for (i = 0; i < len && o + 8 < sizeof(buf); i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (len > 80) {
        snprintf(buf, sizeof(buf), "(%zu bytes starting \"%.20s\")", len, s);
        return buf;
    }
    buf[o] = '\0';
    return buf;
}

/* true if s holds two digits in a row. */
static bool has_digit_run(const char *s)
{
    size_t i;

    for (i = 0; s[i] != '\0' && s[i + 1] != '\0'; i++) {
        if (s[i] >= '0' && s[i] <= '9' && s[i + 1] >= '0' && s[i + 1] <= '9') {
            return true;
        }
    }
    return false;
}

/* Expects failure with rc, a zeroed struct and a reason containing want. */
static void expect_fail_len(const char *s, size_t len, int rc,
                            const char *want_why)
{
    struct login l;
    const char *why = NULL;
    int r;

    memset(&l, 0xa5, sizeof(l));
    r = parse_exact(s, len, &l, &why);
    if (r != rc) {
        fail_msg("login \"%s\": rc %d (%s), want %d", show(s, len), r,
                 why != NULL ? why : "(null)", rc);
    }
    if (!all_zero(&l)) {
        fail_msg("login \"%s\": struct not zeroed on failure", show(s, len));
    }
    if (why == NULL) {
        fail_msg("login \"%s\": no reason given", show(s, len));
    }
    if (strchr(why, '\n') != NULL || strlen(why) == 0) {
        fail_msg("login \"%s\": reason \"%s\" is not one line", show(s, len),
                 why);
    }
    if (want_why != NULL && strstr(why, want_why) == NULL) {
        fail_msg("login \"%s\": reason \"%s\", want one containing \"%s\"",
                 show(s, len), why, want_why);
    }
    /* No reason may quote the input, least of all the TOTP digits: the
     * only digit any reason holds is the "6" of "6 digits". */
    if (has_digit_run(why)) {
        fail_msg("login \"%s\": reason \"%s\" quotes digits", show(s, len),
                 why);
    }
}

static void expect_fail(const char *s, int rc, const char *want_why)
{
    expect_fail_len(s, strlen(s), rc, want_why);
}

/* A string of n copies of c, in a static buffer. */
static const char *rep(char c, size_t n)
{
    static char buf[4][LOGIN_MAX + 2];
    static int which;
    char *b = buf[which++ % 4];

    assert_true(n <= LOGIN_MAX + 1);
    memset(b, c, n);
    b[n] = '\0';
    return b;
}

/* ---- the documented examples ---- */

static void test_spec_examples(void **state)
{
    (void)state;
    expect_ok("bwilliams#" UUID, &(struct want){.username = "bwilliams",
                                                .principal = "bwilliams",
                                                .asset = UUID,
                                                .asset_is_id = true});
    expect_ok("bwilliams#Prod DB 08", &(struct want){.username = "bwilliams",
                                                     .principal = "bwilliams",
                                                     .asset = "Prod DB 08",
                                                     .asset_is_id = false});
    expect_ok("bwilliams?823072#" UUID, &(struct want){.username = "bwilliams",
                                                       .principal = "bwilliams",
                                                       .totp = "823072",
                                                       .asset = UUID,
                                                       .asset_is_id = true});
    expect_ok("bwilliams@contoso.com?782361#" UUID,
              &(struct want){.username = "bwilliams",
                             .domain = "contoso.com",
                             .principal = "bwilliams@contoso.com",
                             .totp = "782361",
                             .asset = UUID,
                             .asset_is_id = true});
    expect_ok("bwilliams/DevOps?782361#" UUID,
              &(struct want){.username = "bwilliams",
                             .principal = "bwilliams",
                             .site = "DevOps",
                             .totp = "782361",
                             .asset = UUID,
                             .asset_is_id = true});
    expect_ok("bwilliams@contoso.com/DevOps?782361#" UUID,
              &(struct want){.username = "bwilliams",
                             .domain = "contoso.com",
                             .principal = "bwilliams@contoso.com",
                             .site = "DevOps",
                             .totp = "782361",
                             .asset = UUID,
                             .asset_is_id = true});
    /* SPEC §3: ssh 'bwilliams@contoso.com?782361#Prod DB 08@gw.example';
     * OpenSSH cuts at the last '@', so the proxy sees this login. */
    expect_ok("bwilliams@contoso.com?782361#Prod DB 08",
              &(struct want){.username = "bwilliams",
                             .domain = "contoso.com",
                             .principal = "bwilliams@contoso.com",
                             .totp = "782361",
                             .asset = "Prod DB 08",
                             .asset_is_id = false});
}

static void test_seed_examples(void **state)
{
    (void)state;
    /* username#assetName with a TOTP */
    expect_ok("bwilliams?782361#Prod DB 08",
              &(struct want){.username = "bwilliams",
                             .principal = "bwilliams",
                             .totp = "782361",
                             .asset = "Prod DB 08",
                             .asset_is_id = false});
    /* The RDP example values: local user, asset ID, TOTP. */
    expect_ok("qsadmin#" RDP_UUID, &(struct want){.username = "qsadmin",
                                                  .principal = "qsadmin",
                                                  .asset = RDP_UUID,
                                                  .asset_is_id = true});
    expect_ok("qsadmin?356194#" RDP_UUID, &(struct want){.username = "qsadmin",
                                                         .principal = "qsadmin",
                                                         .totp = "356194",
                                                         .asset = RDP_UUID,
                                                         .asset_is_id = true});
    /* Every part at once, with an asset name holding spaces. */
    expect_ok("alice@corp.com/DevOps?123456#Prod DB 08",
              &(struct want){.username = "alice",
                             .domain = "corp.com",
                             .principal = "alice@corp.com",
                             .site = "DevOps",
                             .totp = "123456",
                             .asset = "Prod DB 08",
                             .asset_is_id = false});
}

/* ---- other valid forms ---- */

static void test_site_paths(void **state)
{
    (void)state;
    expect_ok("bwilliams/DevOps/Linux#web-01",
              &(struct want){.username = "bwilliams",
                             .principal = "bwilliams",
                             .site = "DevOps/Linux",
                             .asset = "web-01"});
    expect_ok("bwilliams//root/DevOps#web-01",
              &(struct want){.username = "bwilliams",
                             .principal = "bwilliams",
                             .site = "/root/DevOps",
                             .asset = "web-01"});
    expect_ok("bwilliams@contoso.com/Dev Ops_2.x-y?000000#db",
              &(struct want){.username = "bwilliams",
                             .domain = "contoso.com",
                             .principal = "bwilliams@contoso.com",
                             .site = "Dev Ops_2.x-y",
                             .totp = "000000",
                             .asset = "db"});
}

static void test_asset_forms(void **state)
{
    (void)state;
    /* After '#', '/', '?' and '@' are part of the asset name. */
    expect_ok("bob#web/01?x@y z", &(struct want){.username = "bob",
                                                 .principal = "bob",
                                                 .asset = "web/01?x@y z"});
    /* Leading and trailing spaces are kept, not trimmed. */
    expect_ok(
        "bob# db ",
        &(struct want){.username = "bob", .principal = "bob", .asset = " db "});
    /* Upper-case UUIDs are IDs too. */
    expect_ok("bob#EFAECD97-F9D4-4AC4-B35B-B2D71491354D",
              &(struct want){.username = "bob",
                             .principal = "bob",
                             .asset = "EFAECD97-F9D4-4AC4-B35B-B2D71491354D",
                             .asset_is_id = true});
    /* Near misses are names. */
    expect_ok("bob#efaecd97-f9d4-4ac4-b35b-b2d71491354",
              &(struct want){.username = "bob",
                             .principal = "bob",
                             .asset = "efaecd97-f9d4-4ac4-b35b-b2d71491354",
                             .asset_is_id = false});
    expect_ok("bob#" UUID "0", &(struct want){.username = "bob",
                                              .principal = "bob",
                                              .asset = UUID "0",
                                              .asset_is_id = false});
    expect_ok("bob#efaecd97-f9d4-4ac4-b35b-b2d71491354g",
              &(struct want){.username = "bob",
                             .principal = "bob",
                             .asset = "efaecd97-f9d4-4ac4-b35b-b2d71491354g",
                             .asset_is_id = false});
    expect_ok("bob#efaecd97f-9d4-4ac4-b35b-b2d71491354d",
              &(struct want){.username = "bob",
                             .principal = "bob",
                             .asset = "efaecd97f-9d4-4ac4-b35b-b2d71491354d",
                             .asset_is_id = false});
    /* UTF-8 asset names are allowed. */
    expect_ok("bob#Serveur Montr\xc3\xa9"
              "al \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x96\xa5",
              &(struct want){.username = "bob",
                             .principal = "bob",
                             .asset = "Serveur Montr\xc3\xa9"
                                      "al \xe6\x9d\xb1\xe4\xba\xac "
                                      "\xf0\x9f\x96\xa5"});
}

static void test_user_forms(void **state)
{
    (void)state;
    expect_ok("a#x",
              &(struct want){.username = "a", .principal = "a", .asset = "x"});
    expect_ok("J.Doe_2-x@CORP#x", &(struct want){.username = "J.Doe_2-x",
                                                 .domain = "CORP",
                                                 .principal = "J.Doe_2-x@CORP",
                                                 .asset = "x"});
    expect_ok("u@a-b.c-d.example#x",
              &(struct want){.username = "u",
                             .domain = "a-b.c-d.example",
                             .principal = "u@a-b.c-d.example",
                             .asset = "x"});
}

/* Fields at exactly their maximum parse; one more byte is ERR_TOO_LONG. */
static void test_limits(void **state)
{
    char s[LOGIN_MAX + 64];
    char dom[LOGIN_DOMAIN_MAX + 2];
    char site[LOGIN_SITE_MAX + 2];
    struct login l;
    const char *why = NULL;
    size_t i;

    (void)state;
    snprintf(s, sizeof(s), "%s#x", rep('u', LOGIN_USER_MAX));
    expect_ok(s, &(struct want){.username = rep('u', LOGIN_USER_MAX),
                                .principal = rep('u', LOGIN_USER_MAX),
                                .asset = "x"});
    snprintf(s, sizeof(s), "%s#x", rep('u', LOGIN_USER_MAX + 1));
    expect_fail(s, ERR_TOO_LONG, "user name is too long");

    /* A domain of 253 bytes made of labels "aaa.": ends in a letter. */
    for (i = 0; i < LOGIN_DOMAIN_MAX; i++) {
        dom[i] = (i % 4 == 3) ? '.' : 'a';
    }
    dom[LOGIN_DOMAIN_MAX] = '\0';
    assert_int_not_equal(dom[LOGIN_DOMAIN_MAX - 1], '.');
    snprintf(s, sizeof(s), "bob@%s#x", dom);
    assert_int_equal(parse_exact(s, strlen(s), &l, &why), ERR_OK);
    assert_int_equal(strlen(l.domain), LOGIN_DOMAIN_MAX);
    assert_string_equal(l.domain, dom);
    assert_int_equal(strlen(l.principal), 4 + LOGIN_DOMAIN_MAX);
    dom[LOGIN_DOMAIN_MAX] = 'a';
    dom[LOGIN_DOMAIN_MAX + 1] = '\0';
    snprintf(s, sizeof(s), "bob@%s#x", dom);
    expect_fail(s, ERR_TOO_LONG, "domain is too long");

    /* The longest principal fills its buffer exactly. */
    dom[LOGIN_DOMAIN_MAX] = '\0';
    snprintf(s, sizeof(s), "%s@%s#x", rep('u', LOGIN_USER_MAX), dom);
    assert_int_equal(parse_exact(s, strlen(s), &l, &why), ERR_OK);
    assert_int_equal(strlen(l.principal), sizeof(l.principal) - 1);

    for (i = 0; i < LOGIN_SITE_MAX; i++) {
        site[i] = (i % 8 == 7) ? '/' : 's';
    }
    site[LOGIN_SITE_MAX - 1] = 's';
    site[LOGIN_SITE_MAX] = '\0';
    snprintf(s, sizeof(s), "bob/%s#x", site);
    expect_ok(s, &(struct want){.username = "bob",
                                .principal = "bob",
                                .site = site,
                                .asset = "x"});
    site[LOGIN_SITE_MAX] = 's';
    site[LOGIN_SITE_MAX + 1] = '\0';
    snprintf(s, sizeof(s), "bob/%s#x", site);
    expect_fail(s, ERR_TOO_LONG, "site name is too long");

    snprintf(s, sizeof(s), "bob#%s", rep('A', LOGIN_ASSET_MAX));
    expect_ok(s, &(struct want){.username = "bob",
                                .principal = "bob",
                                .asset = rep('A', LOGIN_ASSET_MAX)});
    snprintf(s, sizeof(s), "bob#%s", rep('A', LOGIN_ASSET_MAX + 1));
    expect_fail(s, ERR_TOO_LONG, "asset name or ID is too long");
    /* Multi-byte characters count as bytes. */
    snprintf(s, sizeof(s), "bob#%s\xc3\xa9", rep('A', LOGIN_ASSET_MAX - 1));
    expect_fail(s, ERR_TOO_LONG, "asset name or ID is too long");

    /* The whole login: LOGIN_MAX + 1 bytes is too long before anything
     * else is looked at, even though it is otherwise malformed too. */
    memset(s, '#', LOGIN_MAX + 1);
    expect_fail_len(s, LOGIN_MAX + 1, ERR_TOO_LONG, "login is too long");
    memset(s, 'a', LOGIN_MAX + 1);
    s[3] = '#';
    expect_fail_len(s, LOGIN_MAX + 1, ERR_TOO_LONG, "login is too long");
    /* LOGIN_MAX itself passes the whole-length check (and then fails on
     * the asset's own limit). */
    expect_fail_len(s, LOGIN_MAX, ERR_TOO_LONG, "asset name or ID is too long");
}

/* The parser reads only len bytes; the bytes after do not matter. */
static void test_not_nul_terminated(void **state)
{
    const char *s = "bob?123456#db-01 and then junk\n#@?";
    struct login l;
    const char *why = NULL;

    (void)state;
    assert_int_equal(parse_exact(s, strlen("bob?123456#db-01"), &l, &why),
                     ERR_OK);
    assert_string_equal(l.username, "bob");
    assert_string_equal(l.totp, "123456");
    assert_string_equal(l.asset, "db-01");
    assert_false(l.asset_is_id);
    /* A UUID cut short by len is not an ID. */
    s = "bob#" UUID;
    assert_int_equal(parse_exact(s, strlen(s) - 1, &l, &why), ERR_OK);
    assert_false(l.asset_is_id);
    assert_int_equal(strlen(l.asset), 35);
}

/* ---- malformed logins ---- */

struct bad {
    const char *s;
    int rc;
    const char *why; /* a substring of the reason */
};

static const struct bad bad_structure[] = {
    {"", ERR_INVALID, "empty login"},
    {"bwilliams", ERR_INVALID, "missing '#asset' in login"},
    {"bwilliams?123456", ERR_INVALID, "missing '#asset' in login"},
    {"bwilliams@contoso.com/DevOps", ERR_INVALID, "missing '#asset'"},
    {"#Prod DB 08", ERR_INVALID, "missing user name"},
    {"?123456#x", ERR_INVALID, "missing user name"},
    {"/DevOps#x", ERR_INVALID, "missing user name"},
    {"@contoso.com#x", ERR_INVALID, "missing user name"},
    {"bwilliams#", ERR_INVALID, "missing asset name or ID"},
    {"bwilliams?123456#", ERR_INVALID, "missing asset name or ID"},
    {"bwilliams#   ", ERR_INVALID, "asset name is blank"},
    {"bwilliams# ", ERR_INVALID, "asset name is blank"},
    {"bwilliams/#x", ERR_INVALID, "missing site name after '/'"},
    {"bwilliams/?123456#x", ERR_INVALID, "missing site name after '/'"},
    {"bwilliams@#x", ERR_INVALID, "missing domain after '@'"},
    {"bwilliams@/DevOps#x", ERR_INVALID, "missing domain after '@'"},
    {"bwilliams@?123456#x", ERR_INVALID, "missing domain after '@'"},
    {"bwilliams#a#b", ERR_INVALID, "more than one '#'"},
    {"bwilliams##x", ERR_INVALID, "more than one '#'"},
    {"bwilliams?123456#" UUID "#", ERR_INVALID, "more than one '#'"},
    {"bwilliams@contoso.com@corp#x", ERR_INVALID, "more than one '@'"},
    {"bwilliams@@contoso.com#x", ERR_INVALID, "more than one '@'"},
    {"bwilliams?123456?123456#x", ERR_INVALID, "more than one '?'"},
    {"bwilliams??123456#x", ERR_INVALID, "more than one '?'"},
    /* '?TOTP' must be the last part before '#'. */
    {"bwilliams?123456/DevOps#x", ERR_INVALID, "must come before '?TOTP'"},
    {"bwilliams@contoso.com?123456/DevOps#x", ERR_INVALID,
     "must come before '?TOTP'"},
    {"bwilliams?/DevOps#x", ERR_INVALID, "must come before '?TOTP'"},
    /* A '@' after the site is not a domain. */
    {"bwilliams/DevOps@contoso.com#x", ERR_INVALID, "site name may contain"},
};

static const struct bad bad_totp[] = {
    {"bwilliams?#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams?12345#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams?1234567#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams?abcdef#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams?12345a#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams?a12345#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams?123 45#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams? 123456#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams?+12345#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams/DevOps?98765#x", ERR_INVALID, "TOTP code must be 6 digits"},
    {"bwilliams@contoso.com?9876543#x", ERR_INVALID,
     "TOTP code must be 6 digits"},
    /* Arabic-Indic digits are not ASCII digits. */
    {"bwilliams?\xd9\xa1\xd9\xa2\xd9\xa3#x", ERR_INVALID,
     "TOTP code must be 6 digits"},
};

static const struct bad bad_fields[] = {
    /* username */
    {"-bob#x", ERR_INVALID, "must not start with '-' or '.'"},
    {".bob#x", ERR_INVALID, "must not start with '-' or '.'"},
    {"bob smith#x", ERR_INVALID, "user name may contain only"},
    {"bob!#x", ERR_INVALID, "user name may contain only"},
    {"bob+x@corp.com#x", ERR_INVALID, "user name may contain only"},
    {"bob\\corp#x", ERR_INVALID, "user name may contain only"},
    /* UTF-8 in the username */
    {"j\xc3\xbcrgen#x", ERR_INVALID, "user name may contain only"},
    {"\xd0\xb1\xd0\xbe\xd0\xb1#x", ERR_INVALID, "user name may contain only"},
    {"bob\xef\xbc\xa0"
     "corp.com#x",
     ERR_INVALID, "user name may contain only"},
    /* domain */
    {"bob@.contoso.com#x", ERR_INVALID, "domain must not start or end"},
    {"bob@contoso.com.#x", ERR_INVALID, "domain must not start or end"},
    {"bob@contoso..com#x", ERR_INVALID, "domain must not start or end"},
    {"bob@.#x", ERR_INVALID, "domain must not start or end"},
    {"bob@contoso_com#x", ERR_INVALID, "domain may contain only"},
    {"bob@contoso com#x", ERR_INVALID, "domain may contain only"},
    {"bob@m\xc3\xbcller.de#x", ERR_INVALID, "domain may contain only"},
    /* site */
    {"bob/Dev//Ops#x", ERR_INVALID, "must not contain '//'"},
    {"bob///root#x", ERR_INVALID, "must not contain '//'"},
    {"bob/DevOps/#x", ERR_INVALID, "end with '/'"},
    {"bob//#x", ERR_INVALID, "end with '/'"},
    {"bob/   #x", ERR_INVALID, "site name is blank"},
    {"bob/DevOps/  /Linux#x", ERR_INVALID, "site name is blank"},
    {"bob/./DevOps#x", ERR_INVALID, "'.' or '..' parts"},
    {"bob/DevOps/..#x", ERR_INVALID, "'.' or '..' parts"},
    {"bob//root/../etc#x", ERR_INVALID, "'.' or '..' parts"},
    {"bob/Dev:Ops#x", ERR_INVALID, "site name may contain only"},
    {"bob/Dev\\Ops#x", ERR_INVALID, "site name may contain only"},
    {"bob/D\xc3\xa9v#x", ERR_INVALID, "site name may contain only"},
    /* asset: malformed UTF-8, C1 controls, bidi overrides */
    {"bob#db\x80", ERR_INVALID, "not valid UTF-8"},
    {"bob#db\xc3", ERR_INVALID, "not valid UTF-8"},
    {"bob#db\xc3 x", ERR_INVALID, "not valid UTF-8"},
    {"bob#db\xc0\xaf", ERR_INVALID, "not valid UTF-8"},
    {"bob#db\xe0\x80\xaf", ERR_INVALID, "not valid UTF-8"},
    {"bob#db\xed\xa0\x80", ERR_INVALID, "not valid UTF-8"},
    {"bob#db\xf4\x90\x80\x80", ERR_INVALID, "not valid UTF-8"},
    {"bob#db\xff", ERR_INVALID, "not valid UTF-8"},
    {"bob#db\xc2\x85x", ERR_INVALID, "asset name contains a control"},
    {"bob#db\xc2\x9b[2J", ERR_INVALID, "asset name contains a control"},
    {"bob#db\xe2\x80\xae"
     "80 BD",
     ERR_INVALID, "asset name contains a control"},
    {"bob#db\xe2\x80\xa8x", ERR_INVALID, "asset name contains a control"},
};

static void run_bad(const struct bad *t, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        expect_fail(t[i].s, t[i].rc, t[i].why);
    }
}

static void test_bad_structure(void **state)
{
    (void)state;
    run_bad(bad_structure, sizeof(bad_structure) / sizeof(bad_structure[0]));
}

static void test_bad_totp(void **state)
{
    (void)state;
    run_bad(bad_totp, sizeof(bad_totp) / sizeof(bad_totp[0]));
}

static void test_bad_fields(void **state)
{
    (void)state;
    run_bad(bad_fields, sizeof(bad_fields) / sizeof(bad_fields[0]));
}

/*
 * Control characters and NUL bytes, put into each part of a login that is
 * otherwise valid: "bob@corp.com/DevOps?123456#Prod DB".
 */
static void test_control_chars(void **state)
{
    static const char base[] = "bob@corp.com/DevOps?123456#Prod DB";
    /* Offsets inside: username, domain, site, TOTP, asset, and the ends. */
    static const size_t where[] = {0, 1, 3, 5, 12, 15, 21, 27, 31, 34};
    static const char ctl[] = {'\n', '\t', '\x1b', '\x7f', '\r', '\x01', '\0'};
    char s[sizeof(base) + 1];
    size_t w;
    size_t c;

    (void)state;
    /* The base itself is valid, so any failure below is the byte's. */
    expect_ok(base, &(struct want){.username = "bob",
                                   .domain = "corp.com",
                                   .principal = "bob@corp.com",
                                   .site = "DevOps",
                                   .totp = "123456",
                                   .asset = "Prod DB"});
    for (w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
        for (c = 0; c < sizeof(ctl); c++) {
            size_t at = where[w];
            size_t len = sizeof(base); /* base plus one inserted byte */

            memcpy(s, base, at);
            s[at] = ctl[c];
            memcpy(s + at + 1, base + at, sizeof(base) - 1 - at);
            expect_fail_len(s, len, ERR_INVALID,
                            ctl[c] == '\0' ? "NUL byte in login"
                                           : "control character in login");
            /* Replacing a byte rather than inserting one fails too. */
            memcpy(s, base, sizeof(base) - 1);
            if (at < sizeof(base) - 1) {
                s[at] = ctl[c];
                expect_fail_len(s, sizeof(base) - 1, ERR_INVALID, NULL);
            }
        }
    }
    /* A trailing newline (a client that sends "bob#db\n") is refused. */
    expect_fail("bob#db\n", ERR_INVALID, "control character in login");
    expect_fail("bob#db\r\n", ERR_INVALID, "control character in login");
    expect_fail_len("bob#db\0", 7, ERR_INVALID, "NUL byte in login");
    /* NUL right after '#': a C-string reader would see an empty asset. */
    expect_fail_len("bob#\0db", 7, ERR_INVALID, "NUL byte in login");
    expect_fail_len("bob\0#db", 7, ERR_INVALID, "NUL byte in login");
}

/* The reason never repeats the TOTP code, whatever else is wrong. */
static void test_why_hides_totp(void **state)
{
    static const char *const logins[] = {
        "bob?482913#",    "bob?482913#  ", "bob?482913#a#b",
        "bob@?482913#x",  "bob/?482913#x", "b\xc3\xbc?482913#x",
        "bob?4829134#x",  "bob?48291#x",   "bob?482913/x#y",
        "bob?482913\n#x", "bob?482913",    "bob?482913#db\xc3",
    };
    struct login l;
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(logins) / sizeof(logins[0]); i++) {
        why = NULL;
        assert_int_not_equal(
            login_parse(logins[i], strlen(logins[i]), &l, &why), ERR_OK);
        assert_non_null(why);
        assert_null(strstr(why, "482913"));
        assert_null(strstr(why, "48291"));
        assert_true(all_zero(&l));
    }
}

/* why may be NULL; s may be NULL only with len 0; out NULL is refused. */
static void test_api_edges(void **state)
{
    struct login l;
    const char *why = NULL;

    (void)state;
    memset(&l, 0xa5, sizeof(l));
    assert_int_equal(login_parse("bob#x", 5, &l, NULL), ERR_OK);
    assert_string_equal(l.username, "bob");
    assert_string_equal(l.asset, "x");
    assert_string_equal(l.domain, "");

    memset(&l, 0xa5, sizeof(l));
    assert_int_equal(login_parse("bob", 3, &l, NULL), ERR_INVALID);
    assert_true(all_zero(&l));

    memset(&l, 0xa5, sizeof(l));
    assert_int_equal(login_parse(NULL, 0, &l, &why), ERR_INVALID);
    assert_true(all_zero(&l));
    assert_string_equal(why, "empty login");

    why = NULL;
    memset(&l, 0xa5, sizeof(l));
    assert_int_equal(login_parse(NULL, 5, &l, &why), ERR_INVALID);
    assert_true(all_zero(&l));
    assert_non_null(why);

    why = NULL;
    assert_int_equal(login_parse("bob#x", 5, NULL, &why), ERR_INVALID);
    assert_non_null(why);

    /* A success after a failure leaves no trace of the failure. */
    why = "stale";
    assert_int_equal(login_parse("bob?111111#x", 12, &l, &why), ERR_OK);
    assert_null(why);
    assert_string_equal(l.totp, "111111");
    assert_int_equal(login_parse("bob#y", 5, &l, &why), ERR_OK);
    assert_string_equal(l.totp, "");
    assert_string_equal(l.asset, "y");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_seed_examples),
        cmocka_unit_test(test_site_paths),
        cmocka_unit_test(test_asset_forms),
        cmocka_unit_test(test_user_forms),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_not_nul_terminated),
        cmocka_unit_test(test_bad_structure),
        cmocka_unit_test(test_bad_totp),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_control_chars),
        cmocka_unit_test(test_why_hides_totp),
        cmocka_unit_test(test_api_edges),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
