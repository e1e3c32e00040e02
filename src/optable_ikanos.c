/* SPDX-License-Identifier: Apache-2.0 */
/* optable_ikanos.c: rewrite an `ikanos:` document (1.0.0-alpha3 .. 1.0.0-beta5) into the
 * `naftiko: 1.0.0-alpha2` shape the loader reads, in place and before any check, so that one
 * loader validates and compiles both forms. Every node keeps its line:column: a keyed map entry
 * `k: {...}` becomes the list entry `{name: k, ...}` whose name is the key node itself, so a
 * diagnostic about a name points at its key. */
#include <stdlib.h>
#include <string.h>

#include "optable_int.h"

/* The ikanos versions naftikod reads; their schemas differ only by fields added along the way
 * (outputMediaType, maxBinarySize, responses in beta1; ttlMs, cacheScope, info.version in beta4).
 */
static const char *const versions[] = {"1.0.0-alpha3", "1.0.0-alpha4", "1.0.0-beta1", "1.0.0-beta2",
                                       "1.0.0-beta3",  "1.0.0-beta4",  "1.0.0-beta5"};

static size_t find_key(const struct nk_node *map, const char *key)
{
    size_t i;

    for (i = 0; map != NULL && map->kind == NK_NODE_MAPPING && i < map->n; i++)
        if (strcmp(map->pairs[i].key->str, key) == 0)
            return i;
    return (size_t)-1;
}

static struct nk_node *get(struct nk_node *map, const char *key)
{
    size_t i = find_key(map, key);

    return i == (size_t)-1 ? NULL : map->pairs[i].value;
}

static void drop_pair(struct nk_node *map, size_t i)
{
    nk_node_free(map->pairs[i].key);
    nk_node_free(map->pairs[i].value);
    memmove(&map->pairs[i], &map->pairs[i + 1], (map->n - i - 1) * sizeof(map->pairs[0]));
    map->n--;
}

static void drop_item(struct nk_node *seq, size_t i)
{
    nk_node_free(seq->items[i]);
    memmove(&seq->items[i], &seq->items[i + 1], (seq->n - i - 1) * sizeof(seq->items[0]));
    seq->n--;
}

/* Metadata ikanos added that changes nothing naftikod does (`tags`, `info.version`). */
static void drop_quiet(struct nk_node *map, const char *key)
{
    size_t i = find_key(map, key);

    if (i != (size_t)-1)
        drop_pair(map, i);
}

/* Fields ikanos added that naftikod does not run: one error each, then gone (no cascade). */
static void drop_unsupported(struct nk_loader *ld, struct nk_node *map, const char *key,
                             const char *what)
{
    size_t i = find_key(map, key);

    if (i == (size_t)-1)
        return;
    nk_ld_err(ld, map->pairs[i].key, "'%s' in ikanos %s is not supported by naftikod yet", key,
              what);
    drop_pair(map, i);
}

/* The key `from` becomes `to` (a new key node at the same place). A `to` written in the ikanos
 * document is the alpha2 spelling: an error. */
static void rename_key(struct nk_loader *ld, struct nk_node *map, const char *from, const char *to,
                       const char *what)
{
    size_t i = find_key(map, to);
    struct nk_node *k;

    if (i != (size_t)-1) {
        nk_ld_err(ld, map->pairs[i].key, "unknown field '%s' in ikanos %s (ikanos writes '%s')", to,
                  what, from);
        /* kept when `from` is absent, so that it does not also count as missing */
        if (find_key(map, from) == (size_t)-1)
            return;
        drop_pair(map, i);
    }
    i = find_key(map, from);
    if (i == (size_t)-1)
        return;
    k = nk_node_new_scalar(to, map->pairs[i].key->line, map->pairs[i].key->column);
    if (k == NULL) {
        ld->oom = true;
        return;
    }
    nk_node_free(map->pairs[i].key);
    map->pairs[i].key = k;
}

