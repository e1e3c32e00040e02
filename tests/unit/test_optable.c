/* SPDX-License-Identifier: Apache-2.0 */
/* test_optable.c: the compiled table of the shipped StackRox capability, and load edge cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/optable.h"

#define SEED NK_SOURCE_DIR "/capabilities/stackrox-apitokenservice.yaml"

static struct nk_optable *load_seed(void)
{
    const char *files[] = {SEED};
    struct nk_diags d;
    struct nk_optable *t = NULL;

    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 1, NULL, &d, &t), NK_OK);
    assert_int_equal(d.n_errors, 0);
    /* '{{env.STACKROX_API_KEY}}' has no scheme in its text, but it is judged once resolved
     * (nk_context_new), not here: no warning (issue 17, item 16). */
    assert_int_equal(d.n_warnings, 0);
    nk_diags_cleanup(&d);
    assert_non_null(t);
    return t;
}

static const struct nk_arg *arg(const struct nk_exposed *e, const char *name)
{
    size_t i;

    for (i = 0; i < e->n_args; i++)
        if (strcmp(e->args[i].name, name) == 0)
            return &e->args[i];
    return NULL;
}

static const struct nk_exposed *rest_op(const struct nk_adapter *a, const char *method,
                                        const char *path)
{
    size_t i;

    for (i = 0; i < a->n_ops; i++)
        if (strcmp(a->ops[i].method, method) == 0 && strcmp(a->ops[i].path, path) == 0)
            return &a->ops[i];
    return NULL;
}

static void test_seed_consumer(void **state)
{
    struct nk_optable *t = load_seed();
    const struct nk_consumer *c;
    const struct nk_operation *o;

    (void)state;
    assert_int_equal(t->n_consumers, 1);
    c = &t->consumers[0];
    assert_string_equal(c->ns, "stackrox-apitokenservice");
    assert_int_equal(c->n_ops, 4);
    assert_string_equal(c->base_uri.src, "https://{central-host}");
    assert_int_equal(c->auth.type, NK_AUTH_APIKEY);
    assert_string_equal(c->auth.key, "Authorization");
    assert_int_equal(c->auth.placement, NK_PLACE_HEADER);
    assert_string_equal(c->auth.value.src, "{{env.STACKROX_API_KEY}}");
    assert_int_equal(t->n_binds, 1);
    assert_string_equal(t->binds[0].ns, "env");
    assert_string_equal(t->binds[0].name, "STACKROX_API_KEY");
    assert_string_equal(t->binds[0].source, "STACKROX_API_KEY");
    assert_null(t->binds[0].location);
    assert_string_equal(t->label, "API Reference — APITokenService");

    o = nk_optable_find_op(t, "stackrox-apitokenservice.revoketoken");
    assert_non_null(o);
    assert_ptr_equal(o->consumer, c);
    assert_string_equal(o->method, "PATCH");
    assert_string_equal(o->path.src, "/v1/apitokens/revoke/{id}");
    assert_int_equal(o->n_params, 1);
    assert_string_equal(o->params[0].name, "id");
    assert_int_equal(o->params[0].in, NK_IN_PATH);
    assert_true(o->params[0].required);
    assert_int_equal(o->n_outputs, 1);
    assert_string_equal(nk_jsonpath_text(o->outputs[0].value), "$.");
    assert_string_equal(o->output_raw_format, "json");
    assert_string_equal(o->pos.file, SEED);
    assert_int_equal(o->pos.line, 57); /* "- name: revoketoken" */
    assert_int_equal(o->pos.column, 9);

    o = nk_optable_find_op(t, "stackrox-apitokenservice.generatetoken");
    assert_non_null(o);
    assert_int_equal(o->params[0].in, NK_IN_BODY);
    assert_int_equal(o->params[0].type, NK_TYPE_OBJECT);
    assert_null(nk_optable_find_op(t, "stackrox-apitokenservice.nope"));
    assert_null(nk_optable_find_op(t, "getapitokens"));
    nk_optable_unref(t);
}

static void test_seed_rest(void **state)
{
    struct nk_optable *t = load_seed();
    const struct nk_adapter *a;
    const struct nk_exposed *e;
    const struct nk_arg *g;

    (void)state;
    assert_int_equal(t->n_adapters, 2);
    a = &t->adapters[0];
    assert_int_equal(a->type, NK_ADAPTER_REST);
    assert_int_equal(a->port, 8080);
    assert_null(a->address);
    assert_int_equal(a->n_ops, 4);

    e = rest_op(a, "GET", "/v1/v1/apitokens");
    assert_non_null(e);
    assert_ptr_equal(e->target, nk_optable_find_op(t, "stackrox-apitokenservice.getapitokens"));
    g = arg(e, "revoked");
    assert_non_null(g);
    assert_int_equal(g->in, NK_IN_QUERY);
    assert_int_equal(g->type, NK_TYPE_BOOLEAN);
    assert_false(g->required);
    assert_int_equal(e->n_bindings, 1);
    assert_int_equal(e->bindings[0].kind, NK_BIND_ARG);
    assert_ptr_equal(&e->args[e->bindings[0].arg], g);
    assert_ptr_equal(e->bindings[0].param, &e->target->params[0]);
    assert_non_null(e->output);
    assert_int_equal(e->output->type, NK_TYPE_OBJECT);
    assert_string_equal(nk_jsonpath_text(e->output->mapping), "$.");
    assert_int_equal(e->output->n_props, 0);

    e = rest_op(a, "PATCH", "/v1/v1/apitokens/revoke/{id}");
    assert_non_null(e);
    assert_int_equal(e->n_args, 1);
    g = arg(e, "id");
    assert_int_equal(g->in, NK_IN_PATH);
    assert_int_equal(g->type, NK_TYPE_STRING);
    assert_true(g->required);
    assert_int_equal(e->path_tmpl.n, 2);
    assert_int_equal(e->path_tmpl.parts[1].kind, NK_TMPL_VAR);
    assert_string_equal(e->path_tmpl.parts[1].text, "id");

    e = rest_op(a, "POST", "/v1/v1/apitokens/generate");
    assert_non_null(e);
    g = arg(e, "body");
    assert_non_null(g);
    assert_int_equal(g->in, NK_IN_BODY);
    assert_int_equal(g->type, NK_TYPE_OBJECT);
    assert_true(g->required);
    assert_string_equal(g->description, "Request body (JSON).");
    assert_non_null(rest_op(a, "GET", "/v1/v1/apitokens/{id}"));
    nk_optable_unref(t);
}

