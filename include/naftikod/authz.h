/* SPDX-License-Identifier: Apache-2.0 */
/* authz.h: per-caller permissions. A permissions file (YAML, --permissions FILE) names callers
 * (a tokens-file name, the document's credential, an OAuth subject, client and scopes) and what
 * each may use: tools, routes or consumed operations by name or glob, by class (readOnly, not
 * destructive), with limits on arguments. It is compiled once at load into an immutable
 * nk_authz; a decision reads it and the request alone. Once a file is given, anything not
 * granted is denied. The format is in docs/security.md ("Per-caller permissions"). */
#ifndef NAFTIKOD_AUTHZ_H
#define NAFTIKOD_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "naftikod/common.h"
#include "naftikod/optable.h"
#include "naftikod/principal.h"

/* The largest permissions file read. */
#define NK_AUTHZ_MAX_BYTES (1u << 20)

struct nk_authz;

/* Compile the permissions text[0..len); name is used in messages (FILE:LINE:COL: ...). Errors:
 * NK_ERR_INVALID (err has the position and what is wrong), NK_ERR_TOO_LARGE, NK_ERR_NOMEM.
 * *out: caller frees with nk_authz_free(). */
enum nk_rc nk_authz_parse(const char *name, const char *text, size_t len, struct nk_authz **out,
                          struct nk_error *err);
/* Same from a file (at most NK_AUTHZ_MAX_BYTES); NK_ERR_IO when it cannot be read. */
enum nk_rc nk_authz_load(const char *path, struct nk_authz **out, struct nk_error *err);
void nk_authz_free(struct nk_authz *az); /* NULL is a no-op */
/* Callers and grants in the file (for the start-up log). */
size_t nk_authz_n_callers(const struct nk_authz *az);
size_t nk_authz_n_grants(const struct nk_authz *az);

/* The outcome of one decision. Every text is a copy: it outlives az. */
struct nk_authz_decision {
    bool allowed;
    /* Which rule decided: "FILE:LINE (caller NAME)" of the grant that allowed, or of the grant
     * whose argument limit refused; "default deny" when no grant covers the operation. */
    char rule[160];
    /* A denial: the missing permission, for the caller (REST problem detail, MCP error);
     * names the caller, the operation and, for a limit, the argument and the rule. */
    char reason[1024];
    /* A denial an OAuth scope would fix: that scope (a grant covers the operation and its
     * arguments but asks for a scope the caller was not granted); "" otherwise. The resource
     * server answers 403 with `error="insufficient_scope", scope="..."` then. */
    char missing_scope[128];
    /* The argument fields the file's `audit` section names for this operation, taken from the
     * arguments (values cut at 256 bytes): a new reference, or NULL when none are named. */
    json_t *audit_args;
};
/* Release what a decision holds (audit_args). */
void nk_authz_decision_cleanup(struct nk_authz_decision *d);

/* Decide whether principal p may call op (an operation of an adapter of type `type`: a REST
 * route or an MCP tool) with args (an object: the MCP arguments, or the REST arguments as
 * collected, strings for path and query values; NULL: no arguments). d is filled in either
 * way. Returns NK_OK, or NK_ERR_NOMEM (then d says denied). Thread-safe (az is read-only). */
enum nk_rc nk_authz_check(const struct nk_authz *az, const struct nk_principal *p,
                          enum nk_adapter_type type, const struct nk_exposed *op,
                          const json_t *args, struct nk_authz_decision *d);
/* May p call op with some arguments (a grant covers it, whatever its argument limits)? What
 * tools/list shows. Thread-safe. */
bool nk_authz_visible(const struct nk_authz *az, const struct nk_principal *p,
                      enum nk_adapter_type type, const struct nk_exposed *op);

/* Report, through warn (the permissions file, the line of the grant or audit entry, and a
 * message), every tool glob, route and call glob of az that matches no operation of t's
 * listeners: a typo that would silently deny. Returns how many were reported. */
size_t nk_authz_lint(const struct nk_authz *az, const struct nk_optable *t,
                     void (*warn)(void *ud, const char *file, unsigned line, const char *msg),
                     void *ud);

/* "anonymous", "token", "document", "oauth". */
const char *nk_principal_kind_name(enum nk_principal_kind k);

#endif
