/* SPDX-License-Identifier: Apache-2.0 */
/* optable_group.c: adapters of one type on one address and port share a listener: grouping
 * after the port options apply, and the conflicts judged on the groups (routes, tool names,
 * a REST and an MCP listener on one port). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optable_int.h"

void nk_tool_prefixed(const char *ns, const char *tool, char out[65])
{
    size_t nl = strlen(ns), len, i;
    char *full;
    uint32_t h = 2166136261u;

    if (nl > 4 && strcmp(ns + nl - 4, "-mcp") == 0)
        nl -= 4;
    len = nl + 2 + strlen(tool);
    full = malloc(len + 1);
    if (full == NULL) {
        snprintf(out, 65, "%.64s", tool);
        return;
    }
    snprintf(full, len + 1, "%.*s__%s", (int)nl, ns, tool);
    for (i = 0; i < len; i++) {
        char c = full[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            full[i] = '_';
    }
    if (len <= 64) {
        memcpy(out, full, len + 1);
    } else {
        for (i = 0; i < len; i++) {
            h ^= (unsigned char)full[i];
            h *= 16777619u;
        }
        snprintf(out, 65, "%.55s-%08x", full, (unsigned)h);
    }
    free(full);
}

void nk_optable_free_listeners(struct nk_optable *t)
{
    size_t i, j;

    for (i = 0; i < t->n_listeners; i++) {
        struct nk_adapter *l = &t->listeners[i];
        for (j = 0; l->owns_names && j < l->n_ops; j++)
            free(l->ops[j].name);
        free(l->ops);
        free(l->ns);
        free(l->description);
        free(l->address);
        free(l->key);
        free(l->members);
    }
    free(t->listeners);
    t->listeners = NULL;
    t->n_listeners = 0;
}

const struct nk_adapter *nk_optable_find_listener(const struct nk_optable *t,
                                                  enum nk_adapter_type type, const char *key)
{
    size_t i;

    for (i = 0; t != NULL && i < t->n_listeners; i++)
        if (t->listeners[i].type == type && strcmp(t->listeners[i].key, key) == 0)
            return &t->listeners[i];
    return NULL;
}

static bool served_over_http(const struct nk_adapter *a)
{
    return a->type == NK_ADAPTER_REST || a->transport == NULL || strcmp(a->transport, "http") == 0;
}

/* The effective address and port of a under o. */
static void place(const struct nk_adapter *a, const struct nk_group_options *o, const char **addr,
                  unsigned *port)
{
    bool rest = a->type == NK_ADAPTER_REST;
    long po = rest ? o->rest_port : o->mcp_port;
    bool lg = rest ? o->rest_listen_given : o->mcp_listen_given;
    const char *la = rest ? o->rest_listen_addr : o->mcp_listen_addr;
    const char *dflt = o->listen != NULL ? o->listen : "127.0.0.1";

    *addr = o->listen_given || a->address == NULL ? dflt : a->address;
    *port = po >= 0 ? (unsigned)po : a->port;
    if (lg) {
        if (la != NULL && la[0] != '\0')
            *addr = la;
        *port = rest ? (unsigned)o->rest_listen_port : (unsigned)o->mcp_listen_port;
    }
}

struct gkey {
    char *key;
    const struct nk_exposed *e;     /* in the listener */
    const struct nk_adapter *owner; /* member it comes from */
};

static int gkey_cmp(const void *x, const void *y)
{
    const struct gkey *a = x, *b = y;
    int c = strcmp(a->key, b->key);

    if (c != 0)
        return c;
    return a->e < b->e ? -1 : a->e > b->e;
}

