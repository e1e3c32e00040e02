/* SPDX-License-Identifier: Apache-2.0 */
/* optable.c: table lifetime, loading of documents, and the cross-document compile checks. */
#include "naftikod/optable.h"

#include <dirent.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "naftikod/sha256.h"
#include "naftikod/spec.h"
#include "optable_int.h"

const char *nk_type_name(enum nk_type t)
{
    switch (t) {
    case NK_TYPE_ANY:
        return "any";
    case NK_TYPE_STRING:
        return "string";
    case NK_TYPE_NUMBER:
        return "number";
    case NK_TYPE_INTEGER:
        return "integer";
    case NK_TYPE_BOOLEAN:
        return "boolean";
    case NK_TYPE_ARRAY:
        return "array";
    case NK_TYPE_OBJECT:
        return "object";
    }
    return "any";
}

static bool of_type(enum nk_type t, json_t *v)
{
    switch (t) {
    case NK_TYPE_ANY:
        return true;
    case NK_TYPE_STRING:
        return json_is_string(v);
    case NK_TYPE_NUMBER:
        return json_is_number(v);
    case NK_TYPE_INTEGER:
        return json_is_integer(v);
    case NK_TYPE_BOOLEAN:
        return json_is_boolean(v);
    case NK_TYPE_ARRAY:
        return json_is_array(v);
    case NK_TYPE_OBJECT:
        return json_is_object(v);
    }
    return false;
}

