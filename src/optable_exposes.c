/* SPDX-License-Identifier: Apache-2.0 */
/* optable_exposes.c: validate and load `capability.exposes` (REST and MCP adapters); each
 * operation or tool is then compiled by optable_compile.c. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "optable_int.h"

/* ---- exposes ----------------------------------------------------------------------------- */

static const struct nk_field rest_fields[] = {
    {"type", NK_FK_STR, NK_FF_REQ},        {"namespace", NK_FK_STR, NK_FF_REQ},
    {"port", NK_FK_INT, NK_FF_REQ},        {"address", NK_FK_STR, 0},
    {"description", NK_FK_STR, NK_FF_EXT}, {"resources", NK_FK_SEQ, 0},
    {"authentication", NK_FK_MAP, 0},
};
enum { X_TYPE, X_NAMESPACE, X_PORT, X_ADDRESS, X_DESCRIPTION, X_RESOURCES, X_AUTH };

static const struct nk_field mcp_fields[] = {
    {"type", NK_FK_STR, NK_FF_REQ},
    {"namespace", NK_FK_STR, NK_FF_REQ},
    {"port", NK_FK_INT, 0},
    {"address", NK_FK_STR, 0},
    {"description", NK_FK_STR, 0},
    {"tools", NK_FK_SEQ, NK_FF_REQ},
    {"transport", NK_FK_STR, 0},
    {"resources", NK_FK_ANY, NK_FF_UNSUP},
    {"prompts", NK_FK_ANY, NK_FF_UNSUP},
    {"authentication", NK_FK_MAP, 0},
};
enum {
    M_TYPE,
    M_NAMESPACE,
    M_PORT,
    M_ADDRESS,
    M_DESCRIPTION,
    M_TOOLS,
    M_TRANSPORT,
    M_RESOURCES,
    M_PROMPTS,
    M_AUTH
};

static const struct nk_field rres_fields[] = {
    {"path", NK_FK_STR, NK_FF_REQ},    {"name", NK_FK_STR, 0},
    {"label", NK_FK_STR, 0},           {"description", NK_FK_STR, 0},
    {"inputParameters", NK_FK_SEQ, 0}, {"operations", NK_FK_SEQ, 0},
    {"forward", NK_FK_MAP, 0},
};
enum { RR_PATH, RR_NAME, RR_LABEL, RR_DESCRIPTION, RR_INPUTS, RR_OPERATIONS, RR_FORWARD };

static const struct nk_field rop_fields[] = {
    {"method", NK_FK_STR, NK_FF_REQ},
    {"name", NK_FK_STR, 0},
    {"label", NK_FK_STR, 0},
    {"description", NK_FK_STR, 0},
    {"inputParameters", NK_FK_SEQ, 0},
    {"call", NK_FK_STR, 0},
    {"with", NK_FK_MAP, 0},
    {"outputParameters", NK_FK_SEQ, 0},
    {"ref", NK_FK_STR, 0},
    {"steps", NK_FK_SEQ, 0},
    {"mappings", NK_FK_SEQ, 0},
};
enum {
    RO_METHOD,
    RO_NAME,
    RO_LABEL,
    RO_DESCRIPTION,
    RO_INPUTS,
    RO_CALL,
    RO_WITH,
    RO_OUTPUTS,
    RO_REF,
    RO_STEPS,
    RO_MAPPINGS
};

/* name and description are required unless `ref` supplies them (checked by load_mcp) */
static const struct nk_field tool_fields[] = {
    {"name", NK_FK_STR, 0},
    {"description", NK_FK_STR, 0},
    {"label", NK_FK_STR, 0},
    {"title", NK_FK_STR, NK_FF_EXT},
    {"hints", NK_FK_MAP, 0},
    {"inputParameters", NK_FK_SEQ, 0},
    {"call", NK_FK_STR, 0},
    {"with", NK_FK_MAP, 0},
    {"outputParameters", NK_FK_SEQ, 0},
    {"ref", NK_FK_STR, 0},
    {"steps", NK_FK_SEQ, 0},
    {"mappings", NK_FK_SEQ, 0},
};
enum {
    T_NAME,
    T_DESCRIPTION,
    T_LABEL,
    T_TITLE,
    T_HINTS,
    T_INPUTS,
    T_CALL,
    T_WITH,
    T_OUTPUTS,
    T_REF,
    T_STEPS,
    T_MAPPINGS
};

static const struct nk_field hint_fields[] = {{"readOnly", NK_FK_BOOL, 0},
                                              {"destructive", NK_FK_BOOL, 0},
                                              {"idempotent", NK_FK_BOOL, 0},
                                              {"openWorld", NK_FK_BOOL, 0}};

static bool is_address(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == ':'))
            return false;
    return true;
}

