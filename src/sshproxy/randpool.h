/*
 * libssh's small, non-secret random draws served from a pool (randpool.c).
 *
 * libssh 0.10 fills every packet's padding (4 to 19 bytes) with one
 * RAND_bytes() call (packet.c, through ssh_get_random()). Each call pays
 * OpenSSL's fixed cost: a fork check (a getpid() system call), a DRBG
 * cipher set-up, parameter look-ups by name. In a session child relaying
 * a bulk transfer that was 5-6 % of its CPU and 66,000 getpid() calls per
 * GiB (bench/README.md). meson.build links with -Wl,--wrap=ssh_get_random
 * (the call crosses libssh's object files, so the linker can redirect it
 * in our static link): a draw of at most RANDPOOL_SERVE_MAX bytes that
 * libssh does not mark strong is copied from a pool that one RAND_bytes()
 * call refills RANDPOOL_SIZE bytes at a time; the copied bytes are wiped
 * from the pool. Strong draws (key exchange secrets), larger draws, and
 * any draw when the pool cannot be set up go to libssh's own function.
 *
 * The bytes are the same DRBG's output, only drawn in larger steps, as
 * OpenSSH draws its padding from arc4random's buffered stream. A fork must
 * not hand the same bytes to two processes (session children are forked):
 * the pool lives in its own page mapped with MADV_WIPEONFORK, so a child
 * sees it zeroed, that is empty, and refills from its own DRBG (which
 * OpenSSL reseeds after a fork). Without MADV_WIPEONFORK (Linux < 4.14)
 * there is no pool and every draw goes to libssh.
 */
#ifndef PORTCULLIS_SSHPROXY_RANDPOOL_H
#define PORTCULLIS_SSHPROXY_RANDPOOL_H

#include <stdbool.h>
#include <stddef.h>

#define RANDPOOL_SIZE 4000
#define RANDPOOL_SERVE_MAX 32

/* Copies len random bytes from the pool to where; false if the pool is not
 * available (no MADV_WIPEONFORK, no memory, or RAND_bytes failed). */
bool randpool_take(void *where, size_t len);

#endif
