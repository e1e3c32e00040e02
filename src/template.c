/* SPDX-License-Identifier: Apache-2.0 */
/* template.c: compile `{{name}}` / `{name}` templates, expand them, percent-encode values. */
#include "naftikod/template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A growing byte buffer, always NUL-terminated once anything was appended. */
struct buf {
    char *p;
    size_t len;
    size_t cap;
};

static int buf_append(struct buf *b, const char *s, size_t n)
{
    char *np;
    size_t ncap;

    if (b->len + n + 1 > b->cap) {
        ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        np = realloc(b->p, ncap);
        if (np == NULL)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* A segment that is exactly "." or ".." would be a dot-segment that clients and servers
 * collapse (RFC 3986 5.2.4), so its dots are encoded too. */
static int is_dot_segment(const char *s, size_t len)
{
    return (len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.');
}

static int encode_into(struct buf *b, const char *s, size_t len, enum nk_encode enc)
{
    static const char hex[] = "0123456789ABCDEF";
    char esc[3];
    size_t i, run;
    int dots;

    if (enc == NK_ENC_NONE)
        return buf_append(b, s, len);
    dots = enc == NK_ENC_SEGMENT && is_dot_segment(s, len);
    i = 0;
    while (i < len) {
        run = 0;
        while (i + run < len && is_unreserved((unsigned char)s[i + run]) &&
               !(dots && s[i + run] == '.'))
            run++;
        if (run > 0 && buf_append(b, s + i, run) != 0)
            return -1;
        i += run;
        if (i < len) {
            esc[0] = '%';
            esc[1] = hex[((unsigned char)s[i]) >> 4];
            esc[2] = hex[((unsigned char)s[i]) & 0x0f];
            if (buf_append(b, esc, 3) != 0)
                return -1;
            i++;
        }
    }
    return 0;
}

char *nk_pct_encode(const char *s, size_t len, enum nk_encode enc)
{
    struct buf b = {NULL, 0, 0};

    if (encode_into(&b, s, len, enc) != 0 || buf_append(&b, "", 0) != 0) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

void nk_tmpl_cleanup(struct nk_tmpl *t)
{
    size_t i;

    if (t == NULL)
        return;
    for (i = 0; i < t->n; i++)
        free(t->parts[i].text);
    free(t->parts);
    free(t->src);
    t->parts = NULL;
    t->n = 0;
    t->src = NULL;
}

bool nk_tmpl_is_literal(const struct nk_tmpl *t)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        if (t->parts[i].kind == NK_TMPL_VAR)
            return false;
    return true;
}

static enum nk_rc add_part(struct nk_tmpl *t, size_t *cap, enum nk_tmpl_part_kind kind,
                           const char *text, size_t len, size_t offset, bool dbl)
{
    struct nk_tmpl_part *np;
    char *copy;

    if (offset > UINT32_MAX)
        return NK_ERR_TOO_LARGE;
    copy = malloc(len + 1);
    if (copy == NULL)
        return NK_ERR_NOMEM;
    memcpy(copy, text, len);
    copy[len] = '\0';
    if (t->n == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        np = realloc(t->parts, *cap * sizeof(*np));
        if (np == NULL) {
            free(copy);
            return NK_ERR_NOMEM;
        }
        t->parts = np;
    }
    t->parts[t->n].kind = kind;
    t->parts[t->n].text = copy;
    t->parts[t->n].offset = (unsigned)offset;
    t->parts[t->n].double_braced = dbl;
    t->n++;
    return NK_OK;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse the hole starting at src[start] ('{'). On success *end is one past the closing brace
 * and [*name, *name + *nlen) the trimmed name. On error *bad is the offset of the culprit. */
static enum nk_rc parse_hole(const char *src, size_t start, bool dbl, size_t *end, size_t *name,
                             size_t *nlen, size_t *bad, const char **why)
{
    size_t i = start + (dbl ? 2 : 1);
    size_t a, z;

    while (src[i] != '\0' && src[i] != '}') {
        if (src[i] == '{') {
            *bad = i;
            *why = "nested '{' inside a template variable";
            return NK_ERR_INVALID;
        }
        i++;
    }
    if (src[i] == '\0') {
        *bad = start;
        *why = dbl ? "unterminated template variable: missing '}}'"
                   : "unterminated template variable: missing '}'";
        return NK_ERR_INVALID;
    }
    if (dbl && src[i + 1] != '}') {
        *bad = i;
        *why = "template variable opened with '{{' must close with '}}'";
        return NK_ERR_INVALID;
    }
    a = start + (dbl ? 2 : 1);
    z = i;
    while (a < z && is_space(src[a]))
        a++;
    while (z > a && is_space(src[z - 1]))
        z--;
    if (a == z) {
        *bad = start;
        *why = "empty template variable name";
        return NK_ERR_INVALID;
    }
    *name = a;
    *nlen = z - a;
    *end = i + (dbl ? 2 : 1);
    return NK_OK;
}

enum nk_rc nk_tmpl_compile(const char *src, enum nk_tmpl_syntax syntax, struct nk_tmpl *out,
                           struct nk_error *err)
{
    enum nk_rc rc = NK_OK;
    struct nk_tmpl t = {NULL, NULL, 0};
    size_t cap = 0, i = 0, lit = 0, end = 0, name = 0, nlen = 0, bad = 0;
    const char *why = NULL;
    bool dbl;

    t.src = strdup(src);
    if (t.src == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    while (src[i] != '\0') {
        dbl = src[i] == '{' && src[i + 1] == '{';
        if (src[i] == '{' && (dbl || syntax == NK_TMPL_PATH)) {
            rc = parse_hole(src, i, dbl, &end, &name, &nlen, &bad, &why);
            if (rc != NK_OK) {
                nk_error_setpos(err, 0, (unsigned)bad + 1, "%s", why);
                goto out;
            }
            if (i > lit) {
                rc = add_part(&t, &cap, NK_TMPL_LIT, src + lit, i - lit, lit, false);
                if (rc != NK_OK)
                    goto out;
            }
            rc = add_part(&t, &cap, NK_TMPL_VAR, src + name, nlen, i, dbl);
            if (rc != NK_OK)
                goto out;
            i = end;
            lit = i;
            continue;
        }
        /* In a path a lone '}' can only be a typo for a hole; in text it is literal. */
        if (src[i] == '}' && syntax == NK_TMPL_PATH) {
            nk_error_setpos(err, 0, (unsigned)i + 1, "unmatched '}' in template");
            rc = NK_ERR_INVALID;
            goto out;
        }
        i++;
    }
    if (i > lit)
        rc = add_part(&t, &cap, NK_TMPL_LIT, src + lit, i - lit, lit, false);
out:
    if (rc == NK_ERR_NOMEM || rc == NK_ERR_TOO_LARGE)
        nk_error_set(err, "%s", rc == NK_ERR_NOMEM ? "out of memory" : "template too large");
    if (rc != NK_OK) {
        nk_tmpl_cleanup(&t);
        if (out != NULL) {
            out->src = NULL;
            out->parts = NULL;
            out->n = 0;
        }
        return rc;
    }
    *out = t;
    return NK_OK;
}

enum nk_rc nk_tmpl_expand(const struct nk_tmpl *t, nk_tmpl_lookup_fn lookup, void *ud,
                          enum nk_encode enc, char **out, struct nk_error *err)
{
    enum nk_rc rc = NK_OK;
    struct buf b = {NULL, 0, 0};
    const struct nk_tmpl_part *p;
    const char *v;
    size_t i;

    *out = NULL;
    if (buf_append(&b, "", 0) != 0) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < t->n; i++) {
        p = &t->parts[i];
        if (p->kind == NK_TMPL_LIT) {
            if (buf_append(&b, p->text, strlen(p->text)) != 0) {
                rc = NK_ERR_NOMEM;
                goto out;
            }
            continue;
        }
        v = lookup != NULL ? lookup(ud, p->text) : NULL;
        if (v == NULL) {
            nk_error_setpos(err, 0, p->offset + 1, "no value for template variable '%s'", p->text);
            rc = NK_ERR_NOTFOUND;
            goto out;
        }
        if (encode_into(&b, v, strlen(v), enc) != 0) {
            rc = NK_ERR_NOMEM;
            goto out;
        }
    }
    *out = b.p;
    b.p = NULL;
out:
    if (rc == NK_ERR_NOMEM)
        nk_error_set(err, "out of memory");
    /* The buffer may hold a secret (an expanded credential): wipe before freeing. */
    if (b.p != NULL) {
        explicit_bzero(b.p, b.cap);
        free(b.p);
    }
    return rc;
}
