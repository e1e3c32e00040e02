/* SPDX-License-Identifier: Apache-2.0 */
/* test_invoke.c: context, argument checking, request building and answer mapping, against the
 * shipped StackRox capability (pointed at a recording server) and a document using every
 * placement and authentication type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_http.h"
#include "invoke_docs.h"
#include "naftikod/invoke.h"
#include "../../src/invoke_int.h"
#include "naftikod/loop.h"

#define SEED NK_SOURCE_DIR "/capabilities/stackrox-apitokenservice.yaml"
#define TEST_KEY "Bearer test-key-not-a-secret"

/* ---- fixtures ----------------------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    assert_non_null(f);
    buf = malloc(1 << 20);
    assert_non_null(buf);
    n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static struct nk_optable *load_mem(const char *doc)
{
    struct nk_diags d;
    struct nk_optable *t = NULL;

    nk_diags_init(&d);
    if (nk_optable_load_mem("test.yaml", doc, strlen(doc), NULL, &d, &t) != NK_OK)
        nk_diags_print(&d, stderr);
    assert_non_null(t);
    nk_diags_cleanup(&d);
    return t;
}

/* The shipped capability with its https baseUri turned into http for the test server. */
static struct nk_optable *load_seed_http(void)
{
    size_t len;
    char *doc = read_file(SEED, &len), *p = strstr(doc, "baseUri: https://");
    struct nk_optable *t;

    assert_non_null(p);
    memmove(p + 13, p + 14, strlen(p + 14) + 1); /* "https" -> "http" */
    t = load_mem(doc);
    free(doc);
    return t;
}

static const struct nk_exposed *find_exposed(const struct nk_optable *t, enum nk_adapter_type ty,
                                             const char *name)
{
    size_t i, j;

    for (i = 0; i < t->n_adapters; i++)
        for (j = 0; t->adapters[i].type == ty && j < t->adapters[i].n_ops; j++)
            if (strcmp(t->adapters[i].ops[j].name, name) == 0)
                return &t->adapters[i].ops[j];
    fail_msg("no exposed operation %s", name);
    return NULL;
}

static struct nk_context *context_for(struct nk_optable *t, const char *host)
{
    struct nk_var vars[] = {{"central-host", host}};
    struct nk_context *c = NULL;
    struct nk_diags d;

    nk_diags_init(&d);
    if (nk_context_new(t, vars, 1, &d, &c) != NK_OK)
        nk_diags_print(&d, stderr);
    assert_non_null(c);
    nk_diags_cleanup(&d);
    return c;
}

static json_t *js(const char *text)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);

    assert_non_null(j);
    return j;
}

/* The output of an OK result passed through raw, parsed; borrowed: kept until the next call. */
static json_t *js_raw(const struct nk_result *r)
{
    static json_t *last;

    json_decref(last);
    assert_true(r->raw_is_output);
    last = js(r->raw);
    return last;
}

/* Build op with args (JSON text) and return the request (caller cleans up). */
static enum nk_rc build(struct nk_context *c, const struct nk_exposed *op, const char *args,
                        enum nk_args_mode mode, struct nk_upstream_request *r, struct nk_error *e)
{
    json_t *a = js(args);
    enum nk_rc rc;

    memset(e, 0, sizeof(*e));
    rc = nk_invoke_build(c, op, a, mode, "req-7", r, e);
    json_decref(a);
    return rc;
}

static const char *header(const struct nk_upstream_request *r, const char *name, size_t *count)
{
    size_t i, n = strlen(name), k = 0;
    const char *first = NULL;

    for (i = 0; i < r->n_headers; i++) {
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':') {
            if (first == NULL)
                first = r->headers[i] + n + 2;
            k++;
        }
    }
    if (count != NULL)
        *count = k;
    return first;
}

/* Completion slot. */
struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct nk_result *r;
};

