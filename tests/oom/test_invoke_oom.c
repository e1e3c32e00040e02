/* SPDX-License-Identifier: Apache-2.0 */
/* test_invoke_oom.c: fails the N-th allocation for every N in template compilation/expansion,
 * nk_context_new, nk_invoke_build, nk_outmap_apply and nk_json_compact. Each run must give
 * NK_ERR_NOMEM (or NULL) or exactly the answer of an unconstrained run: never a crash, a leak
 * (ASan) or a wrong answer. Linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "invoke_docs.h"
#include "naftikod/invoke.h"
#include "naftikod/jsonout.h"
#include "oom.h"

static void *json_alloc(size_t n)
{
    return __wrap_malloc(n);
}

static void arm(long n)
{
    nk_oom_arm(n);
}

static void disarm(void)
{
    nk_oom_disarm();
}

/* Flatten a request to one string for comparison. */
static char *flat(const struct nk_upstream_request *r)
{
    size_t i, len = strlen(r->method) + strlen(r->url) + (r->body ? r->body_len : 0) + 8;
    char *s;

    for (i = 0; i < r->n_headers; i++)
        len += strlen(r->headers[i]) + 1;
    s = __real_malloc(len);
    assert_non_null(s);
    snprintf(s, len, "%s %s\n", r->method, r->url);
    for (i = 0; i < r->n_headers; i++) {
        strcat(s, r->headers[i]);
        strcat(s, "\n");
    }
    if (r->body != NULL)
        strcat(s, r->body);
    return s;
}

/* A build under an allocation failure: exactly the unconstrained request (then cleaned up), or
 * NK_ERR_NOMEM with nothing left in r. */
static void built_or_nomem(enum nk_rc rc, struct nk_upstream_request *r, const char *want)
{
    char *got;

    if (rc == NK_OK) {
        got = flat(r);
        assert_string_equal(got, want);
        free(got);
        nk_upstream_request_cleanup(r);
    } else {
        assert_int_equal(rc, NK_ERR_NOMEM);
        assert_null(r->url);
    }
}

static void test_template_oom(void **state)
{
    static const char *src = "/a/{id}/b/{{ env.X }}/c";
    struct nk_tmpl t;
    struct nk_error err;
    char *out = NULL, *enc;
    long n;
    enum nk_rc rc;

    (void)state;
    for (n = 0;; n++) {
        arm(n);
        rc = nk_tmpl_compile(src, NK_TMPL_PATH, &t, &err);
        if (rc == NK_OK) {
            rc = nk_tmpl_expand(&t, NULL, NULL, NK_ENC_SEGMENT, &out, &err);
            nk_tmpl_cleanup(&t);
            assert_true(rc == NK_ERR_NOTFOUND || rc == NK_ERR_NOMEM);
        } else {
            assert_int_equal(rc, NK_ERR_NOMEM);
        }
        enc = nk_pct_encode("a b/c", 5, NK_ENC_SEGMENT);
        disarm();
        if (enc != NULL)
            assert_string_equal(enc, "a%20b%2Fc");
        free(enc);
        if (!nk_oom_failed)
            break;
    }
}

/* The compact writer under every allocation failure (its buffer grows several times for
 * this value, and the real inside goes through jansson): NULL, or exactly the whole text. */
static void test_json_compact_oom(void **state)
{
    json_t *v;
    char *want, *got;
    long n;
    int i;

    (void)state;
    v = json_pack("{s:s, s:[f, i, b, n]}", "name", "a \"quoted\"\n name", "list", 0.25, 7, 1);
    assert_non_null(v);
    for (i = 0; i < 40; i++)
        json_array_append_new(json_object_get(v, "list"), json_string("caf\xc3\xa9 0123456789"));
    want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    assert_non_null(want);
    for (n = 0;; n++) {
        arm(n);
        got = nk_json_compact(v, NULL);
        disarm();
        if (got != NULL)
            assert_string_equal(got, want);
        else
            assert_true(nk_oom_failed);
        free(got);
        if (!nk_oom_failed)
            break;
    }
    assert_true(n > 3); /* the buffer grew: several allocations were failed in turn */
    free(want);
    json_decref(v);
}