static struct nk_adapter *new_adapter(struct nk_loader *ld, const struct nk_node *n,
                                      enum nk_adapter_type type, const struct nk_node *ns,
                                      const struct nk_node *port, const struct nk_node *address,
                                      const struct nk_node *desc, size_t nops)
{
    struct nk_optable *t = ld->t;
    struct nk_adapter *a, *na;
    long long pv = 0;
    size_t i;

    if (!nk_ld_check_namespace(ld, ns))
        return NULL;
    for (i = 0; i < t->n_adapters; i++)
        if (strcmp(t->adapters[i].ns, ns->str) == 0) {
            char where[1200];
            nk_ld_err(ld, ns, "duplicate exposes namespace '%s' (first at %s)", ns->str,
                      nk_ld_where(ld, &t->adapters[i].pos, where, sizeof(where)));
            return NULL;
        }
    if (port != NULL) {
        nk_node_int(port, &pv);
        if (pv < 1 || pv > 65535) {
            nk_ld_err(ld, port, "port %s is out of range (1..65535)", port->str);
            return NULL;
        }
    }
    if (address != NULL && !is_address(address->str)) {
        nk_ld_err(ld, address, "address '%s' is not a hostname or IP address", address->str);
        return NULL;
    }
    na = realloc(t->adapters, (t->n_adapters + 1) * sizeof(*na));
    if (na == NULL) {
        ld->oom = true;
        return NULL;
    }
    t->adapters = na;
    a = &t->adapters[t->n_adapters++];
    memset(a, 0, sizeof(*a));
    a->type = type;
    a->ns = nk_ld_node_dup(ld, ns);
    a->port = (unsigned)pv;
    a->address = nk_ld_node_dup(ld, address);
    a->description = nk_ld_node_dup(ld, desc);
    a->pos = nk_ld_pos(ld, n);
    a->ops = calloc(nops ? nops : 1, sizeof(*a->ops));
    if (a->ops == NULL)
        ld->oom = true;
    return a;
}

/* Does an outputParameter (or one under it) carry a `value`? */
static bool has_value(const struct nk_node *n)
{
    const struct nk_node *p = nk_node_get(n, "properties"), *it = nk_node_get(n, "items");
    size_t i;

    if (n == NULL || n->kind != NK_NODE_MAPPING)
        return false;
    if (nk_node_get(n, "value") != NULL)
        return true;
    for (i = 0; p != NULL && p->kind == NK_NODE_MAPPING && i < p->n; i++)
        if (has_value(p->pairs[i].value))
            return true;
    return it != NULL && has_value(it);
}

/* A mock: outputParameters of which at least one carries a `value` (the reference runtime's
 * rule), and no call, steps or ref (checked by the caller). */
static bool is_mock(const struct nk_node *outputs)
{
    size_t i;

    for (i = 0; outputs != NULL && outputs->kind == NK_NODE_SEQUENCE && i < outputs->n; i++)
        if (has_value(outputs->items[i]))
            return true;
    return false;
}

/* ---- aggregates -------------------------------------------------------------------------- */

static const struct nk_field agg_fields[] = {
    {"label", NK_FK_STR, NK_FF_REQ},
    {"namespace", NK_FK_STR, NK_FF_REQ},
    {"functions", NK_FK_SEQ, NK_FF_REQ},
};
enum { AG_LABEL, AG_NAMESPACE, AG_FUNCTIONS };

static const struct nk_field fn_fields[] = {
    {"name", NK_FK_STR, NK_FF_REQ},
    {"description", NK_FK_STR, NK_FF_REQ},
    {"semantics", NK_FK_MAP, 0},
    {"inputParameters", NK_FK_SEQ, 0},
    {"call", NK_FK_STR, 0},
    {"with", NK_FK_MAP, 0},
    {"steps", NK_FK_SEQ, 0},
    {"mappings", NK_FK_SEQ, 0},
    {"outputParameters", NK_FK_SEQ, 0},
};
enum {
    FN_NAME,
    FN_DESCRIPTION,
    FN_SEMANTICS,
    FN_INPUTS,
    FN_CALL,
    FN_WITH,
    FN_STEPS,
    FN_MAPPINGS,
    FN_OUTPUTS
};

static const struct nk_field semantics_fields[] = {
    {"safe", NK_FK_BOOL, 0}, {"idempotent", NK_FK_BOOL, 0}, {"cacheable", NK_FK_BOOL, 0}};

/* The value of key in map when it has the node kind k, else NULL (the shape was reported when
 * the aggregates were checked). */
static const struct nk_node *get_kind(const struct nk_node *map, const char *key,
                                      enum nk_node_kind k)
{
    const struct nk_node *v = nk_node_get(map, key);

    return v != NULL && v->kind == k ? v : NULL;
}

/* One function of aggregate ns: its fields, its mode, its name unique in the aggregate. */
static void check_function(struct nk_loader *ld, const char *ns, const struct nk_node *fns,
                           size_t i)
{
    const struct nk_node *f[NK_NFIELDS(fn_fields)];
    const struct nk_node *sf[NK_NFIELDS(semantics_fields)];
    size_t j;

    if (!nk_ld_fields(ld, fns->items[i], "aggregate function", fn_fields, NK_NFIELDS(fn_fields), f))
        return;
    if (f[FN_SEMANTICS] != NULL)
        nk_ld_fields(ld, f[FN_SEMANTICS], "semantics", semantics_fields,
                     NK_NFIELDS(semantics_fields), sf);
    if (f[FN_NAME] != NULL) {
        nk_ld_strict_kebab(ld, f[FN_NAME], "function name");
        for (j = 0; j < i; j++) {
            const struct nk_node *other = get_kind(fns->items[j], "name", NK_NODE_SCALAR);
            if (other != NULL && strcmp(other->str, f[FN_NAME]->str) == 0) {
                nk_ld_err(ld, f[FN_NAME],
                          "duplicate function '%s' in aggregate '%s' (first at line %u)",
                          f[FN_NAME]->str, ns, other->line);
                break;
            }
        }
    }
    if (f[FN_CALL] != NULL && f[FN_STEPS] != NULL)
        nk_ld_err(ld, f[FN_STEPS], "an aggregate function has 'call' or 'steps', not both");
    else if (f[FN_CALL] == NULL && f[FN_STEPS] == NULL && !is_mock(f[FN_OUTPUTS]) &&
             nk_node_get(fns->items[i], "call") == NULL &&
             nk_node_get(fns->items[i], "steps") == NULL)
        nk_ld_err(ld, fns->items[i],
                  "aggregate function '%s.%s' needs one of 'call' (one consumed operation), "
                  "'steps' (orchestration) or outputParameters with 'value' (a mock)",
                  ns, f[FN_NAME] ? f[FN_NAME]->str : "?");
    if (f[FN_MAPPINGS] != NULL && f[FN_STEPS] == NULL)
        nk_ld_err(ld, f[FN_MAPPINGS], "'mappings' in aggregate function needs 'steps'");
}

