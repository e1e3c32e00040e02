/* SPDX-License-Identifier: Apache-2.0 */
/* test_openapi.c: the OpenAPI document built from a hand-made table shaped like the seed's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "naftikod/openapi.h"

static struct nk_arg revoked, body, id, tags, two[2];

static void arg(struct nk_arg *a, const char *name, enum nk_in in, enum nk_type type, bool required,
                const char *description)
{
    memset(a, 0, sizeof(*a));
    a->name = (char *)name;
    a->in = in;
    a->type = type;
    a->required = required;
    a->description = (char *)description;
}

static void fill(struct nk_exposed *e, const char *name, const char *method, const char *path,
                 struct nk_arg *args, size_t n)
{
    memset(e, 0, sizeof(*e));
    e->name = (char *)name;
    e->description = (char *)"Does a thing.";
    e->method = (char *)method;
    e->path = (char *)path;
    e->args = args;
    e->n_args = n;
}

static json_t *build(void)
{
    static struct nk_exposed ops[7];
    static struct nk_adapter a;
    static struct nk_optable t;
    struct nk_arg *list_args = malloc(2 * sizeof(*list_args));
    json_t *doc;

    arg(&revoked, "revoked", NK_IN_QUERY, NK_TYPE_BOOLEAN, false, NULL);
    arg(&body, "body", NK_IN_BODY, NK_TYPE_OBJECT, true, "Request body (JSON).");
    arg(&id, "id", NK_IN_PATH, NK_TYPE_STRING, true, NULL);
    arg(&tags, "tag", NK_IN_QUERY, NK_TYPE_ARRAY, false, "Repeatable.");
    arg(&two[0], "a", NK_IN_BODY, NK_TYPE_STRING, true, NULL);
    arg(&two[1], "b", NK_IN_BODY, NK_TYPE_INTEGER, false, NULL);
    list_args[0] = revoked;
    list_args[1] = tags;
    fill(&ops[0], "getapitokens", "GET", "/v1/v1/apitokens", list_args, 2);
    fill(&ops[1], "generatetoken", "POST", "/v1/v1/apitokens/generate", &body, 1);
    fill(&ops[2], "revoketoken", "PATCH", "/v1/v1/apitokens/revoke/{id}", &id, 1);
    fill(&ops[3], "getapitoken", "GET", "/v1/v1/apitokens/{{id}}", &id, 1);
    /* Same name twice: operationIds must still be unique. */
    fill(&ops[4], "getapitoken", "DELETE", "/v1/v1/apitokens/{id}", NULL, 0);
    fill(&ops[5], "two body args", "PUT", "/v1/v1/things", two, 2);
    fill(&ops[6], "noargs", "GET", "/v1/v1/things/{thing}", NULL, 0);
    a.type = NK_ADAPTER_REST;
    a.ns = (char *)"demo-rest";
    a.description = (char *)"A demo adapter.";
    a.ops = ops;
    a.n_ops = 7;
    t.adapters = &a;
    t.n_adapters = 1;
    t.label = (char *)"Demo";
    doc = nk_openapi_build(&t, &a, "http://127.0.0.1:8080");
    free(list_args);
    return doc;
}

static void test_document(void **state)
{
    json_t *doc = build(), *paths, *op, *p;
    const char *dump = getenv("NK_OPENAPI_DUMP");

    (void)state;
    assert_non_null(doc);
    if (dump != NULL)
        json_dump_file(doc, dump, JSON_INDENT(2));
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "info"), "title")),
                        "Demo");
    paths = json_object_get(doc, "paths");
    assert_int_equal(json_object_size(paths), 6);
    /* {{id}} is written {id}; GET and DELETE share one path item. */
    p = json_object_get(paths, "/v1/v1/apitokens/{id}");
    assert_non_null(json_object_get(p, "get"));
    assert_non_null(json_object_get(p, "delete"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p, "get"), "operationId")),
        "getapitoken");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p, "delete"), "operationId")),
        "getapitoken-2");
    /* An undeclared path variable still gets a parameter. */
    op = json_object_get(json_object_get(paths, "/v1/v1/things/{thing}"), "get");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(op, "parameters"), 0), "name")),
                        "thing");
    /* Body argument -> requestBody, required. */
    op = json_object_get(json_object_get(paths, "/v1/v1/apitokens/generate"), "post");
    assert_true(json_is_true(json_object_get(json_object_get(op, "requestBody"), "required")));
    /* Query boolean keeps its type; arrays get items. */
    op = json_object_get(json_object_get(paths, "/v1/v1/apitokens"), "get");
    p = json_array_get(json_object_get(op, "parameters"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "schema"), "type")),
                        "boolean");
    p = json_array_get(json_object_get(op, "parameters"), 1);
    assert_non_null(json_object_get(json_object_get(p, "schema"), "items"));
    /* Operation ids are URL-safe. */
    op = json_object_get(json_object_get(paths, "/v1/v1/things"), "put");
    assert_string_equal(json_string_value(json_object_get(op, "operationId")), "two_body_args");
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