static void test_seed_mcp(void **state)
{
    struct nk_optable *t = load_seed();
    const struct nk_adapter *a;
    const struct nk_exposed *e;
    const struct nk_arg *g;
    json_t *want;

    (void)state;
    a = &t->adapters[1];
    assert_int_equal(a->type, NK_ADAPTER_MCP);
    assert_int_equal(a->port, 9090);
    assert_string_equal(a->transport, "http");
    assert_string_equal(a->ns, "stackrox-apitokenservice-mcp");
    assert_int_equal(a->n_ops, 4);

    e = nk_adapter_find_tool(a, "getapitokens-returns-all-api-tokens");
    assert_non_null(e);
    assert_true(e->hints.read_only);
    assert_false(e->hints.destructive);
    assert_true(e->hints.idempotent);
    assert_true(e->hints.open_world);
    g = arg(e, "revoked");
    assert_int_equal(g->in, NK_IN_BODY);
    assert_int_equal(g->type, NK_TYPE_BOOLEAN);
    assert_false(g->required);
    want = json_pack("{s:s, s:{s:{s:s}}}", "type", "object", "properties", "revoked", "type",
                     "boolean");
    assert_true(json_equal(want, e->input_schema));
    json_decref(want);

    e = nk_adapter_find_tool(a, "revoketoken-removes-api-token-given");
    assert_non_null(e);
    assert_false(e->hints.read_only);
    assert_true(e->hints.idempotent);
    want = json_pack("{s:s, s:{s:{s:s}}, s:[s]}", "type", "object", "properties", "id", "type",
                     "string", "required", "id");
    assert_true(json_equal(want, e->input_schema));
    json_decref(want);

    e = nk_adapter_find_tool(a, "generatetoken-generates-api-token-given");
    want = json_pack("{s:s, s:{s:{s:s, s:s}}, s:[s]}", "type", "object", "properties", "body",
                     "type", "object", "description", "Request body (JSON).", "required", "body");
    assert_true(json_equal(want, e->input_schema));
    json_decref(want);
    assert_null(nk_adapter_find_tool(a, "nope"));
    nk_optable_unref(t);
}

static void test_refcount(void **state)
{
    struct nk_optable *t = load_seed();

    (void)state;
    assert_ptr_equal(nk_optable_ref(t), t);
    nk_optable_unref(t);
    nk_optable_unref(t);
    nk_optable_unref(NULL);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(nk_type_name(NK_TYPE_ANY), "any");
    assert_string_equal(nk_type_name(NK_TYPE_BOOLEAN), "boolean");
    assert_string_equal(nk_type_name(NK_TYPE_OBJECT), "object");
    assert_string_equal(nk_in_name(NK_IN_PATH), "path");
    assert_string_equal(nk_in_name(NK_IN_ENVIRONMENT), "environment");
}

/* Two files: the consumer in one, the adapter that calls it in the other. */
static void test_cross_file(void **state)
{
    const char *files[] = {NK_TEST_DATA "/spec/multi/consumer.yaml",
                           NK_TEST_DATA "/spec/multi/exposer.yaml"};
    struct nk_diags d;
    struct nk_optable *t = NULL;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 2, NULL, &d, &t), NK_OK);
    assert_int_equal(d.n_errors, 0);
    assert_int_equal(t->n_files, 2);
    assert_ptr_equal(t->adapters[0].ops[0].target, nk_optable_find_op(t, "shared.get-thing"));
    assert_string_equal(t->adapters[0].pos.file, files[1]);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);

    /* the same consumer twice is a duplicate namespace */
    files[1] = files[0];
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 2, NULL, &d, &t), NK_ERR_INVALID);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.v[0].msg, "duplicate consumes namespace 'shared'"));
    nk_diags_cleanup(&d);
}

static void test_missing_file(void **state)
{
    const char *files[] = {NK_TEST_DATA "/spec/does-not-exist.yaml"};
    struct nk_diags d;
    struct nk_optable *t = NULL;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 1, NULL, &d, &t), NK_ERR_IO);
    assert_null(t);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.v[0].msg, "cannot open"));
    nk_diags_cleanup(&d);
}

static void test_strict(void **state)
{
    const char *files[] = {SEED};
    struct nk_load_options o = {.strict = true};
    struct nk_diags d;
    struct nk_optable *t = NULL;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 1, &o, &d, &t), NK_OK);
    assert_int_equal(d.n_errors, 0);
    assert_true(d.n_warnings > 10);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

/* The generator spells exposed path variables loosely: `{config-id}` for `rest.config.id`,
 * `{job-id}` for the consumed `{job_id}`; both reach the path argument. Consumed paths may
 * omit the leading '/'. */