void nk_check_aggregates(struct nk_loader *ld, const struct nk_node *seq)
{
    size_t i, j;

    for (i = 0; i < seq->n && !ld->oom; i++) {
        const struct nk_node *f[NK_NFIELDS(agg_fields)];
        const char *ns;
        if (!nk_ld_fields(ld, seq->items[i], "aggregate", agg_fields, NK_NFIELDS(agg_fields), f))
            continue;
        if (f[AG_NAMESPACE] == NULL || !nk_ld_check_namespace(ld, f[AG_NAMESPACE]))
            continue;
        ns = f[AG_NAMESPACE]->str;
        for (j = 0; j < i; j++) {
            const struct nk_node *other = get_kind(seq->items[j], "namespace", NK_NODE_SCALAR);
            if (other != NULL && strcmp(other->str, ns) == 0) {
                nk_ld_err(ld, f[AG_NAMESPACE],
                          "duplicate aggregate namespace '%s' (first at line %u)", ns, other->line);
                break;
            }
        }
        if (f[AG_FUNCTIONS] == NULL)
            continue;
        if (f[AG_FUNCTIONS]->n == 0)
            nk_ld_err(ld, f[AG_FUNCTIONS], "aggregate '%s' has no functions", ns);
        for (j = 0; j < f[AG_FUNCTIONS]->n && !ld->oom; j++)
            check_function(ld, ns, f[AG_FUNCTIONS], j);
    }
}

void nk_check_aggregate_calls(struct nk_loader *ld, const struct nk_node *aggs)
{
    size_t i, j;

    for (i = 0; aggs != NULL && aggs->kind == NK_NODE_SEQUENCE && i < aggs->n; i++) {
        const struct nk_node *fns = get_kind(aggs->items[i], "functions", NK_NODE_SEQUENCE);
        for (j = 0; fns != NULL && j < fns->n && !ld->oom; j++) {
            const struct nk_node *call = nk_node_get(fns->items[j], "call");
            const char *dot;
            if (call == NULL || !nk_node_is_string(call))
                continue;
            /* the words nk_compile_exposed uses: a referenced function reports once */
            dot = strchr(call->str, '.');
            if (dot == NULL || dot == call->str || dot[1] == '\0' || strchr(dot + 1, '.'))
                nk_ld_err(ld, call, "'call' must be 'namespace.operation', not '%s'", call->str);
            else if (nk_ld_find_op(ld, call->str) == NULL && !ld->oom &&
                     !nk_ld_is_broken(ld, call->str))
                nk_ld_err(ld, call, "'call' target '%s' is not a consumed operation", call->str);
        }
    }
}

/* The function `ref: aggregate.function` names among aggs (this document's aggregates), or
 * NULL (reported, with the functions that exist). *ns is the aggregate's namespace. */
static const struct nk_node *find_function(struct nk_loader *ld, const struct nk_node *aggs,
                                           const struct nk_node *ref, const char **ns)
{
    const char *dot = strchr(ref->str, '.');
    char known[512];
    size_t i, j, len = 0, nl;

    if (dot == NULL || dot == ref->str || dot[1] == '\0' || strchr(dot + 1, '.') != NULL) {
        nk_ld_err(ld, ref, "'ref' must be 'aggregate.function', not '%s'", ref->str);
        return NULL;
    }
    nl = (size_t)(dot - ref->str);
    known[0] = '\0';
    for (i = 0; aggs != NULL && aggs->kind == NK_NODE_SEQUENCE && i < aggs->n; i++) {
        const struct nk_node *an = get_kind(aggs->items[i], "namespace", NK_NODE_SCALAR);
        const struct nk_node *fns = get_kind(aggs->items[i], "functions", NK_NODE_SEQUENCE);
        for (j = 0; an != NULL && fns != NULL && j < fns->n; j++) {
            const struct nk_node *fname = get_kind(fns->items[j], "name", NK_NODE_SCALAR);
            int w;
            if (fname == NULL)
                continue;
            if (strlen(an->str) == nl && strncmp(an->str, ref->str, nl) == 0 &&
                strcmp(fname->str, dot + 1) == 0) {
                *ns = an->str;
                return fns->items[j];
            }
            if (len + 1 >= sizeof(known))
                continue;
            w = snprintf(known + len, sizeof(known) - len, "%s%s.%s", len ? ", " : "", an->str,
                         fname->str);
            if (w > 0)
                len += (size_t)w;
            if (len >= sizeof(known))
                strcpy(known + sizeof(known) - 4, "...");
        }
    }
    if (len == 0)
        nk_ld_err(ld, ref,
                  "'ref' target '%s' is not an aggregate function (this document declares no "
                  "aggregates)",
                  ref->str);
    else
        nk_ld_err(ld, ref,
                  "'ref' target '%s' is not an aggregate function (this document declares: %s)",
                  ref->str, known);
    return NULL;
}

