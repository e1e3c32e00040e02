/* SPDX-License-Identifier: Apache-2.0 */
/* optable_load.c: validate one capability document (naftiko 1.0.0-alpha2 as naftikod reads it)
 * and fill the table: root, info, binds, consumes, exposes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "optable_int.h"

#define SCHEMA_VERSION "1.0.0-alpha2"

/* ---- diagnostics and small helpers ------------------------------------------------------- */

static void vdiag(struct nk_loader *ld, enum nk_severity sev, unsigned line, unsigned col,
                  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void vdiag(struct nk_loader *ld, enum nk_severity sev, unsigned line, unsigned col,
                  const char *fmt, va_list ap)
{
    nk_diags_vadd(ld->diags, sev, ld->file, line, col, fmt, ap);
    if (ld->diags->oom)
        ld->oom = true;
}

void nk_ld_err(struct nk_loader *ld, const struct nk_node *at, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vdiag(ld, NK_SEV_ERROR, at ? at->line : 0, at ? at->column : 0, fmt, ap);
    va_end(ap);
}

void nk_ld_warn(struct nk_loader *ld, const struct nk_node *at, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vdiag(ld, NK_SEV_WARNING, at ? at->line : 0, at ? at->column : 0, fmt, ap);
    va_end(ap);
}

void nk_ld_err_at(struct nk_loader *ld, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vdiag(ld, NK_SEV_ERROR, line, col, fmt, ap);
    va_end(ap);
}

char *nk_ld_strdup(struct nk_loader *ld, const char *s)
{
    char *d;

    if (s == NULL)
        return NULL;
    d = strdup(s);
    if (d == NULL)
        ld->oom = true;
    return d;
}

char *nk_ld_node_dup(struct nk_loader *ld, const struct nk_node *n)
{
    return n != NULL ? nk_ld_strdup(ld, n->str) : NULL;
}

unsigned nk_ld_col(const struct nk_node *n, unsigned off)
{
    return n->column + (n->style == NK_SCALAR_QUOTED ? 1u : 0u) + off;
}

json_t *nk_ld_json(struct nk_loader *ld, const struct nk_node *n)
{
    json_t *v = NULL;
    size_t i;
    long long iv;
    bool bv;

    switch (n->kind) {
    case NK_NODE_SCALAR:
        if (nk_node_is_null(n))
            v = json_null();
        else if (nk_node_bool(n, &bv))
            v = json_boolean(bv);
        else if (nk_node_int(n, &iv))
            v = json_integer(iv);
        else if (nk_node_is_number(n) && strchr(n->str, 'n') == NULL)
            v = json_real(strtod(n->str, NULL));
        else
            v = json_stringn(n->str, n->len);
        break;
    case NK_NODE_SEQUENCE:
        v = json_array();
        for (i = 0; v != NULL && i < n->n; i++) {
            json_t *c = nk_ld_json(ld, n->items[i]);
            if (c == NULL || json_array_append_new(v, c) != 0) {
                json_decref(v);
                v = NULL;
            }
        }
        break;
    case NK_NODE_MAPPING:
        v = json_object();
        for (i = 0; v != NULL && i < n->n; i++) {
            json_t *c = nk_ld_json(ld, n->pairs[i].value);
            if (c == NULL || json_object_set_new(v, n->pairs[i].key->str, c) != 0) {
                json_decref(v);
                v = NULL;
            }
        }
        break;
    }
    if (v == NULL)
        ld->oom = true;
    return v;
}

bool nk_ld_type(struct nk_loader *ld, const struct nk_node *n, enum nk_type *t)
{
    static const char *const names[] = {"string",  "number", "integer",
                                        "boolean", "array",  "object"};
    static const enum nk_type types[] = {NK_TYPE_STRING,  NK_TYPE_NUMBER, NK_TYPE_INTEGER,
                                         NK_TYPE_BOOLEAN, NK_TYPE_ARRAY,  NK_TYPE_OBJECT};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(n->str, names[i]) == 0) {
            *t = types[i];
            return true;
        }
    nk_ld_err(ld, n,
              "unknown type '%s' (expected string, number, integer, boolean, array or object)",
              n->str);
    return false;
}

bool nk_ld_tmpl(struct nk_loader *ld, const struct nk_node *n, enum nk_tmpl_syntax syn,
                struct nk_tmpl *out)
{
    struct nk_error err;
    enum nk_rc rc;

    memset(&err, 0, sizeof(err));
    rc = nk_tmpl_compile(n->str, syn, out, &err);
    if (rc == NK_ERR_NOMEM) {
        ld->oom = true;
        return false;
    }
    if (rc != NK_OK) {
        nk_ld_err_at(ld, n->line, nk_ld_col(n, err.column ? err.column - 1 : 0), "%s", err.msg);
        return false;
    }
    return true;
}

const struct nk_bind *nk_ld_find_bind(const struct nk_loader *ld, const char *name)
{
    const struct nk_optable *t = ld->t;
    size_t i, nl;

    for (i = 0; i < t->n_binds; i++) {
        const struct nk_bind *b = &t->binds[i];
        if (strcmp(b->name, name) == 0)
            return b;
        nl = strlen(b->ns);
        if (strncmp(name, b->ns, nl) == 0 && name[nl] == '.' && strcmp(name + nl + 1, b->name) == 0)
            return b;
    }
    return NULL;
}

void nk_ld_check_ambiguous(struct nk_loader *ld, const struct nk_node *n,
                           const struct nk_tmpl_part *p)
{
    const struct nk_optable *t = ld->t;
    const struct nk_bind *first = NULL;
    size_t i;

    if (strchr(p->text, '.') != NULL)
        return;
    for (i = 0; i < t->n_binds; i++) {
        if (strcmp(t->binds[i].name, p->text) != 0)
            continue;
        if (first == NULL) {
            first = &t->binds[i];
            continue;
        }
        nk_ld_err_at(ld, n->line, nk_ld_col(n, p->offset),
                     "'{{%s}}' is ambiguous: bind namespaces '%s' and '%s' both declare it "
                     "(write {{%s.%s}})",
                     p->text, first->ns, t->binds[i].ns, first->ns, p->text);
        return;
    }
}

static int op_cmp(const void *a, const void *b)
{
    const struct nk_operation *const *x = a;
    const struct nk_operation *const *y = b;

    return strcmp((*x)->qname, (*y)->qname);
}