struct call_case {
    const char *tool;
    const char *args;
};

static void test_invoke_oom(void **state)
{
    static const struct call_case cases[] = {
        {"part", "{\"tid\":\"a/b\",\"part\":\"p 1\",\"tags\":[\"x\",\"y&z\"],\"limit\":5,"
                 "\"ratio\":0.5,\"session\":\"s;1\",\"lang\":\"en\"}"},
        {"make", "{\"name\":\"w\",\"count\":3}"},
        {"merge", "{\"meta\":{\"a\":1},\"spec\":{\"b\":[2]},\"note\":\"hi\"}"},
        {"del", "{\"id\":\"7\"}"},
        {"key", "{\"q\":\"a b\"}"},
    };
    struct nk_var var = {"host", "h.example:81"};
    struct nk_optable *t = NULL;
    struct nk_context *ctx = NULL, *c2;
    struct nk_upstream_request r;
    struct nk_error err;
    struct nk_diags d;
    char pwfile[64], *doc, *want;
    const struct nk_exposed *op = NULL;
    json_t *args, *in, *ref, *out;
    size_t i, j;
    long n;
    enum nk_rc rc;
    int fd;

    (void)state;
    snprintf(pwfile, sizeof(pwfile), "/tmp/nk-oom-pw-XXXXXX");
    fd = mkstemp(pwfile);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "pw-not-a-secret\n", 16), 16);
    close(fd);
    setenv("NK_TEST_TOKEN", "tok-not-a-secret", 1);
    setenv("NK_TEST_USER", "alice", 1);
    doc = malloc(strlen(every_doc) + 128);
    assert_non_null(doc);
    snprintf(doc, strlen(every_doc) + 128, every_doc, pwfile);
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load_mem("oom.yaml", doc, strlen(doc), NULL, &d, &t), NK_OK);
    nk_diags_cleanup(&d);
    free(doc);

    /* nk_context_new */
    for (n = 0;; n++) {
        nk_diags_init(&d);
        c2 = NULL;
        arm(n);
        rc = nk_context_new(t, &var, 1, &d, &c2);
        disarm();
        nk_diags_cleanup(&d);
        if (rc == NK_OK)
            nk_context_unref(c2);
        else
            assert_int_equal(rc, NK_ERR_NOMEM);
        if (!nk_oom_failed) {
            assert_int_equal(rc, NK_OK);
            break;
        }
    }
    printf("nk_context_new: %ld allocation failures survived\n", n);
    nk_diags_init(&d);
    assert_int_equal(nk_context_new(t, &var, 1, &d, &ctx), NK_OK);
    nk_diags_cleanup(&d);

    /* nk_invoke_build */
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (j = 0; j < t->n_adapters; j++)
            if ((op = nk_adapter_find_tool(&t->adapters[j], cases[i].tool)) != NULL)
                break;
        assert_non_null(op);
        args = json_loads(cases[i].args, 0, NULL);
        assert_non_null(args);
        assert_int_equal(nk_invoke_build(ctx, op, args, NK_ARGS_JSON, "rid", &r, &err), NK_OK);
        want = flat(&r);
        nk_upstream_request_cleanup(&r);
        for (n = 0;; n++) {
            arm(n);
            rc = nk_invoke_build(ctx, op, args, NK_ARGS_JSON, "rid", &r, &err);
            disarm();
            built_or_nomem(rc, &r, want);
            if (!nk_oom_failed)
                break;
        }
        printf("nk_invoke_build %s: %ld allocation failures survived\n", cases[i].tool, n);
        free(want);
        json_decref(args);
    }

    /* nk_outmap_apply */
    for (j = 0; j < t->n_adapters; j++)
        if ((op = nk_adapter_find_tool(&t->adapters[j], "dig")) != NULL)
            break;
    in = json_loads("{\"items\":[{\"id\":\"a\"},{\"id\":\"b\"}],\"x\":1}", 0, NULL);
    ref = nk_outmap_apply(op->output, in);
    assert_non_null(ref);
    for (n = 0;; n++) {
        arm(n);
        out = nk_outmap_apply(op->output, in);
        disarm();
        /* a failed allocation may also surface as a null where a value was (jsonpath's
         * "nothing selected" and "no memory" are both NULL); never as a different value */
        if (out != NULL && !nk_oom_failed)
            assert_true(json_equal(out, ref));
        json_decref(out);
        if (!nk_oom_failed)
            break;
    }
    json_decref(ref);
    json_decref(in);

    nk_context_unref(ctx);
    nk_optable_unref(t);
    unlink(pwfile);
}

