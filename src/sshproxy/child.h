/*
 * Entry point of a session child (one per client connection), forked by
 * the spawner. See session.h for its state and docs/architecture.md for
 * the process model.
 */
#ifndef PORTCULLIS_CHILD_H
#define PORTCULLIS_CHILD_H

#include <libssh/server.h>

#include "sshproxy/hostkeys.h"
#include "sshproxy/sandbox.h"

struct child_args {
    int client_fd;  /* accepted TCP connection */
    int monitor_fd; /* this child's end of its monitor socket */
    ssh_bind bind;  /* holds stand-in host keys only */
    const struct hostkey_standins *keys; /* the real public host keys */
    const struct sandbox *sb; /* applied before the first client byte */
    int login_grace_seconds;
    int connect_timeout_seconds;
    /* offered towards the target, in order ([ssh] upstream_*) */
    const char *upstream_ciphers;
    const char *upstream_macs;
    const char *upstream_kex;
    const char *upstream_hostkeys;
    const char *banner;      /* sent before login ([ssh] banner), or NULL */
    const char *client_addr; /* "addr:port", for logs */
};

/* Serves one connection; returns the process exit code. */
int child_run(const struct child_args *a);

#endif
