/* SPDX-License-Identifier: Apache-2.0 */
/* template.c: TEMPORARY minimal template compiler (loader branch) until the template module
 * lands on main; the merge must take the template owner's file. */
#include "naftikod/template.h"

#include <stdlib.h>
#include <string.h>

void nk_tmpl_cleanup(struct nk_tmpl *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->n; i++)
        free(t->parts[i].text);
    free(t->parts);
    free(t->src);
    memset(t, 0, sizeof(*t));
}

bool nk_tmpl_is_literal(const struct nk_tmpl *t)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        if (t->parts[i].kind == NK_TMPL_VAR)
            return false;
    return true;
}

static enum nk_rc add_part(struct nk_tmpl *t, enum nk_tmpl_part_kind kind, const char *s,
                           size_t len, size_t off, bool dbl)
{
    struct nk_tmpl_part *np = realloc(t->parts, (t->n + 1) * sizeof(*np));
    char *text;

    if (np == NULL)
        return NK_ERR_NOMEM;
    t->parts = np;
    text = malloc(len + 1);
    if (text == NULL)
        return NK_ERR_NOMEM;
    memcpy(text, s, len);
    text[len] = '\0';
    t->parts[t->n].kind = kind;
    t->parts[t->n].text = text;
    t->parts[t->n].offset = (unsigned)off;
    t->parts[t->n].double_braced = dbl;
    t->n++;
    return NK_OK;
}

enum nk_rc nk_tmpl_compile(const char *src, enum nk_tmpl_syntax syntax, struct nk_tmpl *out,
                           struct nk_error *err)
{
    size_t i = 0, lit = 0, len = strlen(src);
    enum nk_rc rc = NK_OK;

    memset(out, 0, sizeof(*out));
    out->src = strdup(src);
    if (out->src == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    while (i < len) {
        bool dbl = src[i] == '{' && src[i + 1] == '{';
        size_t open = i, start, end, j;
        if (src[i] != '{' || (!dbl && syntax == NK_TMPL_MUSTACHE)) {
            i++;
            continue;
        }
        start = i + (dbl ? 2 : 1);
        for (j = start; j < len && src[j] != '}'; j++) {
            if (src[j] == '{') {
                nk_error_setpos(err, 0, (unsigned)j + 1, "nested '{' in template");
                rc = NK_ERR_INVALID;
                goto out;
            }
        }
        if (j >= len || (dbl && src[j + 1] != '}')) {
            nk_error_setpos(err, 0, (unsigned)open + 1,
                            "unterminated template variable: missing '%s'", dbl ? "}}" : "}");
            rc = NK_ERR_INVALID;
            goto out;
        }
        end = j;
        while (start < end && (src[start] == ' ' || src[start] == '\t'))
            start++;
        while (end > start && (src[end - 1] == ' ' || src[end - 1] == '\t'))
            end--;
        if (start == end) {
            nk_error_setpos(err, 0, (unsigned)open + 1, "empty name in template");
            rc = NK_ERR_INVALID;
            goto out;
        }
        if (open > lit && (rc = add_part(out, NK_TMPL_LIT, src + lit, open - lit, lit, false)))
            goto out;
        if ((rc = add_part(out, NK_TMPL_VAR, src + start, end - start, open, dbl)) != NK_OK)
            goto out;
        i = j + (dbl ? 2 : 1);
        lit = i;
    }
    if (len > lit)
        rc = add_part(out, NK_TMPL_LIT, src + lit, len - lit, lit, false);
out:
    if (rc == NK_ERR_NOMEM)
        nk_error_set(err, "out of memory");
    if (rc != NK_OK)
        nk_tmpl_cleanup(out);
    return rc;
}
