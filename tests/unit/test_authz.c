/* SPDX-License-Identifier: Apache-2.0 */
/* test_authz.c: the permission rules: the compiler's errors (FILE:LINE:COL), deny by default,
 * selection by tool, route, call and class, the argument limits, the principals, the missing
 * OAuth scope, the audit allow-list; and the audit trail's record format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/audit.h"
#include "naftikod/authz.h"

static char n_gen[] = "generatetoken", q_gen[] = "svc.generatetoken", n_list[] = "getapitokens",
            q_list[] = "svc.getapitokens", t_gen[] = "generatetoken-generates",
            t_list[] = "getapitokens-returns", t_del[] = "delete-all", m_post[] = "POST",
            m_get[] = "GET", p_gen[] = "/v1/apitokens/generate", p_list[] = "/v1/apitokens";
static struct nk_operation gen_target = {.name = n_gen, .qname = q_gen};
static struct nk_operation list_target = {.name = n_list, .qname = q_list};
static struct nk_exposed gen_tool = {
    .name = t_gen, .target = &gen_target, .hints = {.destructive = false}};
static struct nk_exposed list_tool = {
    .name = t_list, .target = &list_target, .hints = {.read_only = true}};
static struct nk_exposed del_tool = {.name = t_del, .hints = {.destructive = true}};
static struct nk_exposed gen_route = {
    .name = n_gen, .target = &gen_target, .method = m_post, .path = p_gen};
static struct nk_exposed list_route = {
    .name = n_list, .target = &list_target, .method = m_get, .path = p_list};

static struct nk_principal token(const char *name)
{
    struct nk_principal p;

    memset(&p, 0, sizeof(p));
    p.kind = NK_PRINCIPAL_TOKEN;
    snprintf(p.name, sizeof(p.name), "%s", name);
    return p;
}

static struct nk_authz *compile(const char *text)
{
    struct nk_authz *az = NULL;
    struct nk_error err;

    memset(&err, 0, sizeof(err));
    if (nk_authz_parse("p.yaml", text, strlen(text), &az, &err) != NK_OK) {
        print_error("unexpected error: %s\n", err.msg);
        fail();
    }
    return az;
}

/* Decide and return whether allowed; d's reason and rule in out (may be NULL). */
static bool decide(const struct nk_authz *az, const struct nk_principal *p,
                   enum nk_adapter_type type, const struct nk_exposed *op, const char *args_json,
                   struct nk_authz_decision *out)
{
    struct nk_authz_decision d;
    json_t *args = args_json != NULL ? json_loads(args_json, 0, NULL) : NULL;
    bool ok;

    assert_int_equal(nk_authz_check(az, p, type, op, args, &d), NK_OK);
    ok = d.allowed;
    if (out != NULL) {
        *out = d;
        d.audit_args = NULL;
    }
    nk_authz_decision_cleanup(&d);
    json_decref(args);
    return ok;
}

static void test_errors(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"callers: []\nbogus: 1\n", "p.yaml:2:1: unknown key 'bogus' in the permissions file"},
        {"- a\n", "p.yaml:1:1: the permissions file must be a mapping"},
        {"audit: []\n", "p.yaml:1:1: the permissions file needs 'callers'"},
        {"callers:\n  - match: {token: a}\n    grants: []\n",
         "p.yaml:2:5: a caller needs a 'name'"},
        {"callers:\n  - name: a\n    match: {token: a, document: b}\n    grants: []\n",
         "p.yaml:3:12: 'match' names exactly one of"},
        {"callers:\n  - name: a\n    match: {token: a}\n", "p.yaml:2:5: caller 'a' needs 'grants'"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - class: safe\n",
         "p.yaml:5:16: 'class' is readOnly or notDestructive"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - routes: /x\n",
         "p.yaml:5:17: a route is 'METHOD /path'"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - routes: get /x\n",
         "p.yaml:5:17: unknown HTTP method 'get'"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - {}\n",
         "p.yaml:5:9: an empty grant"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - tools: x\n"
         "        args: {n: {enum: a}}\n",
         "p.yaml:6:26: 'enum' must be a list"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - tools: x\n"
         "        args: {n: {minimum: 5, maximum: 1}}\n",
         "'minimum' is above 'maximum' for argument 'n'"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - tools: x\n"
         "        args: {n: {maxLength: -1}}\n",
         "'maxLength' must be an integer from 0"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants:\n      - tools: x\n"
         "        scope: 'a b'\n",
         "'scope' is one OAuth scope"},
        {"callers:\n  - name: a\n    match: {token: a}\n    grants: []\n"
         "  - name: a\n    match: {token: b}\n    grants: []\n",
         "p.yaml:5:11: caller name 'a' is used twice (first at line 2)"},
        {"callers: []\naudit:\n  - tools: '*'\n    fields: [name, body.password]\n",
         "p.yaml:4:20: audit field 'body.password' looks like a credential"},
        {"callers:\n  - name: a\n    match: {anonymous: false}\n    grants: []\n",
         "'anonymous' is true"},
        {"callers:\n  - name: a\n    match: {oauth: {}}\n    grants: []\n",
         "'oauth' names a subject, a client or scopes"},
        {"callers: [\n", "p.yaml:"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct nk_authz *az = NULL;
        struct nk_error err;

        memset(&err, 0, sizeof(err));
        assert_int_not_equal(
            nk_authz_parse("p.yaml", cases[i].text, strlen(cases[i].text), &az, &err), NK_OK);
        assert_null(az);
        if (strstr(err.msg, cases[i].want) == NULL) {
            print_error("case %zu: got '%s', want '%s'\n", i, err.msg, cases[i].want);
            fail();
        }
    }
}

