/* SPDX-License-Identifier: Apache-2.0 */
/* ratelimit.h: per-client token buckets in a fixed table. Each slot holds its client's address
 * and is found by exact comparison (bounded linear probing from a keyed hash), so no two
 * addresses ever share a bucket, and where an address lands cannot be aimed from outside. */
#ifndef NAFTIKOD_RATELIMIT_H
#define NAFTIKOD_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"

/* Slots tried from an address's home slot before the table counts as full for it. */
#define NK_RATE_PROBE 64U
/* Longest client address kept (a numeric IPv6 address with its NUL). */
#define NK_RATE_ADDR_MAX 46U

struct nk_rate;

/* A table of slots buckets (rounded up to a power of two, at least NK_RATE_PROBE; 0: 4096)
 * refilling per_s tokens a second up to burst (> 0 both), hashed with a key drawn now from the
 * kernel's random source. NK_ERR_INVALID for a bad rate or burst, NK_ERR_NOMEM. *out: caller
 * frees with nk_rate_free(). */
enum nk_rc nk_rate_new(double per_s, double burst, size_t slots, struct nk_rate **out);
/* NULL is a no-op. */
void nk_rate_free(struct nk_rate *t);

/* Take n tokens from client's bucket at time now (seconds, monotonic): all of them, or none and
 * false with *retry_s (>= 1) set to when to try again. A new client gets a full bucket in an
 * empty slot, else in the slot near its home that has been full again for longest (its owner
 * loses nothing: a new bucket would be full too). When every slot it may use belongs to a client
 * still refilling, the table is full for it: false, never a shared bucket. An address longer
 * than NK_RATE_ADDR_MAX - 1 is cut to that length. Thread-safe. */
bool nk_rate_take(struct nk_rate *t, const char *client, unsigned n, double now, unsigned *retry_s);

#endif