static void test_loose_path_names(void **state)
{
    static const char doc[] = "naftiko: 1.0.0-alpha2\n"
                              "capability:\n"
                              "  consumes:\n"
                              "  - type: http\n"
                              "    namespace: c\n"
                              "    baseUri: https://x.example.com\n"
                              "    resources:\n"
                              "    - name: cfg\n"
                              "      path: config/{config.id}/jobs/{job_id}\n"
                              "      operations:\n"
                              "      - name: put-cfg\n"
                              "        method: PUT\n"
                              "  exposes:\n"
                              "  - type: rest\n"
                              "    namespace: r\n"
                              "    port: 8080\n"
                              "    resources:\n"
                              "    - path: /v1/config/{config-id}/jobs/{job-id}\n"
                              "      operations:\n"
                              "      - method: PUT\n"
                              "        call: c.put-cfg\n"
                              "        with:\n"
                              "          config.id: rest.config.id\n";
    struct nk_diags d;
    struct nk_optable *t = NULL;
    const struct nk_exposed *e;
    const struct nk_operation *o;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load_mem("loose.yaml", doc, sizeof(doc) - 1, NULL, &d, &t), NK_OK);
    assert_int_equal(d.n, 0);
    o = nk_optable_find_op(t, "c.put-cfg");
    assert_string_equal(o->path.src, "/config/{config.id}/jobs/{job_id}");
    assert_int_equal(o->n_params, 2);
    e = &t->adapters[0].ops[0];
    assert_int_equal(e->n_args, 2);
    assert_int_equal(e->n_bindings, 2);
    assert_string_equal(e->args[e->bindings[0].arg].name, "config-id");
    assert_string_equal(e->bindings[0].param->name, "config.id");
    assert_string_equal(e->args[e->bindings[1].arg].name, "job-id");
    assert_string_equal(e->bindings[1].param->name, "job_id");
    assert_int_equal(e->args[0].in, NK_IN_PATH);
    assert_int_equal(e->args[1].in, NK_IN_PATH);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

/* Issue 13: REST routes are split into segments at load (prefix, variable, suffix) so that
 * routing never parses a route per request. */
static void test_route_segments(void **state)
{
    static const char doc[] = "naftiko: 1.0.0-alpha2\n"
                              "capability:\n"
                              "  consumes:\n"
                              "  - type: http\n"
                              "    namespace: c\n"
                              "    baseUri: https://x.example.com\n"
                              "    resources:\n"
                              "    - name: cfg\n"
                              "      path: /config/{id}/jobs/{job}\n"
                              "      operations:\n"
                              "      - name: get-cfg\n"
                              "        method: GET\n"
                              "  exposes:\n"
                              "  - type: rest\n"
                              "    namespace: r\n"
                              "    port: 8080\n"
                              "    resources:\n"
                              "    - path: /v1/cfg-{id}.json/jobs/{job}/\n"
                              "      operations:\n"
                              "      - method: GET\n"
                              "        call: c.get-cfg\n";
    struct nk_diags d;
    struct nk_optable *t = NULL;
    const struct nk_exposed *e;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load_mem("route.yaml", doc, sizeof(doc) - 1, NULL, &d, &t), NK_OK);
    e = &t->adapters[0].ops[0];
    assert_int_equal(e->n_route, 5);
    assert_null(e->route[0].var);
    assert_string_equal(e->route[0].text, "v1");
    assert_int_equal(e->route[0].prefix_len, 2);
    assert_string_equal(e->route[1].var, "id");
    assert_string_equal(e->route[1].text, "cfg-.json");
    assert_int_equal(e->route[1].prefix_len, 4);
    assert_int_equal(e->route[1].suffix_len, 5);
    assert_null(e->route[2].var);
    assert_string_equal(e->route[2].text, "jobs");
    assert_string_equal(e->route[3].var, "job");
    assert_int_equal(e->route[3].prefix_len + e->route[3].suffix_len, 0);
    assert_null(e->route[4].var); /* the trailing '/' leaves an empty last segment */
    assert_int_equal(e->route[4].prefix_len, 0);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

/* Issue 15 items 4 and 6: a mock has no target and answers its named entries; a body variable
 * of an operation without inputs becomes a required argument; one that declares inputs must
 * name them (tested with positions in tests/data/spec/invalid/simple-forms-*.yaml). */
static void test_simple_forms(void **state)
{
    static const char doc[] =
        "naftiko: 1.0.0-alpha2\n"
        "capability:\n"
        "  consumes:\n"
        "  - type: http\n"
        "    namespace: c\n"
        "    baseUri: https://x.example.com\n"
        "    resources:\n"
        "    - name: images\n"
        "      path: /v1/images\n"
        "      operations:\n"
        "      - name: scan\n"
        "        method: POST\n"
        "        body: {type: json, data: {imageName: '{{tools.image_name}}'}}\n"
        "  exposes:\n"
        "  - type: rest\n"
        "    namespace: r\n"
        "    port: 8080\n"
        "    resources:\n"
        "    - path: /v1/images\n"
        "      operations:\n"
        "      - method: POST\n"
        "        call: c.scan\n"
        "    - path: /ships/{imo}\n"
        "      operations:\n"
        "      - method: GET\n"
        "        outputParameters:\n"
        "        - {name: label, type: string, value: 'ship {{imo}}'}\n"
        "        - {name: size, type: integer, value: '7'}\n"
        "  - type: mcp\n"
        "    namespace: m\n"
        "    port: 9090\n"
        "    tools:\n"
        "    - name: scan\n"
        "      description: Scan.\n"
        "      call: c.scan\n";
    struct nk_diags d;
    struct nk_optable *t = NULL;
    const struct nk_exposed *e;
    const struct nk_arg *a;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load_mem("simple.yaml", doc, sizeof(doc) - 1, NULL, &d, &t), NK_OK);
    assert_int_equal(d.n_errors, 0);
    /* the body variable: recorded at its position, an implicit required argument */
    assert_int_equal(nk_optable_find_op(t, "c.scan")->n_body_vars, 1);
    assert_int_equal(nk_optable_find_op(t, "c.scan")->body_vars[0].pos.line, 13);
    e = rest_op(&t->adapters[0], "POST", "/v1/images");
    a = arg(e, "image_name");
    assert_non_null(a);
    assert_true(a->required);
    assert_int_equal(a->in, NK_IN_QUERY);
    a = arg(&t->adapters[1].ops[0], "image_name");
    assert_non_null(a);
    assert_true(a->required);
    assert_int_equal(a->in, NK_IN_BODY);
    /* the mock: no target, one object of named entries with compiled values */
    e = rest_op(&t->adapters[0], "GET", "/ships/{imo}");
    assert_null(e->target);
    assert_non_null(e->output);
    assert_int_equal(e->output->type, NK_TYPE_OBJECT);
    assert_int_equal(e->output->n_props, 2);
    assert_string_equal(e->output->props[0].name, "label");
    assert_non_null(e->output->props[0].value);
    assert_int_equal(e->output->props[1].type, NK_TYPE_INTEGER);
    assert_true(arg(e, "imo")->required);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

