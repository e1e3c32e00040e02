/* SPDX-License-Identifier: Apache-2.0 */
/* optable_int.h: private interface between the optable loader files (not installed). */
#ifndef NAFTIKOD_OPTABLE_INT_H
#define NAFTIKOD_OPTABLE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"
#include "naftikod/optable.h"
#include "naftikod/spec.h"

/* State shared while one set of documents loads. */
struct nk_loader {
    struct nk_optable *t;   /* being filled; owned by the caller */
    struct nk_diags *diags; /* borrowed */
    const char *file;       /* current file; borrowed from t->files */
    bool strict;
    bool oom; /* an allocation failed: stop and report NK_ERR_NOMEM */
    /* every consumed operation sorted by qname, built when pass 2 starts */
    const struct nk_operation **ops_index;
    size_t n_ops_index;
    bool indexed;
    /* exposes namespaces of every document (borrowed from the trees), seen before pass 2 */
    const char **exposes_ns;
    size_t n_exposes_ns;
    /* consumers ("ns") and operations ("ns.op") that failed to load: calls to them are not
     * reported again (owned strings) */
    char **broken;
    size_t n_broken;
    /* the declaration of each consumer (borrowed from the trees) and its file, to merge an
     * identical redeclaration in another document */
    const struct nk_node **consumer_nodes;
    const char **consumer_files;
    size_t n_consumer_nodes;
    /* while an operation with `ref` compiles: its aggregate's namespace, so that the function's
     * `with` may name its inputs as `<aggregate>.x` (borrowed from the tree), else NULL */
    const char *agg_ns;
};

/* pass 0: root, info, binds; 1: consumes; 2: exposes. Problems go to ld->diags. */
void nk_load_document(struct nk_loader *ld, const struct nk_node *root, int pass);
/* An `ikanos:` document (1.0.0-alpha3 .. 1.0.0-beta5) rewritten in place into the naftiko
 * 1.0.0-alpha2 shape, every node keeping its position (optable_ikanos.c); any other root is left
 * alone. An unsupported version is one error and *root becomes NULL (freed): nothing else of it
 * is read. Problems go to ld->diags, OOM to ld->oom. */
void nk_ikanos_translate(struct nk_loader *ld, struct nk_node **root);
/* Checks across documents once everything is loaded (ports, namespaces). */
void nk_check_table(struct nk_loader *ld);

/* ---- helpers shared by the loader files (optable_load.c) ---- */

