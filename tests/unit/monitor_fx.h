/*
 * A real monitor's set-up in unit tests (test_monitor_jobs.c,
 * test_rdp_ntlm.c): a configuration for a temporary directory with a
 * fresh vault key and no failure delay, and children that are
 * socketpairs.
 */
#ifndef PORTCULLIS_TEST_MONITOR_FX_H
#define PORTCULLIS_TEST_MONITOR_FX_H

#include <sys/socket.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/err.h"
#include "common/vault.h"
#include "sshproxy/monitor.h"

/* The defaults for dir, failures answered at once, a new vault key. */
static inline void mfx_config(struct config *cfg, const char *dir)
{
    assert_int_equal(config_defaults(cfg, dir), ERR_OK);
    cfg->failure_delay_ms = 0;
    assert_int_equal(vault_create_key(cfg->vault_key), ERR_OK);
}

/* A new child of m from 192.0.2.7 with pid (*next_pid)++; *peer is the
 * child's end of its monitor socket. */
static inline struct mchild *mfx_child(struct monitor *m, pid_t *next_pid,
                                       int *peer)
{
    int sv[2];
    struct mchild *c;

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    c = monitor_child_new(m, (*next_pid)++, -1, sv[0], "192.0.2.7:40000");
    assert_non_null(c);
    *peer = sv[1];
    return c;
}

#endif