static void on_result(void *ud, struct nk_result *r)
{
    struct slot *s = ud;

    pthread_mutex_lock(&s->mu);
    s->r = r;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static struct nk_result *call(struct nk_context *c, struct nk_upstream *u,
                              const struct nk_exposed *op, const char *args, enum nk_args_mode mode)
{
    struct slot s;
    struct nk_error e;
    json_t *a = js(args);

    memset(&e, 0, sizeof(e));
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.r = NULL;
    if (nk_invoke(c, u, op, a, mode, "req-42", on_result, &s, &e) != NK_OK)
        fail_msg("nk_invoke: %s", e.msg);
    json_decref(a);
    pthread_mutex_lock(&s.mu);
    while (s.r == NULL)
        pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    return s.r;
}

/* Central-like answers by path. */
static void central(void *ud, const struct fake_req *req, struct fake_resp *resp)
{
    (void)ud;
    if (strncmp(req->target, "/v1/apitokens/unknown", 21) == 0) {
        resp->status = 400;
        resp->body = strdup("{\"code\":3,\"message\":\"token with id 'unknown' does not exist: "
                            "invalid arguments\",\"details\":[],\"error\":\"x\"}");
    } else if (strncmp(req->target, "/v1/apitokens/revoke/", 21) == 0) {
        resp->body = strdup("{}");
    } else if (strncmp(req->target, "/v1/apitokens/notjson", 21) == 0) {
        resp->body = strdup("<html>oops</html>");
        resp->content_type = "text/html";
    } else if (strncmp(req->target, "/v1/apitokens/empty", 19) == 0) {
        resp->body = strdup("");
    } else if (strncmp(req->target, "/v1/apitokens/text500", 21) == 0) {
        resp->status = 500;
        resp->body = strdup("  internal\n  failure  ");
        resp->content_type = "text/plain";
    } else if (strncmp(req->target, "/v1/apitokens/s101", 18) == 0) {
        resp->status = 101;
        resp->body = strdup("{\"id\":\"switched\"}");
        resp->extra_headers = "Upgrade: websocket\r\nConnection: Upgrade\r\n";
        resp->no_length = true; /* then the connection closes: what a hostile upstream did */
    } else if (strncmp(req->target, "/v1/apitokens/s302", 18) == 0) {
        resp->status = 302;
        resp->body = strdup("{}");
        resp->extra_headers = "Location: http://elsewhere.example/steal\r\n";
    } else if (strncmp(req->target, "/v1/apitokens/s418", 18) == 0) {
        resp->status = 418;
        resp->body = strdup("<html><title>I'm a teapot \xff\xc3</title></html>");
        resp->content_type = "text/html";
    } else if (strncmp(req->target, "/v1/apitokens/longmsg", 21) == 0) {
        /* a message of 400 two-byte characters: any cut must fall between them */
        char *b = malloc(1000);
        size_t k;
        strcpy(b, "{\"message\":\"");
        for (k = 0; k < 400; k++)
            strcat(b, "\xc3\xa9");
        strcat(b, "\"}");
        resp->status = 400;
        resp->body = b;
    } else if (strncmp(req->target, "/v1/apitokens/truncated", 23) == 0) {
        resp->body = strdup("[{\"id\":\"a\"},{\"id\":");
    } else if (strncmp(req->target, "/v1/apitokens/badutf8", 21) == 0) {
        resp->body = strdup("{\"id\":\"\xc3\"}");
    } else if (strncmp(req->target, "/v1/apitokens/generate", 22) == 0) {
        resp->body = strdup("{\"token\":\"t\",\"metadata\":{\"id\":\"1\"}}");
    } else {
        resp->body = strdup("{\"id\":\"abc\",\"name\":\"n\",\"revoked\":false}");
    }
    resp->body_len = strlen(resp->body);
}

struct env {
    struct fake_http *srv;
    struct nk_upstream *up;
    struct nk_optable *t;
    struct nk_context *ctx;
};

/* The loop the seed tests' client runs on. */
static struct nk_loop *g_loop;

static int setup_seed(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    char host[64];

    setenv("STACKROX_API_KEY", TEST_KEY, 1);
    e->srv = fake_http_start(central, NULL);
    snprintf(host, sizeof(host), "127.0.0.1:%u", (unsigned)fake_http_port(e->srv));
    assert_int_equal(nk_loop_new(&g_loop, NULL), NK_OK);
    assert_int_equal(nk_loop_start(g_loop, NULL), NK_OK);
    assert_int_equal(nk_upstream_new(g_loop, NULL, &e->up, NULL), NK_OK);
    e->t = load_seed_http();
    e->ctx = context_for(e->t, host);
    *state = e;
    return 0;
}

static int teardown_seed(void **state)
{
    struct env *e = *state;

    nk_upstream_free(e->up);
    nk_loop_free(g_loop);
    g_loop = NULL;
    nk_context_unref(e->ctx);
    nk_optable_unref(e->t);
    fake_http_stop(e->srv);
    free(e);
    return 0;
}

/* ---- seed: building ----------------------------------------------------------------------- */

/* Issue 13: the consumer is found through its stored index; an operation of another table (same
 * index, other consumer) is still refused, as the scan it replaces refused it. */
static void test_foreign_operation(void **state)
{
    struct env *e = *state;
    struct nk_optable *other = load_seed_http();
    const struct nk_exposed *get = find_exposed(other, NK_ADAPTER_REST, "getapitoken");
    struct nk_upstream_request r;
    struct nk_error err;

    assert_int_equal(get->target->consumer->index,
                     find_exposed(e->t, NK_ADAPTER_REST, "getapitoken")->target->consumer->index);
    assert_int_equal(build(e->ctx, get, "{\"id\":\"x\"}", NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INTERNAL);
    assert_non_null(strstr(err.msg, "does not belong"));
    nk_optable_unref(other);
}

static void test_seed_build_path_encoding(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *get = find_exposed(e->t, NK_ADAPTER_REST, "getapitoken");
    const char *ids[] = {"../x?y=1#z", "a/b", "%", "\xc3\xa9", "a b", "..."};
    const char *want[] = {"..%2Fx%3Fy%3D1%23z", "a%2Fb", "%25", "%C3%A9", "a%20b", "..."};
    struct nk_upstream_request r;
    struct nk_error err;
    char args[128], url[256];
    json_t *a;
    size_t i, n;

    for (i = 0; i < 6; i++) {
        a = json_pack("{ss}", "id", ids[i]);
        assert_int_equal(nk_invoke_build(e->ctx, get, a, NK_ARGS_STRINGS, NULL, &r, &err), NK_OK);
        json_decref(a);
        snprintf(url, sizeof(url), "%s/v1/apitokens/%s", fake_http_base(e->srv), want[i]);
        assert_string_equal(r.url, url);
        assert_string_equal(r.method, "GET");
        assert_null(r.body);
        assert_string_equal(header(&r, "Authorization", &n), TEST_KEY);
        assert_int_equal(n, 1);
        assert_string_equal(header(&r, "Accept", NULL), "application/json");
        assert_null(header(&r, "X-Request-Id", NULL));
        assert_null(header(&r, "Content-Type", NULL));
        nk_upstream_request_cleanup(&r);
    }

    /* required, empty */
    assert_int_equal(build(e->ctx, get, "{}", NK_ARGS_STRINGS, &r, &err), NK_ERR_INVALID);
    assert_string_equal(err.msg, "missing required parameter 'id'");
    assert_null(r.url);
    assert_int_equal(build(e->ctx, get, "{\"id\":\"\"}", NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "'id'"));
    assert_non_null(strstr(err.msg, "empty"));
    /* MCP gives JSON: a number is not a string */
    assert_int_equal(build(e->ctx, get, "{\"id\":12}", NK_ARGS_JSON, &r, &err), NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'id' must be a string, got 12");

    snprintf(args, sizeof(args), "{\"id\":\"abc\"}");
    assert_int_equal(build(e->ctx, get, args, NK_ARGS_JSON, &r, &err), NK_OK);
    assert_string_equal(header(&r, "X-Request-Id", NULL), "req-7");
    nk_upstream_request_cleanup(&r);
}

static void test_seed_build_boolean_query(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *list = find_exposed(e->t, NK_ADAPTER_REST, "getapitokens");
    const struct nk_exposed *tool =
        find_exposed(e->t, NK_ADAPTER_MCP, "getapitokens-returns-all-api-tokens");
    const char *yes[] = {"true", "True", "TRUE", "t", "T", "1"};
    const char *no[] = {"false", "False", "FALSE", "f", "F", "0"};
    struct nk_upstream_request r;
    struct nk_error err;
    char args[64], url[256];
    size_t i;

    for (i = 0; i < 6; i++) {
        snprintf(args, sizeof(args), "{\"revoked\":\"%s\"}", yes[i]);
        assert_int_equal(build(e->ctx, list, args, NK_ARGS_STRINGS, &r, &err), NK_OK);
        snprintf(url, sizeof(url), "%s/v1/apitokens?revoked=true", fake_http_base(e->srv));
        assert_string_equal(r.url, url);
        nk_upstream_request_cleanup(&r);
        snprintf(args, sizeof(args), "{\"revoked\":\"%s\"}", no[i]);
        assert_int_equal(build(e->ctx, list, args, NK_ARGS_STRINGS, &r, &err), NK_OK);
        snprintf(url, sizeof(url), "%s/v1/apitokens?revoked=false", fake_http_base(e->srv));
        assert_string_equal(r.url, url);
        nk_upstream_request_cleanup(&r);
    }
    /* absent optional: omitted, not sent empty */
    assert_int_equal(build(e->ctx, list, "{}", NK_ARGS_STRINGS, &r, &err), NK_OK);
    snprintf(url, sizeof(url), "%s/v1/apitokens", fake_http_base(e->srv));
    assert_string_equal(r.url, url);
    nk_upstream_request_cleanup(&r);
    assert_int_equal(build(e->ctx, list, "{\"revoked\":null}", NK_ARGS_JSON, &r, &err), NK_OK);
    assert_string_equal(r.url, url);
    nk_upstream_request_cleanup(&r);

    assert_int_equal(build(e->ctx, list, "{\"revoked\":\"maybe\"}", NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'revoked' must be a boolean, got \"maybe\"");
    assert_int_equal(build(e->ctx, list, "{\"revoked\":\"yes\"}", NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INVALID);
    /* MCP: JSON booleans only */
    assert_int_equal(build(e->ctx, tool, "{\"revoked\":true}", NK_ARGS_JSON, &r, &err), NK_OK);
    snprintf(url, sizeof(url), "%s/v1/apitokens?revoked=true", fake_http_base(e->srv));
    assert_string_equal(r.url, url);
    nk_upstream_request_cleanup(&r);
    assert_int_equal(build(e->ctx, tool, "{\"revoked\":\"true\"}", NK_ARGS_JSON, &r, &err),
                     NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'revoked' must be a boolean, got \"true\"");
}

static void test_seed_build_body(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *gen =
        find_exposed(e->t, NK_ADAPTER_MCP, "generatetoken-generates-api-token-given");
    const struct nk_exposed *revoke = find_exposed(e->t, NK_ADAPTER_REST, "revoketoken");
    struct nk_upstream_request r;
    struct nk_error err;
    json_t *b;

    assert_int_equal(build(e->ctx, gen, "{\"body\":{\"name\":\"t\",\"roles\":[\"Admin\"]}}",
                           NK_ARGS_JSON, &r, &err),
                     NK_OK);
    assert_string_equal(r.method, "POST");
    b = js(r.body);
    assert_string_equal(json_string_value(json_object_get(b, "name")), "t");
    assert_int_equal(json_object_size(b), 2);
    json_decref(b);
    assert_string_equal(header(&r, "Content-Type", NULL), "application/json");
    nk_upstream_request_cleanup(&r);

    assert_int_equal(build(e->ctx, gen, "{}", NK_ARGS_JSON, &r, &err), NK_ERR_INVALID);
    assert_string_equal(err.msg, "missing required parameter 'body'");
    assert_int_equal(build(e->ctx, gen, "{\"body\":[1]}", NK_ARGS_JSON, &r, &err), NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'body' must be an object, got [1]");

    assert_int_equal(build(e->ctx, revoke, "{\"id\":\"x\"}", NK_ARGS_STRINGS, &r, &err), NK_OK);
    assert_string_equal(r.method, "PATCH");
    assert_null(r.body);
    nk_upstream_request_cleanup(&r);
}

/* ---- seed: calling ------------------------------------------------------------------------ */

static void test_seed_call_ok(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *get = find_exposed(e->t, NK_ADAPTER_REST, "getapitoken");
    struct nk_result *r;
    struct fake_req *q;
    json_t *want;
    size_t n;

    r = call(e->ctx, e->up, get, "{\"id\":\"../x?y=1#z\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_OK);
    assert_int_equal(r->status, 200);
    /* `$.`: the answer is passed on as it came, not rebuilt */
    assert_true(r->raw_is_output);
    assert_null(r->json);
    assert_string_equal(r->raw, "{\"id\":\"abc\",\"name\":\"n\",\"revoked\":false}");
    want = js("{\"id\":\"abc\",\"name\":\"n\",\"revoked\":false}");
    assert_true(json_equal(js_raw(r), want));
    json_decref(want);
    assert_string_equal(r->content_type, "application/json");
    nk_result_free(r);

    q = fake_http_request(e->srv, 0);
    assert_string_equal(q->method, "GET");
    assert_string_equal(q->target, "/v1/apitokens/..%2Fx%3Fy%3D1%23z");
    assert_string_equal(fake_req_header(q, "Authorization", &n), TEST_KEY);
    assert_int_equal(n, 1);
    assert_string_equal(fake_req_header(q, "X-Request-Id", NULL), "req-42");
    assert_string_equal(fake_req_header(q, "Accept", NULL), "application/json");
    fake_req_free(q);
}

static void test_seed_call_post_body(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *gen = find_exposed(e->t, NK_ADAPTER_REST, "generatetoken");
    struct nk_result *r;
    struct fake_req *q;
    json_t *sent, *want;

    r = call(e->ctx, e->up, gen, "{\"body\":{\"name\":\"ci\",\"roles\":[\"Admin\"]}}",
             NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_OK);
    assert_string_equal(json_string_value(json_object_get(js_raw(r), "token")), "t");
    nk_result_free(r);
    q = fake_http_request(e->srv, 0);
    assert_string_equal(q->method, "POST");
    assert_string_equal(q->target, "/v1/apitokens/generate");
    assert_string_equal(fake_req_header(q, "Content-Type", NULL), "application/json");
    sent = js(q->body);
    want = js("{\"name\":\"ci\",\"roles\":[\"Admin\"]}");
    assert_true(json_equal(sent, want));
    json_decref(sent);
    json_decref(want);
    fake_req_free(q);
}

static void test_seed_call_errors(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *get = find_exposed(e->t, NK_ADAPTER_REST, "getapitoken");
    const struct nk_exposed *revoke =
        find_exposed(e->t, NK_ADAPTER_MCP, "revoketoken-removes-api-token-given");
    struct nk_result *r;

    r = call(e->ctx, e->up, get, "{\"id\":\"unknown\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_UPSTREAM_ERROR);
    assert_int_equal(r->status, 400);
    assert_string_equal(r->message, "upstream answered 400: token with id 'unknown' does not "
                                    "exist: invalid arguments");
    assert_int_equal(json_integer_value(json_object_get(r->json, "code")), 3);
    assert_non_null(r->raw);
    nk_result_free(r);

    r = call(e->ctx, e->up, get, "{\"id\":\"text500\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_UPSTREAM_ERROR);
    assert_int_equal(r->status, 500);
    assert_null(r->json);
    assert_string_equal(r->message, "upstream answered 500: internal failure");
    nk_result_free(r);

    r = call(e->ctx, e->up, get, "{\"id\":\"notjson\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_BAD_UPSTREAM);
    assert_non_null(strstr(r->message, "not JSON"));
    nk_result_free(r);

    r = call(e->ctx, e->up, get, "{\"id\":\"empty\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_OK);
    assert_true(json_is_object(r->json));
    assert_int_equal(json_object_size(r->json), 0);
    nk_result_free(r);

    r = call(e->ctx, e->up, revoke, "{\"id\":\"abc\"}", NK_ARGS_JSON);
    assert_int_equal(r->kind, NK_RES_OK);
    nk_result_free(r);
}

static void test_seed_unreachable(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *get = find_exposed(e->t, NK_ADAPTER_REST, "getapitoken");
    struct nk_context *c;
    struct nk_result *r;
    char host[64];

    snprintf(host, sizeof(host), "127.0.0.1:%u", (unsigned)fake_unused_port());
    c = context_for(e->t, host);
    r = call(c, e->up, get, "{\"id\":\"x\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_UNREACHABLE);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->message, "upstream unreachable: connection refused");
    assert_null(strstr(r->message, "test-key"));
    nk_result_free(r);
    nk_context_unref(c);
}

static void test_seed_dot_segments(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *get = find_exposed(e->t, NK_ADAPTER_REST, "getapitoken");
    const struct nk_exposed *tool =
        find_exposed(e->t, NK_ADAPTER_MCP, "revoketoken-removes-api-token-given");
    const char *dots[] = {"{\"id\":\".\"}", "{\"id\":\"..\"}"};
    struct nk_upstream_request r;
    struct nk_error err;
    size_t i;

    for (i = 0; i < 2; i++) {
        assert_int_equal(build(e->ctx, get, dots[i], NK_ARGS_STRINGS, &r, &err), NK_ERR_INVALID);
        assert_non_null(strstr(err.msg, "path parameter 'id'"));
        assert_non_null(strstr(err.msg, "'.' or '..'"));
        assert_int_equal(build(e->ctx, tool, dots[i], NK_ARGS_JSON, &r, &err), NK_ERR_INVALID);
        assert_non_null(strstr(err.msg, "'id'"));
    }
    /* nothing went upstream */
    assert_int_equal(fake_http_n_requests(e->srv), 0);
    /* names that merely contain dots are ordinary segments */
    assert_int_equal(build(e->ctx, get, "{\"id\":\".a\"}", NK_ARGS_STRINGS, &r, &err), NK_OK);
    nk_upstream_request_cleanup(&r);
}

static void test_seed_call_statuses(void **state)
{
    struct env *e = *state;
    const struct nk_exposed *get = find_exposed(e->t, NK_ADAPTER_REST, "getapitoken");
    struct nk_result *r;
    size_t k;

    /* 101 is not a final answer: never relayed */
    r = call(e->ctx, e->up, get, "{\"id\":\"s101\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_BAD_UPSTREAM);
    assert_non_null(strstr(r->message, "not a final HTTP status"));
    nk_result_free(r);

    /* a redirect is neither followed nor relayed, and its Location is not shown */
    r = call(e->ctx, e->up, get, "{\"id\":\"s302\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_BAD_UPSTREAM);
    assert_non_null(strstr(r->message, "redirected"));
    assert_null(strstr(r->message, "elsewhere"));
    assert_int_equal(fake_http_n_requests(e->srv), 2);
    nk_result_free(r);

    /* a non-JSON error: the summary is valid UTF-8 (bad bytes become '?') */
    r = call(e->ctx, e->up, get, "{\"id\":\"s418\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_UPSTREAM_ERROR);
    assert_int_equal(r->status, 418);
    assert_null(r->json);
    assert_string_equal(r->message, "upstream answered 418: I'm a teapot ??");
    nk_result_free(r);

    /* a long message is cut between characters */
    r = call(e->ctx, e->up, get, "{\"id\":\"longmsg\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_UPSTREAM_ERROR);
    assert_true(nk_invoke_check_json("\"", 1) == false);
    {
        char quoted[600];
        snprintf(quoted, sizeof(quoted), "\"%s\"", r->message);
        assert_true(nk_invoke_check_json(quoted, strlen(quoted)));
    }
    k = strlen(r->message);
    assert_string_equal(r->message + k - 3, "...");
    nk_result_free(r);

    /* pass-through answers are checked: cut JSON and bad UTF-8 are bad upstream answers */
    r = call(e->ctx, e->up, get, "{\"id\":\"truncated\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_BAD_UPSTREAM);
    assert_non_null(strstr(r->message, "not JSON"));
    nk_result_free(r);
    r = call(e->ctx, e->up, get, "{\"id\":\"badutf8\"}", NK_ARGS_STRINGS);
    assert_int_equal(r->kind, NK_RES_BAD_UPSTREAM);
    nk_result_free(r);
}

static void test_check_json(void **state)
{
    static const char *const good[] = {"{}",
                                       " [ ] ",
                                       "0",
                                       "-0.5e+3",
                                       "\"\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
                                       "{\"a\":[1,{\"b\":null}],\"c\":true,\"d\":false}",
                                       "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
                                       "\"\\u0000\"",
                                       "[1e5,2E-3,0.0]"};
    static const char *const bad[] = {"",
                                      " ",
                                      "{",
                                      "[1,]",
                                      "[1 2]",
                                      "{\"a\"}",
                                      "{\"a\":}",
                                      "{a:1}",
                                      "01",
                                      "1.",
                                      ".5",
                                      "-",
                                      "1e",
                                      "tru",
                                      "nul",
                                      "[] []",
                                      "\"\\x\"",
                                      "\"\\u12\"",
                                      "\"\\ud800\"",
                                      "\"\\udc00\"",
                                      "\"\\ud800\\u0041\"",
                                      "\"\t\"",
                                      "\"\xc3\"",
                                      "\"\xc0\xaf\"",
                                      "\"\xed\xa0\x80\"",
                                      "\"\xf4\x90\x80\x80\"",
                                      "\"\xff\"",
                                      "[1]x",
                                      "{\"a\":1,}",
                                      "\"abc"};
    char *deep;
    size_t i, n = NK_JSON_MAX_DEPTH + 1;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!nk_invoke_check_json(good[i], strlen(good[i])))
            fail_msg("refused good JSON #%zu: %s", i, good[i]);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (nk_invoke_check_json(bad[i], strlen(bad[i])))
            fail_msg("accepted bad JSON #%zu: %s", i, bad[i]);
    /* a NUL byte is not JSON; nor is a document cut short by its length */
    assert_false(nk_invoke_check_json("[1]\0", 4));
    assert_false(nk_invoke_check_json("[12]", 3));
    /* nesting: up to the limit, not beyond */
    deep = malloc(2 * n);
    assert_non_null(deep);
    memset(deep, '[', n - 1);
    memset(deep + n - 1, ']', n - 1);
    assert_true(nk_invoke_check_json(deep, 2 * (n - 1)));
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    assert_false(nk_invoke_check_json(deep, 2 * n));
    free(deep);
}

static void test_context_line_break(void **state)
{
    struct nk_optable *t = load_seed_http();
    struct nk_context *c = NULL;
    struct nk_diags d;
    struct nk_var var = {"central-host", "example.invalid"};

    (void)state;
    setenv("STACKROX_API_KEY", "Bearer test-key-not-a-secret\r\nX-Evil: 1", 1);
    nk_diags_init(&d);
    assert_int_equal(nk_context_new(t, &var, 1, &d, &c), NK_ERR_INVALID);
    assert_null(c);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.v[0].msg, "line break"));
    assert_non_null(strstr(d.v[0].msg, "STACKROX_API_KEY"));
    assert_null(strstr(d.v[0].msg, "test-key"));
    assert_null(strstr(d.v[0].msg, "X-Evil"));
    nk_diags_cleanup(&d);
    setenv("STACKROX_API_KEY", TEST_KEY, 1);
    nk_optable_unref(t);
}

/* ---- context ------------------------------------------------------------------------------ */

static void test_context_missing(void **state)
{
    struct nk_optable *t = load_seed_http();
    struct nk_context *c = NULL;
    struct nk_diags d;
    struct nk_var var = {"central-host", "example.invalid"};

    (void)state;
    unsetenv("STACKROX_API_KEY");
    unsetenv("CENTRAL_HOST");
    nk_diags_init(&d);
    assert_int_equal(nk_context_new(t, NULL, 0, &d, &c), NK_ERR_INVALID);
    assert_null(c);
    assert_int_equal(d.n_errors, 2);
    assert_non_null(strstr(d.v[0].msg, "STACKROX_API_KEY"));
    assert_non_null(strstr(d.v[0].msg, "not set"));
    assert_true(d.v[0].line > 0);
    assert_string_equal(d.v[0].file, "test.yaml");
    assert_non_null(strstr(d.v[1].msg, "central-host"));
    assert_non_null(strstr(d.v[1].msg, "CENTRAL_HOST"));
    nk_diags_cleanup(&d);

    /* the environment fills a server variable too */
    setenv("STACKROX_API_KEY", TEST_KEY, 1);
    setenv("CENTRAL_HOST", "central.example:8443", 1);
    nk_diags_init(&d);
    assert_int_equal(nk_context_new(t, NULL, 0, &d, &c), NK_OK);
    assert_int_equal(d.n, 0);
    nk_diags_cleanup(&d);
    assert_ptr_equal(nk_context_table(c), t);
    {
        struct nk_upstream_request r;
        struct nk_error err;
        assert_int_equal(build(c, find_exposed(t, NK_ADAPTER_REST, "getapitokens"), "{}",
                               NK_ARGS_STRINGS, &r, &err),
                         NK_OK);
        assert_string_equal(r.url, "http://central.example:8443/v1/apitokens");
        nk_upstream_request_cleanup(&r);
    }
    nk_context_unref(c);
    unsetenv("CENTRAL_HOST");
    /* --var wins */
    nk_diags_init(&d);
    assert_int_equal(nk_context_new(t, &var, 1, &d, &c), NK_OK);
    nk_diags_cleanup(&d);
    /* the context holds its own reference to the table */
    nk_optable_unref(t);
    assert_non_null(nk_context_table(c));
    nk_context_unref(nk_context_ref(c));
    nk_context_unref(c);
    nk_context_unref(NULL);
    nk_result_free(NULL);
}

/* ---- every placement and authentication --------------------------------------------------- */

struct every {
    struct nk_optable *t;
    struct nk_context *ctx;
    char pwfile[64];
};

static int setup_every(void **state)
{
    struct every *e = calloc(1, sizeof(*e));
    struct nk_var var = {"host", "h.example:81"};
    struct nk_diags d;
    char *doc;
    int fd;

    snprintf(e->pwfile, sizeof(e->pwfile), "/tmp/nk-test-pw-XXXXXX");
    fd = mkstemp(e->pwfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "pw-not-a-secret\n", 16), 16);
    close(fd);
    setenv("NK_TEST_TOKEN", "tok-not-a-secret", 1);
    setenv("NK_TEST_USER", "alice", 1);
    doc = malloc(strlen(every_doc) + 128);
    assert_non_null(doc);
    snprintf(doc, strlen(every_doc) + 128, every_doc, e->pwfile);
    e->t = load_mem(doc);
    free(doc);
    nk_diags_init(&d);
    if (nk_context_new(e->t, &var, 1, &d, &e->ctx) != NK_OK)
        nk_diags_print(&d, stderr);
    nk_diags_cleanup(&d);
    assert_non_null(e->ctx);
    *state = e;
    return 0;
}

static int teardown_every(void **state)
{
    struct every *e = *state;

    nk_context_unref(e->ctx);
    nk_optable_unref(e->t);
    unlink(e->pwfile);
    free(e);
    return 0;
}

static void test_every_placements(void **state)
{
    struct every *e = *state;
    const struct nk_exposed *op = find_exposed(e->t, NK_ADAPTER_MCP, "part");
    struct nk_upstream_request r;
    struct nk_error err;
    size_t n;

    assert_int_equal(build(e->ctx, op,
                           "{\"tid\":\"a/b\",\"part\":\"p 1\",\"tags\":[\"x\",\"y&z\"],"
                           "\"limit\":5.0,\"ratio\":0.5,\"session\":\"s;1\",\"lang\":\"en\"}",
                           NK_ARGS_JSON, &r, &err),
                     NK_OK);
    assert_string_equal(r.url, "http://h.example:81/api/things/a%2Fb/parts/p%201"
                               "?tags=x&tags=y%26z&limit=5&ratio=0.5&tenant=user-alice");
    assert_string_equal(header(&r, "X-Trace", NULL), "trace-a/b");
    assert_string_equal(header(&r, "Cookie", &n), "session=s%3B1; lang=en");
    assert_int_equal(n, 1);
    assert_string_equal(header(&r, "Authorization", NULL), "Bearer tok-not-a-secret");
    nk_upstream_request_cleanup(&r);

    /* optional ones absent: omitted */
    assert_int_equal(build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\"}", NK_ARGS_JSON, &r, &err),
                     NK_OK);
    assert_string_equal(r.url, "http://h.example:81/api/things/t/parts/p?tenant=user-alice");
    assert_null(header(&r, "Cookie", NULL));
    nk_upstream_request_cleanup(&r);

    assert_int_equal(
        build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\",\"limit\":1.5}", NK_ARGS_JSON, &r, &err),
        NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'limit' must be an integer, got 1.5");
    assert_int_equal(build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\",\"X\":1,\"tags\":\"one\"}",
                           NK_ARGS_JSON, &r, &err),
                     NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'tags' must be an array, got \"one\"");
    assert_int_equal(build(e->ctx, op, "[1]", NK_ARGS_JSON, &r, &err), NK_ERR_INVALID);
}

static void test_every_strings_mode(void **state)
{
    struct every *e = *state;
    const struct nk_exposed *op = find_exposed(e->t, NK_ADAPTER_MCP, "part");
    struct nk_upstream_request r;
    struct nk_error err;

    /* REST-style strings are coerced to the declared types */
    assert_int_equal(build(e->ctx, op,
                           "{\"tid\":\"t\",\"part\":\"p\",\"limit\":\"12\",\"ratio\":\"1e3\","
                           "\"tags\":\"solo\"}",
                           NK_ARGS_STRINGS, &r, &err),
                     NK_OK);
    assert_string_equal(r.url, "http://h.example:81/api/things/t/parts/p"
                               "?tags=solo&limit=12&ratio=1000.0&tenant=user-alice");
    nk_upstream_request_cleanup(&r);
    assert_int_equal(build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\",\"limit\":\"12a\"}",
                           NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'limit' must be an integer, got \"12a\"");
    assert_int_equal(build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\",\"limit\":\" 1\"}",
                           NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INVALID);
    assert_int_equal(build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\",\"ratio\":\"nan\"}",
                           NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'ratio' must be a number, got \"nan\"");
    assert_int_equal(build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\",\"ratio\":\"0x10\"}",
                           NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INVALID);
    /* a whole-template binding is checked against the consumed parameter's type */
    assert_int_equal(build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\",\"flag\":\"maybe\"}",
                           NK_ARGS_STRINGS, &r, &err),
                     NK_ERR_INVALID);
    assert_string_equal(err.msg, "parameter 'flag' must be a boolean, got \"maybe\"");
    assert_int_equal(build(e->ctx, op, "{\"tid\":\"t\",\"part\":\"p\",\"flag\":\"T\"}",
                           NK_ARGS_STRINGS, &r, &err),
                     NK_OK);
    assert_string_equal(r.url,
                        "http://h.example:81/api/things/t/parts/p?flag=true&tenant=user-alice");
    nk_upstream_request_cleanup(&r);
}

static void test_every_bodies(void **state)
{
    struct every *e = *state;
    const struct nk_exposed *make = find_exposed(e->t, NK_ADAPTER_MCP, "make");
    const struct nk_exposed *merge = find_exposed(e->t, NK_ADAPTER_MCP, "merge");
    struct nk_upstream_request r;
    struct nk_error err;
    json_t *got, *want;

    assert_int_equal(build(e->ctx, make, "{\"name\":\"w\",\"count\":3}", NK_ARGS_JSON, &r, &err),
                     NK_OK);
    assert_string_equal(r.url, "http://h.example:81/api/make");
    got = js(r.body);
    want = js("{\"kind\":\"thing\",\"name\":\"w\",\"count\":3,\"label\":\"n-w\"}");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    assert_string_equal(header(&r, "Content-Type", NULL), "application/json");
    nk_upstream_request_cleanup(&r);
    assert_int_equal(build(e->ctx, make, "{\"count\":3}", NK_ARGS_JSON, &r, &err), NK_ERR_INVALID);
    assert_string_equal(err.msg, "missing required parameter 'name'");

    assert_int_equal(build(e->ctx, merge,
                           "{\"meta\":{\"a\":1},\"spec\":{\"b\":[2]},\"note\":\"hi\"}",
                           NK_ARGS_JSON, &r, &err),
                     NK_OK);
    assert_string_equal(r.method, "PUT");
    got = js(r.body);
    want = js("{\"a\":1,\"b\":[2],\"note\":\"hi\"}");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    nk_upstream_request_cleanup(&r);
    /* nothing given: no body at all */
    assert_int_equal(build(e->ctx, merge, "{}", NK_ARGS_JSON, &r, &err), NK_OK);
    assert_null(r.body);
    assert_null(header(&r, "Content-Type", NULL));
    nk_upstream_request_cleanup(&r);
}

static void test_every_auth(void **state)
{
    struct every *e = *state;
    struct nk_upstream_request r;
    struct nk_error err;

    assert_int_equal(build(e->ctx, find_exposed(e->t, NK_ADAPTER_MCP, "del"), "{\"id\":\"7\"}",
                           NK_ARGS_JSON, &r, &err),
                     NK_OK);
    assert_string_equal(r.method, "DELETE");
    assert_string_equal(r.url, "http://h.example:81/items/7");
    /* base64("alice:pw-not-a-secret"): the file's trailing newline is stripped */
    assert_string_equal(header(&r, "Authorization", NULL), "Basic YWxpY2U6cHctbm90LWEtc2VjcmV0");
    nk_upstream_request_cleanup(&r);

    assert_int_equal(build(e->ctx, find_exposed(e->t, NK_ADAPTER_MCP, "key"), "{\"q\":\"a b\"}",
                           NK_ARGS_JSON, &r, &err),
                     NK_OK);
    assert_string_equal(r.url, "http://h.example:81/r?q=a%20b&api_key=tok-not-a-secret");
    assert_null(header(&r, "Authorization", NULL));
    nk_upstream_request_cleanup(&r);

    assert_int_equal(
        build(e->ctx, find_exposed(e->t, NK_ADAPTER_MCP, "dig"), "{}", NK_ARGS_JSON, &r, &err),
        NK_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "digest"));
    assert_null(strstr(err.msg, "tok-not-a-secret"));
}

static void test_every_outmap(void **state)
{
    struct every *e = *state;
    const struct nk_exposed *dig = find_exposed(e->t, NK_ADAPTER_MCP, "dig");
    json_t *in = js("{\"items\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"x\":1}],\"other\":true}");
    json_t *want = js("{\"ids\":[\"a\",\"b\",null],\"first\":{\"ident\":\"a\"},"
                      "\"missing\":null,\"version\":2}");
    json_t *got = nk_outmap_apply(dig->output, in);

    (void)state;
    assert_non_null(got);
    if (!json_equal(got, want)) {
        char *s = json_dumps(got, JSON_ENCODE_ANY);
        fail_msg("outmap gave %s", s);
        free(s);
    }
    json_decref(got);
    json_decref(want);
    /* NULL map passes through */
    got = nk_outmap_apply(NULL, in);
    assert_ptr_equal(got, in);
    json_decref(got);
    /* items over something that is not an array: null */
    json_decref(in);
    in = js("{\"items\":7}");
    got = nk_outmap_apply(dig->output, in);
    assert_true(json_is_null(json_object_get(got, "ids")));
    assert_true(json_is_null(json_object_get(got, "first")));
    json_decref(got);
    json_decref(in);
}

static void test_every_missing_file(void **state)
{
    struct every *e = *state;
    struct nk_context *c = NULL;
    struct nk_var var = {"host", "h"};
    struct nk_diags d;

    (void)state;
    unlink(e->pwfile);
    nk_diags_init(&d);
    assert_int_equal(nk_context_new(e->t, &var, 1, &d, &c), NK_ERR_INVALID);
    assert_int_equal(d.n_errors, 1);
    assert_non_null(strstr(d.v[0].msg, "NK_TEST_PASSWORD"));
    assert_non_null(strstr(d.v[0].msg, e->pwfile));
    assert_non_null(strstr(d.v[0].msg, "basic-api"));
    nk_diags_cleanup(&d);
}

/* ---- simple forms (issue 15, items 4 and 6) ------------------------------------------------ */

static void test_type_coerce(void **state)
{
    static const struct {
        enum nk_type t;
        const char *in, *want; /* want NULL: cannot be coerced */
    } cases[] = {
        {NK_TYPE_NUMBER, "\"5\"", "5"},
        {NK_TYPE_NUMBER, "\"5.5\"", "5.5"},
        {NK_TYPE_NUMBER, "\"-1e3\"", "-1000.0"},
        {NK_TYPE_NUMBER, "7", "7"},
        {NK_TYPE_NUMBER, "\"abc\"", NULL},
        {NK_TYPE_NUMBER, "\"\"", NULL},
        {NK_TYPE_NUMBER, "true", NULL},
        {NK_TYPE_NUMBER, "null", "null"},
        {NK_TYPE_INTEGER, "\"12\"", "12"},
        {NK_TYPE_INTEGER, "5.0", "5"},
        {NK_TYPE_INTEGER, "\"4.5\"", NULL},
        {NK_TYPE_BOOLEAN, "\"true\"", "true"},
        {NK_TYPE_BOOLEAN, "\"false\"", "false"},
        {NK_TYPE_BOOLEAN, "\"yes\"", NULL},
        {NK_TYPE_BOOLEAN, "1", NULL},
        {NK_TYPE_STRING, "5", "\"5\""},
        {NK_TYPE_STRING, "false", "\"false\""},
        {NK_TYPE_STRING, "\"x\"", "\"x\""},
        {NK_TYPE_STRING, "{\"a\":1}", NULL},
        {NK_TYPE_OBJECT, "\"{\\\"a\\\": 1}\"", "{\"a\":1}"},
        {NK_TYPE_OBJECT, "[1]", NULL},
        {NK_TYPE_ARRAY, "\"[1, 2]\"", "[1,2]"},
        {NK_TYPE_ARRAY, "\"{}\"", NULL},
        {NK_TYPE_ANY, "{\"a\":[1]}", "{\"a\":[1]}"},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *in = js(cases[i].in), *got;
        bool oom = true;
        got = nk_type_coerce(cases[i].t, in, &oom);
        assert_false(oom);
        if (cases[i].want == NULL) {
            if (got != NULL)
                fail_msg("case %zu: %s as %s should not coerce", i, cases[i].in,
                         nk_type_name(cases[i].t));
        } else {
            json_t *want = js(cases[i].want);
            if (got == NULL || !json_equal(got, want) || json_typeof(got) != json_typeof(want))
                fail_msg("case %zu: %s as %s", i, cases[i].in, nk_type_name(cases[i].t));
            json_decref(want);
        }
        json_decref(got);
        json_decref(in);
    }
}

static const char simple_doc[] =
    "naftiko: 1.0.0-alpha2\n"
    "info: {label: T, description: Simple forms.}\n"
    "capability:\n"
    "  consumes:\n"
    "  - type: http\n"
    "    namespace: up\n"
    "    baseUri: http://h.example\n"
    "    resources:\n"
    "    - name: things\n"
    "      path: /things\n"
    "      operations:\n"
    "      - name: list\n"
    "        method: GET\n"
    "      - name: scan\n"
    "        method: POST\n"
    "        inputParameters:\n"
    "        - {name: imageName, in: query}\n"
    "        body:\n"
    "          type: json\n"
    "          data: {imageName: '{{imageName}}', note: '{{note}}', tag: 'v{{tag}}'}\n"
    "  exposes:\n"
    "  - type: rest\n"
    "    namespace: r\n"
    "    port: 8080\n"
    "    resources:\n"
    "    - path: /ships/{imo}\n"
    "      operations:\n"
    "      - method: GET\n"
    "        name: ship\n"
    "        inputParameters:\n"
    "        - {name: imo, in: path, type: string, description: IMO}\n"
    "        - {name: length, in: query, type: string, description: Length}\n"
    "        outputParameters:\n"
    "        - {name: label, type: string, value: 'ship {{imo}} of {{length}} m'}\n"
    "        - {name: length, type: number, value: '{{length}}'}\n"
    "        - name: more\n"
    "          type: object\n"
    "          properties:\n"
    "            flags: {type: array, value: '[1, 2]'}\n"
    "            known: {type: boolean, value: 'true'}\n"
    "        - name: crew\n"
    "          type: array\n"
    "          items: {type: string, value: 'crew of {{imo}}'}\n"
    "    - path: /things\n"
    "      operations:\n"
    "      - method: GET\n"
    "        name: bees\n"
    "        call: up.list\n"
    "        outputParameters:\n"
    "        - type: object\n"
    "          properties:\n"
    "            b: {type: array, mapping: \"$.items[?@.tag == 'b'].id\"}\n"
    "            z: {type: array, mapping: \"$.items[?@.tag == 'z'].id\"}\n"
    "            first: {type: string, mapping: '$.items[0].id'}\n"
    "            count: {type: integer, mapping: $.count}\n"
    "      - method: POST\n"
    "        name: scan\n"
    "        inputParameters:\n"
    "        - {name: image, in: query, type: string, description: Image}\n"
    "        - {name: note, in: query, type: string, description: Note}\n"
    "        - {name: tag, in: query, type: string, description: Tag}\n"
    "        call: up.scan\n"
    "        with: {imageName: rest.image}\n";

static void test_simple_mock(void **state)
{
    struct nk_optable *t = load_mem(simple_doc);
    struct nk_context *c = context_for(t, "h");
    const struct nk_exposed *ship = find_exposed(t, NK_ADAPTER_REST, "ship");
    struct nk_upstream_request r;
    struct nk_error err;
    json_t *in, *got = NULL, *want;

    (void)state;
    assert_null(ship->target);
    in = js("{\"imo\":\"9074729\",\"length\":\"294.1\"}");
    memset(&err, 0, sizeof(err));
    assert_int_equal(nk_outmap_eval(ship->output, NULL, in, &got, &err), NK_OK);
    want = js("{\"label\":\"ship 9074729 of 294.1 m\",\"length\":294.1,"
              "\"more\":{\"flags\":[1,2],\"known\":true},\"crew\":[\"crew of 9074729\"]}");
    assert_true(json_equal(got, want));
    json_decref(got);
    json_decref(want);
    json_decref(in);
    /* an absent input: "" inside a text, null as a whole value */
    in = js("{\"imo\":\"1\"}");
    assert_int_equal(nk_outmap_eval(ship->output, NULL, in, &got, &err), NK_OK);
    assert_string_equal(json_string_value(json_object_get(got, "label")), "ship 1 of  m");
    assert_true(json_is_null(json_object_get(got, "length")));
    json_decref(got);
    json_decref(in);
    /* a non-string input inside a text is its JSON text */
    in = js("{\"imo\":7,\"length\":12.5}");
    assert_int_equal(nk_outmap_eval(ship->output, NULL, in, &got, &err), NK_OK);
    assert_string_equal(json_string_value(json_object_get(got, "label")), "ship 7 of 12.5 m");
    assert_true(json_real_value(json_object_get(got, "length")) == 12.5);
    json_decref(got);
    json_decref(in);
    /* a value that cannot take its type is an error naming the output */
    in = js("{\"imo\":\"1\",\"length\":\"long\"}");
    assert_int_equal(nk_outmap_eval(ship->output, NULL, in, &got, &err), NK_ERR_INVALID);
    assert_null(got);
    assert_non_null(strstr(err.msg, "output 'length' is declared number"));
    json_decref(in);
    /* a mock sends nothing */
    assert_int_equal(build(c, ship, "{\"imo\":\"1\"}", NK_ARGS_STRINGS, &r, &err), NK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "mock"));
    nk_context_unref(c);
    nk_optable_unref(t);
}

static void test_simple_mappings(void **state)
{
    struct nk_optable *t = load_mem(simple_doc);
    const struct nk_exposed *bees = find_exposed(t, NK_ADAPTER_REST, "bees");
    json_t *in = js("{\"items\":[{\"id\":\"1\",\"tag\":\"b\"},{\"id\":\"2\",\"tag\":\"a\"},"
                    "{\"id\":\"3\",\"tag\":\"b\"}],\"count\":\"3\"}");
    json_t *want = js("{\"b\":[\"1\",\"3\"],\"z\":[],\"first\":\"1\",\"count\":3}");
    json_t *got = NULL;
    struct nk_error err;

    (void)state;
    memset(&err, 0, sizeof(err));
    assert_int_equal(nk_outmap_eval(bees->output, in, NULL, &got, &err), NK_OK);
    if (!json_equal(got, want)) {
        char *s = json_dumps(got, JSON_ENCODE_ANY);
        fail_msg("mapping gave %s", s);
        free(s);
    }
    json_decref(got);
    json_decref(in);
    /* an upstream value that cannot take the declared type */
    in = js("{\"items\":[],\"count\":\"many\"}");
    assert_int_equal(nk_outmap_eval(bees->output, in, NULL, &got, &err), NK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "output 'count' is declared integer"));
    json_decref(in);
    json_decref(want);
    nk_optable_unref(t);
}

static void test_simple_body_vars(void **state)
{
    struct nk_optable *t = load_mem(simple_doc);
    struct nk_context *c = context_for(t, "h");
    const struct nk_exposed *scan = find_exposed(t, NK_ADAPTER_REST, "scan");
    struct nk_upstream_request r;
    struct nk_error err;
    json_t *body;

    (void)state;
    /* {{imageName}} reads what `with` gave the consumed parameter; {{note}} and {{tag}} the
     * operation's inputs; an absent optional input is null as a whole value, "" in a text */
    assert_int_equal(
        build(c, scan, "{\"image\":\"nginx\",\"tag\":\"2\"}", NK_ARGS_STRINGS, &r, &err), NK_OK);
    body = js(r.body);
    assert_string_equal(json_string_value(json_object_get(body, "imageName")), "nginx");
    assert_true(json_is_null(json_object_get(body, "note")));
    assert_string_equal(json_string_value(json_object_get(body, "tag")), "v2");
    json_decref(body);
    nk_upstream_request_cleanup(&r);
    nk_context_unref(c);
    nk_optable_unref(t);
}

/* ---- steps (issue 15 item 2) ------------------------------------------------------------- */

static const char steps_doc[] =
    "naftiko: 1.0.0-alpha2\n"
    "info: {label: S, description: S}\n"
    "capability:\n"
    "  consumes:\n"
    "  - type: http\n"
    "    namespace: up\n"
    "    baseUri: http://{central-host}\n"
    "    resources:\n"
    "    - name: tok\n"
    "      path: /tok/{id}\n"
    "      operations:\n"
    "      - {name: get, method: GET}\n"
    "    - name: roles\n"
    "      path: /roles\n"
    "      operations:\n"
    "      - {name: list, method: GET, inputParameters: [{name: of, in: query}]}\n"
    "  exposes:\n"
    "  - type: mcp\n"
    "    namespace: m\n"
    "    port: 9090\n"
    "    tools:\n"
    "    - name: joined\n"
    "      description: J\n"
    "      inputParameters: [{name: id, type: string, description: I}]\n"
    "      steps:\n"
    "      - {type: call, name: t, call: up.get, with: {id: m.id}}\n"
    "      - {type: call, name: r, call: up.list, with: {of: '{{t.owner.name}}'}}\n"
    "      - {type: lookup, name: many, index: r.roles, match: name, lookupValue: $.t.roles,\n"
    "         outputParameters: [name, d]}\n"
    "      - {type: lookup, name: one, index: r.roles, match: name, lookupValue: '{{t.n}}',\n"
    "         outputParameters: [name, missing]}\n"
    "      mappings:\n"
    "      - {targetName: id, value: $.t.id}\n"
    "      - {targetName: deep.n, value: $.t.n}\n"
    "      - {targetName: roles, value: $.many}\n"
    "      - {targetName: one, value: $.one}\n"
    "      outputParameters:\n"
    "      - {name: id, type: string}\n"
    "      - {name: deep, type: object, properties: {n: {type: string}}}\n"
    "      - name: roles\n"
    "        type: array\n"
    "        items: [{name: name, type: string}, {name: d, type: string}]\n"
    "      - {name: one, type: object, properties: {name: {type: string}}}\n"
    "    - name: last\n"
    "      description: L\n"
    "      inputParameters: [{name: id, type: string, description: I}]\n"
    "      steps:\n"
    "      - {type: call, name: t, call: up.get, with: {id: m.id}}\n"
    "      - {type: call, name: r, call: up.list}\n";

static void steps_central(void *ud, const struct fake_req *req, struct fake_resp *resp)
{
    (void)ud;
    if (strncmp(req->target, "/tok/fail", 9) == 0) {
        resp->status = 500;
        resp->body = strdup("{\"message\":\"boom\"}");
    } else if (strncmp(req->target, "/tok/", 5) == 0) {
        resp->body = strdup("{\"id\":\"abc\",\"n\":\"B\",\"owner\":{\"name\":\"o w\"},"
                            "\"roles\":[\"A\",\"Z\",\"B\"]}");
    } else if (strncmp(req->target, "/roles", 6) == 0) {
        /* the query the second step sent, echoed: it read the first step's answer */
        const char *q = strchr(req->target, '?');
        char *b = malloc(512);
        snprintf(b, 512,
                 "{\"q\":\"%s\",\"roles\":[{\"name\":\"A\",\"d\":\"da\",\"x\":1},"
                 "{\"name\":\"B\",\"d\":\"db\"}]}",
                 q != NULL ? q + 1 : "");
        resp->body = b;
    } else {
        resp->status = 404;
        resp->body = strdup("{}");
    }
    resp->body_len = strlen(resp->body);
}

static void test_steps_run(void **state)
{
    struct fake_http *srv = fake_http_start(steps_central, NULL);
    struct nk_optable *t = load_mem(steps_doc);
    struct nk_upstream *up = NULL;
    struct nk_context *c;
    struct nk_result *r;
    char host[64];
    json_t *want;

    (void)state;
    snprintf(host, sizeof(host), "127.0.0.1:%u", (unsigned)fake_http_port(srv));
    c = context_for(t, host);
    assert_int_equal(nk_loop_new(&g_loop, NULL), NK_OK);
    assert_int_equal(nk_loop_start(g_loop, NULL), NK_OK);
    assert_int_equal(nk_upstream_new(g_loop, NULL, &up, NULL), NK_OK);

    r = call(c, up, find_exposed(t, NK_ADAPTER_MCP, "joined"), "{\"id\":\"abc\"}", NK_ARGS_JSON);
    assert_int_equal(r->kind, NK_RES_OK);
    /* the list is in the order of the values looked up; a value that matches nothing is left
     * out; a field the entry lacks is null; undeclared outputs are dropped */
    want = js("{\"id\":\"abc\",\"deep\":{\"n\":\"B\"},\"roles\":[{\"name\":\"A\",\"d\":\"da\"},"
              "{\"name\":\"B\",\"d\":\"db\"}],\"one\":{\"name\":\"B\"}}");
    if (!json_equal(r->json, want)) {
        char *s = json_dumps(r->json, JSON_ENCODE_ANY);
        fail_msg("steps gave %s", s);
    }
    json_decref(want);
    nk_result_free(r);

    /* no mappings: the last call step's output; it carries what the second step sent */
    r = call(c, up, find_exposed(t, NK_ADAPTER_MCP, "last"), "{\"id\":\"abc\"}", NK_ARGS_JSON);
    assert_int_equal(r->kind, NK_RES_OK);
    assert_string_equal(json_string_value(json_object_get(r->json, "q")), "");
    nk_result_free(r);
    r = call(c, up, find_exposed(t, NK_ADAPTER_MCP, "joined"), "{\"id\":\"abc\"}", NK_ARGS_JSON);
    nk_result_free(r);

    /* a failed step ends the call and is named */
    r = call(c, up, find_exposed(t, NK_ADAPTER_MCP, "joined"), "{\"id\":\"fail\"}", NK_ARGS_JSON);
    assert_int_equal(r->kind, NK_RES_UPSTREAM_ERROR);
    assert_int_equal(r->status, 500);
    assert_null(r->json);
    assert_non_null(strstr(r->message, "step 't' (up.get) failed: upstream answered 500: boom"));
    nk_result_free(r);

    nk_upstream_free(up);
    nk_loop_free(g_loop);
    g_loop = NULL;
    nk_context_unref(c);
    nk_optable_unref(t);
    fake_http_stop(srv);
}

/* `{{t.owner.name}}` in a later step reads the first step's answer. */
static void test_steps_second_reads_first(void **state)
{
    struct fake_http *srv = fake_http_start(steps_central, NULL);
    struct nk_optable *t = load_mem(steps_doc);
    const struct nk_exposed *op = find_exposed(t, NK_ADAPTER_MCP, "joined");
    struct nk_upstream *up = NULL;
    struct nk_context *c;
    struct nk_result *r;
    char host[64];
    struct nk_exposed view;
    struct nk_upstream_request req;
    struct nk_error err;
    json_t *args = js("{\"id\":\"abc\"}"), *outs = js("{\"t\":{\"owner\":{\"name\":\"o w\"}}}");

    (void)state;
    snprintf(host, sizeof(host), "127.0.0.1:%u", (unsigned)fake_http_port(srv));
    c = context_for(t, host);
    assert_int_equal(op->n_steps, 4);
    assert_int_equal(op->steps[1].kind, NK_STEP_CALL);
    assert_int_equal(op->steps[2].kind, NK_STEP_LOOKUP);
    assert_int_equal(op->steps[2].index, 1);
    view = *op;
    view.target = op->steps[1].target;
    view.bindings = op->steps[1].bindings;
    view.n_bindings = op->steps[1].n_bindings;
    memset(&err, 0, sizeof(err));
    assert_int_equal(nk_build_request(c, &view, args, NK_ARGS_JSON, NULL, NULL, outs, &req, &err),
                     NK_OK);
    assert_non_null(strstr(req.url, "/roles?of=o%20w"));
    nk_upstream_request_cleanup(&req);
    (void)up;
    (void)r;
    json_decref(args);
    json_decref(outs);
    nk_context_unref(c);
    nk_optable_unref(t);
    fake_http_stop(srv);
}

/* ---- forward (issue 15 item 1) ------------------------------------------------------------ */

static const char fwd_doc[] = "naftiko: 1.0.0-alpha2\n"
                              "binds: [{namespace: env, keys: {K: FWD_TEST_KEY}}]\n"
                              "capability:\n"
                              "  consumes:\n"
                              "  - type: http\n"
                              "    namespace: up\n"
                              "    baseUri: http://{central-host}/base\n"
                              "    inputParameters: [{name: X-V, in: header, value: '7'}]\n"
                              "    authentication: {type: bearer, token: '{{K}}'}\n"
                              "    resources:\n"
                              "    - {name: p, path: /p, operations: [{name: get, method: GET}]}\n"
                              "  exposes:\n"
                              "  - type: rest\n"
                              "    namespace: r\n"
                              "    port: 8080\n"
                              "    resources:\n"
                              "    - path: /fw/{rest}\n"
                              "      forward: {targetNamespace: up, trustedHeaders: [X-T, X-V]}\n";

static void test_forward_build(void **state)
{
    static const char *const bad[] = {
        "..",   "a/../b", "%2e%2e", ".%2E/x", "./a",  "a/.", "a%2fb", "a%2Fb", "a%5cb",   "a\\b",
        "a//b", "",       "a/",     "a%00",   "a%zz", "a%2", "a b",   "a\"b",  "\xc3\xa9"};
    static const char *const good[] = {"a/b", "...", "a%20b", "x.y/.z", "%C3%A9", "a:b@c"};
    static const char *const hdrs[] = {"X-T", "t", "X-V", "caller", "Authorization", "evil", NULL};
    struct nk_optable *t;
    struct nk_context *c;
    const struct nk_forward *fw;
    struct nk_upstream_request r;
    struct nk_error err;
    size_t i, n;

    (void)state;
    setenv("FWD_TEST_KEY", "k-not-a-secret", 1);
    t = load_mem(fwd_doc);
    c = context_for(t, "h.example:1");
    assert_int_equal(t->adapters[0].n_forwards, 1);
    fw = &t->adapters[0].forwards[0];
    assert_string_equal(fw->prefix, "/fw");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (nk_forward_build(c, fw, "GET", bad[i], NULL, NULL, NULL, 0, NULL, NULL, &r, &err) !=
            NK_ERR_INVALID)
            fail_msg("'%s' was not refused", bad[i]);
    }
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        memset(&err, 0, sizeof(err));
        if (nk_forward_build(c, fw, "GET", good[i], NULL, NULL, NULL, 0, NULL, NULL, &r, &err) !=
            NK_OK)
            fail_msg("'%s' was refused: %s", good[i], err.msg);
        nk_upstream_request_cleanup(&r);
    }
    assert_int_equal(
        nk_forward_build(c, fw, "PUT", "a/b", "x=1&y", hdrs, "{}", 2, "rid", NULL, &r, &err),
        NK_OK);
    assert_string_equal(r.url, "http://h.example:1/base/a/b?x=1&y");
    assert_string_equal(r.method, "PUT");
    assert_int_equal(r.body_len, 2);
    assert_string_equal(header(&r, "Authorization", &n), "Bearer k-not-a-secret");
    assert_int_equal(n, 1);
    assert_string_equal(header(&r, "X-V", &n), "7"); /* the consumer's value wins */
    assert_int_equal(n, 1);
    assert_string_equal(header(&r, "X-T", NULL), "t");
    assert_string_equal(header(&r, "X-Request-Id", NULL), "rid");
    nk_upstream_request_cleanup(&r);
    /* passthrough: the caller's Authorization, no bind expanded */
    assert_int_equal(
        nk_forward_build(c, fw, "GET", "a", NULL, NULL, NULL, 0, NULL, "Bearer c", &r, &err),
        NK_OK);
    assert_string_equal(header(&r, "Authorization", &n), "Bearer c");
    assert_int_equal(n, 1);
    nk_upstream_request_cleanup(&r);
    nk_context_unref(c);
    nk_optable_unref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_foreign_operation, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_build_path_encoding, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_build_boolean_query, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_build_body, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_call_ok, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_call_post_body, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_call_errors, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_unreachable, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_dot_segments, setup_seed, teardown_seed),
        cmocka_unit_test_setup_teardown(test_seed_call_statuses, setup_seed, teardown_seed),
        cmocka_unit_test(test_check_json),
        cmocka_unit_test(test_context_line_break),
        cmocka_unit_test(test_context_missing),
        cmocka_unit_test_setup_teardown(test_every_placements, setup_every, teardown_every),
        cmocka_unit_test_setup_teardown(test_every_strings_mode, setup_every, teardown_every),
        cmocka_unit_test_setup_teardown(test_every_bodies, setup_every, teardown_every),
        cmocka_unit_test_setup_teardown(test_every_auth, setup_every, teardown_every),
        cmocka_unit_test_setup_teardown(test_every_outmap, setup_every, teardown_every),
        cmocka_unit_test_setup_teardown(test_every_missing_file, setup_every, teardown_every),
        cmocka_unit_test(test_type_coerce),
        cmocka_unit_test(test_simple_mock),
        cmocka_unit_test(test_simple_mappings),
        cmocka_unit_test(test_simple_body_vars),
        cmocka_unit_test(test_steps_run),
        cmocka_unit_test(test_steps_second_reads_first),
        cmocka_unit_test(test_forward_build),
    };
    int rc;

    nk_upstream_global_init();
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    nk_upstream_global_cleanup();
    return rc;
}
