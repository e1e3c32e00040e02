/* SPDX-License-Identifier: Apache-2.0 */
/* mcp_core.h: the MCP protocol engine, transport-free. It takes one HTTP exchange (method,
 * selected headers, body) or one stdio line, speaks JSON-RPC 2.0 for both protocol eras
 * (handshake: 2024-11-05 .. 2025-11-25; stateless: 2026-07-28), and answers through a callback,
 * now or later (tools/call completes on the upstream thread). mcp.c and mcp_stdio.c wrap it. */
#ifndef NAFTIKOD_MCP_CORE_H
#define NAFTIKOD_MCP_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "naftikod/common.h"
#include "naftikod/invoke.h"
#include "naftikod/keyring.h"
#include "naftikod/optable.h"
#include "naftikod/principal.h"

#define NK_MCP_MODERN_VERSION "2026-07-28"
#define NK_MCP_LATEST_HANDSHAKE_VERSION "2025-11-25"
/* Absent MCP-Protocol-Version header on a handshake-era HTTP request. */
#define NK_MCP_DEFAULT_HTTP_VERSION "2025-03-26"
#define NK_MCP_SESSION_ID_MAX 96
/* Most messages in one JSON-RPC batch (2025-03-26); a larger batch is refused whole. */
#define NK_MCP_DEFAULT_MAX_BATCH 64
/* JSON-RPC error code of a batched tools/call refused by the caller's rate limit. */
#define NK_MCP_RATE_LIMITED (-32000)
/* JSON-RPC error code of a tools/call a permission rule refused (nk_mcp_call_fn returned
 * NK_ERR_FORBIDDEN); the message names the missing permission. -32000..-32019 are left to
 * implementations by the MCP specification. */
#define NK_MCP_FORBIDDEN (-32001)

struct nk_mcp_options {
    const unsigned char *session_key; /* HMAC key for session ids; NULL: 32 random bytes chosen
                                         now (then ids only verify in this process). Copied. */
    size_t session_key_len;
    const struct nk_keyring *session_keys; /* non-NULL: these keys instead (the first signs,
                                              each verifies); copied */
    bool no_delete; /* replicas: DELETE answers 405 (a session is never ended here, so no
                       replica can hold an end the others do not know) */
    const char *const *allowed_hosts; /* extra Host/Origin host names (no port) besides
                                         localhost, 127.0.0.1 and [::1]; copied */
    size_t n_allowed_hosts;
    size_t page_size;       /* tools/list page size; 0: 100 */
    unsigned session_ttl_s; /* session lifetime; 0: 86400 */
    size_t max_ended;       /* ended session ids remembered; 0: 4096 */
    long tools_ttl_ms;      /* ttlMs hint on stateless tools/list; <= 0: 60000 */
};

/* Engine state: session key, the ended-session set, options. Thread-safe. */
struct nk_mcp;

/* NK_OK, NK_ERR_NOMEM, NK_ERR_IO (no random source). */
enum nk_rc nk_mcp_new(const struct nk_mcp_options *opts, struct nk_mcp **out, struct nk_error *err);
/* Put ring (copied; 1..NK_KEYRING_MAX keys) in force: ids are signed with its first key from
 * now on and verify under any of its keys. Any thread. */
void nk_mcp_set_keys(struct nk_mcp *m, const struct nk_keyring *ring);
/* Why a handshake-era request's session id was refused. */
enum nk_mcp_refused {
    NK_MCP_REFUSED_MISSING, /* no Mcp-Session-Id (400) */
    NK_MCP_REFUSED_UNKNOWN, /* forged, signed with a key not in force, expired, another caller's */
    NK_MCP_REFUSED_ENDED,   /* ended with DELETE here */
    NK_MCP_REFUSED_N
};
/* How many requests were refused for that reason since the engine started. Any thread. */
unsigned long long nk_mcp_sessions_refused(struct nk_mcp *m, enum nk_mcp_refused why);
/* Copy the fingerprints of the keys in force, signing key first, into fp (at most max); returns
 * how many keys there are. Any thread. */
size_t nk_mcp_key_fingerprints(struct nk_mcp *m, char (*fp)[17], size_t max);
void nk_mcp_free(struct nk_mcp *m); /* NULL is a no-op; no exchange may be pending */

