/*
 * Unit tests for src/common/hostkey.c: the fingerprint of a fixed test key
 * (private and public file) against the one `ssh-keygen -lf` printed for
 * it, keys freshly made by ssh-keygen (ed25519, RSA, ECDSA) and by libssh
 * (as `portcullis init` makes the host key) compared with what the
 * installed ssh-keygen prints now, and the refusals: a missing file, a
 * file that holds no key, an output buffer too small.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "common/err.h"
#include "common/hostkey.h"

/* A throwaway ed25519 key made for this test only, and what
 * `ssh-keygen -lf` (OpenSSH 9.2) printed for it. Its base64 holds both
 * '+' and '/', the characters in which base64 variants differ. */
static const char vector_key[] =
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDtnx/FAQbC7n9KYAXw0zgwTv6OZ/XLVWNyLXZJcaWBDQAAAJAizvBFIs7w\n"
    "RQAAAAtzc2gtZWQyNTUxOQAAACDtnx/FAQbC7n9KYAXw0zgwTv6OZ/XLVWNyLXZJcaWBDQ\n"
    "AAAECJ8A7mSbQfCZnB7BXS0S5+JFqqF9PQcQ8VJAA5rxXpe+2fH8UBBsLuf0pgBfDTODBO\n"
    "/o5n9ctVY3ItdklxpYENAAAABnZlY3RvcgECAwQFBgc=\n"
    "-----END OPENSSH PRIVATE KEY-----\n";
static const char vector_pub[] =
    "ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIO2fH8UBBsLuf0pgBfDTODBO/o5n9ctVY3ItdklxpYEN "
    "vector\n";
static const char vector_fp[] =
    "SHA256:vsX7DUsYLo8aWOF1qviy/e9GVWd8QXxn+T2T7trCWyw";

struct hk {
    char dir[64];
};

static int setup(void **state)
{
    struct hk *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        return -1;
    }
    snprintf(h->dir, sizeof(h->dir), "/tmp/test_hostkey.XXXXXX");
    if (mkdtemp(h->dir) == NULL) {
        free(h);
        return -1;
    }
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct hk *h = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot remove %s\n", h->dir);
    }
    free(h);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* The SHA256:... word of `ssh-keygen -lf path`. */
static void keygen_fp(const char *path, char *out, size_t outlen)
{
    char cmd[256], line[512], *sp;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "ssh-keygen -E sha256 -lf '%s'", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(line, sizeof(line), p));
    assert_int_equal(pclose(p), 0);
    sp = strchr(line, ' ');
    assert_non_null(sp);
    snprintf(out, outlen, "%.*s", (int)strcspn(sp + 1, " "), sp + 1);
    assert_true(strncmp(out, "SHA256:", 7) == 0);
}

static void test_vector(void **state)
{
    struct hk *h = *state;
    char path[128], fp[HOSTKEY_FP_MAX + 1];

    snprintf(path, sizeof(path), "%s/vector", h->dir);
    write_text(path, vector_key);
    assert_int_equal(hostkey_fingerprint(path, fp, sizeof(fp)), ERR_OK);
    assert_string_equal(fp, vector_fp);

    snprintf(path, sizeof(path), "%s/vector.pub", h->dir);
    write_text(path, vector_pub);
    memset(fp, 'x', sizeof(fp));
    assert_int_equal(hostkey_fingerprint(path, fp, sizeof(fp)), ERR_OK);
    assert_string_equal(fp, vector_fp);
}

static void test_against_ssh_keygen(void **state)
{
    static const char *const types[][2] = {
        {"ed25519", ""}, {"rsa", "-b 2048"}, {"ecdsa", "-b 256"}};
    struct hk *h = *state;
    char path[128], cmd[256], fp[HOSTKEY_FP_MAX + 1], want[128];

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        snprintf(path, sizeof(path), "%s/key_%s", h->dir, types[i][0]);
        snprintf(cmd, sizeof(cmd), "ssh-keygen -q -t %s %s -N '' -f '%s'",
                 types[i][0], types[i][1], path);
        assert_int_equal(system(cmd), 0);
        keygen_fp(path, want, sizeof(want));
        assert_int_equal(hostkey_fingerprint(path, fp, sizeof(fp)), ERR_OK);
        assert_string_equal(fp, want);
        assert_int_equal(strlen(fp), 7 + 43);
    }
}