/* Routes or tool names served twice on l by two different members. */
static bool judge_listener(const struct nk_adapter *l, struct nk_diags *d)
{
    struct gkey *v = calloc(l->n_ops ? l->n_ops : 1, sizeof(*v));
    size_t i, n = 0;
    bool ok = true;

    if (v == NULL)
        return false;
    for (i = 0; i < l->n_ops; i++) {
        const struct nk_exposed *e = &l->ops[i];
        if (e->name == NULL || (l->type == NK_ADAPTER_REST && e->method == NULL))
            continue;
        v[n].e = e;
        v[n].key = l->type == NK_ADAPTER_REST ? nk_route_key(e) : strdup(e->name);
        if (v[n].key == NULL) {
            ok = false;
            goto out;
        }
        n++;
    }
    qsort(v, n, sizeof(*v), gkey_cmp);
    for (i = 1; i < n; i++) {
        const struct nk_exposed *e = v[i].e, *f = v[i - 1].e;
        if (strcmp(v[i].key, v[i - 1].key) != 0 || e->adapter_ns == f->adapter_ns ||
            strcmp(e->adapter_ns, f->adapter_ns) == 0)
            continue; /* one adapter's own duplicates are reported by the loader */
        if (l->type == NK_ADAPTER_REST)
            nk_diags_add(d, NK_SEV_ERROR, e->pos.file, e->pos.line, e->pos.column,
                         "route %s %s of adapter '%s' is also served by adapter '%s' at "
                         "%s:%u:%u (%s %s) on the same listener %s",
                         e->method, e->path, e->adapter_ns, f->adapter_ns, f->pos.file, f->pos.line,
                         f->pos.column, f->method, f->path, l->key);
        else
            nk_diags_add(d, NK_SEV_ERROR, e->pos.file, e->pos.line, e->pos.column,
                         "tool name '%s' of adapter '%s' is also used by adapter '%s' at "
                         "%s:%u:%u on the same endpoint %s (rename one, or serve with "
                         "--mcp-tool-prefix namespace)",
                         e->name, e->adapter_ns, f->adapter_ns, f->pos.file, f->pos.line,
                         f->pos.column, l->key);
    }
out:
    for (i = 0; i < n; i++)
        free(v[i].key);
    free(v);
    return ok;
}

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Do two adapters ask for the same inbound authentication (as written: same type, same
 * templates, same OAuth settings)? */
static bool same_auth(const struct nk_adapter *x, const struct nk_adapter *y)
{
    const struct nk_auth *a = &x->auth, *b = &y->auth;
    size_t i;

    if (a->type != b->type || a->placement != b->placement || !same_text(a->key, b->key) ||
        !same_text(a->value.src, b->value.src) || !same_text(a->token.src, b->token.src) ||
        !same_text(a->username.src, b->username.src) ||
        !same_text(a->password.src, b->password.src))
        return false;
    if (x->oauth == NULL || y->oauth == NULL)
        return x->oauth == y->oauth;
    if (!same_text(x->oauth->authorization_server_uri, y->oauth->authorization_server_uri) ||
        !same_text(x->oauth->resource, y->oauth->resource) ||
        !same_text(x->oauth->audience, y->oauth->audience) ||
        x->oauth->token_validation != y->oauth->token_validation ||
        x->oauth->n_scopes != y->oauth->n_scopes)
        return false;
    for (i = 0; i < x->oauth->n_scopes; i++)
        if (!same_text(x->oauth->scopes[i], y->oauth->scopes[i]))
            return false;
    return true;
}

/* Append the ops of a to listener l. */
static bool add_member(struct nk_adapter *l, const struct nk_adapter *a, bool prefix)
{
    const struct nk_adapter **nm = realloc(l->members, (l->n_members + 1) * sizeof(*nm));
    struct nk_exposed *no;
    size_t i;

    if (nm == NULL)
        return false;
    l->members = nm;
    l->members[l->n_members++] = a;
    if (a->n_ops == 0)
        return true;
    no = realloc(l->ops, (l->n_ops + a->n_ops) * sizeof(*no));
    if (no == NULL)
        return false;
    l->ops = no;
    for (i = 0; i < a->n_ops; i++) {
        struct nk_exposed *e = &l->ops[l->n_ops];
        *e = a->ops[i]; /* shallow: everything but a prefixed name stays the adapter's */
        e->adapter_ns = a->ns;
        if (prefix) {
            char name[65];
            nk_tool_prefixed(a->ns, a->ops[i].name ? a->ops[i].name : "", name);
            e->name = strdup(name);
            if (e->name == NULL)
                return false;
        }
        l->n_ops++;
    }
    return true;
}

enum nk_rc nk_optable_group(struct nk_optable *t, const struct nk_group_options *opts,
                            struct nk_diags *diags)
{
    struct nk_group_options none;
    size_t i, j, errors_before = diags->n_errors;