json_t *nk_type_coerce(enum nk_type t, json_t *v, bool *oom)
{
    json_t *r = NULL, *parsed = NULL;
    char *text;
    double d;

    *oom = false;
    if (v == NULL)
        return NULL;
    if (json_is_null(v) || of_type(t, v))
        return json_incref(v);
    if (t == NK_TYPE_INTEGER && json_is_real(v)) {
        /* JSON does not tell 5 from 5.0 */
        d = json_real_value(v);
        if (d != (double)(json_int_t)d || d > 9007199254740992.0 || d < -9007199254740992.0)
            return NULL;
        r = json_integer((json_int_t)d);
        *oom = r == NULL;
        return r;
    }
    if (t == NK_TYPE_STRING) {
        if (!json_is_number(v) && !json_is_boolean(v))
            return NULL;
        text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        r = text != NULL ? json_string(text) : NULL;
        free(text);
        *oom = r == NULL;
        return r;
    }
    if (!json_is_string(v))
        return NULL;
    parsed = json_loadb(json_string_value(v), json_string_length(v),
                        JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
    if (parsed == NULL || json_is_null(parsed))
        goto out;
    if (of_type(t, parsed)) {
        r = parsed;
        parsed = NULL;
    } else if (t == NK_TYPE_INTEGER && json_is_real(parsed)) {
        r = nk_type_coerce(t, parsed, oom);
    }
out:
    json_decref(parsed);
    return r;
}

const char *nk_in_name(enum nk_in in)
{
    switch (in) {
    case NK_IN_QUERY:
        return "query";
    case NK_IN_PATH:
        return "path";
    case NK_IN_HEADER:
        return "header";
    case NK_IN_COOKIE:
        return "cookie";
    case NK_IN_BODY:
        return "body";
    case NK_IN_ENVIRONMENT:
        return "environment";
    }
    return "query";
}

/* ---- freeing ----------------------------------------------------------------------------- */

static void free_outmap(struct nk_outmap *m)
{
    size_t i;

    free(m->name);
    nk_jsonpath_free(m->mapping);
    if (m->value != NULL) {
        nk_tmpl_cleanup(m->value);
        free(m->value);
    }
    json_decref(m->konst);
    for (i = 0; i < m->n_props; i++)
        free_outmap(&m->props[i]);
    free(m->props);
    if (m->items != NULL) {
        free_outmap(m->items);
        free(m->items);
    }
}

static void free_auth(struct nk_auth *a)
{
    free(a->key);
    nk_tmpl_cleanup(&a->value);
    nk_tmpl_cleanup(&a->token);
    nk_tmpl_cleanup(&a->username);
    nk_tmpl_cleanup(&a->password);
}

const char *nk_auth_type_name(enum nk_auth_type t)
{
    switch (t) {
    case NK_AUTH_APIKEY:
        return "apikey";
    case NK_AUTH_BEARER:
        return "bearer";
    case NK_AUTH_BASIC:
        return "basic";
    case NK_AUTH_DIGEST:
        return "digest";
    case NK_AUTH_OAUTH2:
        return "oauth2";
    case NK_AUTH_NONE:
    default:
        return "none";
    }
}

static void free_oauth(struct nk_oauth_conf *o)
{
    size_t i;

    if (o == NULL)
        return;
    free(o->authorization_server_uri);
    free(o->resource);
    for (i = 0; i < o->n_scopes; i++)
        free(o->scopes[i]);
    free(o->scopes);
    free(o->audience);
    free(o);
}

static void free_operation(struct nk_operation *o)
{
    size_t i;

    free(o->name);
    free(o->qname);
    free(o->method);
    free(o->description);
    free(o->resource);
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
    free(o->output_raw_format);
    json_decref(o->body_template);
    for (i = 0; i < o->n_body_vars; i++)
        free(o->body_vars[i].name);
    free(o->body_vars);
}

static void free_steps(struct nk_exposed *e)
{
    size_t i, j;

    for (i = 0; i < e->n_steps; i++) {
        struct nk_step *st = &e->steps[i];
        free(st->name);
        for (j = 0; j < st->n_bindings; j++)
            nk_tmpl_cleanup(&st->bindings[j].tmpl);
        free(st->bindings);
        free(st->match);
        free(st->index_path);
        nk_jsonpath_free(st->value_ref.path);
        nk_tmpl_cleanup(&st->value_tmpl);
        for (j = 0; j < st->n_fields; j++)
            free(st->fields[j]);
        free(st->fields);
    }
    free(e->steps);
    for (i = 0; i < e->n_mappings; i++) {
        free(e->mappings[i].target);
        nk_jsonpath_free(e->mappings[i].value.path);
    }
    free(e->mappings);
}

static void free_exposed(struct nk_exposed *e)
{
    size_t i;

    free(e->name);
    free(e->title);
    free(e->description);
    for (i = 0; i < e->n_args; i++) {
        free(e->args[i].name);
        free(e->args[i].description);
        free(e->args[i].pattern);
        if (e->args[i].re != NULL)
            regfree(e->args[i].re);
        free(e->args[i].re);
        json_decref(e->args[i].schema);
    }
    free(e->args);
    for (i = 0; i < e->n_bindings; i++)
        nk_tmpl_cleanup(&e->bindings[i].tmpl);
    free(e->bindings);
    free_steps(e);
    if (e->output != NULL) {
        free_outmap(e->output);
        free(e->output);
    }
    free(e->method);
    free(e->path);
    for (i = 0; i < e->n_route; i++)
        free(e->route[i].text);
    free(e->route);
    nk_tmpl_cleanup(&e->path_tmpl);
    json_decref(e->input_schema);
}

void nk_optable_destroy(struct nk_optable *t)
{
    size_t i, j;

    if (t == NULL)
        return;
    for (i = 0; i < t->n_consumers; i++) {
        struct nk_consumer *c = &t->consumers[i];
        free(c->ns);
        free(c->description);
        nk_tmpl_cleanup(&c->base_uri);
        free_auth(&c->auth);
        for (j = 0; j < c->n_headers; j++) {
            free(c->headers[j].name);
            nk_tmpl_cleanup(&c->headers[j].value);
        }
        free(c->headers);
        for (j = 0; j < c->n_ops; j++)
            free_operation(&c->ops[j]);
        free(c->ops);
    }
    free(t->consumers);
    for (i = 0; i < t->n_adapters; i++) {
        struct nk_adapter *a = &t->adapters[i];
        free(a->ns);
        free(a->description);
        free(a->address);
        free(a->transport);
        free_auth(&a->auth);
        free_oauth(a->oauth);
        for (j = 0; j < a->n_ops; j++)
            free_exposed(&a->ops[j]);
        free(a->ops);
        for (j = 0; j < a->n_forwards; j++) {
            size_t k;
            free(a->forwards[j].path);
            free(a->forwards[j].prefix);
            for (k = 0; k < a->forwards[j].n_trusted; k++)
                free(a->forwards[j].trusted[k]);
            free(a->forwards[j].trusted);
            for (k = 0; k < a->forwards[j].n_headers; k++) {
                free(a->forwards[j].headers[k].name);
                nk_tmpl_cleanup(&a->forwards[j].headers[k].value);
            }
            free(a->forwards[j].headers);
        }
        free(a->forwards);
    }
    free(t->adapters);
    nk_optable_free_listeners(t);
    for (i = 0; i < t->n_binds; i++) {
        free(t->binds[i].ns);
        free(t->binds[i].name);
        free(t->binds[i].source);
        free(t->binds[i].location);
    }
    free(t->binds);
    for (i = 0; i < t->n_files; i++)
        free(t->files[i]);
    free(t->files);
    free(t->label);
    free(t->description);
    free(t);
}

struct nk_optable *nk_optable_ref(struct nk_optable *t)
{
    if (t != NULL)
        __atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
    return t;
}

void nk_optable_unref(struct nk_optable *t)
{
    if (t == NULL)
        return;
    if (__atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
        nk_optable_destroy(t);
}

const struct nk_operation *nk_optable_find_op(const struct nk_optable *t, const char *qname)
{
    size_t i, j;

    if (t == NULL || qname == NULL)
        return NULL;
    for (i = 0; i < t->n_consumers; i++)
        for (j = 0; j < t->consumers[i].n_ops; j++)
            if (strcmp(t->consumers[i].ops[j].qname, qname) == 0)
                return &t->consumers[i].ops[j];
    return NULL;
}

const struct nk_exposed *nk_adapter_find_tool(const struct nk_adapter *a, const char *name)
{
    size_t i;

    if (a == NULL || name == NULL)
        return NULL;
    for (i = 0; i < a->n_ops; i++)
        if (strcmp(a->ops[i].name, name) == 0)
            return &a->ops[i];
    return NULL;
}

/* ---- loading ----------------------------------------------------------------------------- */

/* The table's fingerprint: the documents' bytes, not a canonical form of what they compile to,
 * because that is what an operator rolls out (a ConfigMap, a package) and compares with
 * sha256sum; a comment-only edit changes it, which only costs a needless "changed". */
static void fingerprint(const char *const *bufs, const size_t *lens, size_t n, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    struct nk_sha256 c;
    unsigned char d[NK_SHA256_LEN], be[8];
    size_t i, j;

    nk_sha256_init(&c);
    for (i = 0; i < n; i++) {
        uint64_t len = bufs[i] != NULL ? (uint64_t)lens[i] : 0;

        for (j = 0; j < 8; j++)
            be[j] = (unsigned char)(len >> (56 - 8 * j));
        nk_sha256_update(&c, be, sizeof(be));
        if (bufs[i] != NULL)
            nk_sha256_update(&c, bufs[i], lens[i]);
    }
    nk_sha256_final(&c, d);
    for (i = 0; i < 8; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[16] = '\0';
}

static enum nk_rc load_docs(const char *const *names, const char *const *bufs, const size_t *lens,
                            size_t n, const struct nk_load_options *opts, struct nk_diags *diags,
                            size_t errors_before, struct nk_optable **out)
{
    struct nk_optable *t = NULL;
    struct nk_node **roots = NULL;
    struct nk_loader ld;
    enum nk_rc rc = NK_OK;
    size_t i;
    int pass;

    memset(&ld, 0, sizeof(ld));
    t = calloc(1, sizeof(*t));
    roots = calloc(n ? n : 1, sizeof(*roots));
    if (t == NULL || roots == NULL)
        goto oom;
    t->refs = 1;
    t->files = calloc(n ? n : 1, sizeof(*t->files));
    if (t->files == NULL)
        goto oom;
    for (i = 0; i < n; i++) {
        t->files[i] = strdup(names[i] ? names[i] : "<input>");
        if (t->files[i] == NULL)
            goto oom;
        t->n_files++;
    }
    fingerprint(bufs, lens, n, t->fingerprint);
    ld.t = t;
    ld.diags = diags;
    ld.strict = opts != NULL && opts->strict;
    for (i = 0; i < n; i++) {
        struct nk_error err;
        enum nk_rc prc;
        if (bufs[i] == NULL)
            continue; /* read error already reported */
        memset(&err, 0, sizeof(err));
        prc = nk_spec_parse(bufs[i], lens[i], &roots[i], &err);
        if (prc == NK_ERR_NOMEM)
            goto oom;
        if (prc != NK_OK)
            nk_diags_add(diags, NK_SEV_ERROR, t->files[i], err.line, err.column, "%s", err.msg);
    }
    for (i = 0; i < n; i++) {
        if (roots[i] == NULL)
            continue;
        ld.file = t->files[i];
        nk_ikanos_translate(&ld, &roots[i]);
        if (ld.oom)
            goto oom;
    }
    /* Pass 0: document shape, info and binds; pass 1: consumers of every file (templates
     * may name binds of any file); pass 2: exposes, compiled against every consumer so
     * `call` can cross files. */
    for (pass = 0; pass < 3; pass++) {
        for (i = 0; i < n; i++) {
            if (roots[i] == NULL)
                continue;
            ld.file = t->files[i];
            nk_load_document(&ld, roots[i], pass);
            if (ld.oom)
                goto oom;
        }
    }
    nk_check_table(&ld);
    if (ld.oom || diags->oom)
        goto oom;
    nk_diags_sort(diags);
    if (diags->n_errors > errors_before) {
        rc = NK_ERR_INVALID;
        goto out;
    }
    *out = t;
    t = NULL;
    goto out;
oom:
    rc = NK_ERR_NOMEM;
    nk_diags_sort(diags);
out:
    nk_loader_cleanup(&ld);
    for (i = 0; i < n && roots != NULL; i++)
        nk_node_free(roots[i]);
    free(roots);
    nk_optable_destroy(t);
    return rc;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool yaml_name(const char *name)
{
    size_t n = strlen(name);

    if (name[0] == '.')
        return false;
    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

/* files[0..n) with every directory replaced by its *.yaml and *.yml files (sorted by name, not
 * recursive) into *out (owned strings). An unreadable directory is reported. */
static enum nk_rc expand_dirs(const char *const *files, size_t n, struct nk_diags *diags,
                              char ***out, size_t *n_out)
{
    char **v = NULL, **nv;
    size_t nv_n = 0, cap = 0, i;

    for (i = 0; i < n; i++) {
        struct stat st;
        DIR *d;
        struct dirent *e;
        size_t first = nv_n;

        if (stat(files[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            if (nv_n == cap) {
                cap = cap ? cap * 2 : 16;
                nv = realloc(v, cap * sizeof(*v));
                if (nv == NULL)
                    goto oom;
                v = nv;
            }
            if ((v[nv_n] = strdup(files[i])) == NULL)
                goto oom;
            nv_n++;
            continue;
        }
        d = opendir(files[i]);
        if (d == NULL) {
            nk_diags_add(diags, NK_SEV_ERROR, files[i], 0, 0, "cannot read the directory: %s",
                         strerror(errno));
            continue;
        }
        while ((e = readdir(d)) != NULL) {
            char *path;
            if (!yaml_name(e->d_name))
                continue;
            if (nv_n == cap) {
                cap = cap ? cap * 2 : 16;
                nv = realloc(v, cap * sizeof(*v));
                if (nv == NULL) {
                    closedir(d);
                    goto oom;
                }
                v = nv;
            }
            path = malloc(strlen(files[i]) + strlen(e->d_name) + 2);
            if (path == NULL) {
                closedir(d);
                goto oom;
            }
            sprintf(path, "%s%s%s", files[i],
                    files[i][0] != '\0' && files[i][strlen(files[i]) - 1] == '/' ? "" : "/",
                    e->d_name);
            v[nv_n++] = path;
        }
        closedir(d);
        qsort(v + first, nv_n - first, sizeof(*v), str_cmp);
    }
    *out = v;
    *n_out = nv_n;
    return NK_OK;
oom:
    for (i = 0; i < nv_n; i++)
        free(v[i]);
    free(v);
    return NK_ERR_NOMEM;
}

static enum nk_rc load_files(const char *const *files, size_t n, const struct nk_load_options *opts,
                             struct nk_diags *diags, struct nk_optable **out);

enum nk_rc nk_optable_load(const char *const *files, size_t n, const struct nk_load_options *opts,
                           struct nk_diags *diags, struct nk_optable **out)
{
    char **v = NULL;
    size_t nv = 0, i, errors_before = diags->n_errors;
    enum nk_rc rc = expand_dirs(files, n, diags, &v, &nv);

    if (rc != NK_OK)
        return rc;
    if (diags->n_errors > errors_before)
        rc = NK_ERR_IO;
    else
        rc = load_files((const char *const *)v, nv, opts, diags, out);
    for (i = 0; i < nv; i++)
        free(v[i]);
    free(v);
    return rc;
}

static enum nk_rc load_files(const char *const *files, size_t n, const struct nk_load_options *opts,
                             struct nk_diags *diags, struct nk_optable **out)
{
    char **bufs = NULL;
    size_t *lens = NULL;
    enum nk_rc rc = NK_OK;
    bool io = false;
    size_t i, errors_before = diags->n_errors;

    bufs = calloc(n ? n : 1, sizeof(*bufs));
    lens = calloc(n ? n : 1, sizeof(*lens));
    if (bufs == NULL || lens == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < n; i++) {
        struct nk_error err;
        enum nk_rc frc;
        memset(&err, 0, sizeof(err));
        frc = nk_spec_read_file(files[i], &bufs[i], &lens[i], &err);
        if (frc == NK_ERR_NOMEM) {
            rc = frc;
            goto out;
        }
        if (frc != NK_OK) {
            /* a file too large has a position (its start); an unreadable one has none */
            nk_diags_add(diags, NK_SEV_ERROR, files[i], frc == NK_ERR_TOO_LARGE ? 1 : 0,
                         frc == NK_ERR_TOO_LARGE ? 1 : 0, "%s", err.msg);
            io = io || frc == NK_ERR_IO;
        }
    }
    rc = load_docs(files, (const char *const *)bufs, lens, n, opts, diags, errors_before, out);
    if (rc == NK_ERR_INVALID && io)
        rc = NK_ERR_IO;
out:
    for (i = 0; i < n && bufs != NULL; i++)
        free(bufs[i]);
    free(bufs);
    free(lens);
    return rc;
}

enum nk_rc nk_optable_load_mem(const char *name, const char *buf, size_t len,
                               const struct nk_load_options *opts, struct nk_diags *diags,
                               struct nk_optable **out)
{
    const char *names[1];
    const char *bufs[1];
    size_t lens[1];

    names[0] = name;
    bufs[0] = buf;
    lens[0] = len;
    return load_docs(names, bufs, lens, 1, opts, diags, diags->n_errors, out);
}
