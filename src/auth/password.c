/*
 * Password hashing; see password.h.
 *
 * Passwords are stored only as argon2id strings from libsodium's
 * crypto_pwhash_str, at the cost password_set_cost() gave ([auth]
 * password_memory_kib and password_passes; OPSLIMIT_INTERACTIVE and
 * MEMLIMIT_INTERACTIVE by default): the string carries its own salt and
 * parameters, so other settings later do not invalidate old hashes.
 *
 * A login for an unknown user (or a user without a password) must cost the
 * same as a wrong password for a known one, or the answer time tells an
 * attacker which user names exist. password_verify() therefore always runs
 * argon2id once: against the stored hash, or against a dummy hash of a
 * random password. The dummy is made lazily on the first unknown-user
 * login, and that call spends its argon2id run making the dummy instead of
 * verifying against it, so even the first call costs one run, not two.
 * Verifications run on worker threads (the pool below), so the dummy is
 * made under a mutex.
 *
 * The pool (password.h) keeps its own FIFO of waiting requests and starts
 * one on the loop's worker threads (loop_work) only while fewer than
 * max_running run, so hashing never takes more than that many of libuv's
 * threads (the resolver shares them) nor that many cores. Each request
 * carries a copy of the hash and of the password, wiped and freed in the
 * loop's thread once its thread is done.
 */
#include "auth/password.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common/err.h"
#include "common/loop.h"

/* Set once at start (password_set_cost), before any thread hashes. */
static unsigned long long password_opslimit =
    crypto_pwhash_OPSLIMIT_INTERACTIVE;
static size_t password_memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;

/* No 0/O/o, 1/l/I/i: generated passwords get read aloud and typed. */
static const char password_alphabet[] = "23456789"
                                        "abcdefghjkmnpqrstuvwxyz"
                                        "ABCDEFGHJKLMNPQRSTUVWXYZ";

static char password_dummy[crypto_pwhash_STRBYTES];
static bool password_dummy_ready; /* under password_dummy_lock */
static pthread_mutex_t password_dummy_lock = PTHREAD_MUTEX_INITIALIZER;

/* Length of s if it is at most PASSWORD_MAX, without reading further. */
static bool password_len_ok(const char *s, size_t *len)
{
    *len = strnlen(s, PASSWORD_MAX + 1);
    return *len <= PASSWORD_MAX;
}

