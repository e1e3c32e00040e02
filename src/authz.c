/* SPDX-License-Identifier: Apache-2.0 */
/* authz.c: the permissions file compiled into caller rules, and the per-call decision. */
#include "naftikod/authz.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "naftikod/spec.h"

/* Bounds on what one file may ask the matcher to walk per call. */
#define MAX_CALLERS 1024
#define MAX_GRANTS 256 /* per caller */
#define MAX_LIST 256   /* names, routes, enum values, scopes, fields in one list */
#define MAX_TEXT 512   /* one glob, enum value, prefix, path */
#define AUDIT_VALUE_MAX 256

enum klass { CLASS_ANY, CLASS_READ_ONLY, CLASS_NOT_DESTRUCTIVE };

struct route {
    char *method; /* upper case or "*" */
    char *path;   /* glob over the exposed path as written */
};

/* Which operations a grant or an audit entry covers. No list at all: every operation. */
struct selector {
    char **tools; /* globs over MCP tool names */
    size_t n_tools;
    struct route *routes; /* REST routes */
    size_t n_routes;
    char **calls; /* globs over the consumed operation "namespace.operation" */
    size_t n_calls;
    bool any;
};

struct limit {
    char *arg; /* argument name, or a dotted path into an object argument */
    char **enum_values;
    size_t n_enum;
    char *prefix;
    long long max_length; /* characters; -1: none */
    long long max_items;  /* arrays; -1: none */
    bool has_max, has_min;
    double maximum, minimum;
    bool required;
    unsigned line, column;
};

struct grant {
    struct selector sel;
    enum klass klass;
    char *scope; /* OAuth: the scope this grant needs, or NULL */
    struct limit *limits;
    size_t n_limits;
    unsigned line;
};

struct caller {
    char *name; /* label in rules and messages */
    enum nk_principal_kind kind;
    char *glob;        /* token / document name, OAuth subject; NULL: any */
    char *client_glob; /* OAuth client_id; NULL: any */
    char **scopes;     /* OAuth: all needed for this entry to match */
    size_t n_scopes;
    struct grant *grants;
    size_t n_grants;
    unsigned line;
};

struct audit_entry {
    struct selector sel;
    unsigned line;
    char **fields;
    size_t n_fields;
};

struct nk_authz {
    char *file;
    struct caller *callers;
    size_t n_callers;
    struct audit_entry *audits;
    size_t n_audits;
};

/* ---- freeing ------------------------------------------------------------------------------ */

