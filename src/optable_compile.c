/* SPDX-License-Identifier: Apache-2.0 */
/* optable_compile.c: compile exposed operations against the consumed ones (call, with, args,
 * output mappings, input schemas) and check the table as a whole (routes, tools, ports). */
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "optable_int.h"

/* ---- arguments --------------------------------------------------------------------------- */

struct argvec {
    struct nk_arg *v;
    size_t n, cap;
};

static struct nk_arg *find_arg(struct nk_exposed *e, const char *name)
{
    size_t i;

    for (i = 0; i < e->n_args; i++)
        if (strcmp(e->args[i].name, name) == 0)
            return &e->args[i];
    return NULL;
}

/* Names equal up to case and the separators '.', '_' and '-': the generator writes
 * `{config-id}` / `{policyid}` in exposed paths for `rest.config.id` / `rest.policyId`. */
static bool loose_eq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = (char)((*a >= 'A' && *a <= 'Z') ? *a + 32 : *a);
        char y = (char)((*b >= 'A' && *b <= 'Z') ? *b + 32 : *b);
        if (x == '.' || x == '_')
            x = '-';
        if (y == '.' || y == '_')
            y = '-';
        if (x != y)
            return false;
    }
    return *a == *b;
}

/* The exposed path argument matching name loosely, or NULL. */
static struct nk_arg *find_path_arg_loose(struct nk_exposed *e, const char *name)
{
    size_t i;

    for (i = 0; i < e->n_args; i++)
        if (e->args[i].in == NK_IN_PATH && loose_eq(e->args[i].name, name))
            return &e->args[i];
    return NULL;
}

static size_t arg_index(const struct nk_exposed *e, const struct nk_arg *a)
{
    return (size_t)(a - e->args);
}

/* Append an argument; cap is the reserved size of e->args. Returns NULL on OOM (flagged). */
static struct nk_arg *add_arg(struct nk_loader *ld, struct nk_exposed *e, size_t *cap,
                              const char *name)
{
    struct nk_arg *a;

    if (e->n_args == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct nk_arg *nv = realloc(e->args, ncap * sizeof(*nv));
        if (nv == NULL) {
            ld->oom = true;
            return NULL;
        }
        e->args = nv;
        *cap = ncap;
    }
    a = &e->args[e->n_args];
    memset(a, 0, sizeof(*a));
    a->name = nk_ld_strdup(ld, name);
    if (a->name == NULL)
        return NULL;
    e->n_args++;
    return a;
}

static const struct {
    const char *name;
    unsigned flags; /* 1 required, 2 extension (strict warning), 4 REST only, 8 MCP only */
} rest_in_fields[] = {{"name", 1},    {"in", 1 | 4},   {"type", 1}, {"description", 1},
                      {"pattern", 4}, {"required", 0}, {"value", 4}};

/* Compile an input's pattern once, at load: a pattern POSIX cannot compile is a load error
 * (JSON Schema patterns are ECMA-262; the common subset is POSIX ERE). */
static void compile_pattern(struct nk_loader *ld, struct nk_arg *a, const struct nk_node *pattern)
{
    char why[128];
    int r;

    a->re = malloc(sizeof(*a->re));
    if (a->re == NULL) {
        ld->oom = true;
        return;
    }
    r = regcomp(a->re, pattern->str, REG_EXTENDED | REG_NOSUB);
    if (r == 0)
        return;
    if (r == REG_ESPACE)
        ld->oom = true;
    regerror(r, a->re, why, sizeof(why));
    free(a->re);
    a->re = NULL;
    if (!ld->oom)
        nk_ld_err(ld, pattern, "'pattern' '%s' is not a valid POSIX extended regex: %s",
                  pattern->str, why);
}

static void declared_arg(struct nk_loader *ld, struct nk_exposed *e, size_t *cap, bool rest,
                         const struct nk_node *n)
{
    const char *what = rest ? "REST inputParameter" : "MCP tool inputParameter";
    const struct nk_node *name = NULL, *in = NULL, *type = NULL, *desc = NULL, *pattern = NULL,
                         *req = NULL;
    struct nk_arg *a;
    size_t i, j;
    enum nk_in where = rest ? NK_IN_QUERY : NK_IN_BODY;

    if (n->kind != NK_NODE_MAPPING) {
        nk_ld_err(ld, n, "%s must be a mapping", what);
        return;
    }
    for (i = 0; i < n->n; i++) {
        const struct nk_node *k = n->pairs[i].key, *v = n->pairs[i].value;
        bool ok = true, b;
        for (j = 0; j < sizeof(rest_in_fields) / sizeof(rest_in_fields[0]); j++)
            if (strcmp(k->str, rest_in_fields[j].name) == 0)
                break;
        if (j == sizeof(rest_in_fields) / sizeof(rest_in_fields[0]) ||
            (!rest && (rest_in_fields[j].flags & 4))) {
            nk_ld_err(ld, k, "unknown field '%s' in %s", k->str, what);
            continue;
        }
        if (strcmp(k->str, "value") == 0) {
            nk_ld_err(ld, k, "'value' in %s is not supported by naftikod yet", what);
            continue;
        }
        if (strcmp(k->str, "required") == 0) {
            if (rest && ld->strict)
                nk_ld_warn(ld, k, "'required' in %s is not in the naftiko 1.0.0-alpha2 schema",
                           what);
            ok = nk_node_bool(v, &b);
            if (!ok)
                nk_ld_err(ld, v, "'required' in %s must be a boolean", what);
            else
                req = v;
            continue;
        }
        if (!nk_node_is_string(v)) {
            nk_ld_err(ld, v, "'%s' in %s must be a string", k->str, what);
            continue;
        }
        if (strcmp(k->str, "name") == 0)
            name = v;
        else if (strcmp(k->str, "in") == 0)
            in = v;
        else if (strcmp(k->str, "type") == 0)
            type = v;
        else if (strcmp(k->str, "description") == 0)
            desc = v;
        else
            pattern = v;
    }
    if (name == NULL || (rest && in == NULL)) {
        nk_ld_err(ld, n, "missing required field '%s' in %s", name == NULL ? "name" : "in", what);
        return;
    }
    if (ld->strict && (type == NULL || desc == NULL))
        nk_ld_warn(ld, n, "%s '%s' has no '%s' (required by the schema)", what, name->str,
                   type == NULL ? "type" : "description");
    if (in != NULL && !nk_ld_in(ld, in, false, &where))
        return;
    if (find_arg(e, name->str) != NULL) {
        nk_ld_err(ld, name, "duplicate inputParameter '%s'", name->str);
        return;
    }
    a = add_arg(ld, e, cap, name->str);
    if (a == NULL)
        return;
    a->in = where;
    a->required = rest ? where == NK_IN_PATH : true;
    if (req != NULL)
        nk_node_bool(req, &a->required);
    if (type != NULL)
        nk_ld_type(ld, type, &a->type);
    a->description = nk_ld_strdup(ld, desc ? desc->str : NULL);
    a->pattern = nk_ld_strdup(ld, pattern ? pattern->str : NULL);
    if (pattern != NULL && a->type != NK_TYPE_STRING && a->type != NK_TYPE_ANY)
        nk_ld_err(ld, pattern, "'pattern' applies only to string parameters");
    else if (pattern != NULL)
        compile_pattern(ld, a, pattern);
}

/* ---- with -------------------------------------------------------------------------------- */

/* If s is `rest.x`, `tools.x`, `<adapter-ns>.x` or `$this.<adapter-ns>.x`, return x.
 * A prefix naming another known namespace is reported (and NULL returned, *bad set). */
