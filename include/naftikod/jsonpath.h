/* SPDX-License-Identifier: Apache-2.0 */
/* jsonpath.h: RFC 9535 JSONPath, compiled once and evaluated against jansson values. */
#ifndef NAFTIKOD_JSONPATH_H
#define NAFTIKOD_JSONPATH_H

#include <jansson.h>

#include "naftikod/common.h"

struct nk_jsonpath;

/* Compile an RFC 9535 query. As a documented naftikod extension, "$." (the generator's
 * spelling of the root) compiles as "$". An invalid query returns NK_ERR_INVALID with
 * err->column the 1-based column of the problem in expr and a message that says what is wrong.
 * *out: caller frees with nk_jsonpath_free(). */
enum nk_rc nk_jsonpath_compile(const char *expr, struct nk_jsonpath **out, struct nk_error *err);
void nk_jsonpath_free(struct nk_jsonpath *p);

/* The source text the query was compiled from; borrowed, valid while p lives. */
const char *nk_jsonpath_text(const struct nk_jsonpath *p);

/* true when the query is a singular query (RFC 9535 2.3.5.1: only name/index segments). */
int nk_jsonpath_is_singular(const struct nk_jsonpath *p);

/* Evaluate p against doc. Returns a new reference to a JSON array holding the selected
 * nodes' values in document order (the nodelist), or NULL on OOM or when the evaluation
 * exceeds the resource limits of docs/jsonpath.md (result size, work, comparison depth).
 * doc is borrowed. p may be shared by threads (evaluation does not modify it). */
json_t *nk_jsonpath_query(const struct nk_jsonpath *p, json_t *doc);

/* Convenience for mappings: the first selected value as a new reference, or NULL when the
 * nodelist is empty. */
json_t *nk_jsonpath_first(const struct nk_jsonpath *p, json_t *doc);

#endif