static const struct nk_exposed *tool(const struct nk_adapter *a, const char *name)
{
    const struct nk_exposed *e = nk_adapter_find_tool(a, name);

    assert_non_null(e);
    return e;
}

/* Issue 15 item 3: a `ref` operation or tool is compiled at load into the same table entries as
 * one written out: the function's call, `with` and outputParameters, its inputs where the
 * operation declares none, its name and description where the operation has none; semantics
 * become MCP hints, and the tool's own hints win field by field. */
static void test_aggregates(void **state)
{
    const char *files[] = {NK_SOURCE_DIR "/tests/data/spec/valid/aggregates.yaml"};
    struct nk_diags d;
    struct nk_optable *t = NULL;
    const struct nk_adapter *rest, *mcp;
    const struct nk_exposed *e;
    const struct nk_arg *a;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 1, NULL, &d, &t), NK_OK);
    assert_int_equal(d.n_errors + d.n_warnings, 0);
    rest = &t->adapters[0];
    mcp = &t->adapters[1];

    e = rest_op(rest, "GET", "/names");
    assert_non_null(e);
    assert_string_equal(e->name, "list-names");
    assert_string_equal(e->description, "The names of the API tokens, revoked or not.");
    assert_ptr_equal(e->target, nk_optable_find_op(t, "central.list"));
    a = arg(e, "revoked");
    assert_non_null(a);
    assert_int_equal(a->in, NK_IN_QUERY);
    assert_int_equal(a->type, NK_TYPE_BOOLEAN);
    assert_false(a->required);
    assert_int_equal(e->n_bindings, 1);
    assert_int_equal(e->bindings[0].kind, NK_BIND_ARG); /* `tokens.revoked` */
    assert_non_null(e->output);
    assert_int_equal(e->output->type, NK_TYPE_ARRAY);

    e = rest_op(rest, "GET", "/tokens/{id}");
    assert_string_equal(e->name, "token");
    a = arg(e, "id");
    assert_int_equal(a->in, NK_IN_PATH); /* the function's input, a path variable here */
    assert_true(a->required);
    assert_int_equal(e->bindings[0].kind, NK_BIND_TEMPLATE); /* '{{id}}' */

    e = rest_op(rest, "GET", "/tokens/{id}/with-names"); /* a function with steps */
    assert_string_equal(e->name, "token-with-names");
    assert_null(e->target);
    assert_int_equal(e->n_steps, 2);
    assert_int_equal(e->n_mappings, 2);
    assert_int_equal(arg(e, "id")->in, NK_IN_PATH);

    e = rest_op(rest, "GET", "/greet/{who}");
    assert_null(e->target); /* a mock function: nothing upstream */
    assert_string_equal(e->output->props[0].name, "greeting");
    assert_string_equal(e->description, "Greets from the path.");

    e = tool(mcp, "list-names");
    assert_true(e->hints.read_only);
    assert_false(e->hints.destructive);
    assert_true(e->hints.idempotent);
    assert_true(e->hints.open_world);
    e = tool(mcp, "token"); /* safe only */
    assert_string_equal(e->title, "One token");
    assert_true(e->hints.read_only);
    assert_false(e->hints.destructive);
    assert_false(e->hints.idempotent);
    e = tool(mcp, "create"); /* safe: false keeps the defaults; the tool's destructive wins */
    assert_false(e->hints.read_only);
    assert_false(e->hints.destructive);
    assert_int_equal(arg(e, "tokenName")->in, NK_IN_BODY);
    e = tool(mcp, "greet");
    assert_string_equal(e->description, "Greets.");
    assert_true(e->hints.read_only);
    assert_false(e->hints.open_world);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

/* The operation's own `with` overrides the function's key by key, its own inputParameters
 * replace the function's, and the function's `<aggregate>.x` sources name those inputs. */