static const char *source_name(struct nk_loader *ld, const struct nk_adapter *a,
                               const struct nk_node *at, const char *s, bool *bad)
{
    size_t nl = strlen(a->ns), i;
    const char *dot;

    *bad = false;
    if (strncmp(s, "$this.", 6) == 0) {
        s += 6;
        if (strncmp(s, a->ns, nl) == 0 && s[nl] == '.' && s[nl + 1] != '\0')
            return s + nl + 1;
        if (at != NULL)
            nk_ld_err(ld, at, "'$this.%s' does not name this adapter's namespace '%s'", s, a->ns);
        *bad = true;
        return NULL;
    }
    if ((strncmp(s, "rest.", 5) == 0 && s[5] != '\0'))
        return s + 5;
    if ((strncmp(s, "tools.", 6) == 0 && s[6] != '\0'))
        return s + 6;
    if (strncmp(s, a->ns, nl) == 0 && s[nl] == '.' && s[nl + 1] != '\0')
        return s + nl + 1;
    /* an aggregate function's `with` names its inputs as `<aggregate>.x` */
    if (ld->agg_ns != NULL && strncmp(s, ld->agg_ns, strlen(ld->agg_ns)) == 0 &&
        s[strlen(ld->agg_ns)] == '.' && s[strlen(ld->agg_ns) + 1] != '\0')
        return s + strlen(ld->agg_ns) + 1;
    dot = strchr(s, '.');
    if (dot == NULL || strchr(s, ' ') != NULL || strchr(s, '{') != NULL)
        return NULL;
    for (i = 0; i < ld->n_exposes_ns + ld->t->n_consumers; i++) {
        const char *ns =
            i < ld->n_exposes_ns ? ld->exposes_ns[i] : ld->t->consumers[i - ld->n_exposes_ns].ns;
        if (ns != NULL && strlen(ns) == (size_t)(dot - s) && strncmp(s, ns, strlen(ns)) == 0) {
            if (at != NULL)
                nk_ld_err(ld, at, "'%s' refers to namespace '%s', not to this adapter: use %s.%s",
                          s, ns, a->type == NK_ADAPTER_REST ? "rest" : "tools", dot + 1);
            *bad = true;
            return NULL;
        }
    }
    return NULL;
}

/* "a, b, c" (the operation's inputs) into buf. */
static const char *arg_list(const struct nk_exposed *e, char *buf, size_t size)
{
    size_t i, len = 0;

    buf[0] = '\0';
    for (i = 0; i < e->n_args && len + 1 < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i ? ", " : "", e->args[i].name);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (len >= size && size > 4)
        strcpy(buf + size - 4, "...");
    return buf;
}

/* The argument a `with` source names. An operation that declares inputParameters takes only
 * those (and its path variables): a source naming none of them is an error at (line, col),
 * reported with the declared names. One that declares none gets the argument implicitly. */
static struct nk_arg *source_arg(struct nk_loader *ld, const struct nk_adapter *a,
                                 struct nk_exposed *e, size_t *cap, const char *name,
                                 const struct nk_param *target, bool declared, unsigned line,
                                 unsigned col, const char *written)
{
    struct nk_arg *arg = find_arg(e, name);
    char names[256];

    if (arg == NULL && a->type == NK_ADAPTER_REST)
        arg = find_path_arg_loose(e, name);
    if (arg != NULL)
        return arg;
    if (declared) {
        nk_ld_err_at(ld, line, col,
                     "'%s' names no input of this operation (its inputParameters declare: %s)",
                     written, arg_list(e, names, sizeof(names)));
        return NULL;
    }
    arg = add_arg(ld, e, cap, name);
    if (arg == NULL)
        return NULL;
    if (a->type == NK_ADAPTER_MCP) {
        arg->in = NK_IN_BODY;
    } else if (target != NULL && target->in == NK_IN_BODY) {
        arg->in = NK_IN_BODY;
    } else {
        arg->in = NK_IN_QUERY;
    }
    if (target != NULL) {
        arg->type = target->type;
        if (arg->in == NK_IN_BODY && a->type == NK_ADAPTER_REST && arg->type == NK_TYPE_ANY)
            arg->type = NK_TYPE_OBJECT;
        arg->required = target->required && target->value == NULL;
        arg->description = nk_ld_strdup(ld, target->description);
    }
    return arg;
}

static const struct nk_param *find_param(const struct nk_operation *o, const char *name)
{
    size_t i;

    for (i = 0; i < o->n_params; i++)
        if (strcmp(o->params[i].name, name) == 0)
            return &o->params[i];
    return NULL;
}

/* The step among those compiled so far (e->steps[0..n_steps)) that a template variable reads
 * (`step` or `step.field...`), or -1. */
static long var_step(const struct nk_exposed *e, const char *name)
{
    size_t n = strcspn(name, "."), i;

    for (i = 0; e->steps != NULL && i < e->n_steps; i++)
        if (e->steps[i].name != NULL && strlen(e->steps[i].name) == n &&
            strncmp(e->steps[i].name, name, n) == 0)
            return (long)i;
    return -1;
}

/* One `with` entry k: v, bound into the next free slot of e->bindings. */
static void compile_with_entry(struct nk_loader *ld, const struct nk_adapter *a,
                               const struct nk_node *k, const struct nk_node *v,
                               struct nk_exposed *e, size_t *cap, bool declared)
{
    const struct nk_operation *o = e->target;
    const struct nk_param *p = find_param(o, k->str);
    struct nk_binding *b;
    const char *src;
    bool bad = false, bv;
    size_t j;

    if (p == NULL) {
        nk_ld_err(ld, k, "'with' key '%s' is not an inputParameter of '%s'", k->str, o->qname);
        return;
    }
    if (v->kind != NK_NODE_SCALAR || nk_node_is_null(v)) {
        nk_ld_err(ld, v, "'with' value for '%s' must be a string", k->str);
        return;
    }
    if (ld->strict && nk_node_bool(v, &bv))
        nk_ld_warn(ld, v,
                   "a boolean 'with' value is not in the naftiko 1.0.0-alpha2 schema "
                   "(strings and numbers only)");
    b = &e->bindings[e->n_bindings];
    memset(b, 0, sizeof(*b));
    b->param = p;
    src = nk_node_is_string(v) ? source_name(ld, a, v, v->str, &bad) : NULL;
    if (nk_node_is_string(v) && bad)
        return;
    if (src != NULL && ld->strict &&
        (strncmp(v->str, a->ns, strlen(a->ns)) != 0 || v->str[strlen(a->ns)] != '.') &&
        (ld->agg_ns == NULL || strncmp(v->str, ld->agg_ns, strlen(ld->agg_ns)) != 0 ||
         v->str[strlen(ld->agg_ns)] != '.'))
        nk_ld_warn(ld, v, "'%s' is a naftikod shorthand; the alpha2 form is '%s.%s'", v->str, a->ns,
                   src);
    if (src != NULL) {
        struct nk_arg *arg =
            source_arg(ld, a, e, cap, src, p, declared, v->line, v->column, v->str);
        if (arg == NULL)
            return;
        b->kind = NK_BIND_ARG;
        b->arg = arg_index(e, arg);
        e->n_bindings++;
        return;
    }
    b->kind = NK_BIND_TEMPLATE;
    if (!nk_ld_tmpl(ld, v, NK_TMPL_MUSTACHE, &b->tmpl))
        return;
    e->n_bindings++;
    for (j = 0; j < b->tmpl.n; j++) {
        const struct nk_tmpl_part *part = &b->tmpl.parts[j];
        const char *name;
        bad = false;
        if (part->kind != NK_TMPL_VAR)
            continue;
        if (var_step(e, part->text) >= 0)
            continue; /* an earlier step's output */
        if (nk_ld_find_bind(ld, part->text) != NULL) {
            nk_ld_check_ambiguous(ld, v, part);
            continue;
        }
        name = source_name(ld, a, NULL, part->text, &bad);
        if (name != NULL) {
            char written[300];
            snprintf(written, sizeof(written), "{{%s}}", part->text);
            source_arg(ld, a, e, cap, name, NULL, declared, v->line, nk_ld_col(v, part->offset),
                       written);
            continue;
        }
        if (name == NULL && find_arg(e, part->text) != NULL)
            continue;
        if (e->steps != NULL)
            nk_ld_err_at(ld, v->line, nk_ld_col(v, part->offset),
                         "'{{%s}}' names neither a declared bind, an input of this operation "
                         "nor an earlier step",
                         part->text);
        else
            nk_ld_err_at(ld, v->line, nk_ld_col(v, part->offset),
                         "'{{%s}}' names neither a declared bind nor an input of this operation",
                         part->text);
    }
}

/* Bind the target's parameters: `with` entries (the operation's, then those of its aggregate
 * function, fwith, that the operation does not override), then pass-through by name. */
static void compile_with(struct nk_loader *ld, const struct nk_adapter *a,
                         const struct nk_node *with, const struct nk_node *fwith,
                         struct nk_exposed *e, size_t *cap, bool declared)
{
    const struct nk_operation *o = e->target;
    size_t i, j;