static void test_default_deny(void **state)
{
    struct nk_authz *az =
        compile("callers:\n  - name: ci\n    match: {token: ci}\n    grants: []\n");
    struct nk_principal p = token("ci");
    struct nk_authz_decision d;

    (void)state;
    assert_false(decide(az, &p, NK_ADAPTER_MCP, &list_tool, "{}", &d));
    assert_string_equal(d.rule, "default deny");
    assert_non_null(strstr(d.reason, "no grant in p.yaml lets token 'ci' use tool "
                                     "'getapitokens-returns'"));
    assert_string_equal(d.missing_scope, "");
    assert_false(decide(az, &p, NK_ADAPTER_REST, &list_route, "{}", &d));
    assert_non_null(strstr(d.reason, "route 'GET /v1/apitokens'"));
    assert_false(nk_authz_visible(az, &p, NK_ADAPTER_MCP, &list_tool));
    assert_int_equal(nk_authz_n_callers(az), 1);
    assert_int_equal(nk_authz_n_grants(az), 0);
    nk_authz_free(az);
    nk_authz_free(NULL);
}

static void test_selectors(void **state)
{
    struct nk_authz *az = compile("callers:\n"
                                  "  - name: tools\n    match: {token: t}\n    grants:\n"
                                  "      - tools: 'generatetoken-*'\n"
                                  "  - name: routes\n    match: {token: r}\n    grants:\n"
                                  "      - routes: ['GET /v1/*', 'DELETE /x']\n"
                                  "  - name: calls\n    match: {token: c}\n    grants:\n"
                                  "      - calls: '*.generatetoken'\n"
                                  "  - name: ro\n    match: {token: ro}\n    grants:\n"
                                  "      - class: readOnly\n"
                                  "  - name: nd\n    match: {token: nd}\n    grants:\n"
                                  "      - class: notDestructive\n"
                                  "  - name: ro-tools\n    match: {token: rt}\n    grants:\n"
                                  "      - tools: '*'\n        class: readOnly\n");
    struct nk_principal t = token("t"), r = token("r"), c = token("c"), ro = token("ro"),
                        nd = token("nd"), rt = token("rt");
    struct nk_authz_decision d;

    (void)state;
    assert_true(decide(az, &t, NK_ADAPTER_MCP, &gen_tool, NULL, &d));
    assert_string_equal(d.rule, "p.yaml:5 (caller tools)");
    assert_false(decide(az, &t, NK_ADAPTER_MCP, &list_tool, NULL, NULL));
    assert_false(decide(az, &t, NK_ADAPTER_REST, &gen_route, NULL, NULL)); /* tools only */
    assert_true(decide(az, &r, NK_ADAPTER_REST, &list_route, NULL, NULL));
    assert_false(decide(az, &r, NK_ADAPTER_REST, &gen_route, NULL, NULL)); /* method */
    assert_false(decide(az, &r, NK_ADAPTER_MCP, &list_tool, NULL, NULL));
    assert_true(decide(az, &c, NK_ADAPTER_REST, &gen_route, NULL, NULL)); /* both adapters */
    assert_true(decide(az, &c, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));
    assert_false(decide(az, &c, NK_ADAPTER_MCP, &del_tool, NULL, NULL)); /* no target */
    assert_true(decide(az, &ro, NK_ADAPTER_MCP, &list_tool, NULL, NULL));
    assert_true(decide(az, &ro, NK_ADAPTER_REST, &list_route, NULL, NULL)); /* GET */
    assert_false(decide(az, &ro, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));
    assert_false(decide(az, &ro, NK_ADAPTER_REST, &gen_route, NULL, NULL)); /* POST */
    assert_true(decide(az, &nd, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));    /* destructive: false */
    assert_false(decide(az, &nd, NK_ADAPTER_MCP, &del_tool, NULL, NULL));
    assert_false(decide(az, &nd, NK_ADAPTER_REST, &gen_route, NULL, NULL)); /* no hints: POST */
    assert_true(decide(az, &rt, NK_ADAPTER_MCP, &list_tool, NULL, NULL));
    assert_false(decide(az, &rt, NK_ADAPTER_MCP, &gen_tool, NULL, NULL)); /* AND, not OR */
    assert_true(nk_authz_visible(az, &t, NK_ADAPTER_MCP, &gen_tool));
    assert_false(nk_authz_visible(az, &t, NK_ADAPTER_MCP, &list_tool));
    nk_authz_free(az);
}

