/* SPDX-License-Identifier: Apache-2.0 */
/* server.c: the state the adapters share while serving: the context in force (swapped on
 * reload), the upstream client, the inbound policy. */
#include "naftikod/server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "naftikod/loop.h"

struct nk_server {
    pthread_mutex_t mu; /* guards ctx */
    struct nk_context *ctx;
    /* borrowed; one per loop, added before the listeners start, then read-only */
    struct nk_upstream *up[NK_SERVER_MAX_UPSTREAMS];
    size_t n_up;
    /* Set before the listeners start; then read-only. policy.tokens is the start-up set only:
     * the set in force is `tokens`, which a reload swaps while every loop reads it. */
    struct nk_inbound_policy policy;
    _Atomic(const struct nk_tokens *) tokens;
    _Atomic(const struct nk_authz *) authz;
};

void nk_server_set_authz(struct nk_server *s, const struct nk_authz *az)
{
    atomic_store(&s->authz, az);
}

const struct nk_authz *nk_server_authz(struct nk_server *s)
{
    return atomic_load_explicit(&s->authz, memory_order_acquire);
}

void nk_server_set_policy(struct nk_server *s, const struct nk_inbound_policy *p)
{
    s->policy = *p;
    atomic_store(&s->tokens, p->tokens);
}

const struct nk_inbound_policy *nk_server_policy(const struct nk_server *s)
{
    return &s->policy;
}

void nk_server_set_tokens(struct nk_server *s, const struct nk_tokens *tokens)
{
    atomic_store(&s->tokens, tokens);
}

const struct nk_tokens *nk_server_tokens(struct nk_server *s)
{
    return atomic_load_explicit(&s->tokens, memory_order_acquire);
}

enum nk_rc nk_server_new(struct nk_context *ctx, struct nk_upstream *up, struct nk_server **out)
{
    struct nk_server *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (s == NULL)
        return NK_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->ctx = nk_context_ref(ctx);
    s->up[0] = up;
    s->n_up = 1;
    atomic_init(&s->tokens, NULL);
    atomic_init(&s->authz, NULL);
    *out = s;
    return NK_OK;
}

void nk_server_free(struct nk_server *s)
{
    if (s == NULL)
        return;
    nk_context_unref(s->ctx);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void nk_server_swap(struct nk_server *s, struct nk_context *ctx)
{
    struct nk_context *old;

    nk_context_ref(ctx);
    pthread_mutex_lock(&s->mu);
    old = s->ctx;
    s->ctx = ctx;
    pthread_mutex_unlock(&s->mu);
    nk_context_unref(old);
}

struct nk_context *nk_server_context(struct nk_server *s)
{
    struct nk_context *c;

    pthread_mutex_lock(&s->mu);
    c = nk_context_ref(s->ctx);
    pthread_mutex_unlock(&s->mu);
    return c;
}

enum nk_rc nk_server_add_upstream(struct nk_server *s, struct nk_upstream *up)
{
    if (s->n_up == NK_SERVER_MAX_UPSTREAMS)
        return NK_ERR_TOO_LARGE;
    s->up[s->n_up++] = up;
    return NK_OK;
}

size_t nk_server_n_upstreams(const struct nk_server *s)
{
    return s->n_up;
}

struct nk_upstream *nk_server_upstream_at(struct nk_server *s, size_t i)
{
    return i < s->n_up ? s->up[i] : NULL;
}

struct nk_upstream *nk_server_upstream(struct nk_server *s)
{
    size_t i;

    /* At most NK_SERVER_MAX_UPSTREAMS comparisons of a thread id; one with a single loop. */
    for (i = 1; i < s->n_up; i++)
        if (nk_loop_on_loop(nk_upstream_loop(s->up[i])))
            return s->up[i];
    return s->up[0];
}