    e->bindings = calloc(o->n_params ? o->n_params : 1, sizeof(*e->bindings));
    if (e->bindings == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; with != NULL && i < with->n && !ld->oom; i++)
        compile_with_entry(ld, a, with->pairs[i].key, with->pairs[i].value, e, cap, declared);
    for (i = 0; fwith != NULL && i < fwith->n && !ld->oom; i++)
        if (nk_node_get(with, fwith->pairs[i].key->str) == NULL)
            compile_with_entry(ld, a, fwith->pairs[i].key, fwith->pairs[i].value, e, cap, declared);
    /* Parameters `with` does not mention: an input of the same name passes through; else a
     * required parameter without a value cannot be reached. */
    for (i = 0; i < o->n_params && !ld->oom; i++) {
        const struct nk_param *p = &o->params[i];
        struct nk_arg *arg;
        bool bound = false;
        for (j = 0; j < e->n_bindings && !bound; j++)
            bound = e->bindings[j].param == p;
        if (bound || p->value != NULL)
            continue;
        arg = find_arg(e, p->name);
        if (arg == NULL && a->type == NK_ADAPTER_REST)
            arg = find_path_arg_loose(e, p->name);
        if (arg != NULL) {
            struct nk_binding *b = &e->bindings[e->n_bindings++];
            memset(b, 0, sizeof(*b));
            b->param = p;
            b->kind = NK_BIND_ARG;
            b->arg = arg_index(e, arg);
        }
    }
}

/* ---- outputs ----------------------------------------------------------------------------- */

/* Where an outputParameter sits: the one top entry of a `call` operation, a child of it, or a
 * named entry of a mock (no upstream: `mapping` has nothing to read). */
enum out_mode { OUT_TOP, OUT_CHILD, OUT_MOCK };

struct outctx {
    const struct nk_adapter *a;
    struct nk_exposed *e;
    bool mock;
};

static bool compile_outmap(struct nk_loader *ld, const struct outctx *oc, const struct nk_node *n,
                           struct nk_outmap *m, enum out_mode mode);

/* `value:` of an outputParameter: a Mustache template over the operation's inputs. A bind never
 * goes into an answer (it would hand a credential to the caller); a literal must already be
 * of the declared type. */
static bool compile_value(struct nk_loader *ld, const struct outctx *oc, const struct nk_node *v,
                          struct nk_outmap *m)
{
    json_t *lit, *c;
    size_t i;
    bool ok = true, oom = false, bad;

    m->value = calloc(1, sizeof(*m->value));
    if (m->value == NULL) {
        ld->oom = true;
        return false;
    }
    if (!nk_ld_tmpl(ld, v, NK_TMPL_MUSTACHE, m->value))
        return false;
    for (i = 0; i < m->value->n; i++) {
        const struct nk_tmpl_part *p = &m->value->parts[i];
        const char *name;
        if (p->kind != NK_TMPL_VAR)
            continue;
        name = source_name(ld, oc->a, NULL, p->text, &bad);
        if (find_arg(oc->e, p->text) != NULL || (name != NULL && find_arg(oc->e, name) != NULL))
            continue;
        ok = false;
        if (nk_ld_find_bind(ld, p->text) != NULL)
            nk_ld_err_at(ld, v->line, nk_ld_col(v, p->offset),
                         "'{{%s}}' in an output value names a bind: binds never go into an "
                         "answer",
                         p->text);
        else
            nk_ld_err_at(ld, v->line, nk_ld_col(v, p->offset),
                         "'{{%s}}' in an output value names no input of this operation", p->text);
    }
    if (!ok || !nk_tmpl_is_literal(m->value) || m->type == NK_TYPE_ANY)
        return ok;
    lit = json_string(m->value->n ? m->value->parts[0].text : "");
    c = lit != NULL ? nk_type_coerce(m->type, lit, &oom) : NULL;
    if (lit == NULL || oom) {
        ld->oom = true;
        ok = false;
    } else if (c == NULL) {
        nk_ld_err(ld, v, "value '%s' is not %s %s", v->str,
                  m->type == NK_TYPE_INTEGER || m->type == NK_TYPE_ARRAY ||
                          m->type == NK_TYPE_OBJECT
                      ? "an"
                      : "a",
                  nk_type_name(m->type));
        ok = false;
    }
    json_decref(c);
    json_decref(lit);
    return ok;
}

static bool compile_jsonpath(struct nk_loader *ld, const struct nk_node *n,
                             struct nk_jsonpath **out)
{
    struct nk_error err;
    enum nk_rc rc;

    memset(&err, 0, sizeof(err));
    rc = nk_jsonpath_compile(n->str, out, &err);
    if (rc == NK_ERR_NOMEM) {
        ld->oom = true;
        return false;
    }
    if (rc != NK_OK) {
        nk_ld_err_at(ld, n->line, nk_ld_col(n, err.column ? err.column - 1 : 0),
                     "invalid JSONPath '%s': %s", n->str, err.msg);
        return false;
    }
    return true;
}

static bool compile_outmap(struct nk_loader *ld, const struct outctx *oc, const struct nk_node *n,
                           struct nk_outmap *m, enum out_mode mode)
{
    const struct nk_node *type = NULL, *mapping = NULL, *konst = NULL, *props = NULL, *items = NULL,
                         *value = NULL;
    size_t i;
    bool ok = true;

    if (n->kind != NK_NODE_MAPPING) {
        nk_ld_err(ld, n, "outputParameter must be a mapping");
        return false;
    }
    for (i = 0; i < n->n; i++) {
        const struct nk_node *k = n->pairs[i].key, *v = n->pairs[i].value;
        if (strcmp(k->str, "type") == 0 && nk_node_is_string(v))
            type = v;
        else if (strcmp(k->str, "mapping") == 0 && nk_node_is_string(v))
            mapping = v;
        else if (strcmp(k->str, "const") == 0 && !nk_node_is_null(v))
            konst = v;
        else if (strcmp(k->str, "value") == 0 && nk_node_is_string(v))
            value = v;
        else if (strcmp(k->str, "properties") == 0 && v->kind == NK_NODE_MAPPING)
            props = v;
        else if (strcmp(k->str, "items") == 0 &&
                 (v->kind == NK_NODE_MAPPING || v->kind == NK_NODE_SEQUENCE))
            items = v;
        else if (strcmp(k->str, "name") == 0 && mode == OUT_MOCK && nk_node_is_string(v))
            m->name = nk_ld_strdup(ld, v->str);
        else if (strcmp(k->str, "name") == 0 && mode == OUT_TOP)
            nk_ld_err(ld, k,
                      "'name' in a mapped outputParameter is for orchestrated 'steps', "
                      "which are not supported by naftikod yet");
        else if (strcmp(k->str, "type") == 0 || strcmp(k->str, "mapping") == 0)
            nk_ld_err(ld, v, "'%s' in outputParameter must be a string", k->str);
        else if (strcmp(k->str, "properties") == 0)
            nk_ld_err(ld, v, "'properties' in outputParameter must be a mapping");
        else if (strcmp(k->str, "items") == 0)
            nk_ld_err(ld, v, "'items' in outputParameter must be a mapping or a sequence");
        else if (strcmp(k->str, "const") == 0)
            nk_ld_err(ld, v, "'const' in outputParameter must not be null");
        else if (strcmp(k->str, "value") == 0)
            nk_ld_err(ld, v, "'value' in outputParameter must be a string");
        else
            nk_ld_err(ld, k, "unknown field '%s' in outputParameter", k->str);
    }
    if (type == NULL) {
        if (nk_node_get(n, "type") == NULL)
            nk_ld_err(ld, n, "missing required field 'type' in outputParameter");
        return false;
    }
    if (!nk_ld_type(ld, type, &m->type))
        return false;
    if (m->type == NK_TYPE_INTEGER && ld->strict)
        nk_ld_warn(ld, type,
                   "type integer in an outputParameter is not in the naftiko "
                   "1.0.0-alpha2 schema (use number)");
    if (mode == OUT_MOCK && ld->strict && (m->type == NK_TYPE_OBJECT || m->type == NK_TYPE_ARRAY))
        nk_ld_warn(ld, type,
                   "type %s in a mock outputParameter is not in the naftiko 1.0.0-alpha2 "
                   "schema (string, number or boolean)",
                   nk_type_name(m->type));
    if (mode == OUT_MOCK && m->name == NULL) {
        nk_ld_err(ld, n, "missing required field 'name' in mock outputParameter");
        ok = false;
    }
    if (oc->mock && mapping != NULL) {
        nk_ld_err(ld, mapping,
                  "'mapping' in a mock outputParameter has nothing to read (no 'call'): "
                  "use 'value'");
        return false;
    }
    /* `value` is expanded at run time and wins over `mapping` and `const` */
    if (value != NULL) {
        if (!compile_value(ld, oc, value, m))
            ok = false;
        konst = NULL;
    }
    if (mapping != NULL && !compile_jsonpath(ld, mapping, &m->mapping))
        ok = false;
    if (mapping != NULL && ld->strict && strcmp(mapping->str, "$.") == 0)
        nk_ld_warn(ld, mapping, "'$.' is naftikod's spelling of the JSONPath root '$'");
    if (konst != NULL && (m->konst = nk_ld_json(ld, konst)) == NULL)
        return false;
    if (props != NULL && m->type != NK_TYPE_OBJECT)
        nk_ld_err(ld, props, "'properties' needs type object, not %s", nk_type_name(m->type));
    if (items != NULL && m->type != NK_TYPE_ARRAY)
        nk_ld_err(ld, items, "'items' needs type array, not %s", nk_type_name(m->type));
    if (props != NULL && m->type == NK_TYPE_OBJECT) {
        m->props = calloc(props->n ? props->n : 1, sizeof(*m->props));
        if (m->props == NULL) {
            ld->oom = true;
            return false;
        }
        for (i = 0; i < props->n && !ld->oom; i++) {
            struct nk_outmap *c = &m->props[m->n_props];
            c->name = nk_ld_strdup(ld, props->pairs[i].key->str);
            m->n_props++;
            if (!compile_outmap(ld, oc, props->pairs[i].value, c, OUT_CHILD))
                ok = false;
        }
    }
    if (items != NULL && m->type == NK_TYPE_ARRAY) {
        const struct nk_node *in = items;
        if (items->kind == NK_NODE_SEQUENCE) {
            if (ld->strict)
                nk_ld_warn(ld, items,
                           "'items' as a sequence is not in the naftiko 1.0.0-alpha2 "
                           "schema (write the item shape as a mapping)");
            if (items->n != 1) {
                nk_ld_err(ld, items, "'items' must describe exactly one item shape");
                return false;
            }
            in = items->items[0];
        }
        m->items = calloc(1, sizeof(*m->items));
        if (m->items == NULL) {
            ld->oom = true;
            return false;
        }
        if (!compile_outmap(ld, oc, in, m->items, OUT_CHILD))
            ok = false;
    }
    if (mapping == NULL && konst == NULL && value == NULL && props == NULL && items == NULL) {
        nk_ld_err(ld, n, "outputParameter of type %s needs %s'mapping', 'value' or 'const'",
                  nk_type_name(m->type),
                  m->type == NK_TYPE_OBJECT  ? "'properties', "
                  : m->type == NK_TYPE_ARRAY ? "'items', "
                                             : "");
        return false;
    }
    if (ld->strict && mapping != NULL && props == NULL && m->type == NK_TYPE_OBJECT)
        nk_ld_warn(ld, n,
                   "an object outputParameter with 'mapping' and no 'properties' (pass "
                   "the subtree through) is a naftikod extension");
    return ok;
}

