/* SPDX-License-Identifier: Apache-2.0 */
/* spec.c: the libyaml seam: one YAML document -> an nk_node tree with positions and limits. */
#include "naftikod/spec.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct builder {
    struct nk_node *stack[NK_SPEC_MAX_DEPTH + 1];
    size_t depth;
    size_t nodes;
    struct nk_node *root;
};

void nk_node_free(struct nk_node *n)
{
    size_t i;

    if (n == NULL)
        return;
    if (n->kind == NK_NODE_MAPPING) {
        for (i = 0; i < n->n; i++) {
            nk_node_free(n->pairs[i].key);
            nk_node_free(n->pairs[i].value);
        }
        free(n->pairs);
    } else if (n->kind == NK_NODE_SEQUENCE) {
        for (i = 0; i < n->n; i++)
            nk_node_free(n->items[i]);
        free(n->items);
    }
    free(n);
}

struct nk_node *nk_node_new_scalar(const char *text, unsigned line, unsigned column)
{
    size_t len = strlen(text);
    struct nk_node *n = calloc(1, sizeof(*n) + len + 1);

    if (n == NULL)
        return NULL;
    n->kind = NK_NODE_SCALAR;
    n->line = line;
    n->column = column;
    n->str = (char *)(n + 1);
    memcpy(n->str, text, len + 1);
    n->len = len;
    n->style = NK_SCALAR_QUOTED;
    return n;
}

const struct nk_node *nk_node_get(const struct nk_node *map, const char *key)
{
    size_t i;

    if (map == NULL || map->kind != NK_NODE_MAPPING)
        return NULL;
    for (i = 0; i < map->n; i++)
        if (strcmp(map->pairs[i].key->str, key) == 0)
            return map->pairs[i].value;
    return NULL;
}

