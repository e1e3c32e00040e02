/* SPDX-License-Identifier: Apache-2.0 */
/* openapi.c: the OpenAPI 3.1 document of a REST adapter, built from the operation table. */
#include "naftikod/openapi.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An exposed path as OpenAPI writes it: `{{id}}` becomes `{id}`. New string or NULL (OOM). */
static char *openapi_path(const char *path)
{
    char *out = malloc(strlen(path) + 1);
    size_t i, o = 0;

    if (out == NULL)
        return NULL;
    for (i = 0; path[i] != '\0'; i++) {
        if ((path[i] == '{' && path[i + 1] == '{') || (path[i] == '}' && path[i + 1] == '}'))
            i++;
        out[o++] = path[i];
    }
    out[o] = '\0';
    return out;
}

static const char *type_name(enum nk_type t)
{
    /* JSON Schema has no name for "any": the caller leaves "type" out. */
    return t == NK_TYPE_ANY ? NULL : nk_type_name(t);
}

/* The schema of one argument: the table's own, else one from its type. */
static json_t *arg_schema(const struct nk_arg *arg)
{
    json_t *s = arg->schema != NULL ? json_deep_copy(arg->schema) : json_object();

    if (s == NULL)
        return NULL;
    if (arg->schema == NULL && type_name(arg->type) != NULL)
        json_object_set_new(s, "type", json_string(type_name(arg->type)));
    if (arg->pattern != NULL && json_object_get(s, "pattern") == NULL)
        json_object_set_new(s, "pattern", json_string(arg->pattern));
    if (json_is_string(json_object_get(s, "type")) &&
        strcmp(json_string_value(json_object_get(s, "type")), "array") == 0 &&
        json_object_get(s, "items") == NULL)
        json_object_set_new(s, "items", json_object());
    /* The description travels on the parameter itself. */
    json_object_del(s, "description");
    return s;
}

static const char *in_name(enum nk_in in)
{
    switch (in) {
    case NK_IN_PATH:
        return "path";
    case NK_IN_HEADER:
        return "header";
    case NK_IN_COOKIE:
        return "cookie";
    case NK_IN_QUERY:
    default:
        return "query";
    }
}

static json_t *build_operation(const struct nk_adapter *a, const struct nk_exposed *op,
                               const char *oapath, json_t *used_ids)
{
    json_t *o = json_object(), *params = json_array(), *body_props = NULL, *body_req = NULL;
    json_t *rb = NULL, *body_schema = NULL;
    const struct nk_arg *body_arg = NULL;
    char base[200], id[256];
    size_t i, n_body = 0;
    const char *p;
    int k;

    if (o == NULL || params == NULL)
        goto fail;
    /* operationId: the route name, URL-safe and unique in the document; on a listener shared
     * by many adapters a name taken already is prefixed with its adapter's namespace. */
    snprintf(base, sizeof(base), "%s", op->name);
    if (op->adapter_ns != NULL && json_object_get(used_ids, op->name) != NULL)
        snprintf(base, sizeof(base), "%s.%s", op->adapter_ns, op->name);
    for (i = 0; base[i] != '\0'; i++)
        if (!isalnum((unsigned char)base[i]) && strchr("._~-", base[i]) == NULL)
            base[i] = '_';
    snprintf(id, sizeof(id), "%s", base);
    for (k = 2; json_object_get(used_ids, id) != NULL && k < 1000000; k++)
        snprintf(id, sizeof(id), "%s-%d", base, k);
    json_object_set_new(used_ids, id, json_true());
    json_object_set_new(o, "operationId", json_string(id));
    json_object_set_new(o, "summary", json_string(op->title ? op->title : op->name));
    json_object_set_new(
        o, "description",
        json_string(op->description && op->description[0] ? op->description : op->name));
    json_object_set_new(o, "tags", json_pack("[s]", op->adapter_ns ? op->adapter_ns : a->ns));

    for (i = 0; i < op->n_args; i++) {
        const struct nk_arg *arg = &op->args[i];
        json_t *pm;

        if (arg->in == NK_IN_BODY) {
            n_body++;
            body_arg = arg;
            continue;
        }
        pm = json_pack("{s:s,s:s,s:b,s:o}", "name", arg->name, "in", in_name(arg->in), "required",
                       arg->in == NK_IN_PATH ? 1 : (int)arg->required, "schema", arg_schema(arg));
        if (pm == NULL)
            goto fail;
        if (arg->description != NULL && arg->description[0] != '\0')
            json_object_set_new(pm, "description", json_string(arg->description));
        json_array_append_new(params, pm);
    }
    /* Every {var} of the path must be declared (spectral path-params). */
    for (p = strchr(oapath, '{'); p != NULL; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        bool found = false;
        char name[128];

        if (end == NULL || (size_t)(end - p - 1) >= sizeof(name))
            break;
        memcpy(name, p + 1, (size_t)(end - p - 1));
        name[end - p - 1] = '\0';
        for (i = 0; i < op->n_args; i++)
            if (op->args[i].in == NK_IN_PATH && strcmp(op->args[i].name, name) == 0)
                found = true;
        if (!found)
            json_array_append_new(params,
                                  json_pack("{s:s,s:s,s:b,s:{s:s}}", "name", name, "in", "path",
                                            "required", 1, "schema", "type", "string"));
    }
    if (json_array_size(params) > 0)
        json_object_set(o, "parameters", params);

    if (n_body == 1) {
        body_schema = arg_schema(body_arg);
        rb = json_pack("{s:b,s:{s:{s:o}}}", "required", (int)body_arg->required, "content",
                       "application/json", "schema", body_schema);
        if (rb != NULL && body_arg->description != NULL)
            json_object_set_new(rb, "description", json_string(body_arg->description));
    } else if (n_body > 1) {
        /* Several body arguments: each is a property of one JSON object. */
        body_props = json_object();
        body_req = json_array();
        for (i = 0; i < op->n_args; i++) {
            const struct nk_arg *arg = &op->args[i];
            json_t *s;
            if (arg->in != NK_IN_BODY)
                continue;
            s = arg_schema(arg);
            if (s != NULL && arg->description != NULL)
                json_object_set_new(s, "description", json_string(arg->description));
            json_object_set_new(body_props, arg->name, s);
            if (arg->required)
                json_array_append_new(body_req, json_string(arg->name));
        }
        rb = json_pack("{s:b,s:{s:{s:{s:s,s:O,s:O}}}}", "required", json_array_size(body_req) > 0,
                       "content", "application/json", "schema", "type", "object", "properties",
                       body_props, "required", body_req);
    }
    if (rb != NULL)
        json_object_set_new(o, "requestBody", rb);

    json_object_set_new(
        o, "responses",
        json_pack("{s:{s:s,s:{s:{s:{}}}},s:{s:s,s:{s:{s:{s:s}}}}}", "200", "description",
                  "The upstream answer, mapped by the operation's outputParameters.", "content",
                  "application/json", "schema", "default", "description",
                  "An error: a problem document (RFC 9457) from naftikod, or the upstream's own "
                  "status and body passed through unchanged.",
                  "content", "application/problem+json", "schema", "$ref",
                  "#/components/schemas/Problem"));
    json_decref(params);
    json_decref(body_props);
    json_decref(body_req);
    return o;
fail:
    json_decref(o);
    json_decref(params);
    return NULL;
}