/* A finished tool call; r is borrowed for the call (the backend frees it afterwards). The engine
 * may take r->raw (it then sets r->raw to NULL): a passed-through answer is not copied. */
typedef void (*nk_mcp_done_fn)(void *done_ud, struct nk_result *r);

/* Start one tool call: like nk_invoke with NK_ARGS_JSON. On NK_OK done(done_ud, result) is
 * called exactly once, from any thread, possibly before this returns. NK_ERR_INVALID with
 * err set: the arguments were refused (becomes a tool result with isError). NK_ERR_FORBIDDEN
 * with err set: a permission rule refused the call (becomes the JSON-RPC error
 * NK_MCP_FORBIDDEN with err's message). args borrowed. */
typedef enum nk_rc (*nk_mcp_call_fn)(void *ud, const struct nk_exposed *tool, json_t *args,
                                     nk_mcp_done_fn done, void *done_ud, struct nk_error *err);

/* Abort the upstream transfer of the call whose done_ud had nk_mcp_call_tag() == tag (the
 * client cancelled it; its done still comes, and the engine drops the answer). Any thread;
 * must not block or call back into the engine. */
typedef void (*nk_mcp_cancel_fn)(void *ud, uint64_t tag);

/* The cancel tag of the call whose done_ud the engine passed to nk_mcp_call_fn (never 0). */
uint64_t nk_mcp_call_tag(const void *done_ud);

/* The nk_mcp_call_fn of both transports: nk_invoke(ctx, up, tool, args, NK_ARGS_JSON,
 * request_id) with the result handed to done and freed after it returns. ctx and up borrowed;
 * request_id may be NULL; done_ud must be the one the engine passed to nk_mcp_call_fn (the call
 * keeps done in it, so that no allocation is needed here). The transfer is cancellable with
 * nk_upstream_cancel(up, nk_mcp_call_tag(done_ud)). */
enum nk_rc nk_mcp_invoke(struct nk_context *ctx, struct nk_upstream *up,
                         const struct nk_exposed *tool, json_t *args, const char *request_id,
                         nk_mcp_done_fn done, void *done_ud, struct nk_error *err);

/* Who calls, and under which rules (both transports). */
struct nk_mcp_access {
    const struct nk_authz *authz;   /* borrowed; the permission rules, or NULL: every tool */
    const struct nk_principal *who; /* borrowed; NULL: anonymous */
    const char *request_id;         /* may be NULL; copied */
    const char *adapter; /* the adapter's namespace for the audit trail when the tool has no
                            adapter_ns (an adapter's own ops, as stdio serves them) */
};

/* nk_mcp_invoke behind the permission rules and with the audit trail (audit.h): a call the
 * rules refuse returns NK_ERR_FORBIDDEN with the missing permission in err (and, when an OAuth
 * scope would allow it, that scope in missing_scope, 128 bytes, unless NULL) and is never sent;
 * every call that gets here is recorded once (denied, refused arguments, or at its answer).
 * Otherwise as nk_mcp_invoke. */
enum nk_rc nk_mcp_invoke_access(struct nk_context *ctx, struct nk_upstream *up,
                                const struct nk_mcp_access *acc, const struct nk_exposed *tool,
                                json_t *args, nk_mcp_done_fn done, void *done_ud,
                                char missing_scope[128], struct nk_error *err);

/* Charge one more upstream call to the caller (every tools/call of a batch after the first,
 * which its request already paid for): true to go ahead; false with *retry_s set refuses it. */
typedef bool (*nk_mcp_charge_fn)(void *ud, unsigned *retry_s);

/* What one exchange serves. Copied; adapter and call_ud must stay valid until the reply. */
struct nk_mcp_backend {
    const struct nk_adapter *adapter; /* borrowed; NULL: no tools */
    nk_mcp_call_fn call;
    void *call_ud;
    bool read_only;          /* list and call only tools whose hints say readOnly */
    nk_mcp_charge_fn charge; /* optional (NULL: batched calls cost nothing more); gets call_ud */
    size_t max_batch;        /* messages in a batch; 0: NK_MCP_DEFAULT_MAX_BATCH */
    nk_mcp_cancel_fn cancel; /* optional: called with call_ud */
    /* optional: may the caller call this tool at all (permission rules)? tools/list shows
     * only those; NULL: every tool. Gets call_ud. */
    bool (*visible)(void *ud, const struct nk_exposed *tool);
    bool private_list; /* the list differs between callers: 2026-07-28 cacheScope "private" */
    /* optional: called with call_ud once per exchange, for its first request or notification:
     * the method, and for tools/call the tool's name as the client wrote it (else NULL); both
     * borrowed for the call (the access line names them) */
    void (*note)(void *ud, const char *method, const char *tool);
};