static int password_hash_raw(const char *password, size_t len, char *out)
{
    if (sodium_init() < 0) {
        return ERR_CRYPTO;
    }
    if (crypto_pwhash_str_alg(out, password, len, password_opslimit,
                              password_memlimit,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        return ERR_NOMEM; /* argon2id's only failure is its memory */
    }
    return ERR_OK;
}

void password_set_cost(unsigned passes, unsigned memory_kib)
{
    pthread_mutex_lock(&password_dummy_lock);
    password_opslimit = passes;
    password_memlimit = (size_t)memory_kib * 1024u;
    /* the dummy must cost what a real hash now costs */
    password_dummy_ready = false;
    pthread_mutex_unlock(&password_dummy_lock);
}

int password_hash(const char *password, char *out, size_t outlen)
{
    size_t len;
    int r;

    if (out == NULL || outlen < crypto_pwhash_STRBYTES) {
        return ERR_INVALID;
    }
    memset(out, 0, outlen);
    if (password == NULL || password[0] == '\0') {
        return ERR_INVALID;
    }
    if (!password_len_ok(password, &len)) {
        return ERR_TOO_LONG;
    }
    if ((r = password_hash_raw(password, len, out)) != ERR_OK) {
        memset(out, 0, outlen);
    }
    return r;
}

/* Spends one argon2id run and fails: the unknown-user path. */
static int password_verify_dummy(const char *password, size_t len)
{
    char random_pw[33];
    uint8_t seed[16];
    bool ready;
    int r;

    pthread_mutex_lock(&password_dummy_lock);
    if ((ready = password_dummy_ready)) {
        /* Written once, before ready was set: read it without the lock. */
        pthread_mutex_unlock(&password_dummy_lock);
        /* Fails by design; only the time it takes matters. */
        r = crypto_pwhash_str_verify(password_dummy, password, len);
        (void)r;
        return ERR_AUTH;
    }
    randombytes_buf(seed, sizeof(seed));
    sodium_bin2hex(random_pw, sizeof(random_pw), seed, sizeof(seed));
    r = password_hash_raw(random_pw, strlen(random_pw), password_dummy);
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(random_pw, sizeof(random_pw));
    if (r == ERR_OK) {
        password_dummy_ready = true;
    }
    pthread_mutex_unlock(&password_dummy_lock);
    return ERR_AUTH;
}

int password_verify(const char *hash, const char *password)
{
    size_t len;

    if (password == NULL) {
        password = "";
    }
    /* The length limit is the same for every user, so failing early here
     * tells nothing about who exists, and it keeps huge inputs cheap. */
    if (!password_len_ok(password, &len)) {
        return ERR_AUTH;
    }
    if (sodium_init() < 0) {
        return ERR_AUTH;
    }
    if (hash == NULL || hash[0] == '\0') {
        return password_verify_dummy(password, len);
    }
    if (crypto_pwhash_str_verify(hash, password, len) != 0) {
        return ERR_AUTH;
    }
    return ERR_OK;
}

/* --- the worker pool --- */

struct password_job {
    struct password_job *next;  /* in the waiting FIFO */
    struct password_pool *pool; /* NULL: the pool was freed, drop it */
    password_done_fn done;      /* NULL: forgotten (password_pool_forget) */
    void *ctx;
    uint64_t tag;
    int result;
    size_t size;  /* of secret */
    char *secret; /* hash, NUL, password, NUL; wiped before free */
    const char *password;
    bool rehashed;                         /* new_hash made (password.h) */
    char new_hash[crypto_pwhash_STRBYTES]; /* at the cost set now */
};

struct password_pool {
    struct loop *loop;
    unsigned max_running, max_waiting;
    unsigned running, waiting;
    struct password_job *head, *tail; /* waiting, oldest first */
    /* running jobs, so that password_pool_free can orphan them */
    struct password_job **run;
};

static void password_job_free(struct password_job *j)
{
    if (j == NULL) {
        return;
    }
    if (j->secret != NULL) {
        sodium_memzero(j->secret, j->size);
        free(j->secret);
    }
    sodium_memzero(j, sizeof(*j));
    free(j);
}

/* On a worker thread: touches only the job. */
static void password_job_work(void *arg)
{
    struct password_job *j = arg;

    j->result = password_verify(j->secret[0] ? j->secret : NULL, j->password);
    /* A right password and a hash of another cost (or form): a new hash
     * while the password is at hand, so that a changed cost reaches every
     * user who logs in, and their logins take as long as an unknown
     * name's. */
    if (j->result == ERR_OK && j->secret[0] != '\0' &&
        crypto_pwhash_str_needs_rehash(j->secret, password_opslimit,
                                       password_memlimit) != 0 &&
        password_hash_raw(j->password, strlen(j->password), j->new_hash) ==
            ERR_OK) {
        j->rehashed = true;
    }
}

static void password_pool_start(struct password_pool *p);
static void password_job_after(struct loop *l, void *arg);

/* Hands j to a worker thread and notes it as running. */
static int password_job_run(struct password_pool *p, struct password_job *j)
{
    unsigned i;

    if (loop_work(p->loop, password_job_work, password_job_after, j) !=
        ERR_OK) {
        return ERR_IO;
    }
    for (i = 0; i < p->max_running && p->run[i] != NULL; i++) {
    }
    p->run[i] = j; /* i < max_running, as running < max_running */
    p->running++;
    return ERR_OK;
}

/* In the loop's thread. */
static void password_job_after(struct loop *l, void *arg)
{
    struct password_job *j = arg;
    struct password_pool *p = j->pool;

    (void)l;
    if (p != NULL) {
        for (unsigned i = 0; i < p->max_running; i++) {
            if (p->run[i] == j) {
                p->run[i] = NULL;
                break;
            }
        }
        p->running--;
        if (j->done != NULL) {
            struct password_rehash rh = {j->secret, j->new_hash};

            j->done(j->ctx, j->tag, j->result, j->rehashed ? &rh : NULL);
        }
        password_pool_start(p);
    }
    password_job_free(j);
}

/* Starts waiting jobs while there is room. */
static void password_pool_start(struct password_pool *p)
{
    struct password_job *j;

    while (p->running < p->max_running && (j = p->head) != NULL) {
        p->head = j->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        p->waiting--;
        j->next = NULL;
        if (password_job_run(p, j) != ERR_OK) {
            /* No thread for it: answer as a failure rather than never. */
            j->done(j->ctx, j->tag, ERR_AUTH, NULL);
            password_job_free(j);
        }
    }
}

struct password_pool *password_pool_new(struct loop *l, unsigned max_running,
                                        unsigned max_waiting)
{
    struct password_pool *p;

    if (l == NULL || max_running == 0 || sodium_init() < 0 ||
        (p = calloc(1, sizeof(*p))) == NULL) {
        return NULL;
    }
    p->loop = l;
    p->max_running = max_running;
    p->max_waiting = max_waiting;
    if ((p->run = calloc(max_running, sizeof(*p->run))) == NULL) {
        free(p);
        return NULL;
    }
    return p;
}

void password_pool_free(struct password_pool *p)
{
    struct password_job *j;

    if (p == NULL) {
        return;
    }
    while ((j = p->head) != NULL) {
        p->head = j->next;
        password_job_free(j);
    }
    for (unsigned i = 0; i < p->max_running; i++) {
        if (p->run[i] != NULL) {
            p->run[i]->pool = NULL; /* its after() frees it */
        }
    }
    free(p->run);
    free(p);
}

void password_pool_forget(struct password_pool *p, const void *ctx)
{
    struct password_job **pp, *j;

    if (p == NULL) {
        return;
    }
    for (pp = &p->head; (j = *pp) != NULL;) {
        if (j->ctx == ctx) {
            *pp = j->next;
            p->waiting--;
            password_job_free(j);
        } else {
            p->tail = j;
            pp = &j->next;
        }
    }
    if (p->head == NULL) {
        p->tail = NULL;
    }
    for (unsigned i = 0; i < p->max_running; i++) {
        if (p->run[i] != NULL && p->run[i]->ctx == ctx) {
            p->run[i]->done = NULL; /* runs to its end unanswered */
        }
    }
}

int password_verify_async(struct password_pool *p, const char *hash,
                          const char *password, password_done_fn done,
                          void *ctx, uint64_t tag)
{
    struct password_job *j;
    size_t hlen, plen;

    if (p == NULL || done == NULL) {
        return ERR_INVALID;
    }
    if (p->running >= p->max_running && p->waiting >= p->max_waiting) {
        return ERR_DENIED;
    }
    hash = hash != NULL ? hash : "";
    password = password != NULL ? password : "";
    hlen = strnlen(hash, crypto_pwhash_STRBYTES);
    /* One byte over the limit is enough for password_verify to refuse it. */
    plen = strnlen(password, PASSWORD_MAX + 1);
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        return ERR_NOMEM;
    }
    j->size = hlen + 1 + plen + 1;
    if ((j->secret = malloc(j->size)) == NULL) {
        free(j);
        return ERR_NOMEM;
    }
    memcpy(j->secret, hash, hlen);
    j->secret[hlen] = '\0';
    memcpy(j->secret + hlen + 1, password, plen);
    j->secret[hlen + 1 + plen] = '\0';
    j->password = j->secret + hlen + 1;
    j->pool = p;
    j->done = done;
    j->ctx = ctx;
    j->tag = tag;
    j->result = ERR_AUTH;
    if (p->running < p->max_running) {
        /* Nothing waits (the FIFO only fills while all run): start now. */
        if (password_job_run(p, j) != ERR_OK) {
            password_job_free(j);
            return ERR_NOMEM;
        }
        return ERR_OK;
    }
    if (p->tail != NULL) {
        p->tail->next = j;
    } else {
        p->head = j;
    }
    p->tail = j;
    p->waiting++;
    return ERR_OK;
}

void password_pool_load(const struct password_pool *p, unsigned *running,
                        unsigned *waiting)
{
    if (running != NULL) {
        *running = p != NULL ? p->running : 0;
    }
    if (waiting != NULL) {
        *waiting = p != NULL ? p->waiting : 0;
    }
}

/* out holds len + 1 bytes: len characters and a NUL. */
void password_generate(char *out, size_t len)
{
    size_t i;

    if (out == NULL) {
        return;
    }
    /* randombytes works (or aborts) even if sodium_init fails. */
    if (sodium_init() < 0) {
        out[0] = '\0';
    }
    for (i = 0; i < len; i++) {
        out[i] = password_alphabet[randombytes_uniform(
            (uint32_t)(sizeof(password_alphabet) - 1))];
    }
    out[len] = '\0';
}