static void test_limits(void **state)
{
    struct nk_authz *az = compile(
        "callers:\n  - name: ci-minter\n    match: {token: ci}\n    grants:\n"
        "      - tools: generatetoken-generates\n"
        "        routes: POST /v1/apitokens/generate\n"
        "        args:\n"
        "          body.roles: {enum: ['Continuous Integration'], maxItems: 2, required: true}\n"
        "          body.name: {prefix: ci-, maxLength: 6}\n"
        "          count: {minimum: 1, maximum: 10}\n"
        "          flag: {enum: [true]}\n");
    struct nk_principal p = token("ci");
    struct nk_authz_decision d;
    static const struct {
        const char *args, *why; /* why NULL: allowed */
    } cases[] = {
        {"{\"body\":{\"name\":\"ci-a\",\"roles\":[\"Continuous Integration\"]}}", NULL},
        {"{\"body\":{\"roles\":[\"Admin\"]}}",
         "argument 'body.roles' entry 0: value 'Admin' is not one of the 1 allowed"},
        {"{\"body\":{\"roles\":[\"Continuous Integration\",\"Admin\"]}}", "entry 1: value 'Admin'"},
        {"{\"body\":{\"roles\":\"Admin\"}}", "value 'Admin' is not one of"},
        {"{\"body\":{\"roles\":[[\"Admin\"]]}}", "is a nested array"},
        {"{\"body\":{\"roles\":[{\"x\":1}]}}", "is an object"},
        {"{\"body\":{\"roles\":[\"Continuous Integration\",\"Continuous Integration\","
         "\"Continuous Integration\"]}}",
         "has more than 2 entries"},
        {"{\"body\":{\"name\":\"x\"}}", "argument 'body.roles' is required"},
        {"{}", "argument 'body.roles' is required"},
        {"{\"body.roles\":[\"Continuous Integration\"]}", NULL}, /* a dotted name as written */
        {"{\"body\":{\"roles\":[],\"name\":\"evil\"}}", "does not start with 'ci-'"},
        {"{\"body\":{\"roles\":[],\"name\":\"ci-\xc3\xa9\xc3\xa9\xc3\xa9\"}}", NULL}, /* 6 chars */
        {"{\"body\":{\"roles\":[],\"name\":\"ci-abcd\"}}", "is longer than 6 characters"},
        {"{\"body\":{\"roles\":[]},\"count\":10}", NULL},
        {"{\"body\":{\"roles\":[]},\"count\":\"3\"}", NULL}, /* REST strings */
        {"{\"body\":{\"roles\":[]},\"count\":11}", "outside the allowed range"},
        {"{\"body\":{\"roles\":[]},\"count\":0.5}", "outside the allowed range"},
        {"{\"body\":{\"roles\":[]},\"count\":\"3x\"}", "is not a number"},
        {"{\"body\":{\"roles\":[]},\"count\":true}", "is not a number"},
        {"{\"body\":{\"roles\":[]},\"flag\":true}", NULL},
        {"{\"body\":{\"roles\":[]},\"flag\":\"true\"}", NULL}, /* REST text */
        {"{\"body\":{\"roles\":[]},\"flag\":false}", "value 'false' is not one of"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool ok = decide(az, &p, NK_ADAPTER_MCP, &gen_tool, cases[i].args, &d);

        if (ok != (cases[i].why == NULL) ||
            (cases[i].why != NULL && strstr(d.reason, cases[i].why) == NULL)) {
            print_error("case %zu (%s): allowed=%d reason '%s'\n", i, cases[i].args, ok, d.reason);
            fail();
        }
        if (!ok)
            assert_string_equal(d.rule, "p.yaml:5 (caller ci-minter)");
    }
    /* the reason names the limit's position */
    assert_false(
        decide(az, &p, NK_ADAPTER_REST, &gen_route, "{\"body\":{\"roles\":[\"Admin\"]}}", &d));
    assert_non_null(strstr(d.reason, "(limit at p.yaml:8:11, caller ci-minter)"));
    /* visible whatever the arguments */
    assert_true(nk_authz_visible(az, &p, NK_ADAPTER_MCP, &gen_tool));
    nk_authz_free(az);
}

static void test_principals(void **state)
{
    struct nk_authz *az = compile(
        "callers:\n"
        "  - name: bots\n    match: {token: 'bot-*'}\n    grants: [{tools: '*'}]\n"
        "  - name: doc\n    match: {document: alice}\n    grants: [{tools: '*'}]\n"
        "  - name: anon\n    match: {anonymous: true}\n    grants: [{class: readOnly}]\n"
        "  - name: oa\n    match: {oauth: {subject: 'u-*', client: agent, scopes: [a, b]}}\n"
        "    grants: [{tools: '*'}]\n");
    struct nk_principal p;

    (void)state;
    p = token("bot-1");
    assert_true(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));
    p = token("alice"); /* a token named like the document caller is not it */
    assert_false(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));
    p.kind = NK_PRINCIPAL_DOCUMENT;
    assert_true(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));
    memset(&p, 0, sizeof(p));
    assert_true(decide(az, &p, NK_ADAPTER_MCP, &list_tool, NULL, NULL)); /* anonymous */
    assert_false(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));
    p.kind = NK_PRINCIPAL_OAUTH;
    snprintf(p.name, sizeof(p.name), "u-7");
    snprintf(p.client_id, sizeof(p.client_id), "agent");
    snprintf(p.scope, sizeof(p.scope), "b x a");
    assert_true(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));
    snprintf(p.scope, sizeof(p.scope), "b x ab");
    assert_false(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, NULL)); /* "ab" is not "a" */
    snprintf(p.scope, sizeof(p.scope), "a b");
    snprintf(p.client_id, sizeof(p.client_id), "other");
    assert_false(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, NULL));
    nk_authz_free(az);
}

