/*
 * Which [http] listen addresses may serve plain HTTP.
 *
 * Plain HTTP carries passwords and bearer tokens in the clear, so it is
 * for development on the machine itself only: a loopback listen address
 * (127.0.0.0/8, ::1, ::ffff:127.x.y.z, "localhost"). Anything else (a
 * public or private address, the wildcard 0.0.0.0 or ::, another host
 * name, an interface name) needs TLS, or `[http] allow_plain_http = true`
 * for an operator who terminates TLS in front of Portcullis.
 *
 * Both functions are pure (no resolver, no sockets), so `serve` can refuse
 * a configuration before it binds anything, and the unit tests can run
 * them without a network.
 */
#ifndef PORTCULLIS_COMMON_ADDR_H
#define PORTCULLIS_COMMON_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"

/* True if addr is a literal loopback address or "localhost" (any case);
 * an IPv6 literal may be in brackets. NULL or "" is not loopback. */
bool addr_is_loopback(const char *addr);

/* ERR_OK if cfg may start its HTTP listener as configured: the listener
 * is off (port 0), TLS is set (tls_cert), the listen address is loopback,
 * or allow_plain_http is true. Otherwise ERR_CONFIG with one line saying
 * why and what to do in why. */
int addr_check_plain_http(const struct config *cfg, char *why, size_t whylen);

#endif
