/*
 * One RDP session child (forked by the spawner, rdp_server.c): the
 * FreeRDP server (the client's leg, NLA) and the FreeRDP client (the
 * target's leg), joined in one process; every decision is the monitor's
 * (docs/rdp.md).
 */
#ifndef PORTCULLIS_RDP_CHILD_H
#define PORTCULLIS_RDP_CHILD_H

#include "sshproxy/sandbox.h"

struct rdp_child_args {
    int client_fd;
    int monitor_fd;
    const struct sandbox *sb;
    const char *cert_pem; /* the TLS certificate the client sees */
    const char *key_pem;  /* its private key */
    int login_grace_seconds;
    const char *config_path; /* FreeRDP's ConfigPath (rdp_server.c) */
    const char *client_addr; /* "addr:port", for logs */
    bool compression;        /* [rdp] compression */
    bool tls_logins;         /* [rdp] tls_logins */
};

/* Serves one connection; returns the process exit code. */
int rdp_child_run(const struct rdp_child_args *a);

#endif
