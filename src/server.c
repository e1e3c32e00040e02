/* SPDX-License-Identifier: Apache-2.0 */
/* server.c: the state the adapters share while serving: the context in force (swapped on
 * reload), the upstream client, the inbound policy. */
#include "naftikod/server.h"

#include <pthread.h>
#include <stdlib.h>

struct nk_server {
    pthread_mutex_t mu; /* guards ctx */
    struct nk_context *ctx;
    struct nk_upstream *up; /* borrowed */
    /* Set before the listeners start; then read-only, except policy.tokens, which a reload
     * swaps on the event loop thread (nk_server_set_tokens). */
    struct nk_inbound_policy policy;
};

void nk_server_set_policy(struct nk_server *s, const struct nk_inbound_policy *p)
{
    s->policy = *p;
}

const struct nk_inbound_policy *nk_server_policy(const struct nk_server *s)
{
    return &s->policy;
}

void nk_server_set_tokens(struct nk_server *s, const struct nk_tokens *tokens)
{
    s->policy.tokens = tokens;
}

enum nk_rc nk_server_new(struct nk_context *ctx, struct nk_upstream *up, struct nk_server **out)
{
    struct nk_server *s = calloc(1, sizeof(*s));

    *out = NULL;
    if (s == NULL)
        return NK_ERR_NOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->ctx = nk_context_ref(ctx);
    s->up = up;
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

struct nk_upstream *nk_server_upstream(struct nk_server *s)
{
    return s->up;
}