/* ---- input schema ------------------------------------------------------------------------ */

static json_t *arg_schema(const struct nk_arg *a)
{
    json_t *s = json_object();
    const char *desc = a->description;

    if (s == NULL)
        return NULL;
    if (a->type != NK_TYPE_ANY &&
        json_object_set_new(s, "type", json_string(nk_type_name(a->type))))
        goto fail;
    if (desc == NULL && a->in == NK_IN_BODY && a->type == NK_TYPE_OBJECT)
        desc = "The JSON request body.";
    if (desc != NULL && json_object_set_new(s, "description", json_string(desc)))
        goto fail;
    if (a->pattern != NULL && json_object_set_new(s, "pattern", json_string(a->pattern)))
        goto fail;
    return s;
fail:
    json_decref(s);
    return NULL;
}

static void build_schema(struct nk_loader *ld, struct nk_exposed *e)
{
    json_t *props = json_object(), *req = json_array(), *schema = json_object();
    size_t i;

    if (props == NULL || req == NULL || schema == NULL)
        goto oom;
    for (i = 0; i < e->n_args; i++) {
        struct nk_arg *a = &e->args[i];
        a->schema = arg_schema(a);
        if (a->schema == NULL || json_object_set(props, a->name, a->schema) != 0)
            goto oom;
        if (a->required && json_array_append_new(req, json_string(a->name)) != 0)
            goto oom;
    }
    if (json_object_set_new(schema, "type", json_string("object")) != 0)
        goto oom;
    if (json_object_set_new(schema, "properties", props) != 0) {
        props = NULL;
        goto oom;
    }
    props = NULL;
    if (json_array_size(req) > 0) {
        if (json_object_set_new(schema, "required", req) != 0) {
            req = NULL;
            goto oom;
        }
    } else {
        json_decref(req);
    }
    req = NULL;
    e->input_schema = schema;
    return;
oom:
    ld->oom = true;
    json_decref(props);
    json_decref(req);
    json_decref(schema);
}

/* Does the variable v (x, rest.x, ns.x, ...) name the input called name? */
static bool var_names(const char *v, const char *name)
{
    const char *dot = strrchr(v, '.');

    return strcmp(v, name) == 0 || (dot != NULL && strcmp(dot + 1, name) == 0);
}

/* Does an output value template in m use the input called name? */
static bool output_uses(const struct nk_outmap *m, const char *name)
{
    size_t i;

    if (m == NULL)
        return false;
    for (i = 0; m->value != NULL && i < m->value->n; i++)
        if (m->value->parts[i].kind == NK_TMPL_VAR && var_names(m->value->parts[i].text, name))
            return true;
    for (i = 0; i < m->n_props; i++)
        if (output_uses(&m->props[i], name))
            return true;
    return output_uses(m->items, name);
}

/* An exposed input that reaches no upstream parameter is almost always a spelling mismatch. */
static void warn_unused_args(struct nk_loader *ld, const struct nk_exposed_src *src,
                             const struct nk_exposed *e)
{
    size_t i, j, k;

    for (i = 0; i < e->n_args; i++) {
        bool used = output_uses(e->output, e->args[i].name);
        for (j = 0; j < e->target->n_body_vars && !used; j++)
            used = var_names(e->target->body_vars[j].name, e->args[i].name);
        for (j = 0; j < e->n_bindings && !used; j++) {
            const struct nk_binding *b = &e->bindings[j];
            if (b->kind == NK_BIND_ARG) {
                used = b->arg == i;
                continue;
            }
            for (k = 0; k < b->tmpl.n && !used; k++) {
                const char *v = b->tmpl.parts[k].text, *dot = strrchr(v, '.');
                used = b->tmpl.parts[k].kind == NK_TMPL_VAR &&
                       (strcmp(v, e->args[i].name) == 0 ||
                        (dot != NULL && strcmp(dot + 1, e->args[i].name) == 0));
            }
        }
        if (!used)
            nk_ld_warn(ld, src->node, "input '%s' is not passed to '%s' (no 'with' uses it)",
                       e->args[i].name, e->target->qname);
    }
}

/* ---- body variables ---------------------------------------------------------------------- */

/* Does the consumed parameter p receive a value from this operation (with, pass-through or its
 * own value)? */
static bool param_bound(const struct nk_exposed *e, const struct nk_param *p)
{
    size_t i;

    if (p->value != NULL)
        return true;
    for (i = 0; i < e->n_bindings; i++)
        if (e->bindings[i].param == p)
            return true;
    return false;
}

/* Every `{{name}}` of the target's body must be supplied by this operation: an input (by any
 * of its spellings: x, rest.x, tools.x, ns.x, $this.ns.x), or a consumed parameter the operation
 * binds. Binds were checked when the body loaded. An operation that declares no inputs gets the
 * missing ones as implicit required arguments, as for `with` sources. */
static void check_body_vars(struct nk_loader *ld, const struct nk_adapter *a,
                            const struct nk_exposed_src *src, struct nk_exposed *e, size_t *cap,
                            bool declared)
{
    const struct nk_operation *o = e->target;
    char names[256], where[300];
    size_t i;

    for (i = 0; i < o->n_body_vars && !ld->oom; i++) {
        const struct nk_bodyvar *bv = &o->body_vars[i];
        const struct nk_param *p = find_param(o, bv->name);
        const char *name, *dot;
        struct nk_arg *arg;
        bool bad = false, found = false;
        if (p != NULL && param_bound(e, p))
            continue;
        if (var_step(e, bv->name) >= 0)
            continue; /* an earlier step's output */
        for (name = bv->name; name != NULL && !found; name = dot != NULL ? dot + 1 : NULL) {
            found = find_arg(e, name) != NULL;
            dot = strchr(name, '.');
        }
        if (found)
            continue;
        name = source_name(ld, a, NULL, bv->name, &bad);
        if (name == NULL && !bad && strchr(bv->name, '.') == NULL)
            name = bv->name;
        if (bv->pos.file == ld->file)
            snprintf(where, sizeof(where), "line %u, column %u", bv->pos.line, bv->pos.column);
        else
            snprintf(where, sizeof(where), "%s:%u:%u", bv->pos.file ? bv->pos.file : "",
                     bv->pos.line, bv->pos.column);
        if (name == NULL || declared) {
            nk_ld_err(ld, src->call,
                      "the body of '%s' uses '{{%s}}' (%s), which names neither a declared bind "
                      "nor an input of this operation (inputs: %s)",
                      o->qname, bv->name, where,
                      e->n_args ? arg_list(e, names, sizeof(names)) : "none");
            continue;
        }
        arg = source_arg(ld, a, e, cap, name, NULL, false, 0, 0, bv->name);
        if (arg != NULL && arg->description == NULL) {
            /* new: say what it is for (MCP inputSchema, OpenAPI) */
            snprintf(where, sizeof(where), "Sent in the request body of %s as {{%s}}.", o->qname,
                     bv->name);
            arg->description = nk_ld_strdup(ld, where);
            arg->required = true;
            if (a->type == NK_ADAPTER_MCP)
                arg->in = NK_IN_BODY;
        }
    }
}