/* Each sequence entry that is an import (`from`, `import`) is reported and dropped. */
static void drop_imports(struct nk_loader *ld, struct nk_node *seq, const char *what)
{
    size_t i = 0;

    while (seq != NULL && seq->kind == NK_NODE_SEQUENCE && i < seq->n) {
        struct nk_node *it = seq->items[i];
        size_t k = find_key(it, "from");
        if (k == (size_t)-1)
            k = find_key(it, "import");
        if (k == (size_t)-1) {
            i++;
            continue;
        }
        nk_ld_err(ld, it->pairs[k].key,
                  "imported %s ('import' + 'from') are not supported by naftikod yet", what);
        if (strcmp(what, "consumers") == 0) {
            /* calls to the namespace it would have brought are not reported again */
            const struct nk_node *ns = get(it, "as") ? get(it, "as") : get(it, "import");
            if (ns != NULL && ns->kind == NK_NODE_SCALAR)
                nk_ld_broken(ld, ns->str, NULL);
        }
        drop_item(seq, i);
    }
}

/* The entry `k: v` as the list entry {name: k, ...v}: v gains a first pair whose value is the
 * key node k (a string); a null v becomes {name: k}. Takes k. */
static struct nk_node *named_entry(struct nk_loader *ld, struct nk_node *k, struct nk_node *v,
                                   const char *what)
{
    struct nk_node *name = NULL;
    struct nk_node_pair *np;
    size_t i;

    if (v != NULL && nk_node_is_null(v)) {
        struct nk_node *m = calloc(1, sizeof(*m));
        if (m == NULL)
            goto oom;
        m->kind = NK_NODE_MAPPING;
        m->line = v->line;
        m->column = v->column;
        nk_node_free(v);
        v = m;
    }
    if (v == NULL || v->kind != NK_NODE_MAPPING) {
        nk_node_free(k); /* the loader reports that v must be a mapping */
        return v;
    }
    i = find_key(v, "name");
    if (i != (size_t)-1) {
        nk_ld_err(ld, v->pairs[i].key,
                  "unknown field 'name' in ikanos %s (its name is its key, '%s')", what, k->str);
        drop_pair(v, i);
    }
    name = nk_node_new_scalar("name", k->line, k->column);
    np = malloc((v->n + 1) * sizeof(*np));
    if (name == NULL || np == NULL) {
        free(np);
        goto oom;
    }
    if (v->n > 0) /* an empty mapping has no pairs array */
        memcpy(np + 1, v->pairs, v->n * sizeof(*np));
    free(v->pairs);
    v->pairs = np;
    k->style = NK_SCALAR_QUOTED; /* a name is a string, whatever it looks like */
    v->line = k->line;           /* the entry starts at its key, as `- name:` does */
    v->column = k->column;
    np[0].key = name;
    np[0].value = k;
    v->n++;
    return v;
oom:
    ld->oom = true;
    nk_node_free(name);
    nk_node_free(k);
    return v;
}

/* map[key], a mapping keyed by name, becomes the alpha2 list of named entries; each entry then
 * goes through each (NULL: none). A list where ikanos has a keyed map is an error. */
static void keyed(struct nk_loader *ld, struct nk_node *map, const char *key, const char *what,
                  void (*each)(struct nk_loader *, struct nk_node *))
{
    struct nk_node *m = get(map, key), **items;
    size_t i;

    if (m == NULL || ld->oom)
        return;
    if (m->kind == NK_NODE_SEQUENCE) {
        nk_ld_err(ld, m,
                  "'%s' in an ikanos document is a mapping keyed by name, not a list (the list "
                  "form is naftiko: 1.0.0-alpha2)",
                  key);
        return; /* kept: read as the list it is, so that nothing else is reported for it */
    }
    if (m->kind != NK_NODE_MAPPING)
        return; /* the loader reports the type */
    items = malloc((m->n ? m->n : 1) * sizeof(*items));
    if (items == NULL) {
        ld->oom = true;
        return;
    }
    for (i = 0; i < m->n; i++)
        items[i] = named_entry(ld, m->pairs[i].key, m->pairs[i].value, what);
    free(m->pairs);
    m->pairs = NULL;
    m->kind = NK_NODE_SEQUENCE;
    m->items = items;
    for (i = 0; each != NULL && i < m->n && !ld->oom; i++)
        if (m->items[i] != NULL && m->items[i]->kind == NK_NODE_MAPPING)
            each(ld, m->items[i]);
}

/* ---- sections ---------------------------------------------------------------------------- */

