/* SPDX-License-Identifier: Apache-2.0 */
/* jsonpath.c: RFC 9535 JSONPath compiler and evaluator, with an RFC 9485 I-Regexp matcher. */
#include "naftikod/jsonpath.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Nesting of brackets, parentheses and function calls in a query (and of groups in a regex):
 * the parser, the type checker and the evaluator recurse along it, so it bounds the stack. */
#define MAX_DEPTH 256
/* Entries in one nodelist and units of work in one evaluation: a short query can ask for a
 * result that grows as a power of the document size ($..*..*..*); past these it fails. */
#define MAX_NODES ((size_t)1 << 22)
#define MAX_STEPS ((size_t)50000000)
/* Deep equality recursion bound (documents built in code can be deeper than jansson parses). */
#define MAX_EQ_DEPTH 4096
/* I-Regexp limits: program size after {n,m} expansion, and the largest quantifier bound. */
#define RE_MAX_PROG 20000
#define RE_MAX_QUANT 1000
#define I_JSON_MAX 9007199254740991LL /* 2^53 - 1 */

/* ---------------------------------------------------------------------------------------- */
/* Compiled query                                                                           */

enum sel_kind { SEL_NAME, SEL_WILD, SEL_INDEX, SEL_SLICE, SEL_FILTER };

struct expr;

struct selector {
    enum sel_kind kind;
    char *name; /* owned; SEL_NAME, may hold NUL bytes */
    size_t name_len;
    int64_t index; /* SEL_INDEX */
    int64_t start, end, step;
    int has_start, has_end;
    struct expr *filter; /* owned; SEL_FILTER */
};

struct segment {
    int descendant;
    int tight; /* bracketed with no blank space inside, as singular queries are written */
    struct selector *sels; /* owned */
    size_t n, cap;
};

struct query {
    int relative; /* '@' rather than '$' */
    int singular;
    struct segment *segs; /* owned */
    size_t n, cap;
};

enum expr_kind { EX_OR, EX_AND, EX_NOT, EX_CMP, EX_LIT, EX_QUERY, EX_FUNC };
enum cmp_op { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };
enum fn_id { FN_LENGTH, FN_COUNT, FN_MATCH, FN_SEARCH, FN_VALUE };
enum jp_type { T_VALUE, T_LOGICAL, T_NODES };

struct regex;

struct expr {
    enum expr_kind kind;
    int paren; /* written inside ( ): a logical expression, never a comparable */
    size_t at; /* byte offset in the source, for messages */
    enum cmp_op op;
    struct expr **kids; /* owned; operands of OR/AND/NOT/CMP, arguments of FUNC */
    size_t n, cap;
    json_t *lit;     /* owned; EX_LIT */
    struct query *q; /* owned; EX_QUERY */
    enum fn_id fn;
    struct regex *re; /* owned; match/search with a literal pattern */
    int re_bad;       /* that literal pattern is not a valid I-Regexp */
};

struct nk_jsonpath {
    char *text;      /* owned */
    struct query *q; /* owned */
};

static const struct {
    const char *name;
    enum jp_type result;
    size_t nparams;
    enum jp_type params[2];
} functions[] = {
    [FN_LENGTH] = {"length", T_VALUE, 1, {T_VALUE}},
    [FN_COUNT] = {"count", T_VALUE, 1, {T_NODES}},
    [FN_MATCH] = {"match", T_LOGICAL, 2, {T_VALUE, T_VALUE}},
    [FN_SEARCH] = {"search", T_LOGICAL, 2, {T_VALUE, T_VALUE}},
    [FN_VALUE] = {"value", T_VALUE, 1, {T_NODES}},
};

static void regex_free(struct regex *re);
static size_t regex_size(const struct regex *re);
static enum nk_rc regex_compile(const char *pat, size_t len, struct regex **out);

static void query_free(struct query *q);

static void expr_free(struct expr *e)
{
    size_t i;

    if (e == NULL)
        return;
    for (i = 0; i < e->n; i++)
        expr_free(e->kids[i]);
    free(e->kids);
    json_decref(e->lit);
    query_free(e->q);
    regex_free(e->re);
    free(e);
}

static void query_free(struct query *q)
{
    size_t i, j;

    if (q == NULL)
        return;
    for (i = 0; i < q->n; i++) {
        for (j = 0; j < q->segs[i].n; j++) {
            free(q->segs[i].sels[j].name);
            expr_free(q->segs[i].sels[j].filter);
        }
        free(q->segs[i].sels);
    }
    free(q->segs);
    free(q);
}