/* nk_forward_build (issue 15 item 1): every allocation failure is NK_ERR_NOMEM, never a
 * different request. */
static void test_forward_oom(void **state)
{
    static const char doc[] = "naftiko: 1.0.0-alpha2\n"
                              "binds: [{namespace: env, keys: {K: NK_TEST_TOKEN}}]\n"
                              "capability:\n"
                              "  consumes:\n"
                              "  - type: http\n"
                              "    namespace: up\n"
                              "    baseUri: http://{host}/base\n"
                              "    inputParameters: [{name: X-V, in: header, value: 'v{{K}}'}]\n"
                              "    authentication: {type: apikey, key: k, value: '{{K}}',\n"
                              "                     placement: query}\n"
                              "    resources:\n"
                              "    - {name: p, path: /p, operations: [{name: get, method: GET}]}\n"
                              "  exposes:\n"
                              "  - type: rest\n"
                              "    namespace: r\n"
                              "    port: 8080\n"
                              "    resources:\n"
                              "    - path: /fw/{rest}\n"
                              "      forward: {targetNamespace: up, trustedHeaders: [X-T]}\n";
    static const char *const hdrs[] = {"X-T", "t", "Content-Type", "application/json", NULL};
    struct nk_var var = {"host", "h.example:81"};
    struct nk_optable *t = NULL;
    struct nk_context *ctx = NULL;
    struct nk_upstream_request r;
    struct nk_error err;
    struct nk_diags d;
    char *want;
    enum nk_rc rc;
    long n;

    (void)state;
    setenv("NK_TEST_TOKEN", "tok-not-a-secret", 1);
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load_mem("fwd.yaml", doc, strlen(doc), NULL, &d, &t), NK_OK);
    assert_int_equal(nk_context_new(t, &var, 1, &d, &ctx), NK_OK);
    nk_diags_cleanup(&d);
    assert_int_equal(nk_forward_build(ctx, &t->adapters[0].forwards[0], "POST", "a/b%20c", "x=1",
                                      hdrs, "{}", 2, "rid", NULL, &r, &err),
                     NK_OK);
    want = flat(&r);
    nk_upstream_request_cleanup(&r);
    for (n = 0;; n++) {
        arm(n);
        rc = nk_forward_build(ctx, &t->adapters[0].forwards[0], "POST", "a/b%20c", "x=1", hdrs,
                              "{}", 2, "rid", NULL, &r, &err);
        disarm();
        built_or_nomem(rc, &r, want);
        if (!nk_oom_failed)
            break;
    }
    printf("nk_forward_build: %ld allocation failures survived\n", n);
    free(want);
    nk_context_unref(ctx);
    nk_optable_unref(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_oom),
        cmocka_unit_test(test_json_compact_oom),
        cmocka_unit_test(test_invoke_oom),
        cmocka_unit_test(test_forward_oom),
    };

    json_set_alloc_funcs(json_alloc, free);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