static void test_aggregate_overrides(void **state)
{
    static const char doc[] = "naftiko: 1.0.0-alpha2\n"
                              "capability:\n"
                              "  consumes:\n"
                              "  - type: http\n"
                              "    namespace: c\n"
                              "    baseUri: https://x.example.com\n"
                              "    resources:\n"
                              "    - name: items\n"
                              "      path: /items/{id}\n"
                              "      operations:\n"
                              "      - name: get\n"
                              "        method: GET\n"
                              "        inputParameters:\n"
                              "        - {name: verbose, in: query}\n"
                              "  aggregates:\n"
                              "  - label: Items\n"
                              "    namespace: items\n"
                              "    functions:\n"
                              "    - name: get\n"
                              "      description: One item.\n"
                              "      semantics: {safe: true}\n"
                              "      inputParameters:\n"
                              "      - {name: id, type: string, description: Id.}\n"
                              "      call: c.get\n"
                              "      with: {id: items.id, verbose: 'no'}\n"
                              "  exposes:\n"
                              "  - type: mcp\n"
                              "    namespace: m\n"
                              "    port: 9090\n"
                              "    tools:\n"
                              "    - ref: items.get\n"
                              "      with: {verbose: 'yes'}\n"
                              "      hints: {readOnly: false}\n"
                              "    - name: by-key\n"
                              "      ref: items.get\n"
                              "      inputParameters:\n"
                              "      - {name: key, type: string, description: The key.}\n"
                              "      with: {id: tools.key}\n";
    struct nk_diags d;
    struct nk_optable *t = NULL;
    const struct nk_exposed *e;
    size_t i;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load_mem("agg.yaml", doc, sizeof(doc) - 1, NULL, &d, &t), NK_OK);
    assert_int_equal(d.n_errors, 0);
    e = tool(&t->adapters[0], "get");
    assert_false(e->hints.read_only);   /* the tool's hint beats safe: true */
    assert_false(e->hints.destructive); /* safe: true still set it */
    assert_int_equal(e->n_bindings, 2);
    for (i = 0; i < e->n_bindings; i++)
        if (strcmp(e->bindings[i].param->name, "verbose") == 0)
            assert_string_equal(e->bindings[i].tmpl.src, "yes");
    e = tool(&t->adapters[0], "by-key");
    assert_int_equal(e->n_args, 1);
    assert_string_equal(e->args[0].name, "key");
    assert_int_equal(e->n_bindings, 2);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

/* ---- issue 15 item 5: the ikanos form loads into the same table ---------------------------- */

static void same_str(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void same_tmpl(const struct nk_tmpl *a, const struct nk_tmpl *b)
{
    same_str(a->src, b->src);
}

static void same_outmap(const struct nk_outmap *a, const struct nk_outmap *b)
{
    size_t i;

    if (a == NULL || b == NULL) {
        assert_ptr_equal(a, b);
        return;
    }
    same_str(a->name, b->name);
    assert_int_equal(a->type, b->type);
    same_str(a->mapping ? nk_jsonpath_text(a->mapping) : NULL,
             b->mapping ? nk_jsonpath_text(b->mapping) : NULL);
    same_str(a->value ? a->value->src : NULL, b->value ? b->value->src : NULL);
    assert_true((a->konst == NULL) == (b->konst == NULL));
    assert_true(a->konst == NULL || json_equal(a->konst, b->konst));
    assert_int_equal(a->n_props, b->n_props);
    for (i = 0; i < a->n_props; i++)
        same_outmap(&a->props[i], &b->props[i]);
    same_outmap(a->items, b->items);
}

static void same_exposed(const struct nk_exposed *a, const struct nk_exposed *b)
{
    size_t i;

    same_str(a->name, b->name);
    same_str(a->title, b->title);
    same_str(a->description, b->description);
    same_str(a->method, b->method);
    same_str(a->path, b->path);
    same_str(a->target ? a->target->qname : NULL, b->target ? b->target->qname : NULL);
    assert_int_equal(a->n_args, b->n_args);
    for (i = 0; i < a->n_args; i++) {
        same_str(a->args[i].name, b->args[i].name);
        assert_int_equal(a->args[i].in, b->args[i].in);
        assert_int_equal(a->args[i].type, b->args[i].type);
        assert_int_equal(a->args[i].required, b->args[i].required);
        same_str(a->args[i].description, b->args[i].description);
        same_str(a->args[i].pattern, b->args[i].pattern);
    }
    assert_int_equal(a->n_bindings, b->n_bindings);
    for (i = 0; i < a->n_bindings; i++) {
        same_str(a->bindings[i].param->name, b->bindings[i].param->name);
        assert_int_equal(a->bindings[i].kind, b->bindings[i].kind);
        assert_int_equal(a->bindings[i].arg, b->bindings[i].arg);
        same_str(a->bindings[i].tmpl.src, b->bindings[i].tmpl.src);
    }
    assert_int_equal(a->n_steps, b->n_steps);
    for (i = 0; i < a->n_steps; i++) {
        same_str(a->steps[i].name, b->steps[i].name);
        assert_int_equal(a->steps[i].kind, b->steps[i].kind);
        same_str(a->steps[i].target ? a->steps[i].target->qname : NULL,
                 b->steps[i].target ? b->steps[i].target->qname : NULL);
        assert_int_equal(a->steps[i].n_bindings, b->steps[i].n_bindings);
        assert_int_equal(a->steps[i].n_fields, b->steps[i].n_fields);
    }
    assert_int_equal(a->n_mappings, b->n_mappings);
    for (i = 0; i < a->n_mappings; i++) {
        same_str(a->mappings[i].target, b->mappings[i].target);
        assert_int_equal(a->mappings[i].value.step, b->mappings[i].value.step);
    }
    same_outmap(a->output, b->output);
    assert_memory_equal(&a->hints, &b->hints, sizeof(a->hints));
    assert_true((a->input_schema == NULL) == (b->input_schema == NULL));
    assert_true(a->input_schema == NULL || json_equal(a->input_schema, b->input_schema));
}

static void same_table(const struct nk_optable *a, const struct nk_optable *b)
{
    size_t i, j, k;

    same_str(a->label, b->label);
    same_str(a->description, b->description);
    assert_int_equal(a->n_binds, b->n_binds);
    for (i = 0; i < a->n_binds; i++) {
        same_str(a->binds[i].ns, b->binds[i].ns);
        same_str(a->binds[i].name, b->binds[i].name);
        same_str(a->binds[i].source, b->binds[i].source);
    }
    assert_int_equal(a->n_consumers, b->n_consumers);
    for (i = 0; i < a->n_consumers; i++) {
        const struct nk_consumer *ca = &a->consumers[i], *cb = &b->consumers[i];
        same_str(ca->ns, cb->ns);
        same_str(ca->description, cb->description);
        same_tmpl(&ca->base_uri, &cb->base_uri);
        assert_int_equal(ca->auth.type, cb->auth.type);
        same_str(ca->auth.key, cb->auth.key);
        same_tmpl(&ca->auth.value, &cb->auth.value);
        assert_int_equal(ca->n_ops, cb->n_ops);
        for (j = 0; j < ca->n_ops; j++) {
            const struct nk_operation *oa = &ca->ops[j], *ob = &cb->ops[j];
            same_str(oa->qname, ob->qname);
            same_str(oa->method, ob->method);
            same_str(oa->description, ob->description);
            same_str(oa->resource, ob->resource);
            same_tmpl(&oa->path, &ob->path);
            same_str(oa->output_raw_format, ob->output_raw_format);
            assert_int_equal(oa->n_params, ob->n_params);
            for (k = 0; k < oa->n_params; k++) {
                same_str(oa->params[k].name, ob->params[k].name);
                assert_int_equal(oa->params[k].in, ob->params[k].in);
                assert_int_equal(oa->params[k].type, ob->params[k].type);
                assert_int_equal(oa->params[k].required, ob->params[k].required);
                same_str(oa->params[k].description, ob->params[k].description);
            }
            assert_int_equal(oa->n_outputs, ob->n_outputs);
            for (k = 0; k < oa->n_outputs; k++) {
                same_str(oa->outputs[k].name, ob->outputs[k].name);
                assert_int_equal(oa->outputs[k].type, ob->outputs[k].type);
                same_str(nk_jsonpath_text(oa->outputs[k].value),
                         nk_jsonpath_text(ob->outputs[k].value));
            }
        }
    }
    assert_int_equal(a->n_adapters, b->n_adapters);
    for (i = 0; i < a->n_adapters; i++) {
        const struct nk_adapter *aa = &a->adapters[i], *ab = &b->adapters[i];
        assert_int_equal(aa->type, ab->type);
        same_str(aa->ns, ab->ns);
        same_str(aa->description, ab->description);
        same_str(aa->transport, ab->transport);
        assert_int_equal(aa->port, ab->port);
        assert_int_equal(aa->n_ops, ab->n_ops);
        for (j = 0; j < aa->n_ops; j++)
            same_exposed(&aa->ops[j], &ab->ops[j]);
    }
}

static struct nk_optable *load_one(const char *file)
{
    const char *files[1];
    struct nk_diags d;
    struct nk_optable *t = NULL;

    files[0] = file;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 1, NULL, &d, &t), NK_OK);
    assert_int_equal(d.n_errors + d.n_warnings, 0);
    nk_diags_cleanup(&d);
    return t;
}

