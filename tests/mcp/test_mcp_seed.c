/* SPDX-License-Identifier: Apache-2.0 */
/* test_mcp_seed.c: the MCP engine over the real table of the shipped capability (loader):
 * tools/list shows the four seed tools with their hints and input schemas, and tools/call hands
 * the JSON arguments to the dispatcher unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "naftikod/mcp_core.h"
#include "naftikod/optable.h"

static struct nk_optable *table;
static const struct nk_adapter *adapter;
static struct nk_mcp *engine;
static json_t *reply_json;
static const struct nk_exposed *called;
static json_t *called_args;

static void keep(void *ud, struct nk_mcp_reply *r)
{
    (void)ud;
    json_decref(reply_json);
    reply_json = r->body != NULL ? json_loads(r->body, 0, NULL) : NULL;
}

static enum nk_rc record(void *ud, const struct nk_exposed *tool, json_t *args, nk_mcp_done_fn done,
                         void *done_ud, struct nk_error *err)
{
    struct nk_result r;

    (void)ud;
    (void)err;
    called = tool;
    json_decref(called_args);
    called_args = json_deep_copy(args);
    memset(&r, 0, sizeof(r));
    r.kind = NK_RES_OK;
    r.json = json_pack("{s:[]}", "tokens");
    done(done_ud, &r);
    json_decref(r.json);
    return NK_OK;
}

static int setup(void **state)
{
    const char *files[] = {NK_SOURCE_DIR "/capabilities/stackrox-apitokenservice.yaml"};
    struct nk_diags d;
    size_t i;

    (void)state;
    nk_diags_init(&d);
    if (nk_optable_load(files, 1, NULL, &d, &table) != NK_OK) {
        nk_diags_print(&d, stderr);
        nk_diags_cleanup(&d);
        return -1;
    }
    nk_diags_cleanup(&d);
    for (i = 0; i < table->n_adapters; i++)
        if (table->adapters[i].type == NK_ADAPTER_MCP)
            adapter = &table->adapters[i];
    return adapter != NULL && nk_mcp_new(NULL, &engine, NULL) == NK_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nk_mcp_free(engine);
    nk_optable_unref(table);
    json_decref(reply_json);
    json_decref(called_args);
    return 0;
}

static void line(const char *text)
{
    struct nk_mcp_backend b = {adapter, record, NULL, false, NULL};
    struct nk_mcp_conn conn;

    memset(&conn, 0, sizeof(conn));
    nk_mcp_line(engine, &b, &conn, text, strlen(text), keep, NULL);
    assert_non_null(reply_json);
}

static json_t *tool_named(json_t *tools, const char *name)
{
    size_t i;

    for (i = 0; i < json_array_size(tools); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(tools, i), "name")), name) == 0)
            return json_array_get(tools, i);
    fail_msg("no tool %s", name);
    return NULL;
}

static void test_seed_tools_list(void **state)
{
    json_t *tools, *t, *ann, *props;

    (void)state;
    line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
    tools = json_object_get(json_object_get(reply_json, "result"), "tools");
    assert_int_equal(json_array_size(tools), 4);

    t = tool_named(tools, "getapitokens-returns-all-api-tokens");
    assert_string_equal(json_string_value(json_object_get(t, "description")),
                        "GetAPITokens returns all the API tokens.");
    ann = json_object_get(t, "annotations");
    assert_true(json_is_true(json_object_get(ann, "readOnlyHint")));
    assert_true(json_is_false(json_object_get(ann, "destructiveHint")));
    assert_true(json_is_true(json_object_get(ann, "idempotentHint")));
    props = json_object_get(json_object_get(t, "inputSchema"), "properties");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(props, "revoked"), "type")), "boolean");

    t = tool_named(tools, "generatetoken-generates-api-token-given");
    ann = json_object_get(t, "annotations");
    assert_true(json_is_false(json_object_get(ann, "readOnlyHint")));
    assert_true(json_is_false(json_object_get(ann, "idempotentHint")));
    props = json_object_get(json_object_get(t, "inputSchema"), "properties");
    assert_string_equal(json_string_value(json_object_get(json_object_get(props, "body"), "type")),
                        "object");

    t = tool_named(tools, "revoketoken-removes-api-token-given");
    ann = json_object_get(t, "annotations");
    assert_true(json_is_false(json_object_get(ann, "readOnlyHint")));
    assert_true(json_is_true(json_object_get(ann, "idempotentHint")));
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_object_get(t, "inputSchema"), "required"), 0)),
                        "id");

    t = tool_named(tools, "getapitoken-returns-api-token-metadata");
    assert_true(json_is_true(json_object_get(json_object_get(t, "annotations"), "readOnlyHint")));
}

static void test_seed_tools_call(void **state)
{
    json_t *r;

    (void)state;
    line("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
         "\"getapitokens-returns-all-api-tokens\",\"arguments\":{\"revoked\":true}}}");
    assert_non_null(called);
    assert_string_equal(called->name, "getapitokens-returns-all-api-tokens");
    assert_true(json_is_true(json_object_get(called_args, "revoked")));
    r = json_object_get(reply_json, "result");
    assert_true(json_is_array(json_object_get(json_object_get(r, "structuredContent"), "tokens")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_tools_list),
        cmocka_unit_test(test_seed_tools_call),
    };

    return cmocka_run_group_tests_name("mcp_seed", tests, setup, teardown);
}
