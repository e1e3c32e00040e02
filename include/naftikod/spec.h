/* SPDX-License-Identifier: Apache-2.0 */
/* spec.h: YAML text -> a small immutable node tree with 1-based line:column on every node.
 *
 * The only module that uses libyaml. The tree keeps what validation needs: the node kind, the
 * scalar text and whether it was quoted (so `'true'` stays a string), and positions.
 * Limits keep hostile input cheap: file size, nesting depth, node count; aliases are rejected
 * (so "billion laughs" fails at the first alias), duplicate keys and multi-document streams are
 * errors, and an empty document is an error at 1:1. */
#ifndef NAFTIKOD_SPEC_H
#define NAFTIKOD_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"

#define NK_SPEC_MAX_BYTES (16u * 1024u * 1024u) /* largest document accepted */
#define NK_SPEC_MAX_DEPTH 64u                   /* deepest nesting of collections */
#define NK_SPEC_MAX_NODES 2000000u              /* total nodes in one document */

enum nk_node_kind { NK_NODE_SCALAR, NK_NODE_MAPPING, NK_NODE_SEQUENCE };

enum nk_scalar_style {
    NK_SCALAR_PLAIN,  /* unquoted: may be a YAML null/bool/int/float */
    NK_SCALAR_QUOTED, /* '...' or "..." or an explicit !!str tag: always a string */
    NK_SCALAR_BLOCK   /* | or >: always a string */
};

struct nk_node;

struct nk_node_pair {
    struct nk_node *key; /* always a scalar */
    struct nk_node *value;
};

struct nk_node {
    enum nk_node_kind kind;
    unsigned line, column; /* 1-based start of the node */
    /* scalar */
    char *str; /* NUL-terminated text; len excludes the NUL (may contain NUL bytes) */
    size_t len;
    enum nk_scalar_style style;
    /* mapping: pairs[0..n); sequence: items[0..n) */
    struct nk_node_pair *pairs;
    struct nk_node **items;
    size_t n;
};

/* Parse one YAML document from buf[0..len). On success *out is the root (caller frees with
 * nk_node_free()). Errors: NK_ERR_INVALID (malformed YAML, non-UTF-8, alias, duplicate key,
 * empty or multi-document stream, non-scalar key), NK_ERR_TOO_LARGE (a limit), NK_ERR_NOMEM;
 * err gets the 1-based position and message. */
enum nk_rc nk_spec_parse(const char *buf, size_t len, struct nk_node **out, struct nk_error *err);

/* Read the whole file (at most NK_SPEC_MAX_BYTES) into a new NUL-terminated buffer; caller
 * frees with free(). NK_ERR_IO / NK_ERR_TOO_LARGE / NK_ERR_NOMEM with a message in err. */
enum nk_rc nk_spec_read_file(const char *path, char **buf, size_t *len, struct nk_error *err);

void nk_node_free(struct nk_node *n);

/* A new scalar node holding a copy of text, a string (quoted style), at line:column; for trees
 * rewritten after parsing (the ikanos translation). Caller frees with nk_node_free(); NULL on
 * out of memory. */
struct nk_node *nk_node_new_scalar(const char *text, unsigned line, unsigned column);

/* The value for key in a mapping node, or NULL (also when map is not a mapping); borrowed. */
const struct nk_node *nk_node_get(const struct nk_node *map, const char *key);

/* Scalar classification under the YAML 1.2 core schema (only for plain scalars; quoted and
 * block scalars are strings). */
bool nk_node_is_null(const struct nk_node *n);
/* true and *v set when n is a plain true/false. */
bool nk_node_bool(const struct nk_node *n, bool *v);
/* true and *v set when n is a plain decimal integer that fits. */
bool nk_node_int(const struct nk_node *n, long long *v);
/* true when n is a plain number (integer or float) */
bool nk_node_is_number(const struct nk_node *n);
/* true when n is a scalar that is a string (quoted/block, or plain and not null/bool/number). */
bool nk_node_is_string(const struct nk_node *n);

#endif
