/* SPDX-License-Identifier: Apache-2.0 */
/* jsonout.h: compact JSON text of a jansson value, for the answers written on every request. */
#ifndef NAFTIKOD_JSONOUT_H
#define NAFTIKOD_JSONOUT_H

#include <stddef.h>

#include <jansson.h>

/* Deepest nesting written; a deeper value (or a cycle) is refused. jansson's parser stops at
 * the same depth, so every value read from a document or a message fits. */
#define NK_JSON_OUT_MAX_DEPTH 2048

/* The text json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) writes, byte for byte (members in
 * insertion order, "\uXXXX" for other control characters, UTF-8 kept as it is, reals as
 * jansson formats them), without jansson's cost per object and array (it formats each one's
 * address with snprintf for its cycle check: most of the cost of dumping an MCP answer) and
 * without its blind spot under memory pressure (jansson 2.14 ignores a failed write of an
 * object key and can return a damaged text). Returns malloc'd, NUL-terminated text (its length
 * in *len when len is not NULL), or NULL when memory runs short, a string is not valid UTF-8
 * (as jansson refuses it) or the value nests deeper than NK_JSON_OUT_MAX_DEPTH. Thread-safe. */
char *nk_json_compact(const json_t *v, size_t *len);

#endif