static void named_output(struct nk_loader *ld, struct nk_node *o)
{
    struct nk_node *items = get(o, "items");

    /* an orchestrated array's items are named entries keyed by name (no `type` of their own) */
    if (items != NULL && items->kind == NK_NODE_MAPPING && get(items, "type") == NULL)
        keyed(ld, o, "items", "outputParameter", named_output);
}

/* outputParameters: a list (mapped, the `call` form) stays; a keyed map (mock, orchestrated)
 * becomes the list of named entries. */
static void outputs(struct nk_loader *ld, struct nk_node *map)
{
    struct nk_node *o = get(map, "outputParameters");

    if (o != NULL && o->kind == NK_NODE_MAPPING)
        keyed(ld, map, "outputParameters", "outputParameter", named_output);
}

static void mapping_entry(struct nk_loader *ld, struct nk_node *m)
{
    rename_key(ld, m, "target", "targetName", "mapping");
}

/* steps (keyed) and mappings (`target` for `targetName`) of an operation, tool or flow. */
static void orchestration(struct nk_loader *ld, struct nk_node *map)
{
    struct nk_node *m = get(map, "mappings");
    size_t i;

    keyed(ld, map, "steps", "step", NULL);
    for (i = 0; m != NULL && m->kind == NK_NODE_SEQUENCE && i < m->n && !ld->oom; i++)
        if (m->items[i]->kind == NK_NODE_MAPPING)
            mapping_entry(ld, m->items[i]);
}

static void common(struct nk_loader *ld, struct nk_node *map, const char *what)
{
    rename_key(ld, map, "display", "label", what);
    drop_quiet(map, "tags");
}

static void consumed_op(struct nk_loader *ld, struct nk_node *o)
{
    common(ld, o, "consumed operation");
    keyed(ld, o, "inputParameters", "consumed inputParameter", NULL);
    keyed(ld, o, "outputParameters", "consumed outputParameter", NULL);
    drop_unsupported(ld, o, "outputMediaType", "consumed operation");
    drop_unsupported(ld, o, "maxBinarySize", "consumed operation");
}

static void consumed_resource(struct nk_loader *ld, struct nk_node *r)
{
    common(ld, r, "consumed resource");
    keyed(ld, r, "inputParameters", "consumed inputParameter", NULL);
    keyed(ld, r, "operations", "consumed operation", consumed_op);
}

static void consumer(struct nk_loader *ld, struct nk_node *c)
{
    keyed(ld, c, "inputParameters", "consumed inputParameter", NULL);
    keyed(ld, c, "resources", "consumed resource", consumed_resource);
    drop_unsupported(ld, c, "tunnel", "consumes");
}

static void consumes(struct nk_loader *ld, struct nk_node *seq)
{
    size_t i;

    drop_imports(ld, seq, "consumers");
    for (i = 0; seq != NULL && seq->kind == NK_NODE_SEQUENCE && i < seq->n && !ld->oom; i++)
        consumer(ld, seq->items[i]);
}

static void rest_op(struct nk_loader *ld, struct nk_node *o)
{
    common(ld, o, "REST operation");
    keyed(ld, o, "inputParameters", "REST inputParameter", NULL);
    outputs(ld, o);
    orchestration(ld, o);
    drop_unsupported(ld, o, "responses", "REST operation");
    drop_unsupported(ld, o, "responseBinary", "REST operation");
}

static void rest_resource(struct nk_loader *ld, struct nk_node *r)
{
    common(ld, r, "REST resource");
    keyed(ld, r, "inputParameters", "REST inputParameter", NULL);
    keyed(ld, r, "operations", "REST operation", rest_op);
}

static void tool(struct nk_loader *ld, struct nk_node *t)
{
    common(ld, t, "MCP tool");
    keyed(ld, t, "inputParameters", "MCP tool inputParameter", NULL);
    outputs(ld, t);
    orchestration(ld, t);
}