/* Resolve an operation's `ref` into src: the function makes the call (with its `with`, which
 * the operation's own `with` overrides key by key), and supplies the inputParameters and
 * outputParameters the operation does not declare. Returns the function, or NULL (reported). */
static const struct nk_node *apply_ref(struct nk_loader *ld, const struct nk_node *aggs,
                                       const struct nk_node *ref, struct nk_exposed_src *src,
                                       const char **ns)
{
    const struct nk_node *fn = find_function(ld, aggs, ref, ns), *in;

    if (fn == NULL)
        return NULL;
    if (src->call != NULL) {
        nk_ld_err(ld, src->call,
                  "an operation with 'ref' has no 'call' of its own (the function '%s' makes "
                  "the call)",
                  ref->str);
        return NULL;
    }
    if (src->steps != NULL || src->mappings != NULL) {
        nk_ld_err(ld, src->steps != NULL ? src->steps : src->mappings,
                  "an operation with 'ref' has no '%s' of its own (the function '%s' makes the "
                  "calls)",
                  src->steps != NULL ? "steps" : "mappings", ref->str);
        return NULL;
    }
    src->fn = fn;
    src->call = get_kind(fn, "call", NK_NODE_SCALAR);
    src->fwith = get_kind(fn, "with", NK_NODE_MAPPING);
    src->steps = get_kind(fn, "steps", NK_NODE_SEQUENCE);
    src->mappings = get_kind(fn, "mappings", NK_NODE_SEQUENCE);
    in = get_kind(fn, "inputParameters", NK_NODE_SEQUENCE);
    if ((src->inputs == NULL || src->inputs->n == 0) && in != NULL && in->n > 0) {
        src->inputs = in;
        src->fn_inputs = true;
    }
    if (src->outputs == NULL)
        src->outputs = get_kind(fn, "outputParameters", NK_NODE_SEQUENCE);
    return fn;
}

/* MCP: safe -> readOnly true and destructive false; idempotent -> idempotent (the reference
 * runtime's derivation); the tool's own hints are applied after, field by field. */
static void semantics_hints(const struct nk_node *fn, struct nk_hints *h)
{
    const struct nk_node *s = get_kind(fn, "semantics", NK_NODE_MAPPING);
    bool b;

    if (nk_node_bool(nk_node_get(s, "safe"), &b)) {
        h->read_only = b;
        if (b)
            h->destructive = false;
    }
    if (nk_node_bool(nk_node_get(s, "idempotent"), &b))
        h->idempotent = b;
}

/* REST: the method carries the semantics (RFC 9110 9.2); a function whose semantics contradict
 * the operation's method is worth a warning, as clients, caches and retries go by the method. */
static void semantics_method(struct nk_loader *ld, const struct nk_node *fn,
                             const struct nk_node *ref, const char *method)
{
    const struct nk_node *s = get_kind(fn, "semantics", NK_NODE_MAPPING);
    bool safe_m = strcmp(method, "GET") == 0;
    bool idem_m = safe_m || strcmp(method, "PUT") == 0 || strcmp(method, "DELETE") == 0;
    bool b;

    if (nk_node_bool(nk_node_get(s, "safe"), &b) && b != safe_m)
        nk_ld_warn(ld, ref,
                   "aggregate function '%s' is %s, but %s is %s HTTP method (RFC 9110): clients "
                   "and caches go by the method",
                   ref->str, b ? "safe" : "not safe", method, safe_m ? "a safe" : "not a safe");
    if (nk_node_bool(nk_node_get(s, "idempotent"), &b) && b && !idem_m)
        nk_ld_warn(ld, ref,
                   "aggregate function '%s' is idempotent, but %s is not an idempotent HTTP "
                   "method (RFC 9110): clients will not retry it",
                   ref->str, method);
}

/* Has src a mode to compile? A function without one was reported with the aggregates; a mock
 * function whose outputs the operation replaces still compiles as a mock (and says why not). */
static bool runnable(const struct nk_exposed_src *src)
{
    return src->call != NULL || src->steps != NULL || is_mock(src->outputs) ||
           (src->fn != NULL && is_mock(get_kind(src->fn, "outputParameters", NK_NODE_SEQUENCE)));
}

/* Compile e from src (a `ref` operation compiles with its aggregate's namespace in reach). */
static void compile(struct nk_loader *ld, const struct nk_adapter *a,
                    const struct nk_exposed_src *src, struct nk_exposed *e, const char *agg_ns)
{
    ld->agg_ns = agg_ns;
    nk_compile_exposed(ld, a, src, e);
    ld->agg_ns = NULL;
}

/* Close the segment held in buf (len bytes; var's prefix is the first prefix_len) onto e->route. */
static bool route_push(struct nk_loader *ld, struct nk_exposed *e, size_t *cap, const char *buf,
                       size_t len, size_t prefix_len, const char *var)
{
    struct nk_route_seg *seg;

    if (e->n_route == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        struct nk_route_seg *nv = realloc(e->route, ncap * sizeof(*nv));
        if (nv == NULL) {
            ld->oom = true;
            return false;
        }
        e->route = nv;
        *cap = ncap;
    }
    seg = &e->route[e->n_route];
    seg->text = malloc(len + 1);
    if (seg->text == NULL) {
        ld->oom = true;
        return false;
    }
    memcpy(seg->text, buf, len);
    seg->text[len] = '\0';
    seg->var = var;
    seg->prefix_len = var != NULL ? prefix_len : len;
    seg->suffix_len = var != NULL ? len - prefix_len : 0;
    e->n_route++;
    return true;
}