const struct nk_operation *nk_ld_find_op(struct nk_loader *ld, const char *qname)
{
    size_t lo = 0, hi;

    if (!ld->indexed) {
        size_t i, j, n = 0;
        for (i = 0; i < ld->t->n_consumers; i++)
            n += ld->t->consumers[i].n_ops;
        ld->indexed = true;
        ld->ops_index = calloc(n ? n : 1, sizeof(*ld->ops_index));
        if (ld->ops_index == NULL) {
            ld->oom = true;
            return NULL;
        }
        for (i = 0; i < ld->t->n_consumers; i++)
            for (j = 0; j < ld->t->consumers[i].n_ops; j++)
                if (ld->t->consumers[i].ops[j].qname != NULL)
                    ld->ops_index[ld->n_ops_index++] = &ld->t->consumers[i].ops[j];
        qsort(ld->ops_index, ld->n_ops_index, sizeof(*ld->ops_index), op_cmp);
    }
    hi = ld->n_ops_index;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ld->ops_index[mid]->qname, qname);
        if (c == 0)
            return ld->ops_index[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *nk_ld_where(const struct nk_loader *ld, const struct nk_pos *pos, char *buf,
                        size_t size)
{
    if (pos->file == ld->file || (pos->file && ld->file && strcmp(pos->file, ld->file) == 0))
        snprintf(buf, size, "line %u", pos->line);
    else
        snprintf(buf, size, "%s:%u", pos->file, pos->line);
    return buf;
}

const char *nk_ld_where_full(const struct nk_pos *pos, char *buf, size_t size)
{
    snprintf(buf, size, "%s:%u:%u", pos->file ? pos->file : "<input>", pos->line, pos->column);
    return buf;
}

bool nk_node_equal(const struct nk_node *a, const struct nk_node *b)
{
    size_t i;

    if (a == NULL || b == NULL)
        return a == b;
    if (a->kind != b->kind || a->n != b->n)
        return false;
    if (a->kind == NK_NODE_SCALAR)
        return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    for (i = 0; i < a->n; i++) {
        if (a->kind == NK_NODE_MAPPING) {
            if (!nk_node_equal(a->pairs[i].key, b->pairs[i].key) ||
                !nk_node_equal(a->pairs[i].value, b->pairs[i].value))
                return false;
        } else if (!nk_node_equal(a->items[i], b->items[i])) {
            return false;
        }
    }
    return true;
}

void nk_ld_broken(struct nk_loader *ld, const char *ns, const char *op)
{
    char **nb;
    char *s;
    size_t len = strlen(ns) + (op ? strlen(op) + 1 : 0);

    nb = realloc(ld->broken, (ld->n_broken + 1) * sizeof(*nb));
    if (nb == NULL) {
        ld->oom = true;
        return;
    }
    ld->broken = nb;
    s = malloc(len + 1);
    if (s == NULL) {
        ld->oom = true;
        return;
    }
    strcpy(s, ns);
    if (op != NULL) {
        strcat(s, ".");
        strcat(s, op);
    }
    ld->broken[ld->n_broken++] = s;
}

bool nk_ld_is_broken(const struct nk_loader *ld, const char *qname)
{
    size_t i, l;

    for (i = 0; i < ld->n_broken; i++) {
        l = strlen(ld->broken[i]);
        if (strncmp(qname, ld->broken[i], l) == 0 && (qname[l] == '\0' || qname[l] == '.'))
            return true;
    }
    return false;
}

void nk_loader_cleanup(struct nk_loader *ld)
{
    size_t i;

    for (i = 0; i < ld->n_broken; i++)
        free(ld->broken[i]);
    free(ld->broken);
    ld->broken = NULL;
    ld->n_broken = 0;
    free(ld->exposes_ns);
    ld->exposes_ns = NULL;
    free(ld->consumer_nodes);
    ld->consumer_nodes = NULL;
    free(ld->consumer_files);
    ld->consumer_files = NULL;
    ld->n_consumer_nodes = 0;
    ld->n_exposes_ns = 0;
    free(ld->ops_index);
    ld->ops_index = NULL;
    ld->n_ops_index = 0;
    ld->indexed = false;
}

struct nk_pos nk_ld_pos(const struct nk_loader *ld, const struct nk_node *n)
{
    struct nk_pos p;

    p.file = ld->file;
    p.line = n->line;
    p.column = n->column;
    return p;
}

/* ---- field tables ------------------------------------------------------------------------ */

static const char *kind_word(enum nk_fkind k)
{
    switch (k) {
    case NK_FK_STR:
        return "a string";
    case NK_FK_BOOL:
        return "a boolean";
    case NK_FK_INT:
        return "an integer";
    case NK_FK_MAP:
        return "a mapping";
    case NK_FK_SEQ:
        return "a sequence";
    case NK_FK_SCALAR:
        return "a scalar";
    case NK_FK_ANY:
        break;
    }
    return "a value";
}

static bool kind_ok(const struct nk_node *v, enum nk_fkind k)
{
    bool b;
    long long i;

    switch (k) {
    case NK_FK_STR:
        return nk_node_is_string(v);
    case NK_FK_BOOL:
        return nk_node_bool(v, &b);
    case NK_FK_INT:
        return nk_node_int(v, &i);
    case NK_FK_MAP:
        return v->kind == NK_NODE_MAPPING;
    case NK_FK_SEQ:
        return v->kind == NK_NODE_SEQUENCE;
    case NK_FK_SCALAR:
        return v->kind == NK_NODE_SCALAR && !nk_node_is_null(v);
    case NK_FK_ANY:
        return true;
    }
    return false;
}

/* Check map against spec[0..n): unknown, unsupported and extension fields, types, required.
 * out[i] is the value of spec[i] when present with the right type, else NULL.
 * Returns false when map is not a mapping (reported). */
bool nk_ld_fields(struct nk_loader *ld, const struct nk_node *map, const char *what,
                  const struct nk_field *spec, size_t n, const struct nk_node **out)
{
    size_t i, j;
    bool seen;

    for (j = 0; j < n; j++)
        out[j] = NULL;
    if (map->kind != NK_NODE_MAPPING) {
        nk_ld_err(ld, map, "%s must be a mapping", what);
        return false;
    }
    for (i = 0; i < map->n; i++) {
        const struct nk_node *k = map->pairs[i].key;
        const struct nk_node *v = map->pairs[i].value;
        for (j = 0; j < n; j++)
            if (strcmp(k->str, spec[j].name) == 0)
                break;
        if (j == n) {
            nk_ld_err(ld, k, "unknown field '%s' in %s", k->str, what);
            continue;
        }
        if (spec[j].flags & NK_FF_UNSUP) {
            nk_ld_err(ld, k, "'%s' in %s is not supported by naftikod yet", k->str, what);
            continue;
        }
        if ((spec[j].flags & NK_FF_EXT) && ld->strict)
            nk_ld_warn(ld, k, "'%s' in %s is not in the naftiko " SCHEMA_VERSION " schema", k->str,
                       what);
        if (!kind_ok(v, spec[j].kind)) {
            nk_ld_err(ld, v, "'%s' in %s must be %s", k->str, what, kind_word(spec[j].kind));
            continue;
        }
        out[j] = v;
    }
    for (j = 0; j < n; j++) {
        if (!(spec[j].flags & NK_FF_REQ))
            continue;
        seen = false;
        for (i = 0; i < map->n && !seen; i++)
            seen = strcmp(map->pairs[i].key->str, spec[j].name) == 0;
        if (!seen)
            nk_ld_err(ld, map, "missing required field '%s' in %s", spec[j].name, what);
    }
    return true;
}

static bool is_kebab(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-'))
            return false;
    return true;
}

static bool is_ident_ext(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '*' || *s == '.'))
            return false;
    return true;
}

/* --strict: names the schema types IdentifierKebab */
void nk_ld_strict_kebab(struct nk_loader *ld, const struct nk_node *n, const char *what)
{
    if (ld->strict && n != NULL && !is_kebab(n->str))
        nk_ld_warn(ld, n, "%s '%s' is not kebab-case ([a-zA-Z0-9-]+)", what, n->str);
}