void nk_ld_err(struct nk_loader *ld, const struct nk_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void nk_ld_warn(struct nk_loader *ld, const struct nk_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Error at line:column; col is 1-based. */
void nk_ld_err_at(struct nk_loader *ld, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* strdup that records OOM in ld (returns NULL then). NULL in, NULL out. */
char *nk_ld_strdup(struct nk_loader *ld, const char *s);
/* The YAML node as a new JSON value (scalars by the core schema), or NULL on OOM. */
json_t *nk_ld_json(struct nk_loader *ld, const struct nk_node *n);
/* Parse a `type:` value into *t; reports and returns false when unknown. */
bool nk_ld_type(struct nk_loader *ld, const struct nk_node *n, enum nk_type *t);
/* Compile a template from a scalar node, reporting errors at the node. */
bool nk_ld_tmpl(struct nk_loader *ld, const struct nk_node *n, enum nk_tmpl_syntax syn,
                struct nk_tmpl *out);
/* Position of byte offset off inside a (single-line) scalar node. */
unsigned nk_ld_col(const struct nk_node *n, unsigned off);
/* Report a bare `{{K}}` that more than one bind namespace declares. */
void nk_ld_check_ambiguous(struct nk_loader *ld, const struct nk_node *n,
                           const struct nk_tmpl_part *p);
/* The bind a template variable name refers to (`ns.name` or `name`), or NULL. */
const struct nk_bind *nk_ld_find_bind(const struct nk_loader *ld, const char *name);
/* "line N" when pos is in the current file, else "FILE:N", written into buf. */
const char *nk_ld_where(const struct nk_loader *ld, const struct nk_pos *pos, char *buf,
                        size_t size);
/* "FILE:LINE:COL" of pos, written into buf. */
const char *nk_ld_where_full(const struct nk_pos *pos, char *buf, size_t size);
/* Structural equality of two YAML trees (scalars by text, mappings in order). */
bool nk_node_equal(const struct nk_node *a, const struct nk_node *b);
/* Remember a consumer namespace or qualified operation that failed to load. */
void nk_ld_broken(struct nk_loader *ld, const char *ns, const char *op);
/* true when qname ("ns.op") belongs to something that failed to load. */
bool nk_ld_is_broken(const struct nk_loader *ld, const char *qname);
/* The operation `ns.name` (every consumer of every file), or NULL. */
const struct nk_operation *nk_ld_find_op(struct nk_loader *ld, const char *qname);

/* ---- field tables (optable_load.c) ---- */

enum nk_fkind { NK_FK_STR, NK_FK_BOOL, NK_FK_INT, NK_FK_MAP, NK_FK_SEQ, NK_FK_SCALAR, NK_FK_ANY };

#define NK_FF_REQ 1u   /* required */
#define NK_FF_EXT 2u   /* accepted by naftikod, not in the alpha2 schema: warning under --strict */
#define NK_FF_UNSUP 4u /* in the schema, not run by naftikod yet: error */

struct nk_field {
    const char *name;
    enum nk_fkind kind;
    unsigned flags;
};

#define NK_NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* Check map against spec[0..n): unknown, unsupported and extension fields, types, required.
 * out[i] is the value of spec[i] when present with the right type, else NULL. Returns false
 * when map is not a mapping (reported). */
bool nk_ld_fields(struct nk_loader *ld, const struct nk_node *map, const char *what,
                  const struct nk_field *spec, size_t n, const struct nk_node **out);
/* Copy of a scalar's text (NULL for NULL; OOM recorded in ld). */
char *nk_ld_node_dup(struct nk_loader *ld, const struct nk_node *n);
/* The position of n in the current file. */
struct nk_pos nk_ld_pos(const struct nk_loader *ld, const struct nk_node *n);
/* A namespace: no '.', no spaces (errors); kebab-case (--strict). */
bool nk_ld_check_namespace(struct nk_loader *ld, const struct nk_node *n);
/* --strict: warn when n is not kebab-case. */
void nk_ld_strict_kebab(struct nk_loader *ld, const struct nk_node *n, const char *what);
/* Parse an upper-case HTTP method (GET, POST, PUT, PATCH, DELETE) into a new string. */
bool nk_ld_method(struct nk_loader *ld, const struct nk_node *n, char **out);
/* Parse `in:`; environment only when consumed. */
bool nk_ld_in(struct nk_loader *ld, const struct nk_node *n, bool consumed, enum nk_in *in);
/* Check the shape of capability.aggregates (pass 0; optable_exposes.c). */
void nk_check_aggregates(struct nk_loader *ld, const struct nk_node *seq);
/* Pass 2: the `call` of every aggregate function names a consumed operation, referenced or not
 * (optable_exposes.c). */
void nk_check_aggregate_calls(struct nk_loader *ld, const struct nk_node *aggs);
/* Load capability.exposes (optable_exposes.c); aggs is the same document's
 * capability.aggregates (a `ref` resolves there), or NULL. */
void nk_load_exposes(struct nk_loader *ld, const struct nk_node *seq, const struct nk_node *aggs);
/* Load an `authentication` block into a: the consumer's outbound credential (oauth NULL: type
 * oauth2 is an error) or an adapter's inbound check (oauth2 settings into a new *oauth, owned
 * by the adapter; digest is refused). Secrets are templates over binds. */
void nk_ld_auth(struct nk_loader *ld, const struct nk_node *n, struct nk_auth *a,
                struct nk_oauth_conf **oauth);

/* Sources of one exposed operation, after the field checks (NULL when absent or invalid). */
struct nk_exposed_src {
    const struct nk_node *node;    /* the operation / tool mapping */
    const struct nk_node *call;    /* scalar */
    const struct nk_node *with;    /* mapping */
    const struct nk_node *inputs;  /* sequence: the operation's own inputParameters */
    const struct nk_node *rinputs; /* sequence: the REST resource's inputParameters */
    const struct nk_node *outputs; /* sequence */
    /* orchestration: the operation's own, or (with `ref`) its aggregate function's */
    const struct nk_node *steps;    /* sequence */
    const struct nk_node *mappings; /* sequence */
    /* an operation with `ref`: the aggregate function supplies what the operation leaves out */
    const struct nk_node *fn;    /* the function's mapping, or NULL (no `ref`) */
    const struct nk_node *fwith; /* mapping: the function's `with`; the operation's wins by key */
    bool fn_inputs;              /* inputs are the function's (MCP form: no `in`) */
};

/* Compile one exposed REST operation or MCP tool (optable_compile.c): args, call, with
 * bindings, output mapping, input schema. e->name/method/path/path_tmpl are already set. */
void nk_compile_exposed(struct nk_loader *ld, const struct nk_adapter *a,
                        const struct nk_exposed_src *src, struct nk_exposed *e);
void nk_loader_cleanup(struct nk_loader *ld);
/* "METHOD /path/{}/x": equal for structurally equal routes; new string or NULL (OOM). */
char *nk_route_key(const struct nk_exposed *e);
/* Free a table regardless of its reference count; NULL is a no-op. */
void nk_optable_destroy(struct nk_optable *t);
/* Free t->listeners (optable_group.c). */
void nk_optable_free_listeners(struct nk_optable *t);

#endif