static void test_missing_scope(void **state)
{
    struct nk_authz *az = compile("callers:\n"
                                  "  - name: oa\n    match: {oauth: {subject: '*'}}\n"
                                  "    grants:\n"
                                  "      - class: readOnly\n        scope: tokens.read\n"
                                  "      - calls: '*.generatetoken'\n        scope: tokens.write\n"
                                  "  - name: t\n    match: {token: t}\n"
                                  "    grants:\n      - tools: '*'\n        scope: tokens.write\n");
    struct nk_principal p;
    struct nk_authz_decision d;

    (void)state;
    memset(&p, 0, sizeof(p));
    p.kind = NK_PRINCIPAL_OAUTH;
    snprintf(p.name, sizeof(p.name), "u");
    snprintf(p.scope, sizeof(p.scope), "tokens.read");
    assert_true(decide(az, &p, NK_ADAPTER_MCP, &list_tool, NULL, NULL));
    assert_false(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, &d));
    assert_string_equal(d.missing_scope, "tokens.write");
    assert_non_null(strstr(d.reason, "needs the OAuth scope 'tokens.write'"));
    assert_false(nk_authz_visible(az, &p, NK_ADAPTER_MCP, &gen_tool));
    p = token("t"); /* a token caller cannot hold scopes: denied, no step-up */
    assert_false(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, NULL, &d));
    assert_string_equal(d.missing_scope, "");
    nk_authz_free(az);
}

