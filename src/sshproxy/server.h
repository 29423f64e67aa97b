/*
 * The access server's main process (`portcullis serve`): owns the SSH proxy
 * listener, the store and the vault key, forks one sandboxed child per
 * proxy connection and answers the children's requests (see monitor.h and
 * docs/architecture.md).
 */
#ifndef PORTCULLIS_SERVER_H
#define PORTCULLIS_SERVER_H

#include "common/config.h"

/* Runs until SIGTERM or SIGINT. Returns ERR_OK after a clean shutdown or
 * an ERR_* code (and logs one line) if it cannot start: config, store,
 * vault key, host key or listener. */
int server_run(const struct config *cfg);

#endif
