/* SPDX-License-Identifier: Apache-2.0 */
/* proxies.h: --trusted-proxies: the CIDR blocks of the proxies whose X-Forwarded-For or
 * Forwarded header names the client, and the walk that finds the client in that header. */
#ifndef NAFTIKOD_PROXIES_H
#define NAFTIKOD_PROXIES_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"

#define NK_PROXIES_MAX 64      /* blocks in --trusted-proxies */
#define NK_PROXIES_MAX_HOPS 32 /* header entries looked at, from the right */
#define NK_PROXIES_ADDR_MAX 46 /* INET6_ADDRSTRLEN */

struct nk_cidr {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network address, host bits zero */
    unsigned bits;          /* prefix length */
};

struct nk_proxies {
    size_t n;
    struct nk_cidr v[NK_PROXIES_MAX];
};

/* Parse a comma- or blank-separated list of addresses and ADDR/BITS blocks (IPv4 or IPv6; an
 * address alone is /32 or /128; host bits set are an error) into *out. An empty list gives
 * n = 0. NK_OK; NK_ERR_INVALID with why naming the bad entry; NK_ERR_TOO_LARGE beyond
 * NK_PROXIES_MAX. */
enum nk_rc nk_proxies_parse(const char *list, struct nk_proxies *out, char *why, size_t why_n);

/* True when the numeric address text addr (IPv4, IPv6, IPv4-mapped IPv6) is in one of p's
 * blocks. */
bool nk_proxies_trusted(const struct nk_proxies *p, const char *addr);

/* The client of a request from peer (numeric address text): peer itself unless peer is
 * trusted; then the right-most entry of xff (X-Forwarded-For, every header line joined with
 * ",") that is not trusted, or, without xff, of forwarded (Forwarded, RFC 7239: its for=
 * parameters). Entries are IPv4, IPv6, [IPv6], each with an optional :port; they are written
 * to out in canonical numeric form (an IPv4-mapped IPv6 address as IPv4). The walk stops at an
 * entry that is no address (garbage, "unknown", an obfuscated _identifier, an element without
 * for=): the client is then the last trusted address before it (the proxy that reported it).
 * At most NK_PROXIES_MAX_HOPS entries are looked at: when all are trusted, the left-most of them
 * is the client. Returns true when out differs from peer. out has NK_PROXIES_ADDR_MAX bytes. */
bool nk_proxies_client(const struct nk_proxies *p, const char *peer, const char *xff,
                       const char *forwarded, char out[NK_PROXIES_ADDR_MAX]);

#endif