/* The bundled capability and its ikanos 1.0.0-beta5 form compile into the same table (but for
 * positions); the aggregates fixture in both forms too (flows, keyed outputs of a mock). */
static void test_ikanos_same_table(void **state)
{
    static const char *const pairs[][2] = {
        {SEED, NK_SOURCE_DIR "/tests/data/spec/valid/ikanos-apitokenservice.yaml"},
        {NK_SOURCE_DIR "/tests/data/spec/valid/aggregates.yaml",
         NK_SOURCE_DIR "/tests/data/spec/valid/ikanos-aggregates.yaml"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        struct nk_optable *a = load_one(pairs[i][0]), *b = load_one(pairs[i][1]);
        same_table(a, b);
        nk_optable_unref(a);
        nk_optable_unref(b);
    }
}

/* Positions survive the translation: a keyed entry's name is its key, fields keep theirs. */
static void test_ikanos_positions(void **state)
{
    struct nk_optable *t =
        load_one(NK_SOURCE_DIR "/tests/data/spec/valid/ikanos-apitokenservice.yaml");
    const struct nk_operation *o = nk_optable_find_op(t, "stackrox-apitokenservice.revoketoken");
    const struct nk_exposed *e = tool(&t->adapters[1], "getapitoken-returns-api-token-metadata");

    (void)state;
    assert_non_null(o);
    assert_int_equal(o->pos.line, 61); /* "revoketoken:", where the entry starts */
    assert_int_equal(o->pos.column, 11);
    assert_int_equal(o->params[0].pos.line, 70); /* "id:" */
    assert_int_equal(e->pos.line, 197);
    assert_int_equal(e->pos.column, 7);
    nk_optable_unref(t);
}

/* Issue 15 items 2 and 3 joined: an aggregate function with steps compiles into each operation
 * that references it as an orchestrated one (steps, mappings, orchestrated outputs); its inputs
 * become the route's path variables, else queries (REST) or body fields (MCP); `{{<aggregate>.x}}`
 * reads an input; the tool's MCP hints come from the function's semantics unless its own say
 * otherwise; a step may not take the aggregate's namespace as its name. */
static void test_aggregate_steps(void **state)
{
    static const char doc[] = "naftiko: 1.0.0-alpha2\n"
                              "capability:\n"
                              "  consumes:\n"
                              "  - type: http\n"
                              "    namespace: c\n"
                              "    baseUri: https://x.example.com\n"
                              "    resources:\n"
                              "    - name: items\n"
                              "      path: /items/{id}\n"
                              "      operations:\n"
                              "      - {name: get, method: GET}\n"
                              "    - name: tags\n"
                              "      path: /tags\n"
                              "      operations:\n"
                              "      - {name: list, method: GET}\n"
                              "  aggregates:\n"
                              "  - label: Items\n"
                              "    namespace: items\n"
                              "    functions:\n"
                              "    - name: with-tags\n"
                              "      description: An item and every tag.\n"
                              "      semantics: {safe: true, idempotent: true}\n"
                              "      inputParameters:\n"
                              "      - {name: id, type: string, description: Id.}\n"
                              "      steps:\n"
                              "      - {type: call, name: first, call: c.get, with: {id: "
                              "'{{items.id}}'}}\n"
                              "      - {type: call, name: tags, call: c.list}\n"
                              "      mappings:\n"
                              "      - {targetName: item, value: $.first}\n"
                              "      - {targetName: tags, value: $.tags}\n"
                              "      outputParameters:\n"
                              "      - {name: item, type: object}\n"
                              "      - {name: tags, type: array}\n"
                              "  exposes:\n"
                              "  - type: rest\n"
                              "    namespace: r\n"
                              "    port: 8080\n"
                              "    resources:\n"
                              "    - path: /lookup\n"
                              "      operations:\n"
                              "      - {method: GET, ref: items.with-tags}\n"
                              "  - type: mcp\n"
                              "    namespace: m\n"
                              "    port: 9090\n"
                              "    tools:\n"
                              "    - ref: items.with-tags\n"
                              "      hints: {idempotent: false}\n";
    struct nk_diags d;
    struct nk_optable *t = NULL;
    const struct nk_exposed *e;
    const struct nk_adapter *a;
    size_t i;
    char *bad;

    (void)state;
    /* the demo capability: one function, a REST operation and an MCP tool that reference it */
    t = load_one(NK_SOURCE_DIR "/capabilities/demo/stackrox-token-roles.yaml");
    for (i = 0; i < 2; i++) {
        a = &t->adapters[i];
        e = a->type == NK_ADAPTER_REST ? rest_op(a, "GET", "/v1/token-roles/{id}")
                                       : tool(a, "get-token-with-roles");
        assert_non_null(e);
        assert_string_equal(e->name, "get-token-with-roles");
        assert_null(e->target);
        assert_int_equal(e->n_steps, 3);
        assert_string_equal(e->steps[0].name, "token");
        assert_int_equal(e->steps[0].kind, NK_STEP_CALL);
        assert_ptr_equal(e->steps[0].target,
                         nk_optable_find_op(t, "stackrox-token-roles.get-token"));
        assert_int_equal(e->steps[0].n_bindings, 1);
        assert_ptr_equal(e->steps[1].target,
                         nk_optable_find_op(t, "stackrox-token-roles.list-roles"));
        assert_int_equal(e->steps[2].kind, NK_STEP_LOOKUP);
        assert_int_equal(e->steps[2].index, 1);
        assert_int_equal(e->steps[2].n_fields, 4);
        assert_int_equal(e->n_mappings, 5);
        assert_non_null(e->output);
        assert_int_equal(e->output->n_props, 5);
        assert_string_equal(e->output->props[4].name, "roles");
        assert_int_equal(e->output->props[4].type, NK_TYPE_ARRAY);
        assert_int_equal(e->n_args, 1);
        assert_string_equal(e->args[0].name, "id");
        assert_true(e->args[0].required);
        assert_int_equal(e->args[0].in, a->type == NK_ADAPTER_REST ? NK_IN_PATH : NK_IN_BODY);
    }
    e = tool(&t->adapters[1], "get-token-with-roles");
    assert_string_equal(e->title, "Token with its roles");
    assert_true(e->hints.read_only);
    assert_false(e->hints.destructive);
    assert_true(e->hints.idempotent);
    assert_true(e->hints.open_world);
    nk_optable_unref(t);

    t = NULL;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load_mem("agg.yaml", doc, sizeof(doc) - 1, NULL, &d, &t), NK_OK);
    assert_int_equal(d.n_errors + d.n_warnings, 0);
    e = rest_op(&t->adapters[0], "GET", "/lookup");
    assert_non_null(e);
    assert_string_equal(e->name, "with-tags");
    assert_int_equal(e->n_steps, 2);
    assert_int_equal(arg(e, "id")->in, NK_IN_QUERY); /* no {id} in this route */
    assert_int_equal(e->steps[0].bindings[0].kind, NK_BIND_TEMPLATE);
    assert_string_equal(e->steps[0].bindings[0].tmpl.src, "{{items.id}}");
    assert_int_equal(e->n_mappings, 2);
    e = tool(&t->adapters[1], "with-tags");
    assert_true(e->hints.read_only);
    assert_false(e->hints.destructive);
    assert_false(e->hints.idempotent); /* the tool's own hint beats idempotent: true */
    assert_int_equal(e->n_steps, 2);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);

    /* a step named like the aggregate: '{{items.id}}' would read the step, not the input */
    bad = strdup(doc);
    assert_non_null(bad);
    memcpy(strstr(bad, "name: first,") + 6, "items", 5);
    memcpy(strstr(bad, "value: $.first}") + 9, "items", 5);
    t = NULL;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load_mem("agg.yaml", bad, strlen(bad), NULL, &d, &t),
                     NK_ERR_INVALID);
    assert_non_null(strstr(d.v[0].msg, "step name 'items' is how arguments are written"));
    nk_diags_cleanup(&d);
    free(bad);
}