bool nk_node_is_null(const struct nk_node *n)
{
    if (n == NULL || n->kind != NK_NODE_SCALAR || n->style != NK_SCALAR_PLAIN)
        return false;
    return n->len == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

bool nk_node_bool(const struct nk_node *n, bool *v)
{
    if (n == NULL || n->kind != NK_NODE_SCALAR || n->style != NK_SCALAR_PLAIN)
        return false;
    if (strcmp(n->str, "true") == 0 || strcmp(n->str, "True") == 0 || strcmp(n->str, "TRUE") == 0) {
        *v = true;
        return true;
    }
    if (strcmp(n->str, "false") == 0 || strcmp(n->str, "False") == 0 ||
        strcmp(n->str, "FALSE") == 0) {
        *v = false;
        return true;
    }
    return false;
}

bool nk_node_int(const struct nk_node *n, long long *v)
{
    const char *p;
    char *end;
    long long x;

    if (n == NULL || n->kind != NK_NODE_SCALAR || n->style != NK_SCALAR_PLAIN || n->len == 0)
        return false;
    p = n->str;
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    errno = 0;
    x = strtoll(n->str, &end, 10);
    if (errno != 0 || *end != '\0' || (size_t)(end - n->str) != n->len)
        return false;
    *v = x;
    return true;
}

bool nk_node_is_number(const struct nk_node *n)
{
    long long i;
    const char *p;
    int digits = 0;

    if (nk_node_int(n, &i))
        return true;
    if (n == NULL || n->kind != NK_NODE_SCALAR || n->style != NK_SCALAR_PLAIN || n->len == 0)
        return false;
    if (strcmp(n->str, ".inf") == 0 || strcmp(n->str, "-.inf") == 0 ||
        strcmp(n->str, "+.inf") == 0 || strcmp(n->str, ".nan") == 0)
        return true;
    /* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
    p = n->str;
    if (*p == '-' || *p == '+')
        p++;
    while (*p >= '0' && *p <= '9') {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            digits++;
        }
    }
    if (digits == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0' && (size_t)(p - n->str) == n->len;
}

bool nk_node_is_string(const struct nk_node *n)
{
    bool b;

    if (n == NULL || n->kind != NK_NODE_SCALAR)
        return false;
    if (n->style != NK_SCALAR_PLAIN)
        return true;
    return !nk_node_is_null(n) && !nk_node_bool(n, &b) && !nk_node_is_number(n);
}

/* Position of byte offset off in buf, 1-based; columns count characters, not bytes. */
static void offset_pos(const char *buf, size_t len, size_t off, unsigned *line, unsigned *col)
{
    size_t i;
    unsigned l = 1, c = 1;

    for (i = 0; i < off && i < len; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\n') {
            l++;
            c = 1;
        } else if ((ch & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* A scalar's text lives in the same allocation as its node (text_len + 1 bytes after it):
 * one malloc per node keeps a 10,000-operation document small. */
static struct nk_node *node_new(struct builder *b, enum nk_node_kind kind, const yaml_mark_t *mark,
                                size_t text_len, struct nk_error *err, enum nk_rc *rc)
{
    struct nk_node *n;

    if (b->nodes >= NK_SPEC_MAX_NODES) {
        nk_error_setpos(err, (unsigned)mark->line + 1, (unsigned)mark->column + 1,
                        "document has more than %u nodes", NK_SPEC_MAX_NODES);
        *rc = NK_ERR_TOO_LARGE;
        return NULL;
    }
    n = calloc(1, sizeof(*n) + (kind == NK_NODE_SCALAR ? text_len + 1 : 0));
    if (n == NULL) {
        nk_error_setpos(err, (unsigned)mark->line + 1, (unsigned)mark->column + 1, "out of memory");
        *rc = NK_ERR_NOMEM;
        return NULL;
    }
    b->nodes++;
    n->kind = kind;
    n->line = (unsigned)mark->line + 1;
    n->column = (unsigned)mark->column + 1;
    if (kind == NK_NODE_SCALAR)
        n->str = (char *)(n + 1);
    return n;
}

static int key_cmp(const void *a, const void *b)
{
    const struct nk_node_pair *const *pa = a;
    const struct nk_node_pair *const *pb = b;
    int c = strcmp((*pa)->key->str, (*pb)->key->str);

    if (c != 0)
        return c;
    /* equal keys: the later one in the document is the duplicate */
    if ((*pa)->key->line != (*pb)->key->line)
        return (*pa)->key->line < (*pb)->key->line ? -1 : 1;
    return (*pa)->key->column < (*pb)->key->column ? -1 : 1;
}

/* Report the first duplicate key (in document order) of a finished mapping. */
static enum nk_rc check_dup_keys(const struct nk_node *m, struct nk_error *err)
{
    const struct nk_node_pair **v = NULL;
    const struct nk_node *dup = NULL;
    size_t i, j;

    if (m->n < 2)
        return NK_OK;
    if (m->n <= 16) {
        for (i = 1; i < m->n && dup == NULL; i++)
            for (j = 0; j < i; j++)
                if (strcmp(m->pairs[i].key->str, m->pairs[j].key->str) == 0) {
                    dup = m->pairs[i].key;
                    break;
                }
    } else {
        v = malloc(m->n * sizeof(*v));
        if (v == NULL) {
            nk_error_setpos(err, m->line, m->column, "out of memory");
            return NK_ERR_NOMEM;
        }
        for (i = 0; i < m->n; i++)
            v[i] = &m->pairs[i];
        qsort(v, m->n, sizeof(*v), key_cmp);
        for (i = 1; i < m->n; i++) {
            if (strcmp(v[i]->key->str, v[i - 1]->key->str) != 0)
                continue;
            if (dup == NULL || v[i]->key->line < dup->line ||
                (v[i]->key->line == dup->line && v[i]->key->column < dup->column))
                dup = v[i]->key;
        }
        free(v);
    }
    if (dup == NULL)
        return NK_OK;
    for (i = 0; i < m->n; i++)
        if (strcmp(m->pairs[i].key->str, dup->str) == 0)
            break;
    nk_error_setpos(err, dup->line, dup->column, "duplicate key '%s' (first at line %u)", dup->str,
                    m->pairs[i].key->line);
    return NK_ERR_INVALID;
}

/* Attach a finished node to its parent (or make it the root). Takes ownership of n. */
static enum nk_rc attach(struct builder *b, struct nk_node *n, struct nk_error *err)
{
    struct nk_node *p;

    if (b->depth == 0) {
        b->root = n;
        return NK_OK;
    }
    p = b->stack[b->depth - 1];
    /* capacities are the powers of two: grow when n reaches one */
    if (p->kind == NK_NODE_SEQUENCE) {
        if ((p->n & (p->n - 1)) == 0) {
            struct nk_node **nv = realloc(p->items, (p->n ? p->n * 2 : 1) * sizeof(*nv));
            if (nv == NULL)
                goto oom;
            p->items = nv;
        }
        p->items[p->n++] = n;
        return NK_OK;
    }
    /* mapping: a pair with a NULL value is waiting for its value */
    if (p->n > 0 && p->pairs[p->n - 1].value == NULL) {
        p->pairs[p->n - 1].value = n;
        return NK_OK;
    }
    if (n->kind != NK_NODE_SCALAR) {
        nk_error_setpos(err, n->line, n->column, "mapping keys must be scalars");
        nk_node_free(n);
        return NK_ERR_INVALID;
    }
    if ((p->n & (p->n - 1)) == 0) {
        struct nk_node_pair *nv = realloc(p->pairs, (p->n ? p->n * 2 : 1) * sizeof(*nv));
        if (nv == NULL)
            goto oom;
        p->pairs = nv;
    }
    {
        p->pairs[p->n].key = n;
        p->pairs[p->n].value = NULL;
        p->n++;
    }
    return NK_OK;
oom:
    nk_error_setpos(err, n->line, n->column, "out of memory");
    nk_node_free(n);
    return NK_ERR_NOMEM;
}

static bool str_tag(const yaml_char_t *tag)
{
    return tag != NULL && strcmp((const char *)tag, YAML_STR_TAG) == 0;
}

/* Standard tags are fine (the node keeps its text); application tags are refused. */
static bool tag_ok(const yaml_char_t *tag)
{
    return tag == NULL || strncmp((const char *)tag, "tag:yaml.org,2002:", 18) == 0 ||
           strcmp((const char *)tag, "!") == 0;
}

static enum nk_rc parser_error(const yaml_parser_t *p, const char *buf, size_t len,
                               struct nk_error *err)
{
    unsigned line, col;

    if (p->error == YAML_MEMORY_ERROR) {
        nk_error_setpos(err, 1, 1, "out of memory");
        return NK_ERR_NOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        offset_pos(buf, len, p->problem_offset, &line, &col);
        nk_error_setpos(err, line, col, "%s", p->problem ? p->problem : "invalid input");
        return NK_ERR_INVALID;
    }
    line = (unsigned)p->problem_mark.line + 1;
    col = (unsigned)p->problem_mark.column + 1;
    if (p->problem_mark.index < len && buf[p->problem_mark.index] == '\t') {
        nk_error_setpos(err, line, col, "%s (a tab: YAML indents with spaces only)",
                        p->problem ? p->problem : "syntax error");
        return NK_ERR_INVALID;
    }
    if (p->context != NULL)
        nk_error_setpos(err, line, col, "%s %s", p->problem ? p->problem : "syntax error",
                        p->context);
    else
        nk_error_setpos(err, line, col, "%s", p->problem ? p->problem : "syntax error");
    return NK_ERR_INVALID;
}

enum nk_rc nk_spec_parse(const char *buf, size_t len, struct nk_node **out, struct nk_error *err)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct builder b;
    struct nk_node *n = NULL;
    enum nk_rc rc = NK_OK;
    bool parser_ok = false, have_event = false, done = false;
    int docs = 0;
    size_t i;

    memset(&b, 0, sizeof(b));
    *out = NULL;
    if (len > NK_SPEC_MAX_BYTES) {
        nk_error_setpos(err, 1, 1, "document is larger than %u bytes", NK_SPEC_MAX_BYTES);
        return NK_ERR_TOO_LARGE;
    }
    if (!yaml_parser_initialize(&parser)) {
        nk_error_setpos(err, 1, 1, "out of memory");
        return NK_ERR_NOMEM;
    }
    parser_ok = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
    while (!done) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&parser, buf, len, err);
            goto out;
        }
        have_event = true;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                nk_error_setpos(err, (unsigned)ev.start_mark.line + 1,
                                (unsigned)ev.start_mark.column + 1,
                                "more than one YAML document in the stream");
                rc = NK_ERR_INVALID;
                goto out;
            }
            break;
        case YAML_ALIAS_EVENT:
            nk_error_setpos(
                err, (unsigned)ev.start_mark.line + 1, (unsigned)ev.start_mark.column + 1,
                "YAML aliases are not supported (alias '*%s')", (const char *)ev.data.alias.anchor);
            rc = NK_ERR_INVALID;
            goto out;
        case YAML_SCALAR_EVENT:
            if (!tag_ok(ev.data.scalar.tag)) {
                nk_error_setpos(err, (unsigned)ev.start_mark.line + 1,
                                (unsigned)ev.start_mark.column + 1,
                                "YAML tag '%s' is not supported", (const char *)ev.data.scalar.tag);
                rc = NK_ERR_INVALID;
                goto out;
            }
            n = node_new(&b, NK_NODE_SCALAR, &ev.start_mark, ev.data.scalar.length, err, &rc);
            if (n == NULL)
                goto out;
            memcpy(n->str, ev.data.scalar.value, ev.data.scalar.length);
            n->str[ev.data.scalar.length] = '\0';
            n->len = ev.data.scalar.length;
            if (str_tag(ev.data.scalar.tag) ||
                ev.data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                ev.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
                n->style = NK_SCALAR_QUOTED;
            else if (ev.data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                     ev.data.scalar.style == YAML_FOLDED_SCALAR_STYLE)
                n->style = NK_SCALAR_BLOCK;
            else
                n->style = NK_SCALAR_PLAIN;
            rc = attach(&b, n, err);
            n = NULL;
            if (rc != NK_OK)
                goto out;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            const yaml_char_t *tag = ev.type == YAML_SEQUENCE_START_EVENT
                                         ? ev.data.sequence_start.tag
                                         : ev.data.mapping_start.tag;
            if (!tag_ok(tag)) {
                nk_error_setpos(err, (unsigned)ev.start_mark.line + 1,
                                (unsigned)ev.start_mark.column + 1,
                                "YAML tag '%s' is not supported", (const char *)tag);
                rc = NK_ERR_INVALID;
                goto out;
            }
            if (b.depth >= NK_SPEC_MAX_DEPTH) {
                nk_error_setpos(err, (unsigned)ev.start_mark.line + 1,
                                (unsigned)ev.start_mark.column + 1, "nesting deeper than %u levels",
                                NK_SPEC_MAX_DEPTH);
                rc = NK_ERR_TOO_LARGE;
                goto out;
            }
            /* a collection used as a mapping key */
            if (b.depth > 0 && b.stack[b.depth - 1]->kind == NK_NODE_MAPPING) {
                const struct nk_node *p = b.stack[b.depth - 1];
                if (p->n == 0 || p->pairs[p->n - 1].value != NULL) {
                    nk_error_setpos(err, (unsigned)ev.start_mark.line + 1,
                                    (unsigned)ev.start_mark.column + 1,
                                    "mapping keys must be scalars");
                    rc = NK_ERR_INVALID;
                    goto out;
                }
            }
            n = node_new(&b,
                         ev.type == YAML_SEQUENCE_START_EVENT ? NK_NODE_SEQUENCE : NK_NODE_MAPPING,
                         &ev.start_mark, 0, err, &rc);
            if (n == NULL)
                goto out;
            b.stack[b.depth++] = n;
            n = NULL;
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            n = b.stack[--b.depth];
            if (n->kind == NK_NODE_MAPPING) {
                rc = check_dup_keys(n, err);
                if (rc != NK_OK)
                    goto out;
            }
            rc = attach(&b, n, err);
            n = NULL;
            if (rc != NK_OK)
                goto out;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        have_event = false;
    }
    if (b.root == NULL) {
        nk_error_setpos(err, 1, 1, "empty document");
        rc = NK_ERR_INVALID;
        goto out;
    }
    *out = b.root;
    b.root = NULL;
out:
    nk_node_free(n);
    /* unwind partially built collections: each is owned by the stack until attached */
    for (i = b.depth; i > 0; i--)
        nk_node_free(b.stack[i - 1]);
    nk_node_free(b.root);
    if (have_event)
        yaml_event_delete(&ev);
    if (parser_ok)
        yaml_parser_delete(&parser);
    return rc;
}

enum nk_rc nk_spec_read_file(const char *path, char **buf, size_t *len, struct nk_error *err)
{
    FILE *f = NULL;
    char *data = NULL;
    size_t n = 0, cap = 0;
    enum nk_rc rc = NK_OK;

    *buf = NULL;
    *len = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        nk_error_set(err, "cannot open: %s", strerror(errno));
        return NK_ERR_IO;
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nd;
            if (cap > NK_SPEC_MAX_BYTES) {
                nk_error_set(err, "file is larger than %u bytes", NK_SPEC_MAX_BYTES);
                rc = NK_ERR_TOO_LARGE;
                goto out;
            }
            nd = realloc(data, ncap + 1);
            if (nd == NULL) {
                nk_error_set(err, "out of memory");
                rc = NK_ERR_NOMEM;
                goto out;
            }
            data = nd;
            cap = ncap;
        }
        got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                nk_error_set(err, "read error: %s", strerror(errno));
                rc = NK_ERR_IO;
                goto out;
            }
            break;
        }
    }
    if (n > NK_SPEC_MAX_BYTES) {
        nk_error_set(err, "file is larger than %u bytes", NK_SPEC_MAX_BYTES);
        rc = NK_ERR_TOO_LARGE;
        goto out;
    }
    if (data == NULL) {
        data = malloc(1);
        if (data == NULL) {
            nk_error_set(err, "out of memory");
            rc = NK_ERR_NOMEM;
            goto out;
        }
    }
    data[n] = '\0';
    *buf = data;
    *len = n;
    data = NULL;
out:
    free(data);
    fclose(f);
    return rc;
}
