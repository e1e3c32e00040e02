/* SPDX-License-Identifier: Apache-2.0 */
/* invoke_int.h: private interface between the invoke files (not installed). */
#ifndef NAFTIKOD_INVOKE_INT_H
#define NAFTIKOD_INVOKE_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "naftikod/inbound.h"
#include "naftikod/invoke.h"

struct nk_context {
    atomic_int refs;
    struct nk_optable *t;
    char **bind_values;        /* parallel to t->binds; secrets */
    char **bases;              /* parallel to t->consumers: expanded baseUri, no trailing '/' */
    struct nk_doc_secret *doc; /* parallel to t->adapters: the inbound document credentials */
};

/* ---- context.c ---- */

/* The value of the bind variable `name` (bare or "ns.name"), or NULL; borrowed from c. */
const char *nk_context_find_bind(const struct nk_context *c, const char *name);

/* ---- invoke_build.c: small helpers ---- */

/* A growable text buffer; an allocation failure sets oom and makes later adds no-ops. */
struct nk_sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

void nk_sb_add(struct nk_sbuf *b, const char *s, size_t n);
void nk_sb_str(struct nk_sbuf *b, const char *s);
/* The text (caller frees), or NULL when an allocation failed; b is emptied either way. */
char *nk_sb_take(struct nk_sbuf *b);
/* Zero and free the text (it may hold a credential). */
void nk_sb_wipe(struct nk_sbuf *b);
/* Zero then free a string that may hold a credential; NULL is a no-op. */
void nk_wipe_free(char *s);
/* Compact JSON text of v (caller frees), or NULL. */
char *nk_dump_json(json_t *v);
/* A short description of v for error messages ("string \"x\"", "an object", ...). */
void nk_describe_json(json_t *v, char *out, size_t n);
/* v as text for URLs and headers: strings as is, null "", others compact JSON (caller frees);
 * NULL when out of memory. */
char *nk_text_of(json_t *v);
/* A value by any of its spellings: x, rest.x, tools.x, ns.x, $this.ns.x (dotted names tried whole
 * before a prefix is stripped); at each spelling object a, then b (either may be NULL). Borrowed;
 * NULL when absent or JSON null. */
json_t *nk_json_by_spelling(json_t *a, json_t *b, const char *name);

/* `step.a.b`: the output of step `step` (a member of steps), then its member a, then b (a
 * number indexes an array). Borrowed; NULL when absent or JSON null. */
json_t *nk_step_value(json_t *steps, const char *name);

/* ---- invoke_build.c: arguments and the upstream request ---- */

/* Check raw_args against op's inputs (required, type, pattern); results into vals by name.
 * NK_ERR_INVALID names the argument in err. */
enum nk_rc nk_check_args(const struct nk_exposed *op, json_t *raw_args, enum nk_args_mode mode,
                         json_t *vals, struct nk_error *err);
/* Build op's upstream request from checked args; caller_auth (passthrough) or NULL. steps
 * (borrowed, or NULL): the outputs of the steps run so far by step name, which templates read as
 * `{{step.field.sub}}` (an orchestrated operation builds each call step through a view of op
 * whose target and bindings are the step's). */
enum nk_rc nk_build_request(struct nk_context *ctx, const struct nk_exposed *op, json_t *args,
                            enum nk_args_mode mode, const char *request_id, const char *caller_auth,
                            json_t *steps, struct nk_upstream_request *out, struct nk_error *err);

/* ---- invoke.c ---- */

/* Turn an upstream response for target (borrowed; NULL only for tests) into r: the kind, the
 * status, the message, and on success the answer mapped by target's outputParameters then by
 * output (NULL: none) with inputs for its value templates. r is zeroed by the caller; takes
 * resp->body and content_type. */
void nk_invoke_classify(const struct nk_operation *target, const struct nk_outmap *output,
                        json_t *inputs, struct nk_upstream_response *resp, struct nk_result *r);

/* ---- invoke_steps.c ---- */

/* An orchestrated call (op->n_steps > 0): check args, build the first step's request (problems
 * there are the caller's: NK_ERR_INVALID with err, done not called), then run the steps one after
 * another on up's loop under cancel_tag (0: a new tag), the whole bounded by up's timeout. */
enum nk_rc nk_invoke_steps(struct nk_context *ctx, struct nk_upstream *up,
                           const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                           const char *request_id, const char *caller_auth, uint64_t cancel_tag,
                           nk_invoke_done_fn done, void *ud, struct nk_error *err);

/* ---- jsoncheck.c ---- */

/* ---- outmap.c ---- */

/* Does o's outputParameters leave its answer as it is (none, or one "$")? */
bool nk_outmap_is_identity(const struct nk_operation *o);
/* o's outputParameters applied to answer: {name: value, ...} into *out (new reference).
 * NK_ERR_INVALID names the parameter in err. */
enum nk_rc nk_outmap_project(const struct nk_operation *o, json_t *answer, json_t **out,
                             struct nk_error *err);

#endif