/* ---- orchestration: steps, mappings, orchestrated outputs --------------------------------- */

/* "a, b, c" (the steps compiled so far) into buf. */
static const char *step_list(const struct nk_exposed *e, size_t n, char *buf, size_t size)
{
    size_t i, len = 0;

    buf[0] = '\0';
    for (i = 0; i < n && len + 1 < size; i++) {
        int w = snprintf(buf + len, size - len, "%s%s", i ? ", " : "",
                         e->steps[i].name != NULL ? e->steps[i].name : "?");
        if (w < 0)
            break;
        len += (size_t)w;
    }
    if (len >= size && size > 4)
        strcpy(buf + size - 4, "...");
    if (n == 0)
        snprintf(buf, size, "none");
    return buf;
}

/* `$.STEP` then a JSONPath over that step's output; STEP one of e->steps[0..n). The step name
 * may hold '-', which RFC 9535's dot notation does not take, so it is split off first. */
static bool compile_stepref(struct nk_loader *ld, const struct nk_exposed *e, size_t n,
                            const struct nk_node *v, struct nk_stepref *out)
{
    const char *s = v->str, *name;
    char *q, names[256];
    size_t len, i;
    struct nk_error err;
    enum nk_rc rc;

    if (strncmp(s, "$.", 2) != 0 || s[2] == '\0') {
        nk_ld_err(ld, v, "'%s' must read a step's output as '$.STEP' or '$.STEP.field' (steps: %s)",
                  s, step_list(e, n, names, sizeof(names)));
        return false;
    }
    name = s + 2;
    len = strcspn(name, ".[");
    for (i = 0; i < n; i++)
        if (e->steps[i].name != NULL && strlen(e->steps[i].name) == len &&
            strncmp(e->steps[i].name, name, len) == 0)
            break;
    if (i == n) {
        nk_ld_err_at(ld, v->line, nk_ld_col(v, 2), "'%.*s' in '%s' names no %sstep (steps%s: %s)",
                     (int)len, name, s, n < e->n_steps ? "earlier " : "",
                     n < e->n_steps ? " so far" : "", step_list(e, n, names, sizeof(names)));
        return false;
    }
    out->step = i;
    q = malloc(strlen(name + len) + 2);
    if (q == NULL) {
        ld->oom = true;
        return false;
    }
    q[0] = '$';
    strcpy(q + 1, name + len);
    memset(&err, 0, sizeof(err));
    rc = nk_jsonpath_compile(q, &out->path, &err);
    free(q);
    if (rc == NK_ERR_NOMEM) {
        ld->oom = true;
        return false;
    }
    if (rc != NK_OK) {
        nk_ld_err_at(ld, v->line, nk_ld_col(v, (unsigned)(2 + len)),
                     "invalid JSONPath after '$.%.*s' in '%s': %s", (int)len, name, s, err.msg);
        return false;
    }
    return true;
}

static const struct nk_field step_call_fields[] = {
    {"type", NK_FK_STR, NK_FF_REQ},
    {"name", NK_FK_STR, NK_FF_REQ},
    {"call", NK_FK_STR, NK_FF_REQ},
    {"with", NK_FK_MAP, 0},
};
static const struct nk_field step_lookup_fields[] = {
    {"type", NK_FK_STR, NK_FF_REQ},        {"name", NK_FK_STR, NK_FF_REQ},
    {"index", NK_FK_STR, NK_FF_REQ},       {"match", NK_FK_STR, NK_FF_REQ},
    {"lookupValue", NK_FK_STR, NK_FF_REQ}, {"outputParameters", NK_FK_SEQ, NK_FF_REQ},
};

/* A call step: its target and its `with` bindings (compiled as a `call`'s, against the
 * operation's arguments, with `{{step.field}}` of the earlier steps allowed). */
static bool compile_call_step(struct nk_loader *ld, const struct nk_adapter *a,
                              const struct nk_exposed_src *src, struct nk_exposed *e, size_t *cap,
                              bool declared, const struct nk_node *n, struct nk_step *st)
{
    const struct nk_node *f[NK_NFIELDS(step_call_fields)];
    struct nk_exposed_src ssrc;
    const char *dot;
    size_t i;

    if (!nk_ld_fields(ld, n, "call step", step_call_fields, NK_NFIELDS(step_call_fields), f) ||
        f[2] == NULL)
        return false;
    dot = strchr(f[2]->str, '.');
    if (dot == NULL || dot == f[2]->str || dot[1] == '\0' || strchr(dot + 1, '.')) {
        nk_ld_err(ld, f[2], "'call' must be 'namespace.operation', not '%s'", f[2]->str);
        return false;
    }
    st->target = nk_ld_find_op(ld, f[2]->str);
    if (st->target == NULL) {
        if (!ld->oom && !nk_ld_is_broken(ld, f[2]->str))
            nk_ld_err(ld, f[2], "'call' target '%s' is not a consumed operation", f[2]->str);
        return false;
    }
    /* compile_with and check_body_vars work on e->target and e->bindings: lend them */
    e->target = st->target;
    compile_with(ld, a, f[3], NULL, e, cap, declared);
    ssrc = *src;
    ssrc.call = f[2];
    ssrc.with = f[3];
    if (!ld->oom)
        check_body_vars(ld, a, &ssrc, e, cap, declared);
    for (i = 0; i < st->target->n_params && !ld->oom; i++) {
        const struct nk_param *p = &st->target->params[i];
        size_t j;
        bool bound = p->value != NULL || nk_node_get(f[3], p->name) != NULL;
        for (j = 0; j < e->n_bindings && !bound; j++)
            bound = e->bindings[j].param == p;
        if (!bound && p->required)
            nk_ld_err(ld, f[2], "required parameter '%s' of '%s' is not bound (add it to 'with')",
                      p->name, st->target->qname);
    }
    st->bindings = e->bindings;
    st->n_bindings = e->n_bindings;
    e->bindings = NULL;
    e->n_bindings = 0;
    e->target = NULL;
    return true;
}

/* A lookup step: index names an earlier step, lookupValue is `$.step...` or a template over the
 * arguments and earlier steps, outputParameters the field names kept. */
static bool compile_lookup_step(struct nk_loader *ld, struct nk_exposed *e, const struct nk_node *n,
                                struct nk_step *st)
{
    const struct nk_node *f[NK_NFIELDS(step_lookup_fields)];
    char names[256];
    size_t i;
    long k;
    bool ok = true;