static void exposes(struct nk_loader *ld, struct nk_node *seq)
{
    size_t i;

    drop_imports(ld, seq, "adapters");
    for (i = 0; seq != NULL && seq->kind == NK_NODE_SEQUENCE && i < seq->n && !ld->oom; i++) {
        struct nk_node *a = seq->items[i], *type = get(a, "type");
        if (type == NULL || type->kind != NK_NODE_SCALAR)
            continue;
        drop_unsupported(ld, a, "maxBinarySize", "adapter");
        if (strcmp(type->str, "rest") == 0) {
            keyed(ld, a, "resources", "REST resource", rest_resource);
        } else if (strcmp(type->str, "mcp") == 0) {
            drop_unsupported(ld, a, "ttlMs", "MCP adapter");
            drop_unsupported(ld, a, "cacheScope", "MCP adapter");
            keyed(ld, a, "tools", "MCP tool", tool);
        }
    }
}

static void flow(struct nk_loader *ld, struct nk_node *f)
{
    drop_quiet(f, "tags");
    keyed(ld, f, "inputParameters", "flow inputParameter", NULL);
    outputs(ld, f);
    orchestration(ld, f);
    drop_unsupported(ld, f, "outputMediaType", "flow");
}

static void aggregates(struct nk_loader *ld, struct nk_node *seq)
{
    size_t i;

    drop_imports(ld, seq, "aggregates");
    for (i = 0; seq != NULL && seq->kind == NK_NODE_SEQUENCE && i < seq->n && !ld->oom; i++) {
        struct nk_node *a = seq->items[i];
        rename_key(ld, a, "display", "label", "aggregate");
        rename_key(ld, a, "flows", "functions", "aggregate");
        keyed(ld, a, "functions", "flow", flow);
    }
}

/* binds entries are the same in both forms, but an ikanos one may be an import */
static void binds(struct nk_loader *ld, struct nk_node *seq)
{
    drop_imports(ld, seq, "binds");
}

static bool known_version(const struct nk_node *v)
{
    size_t i;

    for (i = 0; v->kind == NK_NODE_SCALAR && i < sizeof(versions) / sizeof(versions[0]); i++)
        if (strcmp(v->str, versions[i]) == 0)
            return true;
    return false;
}

void nk_ikanos_translate(struct nk_loader *ld, struct nk_node **rootp)
{
    struct nk_node *root = *rootp, *cap, *v, *nv;
    size_t i = find_key(root, "ikanos");

    if (i == (size_t)-1)
        return;
    v = root->pairs[i].value;
    if (find_key(root, "naftiko") != (size_t)-1) {
        nk_ld_err(ld, root->pairs[i].key,
                  "a document has either 'naftiko' or 'ikanos' as its version, not both");
        nk_node_free(root);
        *rootp = NULL;
        return;
    }
    if (!known_version(v)) {
        /* one line, no cascade: the rest of the document is not read */
        nk_ld_err(ld, v,
                  "unsupported ikanos version '%s' (naftikod reads ikanos 1.0.0-alpha3 to "
                  "1.0.0-beta5, and naftiko 1.0.0-alpha2)",
                  v->kind == NK_NODE_SCALAR ? v->str : "?");
        nk_node_free(root);
        *rootp = NULL;
        return;
    }
    nv = nk_node_new_scalar("1.0.0-alpha2", v->line, v->column);
    if (nv == NULL) {
        ld->oom = true;
        return;
    }
    nk_node_free(v);
    root->pairs[i].value = nv;
    rename_key(ld, root, "ikanos", "naftiko", "document");
    v = get(root, "info");
    if (v != NULL && v->kind == NK_NODE_MAPPING) {
        rename_key(ld, v, "display", "label", "info");
        drop_quiet(v, "version");
    }
    binds(ld, get(root, "binds"));
    consumes(ld, get(root, "consumes"));
    if (find_key(root, "exposes") != (size_t)-1)
        drop_unsupported(ld, root, "exposes", "document root (a shared exposes file)");
    if (find_key(root, "aggregates") != (size_t)-1)
        drop_unsupported(ld, root, "aggregates", "document root (a shared aggregates file)");
    cap = get(root, "capability");
    if (cap == NULL || cap->kind != NK_NODE_MAPPING)
        return;
    binds(ld, get(cap, "binds"));
    consumes(ld, get(cap, "consumes"));
    exposes(ld, get(cap, "exposes"));
    aggregates(ld, get(cap, "aggregates"));
}
