/* SPDX-License-Identifier: Apache-2.0 */
/* test_oauth.c: the resource server's configuration, discovery URLs, RFC 9728 metadata and the
 * refusals decided before any key is needed (oauth.c), on detached requests. Key fetching, JWT
 * and introspection verdicts run end to end in integration.oauth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "naftikod/httpd.h"
#include "naftikod/oauth.h"

struct answer {
    unsigned status;
    char ctype[64];
    char body[1024];
};

static void on_answer(void *ud, unsigned status, const char *ct, const char *body, size_t len)
{
    struct answer *a = ud;

    a->status = status;
    snprintf(a->ctype, sizeof(a->ctype), "%s", ct != NULL ? ct : "");
    snprintf(a->body, sizeof(a->body), "%.*s", (int)len, body);
}

static char scope1[] = "mcp:tools", scope2[] = "tokens:read";
static char *scopes[] = {scope1, scope2};

static struct nk_oauth *make(const char *issuer, const char *resource)
{
    struct nk_oauth_conf conf = {0};
    struct nk_oauth_options opts = {0};
    struct nk_oauth *o = NULL;
    struct nk_error err = {0};

    conf.authorization_server_uri = (char *)issuer;
    conf.resource = (char *)resource;
    conf.scopes = scopes;
    conf.n_scopes = 2;
    opts.leeway_s = -1;
    opts.cache_entries = 8;
    if (nk_oauth_new(&conf, &opts, &o, &err) != NK_OK)
        return NULL;
    return o;
}

static void test_discovery_urls(void **state)
{
    static const struct {
        const char *issuer;
        bool oidc;
        const char *want;
    } cases[] = {
        {"https://as.test", false, "https://as.test/.well-known/oauth-authorization-server"},
        {"https://as.test/", false, "https://as.test/.well-known/oauth-authorization-server"},
        {"https://as.test:8443/tenant/a", false,
         "https://as.test:8443/.well-known/oauth-authorization-server/tenant/a"},
        {"https://as.test/tenant/", false,
         "https://as.test/.well-known/oauth-authorization-server/tenant"},
        {"https://as.test", true, "https://as.test/.well-known/openid-configuration"},
        {"https://as.test/tenant/", true,
         "https://as.test/tenant/.well-known/openid-configuration"},
    };
    size_t i;
    char *u;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        u = nk_oauth_discovery_url(cases[i].issuer, cases[i].oidc);
        assert_non_null(u);
        assert_string_equal(u, cases[i].want);
        free(u);
    }
    assert_null(nk_oauth_discovery_url("ftp://as.test", false));
    assert_null(nk_oauth_discovery_url("https://", false));
    assert_null(nk_oauth_discovery_url("https://as.test?x=1", false));
}

static void test_config_refused(void **state)
{
    struct nk_oauth_conf conf = {0};
    struct nk_oauth_options opts = {0};
    struct nk_oauth *o = NULL;
    struct nk_error err = {0};

    (void)state;
    assert_null(make("as.test", "https://rs.test/mcp"));
    assert_null(make("https://as.test", "/mcp"));
    assert_null(make("https://as.test", "https://rs.test/mcp#frag"));
    conf.authorization_server_uri = (char *)"https://as.test";
    conf.resource = (char *)"https://rs.test/mcp";
    conf.token_validation = NK_TOKEN_VALIDATION_INTROSPECTION;
    assert_int_equal(nk_oauth_new(&conf, &opts, &o, &err), NK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "client credentials"));
    assert_null(o);
    nk_oauth_free(NULL);
}

static void test_metadata(void **state)
{
    struct nk_oauth *o = make("https://as.test", "https://rs.test/mcp");
    struct answer a = {0};
    struct nk_http_req *r;
    json_t *doc;

    (void)state;
    assert_non_null(o);
    assert_true(nk_oauth_metadata_path(o, "/.well-known/oauth-protected-resource"));
    assert_true(nk_oauth_metadata_path(o, "/.well-known/oauth-protected-resource/mcp"));
    assert_false(nk_oauth_metadata_path(o, "/.well-known/oauth-protected-resource/other"));
    assert_false(nk_oauth_metadata_path(o, "/.well-known/oauth-authorization-server"));
    r = nk_http_req_detached("GET", "/.well-known/oauth-protected-resource/mcp", NULL, NULL, 0,
                             on_answer, &a);
    nk_oauth_metadata(o, r);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.ctype, "application/json");
    doc = json_loads(a.body, 0, NULL);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "resource")), "https://rs.test/mcp");
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(doc, "authorization_servers"), 0)),
        "https://as.test");
    assert_int_equal(json_array_size(json_object_get(doc, "scopes_supported")), 2);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(doc, "bearer_methods_supported"), 0)),
        "header");
    json_decref(doc);
    r = nk_http_req_detached("POST", "/.well-known/oauth-protected-resource", NULL, NULL, 0,
                             on_answer, &a);
    nk_oauth_metadata(o, r);
    assert_int_equal(a.status, 405);
    nk_oauth_free(o);

    /* A resource without a path: the two metadata paths are one. */
    o = make("https://as.test", "https://rs.test");
    assert_non_null(o);
    assert_true(nk_oauth_metadata_path(o, "/.well-known/oauth-protected-resource"));
    assert_false(nk_oauth_metadata_path(o, "/.well-known/oauth-protected-resource/mcp"));
    nk_oauth_free(o);
}

/* admit on a detached request that must be refused before any key is needed */
static unsigned refused(struct nk_oauth *o, const char *target, const char *authz, bool problem,
                        struct answer *a)
{
    const char *hdrs[3] = {"Authorization", authz, NULL};
    struct nk_http_req *r;

    memset(a, 0, sizeof(*a));
    r = nk_http_req_detached("POST", target, authz != NULL ? hdrs : NULL, "{}", 2, on_answer, a);
    assert_non_null(r);
    assert_false(nk_oauth_admit(o, NULL, r, problem));
    return a->status;
}

static void test_refusals_before_keys(void **state)
{
    struct nk_oauth *o = make("https://as.test", "https://rs.test/mcp");
    struct answer a;
    char *big;

    (void)state;
    assert_int_equal(refused(o, "/mcp", NULL, false, &a), 401);
    assert_non_null(strstr(a.body, "\"error\":\"unauthorized\""));
    assert_int_equal(refused(o, "/mcp", NULL, true, &a), 401);
    assert_string_equal(a.ctype, "application/problem+json");
    assert_int_equal(refused(o, "/mcp?access_token=abc", "Bearer abc", false, &a), 400);
    assert_non_null(strstr(a.body, "invalid_request"));
    assert_int_equal(refused(o, "/mcp", "Basic dXNlcjpwYXNz", false, &a), 401);
    assert_non_null(strstr(a.body, "invalid_token"));
    assert_int_equal(refused(o, "/mcp", "Bearer    ", false, &a), 401);
    assert_int_equal(refused(o, "/mcp", "Bearer not.a-jwt", false, &a), 401);
    assert_non_null(strstr(a.body, "compact JWS"));
    assert_int_equal(refused(o, "/mcp", "Bearer eyJhbGciOiJub25lIn0.e30.", false, &a), 401);
    assert_non_null(strstr(a.body, "none"));
    big = malloc(9000 + 8);
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'A', 9000);
    big[9007] = '\0';
    assert_int_equal(refused(o, "/mcp", big, false, &a), 401);
    assert_non_null(strstr(a.body, "8192"));
    free(big);
    nk_oauth_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discovery_urls),
        cmocka_unit_test(test_config_refused),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_refusals_before_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