    if (!nk_ld_fields(ld, n, "lookup step", step_lookup_fields, NK_NFIELDS(step_lookup_fields),
                      f) ||
        f[2] == NULL || f[3] == NULL || f[4] == NULL || f[5] == NULL)
        return false;
    k = var_step(e, f[2]->str);
    if (k >= 0 && strchr(f[2]->str, '.') != NULL && ld->strict)
        nk_ld_warn(ld, f[2],
                   "a member path in a lookup 'index' ('%s') is a naftikod extension (the "
                   "schema's index is a step name)",
                   f[2]->str);
    if (k < 0) {
        nk_ld_err(ld, f[2], "lookup 'index' '%s' names no earlier step (steps so far: %s)",
                  f[2]->str, step_list(e, e->n_steps, names, sizeof(names)));
        ok = false;
    }
    st->index = k >= 0 ? (size_t)k : 0;
    st->index_path = nk_ld_strdup(ld, f[2]->str);
    st->match = nk_ld_strdup(ld, f[3]->str);
    if (strncmp(f[4]->str, "$.", 2) == 0) {
        st->value_is_ref = true;
        if (!compile_stepref(ld, e, e->n_steps, f[4], &st->value_ref))
            ok = false;
    } else if (!nk_ld_tmpl(ld, f[4], NK_TMPL_MUSTACHE, &st->value_tmpl)) {
        ok = false;
    } else {
        for (i = 0; i < st->value_tmpl.n; i++) {
            const struct nk_tmpl_part *p = &st->value_tmpl.parts[i];
            const char *dot;
            if (p->kind != NK_TMPL_VAR || var_step(e, p->text) >= 0 || find_arg(e, p->text))
                continue;
            dot = strrchr(p->text, '.');
            if (dot != NULL && find_arg(e, dot + 1) != NULL) /* rest.x, tools.x, ns.x */
                continue;
            nk_ld_err_at(ld, f[4]->line, nk_ld_col(f[4], p->offset),
                         "'{{%s}}' in lookupValue names neither an input of this operation nor "
                         "an earlier step",
                         p->text);
            ok = false;
        }
    }
    st->fields = calloc(f[5]->n ? f[5]->n : 1, sizeof(*st->fields));
    if (st->fields == NULL) {
        ld->oom = true;
        return false;
    }
    if (f[5]->n == 0) {
        nk_ld_err(ld, f[5], "a lookup step's 'outputParameters' must name at least one field");
        ok = false;
    }
    for (i = 0; i < f[5]->n; i++) {
        const struct nk_node *fn = f[5]->items[i];
        if (!nk_node_is_string(fn)) {
            nk_ld_err(ld, fn, "a lookup step's outputParameters are field names (strings)");
            ok = false;
            continue;
        }
        st->fields[st->n_fields++] = nk_ld_strdup(ld, fn->str);
    }
    return ok;
}

static void compile_steps(struct nk_loader *ld, const struct nk_adapter *a,
                          const struct nk_exposed_src *src, struct nk_exposed *e, size_t *cap,
                          bool declared)
{
    const struct nk_node *seq = src->steps;
    size_t i, j;

    if (seq->n == 0) {
        nk_ld_err(ld, seq, "'steps' must list at least one step");
        return;
    }
    if (seq->n > NK_MAX_STEPS) {
        nk_ld_err(ld, seq, "%zu steps: naftikod runs at most %d steps in one operation", seq->n,
                  NK_MAX_STEPS);
        return;
    }
    e->steps = calloc(seq->n, sizeof(*e->steps));
    if (e->steps == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < seq->n && !ld->oom; i++) {
        const struct nk_node *n = seq->items[i], *type = nk_node_get(n, "type"),
                             *name = nk_node_get(n, "name");
        struct nk_step *st = &e->steps[e->n_steps];
        char where[1200];
        bool ok;
        if (n->kind != NK_NODE_MAPPING) {
            nk_ld_err(ld, n, "a step must be a mapping");
            continue;
        }
        if (type == NULL || !nk_node_is_string(type)) {
            nk_ld_err(ld, type != NULL ? type : n,
                      "a step needs a 'type' (call or lookup) and a 'name'");
            continue;
        }
        if (strcmp(type->str, "script") == 0) {
            nk_ld_err(ld, type,
                      "a script step ('type: script') needs a script engine, which naftikod does "
                      "not have: use 'call' and 'lookup' steps");
            continue;
        }
        if (strcmp(type->str, "call") != 0 && strcmp(type->str, "lookup") != 0) {
            nk_ld_err(ld, type, "unknown step type '%s' (expected call or lookup)", type->str);
            continue;
        }
        if (name == NULL || !nk_node_is_string(name) || name->str[0] == '\0') {
            nk_ld_err(ld, name != NULL ? name : n, "a step needs a 'name' (a string)");
            continue;
        }
        nk_ld_strict_kebab(ld, name, "step name");
        for (j = 0; j < e->n_steps; j++)
            if (e->steps[j].name != NULL && strcmp(e->steps[j].name, name->str) == 0)
                break;
        if (j < e->n_steps) {
            nk_ld_err(ld, name, "duplicate step name '%s' (first at %s)", name->str,
                      nk_ld_where(ld, &e->steps[j].pos, where, sizeof(where)));
            continue;
        }
        if (strchr(name->str, '.') != NULL) {
            nk_ld_err(ld, name, "step name '%s' must not contain '.' (it is read as '%s.field')",
                      name->str, name->str);
            continue;
        }
        if (strcmp(name->str, "rest") == 0 || strcmp(name->str, "tools") == 0 ||
            strcmp(name->str, a->ns) == 0 ||
            (ld->agg_ns != NULL && strcmp(name->str, ld->agg_ns) == 0)) {
            nk_ld_err(ld, name,
                      "step name '%s' is how arguments are written ('%s.x'): choose another",
                      name->str, name->str);
            continue;
        }
        if (find_arg(e, name->str) != NULL) {
            nk_ld_err(ld, name,
                      "step name '%s' is also an input of this operation: '{{%s}}' would be "
                      "ambiguous",
                      name->str, name->str);
            continue;
        }
        st->pos = nk_ld_pos(ld, n);
        if (strcmp(type->str, "call") == 0) {
            st->kind = NK_STEP_CALL;
            ok = compile_call_step(ld, a, src, e, cap, declared, n, st);
        } else {
            st->kind = NK_STEP_LOOKUP;
            if (e->n_steps == 0) {
                nk_ld_err(ld, type,
                          "a lookup step reads an earlier step: the first step must be "
                          "a call");
                continue;
            }
            ok = compile_lookup_step(ld, e, n, st);
        }
        /* counted even when it has errors (its parts are freed with the table), and named so
         * that later references to it do not cascade */
        st->name = nk_ld_strdup(ld, name->str);
        e->n_steps++;
        (void)ok;
    }
}

/* `mappings[]`: {targetName, value: $.step...}; with declared outputParameters, targetName's
 * first segment must be one of them. */
static void compile_mappings(struct nk_loader *ld, const struct nk_exposed_src *src,
                             struct nk_exposed *e)
{
    static const struct nk_field fields[] = {{"targetName", NK_FK_STR, NK_FF_REQ},
                                             {"value", NK_FK_STR, NK_FF_REQ}};
    const struct nk_node *seq = src->mappings;
    size_t i, j;

    e->mappings = calloc(seq->n ? seq->n : 1, sizeof(*e->mappings));
    if (e->mappings == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < seq->n && !ld->oom; i++) {
        const struct nk_node *f[2];
        struct nk_stepmap *m = &e->mappings[e->n_mappings];
        const char *t, *s;
        size_t seglen;
        bool ok = true;
        if (!nk_ld_fields(ld, seq->items[i], "mapping", fields, 2, f) || f[0] == NULL ||
            f[1] == NULL)
            continue;
        t = f[0]->str;
        for (s = t; *s && ok; s++)
            ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                 *s == '-' || *s == '_' || *s == '.';
        if (!ok || t[0] == '\0' || t[0] == '.' || t[strlen(t) - 1] == '.' || strstr(t, "..")) {
            nk_ld_err(ld, f[0],
                      "targetName '%s' must be names of [a-zA-Z0-9-_] joined by '.' (e.g. "
                      "route.from)",
                      t);
            continue;
        }
        seglen = strcspn(t, ".");
        if (src->outputs != NULL && src->outputs->n > 0) {
            for (j = 0; j < src->outputs->n; j++) {
                const struct nk_node *nm = nk_node_get(src->outputs->items[j], "name");
                if (nm != NULL && nk_node_is_string(nm) && strlen(nm->str) == seglen &&
                    strncmp(nm->str, t, seglen) == 0)
                    break;
            }
            if (j == src->outputs->n) {
                nk_ld_err(ld, f[0],
                          "targetName '%s' is not one of the outputParameters (it would be "
                          "dropped from the answer)",
                          t);
                continue;
            }
        }
        if (!compile_stepref(ld, e, e->n_steps, f[1], &m->value))
            continue;
        m->target = nk_ld_strdup(ld, t);
        e->n_mappings++;
    }
}

/* `$['name']` for an orchestrated output's own field. */
static bool field_path(struct nk_loader *ld, const char *name, struct nk_jsonpath **out)
{
    size_t n = strlen(name), i, k = 0;
    char *q = malloc(2 * n + 6);
    enum nk_rc rc;

    if (q == NULL) {
        ld->oom = true;
        return false;
    }
    q[k++] = '$';
    q[k++] = '[';
    q[k++] = '\'';
    for (i = 0; i < n; i++) {
        if (name[i] == '\'' || name[i] == '\\')
            q[k++] = '\\';
        q[k++] = name[i];
    }
    q[k++] = '\'';
    q[k++] = ']';
    q[k] = '\0';
    rc = nk_jsonpath_compile(q, out, NULL);
    free(q);
    if (rc == NK_ERR_NOMEM)
        ld->oom = true;
    return rc == NK_OK;
}