/* Orchestration limits and names: at most NK_MAX_STEPS steps; a step named like an input is
 * refused (its `{{name.x}}` would be ambiguous); the first step must be a call. */
static void test_steps_limits(void **state)
{
    static const char head[] = "naftiko: 1.0.0-alpha2\n"
                               "capability:\n"
                               "  consumes:\n"
                               "  - type: http\n"
                               "    namespace: c\n"
                               "    baseUri: https://x.example.com\n"
                               "    resources:\n"
                               "    - name: t\n"
                               "      path: /t\n"
                               "      operations:\n"
                               "      - {name: get, method: GET}\n"
                               "  exposes:\n"
                               "  - type: mcp\n"
                               "    namespace: m\n"
                               "    port: 9090\n"
                               "    tools:\n"
                               "    - name: x\n"
                               "      description: X\n"
                               "      inputParameters: [{name: in, type: string, description: I}]\n"
                               "      steps:\n";
    char doc[8192];
    struct nk_diags d;
    struct nk_optable *t = NULL;
    size_t i, len;
    int pass;

    (void)state;
    for (pass = 0; pass < 4; pass++) {
        size_t n = pass == 0 ? NK_MAX_STEPS : NK_MAX_STEPS + 1;
        len = (size_t)snprintf(doc, sizeof(doc), "%s", head);
        if (pass == 2)
            len += (size_t)snprintf(doc + len, sizeof(doc) - len,
                                    "      - {type: call, name: in, call: c.get}\n");
        else if (pass == 3)
            len += (size_t)snprintf(
                doc + len, sizeof(doc) - len,
                "      - {type: lookup, name: l, index: l, match: a, lookupValue: x, "
                "outputParameters: [a]}\n");
        else
            for (i = 0; i < n; i++)
                len += (size_t)snprintf(doc + len, sizeof(doc) - len,
                                        "      - {type: call, name: s%zu, call: c.get}\n", i);
        nk_diags_init(&d);
        t = NULL;
        if (pass == 0) {
            assert_int_equal(nk_optable_load_mem("s.yaml", doc, len, NULL, &d, &t), NK_OK);
            assert_int_equal(t->adapters[0].ops[0].n_steps, NK_MAX_STEPS);
            nk_optable_unref(t);
        } else {
            assert_int_equal(nk_optable_load_mem("s.yaml", doc, len, NULL, &d, &t), NK_ERR_INVALID);
            assert_int_equal(d.n_errors, 1);
            assert_non_null(strstr(d.v[0].msg, pass == 1   ? "at most 32 steps"
                                               : pass == 2 ? "also an input"
                                                           : "the first step must be"));
        }
        nk_diags_cleanup(&d);
    }
}

