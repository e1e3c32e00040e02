/* SPDX-License-Identifier: Apache-2.0 */
/* server.h: what the adapters share while serving: the current context (table + resolved binds,
 * swapped atomically on reload) and the one upstream client. */
#ifndef NAFTIKOD_SERVER_H
#define NAFTIKOD_SERVER_H

#include "naftikod/inbound.h"
#include "naftikod/invoke.h"
#include "naftikod/upstream.h"

struct nk_server;

/* Make a server around ctx (takes a new reference) and up (borrowed; must outlive s).
 * *out: caller frees with nk_server_free(). */
enum nk_rc nk_server_new(struct nk_context *ctx, struct nk_upstream *up, struct nk_server **out);
/* Drop the server's context reference and free s. NULL is a no-op. */
void nk_server_free(struct nk_server *s);
/* Make ctx (takes a new reference) the context in force; requests already running keep the one
 * they took. Thread-safe. */
void nk_server_swap(struct nk_server *s, struct nk_context *ctx);

/* A new reference to the context in force now; callers nk_context_unref() it when their request
 * is done, so a reload never frees a table under an in-flight call. Thread-safe. */
struct nk_context *nk_server_context(struct nk_server *s);
/* Borrowed; valid while s lives. Thread-safe. */
struct nk_upstream *nk_server_upstream(struct nk_server *s);

/* Who may call the adapters, and what they may do. */
struct nk_inbound_policy {
    enum nk_inbound_mode rest, mcp;
    bool read_only;                 /* only GET routes and readOnly tools */
    size_t mcp_max_batch;           /* messages in an MCP batch; 0: NK_MCP_DEFAULT_MAX_BATCH */
    const struct nk_tokens *tokens; /* borrowed; must outlive the server */
    /* REST Host/Origin names allowed besides the loopback ones (nk_inbound_host_allowed);
     * borrowed, must outlive the server */
    const char *const *rest_hosts;
    size_t n_rest_hosts;
};
/* Set before any listener starts; read-only afterwards, except `tokens`, which a SIGHUP reload
 * replaces on the upstream client's event loop thread, where every token check runs. A new
 * server has every mode none. */
void nk_server_set_policy(struct nk_server *s, const struct nk_inbound_policy *p);
const struct nk_inbound_policy *nk_server_policy(const struct nk_server *s);
/* Replace the policy's caller tokens (borrowed; must outlive the server or the next call). Only
 * on the thread where every token check runs (the event loop thread), so that the previous set
 * can be freed once this returns. */
void nk_server_set_tokens(struct nk_server *s, const struct nk_tokens *tokens);

#endif
