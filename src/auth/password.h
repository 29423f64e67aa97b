/*
 * Password hashing with argon2id (libsodium crypto_pwhash_str).
 */
#ifndef PORTCULLIS_PASSWORD_H
#define PORTCULLIS_PASSWORD_H

#include <stddef.h>
#include <stdint.h>

#define PASSWORD_MAX 1024 /* longest password accepted anywhere */

/* The argon2id cost of hashes made from now on by password_hash() and of
 * the unknown-user path's dummy: memory in KiB and passes ([auth]
 * password_memory_kib / password_passes, checked by config.c). Call it
 * before any verification runs (at start, in one thread); the default is
 * libsodium's "interactive" cost (64 MiB, 2 passes). A stored hash keeps
 * the cost it was made with and verifies with it. */
void password_set_cost(unsigned passes, unsigned memory_kib);

/* out must hold STORE_HASH_MAX + 1 (crypto_pwhash_STRBYTES) bytes. */
int password_hash(const char *password, char *out, size_t outlen);
/* ERR_OK if password matches hash, ERR_AUTH otherwise. When hash is NULL
 * or empty (unknown user, no password set) it still spends the time of a
 * real verification against a dummy hash and returns ERR_AUTH, so timing
 * does not reveal which user names exist. */
int password_verify(const char *hash, const char *password);
/*
 * Verifying off the event loop. argon2id takes ~100 ms of CPU and 64 MiB:
 * run in the loop's thread, a burst of guesses would stall every session.
 * A pool runs at most max_running verifications at once on the loop's
 * worker threads (loop_work) and keeps at most max_waiting more in a FIFO;
 * past that, password_verify_async() refuses at once with ERR_BUSY, so a
 * flood cannot queue unbounded work or memory.
 *
 * done(ctx, tag, result, rh) runs later in the loop's thread with ERR_OK or
 * ERR_AUTH, exactly once per accepted request, unless the pool is freed
 * first (then never). The pool copies hash and password (wiping its copy
 * after use), so the caller's buffers may go at once. The caller finds its
 * own state again from tag (e.g. a serial number, never a pointer to
 * something that may have been freed meanwhile).
 */
struct loop;
struct password_pool;
/* A right password whose stored hash was made at another cost than
 * password_set_cost's: the hash checked and a new one of the same
 * password at the set cost, made on the same worker thread right after
 * the check (that login costs two runs, once). The caller stores it with
 * store_user_rehash, which changes the hash only while it is still the
 * one checked. */
struct password_rehash {
    const char *old_hash;
    const char *new_hash;
};
/* rh: NULL, or (result ERR_OK only) a new hash to store; valid during the
 * call only. */
typedef void (*password_done_fn)(void *ctx, uint64_t tag, int result,
                                 const struct password_rehash *rh);

struct password_pool *password_pool_new(struct loop *l, unsigned max_running,
                                        unsigned max_waiting);
/* Forgets every request: queued ones are dropped, running ones finish on
 * their thread and are then freed without calling done. */
void password_pool_free(struct password_pool *p);
/* Forgets every request made with ctx (queued: dropped; running: never
 * answered), for an owner that goes before the pool does. */
void password_pool_forget(struct password_pool *p, const void *ctx);
/* hash NULL or "": the unknown-user path (password_verify). Returns
 * ERR_OK (done will be called), ERR_DENIED (server busy: max_running
 * running and max_waiting waiting; done will not be called) or ERR_NOMEM. */
int password_verify_async(struct password_pool *p, const char *hash,
                          const char *password, password_done_fn done,
                          void *ctx, uint64_t tag);
/* Verifications running and waiting now (for tests and metrics). */
void password_pool_load(const struct password_pool *p, unsigned *running,
                        unsigned *waiting);

/* A random password of len characters from an unambiguous alphabet;
 * writes len + 1 bytes (the characters and a NUL). */
void password_generate(char *out, size_t len);

#endif