/* A key as `portcullis init` writes it (libssh's export). */
static void test_libssh_made_key(void **state)
{
    struct hk *h = *state;
    char path[128], fp[HOSTKEY_FP_MAX + 1], want[128];
    ssh_key key = NULL;

    snprintf(path, sizeof(path), "%s/libssh_key", h->dir);
    assert_int_equal(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key), SSH_OK);
    assert_int_equal(ssh_pki_export_privkey_file(key, NULL, NULL, NULL, path),
                     SSH_OK);
    ssh_key_free(key);
    keygen_fp(path, want, sizeof(want));
    assert_int_equal(hostkey_fingerprint(path, fp, sizeof(fp)), ERR_OK);
    assert_string_equal(fp, want);
}

static void test_refusals(void **state)
{
    struct hk *h = *state;
    char path[128], fp[HOSTKEY_FP_MAX + 1], small[20];

    snprintf(path, sizeof(path), "%s/missing", h->dir);
    assert_int_equal(hostkey_fingerprint(path, fp, sizeof(fp)), ERR_IO);
    assert_string_equal(fp, "");
    snprintf(path, sizeof(path), "%s/garbage", h->dir);
    write_text(path, "this is not a key\n");
    assert_int_equal(hostkey_fingerprint(path, fp, sizeof(fp)), ERR_IO);
    assert_int_equal(hostkey_fingerprint(NULL, fp, sizeof(fp)), ERR_IO);
    snprintf(path, sizeof(path), "%s/vector", h->dir);
    write_text(path, vector_key);
    assert_int_equal(hostkey_fingerprint(path, small, sizeof(small)),
                     ERR_TOO_LONG);
    assert_string_equal(small, "");
    /* exactly large enough */
    assert_int_equal(hostkey_fingerprint(path, fp, 7 + 43 + 1), ERR_OK);
    assert_string_equal(fp, vector_fp);
}

/* hostkey_create: each type, as ssh-keygen sees it, 0600 key and a .pub
 * line ssh-keygen reads; never over an existing file. */
static void test_create(void **state)
{
    static const struct {
        enum hostkey_type type;
        const char *keygen; /* what ssh-keygen -l says at the end */
        const char *bits;
    } types[] = {
        {HOSTKEY_ED25519, "(ED25519)", "256 "},
        {HOSTKEY_ECDSA, "(ECDSA)", "256 "},
        {HOSTKEY_RSA, "(RSA)", "3072 "},
    };
    struct hk *h = *state;
    char path[128], pub[160], fp[HOSTKEY_FP_MAX + 1], want[128];
    char cmd[256], line[512], again[HOSTKEY_FP_MAX + 1];
    struct stat st;
    FILE *p;
    size_t i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        snprintf(path, sizeof(path), "%s/key_%s", h->dir,
                 hostkey_type_name(types[i].type));
        snprintf(pub, sizeof(pub), "%s.pub", path);
        assert_int_equal(hostkey_create(path, types[i].type, fp, sizeof(fp)),
                         ERR_OK);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_equal(stat(pub, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0644);
        keygen_fp(path, want, sizeof(want));
        assert_string_equal(fp, want);
        keygen_fp(pub, want, sizeof(want));
        assert_string_equal(fp, want);
        snprintf(cmd, sizeof(cmd), "ssh-keygen -lf '%s'", pub);
        assert_non_null(p = popen(cmd, "r"));
        assert_non_null(fgets(line, sizeof(line), p));
        assert_int_equal(pclose(p), 0);
        assert_non_null(strstr(line, types[i].keygen));
        assert_true(strncmp(line, types[i].bits, strlen(types[i].bits)) == 0);
        /* never overwritten: the same key stays */
        assert_int_equal(
            hostkey_create(path, types[i].type, again, sizeof(again)),
            ERR_EXISTS);
        keygen_fp(path, want, sizeof(want));
        assert_string_equal(fp, want);
    }
    /* a stale .pub without its key: refused, and no key left behind */
    snprintf(path, sizeof(path), "%s/stale", h->dir);
    snprintf(pub, sizeof(pub), "%s.pub", path);
    write_text(pub, "old\n");
    assert_int_equal(hostkey_create(path, HOSTKEY_ECDSA, fp, sizeof(fp)),
                     ERR_EXISTS);
    assert_int_equal(access(path, F_OK), -1);
    /* a directory that does not exist */
    assert_int_equal(
        hostkey_create("/proc/no/such/key", HOSTKEY_RSA, fp, sizeof(fp)),
        ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_vector, setup, teardown),
        cmocka_unit_test_setup_teardown(test_against_ssh_keygen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_libssh_made_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