/* An orchestrated outputParameter ({name, type, properties | items}) as an outmap node that
 * reads the field `name` of the object the mappings built (or of its parent) and coerces it.
 * named: the entry must carry `name` (top level and list items). */
static bool compile_orch_out(struct nk_loader *ld, const struct nk_node *n, const char *key,
                             struct nk_outmap *m, bool named)
{
    static const struct nk_field fields[] = {
        {"name", NK_FK_STR, 0},
        {"type", NK_FK_STR, NK_FF_REQ},
        {"properties", NK_FK_MAP, 0},
        {"items", NK_FK_ANY, 0},
        {"description", NK_FK_STR, NK_FF_EXT},
    };
    const struct nk_node *f[NK_NFIELDS(fields)];
    const char *name = key;
    size_t i;
    bool ok = true;

    if (!nk_ld_fields(ld, n, "orchestrated outputParameter", fields, NK_NFIELDS(fields), f) ||
        f[1] == NULL)
        return false;
    if (f[0] != NULL)
        name = f[0]->str;
    if (named && f[0] == NULL) {
        nk_ld_err(ld, n, "missing required field 'name' in orchestrated outputParameter");
        return false;
    }
    if (!nk_ld_type(ld, f[1], &m->type))
        return false;
    if (name != NULL) {
        m->name = nk_ld_strdup(ld, name);
        if (!field_path(ld, name, &m->mapping))
            return false;
    }
    if (f[2] != NULL && m->type != NK_TYPE_OBJECT) {
        nk_ld_err(ld, f[2], "'properties' needs type object, not %s", nk_type_name(m->type));
        return false;
    }
    if (f[3] != NULL && m->type != NK_TYPE_ARRAY) {
        nk_ld_err(ld, f[3], "'items' needs type array, not %s", nk_type_name(m->type));
        return false;
    }
    if (f[2] != NULL) {
        m->props = calloc(f[2]->n ? f[2]->n : 1, sizeof(*m->props));
        if (m->props == NULL) {
            ld->oom = true;
            return false;
        }
        for (i = 0; i < f[2]->n && !ld->oom; i++)
            if (!compile_orch_out(ld, f[2]->pairs[i].value, f[2]->pairs[i].key->str,
                                  &m->props[m->n_props++], false))
                ok = false;
    }
    if (f[3] != NULL) {
        m->items = calloc(1, sizeof(*m->items));
        if (m->items == NULL) {
            ld->oom = true;
            return false;
        }
        if (f[3]->kind == NK_NODE_SEQUENCE) {
            /* the schema's form: the fields of each item, each with its name */
            m->items->type = NK_TYPE_OBJECT;
            m->items->props = calloc(f[3]->n ? f[3]->n : 1, sizeof(*m->items->props));
            if (m->items->props == NULL) {
                ld->oom = true;
                return false;
            }
            for (i = 0; i < f[3]->n && !ld->oom; i++)
                if (!compile_orch_out(ld, f[3]->items[i], NULL,
                                      &m->items->props[m->items->n_props++], true))
                    ok = false;
        } else if (f[3]->kind == NK_NODE_MAPPING) {
            /* one item shape (naftikod also takes this form) */
            if (ld->strict)
                nk_ld_warn(ld, f[3],
                           "'items' as a mapping in an orchestrated outputParameter is not in "
                           "the naftiko 1.0.0-alpha2 schema (a sequence of named fields)");
            if (!compile_orch_out(ld, f[3], NULL, m->items, false))
                ok = false;
        } else {
            nk_ld_err(ld, f[3], "'items' must be a sequence of named fields or a mapping");
            ok = false;
        }
    }
    return ok;
}

static void compile_orch_outputs(struct nk_loader *ld, const struct nk_exposed_src *src,
                                 struct nk_exposed *e)
{
    const struct nk_node *seq = src->outputs;
    size_t i, j;

    e->output = calloc(1, sizeof(*e->output));
    if (e->output != NULL)
        e->output->props = calloc(seq->n ? seq->n : 1, sizeof(*e->output->props));
    if (e->output == NULL || e->output->props == NULL) {
        ld->oom = true;
        return;
    }
    e->output->type = NK_TYPE_OBJECT;
    for (i = 0; i < seq->n && !ld->oom; i++) {
        struct nk_outmap *m = &e->output->props[e->output->n_props++];
        if (!compile_orch_out(ld, seq->items[i], NULL, m, true) || m->name == NULL)
            continue;
        for (j = 0; j + 1 < e->output->n_props; j++)
            if (e->output->props[j].name != NULL && strcmp(e->output->props[j].name, m->name) == 0)
                nk_ld_err(ld, seq->items[i], "duplicate outputParameter '%s'", m->name);
    }
    /* an output no mapping fills is always null: almost always a spelling mistake */
    for (i = 0; i < e->output->n_props && e->n_mappings > 0; i++) {
        const char *nm = e->output->props[i].name;
        bool filled = false;
        for (j = 0; nm != NULL && j < e->n_mappings && !filled; j++)
            filled = strncmp(e->mappings[j].target, nm, strlen(nm)) == 0 &&
                     (e->mappings[j].target[strlen(nm)] == '\0' ||
                      e->mappings[j].target[strlen(nm)] == '.');
        if (nm != NULL && !filled)
            nk_ld_warn(ld, seq->items[i],
                       "outputParameter '%s' is filled by no mapping (it is "
                       "always null)",
                       nm);
    }
}

/* ---- one exposed operation --------------------------------------------------------------- */

