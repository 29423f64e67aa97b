/*
 * Address filters: comma-separated lists of IPv4/IPv6 networks
 * ("10.0.0.0/8,192.0.2.7,2001:db8::/32"; an address alone is a full-length
 * prefix). Used by API tokens' address filters (http/), tunnels' listener
 * ACLs (hub/tunnel_def.c) and anything else that admits by address. Pure
 * functions: a string in, a yes or no out; never an allocation.
 */
#ifndef PORTCULLIS_CIDR_H
#define PORTCULLIS_CIDR_H

#include <stdbool.h>

/* true if s is a non-empty comma-separated list of IPv4/IPv6 CIDRs (or
 * addresses), no empty entries. */
bool cidr_list_valid(const char *s);
/* true if the address ip lies in one of the CIDRs of list (entries that
 * do not parse match nothing; an IPv4 address on a dual-stack socket,
 * ::ffff:a.b.c.d, matches as IPv4). NULL matches nothing. */
bool cidr_list_match(const char *list, const char *ip);
/* Whether the list "inner" allows no more than "outer" does: every CIDR
 * of inner lies inside one of outer's. An empty list allows everything:
 * an empty outer contains anything, an empty inner is contained only by
 * an empty outer. A malformed inner is never within. */
bool cidr_list_within(const char *inner, const char *outer);

#endif