    if (opts == NULL) {
        memset(&none, 0, sizeof(none));
        none.rest_port = none.mcp_port = -1;
        opts = &none;
    }
    nk_optable_free_listeners(t);
    /* at most one listener per adapter: the array never moves once sized */
    t->listeners = calloc(t->n_adapters ? t->n_adapters : 1, sizeof(*t->listeners));
    if (t->listeners == NULL)
        return NK_ERR_NOMEM;
    for (i = 0; i < t->n_adapters; i++) {
        const struct nk_adapter *a = &t->adapters[i];
        struct nk_adapter *l = NULL;
        const char *addr;
        unsigned port;
        char *key;
        bool prefix = a->type == NK_ADAPTER_MCP && opts->tool_prefix;

        if (!served_over_http(a))
            continue;
        place(a, opts, &addr, &port);
        key = malloc(strlen(addr) + 16);
        if (key == NULL)
            return NK_ERR_NOMEM;
        sprintf(key, "%s %u", addr, port);
        for (j = 0; j < t->n_listeners && l == NULL; j++)
            if (t->listeners[j].type == a->type && strcmp(t->listeners[j].key, key) == 0)
                l = &t->listeners[j];
        if (l == NULL) {
            for (j = 0; j < t->n_listeners; j++) {
                const struct nk_adapter *o = &t->listeners[j];
                if (o->type != a->type && port != 0 && strcmp(o->key, key) == 0)
                    nk_diags_add(diags, NK_SEV_ERROR, a->pos.file, a->pos.line, a->pos.column,
                                 "%s adapter '%s' and %s adapter '%s' (%s:%u:%u) are both on "
                                 "%s port %u: REST and MCP need a port each",
                                 a->type == NK_ADAPTER_REST ? "rest" : "mcp", a->ns,
                                 o->type == NK_ADAPTER_REST ? "rest" : "mcp", o->members[0]->ns,
                                 o->members[0]->pos.file, o->members[0]->pos.line,
                                 o->members[0]->pos.column, addr, port);
            }
            l = &t->listeners[t->n_listeners++];
            l->type = a->type;
            l->port = port;
            l->address = strdup(addr);
            l->key = key;
            key = NULL;
            l->ns = strdup(a->ns);
            l->owns_names = prefix;
            if (a->description != NULL)
                l->description = strdup(a->description);
            l->pos = a->pos;
            if (l->address == NULL || l->key == NULL || l->ns == NULL)
                return NK_ERR_NOMEM;
        } else if (l->n_members == 1) {
            /* a shared listener: named after its first adapter, described by the table */
            char *ns = malloc(strlen(l->ns) + 16);
            if (ns == NULL)
                return NK_ERR_NOMEM;
            sprintf(ns, "%s+more", l->ns);
            free(l->ns);
            l->ns = ns;
            free(l->description);
            l->description = t->description != NULL ? strdup(t->description) : NULL;
        }
        free(key);
        /* One listener checks one way: every adapter on it must ask for the same inbound
         * authentication (else a caller admitted for one adapter would reach the others). */
        if (l->n_members > 0 && !same_auth(l->members[0], a)) {
            const struct nk_adapter *o = l->members[0];

            nk_diags_add(diags, NK_SEV_ERROR, a->pos.file, a->pos.line, a->pos.column,
                         "%s adapter '%s' and '%s' (%s:%u:%u) share listener %s but declare "
                         "different 'authentication': give them a port each, or the same "
                         "authentication",
                         a->type == NK_ADAPTER_REST ? "rest" : "mcp", a->ns, o->ns, o->pos.file,
                         o->pos.line, o->pos.column, l->key);
        }
        if (!add_member(l, a, prefix))
            return NK_ERR_NOMEM;
    }
    for (i = 0; i < t->n_listeners; i++)
        if (t->listeners[i].n_members > 1 && !judge_listener(&t->listeners[i], diags))
            return NK_ERR_NOMEM;
    if (diags->oom)
        return NK_ERR_NOMEM;
    return diags->n_errors > errors_before ? NK_ERR_INVALID : NK_OK;
}
