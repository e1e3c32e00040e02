/* SPDX-License-Identifier: Apache-2.0 */
/* invoke.h: one call of an exposed operation: check arguments, build the upstream request from
 * the table (URL, path/query/header/cookie/body placement, credentials), send it through the
 * shared client, and map the answer. REST and MCP both dispatch through here. */
#ifndef NAFTIKOD_INVOKE_H
#define NAFTIKOD_INVOKE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "naftikod/common.h"
#include "naftikod/optable.h"
#include "naftikod/upstream.h"

/* A server variable given on the command line (`--var central-host=...`). */
struct nk_var {
    const char *name;
    const char *value;
};

/* A table plus what it needs at run time: bind values (environment or files) and server
 * variables for each baseUri. Immutable, reference counted, thread-safe to share. */
struct nk_context;

/* Resolve every bind and every baseUri variable of t. A `{name}` in a baseUri is filled from
 * vars, else from the environment variable NAME upper-cased with '-' -> '_' (central-host ->
 * CENTRAL_HOST). Every missing bind or variable is reported to diags (naming the variable and
 * the file:line of its use) and the call fails with NK_ERR_INVALID. Takes a new reference to t.
 * Values are copied; secrets are wiped when the context is freed. */
enum nk_rc nk_context_new(struct nk_optable *t, const struct nk_var *vars, size_t n_vars,
                          struct nk_diags *diags, struct nk_context **out);
struct nk_context *nk_context_ref(struct nk_context *c);
void nk_context_unref(struct nk_context *c);
/* Borrowed; valid while c lives. */
const struct nk_optable *nk_context_table(const struct nk_context *c);

/* The expanded baseUri of t->consumers[consumer] (no trailing '/'), borrowed; NULL when out of
 * range. May embed bind values: never log or return it. */
const char *nk_context_base_uri(const struct nk_context *c, size_t consumer);
/* The document credential of adapter a (one of c's table's adapters, e.g. a listener's
 * members[0]) resolved from the binds, or NULL when a declares none. Borrowed from c. */
struct nk_doc_secret;
const struct nk_doc_secret *nk_context_doc_secret(const struct nk_context *c,
                                                  const struct nk_adapter *a);

enum nk_result_kind {
    NK_RES_OK,             /* upstream 2xx; json is the mapped output */
    NK_RES_UPSTREAM_ERROR, /* upstream answered non-2xx; status, raw body, json if it parsed */
    NK_RES_UNREACHABLE,    /* connect/DNS/TLS/reset: REST 502 */
    NK_RES_TIMEOUT,        /* REST 504 */
    NK_RES_BAD_UPSTREAM,   /* 2xx but the body is not what the spec says (e.g. not JSON), or
                              too large: REST 502 */
    NK_RES_INTERNAL        /* out of memory etc.: REST 500 */
};

struct nk_result {
    enum nk_result_kind kind;
    long status;  /* upstream status when one arrived, else 0 */
    json_t *json; /* new reference or NULL: mapped output (OK) / upstream error body */
    char *raw;    /* upstream raw body (NUL-terminated) or NULL */
    size_t raw_len;
    /* OK only: the output mapping passes the whole answer through (none, or `$.` with no shape),
     * so no tree was built: raw is the output, one well-formed JSON value in valid UTF-8
     * (checked by nk_invoke_check_json), to hand on byte for byte; json is NULL. */
    bool raw_is_output;
    char *content_type; /* upstream content type or NULL */
    char message[512];  /* for humans and models, e.g. "upstream answered 400: token name
                           cannot be empty" / "upstream unreachable: connection refused" */
    double seconds;     /* upstream time */
};
/* Frees everything in r and r itself; NULL is a no-op. */
void nk_result_free(struct nk_result *r);

/* How arguments arrive. REST query/path/header values are strings and are coerced to the
 * declared type ("true" -> true for boolean, "12" -> 12 for integer); MCP arguments are
 * JSON-typed and must match. */
enum nk_args_mode { NK_ARGS_STRINGS, NK_ARGS_JSON };

/* Called exactly once per successful nk_invoke, on the upstream loop thread. Takes r (free with
 * nk_result_free). */
typedef void (*nk_invoke_done_fn)(void *ud, struct nk_result *r);

/* Start one call of op (an exposed operation of ctx's table) with args (an object; borrowed).
 * A mock (op->target NULL) sends nothing: its answer is built from args and handed to done on
 * the loop thread of up, like an upstream answer.
 * Argument problems are found before anything is sent: NK_ERR_INVALID with a message naming the
 * argument in err (e.g. "parameter 'revoked' must be a boolean, got \"maybe\""), and the
 * callback is not called. request_id (may be NULL) is sent upstream as X-Request-Id.
 * On NK_OK, done is called exactly once later. */