static bool is_screaming(const char *s)
{
    if (!(*s >= 'A' && *s <= 'Z'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return true;
}

/* A namespace is used in `call: ns.op`, so it must not contain '.'; the schema's kebab rule is
 * checked under --strict. */
bool nk_ld_check_namespace(struct nk_loader *ld, const struct nk_node *n)
{
    if (n->len == 0 || strchr(n->str, '.') != NULL || strchr(n->str, ' ') != NULL) {
        nk_ld_err(ld, n, "namespace '%s' must be letters, digits and '-'", n->str);
        return false;
    }
    if (ld->strict && !is_kebab(n->str))
        nk_ld_warn(ld, n, "namespace '%s' is not kebab-case ([a-zA-Z0-9-]+)", n->str);
    return true;
}

/* ---- root, info, binds ------------------------------------------------------------------- */

static const struct nk_field root_fields[] = {
    {"naftiko", NK_FK_STR, NK_FF_REQ}, {"info", NK_FK_MAP, 0},     {"binds", NK_FK_SEQ, 0},
    {"capability", NK_FK_MAP, 0},      {"consumes", NK_FK_SEQ, 0},
};
enum { R_NAFTIKO, R_INFO, R_BINDS, R_CAPABILITY, R_CONSUMES };

static const struct nk_field info_fields[] = {
    {"label", NK_FK_STR, NK_FF_REQ}, {"description", NK_FK_STR, NK_FF_REQ},
    {"tags", NK_FK_SEQ, 0},          {"created", NK_FK_STR, 0},
    {"modified", NK_FK_STR, 0},      {"stakeholders", NK_FK_SEQ, 0},
};
enum { I_LABEL, I_DESCRIPTION, I_TAGS, I_CREATED, I_MODIFIED, I_STAKEHOLDERS };

static const struct nk_field person_fields[] = {
    {"role", NK_FK_STR, NK_FF_REQ}, {"fullName", NK_FK_STR, NK_FF_REQ}, {"email", NK_FK_STR, 0}};

static bool is_date(const char *s)
{
    size_t i;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    for (i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
            return false;
    return (s[5] == '0' ? s[6] >= '1' : (s[5] == '1' && s[6] <= '2')) &&
           !(s[8] == '0' && s[9] == '0') && (s[8] < '3' || (s[8] == '3' && s[9] <= '1'));
}

static void load_info(struct nk_loader *ld, const struct nk_node *n)
{
    const struct nk_node *f[NK_NFIELDS(info_fields)];
    const struct nk_node *pf[NK_NFIELDS(person_fields)];
    size_t i;

    if (!nk_ld_fields(ld, n, "info", info_fields, NK_NFIELDS(info_fields), f))
        return;
    if (f[I_TAGS] != NULL)
        for (i = 0; i < f[I_TAGS]->n; i++)
            if (!nk_node_is_string(f[I_TAGS]->items[i]))
                nk_ld_err(ld, f[I_TAGS]->items[i], "each tag must be a string");
    if (f[I_CREATED] != NULL && !is_date(f[I_CREATED]->str))
        nk_ld_err(ld, f[I_CREATED], "'created' must be a date YYYY-MM-DD");
    if (f[I_MODIFIED] != NULL && !is_date(f[I_MODIFIED]->str))
        nk_ld_err(ld, f[I_MODIFIED], "'modified' must be a date YYYY-MM-DD");
    if (f[I_STAKEHOLDERS] != NULL)
        for (i = 0; i < f[I_STAKEHOLDERS]->n; i++)
            nk_ld_fields(ld, f[I_STAKEHOLDERS]->items[i], "stakeholder", person_fields,
                         NK_NFIELDS(person_fields), pf);
    if (ld->t->label == NULL && f[I_LABEL] != NULL) {
        ld->t->label = nk_ld_node_dup(ld, f[I_LABEL]);
        ld->t->description = nk_ld_node_dup(ld, f[I_DESCRIPTION]);
    }
}

static const struct nk_field bind_fields[] = {
    {"namespace", NK_FK_STR, NK_FF_REQ},
    {"keys", NK_FK_MAP, NK_FF_REQ},
    {"location", NK_FK_STR, 0},
    {"description", NK_FK_STR, 0},
};
enum { B_NAMESPACE, B_KEYS, B_LOCATION, B_DESCRIPTION };

static void load_binds(struct nk_loader *ld, const struct nk_node *seq)
{
    struct nk_optable *t = ld->t;
    const struct nk_node *f[NK_NFIELDS(bind_fields)];
    size_t i, j, k;

    for (i = 0; i < seq->n && !ld->oom; i++) {
        const struct nk_node *keys;
        const char *loc = NULL;
        struct nk_bind *nb;
        if (!nk_ld_fields(ld, seq->items[i], "binds entry", bind_fields, NK_NFIELDS(bind_fields),
                          f))
            continue;
        if (f[B_NAMESPACE] == NULL || f[B_KEYS] == NULL)
            continue;
        if (!nk_ld_check_namespace(ld, f[B_NAMESPACE]))
            continue;
        if (f[B_LOCATION] != NULL) {
            const char *l = f[B_LOCATION]->str;
            if (strncmp(l, "file:///", 8) == 0) {
                loc = l + 7;
            } else if (strstr(l, "://") != NULL) {
                /* keep the keys so templates naming them are not reported again */
                nk_ld_err(ld, f[B_LOCATION],
                          "bind location '%s' is not supported by naftikod yet (only file:///)", l);
            } else {
                nk_ld_err(ld, f[B_LOCATION],
                          "bind location '%s' must be a URI such as "
                          "file:///path/to/values.json",
                          l);
                continue;
            }
        }
        keys = f[B_KEYS];
        nb = realloc(t->binds, (t->n_binds + keys->n + 1) * sizeof(*nb));
        if (nb == NULL) {
            ld->oom = true;
            return;
        }
        t->binds = nb;
        for (j = 0; j < keys->n && !ld->oom; j++) {
            const struct nk_node *key = keys->pairs[j].key;
            const struct nk_node *val = keys->pairs[j].value;
            struct nk_bind *b;
            bool dup = false;
            if (!nk_node_is_string(val)) {
                nk_ld_err(ld, val, "bind key '%s' must name a variable (a string)", key->str);
                continue;
            }
            if (!is_ident_ext(key->str) || strchr(key->str, '.') != NULL) {
                nk_ld_err(ld, key, "bind key '%s' must be letters, digits, '-', '_' or '*'",
                          key->str);
                continue;
            }
            if (ld->strict && !is_screaming(key->str))
                nk_ld_warn(ld, key, "bind key '%s' is not SCREAMING_SNAKE_CASE ([A-Z][A-Z0-9_]*)",
                           key->str);
            for (k = 0; k < t->n_binds && !dup; k++)
                dup = strcmp(t->binds[k].ns, f[B_NAMESPACE]->str) == 0 &&
                      strcmp(t->binds[k].name, key->str) == 0;
            if (dup) {
                /* the same key, variable and location in many documents is one bind */
                const struct nk_bind *o = &t->binds[k - 1];
                char where[1200];
                if (strcmp(o->source, val->str) == 0 &&
                    (o->location == NULL ? loc == NULL
                                         : loc != NULL && strcmp(o->location, loc) == 0))
                    continue;
                nk_ld_err(ld, key,
                          "bind key '%s.%s' is declared again with a different variable or "
                          "location (first at %s)",
                          f[B_NAMESPACE]->str, key->str,
                          nk_ld_where_full(&o->pos, where, sizeof(where)));
                continue;
            }
            b = &t->binds[t->n_binds];
            memset(b, 0, sizeof(*b));
            b->ns = nk_ld_node_dup(ld, f[B_NAMESPACE]);
            b->name = nk_ld_node_dup(ld, key);
            b->source = nk_ld_node_dup(ld, val);
            b->location = nk_ld_strdup(ld, loc);
            b->pos = nk_ld_pos(ld, key);
            t->n_binds++;
        }
    }
}

/* Every {{var}} of a Mustache template must name a declared bind. */
static void check_bind_vars(struct nk_loader *ld, const struct nk_node *n, const struct nk_tmpl *t,
                            bool only_double)
{
    size_t i;

    for (i = 0; i < t->n; i++) {
        const struct nk_tmpl_part *p = &t->parts[i];
        if (p->kind != NK_TMPL_VAR || (only_double && !p->double_braced))
            continue;
        if (nk_ld_find_bind(ld, p->text) == NULL)
            nk_ld_err_at(ld, n->line, nk_ld_col(n, p->offset),
                         "'{{%s}}' names no declared bind (add it under 'binds')", p->text);
        else
            nk_ld_check_ambiguous(ld, n, p);
    }
}

/* ---- consumes ---------------------------------------------------------------------------- */

static const struct nk_field consumes_fields[] = {
    {"type", NK_FK_STR, NK_FF_REQ},    {"namespace", NK_FK_STR, NK_FF_REQ},
    {"baseUri", NK_FK_STR, NK_FF_REQ}, {"description", NK_FK_STR, 0},
    {"resources", NK_FK_SEQ, 0},       {"authentication", NK_FK_MAP, 0},
    {"inputParameters", NK_FK_SEQ, 0},
};
enum { C_TYPE, C_NAMESPACE, C_BASEURI, C_DESCRIPTION, C_RESOURCES, C_AUTH, C_INPUTS };

static const struct nk_field cres_fields[] = {
    {"name", NK_FK_STR, NK_FF_REQ},       {"path", NK_FK_STR, NK_FF_REQ},
    {"operations", NK_FK_SEQ, NK_FF_REQ}, {"label", NK_FK_STR, 0},
    {"description", NK_FK_STR, 0},        {"inputParameters", NK_FK_SEQ, 0},
};
enum { CR_NAME, CR_PATH, CR_OPERATIONS, CR_LABEL, CR_DESCRIPTION, CR_INPUTS };

static const struct nk_field cop_fields[] = {
    {"name", NK_FK_STR, NK_FF_REQ},    {"method", NK_FK_STR, NK_FF_REQ},
    {"description", NK_FK_STR, 0},     {"label", NK_FK_STR, 0},
    {"inputParameters", NK_FK_SEQ, 0}, {"outputParameters", NK_FK_SEQ, 0},
    {"outputRawFormat", NK_FK_STR, 0}, {"body", NK_FK_ANY, 0},
    {"outputSchema", NK_FK_STR, 0},
};
enum { CO_NAME, CO_METHOD, CO_DESCRIPTION, CO_LABEL, CO_INPUTS, CO_OUTPUTS, CO_RAWFORMAT, CO_BODY };

static const struct nk_field cin_fields[] = {
    {"name", NK_FK_STR, NK_FF_REQ},      {"in", NK_FK_STR, NK_FF_REQ},
    {"value", NK_FK_SCALAR, 0},          {"type", NK_FK_STR, NK_FF_EXT},
    {"required", NK_FK_BOOL, NK_FF_EXT}, {"description", NK_FK_STR, NK_FF_EXT},
};
enum { CI_NAME, CI_IN, CI_VALUE, CI_TYPE, CI_REQUIRED, CI_DESCRIPTION };

static const struct nk_field cout_fields[] = {{"name", NK_FK_STR, NK_FF_REQ},
                                              {"type", NK_FK_STR, NK_FF_REQ},
                                              {"value", NK_FK_STR, NK_FF_REQ}};
enum { CU_NAME, CU_TYPE, CU_VALUE };

static bool parse_in(struct nk_loader *ld, const struct nk_node *n, bool consumed, enum nk_in *in)
{
    static const char *const names[] = {"query", "path", "header", "cookie", "body", "environment"};
    size_t i;

    for (i = 0; i < (consumed ? 6u : 5u); i++)
        if (strcmp(n->str, names[i]) == 0) {
            *in = (enum nk_in)i;
            return true;
        }
    nk_ld_err(ld, n, "unknown 'in' value '%s' (expected query, path, header, cookie%s)", n->str,
              consumed ? ", body or environment" : " or body");
    return false;
}

static bool parse_method(struct nk_loader *ld, const struct nk_node *n, char **out)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    size_t i;

    for (i = 0; i < NK_NFIELDS(methods); i++)
        if (strcmp(n->str, methods[i]) == 0) {
            *out = nk_ld_strdup(ld, methods[i]);
            return *out != NULL;
        }
    nk_ld_err(ld, n, "unknown HTTP method '%s' (expected GET, POST, PUT, PATCH or DELETE)", n->str);
    return false;
}

bool nk_ld_method(struct nk_loader *ld, const struct nk_node *n, char **out)
{
    return parse_method(ld, n, out);
}

bool nk_ld_in(struct nk_loader *ld, const struct nk_node *n, bool consumed, enum nk_in *in)
{
    return parse_in(ld, n, consumed, in);
}

/* Parameters come from the operation, then its resource, then the consumer: an inner level
 * overrides an outer one by name; a name twice in one level is an error. */
static void load_cparam(struct nk_loader *ld, const struct nk_node *n, struct nk_operation *o,
                        size_t level_start)
{
    const struct nk_node *f[NK_NFIELDS(cin_fields)];
    struct nk_param *p;
    enum nk_in in;
    size_t i;

    if (!nk_ld_fields(ld, n, "consumed inputParameter", cin_fields, NK_NFIELDS(cin_fields), f))
        return;
    if (f[CI_NAME] == NULL || f[CI_IN] == NULL || !parse_in(ld, f[CI_IN], true, &in))
        return;
    for (i = 0; i < o->n_params; i++)
        if (strcmp(o->params[i].name, f[CI_NAME]->str) == 0) {
            if (i >= level_start)
                nk_ld_err(ld, f[CI_NAME], "duplicate inputParameter '%s'", f[CI_NAME]->str);
            return;
        }
    if (ld->strict && (!is_ident_ext(f[CI_NAME]->str) || strchr(f[CI_NAME]->str, '.') != NULL))
        nk_ld_warn(ld, f[CI_NAME], "parameter name '%s' is not [a-zA-Z0-9-_*]+", f[CI_NAME]->str);
    p = &o->params[o->n_params];
    memset(p, 0, sizeof(*p));
    p->in = in;
    p->required = in == NK_IN_PATH;
    if (f[CI_TYPE] != NULL && !nk_ld_type(ld, f[CI_TYPE], &p->type))
        return;
    if (f[CI_REQUIRED] != NULL)
        nk_node_bool(f[CI_REQUIRED], &p->required);
    if (in == NK_IN_PATH && !p->required) {
        nk_ld_err(ld, f[CI_REQUIRED], "path parameter '%s' cannot be optional", f[CI_NAME]->str);
        return;
    }
    if (f[CI_VALUE] != NULL) {
        p->value = calloc(1, sizeof(*p->value));
        if (p->value == NULL) {
            ld->oom = true;
            return;
        }
        if (!nk_ld_tmpl(ld, f[CI_VALUE], NK_TMPL_MUSTACHE, p->value)) {
            free(p->value);
            p->value = NULL;
            return;
        }
        check_bind_vars(ld, f[CI_VALUE], p->value, false);
    }
    p->name = nk_ld_node_dup(ld, f[CI_NAME]);
    p->description = nk_ld_node_dup(ld, f[CI_DESCRIPTION]);
    p->pos = nk_ld_pos(ld, n);
    o->n_params++;
}

static void load_coutput(struct nk_loader *ld, const struct nk_node *n, struct nk_operation *o)
{
    const struct nk_node *f[NK_NFIELDS(cout_fields)];
    struct nk_outparam *p;
    struct nk_error err;
    enum nk_rc rc;

    if (!nk_ld_fields(ld, n, "consumed outputParameter", cout_fields, NK_NFIELDS(cout_fields), f))
        return;
    if (f[CU_NAME] == NULL || f[CU_TYPE] == NULL || f[CU_VALUE] == NULL)
        return;
    p = &o->outputs[o->n_outputs];
    memset(p, 0, sizeof(*p));
    if (!nk_ld_type(ld, f[CU_TYPE], &p->type))
        return;
    if (ld->strict && strcmp(f[CU_VALUE]->str, "$.") == 0)
        nk_ld_warn(ld, f[CU_VALUE], "'$.' is naftikod's spelling of the JSONPath root '$'");
    memset(&err, 0, sizeof(err));
    rc = nk_jsonpath_compile(f[CU_VALUE]->str, &p->value, &err);
    if (rc == NK_ERR_NOMEM) {
        ld->oom = true;
        return;
    }
    if (rc != NK_OK) {
        nk_ld_err_at(ld, f[CU_VALUE]->line, nk_ld_col(f[CU_VALUE], err.column ? err.column - 1 : 0),
                     "invalid JSONPath '%s': %s", f[CU_VALUE]->str, err.msg);
        return;
    }
    p->name = nk_ld_node_dup(ld, f[CU_NAME]);
    o->n_outputs++;
}

/* Path variables of the consumed path that no inputParameter declares become implicit required
 * string path parameters, so every `with` key names a parameter. */
static void path_params(struct nk_loader *ld, const struct nk_node *pathn, struct nk_operation *o)
{
    size_t i, j;

    for (i = 0; i < o->path.n; i++) {
        const struct nk_tmpl_part *part = &o->path.parts[i];
        struct nk_param *p = NULL;
        if (part->kind != NK_TMPL_VAR)
            continue;
        for (j = 0; j < o->n_params; j++)
            if (strcmp(o->params[j].name, part->text) == 0)
                p = &o->params[j];
        if (p != NULL) {
            if (p->in != NK_IN_PATH)
                nk_ld_err_at(ld, pathn->line, nk_ld_col(pathn, part->offset),
                             "path variable '%s' is declared with in: %s", part->text,
                             nk_in_name(p->in));
            continue;
        }
        p = &o->params[o->n_params++];
        memset(p, 0, sizeof(*p));
        p->name = nk_ld_strdup(ld, part->text);
        if (p->name == NULL)
            return;
        p->in = NK_IN_PATH;
        p->type = NK_TYPE_STRING;
        p->required = true;
        p->pos = nk_ld_pos(ld, pathn);
    }
    for (j = 0; j < o->n_params; j++) {
        bool found = false;
        if (o->params[j].in != NK_IN_PATH)
            continue;
        for (i = 0; i < o->path.n && !found; i++)
            found = o->path.parts[i].kind == NK_TMPL_VAR &&
                    strcmp(o->path.parts[i].text, o->params[j].name) == 0;
        if (!found)
            nk_ld_err_at(ld, o->params[j].pos.line, o->params[j].pos.column,
                         "path parameter '%s' does not appear in the path '%s'", o->params[j].name,
                         pathn->str);
    }
}

/* Does name's prefix (before its last '.') name a bind namespace (or the conventional `env`)?
 * Then it is a bind reference, whatever follows. */
static bool bind_prefixed(const struct nk_loader *ld, const char *name)
{
    const char *dot = strrchr(name, '.');
    size_t i, len;

    if (dot == NULL)
        return false;
    len = (size_t)(dot - name);
    if (len == 3 && strncmp(name, "env", 3) == 0)
        return true;
    for (i = 0; i < ld->t->n_binds; i++)
        if (ld->t->binds[i].ns != NULL && strlen(ld->t->binds[i].ns) == len &&
            strncmp(ld->t->binds[i].ns, name, len) == 0)
            return true;
    return false;
}

/* Every `{{name}}` in the strings of a body template: a bind reference must name a declared
 * bind (checked here); any other name is recorded and checked against each exposed operation
 * that calls o (it must supply it). */
static void body_vars(struct nk_loader *ld, const struct nk_node *n, struct nk_operation *o,
                      size_t *cap)
{
    struct nk_tmpl t;
    size_t i;

    if (n->kind == NK_NODE_MAPPING) {
        for (i = 0; i < n->n && !ld->oom; i++)
            body_vars(ld, n->pairs[i].value, o, cap);
        return;
    }
    if (n->kind == NK_NODE_SEQUENCE) {
        for (i = 0; i < n->n && !ld->oom; i++)
            body_vars(ld, n->items[i], o, cap);
        return;
    }
    if (!nk_node_is_string(n) || !nk_ld_tmpl(ld, n, NK_TMPL_MUSTACHE, &t))
        return;
    for (i = 0; i < t.n && !ld->oom; i++) {
        const struct nk_tmpl_part *p = &t.parts[i];
        struct nk_bodyvar *v;
        if (p->kind != NK_TMPL_VAR)
            continue;
        if (nk_ld_find_bind(ld, p->text) != NULL) {
            nk_ld_check_ambiguous(ld, n, p);
            continue;
        }
        if (bind_prefixed(ld, p->text)) {
            nk_ld_err_at(ld, n->line, nk_ld_col(n, p->offset),
                         "'{{%s}}' names no declared bind (add it under 'binds')", p->text);
            continue;
        }
        if (o->n_body_vars == *cap) {
            size_t nc = *cap ? *cap * 2 : 4;
            struct nk_bodyvar *nv = realloc(o->body_vars, nc * sizeof(*nv));
            if (nv == NULL) {
                ld->oom = true;
                break;
            }
            o->body_vars = nv;
            *cap = nc;
        }
        v = &o->body_vars[o->n_body_vars];
        v->name = nk_ld_strdup(ld, p->text);
        v->pos = nk_ld_pos(ld, n);
        v->pos.column = nk_ld_col(n, p->offset);
        if (v->name != NULL)
            o->n_body_vars++;
    }
    nk_tmpl_cleanup(&t);
}

static const struct nk_field body_json_fields[] = {{"type", NK_FK_STR, NK_FF_REQ},
                                                   {"data", NK_FK_ANY, NK_FF_REQ}};

/* RequestBody: only the structured JSON form runs; the other schema forms are named. */
static void load_body(struct nk_loader *ld, const struct nk_node *n, struct nk_operation *o)
{
    const struct nk_node *f[2];
    const struct nk_node *bt = nk_node_get(n, "type");

    if (n->kind == NK_NODE_SCALAR) {
        nk_ld_err(ld, n,
                  "a raw string 'body' is not supported by naftikod yet (use type: json "
                  "with data)");
        return;
    }
    if (n->kind != NK_NODE_MAPPING || bt == NULL || !nk_node_is_string(bt)) {
        nk_ld_err(ld, n, "'body' must be a mapping with a 'type' (json)");
        return;
    }
    if (strcmp(bt->str, "text") == 0 || strcmp(bt->str, "xml") == 0 ||
        strcmp(bt->str, "sparql") == 0 || strcmp(bt->str, "formUrlEncoded") == 0 ||
        strcmp(bt->str, "multipartForm") == 0) {
        nk_ld_err(ld, bt, "body type '%s' is not supported by naftikod yet", bt->str);
        return;
    }
    if (strcmp(bt->str, "json") != 0) {
        nk_ld_err(ld, bt,
                  "unknown body type '%s' (expected json, text, xml, sparql, "
                  "formUrlEncoded or multipartForm)",
                  bt->str);
        return;
    }
    if (!nk_ld_fields(ld, n, "json body", body_json_fields, NK_NFIELDS(body_json_fields), f) ||
        f[1] == NULL)
        return;
    if (f[1]->kind == NK_NODE_SCALAR && !nk_node_is_string(f[1])) {
        nk_ld_err(ld, f[1], "'data' in json body must be a string, a mapping or a sequence");
        return;
    }
    o->body_template = nk_ld_json(ld, f[1]);
    if (o->body_template != NULL) {
        size_t cap = 0;
        body_vars(ld, f[1], o, &cap);
    }
}

/* A consumed path is relative to baseUri; the schema does not require the leading '/' (ikanos
 * documents write `databases/{{id}}/query`), so it is compiled as if it had one. Part offsets
 * stay relative to the text as written. */
static bool consumed_path(struct nk_loader *ld, const struct nk_node *pathn, struct nk_tmpl *t)
{
    struct nk_node tmp;
    char *src;
    size_t i;
    bool ok;

    if (pathn->str[0] == '/')
        return nk_ld_tmpl(ld, pathn, NK_TMPL_PATH, t);
    src = malloc(pathn->len + 2);
    if (src == NULL) {
        ld->oom = true;
        return false;
    }
    src[0] = '/';
    memcpy(src + 1, pathn->str, pathn->len + 1);
    tmp = *pathn;
    tmp.str = src;
    tmp.len = pathn->len + 1;
    tmp.column = pathn->column > 1 ? pathn->column - 1 : 1;
    ok = nk_ld_tmpl(ld, &tmp, NK_TMPL_PATH, t);
    free(src);
    for (i = 0; ok && i < t->n; i++)
        if (t->parts[i].offset > 0)
            t->parts[i].offset--;
    return ok;
}

/* Release a half-built operation that is not counted in its consumer. */
static void drop_operation(struct nk_operation *o)
{
    size_t i;

    free(o->name);
    free(o->method);
    nk_tmpl_cleanup(&o->path);
    for (i = 0; i < o->n_params; i++) {
        free(o->params[i].name);
        free(o->params[i].description);
        if (o->params[i].value != NULL) {
            nk_tmpl_cleanup(o->params[i].value);
            free(o->params[i].value);
        }
    }
    free(o->params);
    for (i = 0; i < o->n_outputs; i++) {
        free(o->outputs[i].name);
        nk_jsonpath_free(o->outputs[i].value);
    }
    free(o->outputs);
    json_decref(o->body_template);
    for (i = 0; i < o->n_body_vars; i++)
        free(o->body_vars[i].name);
    free(o->body_vars);
    free(o->output_raw_format);
    free(o->description);
    free(o->resource);
    memset(o, 0, sizeof(*o));
}

static void load_operation(struct nk_loader *ld, const struct nk_node *n,
                           const struct nk_node *res_name, const struct nk_node *pathn,
                           const struct nk_node *rinputs, const struct nk_node *cinputs,
                           struct nk_consumer *c)
{
    const struct nk_node *levels[3];
    size_t lv;
    const struct nk_node *f[NK_NFIELDS(cop_fields)];
    struct nk_operation *o;
    size_t i, np;

    if (!nk_ld_fields(ld, n, "consumed operation", cop_fields, NK_NFIELDS(cop_fields), f))
        return;
    if (f[CO_NAME] == NULL || f[CO_METHOD] == NULL)
        return;
    nk_ld_strict_kebab(ld, f[CO_NAME], "operation name");
    if (strchr(f[CO_NAME]->str, '.') != NULL || f[CO_NAME]->len == 0) {
        nk_ld_err(ld, f[CO_NAME], "operation name '%s' must not contain '.'", f[CO_NAME]->str);
        return;
    }
    o = &c->ops[c->n_ops];
    memset(o, 0, sizeof(*o));
    if (!parse_method(ld, f[CO_METHOD], &o->method))
        goto fail;
    if (!consumed_path(ld, pathn, &o->path))
        goto fail;
    levels[0] = f[CO_INPUTS];
    levels[1] = rinputs;
    levels[2] = cinputs;
    np = 0;
    for (lv = 0; lv < 3; lv++)
        np += levels[lv] ? levels[lv]->n : 0;
    for (i = 0; i < o->path.n; i++)
        np += o->path.parts[i].kind == NK_TMPL_VAR;
    o->params = calloc(np ? np : 1, sizeof(*o->params));
    o->outputs = calloc(f[CO_OUTPUTS] ? f[CO_OUTPUTS]->n + 1 : 1, sizeof(*o->outputs));
    if (o->params == NULL || o->outputs == NULL)
        goto oom;
    o->name = nk_ld_node_dup(ld, f[CO_NAME]);
    if (ld->oom)
        goto fail;
    for (lv = 0; lv < 3; lv++) {
        size_t start = o->n_params;
        for (i = 0; levels[lv] != NULL && i < levels[lv]->n && !ld->oom; i++)
            load_cparam(ld, levels[lv]->items[i], o, start);
    }
    if (ld->oom)
        goto fail;
    path_params(ld, pathn, o);
    if (ld->oom)
        goto fail;
    for (i = 0; f[CO_OUTPUTS] != NULL && i < f[CO_OUTPUTS]->n && !ld->oom; i++)
        load_coutput(ld, f[CO_OUTPUTS]->items[i], o);
    if (f[CO_RAWFORMAT] != NULL && strcmp(f[CO_RAWFORMAT]->str, "json") != 0) {
        static const char *const formats[] = {"xml", "avro", "protobuf", "csv",     "tsv",
                                              "psv", "yaml", "html",     "markdown"};
        bool known = false;
        for (i = 0; i < NK_NFIELDS(formats) && !known; i++)
            known = strcmp(f[CO_RAWFORMAT]->str, formats[i]) == 0;
        if (known)
            nk_ld_err(ld, f[CO_RAWFORMAT],
                      "outputRawFormat '%s' is not supported by naftikod "
                      "yet",
                      f[CO_RAWFORMAT]->str);
        else
            nk_ld_err(ld, f[CO_RAWFORMAT],
                      "unknown outputRawFormat '%s' (expected json, xml, "
                      "avro, protobuf, csv, tsv, psv, yaml, html or markdown)",
                      f[CO_RAWFORMAT]->str);
    }
    o->output_raw_format = nk_ld_strdup(ld, f[CO_RAWFORMAT] ? f[CO_RAWFORMAT]->str : "json");
    if (f[CO_BODY] != NULL)
        load_body(ld, f[CO_BODY], o);
    o->description = nk_ld_node_dup(ld, f[CO_DESCRIPTION]);
    o->resource = nk_ld_node_dup(ld, res_name);
    o->pos = nk_ld_pos(ld, n);
    o->qname = malloc(strlen(c->ns) + strlen(f[CO_NAME]->str) + 2);
    if (o->qname == NULL)
        goto oom;
    strcpy(o->qname, c->ns);
    strcat(o->qname, ".");
    strcat(o->qname, f[CO_NAME]->str);
    c->n_ops++;
    return;
oom:
    ld->oom = true;
fail:
    drop_operation(o);
    nk_ld_broken(ld, c->ns, f[CO_NAME]->str);
}

static const struct nk_field auth_apikey[] = {{"type", NK_FK_STR, NK_FF_REQ},
                                              {"key", NK_FK_STR, NK_FF_REQ},
                                              {"value", NK_FK_STR, NK_FF_REQ},
                                              {"placement", NK_FK_STR, NK_FF_REQ}};
static const struct nk_field auth_bearer[] = {{"type", NK_FK_STR, NK_FF_REQ},
                                              {"token", NK_FK_STR, NK_FF_REQ}};
static const struct nk_field auth_basic[] = {{"type", NK_FK_STR, NK_FF_REQ},
                                             {"username", NK_FK_STR, NK_FF_REQ},
                                             {"password", NK_FK_STR, NK_FF_REQ}};

static bool auth_tmpl(struct nk_loader *ld, const struct nk_node *n, struct nk_tmpl *t)
{
    if (n == NULL || !nk_ld_tmpl(ld, n, NK_TMPL_MUSTACHE, t))
        return false;
    check_bind_vars(ld, n, t, false);
    return true;
}

static bool has_scheme(const char *v)
{
    /* "Bearer x", "Basic x", "ApiKey x": a token, a space, something */
    const char *sp = strchr(v, ' ');

    return sp != NULL && sp != v && sp[1] != '\0';
}

static const struct nk_field auth_oauth2[] = {
    {"type", NK_FK_STR, NK_FF_REQ},     {"authorizationServerUri", NK_FK_STR, NK_FF_REQ},
    {"resource", NK_FK_STR, NK_FF_REQ}, {"scopes", NK_FK_SEQ, 0},
    {"audience", NK_FK_STR, 0},         {"tokenValidation", NK_FK_STR, 0},
    {"tokenEndpoint", NK_FK_STR, 0},
};
enum { OA_TYPE, OA_AS, OA_RESOURCE, OA_SCOPES, OA_AUDIENCE, OA_VALIDATION, OA_TOKEN_ENDPOINT };

/* An absolute http(s) URI without a fragment (RFC 9728 resource and issuer identifiers). */
static bool oauth_uri(struct nk_loader *ld, const struct nk_node *n, const char *what)
{
    if ((strncmp(n->str, "https://", 8) != 0 && strncmp(n->str, "http://", 7) != 0) ||
        strchr(n->str, '#') != NULL || strpbrk(n->str, " \t\"") != NULL) {
        nk_ld_err(ld, n,
                  "%s must be an absolute https:// (or http://) URI without a fragment, got '%s'",
                  what, n->str);
        return false;
    }
    return true;
}

/* An adapter's `authentication: {type: oauth2, ...}` into a new nk_oauth_conf. */
static void load_oauth2(struct nk_loader *ld, const struct nk_node *n, struct nk_auth *a,
                        struct nk_oauth_conf **out)
{
    const struct nk_node *f[NK_NFIELDS(auth_oauth2)];
    struct nk_oauth_conf *o;
    size_t i;

    if (!nk_ld_fields(ld, n, "oauth2 authentication", auth_oauth2, NK_NFIELDS(auth_oauth2), f))
        return;
    if (f[OA_AS] == NULL || f[OA_RESOURCE] == NULL)
        return;
    /* every problem reported, not the first one only */
    (void)oauth_uri(ld, f[OA_AS], "'authorizationServerUri'");
    (void)oauth_uri(ld, f[OA_RESOURCE], "'resource'");
    if (f[OA_TOKEN_ENDPOINT] != NULL)
        nk_ld_warn(ld, f[OA_TOKEN_ENDPOINT],
                   "'tokenEndpoint' is not used by a resource server (the authorization "
                   "server's metadata names its endpoints): ignored");
    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        ld->oom = true;
        return;
    }
    *out = o; /* freed with the adapter from here on */
    o->authorization_server_uri = nk_ld_node_dup(ld, f[OA_AS]);
    o->resource = nk_ld_node_dup(ld, f[OA_RESOURCE]);
    o->audience = nk_ld_node_dup(ld, f[OA_AUDIENCE]);
    o->token_validation = NK_TOKEN_VALIDATION_JWKS;
    if (f[OA_VALIDATION] != NULL) {
        if (strcmp(f[OA_VALIDATION]->str, "introspection") == 0)
            o->token_validation = NK_TOKEN_VALIDATION_INTROSPECTION;
        else if (strcmp(f[OA_VALIDATION]->str, "jwks") != 0)
            nk_ld_err(ld, f[OA_VALIDATION],
                      "unknown tokenValidation '%s' (expected jwks or introspection)",
                      f[OA_VALIDATION]->str);
    }
    if (f[OA_SCOPES] != NULL && f[OA_SCOPES]->n > 0) {
        o->scopes = calloc(f[OA_SCOPES]->n, sizeof(char *));
        if (o->scopes == NULL) {
            ld->oom = true;
            return;
        }
        for (i = 0; i < f[OA_SCOPES]->n; i++) {
            const struct nk_node *s = f[OA_SCOPES]->items[i];

            if (!nk_node_is_string(s) || s->len == 0 || strpbrk(s->str, " \t\"\\") != NULL) {
                nk_ld_err(ld, s,
                          "an OAuth scope is a non-empty string without blanks, quotes "
                          "or backslashes");
                continue;
            }
            o->scopes[o->n_scopes++] = nk_ld_node_dup(ld, s);
        }
    }
    a->type = NK_AUTH_OAUTH2;
}

void nk_ld_auth(struct nk_loader *ld, const struct nk_node *n, struct nk_auth *a,
                struct nk_oauth_conf **oauth)
{
    const struct nk_node *f[4];
    const struct nk_node *type = nk_node_get(n, "type");

    if (type == NULL || !nk_node_is_string(type)) {
        nk_ld_err(ld, type ? type : n,
                  "authentication needs a 'type' (apikey, bearer, basic or "
                  "digest)");
        return;
    }
    if (strcmp(type->str, "apikey") == 0) {
        if (!nk_ld_fields(ld, n, "apikey authentication", auth_apikey, NK_NFIELDS(auth_apikey), f))
            return;
        if (f[1] == NULL || f[2] == NULL || f[3] == NULL)
            return;
        if (strcmp(f[3]->str, "header") == 0)
            a->placement = NK_PLACE_HEADER;
        else if (strcmp(f[3]->str, "query") == 0)
            a->placement = NK_PLACE_QUERY;
        else {
            nk_ld_err(ld, f[3], "unknown placement '%s' (expected header or query)", f[3]->str);
            return;
        }
        if (!auth_tmpl(ld, f[2], &a->value))
            return;
        /* A template ('{{env.STACKROX_API_KEY}}') is judged once resolved, by nk_context_new():
         * its text alone says nothing about the scheme. */
        if (a->placement == NK_PLACE_HEADER && strcasecmp(f[1]->str, "Authorization") == 0 &&
            strstr(f[2]->str, "{{") == NULL && !has_scheme(f[2]->str))
            nk_ld_warn(ld, f[2],
                       "the Authorization value '%s' has no scheme: it is sent exactly as "
                       "configured; servers such as StackRox Central only accept 'Bearer "
                       "<token>', so set the variable to \"Bearer <token>\" or use type: bearer",
                       f[2]->str);
        a->key = nk_ld_node_dup(ld, f[1]);
        a->type = NK_AUTH_APIKEY;
    } else if (strcmp(type->str, "bearer") == 0) {
        if (!nk_ld_fields(ld, n, "bearer authentication", auth_bearer, NK_NFIELDS(auth_bearer), f))
            return;
        if (!auth_tmpl(ld, f[1], &a->token))
            return;
        a->type = NK_AUTH_BEARER;
    } else if (strcmp(type->str, "basic") == 0 || strcmp(type->str, "digest") == 0) {
        bool basic = type->str[0] == 'b';
        if (!nk_ld_fields(ld, n, basic ? "basic authentication" : "digest authentication",
                          auth_basic, NK_NFIELDS(auth_basic), f))
            return;
        if (!auth_tmpl(ld, f[1], &a->username) || !auth_tmpl(ld, f[2], &a->password))
            return;
        a->type = basic ? NK_AUTH_BASIC : NK_AUTH_DIGEST;
        if (!basic && oauth != NULL)
            nk_ld_err(ld, type,
                      "digest authentication of an adapter is not supported: checking it needs "
                      "server nonces remembered across requests and replicas, and naftikod keeps "
                      "no per-client state (use basic over TLS, bearer or oauth2)");
    } else if (strcmp(type->str, "oauth2") == 0) {
        if (oauth == NULL)
            nk_ld_err(ld, type,
                      "authentication type 'oauth2' of a consumer is not supported by naftikod "
                      "(oauth2 is an adapter's inbound authentication)");
        else
            load_oauth2(ld, n, a, oauth);
    } else {
        nk_ld_err(ld, type,
                  "unknown authentication type '%s' (expected apikey, bearer, basic or digest)",
                  type->str);
    }
}

static int opname_cmp(const void *a, const void *b)
{
    const struct nk_operation *const *x = a;
    const struct nk_operation *const *y = b;
    int c = strcmp((*x)->name, (*y)->name);

    if (c != 0)
        return c;
    return (*x)->pos.line < (*y)->pos.line ? -1 : (*x)->pos.line > (*y)->pos.line;
}

/* Operation names are unique within a consumer (sorted, so 10,000 operations stay cheap). */
static void check_op_names(struct nk_loader *ld, const struct nk_consumer *c)
{
    const struct nk_operation **v;
    size_t i, first = 0;

    if (c->n_ops < 2)
        return;
    v = malloc(c->n_ops * sizeof(*v));
    if (v == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < c->n_ops; i++)
        v[i] = &c->ops[i];
    qsort(v, c->n_ops, sizeof(*v), opname_cmp);
    for (i = 1; i < c->n_ops; i++) {
        if (strcmp(v[i]->name, v[i - 1]->name) != 0) {
            first = i;
            continue;
        }
        nk_ld_err_at(ld, v[i]->pos.line, v[i]->pos.column,
                     "duplicate operation '%s' in consumes '%s' (first at line %u)", v[i]->name,
                     c->ns, v[first]->pos.line);
    }
    free(v);
}

/* Keep the declaration of consumer i (borrowed from the tree) to compare redeclarations. */
static bool remember_consumer_node(struct nk_loader *ld, size_t i, const struct nk_node *n)
{
    const struct nk_node **nn;
    const char **nf;

    if (i >= ld->n_consumer_nodes) {
        nn = realloc(ld->consumer_nodes, (i + 1) * sizeof(*nn));
        if (nn == NULL) {
            ld->oom = true;
            return false;
        }
        ld->consumer_nodes = nn;
        nf = realloc(ld->consumer_files, (i + 1) * sizeof(*nf));
        if (nf == NULL) {
            ld->oom = true;
            return false;
        }
        ld->consumer_files = nf;
        ld->n_consumer_nodes = i + 1;
    }
    ld->consumer_nodes[i] = n;
    ld->consumer_files[i] = ld->file;
    return true;
}

static void load_consumer(struct nk_loader *ld, const struct nk_node *n)
{
    const struct nk_node *f[NK_NFIELDS(consumes_fields)];
    struct nk_optable *t = ld->t;
    struct nk_consumer *c, *nc;
    size_t i, j, nops = 0;

    if (n->kind == NK_NODE_MAPPING && nk_node_get(n, "import") != NULL &&
        nk_node_get(n, "location") != NULL) {
        nk_ld_err(ld, n,
                  "imported consumers ('location' + 'import') are not supported by "
                  "naftikod yet");
        return;
    }
    if (!nk_ld_fields(ld, n, "consumes entry", consumes_fields, NK_NFIELDS(consumes_fields), f))
        return;
    if (f[C_TYPE] != NULL && strcmp(f[C_TYPE]->str, "http") != 0) {
        nk_ld_err(ld, f[C_TYPE], "unknown consumes type '%s' (expected http)", f[C_TYPE]->str);
        return;
    }
    if (f[C_TYPE] == NULL || f[C_NAMESPACE] == NULL || f[C_BASEURI] == NULL) {
        if (f[C_NAMESPACE] != NULL)
            nk_ld_broken(ld, f[C_NAMESPACE]->str, NULL);
        return;
    }
    if (!nk_ld_check_namespace(ld, f[C_NAMESPACE]))
        return;
    for (i = 0; i < t->n_consumers; i++)
        if (strcmp(t->consumers[i].ns, f[C_NAMESPACE]->str) == 0) {
            char where[1200];
            /* the same declaration in many documents is one consumer */
            bool other_file = i < ld->n_consumer_nodes && ld->consumer_nodes[i] != NULL &&
                              strcmp(ld->consumer_files[i], ld->file) != 0;
            if (other_file && nk_node_equal(ld->consumer_nodes[i], n))
                return;
            if (other_file)
                nk_ld_err(ld, f[C_NAMESPACE],
                          "duplicate consumes namespace '%s' declared differently (first at "
                          "%s): one namespace in many documents needs the same baseUri, "
                          "authentication and resources",
                          f[C_NAMESPACE]->str,
                          nk_ld_where_full(&t->consumers[i].pos, where, sizeof(where)));
            else
                nk_ld_err(ld, f[C_NAMESPACE], "duplicate consumes namespace '%s' (first at %s)",
                          f[C_NAMESPACE]->str,
                          nk_ld_where(ld, &t->consumers[i].pos, where, sizeof(where)));
            return;
        }
    nc = realloc(t->consumers, (t->n_consumers + 1) * sizeof(*nc));
    if (nc == NULL) {
        ld->oom = true;
        return;
    }
    t->consumers = nc;
    if (!remember_consumer_node(ld, t->n_consumers, n))
        return;
    c = &t->consumers[t->n_consumers++];
    memset(c, 0, sizeof(*c));
    c->ns = nk_ld_node_dup(ld, f[C_NAMESPACE]);
    c->description = nk_ld_node_dup(ld, f[C_DESCRIPTION]);
    c->pos = nk_ld_pos(ld, n);
    if (ld->oom)
        return;
    if (nk_ld_tmpl(ld, f[C_BASEURI], NK_TMPL_PATH, &c->base_uri)) {
        check_bind_vars(ld, f[C_BASEURI], &c->base_uri, true);
        if (strncmp(f[C_BASEURI]->str, "http://", 7) != 0 &&
            strncmp(f[C_BASEURI]->str, "https://", 8) != 0 &&
            strncmp(f[C_BASEURI]->str, "{", 1) != 0)
            nk_ld_err(ld, f[C_BASEURI], "baseUri '%s' must start with http:// or https://",
                      f[C_BASEURI]->str);
    }
    if (f[C_AUTH] != NULL)
        nk_ld_auth(ld, f[C_AUTH], &c->auth, NULL);
    if (f[C_RESOURCES] == NULL)
        return;
    for (i = 0; i < f[C_RESOURCES]->n; i++) {
        const struct nk_node *ops = nk_node_get(f[C_RESOURCES]->items[i], "operations");
        if (ops != NULL && ops->kind == NK_NODE_SEQUENCE)
            nops += ops->n;
    }
    c->ops = calloc(nops ? nops : 1, sizeof(*c->ops));
    if (c->ops == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < f[C_RESOURCES]->n && !ld->oom; i++) {
        const struct nk_node *rf[NK_NFIELDS(cres_fields)];
        if (!nk_ld_fields(ld, f[C_RESOURCES]->items[i], "consumed resource", cres_fields,
                          NK_NFIELDS(cres_fields), rf))
            continue;
        if (rf[CR_NAME] == NULL || rf[CR_PATH] == NULL || rf[CR_OPERATIONS] == NULL)
            continue;
        nk_ld_strict_kebab(ld, rf[CR_NAME], "resource name");
        for (j = 0; j < rf[CR_OPERATIONS]->n && !ld->oom; j++)
            load_operation(ld, rf[CR_OPERATIONS]->items[j], rf[CR_NAME], rf[CR_PATH], rf[CR_INPUTS],
                           f[C_INPUTS], c);
    }
    if (!ld->oom)
        check_op_names(ld, c);
}

/* ---- document ---------------------------------------------------------------------------- */

static const struct nk_field cap_fields[] = {{"consumes", NK_FK_SEQ, 0},
                                             {"exposes", NK_FK_SEQ, 0},
                                             {"binds", NK_FK_SEQ, 0},
                                             {"aggregates", NK_FK_SEQ, 0}};
enum { CF_CONSUMES, CF_EXPOSES, CF_BINDS, CF_AGGREGATES };

void nk_load_document(struct nk_loader *ld, const struct nk_node *root, int pass)
{
    const struct nk_node *f[NK_NFIELDS(root_fields)];
    const struct nk_node *cf[NK_NFIELDS(cap_fields)];
    size_t i;

    if (pass == 0) {
        if (!nk_ld_fields(ld, root, "the document", root_fields, NK_NFIELDS(root_fields), f))
            return;
        if (f[R_NAFTIKO] != NULL && strcmp(f[R_NAFTIKO]->str, SCHEMA_VERSION) != 0)
            nk_ld_err(ld, f[R_NAFTIKO],
                      "unsupported naftiko version '%s' (naftikod reads " SCHEMA_VERSION ")",
                      f[R_NAFTIKO]->str);
        if (f[R_INFO] != NULL)
            load_info(ld, f[R_INFO]);
        else if (ld->strict)
            nk_ld_warn(ld, root, "the document has no 'info'");
        if (f[R_BINDS] != NULL)
            load_binds(ld, f[R_BINDS]);
        if (nk_node_get(root, "capability") == NULL && nk_node_get(root, "consumes") == NULL)
            nk_ld_err(ld, root, "missing required field 'capability' in the document");
        if (f[R_CAPABILITY] != NULL && f[R_CONSUMES] != NULL)
            nk_ld_err(ld, f[R_CONSUMES],
                      "a document has either 'capability' or a root "
                      "'consumes' (a shared consumer file), not both");
        if (f[R_CAPABILITY] != NULL && nk_ld_fields(ld, f[R_CAPABILITY], "capability", cap_fields,
                                                    NK_NFIELDS(cap_fields), cf)) {
            if (cf[CF_CONSUMES] == NULL && cf[CF_EXPOSES] == NULL &&
                nk_node_get(f[R_CAPABILITY], "aggregates") == NULL)
                nk_ld_err(ld, f[R_CAPABILITY], "capability needs 'consumes' or 'exposes'");
            if (cf[CF_BINDS] != NULL)
                load_binds(ld, cf[CF_BINDS]);
            if (cf[CF_AGGREGATES] != NULL)
                nk_check_aggregates(ld, cf[CF_AGGREGATES]);
        }
        return;
    }
    /* later passes: the shapes were reported in pass 0; only walk what is well-formed */
    if (root->kind != NK_NODE_MAPPING)
        return;
    {
        const struct nk_node *cap = nk_node_get(root, "capability");
        const struct nk_node *sec;
        if (cap == NULL && pass == 1)
            cap = root; /* a shared consumer file: root-level consumes */
        if (cap == NULL || cap->kind != NK_NODE_MAPPING)
            return;
        sec = nk_node_get(cap, "exposes");
        for (i = 0; pass == 1 && sec != NULL && sec->kind == NK_NODE_SEQUENCE && i < sec->n; i++) {
            const struct nk_node *ns = nk_node_get(sec->items[i], "namespace");
            const char **nv;
            if (ns == NULL || ns->kind != NK_NODE_SCALAR)
                continue;
            nv = realloc(ld->exposes_ns, (ld->n_exposes_ns + 1) * sizeof(*nv));
            if (nv == NULL) {
                ld->oom = true;
                return;
            }
            ld->exposes_ns = nv;
            ld->exposes_ns[ld->n_exposes_ns++] = ns->str;
        }
        if (pass == 2)
            nk_check_aggregate_calls(ld, nk_node_get(cap, "aggregates"));
        sec = nk_node_get(cap, pass == 1 ? "consumes" : "exposes");
        if (sec == NULL || sec->kind != NK_NODE_SEQUENCE)
            return;
        if (pass == 1) {
            for (i = 0; i < sec->n && !ld->oom; i++)
                load_consumer(ld, sec->items[i]);
            /* consumers may have moved: refresh the back pointers */
            for (i = 0; i < ld->t->n_consumers; i++) {
                size_t j;
                ld->t->consumers[i].index = i;
                for (j = 0; j < ld->t->consumers[i].n_ops; j++)
                    ld->t->consumers[i].ops[j].consumer = &ld->t->consumers[i];
            }
        } else {
            nk_load_exposes(ld, sec, nk_node_get(cap, "aggregates"));
        }
    }
}