static void free_list(char **v, size_t n)
{
    size_t i;

    for (i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

static void selector_free(struct selector *s)
{
    size_t i;

    free_list(s->tools, s->n_tools);
    free_list(s->calls, s->n_calls);
    for (i = 0; s->routes != NULL && i < s->n_routes; i++) {
        free(s->routes[i].method);
        free(s->routes[i].path);
    }
    free(s->routes);
}

static void grant_free(struct grant *g)
{
    size_t i;

    selector_free(&g->sel);
    free(g->scope);
    for (i = 0; g->limits != NULL && i < g->n_limits; i++) {
        free(g->limits[i].arg);
        free_list(g->limits[i].enum_values, g->limits[i].n_enum);
        free(g->limits[i].prefix);
    }
    free(g->limits);
}

void nk_authz_free(struct nk_authz *az)
{
    size_t i, j;

    if (az == NULL)
        return;
    for (i = 0; az->callers != NULL && i < az->n_callers; i++) {
        struct caller *c = &az->callers[i];

        free(c->name);
        free(c->glob);
        free(c->client_glob);
        free_list(c->scopes, c->n_scopes);
        for (j = 0; c->grants != NULL && j < c->n_grants; j++)
            grant_free(&c->grants[j]);
        free(c->grants);
    }
    free(az->callers);
    for (i = 0; az->audits != NULL && i < az->n_audits; i++) {
        selector_free(&az->audits[i].sel);
        free_list(az->audits[i].fields, az->audits[i].n_fields);
    }
    free(az->audits);
    free(az->file);
    free(az);
}

size_t nk_authz_n_callers(const struct nk_authz *az)
{
    return az != NULL ? az->n_callers : 0;
}

size_t nk_authz_n_grants(const struct nk_authz *az)
{
    size_t i, n = 0;

    for (i = 0; az != NULL && i < az->n_callers; i++)
        n += az->callers[i].n_grants;
    return n;
}

const char *nk_principal_kind_name(enum nk_principal_kind k)
{
    switch (k) {
    case NK_PRINCIPAL_TOKEN:
        return "token";
    case NK_PRINCIPAL_DOCUMENT:
        return "document";
    case NK_PRINCIPAL_OAUTH:
        return "oauth";
    case NK_PRINCIPAL_ANONYMOUS:
    default:
        return "anonymous";
    }
}

/* ---- compiling ---------------------------------------------------------------------------- */

struct cc {
    const char *file;
    struct nk_error *err;
    enum nk_rc rc; /* first error */
};

static bool fail(struct cc *c, const struct nk_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(struct cc *c, const struct nk_node *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    nk_utf8_fix(msg, sizeof(msg));
    if (c->rc == NK_OK) {
        c->rc = NK_ERR_INVALID;
        nk_error_setpos(c->err, n != NULL ? n->line : 0, n != NULL ? n->column : 0, "%s:%u:%u: %s",
                        c->file, n != NULL ? n->line : 0, n != NULL ? n->column : 0, msg);
    }
    return false;
}

static bool oom(struct cc *c)
{
    if (c->rc == NK_OK) {
        c->rc = NK_ERR_NOMEM;
        nk_error_set(c->err, "out of memory");
    }
    return false;
}

/* Every key of mapping n must be one of keys[0..nk). */
static bool known_keys(struct cc *c, const struct nk_node *n, const char *what,
                       const char *const *keys, size_t nk)
{
    size_t i, k;

    if (n->kind != NK_NODE_MAPPING)
        return fail(c, n, "%s must be a mapping", what);
    for (i = 0; i < n->n; i++) {
        for (k = 0; k < nk; k++)
            if (strcmp(n->pairs[i].key->str, keys[k]) == 0)
                break;
        if (k == nk) {
            char expected[300] = "";

            for (k = 0; k < nk; k++) {
                strncat(expected, k ? ", " : "", sizeof(expected) - strlen(expected) - 1);
                strncat(expected, keys[k], sizeof(expected) - strlen(expected) - 1);
            }
            return fail(c, n->pairs[i].key, "unknown key '%.64s' in %s (expected %s)",
                        n->pairs[i].key->str, what, expected);
        }
    }
    return true;
}

/* A non-empty string scalar without NUL bytes, at most MAX_TEXT bytes, copied. */
static bool text(struct cc *c, const struct nk_node *n, const char *what, char **out)
{
    *out = NULL;
    if (n->kind != NK_NODE_SCALAR || nk_node_is_null(n))
        return fail(c, n, "%s must be a string", what);
    if (n->len == 0 || n->len > MAX_TEXT || strlen(n->str) != n->len)
        return fail(c, n, "%s must be 1 to %d bytes without NUL", what, MAX_TEXT);
    *out = strdup(n->str);
    return *out != NULL ? true : oom(c);
}

/* A string or a sequence of strings into a new list. */
static bool text_list(struct cc *c, const struct nk_node *n, const char *what, char ***out,
                      size_t *n_out)
{
    size_t i, cnt = n->kind == NK_NODE_SEQUENCE ? n->n : 1;

    *out = NULL;
    *n_out = 0;
    if (n->kind == NK_NODE_MAPPING)
        return fail(c, n, "%s must be a string or a list of strings", what);
    if (cnt == 0 || cnt > MAX_LIST)
        return fail(c, n, "%s must list 1 to %d entries", what, MAX_LIST);
    *out = calloc(cnt, sizeof(char *));
    if (*out == NULL)
        return oom(c);
    for (i = 0; i < cnt; i++) {
        if (!text(c, n->kind == NK_NODE_SEQUENCE ? n->items[i] : n, what, &(*out)[i]))
            return false; /* the caller frees the list: *n_out counts the slots */
        *n_out = i + 1;
    }
    return true;
}

static bool valid_method(const char *m)
{
    static const char *const methods[] = {"*",     "GET",    "HEAD",    "POST", "PUT",
                                          "PATCH", "DELETE", "OPTIONS", "TRACE"};
    size_t i;

    for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (strcmp(m, methods[i]) == 0)
            return true;
    return false;
}

/* "METHOD PATHGLOB" */
static bool parse_route(struct cc *c, const struct nk_node *n, struct route *r)
{
    const char *sp;
    char *s = NULL;

    if (!text(c, n, "a route", &s))
        return false;
    sp = strchr(s, ' ');
    if (sp == NULL || sp[1] != '/') {
        free(s);
        return fail(c, n,
                    "a route is 'METHOD /path' (a glob over the exposed path as written, "
                    "e.g. 'GET /v1/things/*'), got '%.64s'",
                    n->str);
    }
    r->method = strndup(s, (size_t)(sp - s));
    r->path = strdup(sp + 1);
    free(s);
    if (r->method == NULL || r->path == NULL)
        return oom(c);
    if (!valid_method(r->method))
        return fail(c, n, "unknown HTTP method '%.16s' in a route (upper case, or '*')", r->method);
    return true;
}

/* tools / routes / calls keys of mapping n into s. */
static bool parse_selector(struct cc *c, const struct nk_node *n, struct selector *s)
{
    const struct nk_node *tools = nk_node_get(n, "tools"), *routes = nk_node_get(n, "routes"),
                         *calls = nk_node_get(n, "calls");
    size_t i, cnt;

    if (tools != NULL && !text_list(c, tools, "'tools'", &s->tools, &s->n_tools))
        return false;
    if (calls != NULL && !text_list(c, calls, "'calls'", &s->calls, &s->n_calls))
        return false;
    if (routes != NULL) {
        if (routes->kind == NK_NODE_MAPPING)
            return fail(c, routes, "'routes' must be a string or a list of strings");
        cnt = routes->kind == NK_NODE_SEQUENCE ? routes->n : 1;
        if (cnt == 0 || cnt > MAX_LIST)
            return fail(c, routes, "'routes' must list 1 to %d entries", MAX_LIST);
        s->routes = calloc(cnt, sizeof(*s->routes));
        if (s->routes == NULL)
            return oom(c);
        s->n_routes = cnt;
        for (i = 0; i < cnt; i++)
            if (!parse_route(c, routes->kind == NK_NODE_SEQUENCE ? routes->items[i] : routes,
                             &s->routes[i]))
                return false;
    }
    s->any = tools == NULL && routes == NULL && calls == NULL;
    return true;
}

static bool parse_number(struct cc *c, const struct nk_node *n, const char *what, double *v)
{
    char *end;

    if (n->kind != NK_NODE_SCALAR || !nk_node_is_number(n))
        return fail(c, n, "'%s' must be a number", what);
    *v = strtod(n->str, &end);
    if (*end != '\0' || !isfinite(*v))
        return fail(c, n, "'%s' must be a finite number", what);
    return true;
}

static bool parse_count(struct cc *c, const struct nk_node *n, const char *what, long long *v)
{
    if (n->kind != NK_NODE_SCALAR || !nk_node_int(n, v) || *v < 0 || *v > 1000000000LL)
        return fail(c, n, "'%s' must be an integer from 0 to 1000000000", what);
    return true;
}

static bool parse_limit(struct cc *c, const struct nk_node *key, const struct nk_node *n,
                        struct limit *l)
{
    static const char *const keys[] = {"enum",    "prefix",  "maxLength", "maxItems",
                                       "maximum", "minimum", "required"};
    const struct nk_node *v;
    size_t i;

    l->max_length = -1;
    l->max_items = -1;
    l->line = key->line;
    l->column = key->column;
    if (!text(c, key, "an argument name", &l->arg))
        return false;
    if (!known_keys(c, n, "an argument limit", keys, sizeof(keys) / sizeof(keys[0])))
        return false;
    if (n->n == 0)
        return fail(c, n, "the limit on argument '%.64s' states nothing", key->str);
    if ((v = nk_node_get(n, "enum")) != NULL) {
        size_t cnt = v->kind == NK_NODE_SEQUENCE ? v->n : 0;

        if (v->kind != NK_NODE_SEQUENCE || cnt == 0 || cnt > MAX_LIST)
            return fail(c, v, "'enum' must be a list of 1 to %d scalars", MAX_LIST);
        l->enum_values = calloc(cnt, sizeof(char *));
        if (l->enum_values == NULL)
            return oom(c);
        for (i = 0; i < cnt; i++) {
            const struct nk_node *e = v->items[i];

            if (e->kind != NK_NODE_SCALAR || e->len > MAX_TEXT || strlen(e->str) != e->len)
                return fail(c, e, "an 'enum' value must be a scalar of at most %d bytes", MAX_TEXT);
            l->enum_values[i] = strdup(e->str);
            if (l->enum_values[i] == NULL)
                return oom(c);
            l->n_enum = i + 1;
        }
    }
    if ((v = nk_node_get(n, "prefix")) != NULL && !text(c, v, "'prefix'", &l->prefix))
        return false;
    if ((v = nk_node_get(n, "maxLength")) != NULL &&
        !parse_count(c, v, "maxLength", &l->max_length))
        return false;
    if ((v = nk_node_get(n, "maxItems")) != NULL && !parse_count(c, v, "maxItems", &l->max_items))
        return false;
    if ((v = nk_node_get(n, "maximum")) != NULL) {
        if (!parse_number(c, v, "maximum", &l->maximum))
            return false;
        l->has_max = true;
    }
    if ((v = nk_node_get(n, "minimum")) != NULL) {
        if (!parse_number(c, v, "minimum", &l->minimum))
            return false;
        l->has_min = true;
    }
    if (l->has_max && l->has_min && l->minimum > l->maximum)
        return fail(c, n, "'minimum' is above 'maximum' for argument '%.64s'", key->str);
    if ((v = nk_node_get(n, "required")) != NULL && !nk_node_bool(v, &l->required))
        return fail(c, v, "'required' must be true or false");
    return true;
}

static bool parse_grant(struct cc *c, const struct nk_node *n, struct grant *g)
{
    static const char *const keys[] = {"tools", "routes", "calls", "class", "scope", "args"};
    const struct nk_node *v;
    size_t i;

    g->line = n->line;
    if (!known_keys(c, n, "a grant", keys, sizeof(keys) / sizeof(keys[0])) ||
        !parse_selector(c, n, &g->sel))
        return false;
    if ((v = nk_node_get(n, "class")) != NULL) {
        if (v->kind == NK_NODE_SCALAR && strcmp(v->str, "readOnly") == 0)
            g->klass = CLASS_READ_ONLY;
        else if (v->kind == NK_NODE_SCALAR && strcmp(v->str, "notDestructive") == 0)
            g->klass = CLASS_NOT_DESTRUCTIVE;
        else
            return fail(c, v, "'class' is readOnly or notDestructive");
    }
    if (n->n == 0)
        return fail(c, n,
                    "an empty grant: name tools, routes, calls or a class (write "
                    "tools: '*' to grant every tool)");
    if ((v = nk_node_get(n, "scope")) != NULL) {
        if (!text(c, v, "'scope'", &g->scope))
            return false;
        if (strpbrk(g->scope, " \t\"\\") != NULL)
            return fail(c, v, "'scope' is one OAuth scope (no blank, quote or backslash)");
    }
    if ((v = nk_node_get(n, "args")) != NULL) {
        if (v->kind != NK_NODE_MAPPING || v->n == 0 || v->n > MAX_LIST)
            return fail(c, v, "'args' maps 1 to %d argument names to their limits", MAX_LIST);
        g->limits = calloc(v->n, sizeof(*g->limits));
        if (g->limits == NULL)
            return oom(c);
        for (i = 0; i < v->n; i++) {
            g->n_limits = i + 1;
            if (!parse_limit(c, v->pairs[i].key, v->pairs[i].value, &g->limits[i]))
                return false;
        }
    }
    return true;
}

static bool parse_match(struct cc *c, const struct nk_node *n, struct caller *k)
{
    static const char *const keys[] = {"token", "document", "oauth", "anonymous"};
    static const char *const okeys[] = {"subject", "client", "scopes"};
    const struct nk_node *v;
    bool b;

    if (!known_keys(c, n, "'match'", keys, sizeof(keys) / sizeof(keys[0])))
        return false;
    if (n->n != 1)
        return fail(c, n, "'match' names exactly one of token, document, oauth or anonymous");
    if ((v = nk_node_get(n, "token")) != NULL) {
        k->kind = NK_PRINCIPAL_TOKEN;
        return text(c, v, "'token' (a tokens-file name or glob)", &k->glob);
    }
    if ((v = nk_node_get(n, "document")) != NULL) {
        k->kind = NK_PRINCIPAL_DOCUMENT;
        return text(c, v, "'document' (the document credential's name or a glob)", &k->glob);
    }
    if ((v = nk_node_get(n, "anonymous")) != NULL) {
        k->kind = NK_PRINCIPAL_ANONYMOUS;
        if (!nk_node_bool(v, &b) || !b)
            return fail(c, v,
                        "'anonymous' is true (callers of adapters without inbound "
                        "authentication)");
        return true;
    }
    v = nk_node_get(n, "oauth");
    k->kind = NK_PRINCIPAL_OAUTH;
    if (!known_keys(c, v, "'oauth'", okeys, sizeof(okeys) / sizeof(okeys[0])))
        return false;
    if (v->n == 0)
        return fail(c, v, "'oauth' names a subject, a client or scopes");
    if (nk_node_get(v, "subject") != NULL &&
        !text(c, nk_node_get(v, "subject"), "'subject'", &k->glob))
        return false;
    if (nk_node_get(v, "client") != NULL &&
        !text(c, nk_node_get(v, "client"), "'client'", &k->client_glob))
        return false;
    if (nk_node_get(v, "scopes") != NULL &&
        !text_list(c, nk_node_get(v, "scopes"), "'scopes'", &k->scopes, &k->n_scopes))
        return false;
    return true;
}

static bool parse_caller(struct cc *c, const struct nk_node *n, struct caller *k)
{
    static const char *const keys[] = {"name", "match", "grants"};
    const struct nk_node *v;
    size_t i;

    k->line = n->line;
    if (!known_keys(c, n, "a caller", keys, sizeof(keys) / sizeof(keys[0])))
        return false;
    if ((v = nk_node_get(n, "name")) == NULL)
        return fail(c, n, "a caller needs a 'name' (shown in refusals and the audit trail)");
    if (!text(c, v, "'name'", &k->name))
        return false;
    if (strlen(k->name) > 64)
        return fail(c, v, "a caller 'name' is at most 64 bytes");
    if ((v = nk_node_get(n, "match")) == NULL)
        return fail(c, n, "caller '%.64s' needs 'match' (token, document, oauth or anonymous)",
                    k->name);
    if (!parse_match(c, v, k))
        return false;
    if ((v = nk_node_get(n, "grants")) == NULL)
        return fail(c, n,
                    "caller '%.64s' needs 'grants' (a list; write grants: [] to grant "
                    "nothing)",
                    k->name);
    if (v->kind != NK_NODE_SEQUENCE || v->n > MAX_GRANTS)
        return fail(c, v, "'grants' must be a list of at most %d grants", MAX_GRANTS);
    if (v->n == 0)
        return true;
    k->grants = calloc(v->n, sizeof(*k->grants));
    if (k->grants == NULL)
        return oom(c);
    for (i = 0; i < v->n; i++) {
        k->n_grants = i + 1;
        if (!parse_grant(c, v->items[i], &k->grants[i]))
            return false;
    }
    return true;
}

/* Field names that could carry a credential are refused in the audit allow-list. */
static bool secret_name(const char *f)
{
    static const char *const words[] = {"password", "passwd",     "secret", "authorization",
                                        "cookie",   "credential", "apikey", "api_key",
                                        "api-key",  "private"};
    size_t i, k, n = strlen(f);

    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        for (k = 0; k + strlen(words[i]) <= n; k++)
            if (strncasecmp(f + k, words[i], strlen(words[i])) == 0)
                return true;
    return false;
}

static bool parse_audit(struct cc *c, const struct nk_node *n, struct audit_entry *a)
{
    static const char *const keys[] = {"tools", "routes", "calls", "fields"};
    const struct nk_node *v;
    size_t i;

    a->line = n->line;
    if (!known_keys(c, n, "an audit entry", keys, sizeof(keys) / sizeof(keys[0])) ||
        !parse_selector(c, n, &a->sel))
        return false;
    if ((v = nk_node_get(n, "fields")) == NULL)
        return fail(c, n, "an audit entry needs 'fields' (the argument names to record)");
    if (!text_list(c, v, "'fields'", &a->fields, &a->n_fields))
        return false;
    for (i = 0; i < a->n_fields; i++)
        if (secret_name(a->fields[i]))
            return fail(c, v->kind == NK_NODE_SEQUENCE ? v->items[i] : v,
                        "audit field '%.64s' looks like a credential: it is never recorded",
                        a->fields[i]);
    return true;
}

enum nk_rc nk_authz_parse(const char *name, const char *buf, size_t len, struct nk_authz **out,
                          struct nk_error *err)
{
    static const char *const keys[] = {"callers", "audit"};
    struct cc c = {name, err, NK_OK};
    struct nk_node *root = NULL;
    struct nk_authz *az = NULL;
    const struct nk_node *v;
    struct nk_error perr;
    enum nk_rc rc;
    size_t i;

    *out = NULL;
    memset(&perr, 0, sizeof(perr));
    if (len > NK_AUTHZ_MAX_BYTES) {
        nk_error_set(err, "%s: the permissions file is larger than %u bytes", name,
                     NK_AUTHZ_MAX_BYTES);
        return NK_ERR_TOO_LARGE;
    }
    rc = nk_spec_parse(buf, len, &root, &perr);
    if (rc != NK_OK) {
        nk_error_setpos(err, perr.line, perr.column, "%s:%u:%u: %s", name, perr.line, perr.column,
                        perr.msg);
        return rc;
    }
    az = calloc(1, sizeof(*az));
    if (az == NULL || (az->file = strdup(name)) == NULL) {
        oom(&c);
        goto out;
    }
    if (!known_keys(&c, root, "the permissions file", keys, sizeof(keys) / sizeof(keys[0])))
        goto out;
    v = nk_node_get(root, "callers");
    if (v == NULL) {
        fail(&c, root, "the permissions file needs 'callers' (a list)");
        goto out;
    }
    if (v->kind != NK_NODE_SEQUENCE || v->n > MAX_CALLERS) {
        fail(&c, v, "'callers' must be a list of at most %d callers", MAX_CALLERS);
        goto out;
    }
    if (v->n > 0 && (az->callers = calloc(v->n, sizeof(*az->callers))) == NULL) {
        oom(&c);
        goto out;
    }
    for (i = 0; i < v->n; i++) {
        size_t j;

        az->n_callers = i + 1;
        if (!parse_caller(&c, v->items[i], &az->callers[i]))
            goto out;
        for (j = 0; j < i; j++)
            if (strcmp(az->callers[j].name, az->callers[i].name) == 0) {
                fail(&c, nk_node_get(v->items[i], "name"),
                     "caller name '%.64s' is used twice (first at line %u)", az->callers[i].name,
                     az->callers[j].line);
                goto out;
            }
    }
    v = nk_node_get(root, "audit");
    if (v != NULL) {
        if (v->kind != NK_NODE_SEQUENCE || v->n > MAX_LIST) {
            fail(&c, v, "'audit' must be a list of at most %d entries", MAX_LIST);
            goto out;
        }
        if (v->n > 0 && (az->audits = calloc(v->n, sizeof(*az->audits))) == NULL) {
            oom(&c);
            goto out;
        }
        for (i = 0; i < v->n; i++) {
            az->n_audits = i + 1;
            if (!parse_audit(&c, v->items[i], &az->audits[i]))
                goto out;
        }
    }
out:
    nk_node_free(root);
    if (c.rc != NK_OK) {
        nk_authz_free(az);
        return c.rc;
    }
    *out = az;
    return NK_OK;
}

enum nk_rc nk_authz_load(const char *path, struct nk_authz **out, struct nk_error *err)
{
    char *buf = NULL;
    size_t len = 0;
    enum nk_rc rc;

    *out = NULL;
    rc = nk_spec_read_file(path, &buf, &len, err);
    if (rc != NK_OK)
        return rc;
    rc = nk_authz_parse(path, buf, len, out, err);
    free(buf);
    return rc;
}

/* ---- matching ----------------------------------------------------------------------------- */

static bool glob(const char *pattern, const char *s)
{
    return pattern == NULL || fnmatch(pattern, s != NULL ? s : "", 0) == 0;
}

static bool any_glob(char *const *v, size_t n, const char *s)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (glob(v[i], s))
            return true;
    return false;
}

static bool selector_covers(const struct selector *s, enum nk_adapter_type type,
                            const struct nk_exposed *op)
{
    size_t i;

    if (s->any)
        return true;
    if (type == NK_ADAPTER_MCP && any_glob(s->tools, s->n_tools, op->name))
        return true;
    if (type == NK_ADAPTER_REST && op->method != NULL && op->path != NULL)
        for (i = 0; i < s->n_routes; i++)
            if ((strcmp(s->routes[i].method, "*") == 0 ||
                 strcmp(s->routes[i].method, op->method) == 0) &&
                glob(s->routes[i].path, op->path))
                return true;
    return op->target != NULL && any_glob(s->calls, s->n_calls, op->target->qname);
}

/* REST routes have no hints: GET and HEAD are read-only and not destructive, nothing else is
 * (what the method promises, and the conservative reading). */
static bool class_covers(enum klass k, enum nk_adapter_type type, const struct nk_exposed *op)
{
    bool safe_method =
        op->method != NULL && (strcmp(op->method, "GET") == 0 || strcmp(op->method, "HEAD") == 0);

    switch (k) {
    case CLASS_READ_ONLY:
        return type == NK_ADAPTER_MCP ? op->hints.read_only : safe_method;
    case CLASS_NOT_DESTRUCTIVE:
        return type == NK_ADAPTER_MCP ? (op->hints.read_only || !op->hints.destructive)
                                      : safe_method;
    case CLASS_ANY:
    default:
        return true;
    }
}

static bool has_scope(const char *granted, const char *scope)
{
    size_t n = strlen(scope);
    const char *p = granted;

    while (p != NULL && *p != '\0') {
        while (*p == ' ')
            p++;
        if (strncmp(p, scope, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
            return true;
        p = strchr(p, ' ');
    }
    return false;
}

static bool caller_matches(const struct caller *k, const struct nk_principal *p)
{
    size_t i;

    if (k->kind != p->kind)
        return false;
    if (k->kind == NK_PRINCIPAL_ANONYMOUS)
        return true;
    if (!glob(k->glob, p->name))
        return false;
    if (k->kind != NK_PRINCIPAL_OAUTH)
        return true;
    if (!glob(k->client_glob, p->client_id))
        return false;
    for (i = 0; i < k->n_scopes; i++)
        if (!has_scope(p->scope, k->scopes[i]))
            return false;
    return true;
}

/* args[path]: the key as written first, else split at a dot into an object argument. */
static const json_t *arg_at(const json_t *obj, const char *path, unsigned depth)
{
    const json_t *v;
    const char *dot;

    if (!json_is_object(obj) || depth > 16)
        return NULL;
    v = json_object_get(obj, path);
    if (v != NULL)
        return v;
    for (dot = strchr(path, '.'); dot != NULL; dot = strchr(dot + 1, '.')) {
        char head[MAX_TEXT + 1];
        size_t n = (size_t)(dot - path);

        if (n == 0 || n > MAX_TEXT)
            continue;
        memcpy(head, path, n);
        head[n] = '\0';
        v = json_object_get(obj, head);
        if (v != NULL && json_is_object(v) && (v = arg_at(v, dot + 1, depth + 1)) != NULL)
            return v;
    }
    return NULL;
}

/* The text of a scalar as an enum or prefix compares it; false for arrays and objects. */
static bool scalar_text(const json_t *v, char *buf, size_t cap, const char **out)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        *out = json_string_value(v);
        return true;
    case JSON_INTEGER:
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, cap, "%.17g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, cap, "true");
        break;
    case JSON_FALSE:
        snprintf(buf, cap, "false");
        break;
    case JSON_NULL:
        snprintf(buf, cap, "null");
        break;
    default:
        return false;
    }
    *out = buf;
    return true;
}

static size_t utf8_chars(const char *s, size_t len)
{
    size_t i, n = 0;

    for (i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* Check one scalar (or one array element) against l; on failure write why into why. */
static bool scalar_ok(const struct limit *l, const json_t *v, char *why, size_t cap)
{
    char buf[64];
    const char *s = NULL;
    size_t i, len;

    if (!scalar_text(v, buf, sizeof(buf), &s)) {
        snprintf(why, cap, "is %s, where a limited argument takes scalars",
                 json_is_object(v) ? "an object" : "a nested array");
        return false;
    }
    len = json_is_string(v) ? json_string_length(v) : strlen(s);
    if (l->n_enum > 0) {
        bool found = false;

        for (i = 0; i < l->n_enum && !found; i++)
            found = strlen(l->enum_values[i]) == len && memcmp(l->enum_values[i], s, len) == 0;
        if (!found) {
            snprintf(why, cap, "value '%.64s' is not one of the %zu allowed", s, l->n_enum);
            return false;
        }
    }
    if (l->prefix != NULL && strncmp(s, l->prefix, strlen(l->prefix)) != 0) {
        snprintf(why, cap, "value '%.64s' does not start with '%.64s'", s, l->prefix);
        return false;
    }
    if (l->max_length >= 0 && utf8_chars(s, len) > (size_t)l->max_length) {
        snprintf(why, cap, "is longer than %lld characters", l->max_length);
        return false;
    }
    if (l->has_max || l->has_min) {
        double d;
        char *end = NULL;

        if (json_is_number(v)) {
            d = json_number_value(v);
        } else if (json_is_string(v) && len > 0 && len < 64 && strlen(s) == len) {
            d = strtod(s, &end);
            if (*end != '\0' || !isfinite(d)) {
                snprintf(why, cap, "value '%.64s' is not a number", s);
                return false;
            }
        } else {
            snprintf(why, cap, "is not a number");
            return false;
        }
        if ((l->has_max && d > l->maximum) || (l->has_min && d < l->minimum) || isnan(d)) {
            snprintf(why, cap, "value %.17g is outside the allowed range", d);
            return false;
        }
    }
    return true;
}

static bool limit_ok(const struct limit *l, const json_t *args, char *why, size_t cap)
{
    const json_t *v = arg_at(args, l->arg, 0);
    size_t i;

    if (v == NULL) {
        if (l->required)
            snprintf(why, cap, "is required by this grant and was not given");
        return !l->required;
    }
    if (!json_is_array(v))
        return scalar_ok(l, v, why, cap);
    if (l->max_items >= 0 && json_array_size(v) > (size_t)l->max_items) {
        snprintf(why, cap, "has more than %lld entries", l->max_items);
        return false;
    }
    for (i = 0; i < json_array_size(v); i++) {
        char sub[300];

        if (!scalar_ok(l, json_array_get(v, i), sub, sizeof(sub))) {
            snprintf(why, cap, "entry %zu: %.250s", i, sub);
            return false;
        }
    }
    return true;
}

static const char *op_kind(enum nk_adapter_type type)
{
    return type == NK_ADAPTER_MCP ? "tool" : "route";
}

static void op_label(enum nk_adapter_type type, const struct nk_exposed *op, char *buf, size_t cap)
{
    if (type == NK_ADAPTER_REST && op->method != NULL && op->path != NULL)
        snprintf(buf, cap, "%.16s %.200s", op->method, op->path);
    else
        snprintf(buf, cap, "%.200s", op->name != NULL ? op->name : "?");
}

/* The audit allow-list fields of op, copied from args. */
static enum nk_rc audit_args(const struct nk_authz *az, enum nk_adapter_type type,
                             const struct nk_exposed *op, const json_t *args, json_t **out)
{
    json_t *o = NULL;
    size_t i, j;

    *out = NULL;
    for (i = 0; i < az->n_audits; i++) {
        const struct audit_entry *a = &az->audits[i];

        if (!selector_covers(&a->sel, type, op))
            continue;
        for (j = 0; j < a->n_fields; j++) {
            const json_t *v = arg_at(args, a->fields[j], 0);
            json_t *copy;

            if (v == NULL)
                continue;
            if (json_is_string(v) && json_string_length(v) > AUDIT_VALUE_MAX) {
                char cut[AUDIT_VALUE_MAX + 1];

                nk_utf8_copy(cut, sizeof(cut), json_string_value(v), AUDIT_VALUE_MAX);
                copy = json_string(cut);
            } else if (json_is_object(v)) {
                copy = json_string("(object)"); /* only named fields are recorded */
            } else {
                copy = json_deep_copy(v);
            }
            if (o == NULL && (o = json_object()) == NULL) {
                json_decref(copy);
                return NK_ERR_NOMEM;
            }
            if (copy == NULL || json_object_set_new(o, a->fields[j], copy) != 0) {
                json_decref(o);
                return NK_ERR_NOMEM;
            }
        }
    }
    *out = o;
    return NK_OK;
}

void nk_authz_decision_cleanup(struct nk_authz_decision *d)
{
    json_decref(d->audit_args);
    d->audit_args = NULL;
}

static void rule_of(const struct nk_authz *az, const struct caller *k, const struct grant *g,
                    char *buf, size_t cap)
{
    snprintf(buf, cap, "%.80s:%u (caller %.64s)", az->file, g->line, k->name);
}

enum nk_rc nk_authz_check(const struct nk_authz *az, const struct nk_principal *p,
                          enum nk_adapter_type type, const struct nk_exposed *op,
                          const json_t *args, struct nk_authz_decision *d)
{
    const struct caller *limit_caller = NULL, *scope_caller = NULL;
    const struct grant *limit_grant = NULL, *scope_grant = NULL;
    const struct limit *failed = NULL;
    char why[320] = "", label[240], who[NK_PRINCIPAL_NAME_MAX + 16];
    size_t i, j, m;

    memset(d, 0, sizeof(*d));
    op_label(type, op, label, sizeof(label));
    if (audit_args(az, type, op, args, &d->audit_args) != NK_OK) {
        snprintf(d->rule, sizeof(d->rule), "out of memory");
        snprintf(d->reason, sizeof(d->reason), "out of memory deciding the permission");
        return NK_ERR_NOMEM;
    }
    for (i = 0; i < az->n_callers; i++) {
        const struct caller *k = &az->callers[i];

        if (!caller_matches(k, p))
            continue;
        for (j = 0; j < k->n_grants; j++) {
            const struct grant *g = &k->grants[j];
            char sub[300] = "";
            const struct limit *bad = NULL;

            if (!selector_covers(&g->sel, type, op) || !class_covers(g->klass, type, op))
                continue;
            for (m = 0; m < g->n_limits && bad == NULL; m++)
                if (!limit_ok(&g->limits[m], args, sub, sizeof(sub)))
                    bad = &g->limits[m];
            if (bad != NULL) {
                if (failed == NULL) {
                    failed = bad;
                    limit_caller = k;
                    limit_grant = g;
                    snprintf(why, sizeof(why), "%s", sub);
                }
                continue;
            }
            if (g->scope != NULL &&
                !(p->kind == NK_PRINCIPAL_OAUTH && has_scope(p->scope, g->scope))) {
                if (scope_grant == NULL) {
                    scope_grant = g;
                    scope_caller = k;
                }
                continue;
            }
            d->allowed = true;
            rule_of(az, k, g, d->rule, sizeof(d->rule));
            return NK_OK;
        }
    }
    snprintf(who, sizeof(who), "%s '%.64s'", nk_principal_kind_name(p->kind), p->name);
    if (p->kind == NK_PRINCIPAL_ANONYMOUS)
        snprintf(who, sizeof(who), "an anonymous caller");
    if (scope_grant != NULL && p->kind == NK_PRINCIPAL_OAUTH) {
        rule_of(az, scope_caller, scope_grant, d->rule, sizeof(d->rule));
        snprintf(d->missing_scope, sizeof(d->missing_scope), "%s", scope_grant->scope);
        snprintf(d->reason, sizeof(d->reason),
                 "permission denied: %s needs the OAuth scope '%.100s' for %s '%.150s' (%.120s)",
                 who, scope_grant->scope, op_kind(type), label, d->rule);
    } else if (failed != NULL) {
        rule_of(az, limit_caller, limit_grant, d->rule, sizeof(d->rule));
        snprintf(d->reason, sizeof(d->reason),
                 "permission denied: argument '%.64s' %.250s (limit at %.80s:%u:%u, caller %.64s)",
                 failed->arg, why, az->file, failed->line, failed->column, limit_caller->name);
    } else {
        snprintf(d->rule, sizeof(d->rule), "default deny");
        snprintf(d->reason, sizeof(d->reason),
                 "permission denied: no grant in %.80s lets %s use %s '%.200s'", az->file, who,
                 op_kind(type), label);
    }
    nk_utf8_fix(d->reason, sizeof(d->reason));
    nk_utf8_fix(d->rule, sizeof(d->rule));
    return NK_OK;
}

/* Does selector entry (one tool glob, route or call glob) match an operation of t? */
static bool entry_used(const struct nk_optable *t, const char *tool, const struct route *route,
                       const char *call)
{
    size_t i, j;

    for (i = 0; i < t->n_listeners; i++)
        for (j = 0; j < t->listeners[i].n_ops; j++) {
            const struct nk_exposed *op = &t->listeners[i].ops[j];
            enum nk_adapter_type type = t->listeners[i].type;

            if (tool != NULL && type == NK_ADAPTER_MCP && glob(tool, op->name))
                return true;
            if (route != NULL && type == NK_ADAPTER_REST && op->method != NULL &&
                (strcmp(route->method, "*") == 0 || strcmp(route->method, op->method) == 0) &&
                glob(route->path, op->path))
                return true;
            if (call != NULL && op->target != NULL && glob(call, op->target->qname))
                return true;
        }
    return false;
}

static size_t
lint_selector(const struct nk_authz *az, const struct nk_optable *t, const struct selector *s,
              unsigned line, const char *who,
              void (*warn)(void *ud, const char *file, unsigned line, const char *msg), void *ud)
{
    char msg[900];
    size_t i, n = 0;

    for (i = 0; i < s->n_tools; i++)
        if (!entry_used(t, s->tools[i], NULL, NULL)) {
            snprintf(msg, sizeof(msg), "tool '%.200s' (%.80s) names no MCP tool served",
                     s->tools[i], who);
            warn(ud, az->file, line, msg);
            n++;
        }
    for (i = 0; i < s->n_routes; i++)
        if (!entry_used(t, NULL, &s->routes[i], NULL)) {
            snprintf(msg, sizeof(msg), "route '%.16s %.200s' (%.80s) names no REST route served",
                     s->routes[i].method, s->routes[i].path, who);
            warn(ud, az->file, line, msg);
            n++;
        }
    for (i = 0; i < s->n_calls; i++)
        if (!entry_used(t, NULL, NULL, s->calls[i])) {
            snprintf(msg, sizeof(msg), "call '%.200s' (%.80s) names no consumed operation served",
                     s->calls[i], who);
            warn(ud, az->file, line, msg);
            n++;
        }
    return n;
}

size_t nk_authz_lint(const struct nk_authz *az, const struct nk_optable *t,
                     void (*warn)(void *ud, const char *file, unsigned line, const char *msg),
                     void *ud)
{
    char who[100];
    size_t i, j, n = 0;

    for (i = 0; i < az->n_callers; i++)
        for (j = 0; j < az->callers[i].n_grants; j++) {
            snprintf(who, sizeof(who), "caller %.64s", az->callers[i].name);
            n += lint_selector(az, t, &az->callers[i].grants[j].sel, az->callers[i].grants[j].line,
                               who, warn, ud);
        }
    for (i = 0; i < az->n_audits; i++)
        n += lint_selector(az, t, &az->audits[i].sel, az->audits[i].line, "audit", warn, ud);
    return n;
}

bool nk_authz_visible(const struct nk_authz *az, const struct nk_principal *p,
                      enum nk_adapter_type type, const struct nk_exposed *op)
{
    size_t i, j;

    for (i = 0; i < az->n_callers; i++) {
        const struct caller *k = &az->callers[i];

        if (!caller_matches(k, p))
            continue;
        for (j = 0; j < k->n_grants; j++) {
            const struct grant *g = &k->grants[j];

            if (selector_covers(&g->sel, type, op) && class_covers(g->klass, type, op) &&
                (g->scope == NULL ||
                 (p->kind == NK_PRINCIPAL_OAUTH && has_scope(p->scope, g->scope))))
                return true;
        }
    }
    return false;
}