static void test_audit_fields(void **state)
{
    struct nk_authz *az = compile("callers:\n  - name: a\n    match: {token: a}\n"
                                  "    grants: [{tools: '*'}]\n"
                                  "audit:\n  - calls: '*.generatetoken'\n"
                                  "    fields: [body.name, body.roles, body, absent]\n");
    struct nk_principal p = token("a");
    struct nk_authz_decision d;
    char *s;
    char big[600];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_true(decide(az, &p, NK_ADAPTER_MCP, &gen_tool,
                       "{\"body\":{\"name\":\"n\",\"roles\":[\"r\"],\"secret\":\"s\"}}", &d));
    s = json_dumps(d.audit_args, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"body\":\"(object)\",\"body.name\":\"n\",\"body.roles\":[\"r\"]}");
    free(s);
    nk_authz_decision_cleanup(&d);
    assert_true(decide(az, &p, NK_ADAPTER_MCP, &list_tool, "{\"body\":{\"name\":\"n\"}}", &d));
    assert_null(d.audit_args); /* not an operation the audit section names */
    {
        char args[800];
        json_t *v;

        snprintf(args, sizeof(args), "{\"body\":{\"name\":\"%s\"}}", big);
        assert_true(decide(az, &p, NK_ADAPTER_MCP, &gen_tool, args, &d));
        v = json_object_get(d.audit_args, "body.name");
        assert_int_equal(json_string_length(v), 256);
        nk_authz_decision_cleanup(&d);
    }
    nk_authz_free(az);
}

static void test_audit_format(void **state)
{
    struct nk_principal p = token("ci");
    struct nk_audit_record r;
    json_t *args = json_pack("{s:[s]}", "body.roles", "Admin"), *j;
    char *line;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.request_id = "rid-1";
    r.caller = &p;
    r.adapter = "svc-mcp";
    r.kind = "tool";
    r.operation = "gen\xff";
    r.allowed = false;
    r.rule = "p.yaml:5 (caller ci-minter)";
    r.reason = "permission denied: ...";
    r.args = args;
    r.outcome = "denied";
    r.latency_ms = 1.26;
    line = nk_audit_format(&r);
    assert_non_null(line);
    assert_null(strchr(line, '\n'));
    j = json_loads(line, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "deny");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "caller"), "kind")),
                        "token");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "caller"), "name")),
                        "ci");
    assert_string_equal(json_string_value(json_object_get(j, "operation")), "gen\xef\xbf\xbd");
    assert_null(json_object_get(j, "upstream_status"));
    assert_true(json_equal(json_object_get(j, "args"), args));
    assert_true(json_real_value(json_object_get(j, "latency_ms")) > 1.29 &&
                json_real_value(json_object_get(j, "latency_ms")) < 1.31);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "time"))), 24);
    json_decref(j);
    free(line);
    json_decref(args);
}

static void count_warning(void *ud, const char *file, unsigned line, const char *text)
{
    size_t *n = ud;
    char msg[1200];

    snprintf(msg, sizeof(msg), "%s:%u: %s", file, line, text);
    (*n)++;
    if (strncmp(msg, "p.yaml:", 7) != 0 || strstr(msg + 7, "p.yaml") != NULL ||
        (strstr(msg, "p.yaml:5: tool 'gen-typo' (caller a) names no MCP tool served") == NULL &&
         strstr(msg, "p.yaml:5: route 'GET /nope' (caller a) names no REST route served") == NULL &&
         strstr(msg, "p.yaml:9: call 'x.*' (audit) names no consumed operation served") == NULL)) {
        print_error("unexpected warning: %s\n", msg);
        fail();
    }
}

/* Names in the permissions that match nothing served are reported (the recipes name real
 * operations: integration.authz checks the log has no such warning). */
static void test_lint(void **state)
{
    const char *files[] = {NK_SOURCE_DIR "/capabilities/stackrox-apitokenservice.yaml"};
    struct nk_optable *t = NULL;
    struct nk_diags d;
    struct nk_authz *az;
    size_t n = 0;

    (void)state;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 1, NULL, &d, &t), NK_OK);
    assert_int_equal(nk_optable_group(t, NULL, &d), NK_OK);
    az = compile("callers:\n  - name: a\n    match: {token: a}\n    grants:\n"
                 "      - tools: [gen-typo, 'generatetoken-*']\n"
                 "        routes: ['GET /nope', 'PATCH /v1/v1/apitokens/revoke/{id}']\n"
                 "        calls: '*.getapitokens'\n"
                 "audit:\n  - calls: 'x.*'\n    fields: [id]\n");
    assert_int_equal(nk_authz_lint(az, t, count_warning, &n), 3);
    assert_int_equal(n, 3);
    nk_authz_free(az);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_default_deny),
        cmocka_unit_test(test_selectors),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_principals),   cmocka_unit_test(test_missing_scope),
        cmocka_unit_test(test_audit_fields), cmocka_unit_test(test_audit_format),
        cmocka_unit_test(test_lint),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
