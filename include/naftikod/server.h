/* SPDX-License-Identifier: Apache-2.0 */
/* server.h: what the adapters share while serving: the current context (table + resolved binds,
 * swapped atomically on reload, one pointer for every loop) and the upstream client of each
 * loop. */
#ifndef NAFTIKOD_SERVER_H
#define NAFTIKOD_SERVER_H

#include "naftikod/inbound.h"
#include "naftikod/invoke.h"
#include "naftikod/upstream.h"

struct nk_server;

/* Upstream clients a server holds at most (one per event loop). */
#define NK_SERVER_MAX_UPSTREAMS 64

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
/* The upstream client of the calling thread's loop (the one added for that loop), else the
 * first one. Borrowed; valid while s lives. Thread-safe. */
struct nk_upstream *nk_server_upstream(struct nk_server *s);
/* One more upstream client, for one more loop (borrowed; must outlive s). Before any listener
 * starts. NK_ERR_TOO_LARGE beyond NK_SERVER_MAX_UPSTREAMS clients. */
enum nk_rc nk_server_add_upstream(struct nk_server *s, struct nk_upstream *up);
/* The clients in the order they were given (the one of nk_server_new() first). */
size_t nk_server_n_upstreams(const struct nk_server *s);
struct nk_upstream *nk_server_upstream_at(struct nk_server *s, size_t i); /* borrowed, or NULL */

/* Who may call the adapters, and what they may do. */
struct nk_inbound_policy {
    enum nk_inbound_mode rest, mcp;
    bool read_only;                 /* only GET routes and readOnly tools */
    size_t mcp_max_batch;           /* messages in an MCP batch; 0: NK_MCP_DEFAULT_MAX_BATCH */
    const struct nk_tokens *tokens; /* borrowed; the start-up set (nk_server_tokens() reads
                                       the one in force) */
    /* REST Host/Origin names allowed besides the loopback ones (nk_inbound_host_allowed);
     * borrowed, must outlive the server */
    const char *const *rest_hosts;
    size_t n_rest_hosts;
};
/* Set before any listener starts; read-only afterwards, except `tokens`, which a SIGHUP reload
 * replaces (nk_server_set_tokens). A new server has every mode none. */
void nk_server_set_policy(struct nk_server *s, const struct nk_inbound_policy *p);
const struct nk_inbound_policy *nk_server_policy(const struct nk_server *s);
/* Replace the policy's caller tokens (borrowed; must outlive the server or the next call).
 * Any thread: token checks read the pointer atomically; the previous set may be freed once
 * every loop where checks run has finished a call posted after this one (nk_loop_run_sync on
 * each), since a check never spans two loop turns. */
void nk_server_set_tokens(struct nk_server *s, const struct nk_tokens *tokens);
/* The caller tokens in force (borrowed: valid until the loop turn that reads them ends, see
 * nk_server_set_tokens). Any thread. */
const struct nk_tokens *nk_server_tokens(struct nk_server *s);

/* The permission rules in force (authz.h), or NULL: no permissions file, every caller may use
 * every operation. Same lifetime rule as the tokens: a decision runs within one loop turn, so
 * the previous rules may be freed once every loop has finished a turn after the swap. */
struct nk_authz;
void nk_server_set_authz(struct nk_server *s, const struct nk_authz *az);
const struct nk_authz *nk_server_authz(struct nk_server *s); /* borrowed; any thread */

#endif
