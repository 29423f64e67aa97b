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

/*
 * rdp_child.c is not part of the portcullis program: it is the module
 * portcullis-rdp.so (meson.build), the one part that needs FreeRDP, which
 * with its codecs is over a hundred shared libraries and three quarters
 * of the program's start-up time. Only a server with [rdp] on loads it
 * (rdp_server.c, before the spawner forks; its calls into the program
 * resolve against the program's exported symbols), so the CLI and a
 * server without RDP never map FreeRDP. The module exports one object
 * of this type under RDP_MODULE_SYMBOL; the loader refuses a module of
 * another version or with another struct rdp_child_args.
 */
#define RDP_MODULE_FILE "portcullis-rdp.so"
#define RDP_MODULE_SYMBOL "rdp_module"

struct rdp_module {
    const char *version; /* PORTCULLIS_VERSION */
    size_t args_size;    /* sizeof(struct rdp_child_args) */
    int (*run)(const struct rdp_child_args *a);
};

extern const struct rdp_module rdp_module;

#endif
