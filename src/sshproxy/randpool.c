/*
 * libssh's small random draws from a pool: see randpool.h.
 *
 * The whole state lives in one page mapped with MADV_WIPEONFORK: after a
 * fork the child's copy is zero, which is an empty pool with its lock
 * free, whatever the parent was doing. A spin lock (atomic_flag) guards it
 * for processes with threads; a draw holds it for a copy, or for one
 * RAND_bytes() when the pool is empty.
 */
#include "sshproxy/randpool.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <openssl/rand.h>

int __real_ssh_get_random(void *where, int len, int strong);
int __wrap_ssh_get_random(void *where, int len, int strong);

struct randpool {
    atomic_flag lock;
    uint32_t off, len; /* unused bytes are bytes[off..len) */
    uint8_t bytes[RANDPOOL_SIZE];
};

_Static_assert(sizeof(struct randpool) <= 4096, "the pool fits one page");

/* The page once set up (a child inherits the pointer; the page's contents
 * are zeroed for it); pool_none once the kernel refused MADV_WIPEONFORK. */
static struct randpool *_Atomic pool_page;
static atomic_bool pool_none;

static struct randpool *randpool_get(void)
{
    struct randpool *p = atomic_load(&pool_page), *none = NULL;

    if (p != NULL || atomic_load(&pool_none)) {
        return p;
    }
    p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
             -1, 0);
    if (p == MAP_FAILED) {
        return NULL; /* perhaps later */
    }
    if (madvise(p, 4096, MADV_WIPEONFORK) != 0) {
        munmap(p, 4096);
        atomic_store(&pool_none, true);
        return NULL;
    }
    if (!atomic_compare_exchange_strong(&pool_page, &none, p)) {
        munmap(p, 4096); /* another thread was first */
    }
    return atomic_load(&pool_page);
}

bool randpool_take(void *where, size_t len)
{
    struct randpool *p;
    bool ok = true;

    if (len > RANDPOOL_SERVE_MAX || (p = randpool_get()) == NULL) {
        return false;
    }
    while (atomic_flag_test_and_set_explicit(&p->lock, memory_order_acquire)) {
        /* another thread draws: a copy's time */
    }
    if (p->len - p->off < len) {
        if (RAND_bytes(p->bytes, (int)sizeof(p->bytes)) == 1) {
            p->off = 0;
            p->len = sizeof(p->bytes);
        } else {
            explicit_bzero(p->bytes, sizeof(p->bytes));
            p->off = p->len = 0;
            ok = false;
        }
    }
    if (ok) {
        memcpy(where, p->bytes + p->off, len);
        explicit_bzero(p->bytes + p->off, len);
        p->off += (uint32_t)len;
    }
    atomic_flag_clear_explicit(&p->lock, memory_order_release);
    return ok;
}

int __wrap_ssh_get_random(void *where, int len, int strong)
{
    if (strong == 0 && len > 0 && randpool_take(where, (size_t)len)) {
        return 1;
    }
    return __real_ssh_get_random(where, len, strong);
}
