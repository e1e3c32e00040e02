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

/* ---- invoke_build.c: arguments and the upstream request ---- */

/* Check raw_args against op's inputs (required, type, pattern); results into vals by name.
 * NK_ERR_INVALID names the argument in err. */
enum nk_rc nk_check_args(const struct nk_exposed *op, json_t *raw_args, enum nk_args_mode mode,
                         json_t *vals, struct nk_error *err);
/* Build op's upstream request from checked args; caller_auth (passthrough) or NULL. */
enum nk_rc nk_build_request(struct nk_context *ctx, const struct nk_exposed *op, json_t *args,
                            enum nk_args_mode mode, const char *request_id, const char *caller_auth,
                            struct nk_upstream_request *out, struct nk_error *err);

/* ---- jsoncheck.c ---- */

/* ---- outmap.c ---- */

/* Does o's outputParameters leave its answer as it is (none, or one "$")? */
bool nk_outmap_is_identity(const struct nk_operation *o);
/* o's outputParameters applied to answer: {name: value, ...} into *out (new reference).
 * NK_ERR_INVALID names the parameter in err. */
enum nk_rc nk_outmap_project(const struct nk_operation *o, json_t *answer, json_t **out,
                             struct nk_error *err);

#endif