/* One HTTP request on the MCP endpoint; every pointer borrowed for the call. Header values
 * NULL when absent. */
struct nk_mcp_http_in {
    const char *method; /* "POST", "GET", "DELETE", ... */
    const char *host;
    const char *origin;
    const char *session_id;       /* Mcp-Session-Id */
    const char *protocol_version; /* MCP-Protocol-Version */
    const char *mcp_method;       /* Mcp-Method */
    const char *mcp_name;         /* Mcp-Name */
    const char *accept;           /* Accept (GET: a stream needs text/event-stream) */
    const char *caller; /* the authenticated caller (inbound auth), NULL/"" without: sessions are
                           bound to it */
    const char *body;
    size_t body_len;
};

struct nk_mcp_reply {
    unsigned status; /* HTTP status (stdio ignores it) */
    char *body;      /* owned by the reply; NULL: no body (stdio: write nothing) */
    size_t len;
    bool json;                              /* body is application/json */
    char session_id[NK_MCP_SESSION_ID_MAX]; /* non-empty: send Mcp-Session-Id */
    const char *allow;                      /* non-NULL: send Allow (static string) */
    /* A handshake-era GET with a valid session and Accept: text/event-stream: open the
     * server-to-client SSE stream of session_id (status 200, no body). Given synchronously,
     * inside nk_mcp_http(). */
    bool stream;
};

/* Called exactly once per exchange, from any thread. r is borrowed for the call; the callee
 * may take r->body by setting it to NULL. */
typedef void (*nk_mcp_reply_fn)(void *ud, struct nk_mcp_reply *r);

/* Answer one HTTP exchange. */
void nk_mcp_http(struct nk_mcp *m, const struct nk_mcp_backend *b, const struct nk_mcp_http_in *in,
                 nk_mcp_reply_fn reply, void *ud);

/* The client closed the connection of the HTTP exchange whose reply ud is ud, before the reply.
 * In the 2026-07-28 era that cancels the request: its tool call gets no response and its
 * upstream transfer is cancelled through the backend's cancel. Handshake-era exchanges are not
 * affected (a disconnect is not a cancellation there). Any thread; ud is only compared. */
void nk_mcp_http_closed(struct nk_mcp *m, const void *ud);

/* One stdio connection's state (caller storage, zero-initialised): the version negotiated by
 * initialize. Used only from the thread that reads the connection. */
struct nk_mcp_conn {
    char version[16];
};

/* Answer one newline-delimited message read from stdio (line without its newline). The reply
 * body is NULL when nothing is to be written (notifications, client responses). */
void nk_mcp_line(struct nk_mcp *m, const struct nk_mcp_backend *b, struct nk_mcp_conn *conn,
                 const char *line, size_t len, nk_mcp_reply_fn reply, void *ud);

/* Session ids (exposed for tests): mint a new one into out; check one. An id is bound to the
 * caller it was minted for (NULL or "": no inbound authentication): for another caller it is
 * INVALID, like an unknown id. */
enum nk_rc nk_mcp_session_new(struct nk_mcp *m, const char *caller,
                              char out[NK_MCP_SESSION_ID_MAX]);
enum nk_mcp_session_state { NK_MCP_SESSION_VALID, NK_MCP_SESSION_INVALID, NK_MCP_SESSION_ENDED };
enum nk_mcp_session_state nk_mcp_session_check(struct nk_mcp *m, const char *id,
                                               const char *caller);
/* Mark id ended (only a valid id is remembered). Returns the state id had before. */
enum nk_mcp_session_state nk_mcp_session_end(struct nk_mcp *m, const char *id, const char *caller);

/* Host/Origin allow-list check (DNS-rebinding protection). host may carry a port; origin is
 * "scheme://host[:port]". Either may be NULL (absent). */
bool nk_mcp_host_allowed(const struct nk_mcp *m, const char *host, const char *origin);

#endif
