/* SPDX-License-Identifier: Apache-2.0 */
/* template.h: `{{name}}` / `{name}` templates compiled once, expanded per request, and
 * RFC 3986 percent-encoding. */
#ifndef NAFTIKOD_TEMPLATE_H
#define NAFTIKOD_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"

/* Which holes a template recognises. */
enum nk_tmpl_syntax {
    NK_TMPL_MUSTACHE, /* only `{{name}}` (values, `with`, auth): single braces are literal */
    NK_TMPL_PATH,     /* `{name}` and `{{name}}` (consumed/exposed paths, baseUri) */
};

enum nk_tmpl_part_kind { NK_TMPL_LIT, NK_TMPL_VAR };

struct nk_tmpl_part {
    enum nk_tmpl_part_kind kind;
    char *text;         /* owned: literal text, or the variable name as written, trimmed
                           (e.g. "env.STACKROX_API_KEY", "id", "central-host") */
    unsigned offset;    /* 0-based byte offset of the part in the source, for diagnostics */
    bool double_braced; /* VAR written as {{name}} (a bind/arg reference) not {name} */
};

/* A compiled template; caller storage. An all-literal template has one LIT part (or none if
 * the source was empty). */
struct nk_tmpl {
    char *src; /* owned copy of the source text */
    struct nk_tmpl_part *parts;
    size_t n;
};

/* Compile src. Errors (unterminated hole, empty name, nested braces) return NK_ERR_INVALID with
 * err->column set to the 1-based column of the offending character within src (line 0).
 * On failure out is left cleaned up. */
enum nk_rc nk_tmpl_compile(const char *src, enum nk_tmpl_syntax syntax, struct nk_tmpl *out,
                           struct nk_error *err);
void nk_tmpl_cleanup(struct nk_tmpl *t);
/* true when the template has no VAR part. */
bool nk_tmpl_is_literal(const struct nk_tmpl *t);

/* How an expanded variable value is encoded into the output. */
enum nk_encode {
    NK_ENC_NONE,    /* verbatim (header values; body text) */
    NK_ENC_SEGMENT, /* one RFC 3986 path segment: everything but unreserved is %XX */
    NK_ENC_QUERY,   /* a query-component value (application/x-www-form-urlencoded style, %20) */
};

/* Looks a variable up. Returns a borrowed NUL-terminated value (valid until expansion returns),
 * or NULL when unknown/absent. */
typedef const char *(*nk_tmpl_lookup_fn)(void *ud, const char *name);

/* Expand t, encoding each VAR value with enc (literals are copied verbatim).
 * A VAR whose lookup returns NULL makes the call fail with NK_ERR_NOTFOUND and the variable's
 * name in err. *out is a new malloc'd string; caller frees with free(). */
enum nk_rc nk_tmpl_expand(const struct nk_tmpl *t, nk_tmpl_lookup_fn lookup, void *ud,
                          enum nk_encode enc, char **out, struct nk_error *err);

/* Percent-encode len bytes of s with enc. Returns a new malloc'd string or NULL on OOM. */
char *nk_pct_encode(const char *s, size_t len, enum nk_encode enc);

#endif