/* --mcp-tool-prefix namespace: NS__TOOL, '-mcp' dropped, [A-Za-z0-9_-] only, 64 at most. */
static void test_tool_prefixed(void **state)
{
    char out[65], again[65];
    const char *long_ns = "stackrox-a-namespace-long-enough-to-push-the-name-past-sixty-four-mcp";

    (void)state;
    nk_tool_prefixed("stackrox-alertservice-mcp", "getalerts", out);
    assert_string_equal(out, "stackrox-alertservice__getalerts");
    nk_tool_prefixed("a.b", "c d", out);
    assert_string_equal(out, "a_b__c_d");
    nk_tool_prefixed(long_ns, "tool-one", out);
    assert_int_equal(strlen(out), 64);
    assert_int_equal(out[55], '-');
    assert_memory_equal(out, long_ns, 55);
    nk_tool_prefixed(long_ns, "tool-two", again);
    assert_string_not_equal(out, again); /* same first 55 characters, different hashes */
}

/* One listener per (type, address, port) after the options; identical binds and consumers of
 * two files merge; the listener serves both adapters' ops, each tagged with its adapter. */
static void test_group(void **state)
{
    const char *dir[] = {NK_TEST_DATA "/spec/multi/merge"};
    const char *clash[] = {NK_TEST_DATA "/spec/multi/ports-after-options"};
    struct nk_group_options go;
    struct nk_diags d;
    struct nk_optable *t = NULL;
    const struct nk_adapter *l;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(dir, 1, NULL, &d, &t), NK_OK);
    assert_int_equal(t->n_files, 2);
    assert_int_equal(t->n_binds, 1);
    assert_int_equal(t->n_consumers, 1);
    assert_int_equal(nk_optable_group(t, NULL, &d), NK_OK);
    assert_int_equal(t->n_listeners, 2);
    l = nk_optable_find_listener(t, NK_ADAPTER_MCP, "127.0.0.1 9191");
    assert_non_null(l);
    assert_int_equal(l->n_members, 2);
    assert_int_equal(l->n_ops, 2);
    assert_string_equal(l->ops[0].name, "get-a");
    assert_string_equal(l->ops[1].adapter_ns, "b-mcp");
    assert_ptr_equal(l->ops[1].target, t->adapters[3].ops[0].target);
    /* prefixed names, regrouped */
    memset(&go, 0, sizeof(go));
    go.rest_port = go.mcp_port = -1;
    go.tool_prefix = true;
    assert_int_equal(nk_optable_group(t, &go, &d), NK_OK);
    l = nk_optable_find_listener(t, NK_ADAPTER_MCP, "127.0.0.1 9191");
    assert_string_equal(l->ops[1].name, "b__get-b");
    assert_non_null(nk_optable_find_listener(t, NK_ADAPTER_REST, "127.0.0.1 8181"));
    nk_optable_unref(t);
    t = NULL;
    /* two ports apart: no clash; --rest-port 0 puts both routes on one listener */
    assert_int_equal(nk_optable_load(clash, 1, NULL, &d, &t), NK_OK);
    assert_int_equal(nk_optable_group(t, NULL, &d), NK_OK);
    assert_int_equal(t->n_listeners, 2);
    go.tool_prefix = false;
    go.rest_port = 0;
    assert_int_equal(nk_optable_group(t, &go, &d), NK_ERR_INVALID);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.v[0].msg, "route GET /x/{id} of adapter 'b-rest' is also served by "
                                       "adapter 'a-rest' at "));
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_consumer),
        cmocka_unit_test(test_seed_rest),
        cmocka_unit_test(test_seed_mcp),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_cross_file),
        cmocka_unit_test(test_tool_prefixed),
        cmocka_unit_test(test_group),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_loose_path_names),
        cmocka_unit_test(test_route_segments),
        cmocka_unit_test(test_simple_forms),
        cmocka_unit_test(test_aggregates),
        cmocka_unit_test(test_aggregate_overrides),
        cmocka_unit_test(test_ikanos_same_table),
        cmocka_unit_test(test_ikanos_positions),
        cmocka_unit_test(test_steps_limits),
        cmocka_unit_test(test_aggregate_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