/* Split the compiled path template into route segments once, so that routing a request
 * compares segments and never parses a route: one leading '/' is dropped; in a segment the
 * first variable is the value, text around it the prefix and suffix, and a second variable
 * is matched as the literal text it was written as. */
static bool compile_route(struct nk_loader *ld, struct nk_exposed *e)
{
    const struct nk_tmpl *t = &e->path_tmpl;
    /* a segment's text is never longer than the source (names are trimmed, not grown) */
    char *buf = malloc(strlen(t->src) + 1);
    const char *var = NULL;
    size_t cap = 0, len = 0, prefix_len = 0, i, k, n;
    bool ok = buf != NULL;

    for (i = 0; ok && i < t->n; i++) {
        const struct nk_tmpl_part *p = &t->parts[i];
        if (p->kind == NK_TMPL_VAR && var == NULL) {
            var = p->text;
            prefix_len = len;
            continue;
        }
        if (p->kind == NK_TMPL_VAR) {
            n = strlen(p->text);
            memcpy(buf + len, p->double_braced ? "{{" : "{", p->double_braced ? 2 : 1);
            len += p->double_braced ? 2 : 1;
            memcpy(buf + len, p->text, n);
            len += n;
            memcpy(buf + len, p->double_braced ? "}}" : "}", p->double_braced ? 2 : 1);
            len += p->double_braced ? 2 : 1;
            continue;
        }
        for (k = 0; ok && p->text[k] != '\0'; k++) {
            if (p->text[k] != '/') {
                buf[len++] = p->text[k];
                continue;
            }
            if (i == 0 && k == 0)
                continue;
            ok = route_push(ld, e, &cap, buf, len, prefix_len, var);
            len = prefix_len = 0;
            var = NULL;
        }
    }
    if (ok)
        ok = route_push(ld, e, &cap, buf, len, prefix_len, var);
    if (buf == NULL)
        ld->oom = true;
    free(buf);
    return ok;
}

/* Headers a forward never takes from the caller: framing and hop-by-hop ones, which naftikod
 * (libcurl) sets for the upstream connection itself. */
static const char *const untrusted_headers[] = {
    "Host",   "Content-Length", "Transfer-Encoding", "Connection",       "Keep-Alive",
    "TE",     "Trailer",        "Upgrade",           "Proxy-Connection", "Proxy-Authorization",
    "Expect", "X-Request-Id",   "X-Forwarded-For",   "Forwarded",
};

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

/* The target consumer's own `inputParameters` with a `value`: headers go with every forwarded
 * request (as in the reference runtime); other placements are refused rather than dropped. */
static bool forward_headers(struct nk_loader *ld, struct nk_forward *fw, const struct nk_node *at)
{
    size_t ci = fw->target->index, i;
    enum nk_rc rc;
    const struct nk_node *inputs = ci < ld->n_consumer_nodes && ld->consumer_nodes[ci] != NULL
                                       ? nk_node_get(ld->consumer_nodes[ci], "inputParameters")
                                       : NULL;

    if (inputs == NULL || inputs->kind != NK_NODE_SEQUENCE)
        return true;
    fw->headers = calloc(inputs->n ? inputs->n : 1, sizeof(*fw->headers));
    if (fw->headers == NULL) {
        ld->oom = true;
        return false;
    }
    for (i = 0; i < inputs->n; i++) {
        const struct nk_node *p = inputs->items[i], *name = nk_node_get(p, "name"),
                             *in = nk_node_get(p, "in"), *value = nk_node_get(p, "value");
        struct nk_header *h;
        if (name == NULL || in == NULL || value == NULL || !nk_node_is_string(name) ||
            !nk_node_is_string(in))
            continue; /* an input of the consumer's operations: nothing to send here */
        if (strcmp(in->str, "header") != 0) {
            nk_ld_err(ld, at,
                      "consumer '%s' has an inputParameter '%s' in: %s with a value, which a "
                      "forward does not send (only in: header ones)",
                      fw->target->ns, name->str, in->str);
            return false;
        }
        h = &fw->headers[fw->n_headers];
        rc = nk_tmpl_compile(value->str, NK_TMPL_MUSTACHE, &h->value, NULL);
        if (rc == NK_ERR_NOMEM) {
            ld->oom = true;
            return false;
        }
        if (rc != NK_OK)
            continue; /* reported where the consumer loaded */
        h->name = nk_ld_strdup(ld, name->str);
        fw->n_headers++;
    }
    return true;
}

/* `forward: {targetNamespace, trustedHeaders}` on the resource at `path`. The path must end in
 * one variable segment (`/notion/{path}`) that takes the rest of the request path. */
