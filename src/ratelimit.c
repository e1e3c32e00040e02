/* SPDX-License-Identifier: Apache-2.0 */
/* ratelimit.c: per-client token buckets: exact address keys, SipHash-2-4 with a random key. */
#include "naftikod/ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SLOTS 4096U

struct slot {
    char addr[NK_RATE_ADDR_MAX]; /* "" while unused */
    double tokens;
    double last; /* when tokens was computed */
};

struct nk_rate {
    pthread_mutex_t mu;
    double per_s;
    double burst;
    uint64_t k0, k1; /* hash key */
    size_t mask;     /* slots - 1 */
    struct slot *slots;
};

static uint64_t rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64U - b));
}

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl(v[1], 13) ^ v[0];
    v[0] = rotl(v[0], 32);
    v[2] += v[3];
    v[3] = rotl(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = rotl(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = rotl(v[1], 17) ^ v[2];
    v[2] = rotl(v[2], 32);
}

static void sip_block(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

/* SipHash-2-4 (Aumasson and Bernstein) of s[0..n), little-endian words. */
static uint64_t siphash(uint64_t k0, uint64_t k1, const unsigned char *s, size_t n)
{
    uint64_t v[4] = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                     k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    uint64_t m;
    size_t i, j;

    for (i = 0; i + 8 <= n; i += 8) {
        m = 0;
        for (j = 0; j < 8; j++)
            m |= (uint64_t)s[i + j] << (8 * j);
        sip_block(v, m);
    }
    m = (uint64_t)(n & 0xff) << 56;
    for (j = 0; i + j < n; j++)
        m |= (uint64_t)s[i + j] << (8 * j);
    sip_block(v, m);
    v[2] ^= 0xff;
    for (j = 0; j < 4; j++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

enum nk_rc nk_rate_new(double per_s, double burst, size_t slots, struct nk_rate **out)
{
    struct nk_rate *t = NULL;
    uint64_t key[2];
    size_t n = NK_RATE_PROBE;

    *out = NULL;
    if (!(per_s > 0) || !(burst > 0) || !isfinite(per_s) || !isfinite(burst))
        return NK_ERR_INVALID;
    if (slots == 0)
        slots = DEFAULT_SLOTS;
    while (n < slots && n <= SIZE_MAX / 2 / sizeof(struct slot))
        n *= 2;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NK_ERR_NOMEM;
    t->slots = calloc(n, sizeof(*t->slots));
    if (t->slots == NULL) {
        free(t);
        return NK_ERR_NOMEM;
    }
    if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
        /* No random source: still distinct per process and per table, if guessable. */
        key[0] = (uint64_t)getpid() << 32 ^ (uint64_t)time(NULL);
        key[1] = (uint64_t)(uintptr_t)t ^ (uint64_t)clock();
    }
    t->k0 = key[0];
    t->k1 = key[1];
    t->mask = n - 1;
    t->per_s = per_s;
    t->burst = burst;
    pthread_mutex_init(&t->mu, NULL);
    *out = t;
    return NK_OK;
}

void nk_rate_free(struct nk_rate *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t);
}

/* Tokens in s at now (capped at burst). */
static double level(const struct nk_rate *t, const struct slot *s, double now)
{
    double v = s->tokens + (now > s->last ? now - s->last : 0) * t->per_s;

    return v < t->burst ? v : t->burst;
}

/* Whole seconds, rounded up, at least 1. */
static unsigned whole_seconds(double s)
{
    unsigned u;

    if (!(s > 1.0))
        return 1U;
    if (s > 86400.0)
        return 86400U;
    u = (unsigned)s;
    return (double)u < s ? u + 1U : u;
}

bool nk_rate_take(struct nk_rate *t, const char *client, unsigned n, double now, unsigned *retry_s)
{
    char key[NK_RATE_ADDR_MAX];
    struct slot *s, *found = NULL, *empty = NULL, *spare = NULL;
    double soonest = INFINITY, v;
    size_t i, home;
    bool ok;

    memset(key, 0, sizeof(key));
    strncpy(key, client != NULL ? client : "", sizeof(key) - 1);
    home = (size_t)siphash(t->k0, t->k1, (const unsigned char *)key, strlen(key));
    pthread_mutex_lock(&t->mu);
    for (i = 0; i < NK_RATE_PROBE; i++) {
        s = &t->slots[(home + i) & t->mask];
        if (s->addr[0] == '\0') {
            if (empty == NULL)
                empty = s;
            continue;
        }
        if (strcmp(s->addr, key) == 0) {
            found = s;
            break;
        }
        /* Full again: its owner would get the same full bucket back. */
        v = level(t, s, now);
        if (v >= t->burst) {
            if (spare == NULL || s->last < spare->last)
                spare = s;
        } else if ((t->burst - v) / t->per_s < soonest) {
            soonest = (t->burst - v) / t->per_s;
        }
    }
    if (found == NULL) {
        found = empty != NULL ? empty : spare;
        if (found == NULL) {
            /* Every slot this address may use is still refilling: a full table limits. */
            *retry_s = whole_seconds(soonest);
            pthread_mutex_unlock(&t->mu);
            return false;
        }
        memcpy(found->addr, key, sizeof(key));
        found->tokens = t->burst;
        found->last = now;
    }
    found->tokens = level(t, found, now);
    if (now > found->last)
        found->last = now;
    ok = found->tokens >= (double)n;
    if (ok)
        found->tokens -= (double)n;
    else
        *retry_s = whole_seconds(((double)n - found->tokens) / t->per_s);
    pthread_mutex_unlock(&t->mu);
    return ok;
}
