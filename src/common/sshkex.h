/*
 * The first key exchange of a libssh 0.10 server says why it failed.
 *
 * libssh writes only when it believes the socket writable (a POLLOUT it
 * saw), and handles POLLIN first. When a client's identification string
 * and KEXINIT arrive in one read (a client that sends both at once, or
 * any client when the server was scheduled late), libssh queues our
 * KEXINIT, judges the client's, and on a mismatch gives up with ours
 * still queued: the client reads a bare close ("Connection closed by
 * ...") instead of "no matching cipher found". sshkex_flush_begin() marks
 * the socket writable at the point of the first exchange where libssh is
 * about to queue its KEXINIT (connection status 0.5), so it leaves at
 * once. Not in later exchanges: a rekey's send buffer may be full.
 *
 * Both of our libssh servers use it: the session child (the proxy's SSH
 * port) and the agent hub (SSH inside the agents' WebSockets).
 */
#ifndef PORTCULLIS_SSHKEX_H
#define PORTCULLIS_SSHKEX_H

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

struct sshkex_flush {
    struct ssh_callbacks_struct cb; /* libssh keeps a pointer to it */
    ssh_session session;
};

/* Installs f's callbacks on s before ssh_handle_key_exchange(); f must
 * live as long as s. */
void sshkex_flush_begin(struct sshkex_flush *f, ssh_session s);
/* After the first exchange: later status changes do nothing. */
void sshkex_flush_end(struct sshkex_flush *f);

#endif