/* Grow *v (of *cap elements of size sz) so that it holds at least n + 1; 0 on success. */
static int grow(void *v, size_t *cap, size_t n, size_t sz)
{
    void **pv = v;
    size_t ncap;
    void *nv;

    if (n < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 4;
    if (ncap > SIZE_MAX / sz)
        return -1;
    nv = realloc(*pv, ncap * sz);
    if (nv == NULL)
        return -1;
    *pv = nv;
    *cap = ncap;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* UTF-8                                                                                    */

/* Decode one well-formed UTF-8 sequence (no overlongs, no surrogates); its length or 0. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    uint32_t c;
    size_t n, i;

    if (len == 0)
        return 0;
    c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        c &= 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
        (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

/* Lenient decoding of stored strings: a malformed byte reads as U+FFFD. */
static size_t utf8_next(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t n = utf8_decode(s, len, cp);

    if (n == 0) {
        *cp = 0xFFFD;
        n = 1;
    }
    return n;
}

static int utf8_put(char *out, uint32_t c)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ---------------------------------------------------------------------------------------- */
/* Parser                                                                                   */

struct parser {
    const char *s;
    size_t len;
    size_t pos;
    unsigned depth;
    enum nk_rc rc; /* first failure; NK_OK while parsing goes well */
    struct nk_error *err;
};

static unsigned column_of(const struct parser *p, size_t at)
{
    unsigned col = 1;
    size_t i;

    if (at > p->len)
        at = p->len;
    for (i = 0; i < at; i++)
        if (((unsigned char)p->s[i] & 0xC0) != 0x80)
            col++;
    return col;
}

static void fail_at(struct parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_at(struct parser *p, size_t at, const char *fmt, ...)
{
    va_list ap;

    if (p->rc != NK_OK)
        return;
    p->rc = NK_ERR_INVALID;
    if (p->err == NULL)
        return;
    p->err->line = 1;
    p->err->column = column_of(p, at);
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof(p->err->msg), fmt, ap);
    va_end(ap);
}

static void fail_nomem(struct parser *p)
{
    if (p->rc != NK_OK)
        return;
    p->rc = NK_ERR_NOMEM;
    nk_error_set(p->err, "out of memory compiling JSONPath");
}

static int peek(const struct parser *p)
{
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int peek_at(const struct parser *p, size_t off)
{
    return p->pos + off < p->len ? (unsigned char)p->s[p->pos + off] : -1;
}

static int is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void skip_ws(struct parser *p)
{
    while (is_blank(peek(p)))
        p->pos++;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Describe the character at pos for a message ("end of query", "'x'", "U+00E9"). */
static const char *describe(const struct parser *p, size_t at, char *buf, size_t sz)
{
    uint32_t cp;
    unsigned char c;

    if (at >= p->len)
        return "end of query";
    c = (unsigned char)p->s[at];
    if (c >= 0x21 && c < 0x7F)
        snprintf(buf, sz, "'%c'", c);
    else if (c == ' ')
        snprintf(buf, sz, "a space");
    else if (c == '\t' || c == '\n' || c == '\r')
        snprintf(buf, sz, "whitespace");
    else if (utf8_decode((const unsigned char *)p->s + at, p->len - at, &cp))
        snprintf(buf, sz, "U+%04X", (unsigned)cp);
    else
        snprintf(buf, sz, "byte 0x%02X", c);
    return buf;
}

static int enter(struct parser *p)
{
    if (p->depth >= MAX_DEPTH) {
        fail_at(p, p->pos, "query nested too deeply (more than %d levels)", MAX_DEPTH);
        return -1;
    }
    p->depth++;
    return 0;
}

/* int = "0" / (["-"] DIGIT1 *DIGIT), within the I-JSON range. */
static int parse_int(struct parser *p, int64_t *out)
{
    size_t at = p->pos;
    int neg = 0;
    int64_t v = 0;
    int big = 0;

    if (peek(p) == '-') {
        neg = 1;
        p->pos++;
    }
    if (!is_digit(peek(p))) {
        fail_at(p, p->pos, "expected a digit after '-'");
        return -1;
    }
    if (peek(p) == '0') {
        if (is_digit(peek_at(p, 1))) {
            fail_at(p, at, "leading zeros are not allowed in an integer");
            return -1;
        }
        if (neg) {
            fail_at(p, at, "-0 is not a valid integer here");
            return -1;
        }
    }
    while (is_digit(peek(p))) {
        if (!big) {
            v = v * 10 + (peek(p) - '0');
            if (v > I_JSON_MAX)
                big = 1;
        }
        p->pos++;
    }
    if (big) {
        fail_at(p, at, "integer out of range (must be within -(2^53-1)..2^53-1)");
        return -1;
    }
    *out = neg ? -v : v;
    return 0;
}

static int hex4(struct parser *p, uint32_t *out)
{
    uint32_t v = 0;
    int i, c;

    for (i = 0; i < 4; i++) {
        c = peek_at(p, (size_t)i);
        if (is_digit(c))
            v = v * 16 + (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v * 16 + (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v * 16 + (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    p->pos += 4;
    *out = v;
    return 0;
}

/* A quoted string literal at pos; *out (malloc'd, NUL-terminated) and *outlen. */
static int parse_string(struct parser *p, char **out, size_t *outlen)
{
    int quote = peek(p);
    size_t start = p->pos;
    char *buf = NULL;
    size_t n = 0;
    uint32_t cp, lo;
    size_t esc;
    int c;

    p->pos++;
    /* The decoded text is never longer than the source. */
    buf = malloc(p->len - p->pos + 1);
    if (buf == NULL) {
        fail_nomem(p);
        return -1;
    }
    for (;;) {
        c = peek(p);
        if (c < 0) {
            fail_at(p, start, "unterminated string literal");
            goto fail;
        }
        if (c == quote) {
            p->pos++;
            break;
        }
        if (c < 0x20) {
            fail_at(p, p->pos, "control character U+%04X must be escaped in a string literal",
                    (unsigned)c);
            goto fail;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            p->pos++;
            continue;
        }
        esc = p->pos;
        p->pos++;
        c = peek(p);
        p->pos++;
        switch (c) {
        case 'b':
            buf[n++] = '\b';
            break;
        case 'f':
            buf[n++] = '\f';
            break;
        case 'n':
            buf[n++] = '\n';
            break;
        case 'r':
            buf[n++] = '\r';
            break;
        case 't':
            buf[n++] = '\t';
            break;
        case '/':
        case '\\':
            buf[n++] = (char)c;
            break;
        case '\'':
        case '"':
            if (c != quote) {
                fail_at(p, esc, "invalid escape \\%c in a %s-quoted string", c,
                        quote == '"' ? "double" : "single");
                goto fail;
            }
            buf[n++] = (char)c;
            break;
        case 'u':
            if (hex4(p, &cp) < 0) {
                fail_at(p, esc, "\\u must be followed by four hex digits");
                goto fail;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail_at(p, esc, "lone low surrogate \\u%04X", (unsigned)cp);
                goto fail;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (peek(p) != '\\' || peek_at(p, 1) != 'u') {
                    fail_at(p, esc, "high surrogate \\u%04X not followed by a low surrogate",
                            (unsigned)cp);
                    goto fail;
                }
                p->pos += 2;
                if (hex4(p, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF) {
                    fail_at(p, esc, "high surrogate \\u%04X not followed by a low surrogate",
                            (unsigned)cp);
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += (size_t)utf8_put(buf + n, cp);
            break;
        default:
            fail_at(p, esc, "invalid escape sequence in string literal");
            goto fail;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
fail:
    free(buf);
    return -1;
}

/* name-first = ALPHA / "_" / %x80-D7FF / %xE000-10FFFF (the source is valid UTF-8). */
static int is_name_first(int c)
{
    return is_alpha(c) || c == '_' || c >= 0x80;
}

static int is_name_char(int c)
{
    return is_name_first(c) || is_digit(c);
}

static struct selector *add_selector(struct parser *p, struct segment *seg)
{
    struct selector *s;

    if (grow(&seg->sels, &seg->cap, seg->n, sizeof(*seg->sels)) < 0) {
        fail_nomem(p);
        return NULL;
    }
    s = &seg->sels[seg->n++];
    memset(s, 0, sizeof(*s));
    return s;
}

static struct expr *parse_or(struct parser *p);
static int check_logical(struct parser *p, const struct expr *e);
static struct query *parse_query(struct parser *p);

static const char *sel_word(enum sel_kind k)
{
    switch (k) {
    case SEL_NAME:
        return "name";
    case SEL_WILD:
        return "'*'";
    case SEL_INDEX:
        return "index";
    case SEL_SLICE:
        return "slice";
    case SEL_FILTER:
        return "filter";
    }
    return "selector";
}

static int parse_selector(struct parser *p, struct segment *seg)
{
    struct selector *s;
    int c = peek(p);
    int64_t v;
    size_t save;
    char buf[32];

    s = add_selector(p, seg);
    if (s == NULL)
        return -1;
    if (c == '\'' || c == '"') {
        s->kind = SEL_NAME;
        return parse_string(p, &s->name, &s->name_len);
    }
    if (c == '*') {
        s->kind = SEL_WILD;
        p->pos++;
        return 0;
    }
    if (c == '?') {
        s->kind = SEL_FILTER;
        p->pos++;
        skip_ws(p);
        s->filter = parse_or(p);
        if (s->filter == NULL)
            return -1;
        return check_logical(p, s->filter);
    }
    if (c == '-' || is_digit(c) || c == ':') {
        s->kind = SEL_INDEX;
        if (c != ':') {
            if (parse_int(p, &v) < 0)
                return -1;
            s->index = v;
            s->start = v;
            s->has_start = 1;
            save = p->pos;
            skip_ws(p);
            if (peek(p) != ':') {
                p->pos = save; /* the blanks belong to the bracketed selection */
                return 0;
            }
        }
        s->kind = SEL_SLICE;
        s->step = 1;
        p->pos++;
        skip_ws(p);
        c = peek(p);
        if (c == '-' || is_digit(c)) {
            if (parse_int(p, &s->end) < 0)
                return -1;
            s->has_end = 1;
            skip_ws(p);
        }
        if (peek(p) == ':') {
            p->pos++;
            skip_ws(p);
            c = peek(p);
            if (c == '-' || is_digit(c)) {
                if (parse_int(p, &s->step) < 0)
                    return -1;
            }
        }
        return 0;
    }
    if (c == ']' && seg->n == 1)
        fail_at(p, p->pos, "empty bracketed selection");
    else if (c == ']')
        fail_at(p, p->pos, "expected a selector after ','");
    else
        fail_at(p, p->pos, "expected a selector (name, '*', index, slice or filter), found %s",
                describe(p, p->pos, buf, sizeof(buf)));
    return -1;
}

static int parse_bracketed(struct parser *p, struct segment *seg)
{
    char buf[32];
    int rc = -1;

    if (enter(p) < 0)
        return -1;
    p->pos++; /* '[' */
    seg->tight = !is_blank(peek(p));
    skip_ws(p);
    for (;;) {
        if (parse_selector(p, seg) < 0)
            goto out;
        if (is_blank(peek(p)))
            seg->tight = 0;
        skip_ws(p);
        if (peek(p) == ']') {
            p->pos++;
            break;
        }
        if (peek(p) != ',') {
            fail_at(p, p->pos, "expected ']' or ',' after %s, found %s",
                    sel_word(seg->sels[seg->n - 1].kind), describe(p, p->pos, buf, sizeof(buf)));
            goto out;
        }
        p->pos++;
        skip_ws(p);
    }
    rc = 0;
out:
    p->depth--;
    return rc;
}

static int parse_shorthand(struct parser *p, struct segment *seg)
{
    struct selector *s;
    size_t start = p->pos;

    while (is_name_char(peek(p)))
        p->pos++;
    s = add_selector(p, seg);
    if (s == NULL)
        return -1;
    s->kind = SEL_NAME;
    s->name_len = p->pos - start;
    s->name = malloc(s->name_len + 1);
    if (s->name == NULL) {
        fail_nomem(p);
        return -1;
    }
    memcpy(s->name, p->s + start, s->name_len);
    s->name[s->name_len] = '\0';
    return 0;
}

/* One segment at pos ('.' or '['). */
static int parse_segment(struct parser *p, struct query *q)
{
    struct segment *seg;
    char buf[32];
    int c;

    if (grow(&q->segs, &q->cap, q->n, sizeof(*q->segs)) < 0) {
        fail_nomem(p);
        return -1;
    }
    seg = &q->segs[q->n++];
    memset(seg, 0, sizeof(*seg));
    if (peek(p) == '[')
        return parse_bracketed(p, seg);
    seg->tight = 1;
    p->pos++; /* '.' */
    if (peek(p) == '.') {
        seg->descendant = 1;
        p->pos++;
        c = peek(p);
        if (c == '[')
            return parse_bracketed(p, seg);
    }
    c = peek(p);
    if (c == '*') {
        p->pos++;
        if (add_selector(p, seg) == NULL)
            return -1;
        seg->sels[0].kind = SEL_WILD;
        return 0;
    }
    if (is_name_first(c))
        return parse_shorthand(p, seg);
    fail_at(p, p->pos, "expected a member name%s after '%s', found %s",
            seg->descendant ? ", '*' or '['" : " or '*'", seg->descendant ? ".." : ".",
            describe(p, p->pos, buf, sizeof(buf)));
    return -1;
}

static int query_is_singular(const struct query *q)
{
    size_t i;

    for (i = 0; i < q->n; i++) {
        if (q->segs[i].descendant || q->segs[i].n != 1 || !q->segs[i].tight)
            return 0;
        if (q->segs[i].sels[0].kind != SEL_NAME && q->segs[i].sels[0].kind != SEL_INDEX)
            return 0;
    }
    return 1;
}

/* A query at pos ('$' or '@') with its segments; stops before anything that is not one. */
static struct query *parse_query(struct parser *p)
{
    struct query *q;
    size_t save;
    int c;

    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        fail_nomem(p);
        return NULL;
    }
    q->relative = peek(p) == '@';
    p->pos++;
    for (;;) {
        save = p->pos;
        skip_ws(p);
        c = peek(p);
        if (c != '.' && c != '[') {
            p->pos = save;
            break;
        }
        if (parse_segment(p, q) < 0) {
            query_free(q);
            return NULL;
        }
    }
    q->singular = query_is_singular(q);
    return q;
}

/* ---- filter expressions ---- */

static struct expr *new_expr(struct parser *p, enum expr_kind kind, size_t at)
{
    struct expr *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        fail_nomem(p);
        return NULL;
    }
    e->kind = kind;
    e->at = at;
    return e;
}

/* Append kid to e->kids; takes kid even on failure. */
static int add_kid(struct parser *p, struct expr *e, struct expr *kid)
{
    if (grow(&e->kids, &e->cap, e->n, sizeof(*e->kids)) < 0) {
        expr_free(kid);
        fail_nomem(p);
        return -1;
    }
    e->kids[e->n++] = kid;
    return 0;
}

static enum jp_type expr_type(const struct expr *e)
{
    switch (e->kind) {
    case EX_LIT:
        return T_VALUE;
    case EX_QUERY:
        return T_NODES;
    case EX_FUNC:
        return functions[e->fn].result;
    default:
        return T_LOGICAL;
    }
}

/* e may stand where the grammar says logical-expr. */
static int check_logical(struct parser *p, const struct expr *e)
{
    size_t i;

    switch (e->kind) {
    case EX_OR:
    case EX_AND:
    case EX_NOT:
        for (i = 0; i < e->n; i++)
            if (check_logical(p, e->kids[i]) < 0)
                return -1;
        return 0;
    case EX_CMP:
    case EX_QUERY:
        return 0;
    case EX_LIT:
        fail_at(p, e->at, "a literal cannot be used as a test; compare it with something");
        return -1;
    case EX_FUNC:
        if (functions[e->fn].result == T_VALUE) {
            fail_at(p, e->at, "%s() returns a value, not a logical result; compare it",
                    functions[e->fn].name);
            return -1;
        }
        return 0;
    }
    return -1;
}

/* e may stand where the grammar says comparable. */
static int check_comparable(struct parser *p, const struct expr *e)
{
    if (e->paren) {
        fail_at(p, e->at, "a parenthesised expression cannot be compared");
        return -1;
    }
    switch (e->kind) {
    case EX_LIT:
        return 0;
    case EX_QUERY:
        if (!e->q->singular) {
            fail_at(p, e->at,
                    "a non-singular query cannot be compared (a singular query has "
                    "only name and index segments, no blanks inside '[ ]')");
            return -1;
        }
        return 0;
    case EX_FUNC:
        if (functions[e->fn].result != T_VALUE) {
            fail_at(p, e->at, "%s() returns a logical result, which cannot be compared",
                    functions[e->fn].name);
            return -1;
        }
        return 0;
    default:
        fail_at(p, e->at, "a logical expression cannot be compared");
        return -1;
    }
}

static int check_arg(struct parser *p, const struct expr *f, size_t i)
{
    const struct expr *a = f->kids[i];
    const char *name = functions[f->fn].name;

    switch (functions[f->fn].params[i]) {
    case T_VALUE:
        if (!a->paren && (a->kind == EX_LIT || (a->kind == EX_QUERY && a->q->singular) ||
                          (a->kind == EX_FUNC && expr_type(a) == T_VALUE)))
            return 0;
        fail_at(p, a->at,
                "argument %zu of %s() must be a value: a literal, a singular query or a "
                "function returning a value",
                i + 1, name);
        return -1;
    case T_NODES:
        if (!a->paren && (a->kind == EX_QUERY || (a->kind == EX_FUNC && expr_type(a) == T_NODES)))
            return 0;
        fail_at(p, a->at, "argument %zu of %s() must be a query", i + 1, name);
        return -1;
    case T_LOGICAL:
        return check_logical(p, a);
    }
    return -1;
}

static struct expr *parse_function(struct parser *p, size_t at, size_t namelen)
{
    struct expr *e = NULL, *arg;
    char buf[32];
    size_t i;
    int fn = -1;

    for (i = 0; i < sizeof(functions) / sizeof(functions[0]); i++)
        if (strlen(functions[i].name) == namelen && !memcmp(functions[i].name, p->s + at, namelen))
            fn = (int)i;
    if (fn < 0) {
        fail_at(p, at, "unknown function '%.*s'", (int)namelen, p->s + at);
        return NULL;
    }
    if (enter(p) < 0)
        return NULL;
    e = new_expr(p, EX_FUNC, at);
    if (e == NULL)
        goto fail;
    e->fn = (enum fn_id)fn;
    p->pos++; /* '(' */
    skip_ws(p);
    if (peek(p) != ')') {
        for (;;) {
            arg = parse_or(p);
            if (arg == NULL || add_kid(p, e, arg) < 0)
                goto fail;
            skip_ws(p);
            if (peek(p) == ')')
                break;
            if (peek(p) != ',') {
                fail_at(p, p->pos, "expected ',' or ')' in the arguments of %s(), found %s",
                        functions[fn].name, describe(p, p->pos, buf, sizeof(buf)));
                goto fail;
            }
            p->pos++;
            skip_ws(p);
        }
    }
    p->pos++; /* ')' */
    if (e->n != functions[fn].nparams) {
        fail_at(p, at, "%s() takes %zu argument%s, not %zu", functions[fn].name,
                functions[fn].nparams, functions[fn].nparams == 1 ? "" : "s", e->n);
        goto fail;
    }
    for (i = 0; i < e->n; i++)
        if (check_arg(p, e, i) < 0)
            goto fail;
    if ((e->fn == FN_MATCH || e->fn == FN_SEARCH) && e->kids[1]->kind == EX_LIT &&
        json_is_string(e->kids[1]->lit)) {
        enum nk_rc rc = regex_compile(json_string_value(e->kids[1]->lit),
                                      json_string_length(e->kids[1]->lit), &e->re);
        if (rc == NK_ERR_NOMEM) {
            fail_nomem(p);
            goto fail;
        }
        e->re_bad = rc != NK_OK;
    }
    p->depth--;
    return e;
fail:
    p->depth--;
    expr_free(e);
    return NULL;
}

/* number = (int / "-0") [ frac ] [ exp ] */
static struct expr *parse_number(struct parser *p)
{
    size_t at = p->pos;
    int is_int = 1;
    char *tmp = NULL;
    struct expr *e = NULL;
    double d;
    json_t *v = NULL;

    if (peek(p) == '-')
        p->pos++;
    if (!is_digit(peek(p))) {
        fail_at(p, p->pos, "expected a digit in number");
        return NULL;
    }
    if (peek(p) == '0' && is_digit(peek_at(p, 1))) {
        fail_at(p, at, "leading zeros are not allowed in a number");
        return NULL;
    }
    while (is_digit(peek(p)))
        p->pos++;
    if (peek(p) == '.') {
        is_int = 0;
        p->pos++;
        if (!is_digit(peek(p))) {
            fail_at(p, p->pos, "expected a digit after the decimal point");
            return NULL;
        }
        while (is_digit(peek(p)))
            p->pos++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        is_int = 0;
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-')
            p->pos++;
        if (!is_digit(peek(p))) {
            fail_at(p, p->pos, "expected a digit in the exponent");
            return NULL;
        }
        while (is_digit(peek(p)))
            p->pos++;
    }
    tmp = malloc(p->pos - at + 1);
    if (tmp == NULL) {
        fail_nomem(p);
        return NULL;
    }
    memcpy(tmp, p->s + at, p->pos - at);
    tmp[p->pos - at] = '\0';
    d = strtod(tmp, NULL);
    if (is_int && d >= -9.2e18 && d <= 9.2e18)
        v = json_integer(strtoll(tmp, NULL, 10));
    else if (isfinite(d))
        v = json_real(d);
    else
        fail_at(p, at, "number out of range");
    free(tmp);
    if (v == NULL) {
        fail_nomem(p);
        return NULL;
    }
    e = new_expr(p, EX_LIT, at);
    if (e == NULL) {
        json_decref(v);
        return NULL;
    }
    e->lit = v;
    return e;
}

/* literal, query or function call */
static struct expr *parse_primary(struct parser *p)
{
    size_t at = p->pos;
    struct expr *e;
    char *str;
    size_t len;
    char buf[32];
    json_t *lit = NULL;
    int c = peek(p);

    if (c == '$' || c == '@') {
        e = new_expr(p, EX_QUERY, at);
        if (e == NULL)
            return NULL;
        e->q = parse_query(p);
        if (e->q == NULL) {
            expr_free(e);
            return NULL;
        }
        return e;
    }
    if (c == '\'' || c == '"') {
        if (parse_string(p, &str, &len) < 0)
            return NULL;
        e = new_expr(p, EX_LIT, at);
        if (e != NULL)
            e->lit = json_stringn_nocheck(str, len);
        free(str);
        if (e != NULL && e->lit == NULL) {
            expr_free(e);
            fail_nomem(p);
            return NULL;
        }
        return e;
    }
    if (c == '-' || is_digit(c))
        return parse_number(p);
    if (c >= 'a' && c <= 'z') {
        while ((c = peek(p)) >= 0 && ((c >= 'a' && c <= 'z') || is_digit(c) || c == '_'))
            p->pos++;
        len = p->pos - at;
        if (peek(p) == '(')
            return parse_function(p, at, len);
        if (is_alpha(peek(p))) {
            fail_at(p, at, "function names are lower-case letters, digits and '_'");
            return NULL;
        }
        if (len == 4 && !memcmp(p->s + at, "true", 4))
            lit = json_true();
        else if (len == 5 && !memcmp(p->s + at, "false", 5))
            lit = json_false();
        else if (len == 4 && !memcmp(p->s + at, "null", 4))
            lit = json_null();
        if (lit == NULL) {
            if (is_blank(peek(p)))
                fail_at(p, at, "unknown name '%.*s' (a function call has no space before '(')",
                        (int)len, p->s + at);
            else
                fail_at(p, at, "unknown name '%.*s'", (int)len, p->s + at);
            return NULL;
        }
        e = new_expr(p, EX_LIT, at);
        if (e != NULL)
            e->lit = lit; /* the singletons need no reference dropped on failure */
        return e;
    }
    fail_at(p, at, "expected a query, a literal or a function call, found %s",
            describe(p, at, buf, sizeof(buf)));
    return NULL;
}

static int parse_cmp_op(struct parser *p, enum cmp_op *op)
{
    int c = peek(p), d = peek_at(p, 1);

    if (c == '=' && d == '=')
        *op = CMP_EQ;
    else if (c == '!' && d == '=')
        *op = CMP_NE;
    else if (c == '<' && d == '=')
        *op = CMP_LE;
    else if (c == '>' && d == '=')
        *op = CMP_GE;
    else if (c == '<')
        *op = CMP_LT;
    else if (c == '>')
        *op = CMP_GT;
    else
        return 0;
    p->pos += (*op == CMP_LT || *op == CMP_GT) ? 1 : 2;
    return 1;
}

/* paren-expr / comparison-expr / test-expr */
static struct expr *parse_basic(struct parser *p)
{
    size_t at = p->pos, save, open;
    struct expr *e = NULL, *inner = NULL, *cmp = NULL, *rhs;
    enum cmp_op op;
    char buf[32];
    int neg = 0, c;

    if (peek(p) == '!') {
        neg = 1;
        p->pos++;
        skip_ws(p);
        c = peek(p);
        if (c != '(' && c != '$' && c != '@' && !(c >= 'a' && c <= 'z')) {
            fail_at(p, p->pos, "expected '(', a query or a function call after '!', found %s",
                    describe(p, p->pos, buf, sizeof(buf)));
            return NULL;
        }
    }
    if (peek(p) == '(') {
        if (enter(p) < 0)
            return NULL;
        open = p->pos;
        p->pos++;
        skip_ws(p);
        inner = parse_or(p);
        p->depth--;
        if (inner == NULL)
            return NULL;
        skip_ws(p);
        if (peek(p) != ')') {
            fail_at(p, p->pos, "expected ')' to close the '(' at column %u, found %s",
                    column_of(p, open), describe(p, p->pos, buf, sizeof(buf)));
            expr_free(inner);
            return NULL;
        }
        p->pos++;
        inner->paren = 1;
        inner->at = open;
    } else {
        inner = parse_primary(p);
        if (inner == NULL)
            return NULL;
        if (inner->kind == EX_LIT && neg) {
            fail_at(p, inner->at, "'!' cannot be applied to a literal");
            expr_free(inner);
            return NULL;
        }
    }
    if (neg) {
        e = new_expr(p, EX_NOT, at);
        if (e == NULL || add_kid(p, e, inner) < 0) {
            if (e == NULL)
                expr_free(inner);
            expr_free(e);
            return NULL;
        }
        return e;
    }
    save = p->pos;
    skip_ws(p);
    if (!parse_cmp_op(p, &op)) {
        if (peek(p) == '=') {
            fail_at(p, p->pos, "'=' is not an operator; compare with '=='");
            expr_free(inner);
            return NULL;
        }
        p->pos = save;
        return inner;
    }
    cmp = new_expr(p, EX_CMP, at);
    if (cmp == NULL || add_kid(p, cmp, inner) < 0) {
        if (cmp == NULL)
            expr_free(inner);
        expr_free(cmp);
        return NULL;
    }
    cmp->op = op;
    if (check_comparable(p, inner) < 0)
        goto fail;
    skip_ws(p);
    c = peek(p);
    if (c == '(' || c == '!') {
        fail_at(p, p->pos,
                "expected a literal, a singular query or a function after the "
                "comparison operator");
        goto fail;
    }
    rhs = parse_primary(p);
    if (rhs == NULL || add_kid(p, cmp, rhs) < 0)
        goto fail;
    if (check_comparable(p, rhs) < 0)
        goto fail;
    return cmp;
fail:
    expr_free(cmp);
    return NULL;
}

static struct expr *parse_chain(struct parser *p, int is_or)
{
    struct expr *first, *e = NULL, *next;
    size_t at = p->pos, save;
    const char *tok = is_or ? "||" : "&&";

    first = is_or ? parse_chain(p, 0) : parse_basic(p);
    if (first == NULL)
        return NULL;
    for (;;) {
        save = p->pos;
        skip_ws(p);
        if (peek(p) != tok[0] || peek_at(p, 1) != tok[1]) {
            p->pos = save;
            break;
        }
        p->pos += 2;
        skip_ws(p);
        if (e == NULL) {
            e = new_expr(p, is_or ? EX_OR : EX_AND, at);
            if (e == NULL || add_kid(p, e, first) < 0) {
                if (e == NULL)
                    expr_free(first);
                expr_free(e);
                return NULL;
            }
        }
        next = is_or ? parse_chain(p, 0) : parse_basic(p);
        if (next == NULL || add_kid(p, e, next) < 0) {
            expr_free(e);
            return NULL;
        }
    }
    return e ? e : first;
}

static struct expr *parse_or(struct parser *p)
{
    return parse_chain(p, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* Public: compile                                                                          */

enum nk_rc nk_jsonpath_compile(const char *expr, struct nk_jsonpath **out, struct nk_error *err)
{
    struct parser p;
    struct nk_jsonpath *jp = NULL;
    size_t i, n;
    uint32_t cp;
    char buf[32];

    memset(&p, 0, sizeof(p));
    p.err = err;
    *out = NULL;
    if (expr == NULL) {
        nk_error_set(err, "no JSONPath query");
        return NK_ERR_INVALID;
    }
    p.s = expr;
    p.len = strlen(expr);
    for (i = 0; i < p.len; i += n) {
        n = utf8_decode((const unsigned char *)expr + i, p.len - i, &cp);
        if (n == 0) {
            fail_at(&p, i, "invalid UTF-8 in query");
            return p.rc;
        }
    }
    jp = calloc(1, sizeof(*jp));
    if (jp == NULL || (jp->text = strdup(expr)) == NULL) {
        fail_nomem(&p);
        goto out;
    }
    if (peek(&p) != '$') {
        fail_at(&p, 0, "a query must start with '$', found %s", describe(&p, 0, buf, sizeof(buf)));
        goto out;
    }
    /* naftikod extension: the generator writes the root as "$.". */
    if (strcmp(expr, "$.") == 0)
        p.len = 1;
    jp->q = parse_query(&p);
    if (jp->q == NULL)
        goto out;
    if (p.pos < p.len) {
        i = p.pos;
        while (i < p.len && is_blank((unsigned char)p.s[i]))
            i++;
        if (i == p.len)
            fail_at(&p, p.pos, "whitespace is not allowed at the end of a query");
        else
            fail_at(&p, i, "unexpected %s after the query; expected '.', '..' or '['",
                    describe(&p, i, buf, sizeof(buf)));
    }
out:
    if (p.rc != NK_OK) {
        nk_jsonpath_free(jp);
        return p.rc;
    }
    *out = jp;
    return NK_OK;
}

void nk_jsonpath_free(struct nk_jsonpath *p)
{
    if (p == NULL)
        return;
    query_free(p->q);
    free(p->text);
    free(p);
}

const char *nk_jsonpath_text(const struct nk_jsonpath *p)
{
    return p->text;
}

int nk_jsonpath_is_singular(const struct nk_jsonpath *p)
{
    return p->q->singular;
}

/* ---------------------------------------------------------------------------------------- */
/* Evaluation                                                                               */

struct nodes {
    json_t **v; /* borrowed values */
    size_t n, cap;
};

struct ctx {
    json_t *root;
    size_t steps;
    int failed; /* OOM or a limit was hit: the whole evaluation fails */
};

static void nodes_cleanup(struct nodes *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

static void push(struct ctx *c, struct nodes *l, json_t *v)
{
    if (c->failed)
        return;
    if (l->n >= MAX_NODES || grow(&l->v, &l->cap, l->n, sizeof(*l->v)) < 0) {
        c->failed = 1;
        return;
    }
    l->v[l->n++] = v;
}

static int tick(struct ctx *c, size_t n)
{
    c->steps += n;
    if (c->steps > MAX_STEPS)
        c->failed = 1;
    return c->failed;
}

static int eval_logical(struct ctx *c, const struct expr *e, json_t *cur);

static void select_slice(struct ctx *c, const struct selector *s, json_t *arr, struct nodes *out)
{
    int64_t len = (int64_t)json_array_size(arr);
    int64_t step = s->step, start, end, lo, hi, i;

    if (step == 0)
        return;
    start = s->has_start ? s->start : (step > 0 ? 0 : len - 1);
    end = s->has_end ? s->end : (step > 0 ? len : -len - 1);
    if (start < 0)
        start += len;
    if (end < 0)
        end += len;
    if (step > 0) {
        lo = start < 0 ? 0 : (start > len ? len : start);
        hi = end < 0 ? 0 : (end > len ? len : end);
        for (i = lo; i < hi && !c->failed; i += step)
            push(c, out, json_array_get(arr, (size_t)i));
    } else {
        hi = start < -1 ? -1 : (start > len - 1 ? len - 1 : start);
        lo = end < -1 ? -1 : (end > len - 1 ? len - 1 : end);
        for (i = hi; lo < i && !c->failed; i += step)
            push(c, out, json_array_get(arr, (size_t)i));
    }
}

static void select_one(struct ctx *c, const struct selector *s, json_t *node, struct nodes *out)
{
    json_t *v;
    size_t i;
    int64_t idx;
    const char *key;
    void *it;

    if (tick(c, 1))
        return;
    switch (s->kind) {
    case SEL_NAME:
        if (json_is_object(node) && (v = json_object_getn(node, s->name, s->name_len)) != NULL)
            push(c, out, v);
        break;
    case SEL_WILD:
        if (json_is_array(node)) {
            json_array_foreach(node, i, v) push(c, out, v);
        } else if (json_is_object(node)) {
            json_object_foreach(node, key, v) push(c, out, v);
        }
        break;
    case SEL_INDEX:
        if (json_is_array(node)) {
            idx = s->index < 0 ? s->index + (int64_t)json_array_size(node) : s->index;
            if (idx >= 0 && idx < (int64_t)json_array_size(node))
                push(c, out, json_array_get(node, (size_t)idx));
        }
        break;
    case SEL_SLICE:
        if (json_is_array(node))
            select_slice(c, s, node, out);
        break;
    case SEL_FILTER:
        if (json_is_array(node)) {
            for (i = 0; i < json_array_size(node) && !c->failed; i++) {
                v = json_array_get(node, i);
                if (eval_logical(c, s->filter, v))
                    push(c, out, v);
            }
        } else if (json_is_object(node)) {
            for (it = json_object_iter(node); it != NULL && !c->failed;
                 it = json_object_iter_next(node, it)) {
                v = json_object_iter_value(it);
                if (eval_logical(c, s->filter, v))
                    push(c, out, v);
            }
        }
        break;
    }
}

static void select_all(struct ctx *c, const struct segment *seg, json_t *node, struct nodes *out)
{
    size_t i;

    for (i = 0; i < seg->n && !c->failed; i++)
        select_one(c, &seg->sels[i], node, out);
}

struct frame {
    json_t *node;
    size_t idx;
    void *it;
};

/* The descendant segment visits the node and its descendants in pre-order, iteratively so
 * that a deep document cannot exhaust the C stack. */
static void select_descendants(struct ctx *c, const struct segment *seg, json_t *node,
                               struct nodes *out)
{
    struct frame *st = NULL, *f;
    size_t n = 0, cap = 0;
    json_t *child;

    select_all(c, seg, node, out);
    if (!json_is_array(node) && !json_is_object(node))
        return;
    if (grow(&st, &cap, n, sizeof(*st)) < 0) {
        c->failed = 1;
        return;
    }
    st[n++] = (struct frame){node, 0, json_is_object(node) ? json_object_iter(node) : NULL};
    while (n > 0 && !c->failed) {
        f = &st[n - 1];
        child = NULL;
        if (json_is_array(f->node)) {
            if (f->idx < json_array_size(f->node))
                child = json_array_get(f->node, f->idx++);
        } else if (f->it != NULL) {
            child = json_object_iter_value(f->it);
            f->it = json_object_iter_next(f->node, f->it);
        }
        if (child == NULL) {
            n--;
            continue;
        }
        select_all(c, seg, child, out);
        if (json_is_array(child) || json_is_object(child)) {
            if (grow(&st, &cap, n, sizeof(*st)) < 0) {
                c->failed = 1;
                break;
            }
            st[n++] =
                (struct frame){child, 0, json_is_object(child) ? json_object_iter(child) : NULL};
        }
    }
    free(st);
}

/* The nodelist of q with cur as '@'; out must be empty. */
static void eval_query(struct ctx *c, const struct query *q, json_t *cur, struct nodes *out)
{
    struct nodes in = {0}, tmp;
    size_t i, j;

    push(c, out, q->relative ? cur : c->root);
    for (i = 0; i < q->n && !c->failed && out->n > 0; i++) {
        tmp = in;
        in = *out;
        *out = tmp;
        out->n = 0;
        for (j = 0; j < in.n && !c->failed; j++) {
            if (q->segs[i].descendant)
                select_descendants(c, &q->segs[i], in.v[j], out);
            else
                select_all(c, &q->segs[i], in.v[j], out);
        }
    }
    nodes_cleanup(&in);
    if (c->failed)
        out->n = 0;
}

/* The node of a singular query, or NULL for Nothing. */
static json_t *eval_singular(const struct ctx *c, const struct query *q, json_t *cur)
{
    json_t *v = q->relative ? cur : c->root;
    const struct selector *s;
    int64_t idx;
    size_t i;

    for (i = 0; i < q->n && v != NULL; i++) {
        s = &q->segs[i].sels[0];
        if (s->kind == SEL_NAME) {
            v = json_is_object(v) ? json_object_getn(v, s->name, s->name_len) : NULL;
        } else if (json_is_array(v)) {
            idx = s->index < 0 ? s->index + (int64_t)json_array_size(v) : s->index;
            v = (idx >= 0 && idx < (int64_t)json_array_size(v)) ? json_array_get(v, (size_t)idx)
                                                                : NULL;
        } else {
            v = NULL;
        }
    }
    return v;
}

struct val {
    json_t *v;     /* borrowed or == owned; NULL is Nothing */
    json_t *owned; /* reference to drop */
};

static void val_cleanup(struct val *v)
{
    json_decref(v->owned);
    v->v = v->owned = NULL;
}

static int regex_run(struct ctx *c, const struct regex *re, const char *s, size_t len, int full);

static void eval_value(struct ctx *c, const struct expr *e, json_t *cur, struct val *out);

static size_t utf8_count(const char *s, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

static int eval_regex_fn(struct ctx *c, const struct expr *e, json_t *cur)
{
    struct val subj = {0}, pat = {0};
    struct regex *re = NULL;
    int r = 0;

    eval_value(c, e->kids[0], cur, &subj);
    if (!json_is_string(subj.v))
        goto out;
    if (e->re != NULL || e->re_bad) {
        if (e->re_bad)
            goto out;
        r = regex_run(c, e->re, json_string_value(subj.v), json_string_length(subj.v),
                      e->fn == FN_MATCH);
        goto out;
    }
    eval_value(c, e->kids[1], cur, &pat);
    if (!json_is_string(pat.v) || tick(c, json_string_length(pat.v) + 1))
        goto out;
    switch (regex_compile(json_string_value(pat.v), json_string_length(pat.v), &re)) {
    case NK_OK:
        break;
    case NK_ERR_NOMEM:
        c->failed = 1;
        goto out;
    default:
        goto out;
    }
    /* Compiling a pattern from the document costs up to its program size. */
    if (!tick(c, regex_size(re)))
        r = regex_run(c, re, json_string_value(subj.v), json_string_length(subj.v),
                      e->fn == FN_MATCH);
out:
    regex_free(re);
    val_cleanup(&subj);
    val_cleanup(&pat);
    return r;
}

static void eval_value(struct ctx *c, const struct expr *e, json_t *cur, struct val *out)
{
    struct val arg = {0};
    struct nodes l = {0};
    json_t *v = NULL;

    out->v = out->owned = NULL;
    if (c->failed)
        return;
    if (e->kind == EX_LIT) {
        out->v = e->lit;
        return;
    }
    if (e->kind == EX_QUERY) {
        out->v = eval_singular(c, e->q, cur);
        return;
    }
    /* EX_FUNC returning a value */
    switch (e->fn) {
    case FN_LENGTH:
        eval_value(c, e->kids[0], cur, &arg);
        if (json_is_string(arg.v))
            v = json_integer(
                (json_int_t)utf8_count(json_string_value(arg.v), json_string_length(arg.v)));
        else if (json_is_array(arg.v))
            v = json_integer((json_int_t)json_array_size(arg.v));
        else if (json_is_object(arg.v))
            v = json_integer((json_int_t)json_object_size(arg.v));
        else
            break;
        if (v == NULL)
            c->failed = 1;
        out->v = out->owned = v;
        break;
    case FN_COUNT:
        eval_query(c, e->kids[0]->q, cur, &l);
        if (c->failed)
            break;
        v = json_integer((json_int_t)l.n);
        if (v == NULL)
            c->failed = 1;
        out->v = out->owned = v;
        break;
    case FN_VALUE:
        eval_query(c, e->kids[0]->q, cur, &l);
        if (l.n == 1)
            out->v = l.v[0];
        break;
    default:
        break;
    }
    val_cleanup(&arg);
    nodes_cleanup(&l);
}

/* -1, 0, 1 for two numbers */
static int num_cmp(const json_t *a, const json_t *b)
{
    double x, y;

    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t i = json_integer_value(a), j = json_integer_value(b);
        return i < j ? -1 : i > j;
    }
    x = json_number_value(a);
    y = json_number_value(b);
    return x < y ? -1 : x > y;
}

static int deep_equal(struct ctx *c, const json_t *a, const json_t *b, unsigned depth)
{
    size_t i;
    const char *key;
    size_t klen;
    json_t *v, *w;

    if (depth > MAX_EQ_DEPTH) {
        c->failed = 1;
        return 0;
    }
    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) == 0;
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (i = 0; i < json_array_size(a); i++)
            if (!deep_equal(c, json_array_get(a, i), json_array_get(b, i), depth + 1))
                return 0;
        return 1;
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b))
            return 0;
        json_object_keylen_foreach((json_t *)a, key, klen, v)
        {
            w = json_object_getn(b, key, klen);
            if (w == NULL || !deep_equal(c, v, w, depth + 1))
                return 0;
        }
        return 1;
    default:
        return 1; /* true, false, null */
    }
}

static int less_than(const json_t *a, const json_t *b)
{
    size_t la, lb;
    int r;

    if (json_is_number(a) && json_is_number(b))
        return num_cmp(a, b) < 0;
    if (json_is_string(a) && json_is_string(b)) {
        /* UTF-8 byte order is code point order. */
        la = json_string_length(a);
        lb = json_string_length(b);
        r = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
        return r < 0 || (r == 0 && la < lb);
    }
    return 0;
}

static int compare(struct ctx *c, enum cmp_op op, const json_t *a, const json_t *b)
{
    int eq;

    if (op == CMP_GT || op == CMP_GE)
        return compare(c, op == CMP_GT ? CMP_LT : CMP_LE, b, a);
    if (a == NULL || b == NULL)
        eq = a == b;
    else
        eq = deep_equal(c, a, b, 0);
    switch (op) {
    case CMP_EQ:
        return eq;
    case CMP_NE:
        return !eq;
    case CMP_LT:
        return a != NULL && b != NULL && less_than(a, b);
    case CMP_LE:
        return eq || (a != NULL && b != NULL && less_than(a, b));
    default:
        return 0;
    }
}

static int eval_logical(struct ctx *c, const struct expr *e, json_t *cur)
{
    struct val a = {0}, b = {0};
    struct nodes l = {0};
    size_t i;
    int r = 0;

    if (c->failed || tick(c, 1))
        return 0;
    switch (e->kind) {
    case EX_OR:
        for (i = 0; i < e->n && !r; i++)
            r = eval_logical(c, e->kids[i], cur);
        break;
    case EX_AND:
        for (r = 1, i = 0; i < e->n && r; i++)
            r = eval_logical(c, e->kids[i], cur);
        break;
    case EX_NOT:
        r = !eval_logical(c, e->kids[0], cur);
        break;
    case EX_CMP:
        eval_value(c, e->kids[0], cur, &a);
        eval_value(c, e->kids[1], cur, &b);
        r = compare(c, e->op, a.v, b.v);
        val_cleanup(&a);
        val_cleanup(&b);
        break;
    case EX_QUERY:
        eval_query(c, e->q, cur, &l);
        r = l.n > 0;
        nodes_cleanup(&l);
        break;
    case EX_FUNC:
        if (e->fn == FN_MATCH || e->fn == FN_SEARCH)
            r = eval_regex_fn(c, e, cur);
        break;
    case EX_LIT:
        break;
    }
    return c->failed ? 0 : r;
}

json_t *nk_jsonpath_query(const struct nk_jsonpath *p, json_t *doc)
{
    struct ctx c = {doc, 0, 0};
    struct nodes l = {0};
    json_t *arr = NULL;
    size_t i;

    if (doc == NULL)
        return NULL;
    eval_query(&c, p->q, doc, &l);
    if (c.failed)
        goto out;
    arr = json_array();
    for (i = 0; arr != NULL && i < l.n; i++) {
        if (json_array_append(arr, l.v[i]) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
out:
    nodes_cleanup(&l);
    return arr;
}

json_t *nk_jsonpath_first(const struct nk_jsonpath *p, json_t *doc)
{
    json_t *arr = nk_jsonpath_query(p, doc), *v = NULL;

    if (arr != NULL && json_array_size(arr) > 0)
        v = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return v;
}

/* ---------------------------------------------------------------------------------------- */
/* I-Regexp (RFC 9485): parsed to a tree, compiled to a Thompson NFA, run in linear time    */

enum uc_cat {
    UC_LU,
    UC_LL,
    UC_LT,
    UC_LM,
    UC_LO,
    UC_MN,
    UC_MC,
    UC_ME,
    UC_ND,
    UC_NL,
    UC_NO,
    UC_PC,
    UC_PD,
    UC_PS,
    UC_PE,
    UC_PI,
    UC_PF,
    UC_PO,
    UC_SM,
    UC_SC,
    UC_SK,
    UC_SO,
    UC_ZS,
    UC_ZL,
    UC_ZP,
    UC_CC,
    UC_CF,
    UC_CS,
    UC_CO,
    UC_CN
};

struct ucd_range {
    uint32_t lo, hi;
    enum uc_cat cat;
};

#include "jsonpath_ucd.inc"

static enum uc_cat ucd_category(uint32_t cp)
{
    size_t lo = 0, hi = sizeof(ucd_ranges) / sizeof(ucd_ranges[0]), mid;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (cp < ucd_ranges[mid].lo)
            hi = mid;
        else if (cp > ucd_ranges[mid].hi)
            lo = mid + 1;
        else
            return ucd_ranges[mid].cat;
    }
    return UC_CN;
}

struct re_item {
    uint32_t lo, hi; /* a range, or when mask != 0 a category test */
    uint32_t mask;   /* bit per enum uc_cat */
    int neg;         /* \P{..} */
};

struct re_class {
    int neg;
    struct re_item *items; /* owned */
    size_t n, cap;
};

enum re_op { RE_CHAR, RE_ANY, RE_CLASS, RE_SPLIT, RE_JMP, RE_MATCH, RE_BOL, RE_EOL };

struct re_inst {
    enum re_op op;
    uint32_t c; /* RE_CHAR code point, RE_CLASS class index */
    size_t x, y;
};

struct regex {
    struct re_inst *prog; /* owned */
    size_t n, cap;
    struct re_class *classes; /* owned */
    size_t ncls, clscap;
    int nomem; /* an allocation failed while emitting the program */
};

enum rn_kind { RN_CHAR, RN_ANY, RN_CLASS, RN_CAT, RN_ALT, RN_REPEAT, RN_BOL, RN_EOL };

struct re_node {
    enum rn_kind kind;
    uint32_t c;            /* RN_CHAR code point, RN_CLASS class index */
    struct re_node **kids; /* owned */
    size_t n, cap;
    int min, max; /* RN_REPEAT; max -1 is unbounded */
};

struct re_parser {
    const unsigned char *s;
    size_t len, pos;
    unsigned depth;
    int nomem, bad;
    struct regex *re;
};

static void re_node_free(struct re_node *n)
{
    size_t i;

    if (n == NULL)
        return;
    for (i = 0; i < n->n; i++)
        re_node_free(n->kids[i]);
    free(n->kids);
    free(n);
}

static void regex_free(struct regex *re)
{
    size_t i;

    if (re == NULL)
        return;
    for (i = 0; i < re->ncls; i++)
        free(re->classes[i].items);
    free(re->classes);
    free(re->prog);
    free(re);
}

static struct re_node *rn_new(struct re_parser *rp, enum rn_kind kind)
{
    struct re_node *n = calloc(1, sizeof(*n));

    if (n == NULL)
        rp->nomem = 1;
    else
        n->kind = kind;
    return n;
}

static int rn_add(struct re_parser *rp, struct re_node *n, struct re_node *kid)
{
    if (grow(&n->kids, &n->cap, n->n, sizeof(*n->kids)) < 0) {
        re_node_free(kid);
        rp->nomem = 1;
        return -1;
    }
    n->kids[n->n++] = kid;
    return 0;
}

static int rp_peek(const struct re_parser *rp)
{
    return rp->pos < rp->len ? rp->s[rp->pos] : -1;
}

static uint32_t rp_next(struct re_parser *rp)
{
    uint32_t cp;

    rp->pos += utf8_next(rp->s + rp->pos, rp->len - rp->pos, &cp);
    return cp;
}

/* charProp after "\p{" or "\P{": the category mask, 0 when invalid. */
static uint32_t re_category(struct re_parser *rp)
{
    static const struct {
        char major;
        const char *minors;
        enum uc_cat cats[7];
    } groups[] = {
        {'L', "lmotu", {UC_LL, UC_LM, UC_LO, UC_LT, UC_LU}},
        {'M', "cen", {UC_MC, UC_ME, UC_MN}},
        {'N', "dlo", {UC_ND, UC_NL, UC_NO}},
        {'P', "cdefios", {UC_PC, UC_PD, UC_PE, UC_PF, UC_PI, UC_PO, UC_PS}},
        {'Z', "lps", {UC_ZL, UC_ZP, UC_ZS}},
        {'S', "ckmo", {UC_SC, UC_SK, UC_SM, UC_SO}},
        {'C', "cfno", {UC_CC, UC_CF, UC_CN, UC_CO}},
    };
    size_t g, i;
    uint32_t mask = 0;
    int c = rp_peek(rp);
    const char *m;

    for (g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
        if (groups[g].major == c)
            break;
    if (g == sizeof(groups) / sizeof(groups[0]))
        return 0;
    rp->pos++;
    c = rp_peek(rp);
    if (c == '}') {
        for (i = 0; i < strlen(groups[g].minors); i++)
            mask |= 1u << groups[g].cats[i];
    } else {
        m = c > 0 ? strchr(groups[g].minors, c) : NULL;
        if (m == NULL)
            return 0;
        mask = 1u << groups[g].cats[m - groups[g].minors];
        rp->pos++;
    }
    if (rp_peek(rp) != '}')
        return 0;
    rp->pos++;
    return mask;
}

/* After '\': SingleCharEsc as a code point, or -1 (then *cat is set for \p / \P, or bad). */
static int64_t re_escape(struct re_parser *rp, uint32_t *mask, int *neg)
{
    int c = rp_peek(rp);

    *mask = 0;
    if (c < 0) {
        rp->bad = 1;
        return -1;
    }
    rp->pos++;
    switch (c) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case '(':
    case ')':
    case '*':
    case '+':
    case '-':
    case '.':
    case '?':
    case '[':
    case '\\':
    case ']':
    case '^':
    case '{':
    case '|':
    case '}':
        return c;
    case 'p':
    case 'P':
        *neg = c == 'P';
        if (rp_peek(rp) != '{') {
            rp->bad = 1;
            return -1;
        }
        rp->pos++;
        *mask = re_category(rp);
        if (*mask == 0)
            rp->bad = 1;
        return -1;
    default:
        rp->bad = 1;
        return -1;
    }
}

static struct re_class *re_new_class(struct re_parser *rp, uint32_t *idx)
{
    struct regex *re = rp->re;
    struct re_class *k;

    if (grow(&re->classes, &re->clscap, re->ncls, sizeof(*re->classes)) < 0) {
        rp->nomem = 1;
        return NULL;
    }
    *idx = (uint32_t)re->ncls;
    k = &re->classes[re->ncls++];
    memset(k, 0, sizeof(*k));
    return k;
}

static int re_class_add(struct re_parser *rp, struct re_class *k, uint32_t lo, uint32_t hi,
                        uint32_t mask, int neg)
{
    if (grow(&k->items, &k->cap, k->n, sizeof(*k->items)) < 0) {
        rp->nomem = 1;
        return -1;
    }
    k->items[k->n++] = (struct re_item){lo, hi, mask, neg};
    return 0;
}

/* One CCchar (possibly escaped); -1 with *mask set for a category, -1 and rp->bad on error. */
static int64_t re_ccchar(struct re_parser *rp, uint32_t *mask, int *neg)
{
    int c = rp_peek(rp);

    *mask = 0;
    if (c < 0 || c == '[' || c == ']' || c == '-') {
        rp->bad = 1;
        return -1;
    }
    if (c == '\\') {
        rp->pos++;
        return re_escape(rp, mask, neg);
    }
    return rp_next(rp);
}

/* charClassExpr after '[' */
static struct re_node *re_class_expr(struct re_parser *rp)
{
    struct re_node *n = rn_new(rp, RN_CLASS);
    struct re_class *k;
    int64_t lo, hi;
    uint32_t mask, idx;
    int neg = 0, first = 1;

    if (n == NULL || (k = re_new_class(rp, &idx)) == NULL)
        goto fail;
    n->c = idx;
    if (rp_peek(rp) == '^') {
        k->neg = 1;
        rp->pos++;
    }
    for (;;) {
        if (rp_peek(rp) == ']' && !first)
            break;
        if (rp_peek(rp) == '-') {
            rp->pos++;
            if (!first && rp_peek(rp) != ']')
                goto bad;
            if (re_class_add(rp, k, '-', '-', 0, 0) < 0)
                goto fail;
            first = 0;
            continue;
        }
        first = 0;
        lo = re_ccchar(rp, &mask, &neg);
        if (lo < 0) {
            if (mask == 0 || re_class_add(rp, k, 0, 0, mask, neg) < 0)
                goto fail;
            continue;
        }
        hi = lo;
        if (rp_peek(rp) == '-' && rp->pos + 1 < rp->len && rp->s[rp->pos + 1] != ']') {
            rp->pos++;
            hi = re_ccchar(rp, &mask, &neg);
            if (hi < lo)
                goto bad;
        }
        if (re_class_add(rp, k, (uint32_t)lo, (uint32_t)hi, 0, 0) < 0)
            goto fail;
    }
    rp->pos++; /* ']' */
    return n;
bad:
    rp->bad = 1;
fail:
    re_node_free(n);
    return NULL;
}

static struct re_node *re_alt(struct re_parser *rp);

static struct re_node *re_atom(struct re_parser *rp)
{
    struct re_node *n;
    struct re_class *k;
    int64_t ch;
    uint32_t mask, idx;
    int neg = 0, c = rp_peek(rp);

    switch (c) {
    case '(':
        if (rp->depth >= MAX_DEPTH) {
            rp->bad = 1;
            return NULL;
        }
        rp->depth++;
        rp->pos++;
        n = re_alt(rp);
        rp->depth--;
        if (n != NULL && rp_peek(rp) != ')') {
            rp->bad = 1;
            re_node_free(n);
            return NULL;
        }
        rp->pos++;
        return n;
    case '.':
        rp->pos++;
        return rn_new(rp, RN_ANY);
    case '^':
        /* Not in the RFC 9485 grammar (there '^' and '$' are ordinary characters), but every
         * mapping in its section 5 keeps them as anchors, and the CTS expects that. */
        rp->pos++;
        return rn_new(rp, RN_BOL);
    case '$':
        rp->pos++;
        return rn_new(rp, RN_EOL);
    case '[':
        rp->pos++;
        return re_class_expr(rp);
    case '\\':
        rp->pos++;
        ch = re_escape(rp, &mask, &neg);
        if (ch >= 0) {
            n = rn_new(rp, RN_CHAR);
            if (n != NULL)
                n->c = (uint32_t)ch;
            return n;
        }
        if (mask == 0)
            return NULL;
        n = rn_new(rp, RN_CLASS);
        if (n == NULL || (k = re_new_class(rp, &idx)) == NULL ||
            re_class_add(rp, k, 0, 0, mask, neg) < 0) {
            re_node_free(n);
            return NULL;
        }
        n->c = idx;
        return n;
    case '*':
    case '+':
    case '?':
    case '{':
    case '}':
    case ']':
        rp->bad = 1;
        return NULL;
    default:
        n = rn_new(rp, RN_CHAR);
        if (n != NULL)
            n->c = rp_next(rp);
        return n;
    }
}

static int re_quant_num(struct re_parser *rp, int *out)
{
    long v = 0;

    if (rp_peek(rp) < '0' || rp_peek(rp) > '9')
        return -1;
    while (rp_peek(rp) >= '0' && rp_peek(rp) <= '9') {
        v = v * 10 + (rp_peek(rp) - '0');
        if (v > RE_MAX_QUANT)
            return -1;
        rp->pos++;
    }
    *out = (int)v;
    return 0;
}

static struct re_node *re_piece(struct re_parser *rp)
{
    struct re_node *atom, *rep;
    int min, max, c;

    atom = re_atom(rp);
    if (atom == NULL)
        return NULL;
    c = rp_peek(rp);
    if (c != '*' && c != '+' && c != '?' && c != '{')
        return atom;
    if (atom->kind == RN_BOL || atom->kind == RN_EOL)
        goto bad; /* an anchor cannot be quantified */
    rp->pos++;
    if (c == '*') {
        min = 0;
        max = -1;
    } else if (c == '+') {
        min = 1;
        max = -1;
    } else if (c == '?') {
        min = 0;
        max = 1;
    } else {
        if (re_quant_num(rp, &min) < 0)
            goto bad;
        max = min;
        if (rp_peek(rp) == ',') {
            rp->pos++;
            max = -1;
            if (rp_peek(rp) != '}' && (re_quant_num(rp, &max) < 0 || max < min))
                goto bad;
        }
        if (rp_peek(rp) != '}')
            goto bad;
        rp->pos++;
    }
    rep = rn_new(rp, RN_REPEAT);
    if (rep == NULL || rn_add(rp, rep, atom) < 0) {
        if (rep == NULL)
            re_node_free(atom);
        re_node_free(rep);
        return NULL;
    }
    rep->min = min;
    rep->max = max;
    return rep;
bad:
    rp->bad = 1;
    re_node_free(atom);
    return NULL;
}

static struct re_node *re_alt(struct re_parser *rp)
{
    struct re_node *alt = rn_new(rp, RN_ALT), *branch = NULL, *piece;
    int c;

    if (alt == NULL)
        return NULL;
    for (;;) {
        branch = rn_new(rp, RN_CAT);
        if (branch == NULL)
            goto fail;
        while ((c = rp_peek(rp)) >= 0 && c != '|' && c != ')') {
            piece = re_piece(rp);
            if (piece == NULL || rn_add(rp, branch, piece) < 0)
                goto fail;
        }
        if (rn_add(rp, alt, branch) < 0) {
            branch = NULL;
            goto fail;
        }
        branch = NULL;
        if (rp_peek(rp) != '|')
            break;
        rp->pos++;
    }
    return alt;
fail:
    re_node_free(branch);
    re_node_free(alt);
    return NULL;
}

static int re_emit(struct regex *re, enum re_op op, uint32_t c, size_t x, size_t y)
{
    if (re->n >= RE_MAX_PROG)
        return -1;
    if (grow(&re->prog, &re->cap, re->n, sizeof(*re->prog)) < 0) {
        re->nomem = 1;
        return -1;
    }
    re->prog[re->n++] = (struct re_inst){op, c, x, y};
    return 0;
}

static int re_gen(struct regex *re, const struct re_node *n)
{
    size_t i, split, jmp, loop;
    int k;

    switch (n->kind) {
    case RN_CHAR:
        return re_emit(re, RE_CHAR, n->c, 0, 0);
    case RN_ANY:
        return re_emit(re, RE_ANY, 0, 0, 0);
    case RN_CLASS:
        return re_emit(re, RE_CLASS, n->c, 0, 0);
    case RN_BOL:
        return re_emit(re, RE_BOL, 0, 0, 0);
    case RN_EOL:
        return re_emit(re, RE_EOL, 0, 0, 0);
    case RN_CAT:
        for (i = 0; i < n->n; i++)
            if (re_gen(re, n->kids[i]) < 0)
                return -1;
        return 0;
    case RN_ALT:
        if (n->n == 1)
            return re_gen(re, n->kids[0]);
        /* split a, L1; a; jmp END; L1: split b, L2; b; jmp END; ... last; END:
         * the jumps are chained through .x and patched at the end. */
        jmp = SIZE_MAX;
        for (i = 0; i < n->n; i++) {
            split = re->n;
            if (i + 1 < n->n && re_emit(re, RE_SPLIT, 0, split + 1, 0) < 0)
                return -1;
            if (re_gen(re, n->kids[i]) < 0)
                return -1;
            if (i + 1 < n->n) {
                if (re_emit(re, RE_JMP, 0, jmp, 0) < 0)
                    return -1;
                jmp = re->n - 1;
                re->prog[split].y = re->n;
            }
        }
        while (jmp != SIZE_MAX) {
            i = re->prog[jmp].x;
            re->prog[jmp].x = re->n;
            jmp = i;
        }
        return 0;
    case RN_REPEAT:
        for (k = 0; k < n->min; k++)
            if (re_gen(re, n->kids[0]) < 0)
                return -1;
        if (n->max < 0) {
            loop = re->n;
            if (re_emit(re, RE_SPLIT, 0, loop + 1, 0) < 0 || re_gen(re, n->kids[0]) < 0 ||
                re_emit(re, RE_JMP, 0, loop, 0) < 0)
                return -1;
            re->prog[loop].y = re->n;
            return 0;
        }
        /* Optional copies, each split skipping to the common end (patched via a chain). */
        jmp = SIZE_MAX;
        for (k = n->min; k < n->max; k++) {
            split = re->n;
            if (re_emit(re, RE_SPLIT, 0, split + 1, jmp) < 0 || re_gen(re, n->kids[0]) < 0)
                return -1;
            jmp = split;
        }
        while (jmp != SIZE_MAX) {
            i = re->prog[jmp].y;
            re->prog[jmp].y = re->n;
            jmp = i;
        }
        return 0;
    }
    return -1;
}

/* NK_OK, NK_ERR_NOMEM, or NK_ERR_INVALID for a pattern that is not an I-Regexp (or too big). */
static enum nk_rc regex_compile(const char *pat, size_t len, struct regex **out)
{
    struct re_parser rp;
    struct re_node *tree = NULL;
    struct regex *re;
    enum nk_rc rc = NK_OK;
    size_t i, n;
    uint32_t cp;

    *out = NULL;
    for (i = 0; i < len; i += n) {
        n = utf8_decode((const unsigned char *)pat + i, len - i, &cp);
        if (n == 0)
            return NK_ERR_INVALID;
    }
    re = calloc(1, sizeof(*re));
    if (re == NULL)
        return NK_ERR_NOMEM;
    memset(&rp, 0, sizeof(rp));
    rp.s = (const unsigned char *)pat;
    rp.len = len;
    rp.re = re;
    tree = re_alt(&rp);
    if (tree != NULL && rp.pos != rp.len)
        rp.bad = 1; /* a stray ')' */
    if (rp.nomem) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    if (tree == NULL || rp.bad) {
        rc = NK_ERR_INVALID;
        goto out;
    }
    if (re_gen(re, tree) < 0 || re_emit(re, RE_MATCH, 0, 0, 0) < 0) {
        rc = re->nomem ? NK_ERR_NOMEM : NK_ERR_INVALID; /* else the program is too large */
        goto out;
    }
out:
    re_node_free(tree);
    if (rc != NK_OK)
        regex_free(re);
    else
        *out = re;
    return rc;
}

static size_t regex_size(const struct regex *re)
{
    return re->n;
}

static int class_match(const struct re_class *k, uint32_t cp)
{
    size_t i;
    int in = 0;
    uint32_t bit;

    for (i = 0; i < k->n && !in; i++) {
        if (k->items[i].mask) {
            bit = 1u << ucd_category(cp);
            in = ((k->items[i].mask & bit) != 0) != k->items[i].neg;
        } else {
            in = cp >= k->items[i].lo && cp <= k->items[i].hi;
        }
    }
    return in != k->neg;
}

struct re_run {
    const struct regex *re;
    size_t *mark; /* generation at which a pc was last added */
    size_t *stack;
    size_t gen;
    int at_start, at_end; /* the position being added at is the start / end of the subject */
};

static void re_add(struct re_run *r, size_t *list, size_t *n, size_t pc0)
{
    const struct re_inst *in;
    size_t sp = 0, pc;

    r->stack[sp++] = pc0;
    while (sp > 0) {
        pc = r->stack[--sp];
        if (r->mark[pc] == r->gen)
            continue;
        r->mark[pc] = r->gen;
        in = &r->re->prog[pc];
        if (in->op == RE_JMP) {
            r->stack[sp++] = in->x;
        } else if (in->op == RE_SPLIT) {
            r->stack[sp++] = in->y;
            r->stack[sp++] = in->x;
        } else if (in->op == RE_BOL || in->op == RE_EOL) {
            if (in->op == RE_BOL ? r->at_start : r->at_end)
                r->stack[sp++] = pc + 1;
        } else {
            list[(*n)++] = pc;
        }
    }
}

static int has_match(const struct regex *re, const size_t *list, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (re->prog[list[i]].op == RE_MATCH)
            return 1;
    return 0;
}

/* match() when full, search() otherwise. */
static int regex_run(struct ctx *c, const struct regex *re, const char *s, size_t len, int full)
{
    struct re_run r = {re, NULL, NULL, 0, 1, len == 0};
    size_t *clist = NULL, *nlist = NULL, *t;
    size_t cn = 0, nn, i, pos = 0;
    const struct re_inst *in;
    uint32_t cp;
    int ok, res = 0;

    if (tick(c, re->n / 64 + 1))
        return 0;
    /* Each pc is marked once per generation, so a stack of 2n + 1 suffices. */
    r.mark = calloc(re->n, sizeof(*r.mark));
    r.stack = malloc((2 * re->n + 1) * sizeof(*r.stack));
    clist = malloc(re->n * sizeof(*clist));
    nlist = malloc(re->n * sizeof(*nlist));
    if (r.mark == NULL || r.stack == NULL || clist == NULL || nlist == NULL) {
        c->failed = 1;
        goto out;
    }
    r.gen = 1;
    re_add(&r, clist, &cn, 0);
    for (;;) {
        if (!full && has_match(re, clist, cn)) {
            res = 1;
            break;
        }
        if (pos >= len || (full && cn == 0))
            break;
        if (tick(c, cn + 1))
            break;
        pos += utf8_next((const unsigned char *)s + pos, len - pos, &cp);
        r.gen++;
        r.at_start = 0;
        r.at_end = pos >= len;
        nn = 0;
        for (i = 0; i < cn; i++) {
            in = &re->prog[clist[i]];
            switch (in->op) {
            case RE_CHAR:
                ok = in->c == cp;
                break;
            case RE_ANY:
                ok = cp != '\n' && cp != '\r';
                break;
            case RE_CLASS:
                ok = class_match(&re->classes[in->c], cp);
                break;
            default:
                ok = 0;
                break;
            }
            if (ok)
                re_add(&r, nlist, &nn, clist[i] + 1);
        }
        if (!full)
            re_add(&r, nlist, &nn, 0);
        t = clist;
        clist = nlist;
        nlist = t;
        cn = nn;
    }
    if (full && pos >= len)
        res = has_match(re, clist, cn);
out:
    free(r.mark);
    free(r.stack);
    free(clist);
    free(nlist);
    return c->failed ? 0 : res;
}