static void load_forward(struct nk_loader *ld, struct nk_adapter *a, const struct nk_node *pathn,
                         const struct nk_node *fwn)
{
    static const struct nk_field fields[] = {{"targetNamespace", NK_FK_STR, NK_FF_REQ},
                                             {"trustedHeaders", NK_FK_SEQ, 0}};
    const struct nk_node *f[2];
    struct nk_forward *fw;
    struct nk_tmpl t;
    const char *slash;
    char where[1200];
    size_t i, j;

    if (!nk_ld_fields(ld, fwn, "forward", fields, 2, f) || f[0] == NULL)
        return;
    memset(&t, 0, sizeof(t));
    if (!nk_ld_tmpl(ld, pathn, NK_TMPL_PATH, &t))
        return;
    slash = strrchr(pathn->str, '/');
    if (t.n < 2 || t.parts[t.n - 1].kind != NK_TMPL_VAR || t.parts[t.n - 2].kind != NK_TMPL_LIT ||
        slash == NULL || slash == pathn->str || slash[1] != '{' ||
        pathn->str[pathn->len - 1] != '}') {
        nk_ld_err(ld, pathn,
                  "a forward resource's path must end in one variable segment that takes the "
                  "rest of the request path (e.g. /notion/{path}), not '%s'",
                  pathn->str);
        nk_tmpl_cleanup(&t);
        return;
    }
    for (i = 0; i + 1 < t.n; i++)
        if (t.parts[i].kind == NK_TMPL_VAR) {
            nk_ld_err(ld, pathn,
                      "a forward resource's path has one variable, its last segment ('%s' has "
                      "more)",
                      pathn->str);
            nk_tmpl_cleanup(&t);
            return;
        }
    nk_tmpl_cleanup(&t);
    for (i = 0; i < a->n_forwards; i++)
        if (a->forwards[i].prefix != NULL &&
            strlen(a->forwards[i].prefix) == (size_t)(slash - pathn->str) &&
            strncmp(a->forwards[i].prefix, pathn->str, (size_t)(slash - pathn->str)) == 0) {
            nk_ld_err(ld, pathn, "path '%s' is forwarded twice (first at %s)", pathn->str,
                      nk_ld_where(ld, &a->forwards[i].pos, where, sizeof(where)));
            return;
        }
    fw = &a->forwards[a->n_forwards];
    memset(fw, 0, sizeof(*fw));
    for (i = 0; i < ld->t->n_consumers; i++)
        if (strcmp(ld->t->consumers[i].ns, f[0]->str) == 0)
            fw->target = &ld->t->consumers[i];
    if (fw->target == NULL) {
        if (!nk_ld_is_broken(ld, f[0]->str))
            nk_ld_err(ld, f[0], "forward 'targetNamespace' '%s' names no consumes namespace",
                      f[0]->str);
        return;
    }
    /* counted from here on: what it holds is freed with the table, whatever fails below */
    a->n_forwards++;
    fw->pos = nk_ld_pos(ld, fwn);
    if (f[1] != NULL) {
        fw->trusted = calloc(f[1]->n ? f[1]->n : 1, sizeof(*fw->trusted));
        if (fw->trusted == NULL) {
            ld->oom = true;
            return;
        }
    }
    for (i = 0; f[1] != NULL && i < f[1]->n; i++) {
        const struct nk_node *h = f[1]->items[i];
        bool bad = false;
        if (!nk_node_is_string(h) || !is_token(h->str)) {
            nk_ld_err(ld, h, "a trusted header must be a header name (an RFC 9110 token)");
            continue;
        }
        for (j = 0; j < sizeof(untrusted_headers) / sizeof(untrusted_headers[0]); j++)
            if (strcasecmp(h->str, untrusted_headers[j]) == 0)
                bad = true;
        if (bad) {
            nk_ld_err(ld, h,
                      "'%s' cannot be a trusted header: naftikod sets it for the upstream "
                      "request itself",
                      h->str);
            continue;
        }
        fw->trusted[fw->n_trusted++] = nk_ld_strdup(ld, h->str);
    }
    if (f[1] == NULL && ld->strict)
        nk_ld_warn(ld, fwn, "a forward without 'trustedHeaders' passes no header of the caller");
    if (!forward_headers(ld, fw, f[0]))
        return;
    fw->path = nk_ld_strdup(ld, pathn->str);
    fw->prefix = malloc((size_t)(slash - pathn->str) + 1);
    if (fw->prefix == NULL) {
        ld->oom = true;
        return;
    }
    memcpy(fw->prefix, pathn->str, (size_t)(slash - pathn->str));
    fw->prefix[slash - pathn->str] = '\0';
}

