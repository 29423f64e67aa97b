/*
 * `portcullis serve`: the composition root. It alone knows every
 * subsystem of the running server and wires them together: the SSH
 * proxy's spawner and monitor (sshproxy/), the agent hub and tunnels
 * (hub/), the HTTP side (http/), the store-change notices from the CLI
 * (common/notify.h) and the recordings' retention (record/). No other
 * folder includes this one's headers except the CLI, which starts it.
 */
#ifndef PORTCULLIS_DAEMON_H
#define PORTCULLIS_DAEMON_H

#include "common/config.h"

/* Runs until SIGTERM or SIGINT. Returns ERR_OK after a clean shutdown or
 * an ERR_* code (and logs one line) if it cannot start: config, store,
 * vault key, host key or listener. */
int daemon_run(const struct config *cfg);

#endif
