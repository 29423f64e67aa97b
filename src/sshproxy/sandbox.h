/*
 * The session child's sandbox (SPEC §10).
 *
 * sandbox_prepare() runs once in the main process at start: it looks up the
 * unprivileged user and makes the empty chroot directory. sandbox_enter()
 * runs in each forked child before it reads a byte from the client: when
 * run as root it chroots into the empty directory and drops to the
 * unprivileged user; always it sets resource limits (no new processes, no
 * file writes), no_new_privs, non-dumpable, and loads a seccomp allow-list
 * that permits what a relay of already-open sockets needs. open(2),
 * socket(2) and every other unlisted call fail with EACCES; ioctl(2) is
 * allowed for four socket requests only; exec, ptrace and terminal
 * ioctls such as TIOCSTI kill the process.
 */
#ifndef PORTCULLIS_SANDBOX_H
#define PORTCULLIS_SANDBOX_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

struct sandbox {
    bool drop; /* running as root: chroot and change user */
    uid_t uid; /* unprivileged user */
    gid_t gid;
    char empty_dir[4096]; /* chroot target, root-owned, empty */
};

int sandbox_prepare(const char *user, const char *data_dir, struct sandbox *sb);
int sandbox_enter(const struct sandbox *sb);
/* As sandbox_enter, for an RDP session child (rdpproxy/rdp_child.c):
 * the same drop and limits, and the allow-list plus the few calls
 * FreeRDP's event objects need (sandbox.c lists them and says why;
 * docs/rdp.md). */
int sandbox_enter_rdp(const struct sandbox *sb);
/* The one signal an RDP child may send, to its own threads only: it
 * wakes its back leg's thread out of FreeRDP's connect waits
 * (rdp_child.c, rdpc_kick_main). */
#define SANDBOX_RDP_KICK_SIG SIGURG

#endif