static void load_rest(struct nk_loader *ld, const struct nk_node *n, const struct nk_node *aggs)
{
    const struct nk_node *f[NK_NFIELDS(rest_fields)];
    const char *agg_ns;
    struct nk_adapter *a;
    size_t i, j, nops = 0;

    if (!nk_ld_fields(ld, n, "REST adapter", rest_fields, NK_NFIELDS(rest_fields), f))
        return;
    if (f[X_NAMESPACE] == NULL || f[X_PORT] == NULL)
        return;
    for (i = 0; f[X_RESOURCES] != NULL && i < f[X_RESOURCES]->n; i++) {
        const struct nk_node *ops = nk_node_get(f[X_RESOURCES]->items[i], "operations");
        if (ops != NULL && ops->kind == NK_NODE_SEQUENCE)
            nops += ops->n;
    }
    a = new_adapter(ld, n, NK_ADAPTER_REST, f[X_NAMESPACE], f[X_PORT], f[X_ADDRESS],
                    f[X_DESCRIPTION], nops);
    if (a != NULL && !ld->oom && f[X_AUTH] != NULL)
        nk_ld_auth(ld, f[X_AUTH], &a->auth, &a->oauth);
    if (a == NULL || ld->oom || f[X_RESOURCES] == NULL)
        return;
    a->forwards = calloc(f[X_RESOURCES]->n ? f[X_RESOURCES]->n : 1, sizeof(*a->forwards));
    if (a->forwards == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < f[X_RESOURCES]->n && !ld->oom; i++) {
        const struct nk_node *rf[NK_NFIELDS(rres_fields)];
        struct nk_tmpl ptmpl;
        if (!nk_ld_fields(ld, f[X_RESOURCES]->items[i], "REST resource", rres_fields,
                          NK_NFIELDS(rres_fields), rf))
            continue;
        if (rf[RR_PATH] == NULL)
            continue;
        nk_ld_strict_kebab(ld, rf[RR_NAME], "resource name");
        if (rf[RR_PATH]->str[0] != '/') {
            nk_ld_err(ld, rf[RR_PATH], "resource path '%s' must start with '/'", rf[RR_PATH]->str);
            continue;
        }
        if (!nk_ld_tmpl(ld, rf[RR_PATH], NK_TMPL_PATH, &ptmpl))
            continue;
        nk_tmpl_cleanup(&ptmpl);
        if (rf[RR_FORWARD] != NULL)
            load_forward(ld, a, rf[RR_PATH], rf[RR_FORWARD]);
        if (rf[RR_OPERATIONS] == NULL) {
            if (nk_node_get(f[X_RESOURCES]->items[i], "forward") == NULL)
                nk_ld_err(ld, f[X_RESOURCES]->items[i], "REST resource '%s' has no operations",
                          rf[RR_PATH]->str);
            continue;
        }
        for (j = 0; j < rf[RR_OPERATIONS]->n && !ld->oom; j++) {
            const struct nk_node *of[NK_NFIELDS(rop_fields)];
            struct nk_exposed *e = &a->ops[a->n_ops];
            struct nk_exposed_src src;
            if (!nk_ld_fields(ld, rf[RR_OPERATIONS]->items[j], "REST operation", rop_fields,
                              NK_NFIELDS(rop_fields), of))
                continue;
            if (of[RO_METHOD] == NULL)
                continue;
            memset(e, 0, sizeof(*e));
            if (!nk_ld_method(ld, of[RO_METHOD], &e->method))
                continue;
            a->n_ops++;
            e->name = nk_ld_strdup(ld, of[RO_NAME] ? of[RO_NAME]->str : "");
            nk_ld_strict_kebab(ld, of[RO_NAME], "operation name");
            e->title = nk_ld_node_dup(ld, of[RO_LABEL]);
            e->description = nk_ld_node_dup(ld, of[RO_DESCRIPTION]);
            e->path = nk_ld_node_dup(ld, rf[RR_PATH]);
            e->pos = nk_ld_pos(ld, rf[RR_OPERATIONS]->items[j]);
            e->hints.open_world = true;
            if (ld->oom || !nk_ld_tmpl(ld, rf[RR_PATH], NK_TMPL_PATH, &e->path_tmpl) ||
                !compile_route(ld, e))
                continue;
            memset(&src, 0, sizeof(src));
            src.node = rf[RR_OPERATIONS]->items[j];
            src.call = of[RO_CALL];
            src.with = of[RO_WITH];
            src.inputs = of[RO_INPUTS];
            src.rinputs = rf[RR_INPUTS];
            src.outputs = of[RO_OUTPUTS];
            src.steps = of[RO_STEPS];
            src.mappings = of[RO_MAPPINGS];
            agg_ns = NULL;
            if (of[RO_REF] != NULL) {
                const struct nk_node *fn = apply_ref(ld, aggs, of[RO_REF], &src, &agg_ns);
                if (fn == NULL)
                    continue;
                if (of[RO_NAME] == NULL) {
                    free(e->name);
                    e->name = nk_ld_node_dup(ld, get_kind(fn, "name", NK_NODE_SCALAR));
                }
                if (e->description == NULL)
                    e->description =
                        nk_ld_node_dup(ld, get_kind(fn, "description", NK_NODE_SCALAR));
                semantics_method(ld, fn, of[RO_REF], e->method);
            }
            if (src.call == NULL && src.fn == NULL && nk_node_get(src.node, "steps") == NULL &&
                !is_mock(src.outputs))
                nk_ld_err(ld, src.node,
                          "a REST operation needs one of 'call' (one consumed operation), "
                          "'steps' (orchestration), 'ref' (an aggregate function) or "
                          "outputParameters with 'value' (a mock)");
            else if (runnable(&src))
                compile(ld, a, &src, e, agg_ns);
        }
    }
}