json_t *nk_openapi_build(const struct nk_optable *t, const struct nk_adapter *a,
                         const char *server_url)
{
    json_t *doc = NULL, *paths = NULL, *used = NULL, *info = NULL;
    const char *title = t->label != NULL && t->label[0] ? t->label : a->ns;
    const char *desc = a->description != NULL && a->description[0]   ? a->description
                       : t->description != NULL && t->description[0] ? t->description
                                                                     : a->ns;
    size_t i;

    paths = json_object();
    used = json_object();
    info = json_pack("{s:s,s:s,s:s,s:{s:s}}", "title", title, "version", NK_VERSION, "description",
                     desc, "contact", "name", "naftikod");
    if (paths == NULL || used == NULL || info == NULL)
        goto out;
    for (i = 0; i < a->n_ops; i++) {
        const struct nk_exposed *op = &a->ops[i];
        char *oapath = openapi_path(op->path != NULL ? op->path : "/");
        char method[16];
        json_t *item, *o;
        size_t k;

        if (oapath == NULL)
            goto out;
        for (k = 0; op->method[k] != '\0' && k + 1 < sizeof(method); k++)
            method[k] = (char)tolower((unsigned char)op->method[k]);
        method[k] = '\0';
        item = json_object_get(paths, oapath);
        if (item == NULL) {
            item = json_object();
            json_object_set_new(paths, oapath, item);
        }
        o = build_operation(a, op, oapath, used);
        if (o == NULL || item == NULL) {
            json_decref(o);
            free(oapath);
            goto out;
        }
        json_object_set_new(item, method, o);
        free(oapath);
    }
    doc = json_pack(
        "{s:s,s:O,s:[{s:s}],s:[{s:s,s:s}],s:O,s:{s:{s:{s:s,s:s,s:{s:{s:s,s:s},s:{s:s},s:{s:s,"
        "s:i,s:i},s:{s:s}},s:[s,s]}}}}",
        "openapi", "3.1.0", "info", info, "servers", "url",
        server_url != NULL && server_url[0] ? server_url : "/", "tags", "name", a->ns,
        "description", desc, "paths", paths, "components", "schemas", "Problem", "type", "object",
        "description", "RFC 9457 problem details.", "properties", "type", "type", "string",
        "description", "A URI reference naming the problem type.", "title", "type", "string",
        "status", "type", "integer", "minimum", 100, "maximum", 599, "detail", "type", "string",
        "required", "title", "status");
    if (doc != NULL && a->n_members > 1) { /* a shared listener: one tag per adapter */
        json_t *tags = json_array();
        for (i = 0; tags != NULL && i < a->n_members; i++) {
            const struct nk_adapter *m = a->members[i];
            json_array_append_new(
                tags,
                json_pack("{s:s,s:s}", "name", m->ns, "description",
                          m->description != NULL && m->description[0] ? m->description : m->ns));
        }
        if (tags != NULL)
            json_object_set_new(doc, "tags", tags);
    }
out:
    json_decref(paths);
    json_decref(used);
    json_decref(info);
    return doc;
}
