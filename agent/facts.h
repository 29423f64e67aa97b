/*
 * What the agent announces about its host (docs/agent-protocol.md §2, "The
 * announcement"): ID, name, host name, OS, kernel, architecture, addresses
 * (non-loopback), version and tags, as one JSON object.
 */
#ifndef PORTCULLIS_AGENT_FACTS_H
#define PORTCULLIS_AGENT_FACTS_H

#include <stddef.h>

#define FACTS_JSON_MAX 16384 /* the protocol's limit */

/* Builds the announcement into a heap string (*out, freed by the caller).
 * name NULL: the host name. Facts that cannot be read are left out. */
int facts_announcement(const char *id, const char *name,
                       const char *const *tags, size_t ntags, char **out);

#endif