enum nk_rc nk_invoke(struct nk_context *ctx, struct nk_upstream *up, const struct nk_exposed *op,
                     json_t *args, enum nk_args_mode mode, const char *request_id,
                     nk_invoke_done_fn done, void *ud, struct nk_error *err);
/* nk_invoke, but the caller's own Authorization value (REST passthrough mode) goes upstream in
 * place of the consumer's authentication: no bind is expanded, consumer headers that use one
 * are left out. caller_auth NULL: the same as nk_invoke. */
enum nk_rc nk_invoke_as(struct nk_context *ctx, struct nk_upstream *up, const struct nk_exposed *op,
                        json_t *args, enum nk_args_mode mode, const char *request_id,
                        const char *caller_auth, nk_invoke_done_fn done, void *ud,
                        struct nk_error *err);

/* nk_invoke, with the upstream transfer tagged cancel_tag (0: none) so that
 * nk_upstream_cancel(up, cancel_tag) aborts it; done is still called (unreachable: cancelled). */
enum nk_rc nk_invoke_cancellable(struct nk_context *ctx, struct nk_upstream *up,
                                 const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                                 const char *request_id, uint64_t cancel_tag,
                                 nk_invoke_done_fn done, void *ud, struct nk_error *err);

/* nk_invoke with everything: the caller's Authorization (passthrough, or NULL) and a cancel tag
 * (0: none). An orchestrated operation (steps) runs every upstream transfer under the tag, so
 * one nk_upstream_cancel() ends the whole call (done gets the error of the step it stopped). */
enum nk_rc nk_invoke_tagged(struct nk_context *ctx, struct nk_upstream *up,
                            const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                            const char *request_id, const char *caller_auth, uint64_t cancel_tag,
                            nk_invoke_done_fn done, void *ud, struct nk_error *err);
/* A cancel tag no other call of this process uses (never 0). Thread-safe. */
uint64_t nk_invoke_new_tag(void);

/* Build (without sending) the upstream request for op and args: what nk_invoke would send.
 * For tests and `naftikod` dry runs. */
enum nk_rc nk_invoke_build(struct nk_context *ctx, const struct nk_exposed *op, json_t *args,
                           enum nk_args_mode mode, const char *request_id,
                           struct nk_upstream_request *out, struct nk_error *err);

/* Build the upstream request of a forward (a REST resource with `forward`): method as given,
 * URL = the target consumer's baseUri + "/" + rest (the raw, still percent-encoded remainder of
 * the request path after the resource prefix and its '/') + "?" + query (raw, already encoded;
 * NULL or "" for none), the headers (NULL, or name/value pairs ended by NULL: the trusted ones
 * the caller sent, and its Content-Type when there is a body), the consumer's authentication
 * (its header replaces a caller's header of the same name; caller_auth non-NULL, passthrough:
 * that Authorization instead, no bind expanded) and X-Request-Id. Each segment of
 * rest is checked, never normalised: an empty one, a dot segment (also %2e%2e), an encoded '/' or
 * '\', a '\', NUL, a bad escape or a byte outside RFC 3986 pchar is NK_ERR_INVALID with the
 * reason in err (REST 400). */
enum nk_rc nk_forward_build(struct nk_context *ctx, const struct nk_forward *fw, const char *method,
                            const char *rest, const char *query, const char *const *headers,
                            const char *body, size_t body_len, const char *request_id,
                            const char *caller_auth, struct nk_upstream_request *out,
                            struct nk_error *err);

/* Is s[0..n) exactly one well-formed JSON value (RFC 8259, surrounding whitespace allowed),
 * nested at most NK_JSON_MAX_DEPTH deep, its strings valid UTF-8 with no lone surrogate escape?
 * One pass, no allocation, constant stack. */
#define NK_JSON_MAX_DEPTH 2048
bool nk_invoke_check_json(const char *s, size_t n);

/* Apply an output mapping to an upstream JSON body (NULL for a mock). inputs (an object of the
 * checked arguments by name, or NULL) feed `value` templates. NULL map: new reference to body.
 * On NK_OK *out is a new reference; NK_ERR_INVALID when a value cannot take its declared type
 * (err names the output and the value); NK_ERR_NOMEM. */
enum nk_rc nk_outmap_eval(const struct nk_outmap *map, json_t *body, json_t *inputs, json_t **out,
                          struct nk_error *err);
/* nk_outmap_eval without inputs: a new reference, or NULL on any failure. */
json_t *nk_outmap_apply(const struct nk_outmap *map, json_t *body);

#endif