static void load_mcp(struct nk_loader *ld, const struct nk_node *n, const struct nk_node *aggs)
{
    const struct nk_node *f[NK_NFIELDS(mcp_fields)];
    struct nk_adapter *a;
    const char *transport = "http";
    size_t i;

    if (!nk_ld_fields(ld, n, "MCP adapter", mcp_fields, NK_NFIELDS(mcp_fields), f))
        return;
    if (f[M_NAMESPACE] == NULL || f[M_TOOLS] == NULL)
        return;
    if (f[M_TRANSPORT] != NULL) {
        transport = f[M_TRANSPORT]->str;
        if (strcmp(transport, "http") != 0 && strcmp(transport, "stdio") != 0) {
            nk_ld_err(ld, f[M_TRANSPORT], "unknown MCP transport '%s' (expected http or stdio)",
                      transport);
            return;
        }
    }
    if (strcmp(transport, "http") == 0 && f[M_PORT] == NULL && nk_node_get(n, "port") == NULL) {
        nk_ld_err(ld, n, "missing required field 'port' in MCP adapter (transport http)");
        return;
    }
    if (strcmp(transport, "stdio") == 0 && f[M_PORT] != NULL) {
        nk_ld_err(ld, f[M_PORT], "'port' is not allowed with transport stdio");
        return;
    }
    a = new_adapter(ld, n, NK_ADAPTER_MCP, f[M_NAMESPACE],
                    strcmp(transport, "stdio") == 0 ? NULL : f[M_PORT], f[M_ADDRESS],
                    f[M_DESCRIPTION], f[M_TOOLS]->n);
    if (a == NULL || ld->oom)
        return;
    a->transport = nk_ld_strdup(ld, transport);
    if (f[M_AUTH] != NULL) {
        nk_ld_auth(ld, f[M_AUTH], &a->auth, &a->oauth);
        if (strcmp(transport, "stdio") == 0)
            nk_ld_warn(ld, f[M_AUTH],
                       "'authentication' of an MCP adapter with transport stdio is not checked: "
                       "its caller is the process that started naftikod");
    }
    for (i = 0; i < f[M_TOOLS]->n && !ld->oom; i++) {
        const struct nk_node *tf[NK_NFIELDS(tool_fields)];
        const struct nk_node *hf[NK_NFIELDS(hint_fields)];
        const struct nk_node *tn = f[M_TOOLS]->items[i];
        const struct nk_node *fn = NULL, *name, *desc;
        const char *agg_ns = NULL;
        struct nk_exposed *e = &a->ops[a->n_ops];
        struct nk_exposed_src src;
        if (!nk_ld_fields(ld, tn, "MCP tool", tool_fields, NK_NFIELDS(tool_fields), tf))
            continue;
        memset(&src, 0, sizeof(src));
        src.node = tn;
        src.call = tf[T_CALL];
        src.with = tf[T_WITH];
        src.inputs = tf[T_INPUTS];
        src.outputs = tf[T_OUTPUTS];
        src.steps = tf[T_STEPS];
        src.mappings = tf[T_MAPPINGS];
        if (tf[T_REF] != NULL) {
            fn = apply_ref(ld, aggs, tf[T_REF], &src, &agg_ns);
            if (fn == NULL)
                continue;
        }
        /* a `ref` tool inherits what it leaves out from its function */
        name = tf[T_NAME] ? tf[T_NAME] : get_kind(fn, "name", NK_NODE_SCALAR);
        desc = tf[T_DESCRIPTION] ? tf[T_DESCRIPTION] : get_kind(fn, "description", NK_NODE_SCALAR);
        if (name == NULL || desc == NULL) {
            const char *missing = name == NULL ? "name" : "description";
            if (nk_node_get(tn, missing) == NULL)
                nk_ld_err(ld, tn, "missing required field '%s' in MCP tool", missing);
            continue;
        }
        if (tf[T_LABEL] != NULL && tf[T_TITLE] != NULL)
            nk_ld_err(ld, tf[T_TITLE], "MCP tool has both 'label' and 'title'");
        memset(e, 0, sizeof(*e));
        a->n_ops++;
        e->name = nk_ld_node_dup(ld, name);
        nk_ld_strict_kebab(ld, tf[T_NAME], "tool name");
        e->title = nk_ld_node_dup(ld, tf[T_LABEL] ? tf[T_LABEL] : tf[T_TITLE]);
        e->description = nk_ld_node_dup(ld, desc);
        e->pos = nk_ld_pos(ld, tn);
        /* the schema's defaults (also MCP's ToolAnnotations defaults), then the function's
         * semantics, then the tool's own hints field by field */
        e->hints.destructive = true;
        e->hints.open_world = true;
        if (fn != NULL)
            semantics_hints(fn, &e->hints);
        if (tf[T_HINTS] != NULL &&
            nk_ld_fields(ld, tf[T_HINTS], "hints", hint_fields, NK_NFIELDS(hint_fields), hf)) {
            if (hf[0] != NULL)
                nk_node_bool(hf[0], &e->hints.read_only);
            if (hf[1] != NULL)
                nk_node_bool(hf[1], &e->hints.destructive);
            if (hf[2] != NULL)
                nk_node_bool(hf[2], &e->hints.idempotent);
            if (hf[3] != NULL)
                nk_node_bool(hf[3], &e->hints.open_world);
        }
        if (src.call == NULL && src.fn == NULL && nk_node_get(tn, "steps") == NULL &&
            !is_mock(src.outputs))
            nk_ld_err(ld, tn,
                      "an MCP tool needs one of 'call' (one consumed operation), 'steps' "
                      "(orchestration), 'ref' (an aggregate function) or outputParameters "
                      "with 'value' (a mock)");
        else if (!ld->oom && runnable(&src))
            compile(ld, a, &src, e, agg_ns);
    }
}

void nk_load_exposes(struct nk_loader *ld, const struct nk_node *seq, const struct nk_node *aggs)
{
    size_t i;

    for (i = 0; i < seq->n && !ld->oom; i++) {
        const struct nk_node *n = seq->items[i];
        const struct nk_node *type = nk_node_get(n, "type");
        if (n->kind != NK_NODE_MAPPING) {
            nk_ld_err(ld, n, "exposes entry must be a mapping");
            continue;
        }
        if (type == NULL || !nk_node_is_string(type)) {
            nk_ld_err(ld, type ? type : n, "exposes entry needs a 'type' (rest or mcp)");
            continue;
        }
        if (strcmp(type->str, "rest") == 0)
            load_rest(ld, n, aggs);
        else if (strcmp(type->str, "mcp") == 0)
            load_mcp(ld, n, aggs);
        else if (strcmp(type->str, "skill") == 0 || strcmp(type->str, "control") == 0)
            nk_ld_err(ld, type, "exposes type '%s' is not supported by naftikod yet", type->str);
        else
            nk_ld_err(ld, type, "unknown exposes type '%s' (expected rest or mcp)", type->str);
    }
}