void nk_compile_exposed(struct nk_loader *ld, const struct nk_adapter *a,
                        const struct nk_exposed_src *src, struct nk_exposed *e)
{
    bool rest = a->type == NK_ADAPTER_REST;
    /* an operation (tool) that declares its own inputs takes only those: a `with` source or body
     * variable naming another is a spelling mistake, not a new argument */
    bool declared = src->inputs != NULL && src->inputs->n > 0;
    struct outctx oc;
    size_t cap = 0, i, first;

    /* declared inputs: the resource's first, then the operation's (or its function's) */
    if (src->rinputs != NULL)
        for (i = 0; i < src->rinputs->n && !ld->oom; i++)
            declared_arg(ld, e, &cap, rest, src->rinputs->items[i]);
    first = e->n_args;
    if (src->inputs != NULL)
        for (i = 0; i < src->inputs->n && !ld->oom; i++)
            declared_arg(ld, e, &cap, rest && !src->fn_inputs, src->inputs->items[i]);
    for (i = first; rest && src->fn_inputs && i < e->n_args; i++) {
        /* a function's inputs have no `in`: a path variable of this route, else a query */
        size_t j;
        e->args[i].in = NK_IN_QUERY;
        for (j = 0; j < e->path_tmpl.n; j++)
            if (e->path_tmpl.parts[j].kind == NK_TMPL_VAR &&
                strcmp(e->path_tmpl.parts[j].text, e->args[i].name) == 0)
                e->args[i].in = NK_IN_PATH;
    }
    if (rest) {
        for (i = 0; i < e->path_tmpl.n && !ld->oom; i++) {
            const struct nk_tmpl_part *part = &e->path_tmpl.parts[i];
            struct nk_arg *arg;
            if (part->kind != NK_TMPL_VAR)
                continue;
            arg = find_arg(e, part->text);
            if (arg != NULL) {
                if (arg->in != NK_IN_PATH)
                    nk_ld_err(ld, src->node, "path variable '%s' of '%s' is declared with in: %s",
                              part->text, e->path, nk_in_name(arg->in));
                arg->required = true;
                continue;
            }
            arg = add_arg(ld, e, &cap, part->text);
            if (arg == NULL)
                return;
            arg->in = NK_IN_PATH;
            arg->type = NK_TYPE_STRING;
            arg->required = true;
        }
        for (i = 0; i < e->n_args; i++) {
            size_t j;
            bool found = false;
            if (e->args[i].in != NK_IN_PATH)
                continue;
            for (j = 0; j < e->path_tmpl.n && !found; j++)
                found = e->path_tmpl.parts[j].kind == NK_TMPL_VAR &&
                        strcmp(e->path_tmpl.parts[j].text, e->args[i].name) == 0;
            if (!found)
                nk_ld_err(ld, src->node,
                          "inputParameter '%s' is in: path but the path '%s' has "
                          "no {%s}",
                          e->args[i].name, e->path, e->args[i].name);
        }
    }
    if (src->steps != NULL) {
        if (src->call != NULL)
            nk_ld_err(ld, src->call,
                      "an operation has either 'call' or 'steps', not both (put the call in a "
                      "step)");
        if (src->with != NULL || src->fwith != NULL)
            nk_ld_err(ld, src->with != NULL ? src->with : src->fwith,
                      "'with' beside 'steps' has no call to feed: give each call step its own "
                      "'with'");
        compile_steps(ld, a, src, e, &cap, declared);
        if (src->mappings != NULL && !ld->oom)
            compile_mappings(ld, src, e);
    } else if (src->mappings != NULL) {
        nk_ld_err(ld, src->mappings, "'mappings' read the outputs of 'steps', and there are none");
    }
    if (src->steps != NULL) {
        /* compiled above */
    } else if (src->call != NULL) {
        const char *dot = strchr(src->call->str, '.');
        if (dot == NULL || dot == src->call->str || dot[1] == '\0' || strchr(dot + 1, '.')) {
            nk_ld_err(ld, src->call, "'call' must be 'namespace.operation', not '%s'",
                      src->call->str);
        } else {
            e->target = nk_ld_find_op(ld, src->call->str);
            if (e->target == NULL && !ld->oom && !nk_ld_is_broken(ld, src->call->str))
                nk_ld_err(ld, src->call, "'call' target '%s' is not a consumed operation",
                          src->call->str);
        }
    } else if (src->with != NULL || src->fwith != NULL) {
        nk_ld_err(ld, src->with ? src->with : src->fwith, "'with' needs a 'call'");
    }
    if (e->target != NULL) {
        compile_with(ld, a, src->with, src->fwith, e, &cap, declared);
        if (!ld->oom)
            check_body_vars(ld, a, src, e, &cap, declared);
        for (i = 0; i < e->target->n_params && !ld->oom; i++) {
            const struct nk_param *p = &e->target->params[i];
            size_t j;
            bool bound = p->value != NULL || nk_node_get(src->with, p->name) != NULL ||
                         nk_node_get(src->fwith, p->name) != NULL;
            for (j = 0; j < e->n_bindings && !bound; j++)
                bound = e->bindings[j].param == p;
            if (!bound && p->required)
                nk_ld_err(ld, src->call,
                          "required parameter '%s' of '%s' is not bound (add it to 'with')",
                          p->name, e->target->qname);
        }
    }
    oc.a = a;
    oc.e = e;
    oc.mock = src->call == NULL && src->steps == NULL;
    if (src->steps != NULL && src->outputs != NULL && src->outputs->n > 0 && !ld->oom) {
        compile_orch_outputs(ld, src, e);
    } else if (oc.mock && src->outputs != NULL && !ld->oom) {
        /* a mock answers the object {name: value, ...} of its named entries */
        e->output = calloc(1, sizeof(*e->output));
        if (e->output != NULL)
            e->output->props = calloc(src->outputs->n + 1, sizeof(*e->output->props));
        if (e->output == NULL || e->output->props == NULL) {
            ld->oom = true;
            return;
        }
        e->output->type = NK_TYPE_OBJECT;
        for (i = 0; i < src->outputs->n && !ld->oom; i++)
            compile_outmap(ld, &oc, src->outputs->items[i], &e->output->props[e->output->n_props++],
                           OUT_MOCK);
    } else if (src->outputs != NULL && src->outputs->n > 0 && !ld->oom) {
        if (src->outputs->n > 1) {
            nk_ld_err(ld, src->outputs->items[1],
                      "only one outputParameters entry is supported "
                      "for a 'call' operation (wrap several in type: object with properties)");
        } else {
            e->output = calloc(1, sizeof(*e->output));
            if (e->output == NULL) {
                ld->oom = true;
                return;
            }
            compile_outmap(ld, &oc, src->outputs->items[0], e->output, OUT_TOP);
        }
    }
    if (!ld->oom && e->target != NULL)
        warn_unused_args(ld, src, e);
    if (!ld->oom)
        build_schema(ld, e);
}

/* ---- whole-table checks ------------------------------------------------------------------ */

struct keyed {
    char *key;
    const struct nk_exposed *e;
};

static int keyed_cmp(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    if (c != 0)
        return c;
    if (x->e->pos.line != y->e->pos.line)
        return x->e->pos.line < y->e->pos.line ? -1 : 1;
    return x->e->pos.column < y->e->pos.column ? -1 : x->e->pos.column > y->e->pos.column;
}

/* "GET /a/{}/b": the route with variable names erased, so /a/{x} and /a/{y} collide. */
char *nk_route_key(const struct nk_exposed *e)
{
    size_t len = strlen(e->method) + 2, i;
    char *k;

    for (i = 0; i < e->path_tmpl.n; i++)
        len += e->path_tmpl.parts[i].kind == NK_TMPL_VAR ? 2 : strlen(e->path_tmpl.parts[i].text);
    k = malloc(len + 1);
    if (k == NULL)
        return NULL;
    strcpy(k, e->method);
    strcat(k, " ");
    for (i = 0; i < e->path_tmpl.n; i++)
        strcat(k, e->path_tmpl.parts[i].kind == NK_TMPL_VAR ? "{}" : e->path_tmpl.parts[i].text);
    return k;
}

static void check_adapter(struct nk_loader *ld, const struct nk_adapter *a)
{
    struct keyed *v = NULL;
    size_t i, n = 0;

    v = calloc(a->n_ops ? a->n_ops : 1, sizeof(*v));
    if (v == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < a->n_ops; i++) {
        const struct nk_exposed *e = &a->ops[i];
        if (e->name == NULL || (a->type == NK_ADAPTER_REST && e->method == NULL))
            continue;
        v[n].e = e;
        v[n].key = a->type == NK_ADAPTER_REST ? nk_route_key(e) : strdup(e->name);
        if (v[n].key == NULL) {
            ld->oom = true;
            goto out;
        }
        n++;
        if (a->type == NK_ADAPTER_MCP) {
            const char *s;
            bool ok = strlen(e->name) <= 64 && e->name[0] != '\0';
            for (s = e->name; *s && ok; s++)
                ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                     (*s >= '0' && *s <= '9') || *s == '_' || *s == '-';
            if (!ok)
                nk_diags_add(ld->diags, NK_SEV_WARNING, e->pos.file, e->pos.line, e->pos.column,
                             "tool name '%s' should be 1-64 characters of [a-zA-Z0-9_-] (some "
                             "MCP clients reject other names)",
                             e->name);
        }
    }
    qsort(v, n, sizeof(*v), keyed_cmp);
    for (i = 1; i < n; i++) {
        const struct nk_exposed *e = v[i].e, *first;
        size_t j = i;
        if (strcmp(v[i].key, v[i - 1].key) != 0)
            continue;
        while (j > 0 && strcmp(v[j - 1].key, v[i].key) == 0)
            j--;
        first = v[j].e;
        if (a->type == NK_ADAPTER_REST)
            nk_diags_add(ld->diags, NK_SEV_ERROR, e->pos.file, e->pos.line, e->pos.column,
                         "duplicate route %s %s (same as %s %s at line %u)", e->method, e->path,
                         first->method, first->path, first->pos.line);
        else
            nk_diags_add(ld->diags, NK_SEV_ERROR, e->pos.file, e->pos.line, e->pos.column,
                         "duplicate tool name '%s' (first at line %u)", e->name, first->pos.line);
    }
out:
    for (i = 0; i < n; i++)
        free(v[i].key);
    free(v);
}

void nk_check_table(struct nk_loader *ld)
{
    const struct nk_optable *t = ld->t;
    size_t i, j;

    /* a bind namespace must not collide with a consumes namespace (spec rule) */
    for (i = 0; i < t->n_binds; i++) {
        if (i > 0 && strcmp(t->binds[i].ns, t->binds[i - 1].ns) == 0)
            continue;
        for (j = 0; j < t->n_consumers; j++)
            if (strcmp(t->binds[i].ns, t->consumers[j].ns) == 0) {
                nk_diags_add(ld->diags, NK_SEV_ERROR, t->binds[i].pos.file, t->binds[i].pos.line,
                             t->binds[i].pos.column,
                             "bind namespace '%s' is also a consumes namespace", t->binds[i].ns);
                break;
            }
    }

    /* ports are judged once the port options apply (nk_optable_group) */
    for (i = 0; i < t->n_adapters && !ld->oom; i++)
        check_adapter(ld, &t->adapters[i]);
    if (ld->diags->oom)
        ld->oom = true;
}
