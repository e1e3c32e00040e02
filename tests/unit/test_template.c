/* SPDX-License-Identifier: Apache-2.0 */
/* test_template.c: template compilation, expansion and percent-encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/template.h"

static const char *lookup(void *ud, const char *name)
{
    const char *const *kv = ud;
    size_t i;

    for (i = 0; kv[i] != NULL; i += 2)
        if (strcmp(kv[i], name) == 0)
            return kv[i + 1];
    return NULL;
}

static char *expand(const char *src, enum nk_tmpl_syntax syn, enum nk_encode enc,
                    const char *const *kv)
{
    struct nk_tmpl t;
    struct nk_error err;
    char *out = NULL;

    assert_int_equal(nk_tmpl_compile(src, syn, &t, &err), NK_OK);
    assert_int_equal(nk_tmpl_expand(&t, lookup, (void *)kv, enc, &out, &err), NK_OK);
    nk_tmpl_cleanup(&t);
    return out;
}

static void test_compile_parts(void **state)
{
    struct nk_tmpl t;
    struct nk_error err;

    (void)state;
    assert_int_equal(nk_tmpl_compile("/v1/apitokens/{id}/x{{ env.KEY }}", NK_TMPL_PATH, &t, &err),
                     NK_OK);
    assert_int_equal(t.n, 4);
    assert_int_equal(t.parts[0].kind, NK_TMPL_LIT);
    assert_string_equal(t.parts[0].text, "/v1/apitokens/");
    assert_int_equal(t.parts[0].offset, 0);
    assert_int_equal(t.parts[1].kind, NK_TMPL_VAR);
    assert_string_equal(t.parts[1].text, "id");
    assert_int_equal(t.parts[1].offset, 14);
    assert_false(t.parts[1].double_braced);
    assert_string_equal(t.parts[2].text, "/x");
    assert_int_equal(t.parts[2].offset, 18);
    assert_int_equal(t.parts[3].kind, NK_TMPL_VAR);
    assert_string_equal(t.parts[3].text, "env.KEY");
    assert_true(t.parts[3].double_braced);
    assert_int_equal(t.parts[3].offset, 20);
    assert_false(nk_tmpl_is_literal(&t));
    assert_string_equal(t.src, "/v1/apitokens/{id}/x{{ env.KEY }}");
    nk_tmpl_cleanup(&t);

    /* Mustache: single braces are literal. */
    assert_int_equal(nk_tmpl_compile("{\"a\": {{x}} }", NK_TMPL_MUSTACHE, &t, &err), NK_OK);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.parts[0].text, "{\"a\": ");
    assert_string_equal(t.parts[1].text, "x");
    assert_string_equal(t.parts[2].text, " }");
    nk_tmpl_cleanup(&t);

    assert_int_equal(nk_tmpl_compile("", NK_TMPL_PATH, &t, &err), NK_OK);
    assert_int_equal(t.n, 0);
    assert_true(nk_tmpl_is_literal(&t));
    nk_tmpl_cleanup(&t);

    assert_int_equal(nk_tmpl_compile("https://{central-host}", NK_TMPL_PATH, &t, &err), NK_OK);
    assert_int_equal(t.n, 2);
    assert_string_equal(t.parts[1].text, "central-host");
    nk_tmpl_cleanup(&t);

    assert_int_equal(nk_tmpl_compile("plain", NK_TMPL_MUSTACHE, &t, &err), NK_OK);
    assert_int_equal(t.n, 1);
    assert_true(nk_tmpl_is_literal(&t));
    nk_tmpl_cleanup(&t);
}

static void expect_invalid(const char *src, enum nk_tmpl_syntax syn, unsigned column)
{
    struct nk_tmpl t;
    struct nk_error err;

    memset(&err, 0, sizeof(err));
    assert_int_equal(nk_tmpl_compile(src, syn, &t, &err), NK_ERR_INVALID);
    assert_int_equal(err.column, column);
    assert_true(err.msg[0] != '\0');
    assert_null(t.parts);
    assert_null(t.src);
    nk_tmpl_cleanup(&t); /* cleaning a cleaned template is harmless */
}

static void test_compile_errors(void **state)
{
    (void)state;
    expect_invalid("/a/{id", NK_TMPL_PATH, 4);
    expect_invalid("x{{abc", NK_TMPL_MUSTACHE, 2);
    expect_invalid("x{{abc}", NK_TMPL_MUSTACHE, 7);
    expect_invalid("{{ }}", NK_TMPL_MUSTACHE, 1);
    expect_invalid("/a/{}", NK_TMPL_PATH, 4);
    expect_invalid("{{a{b}}", NK_TMPL_MUSTACHE, 4);
    expect_invalid("{{{a}}}", NK_TMPL_MUSTACHE, 3);
    expect_invalid("/a/b}", NK_TMPL_PATH, 5);
}

static void test_expand(void **state)
{
    const char *kv[] = {
        "id",           "../x?y=1#z",           "env.KEY", "Bearer test-key-not-a-secret",
        "central-host", "central.example:8443", NULL};
    struct nk_tmpl t;
    struct nk_error err;
    char *s;

    (void)state;
    s = expand("/v1/apitokens/{id}", NK_TMPL_PATH, NK_ENC_SEGMENT, kv);
    assert_string_equal(s, "/v1/apitokens/..%2Fx%3Fy%3D1%23z");
    free(s);
    s = expand("/v1/apitokens/{{id}}", NK_TMPL_PATH, NK_ENC_SEGMENT, kv);
    assert_string_equal(s, "/v1/apitokens/..%2Fx%3Fy%3D1%23z");
    free(s);
    s = expand("{{env.KEY}}", NK_TMPL_MUSTACHE, NK_ENC_NONE, kv);
    assert_string_equal(s, "Bearer test-key-not-a-secret");
    free(s);
    s = expand("https://{central-host}", NK_TMPL_PATH, NK_ENC_NONE, kv);
    assert_string_equal(s, "https://central.example:8443");
    free(s);
    s = expand("", NK_TMPL_PATH, NK_ENC_NONE, kv);
    assert_string_equal(s, "");
    free(s);

    memset(&err, 0, sizeof(err));
    assert_int_equal(nk_tmpl_compile("a/{missing}", NK_TMPL_PATH, &t, &err), NK_OK);
    s = (char *)0x1;
    assert_int_equal(nk_tmpl_expand(&t, lookup, (void *)kv, NK_ENC_NONE, &s, &err),
                     NK_ERR_NOTFOUND);
    assert_null(s);
    assert_non_null(strstr(err.msg, "'missing'"));
    assert_int_equal(err.column, 3);
    nk_tmpl_cleanup(&t);
}

static void check_enc(const char *in, enum nk_encode enc, const char *want)
{
    char *s = nk_pct_encode(in, strlen(in), enc);

    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

static void test_pct_encode(void **state)
{
    (void)state;
    check_enc("AZaz09-._~", NK_ENC_SEGMENT, "AZaz09-._~");
    check_enc("a/b", NK_ENC_SEGMENT, "a%2Fb");
    check_enc("%", NK_ENC_SEGMENT, "%25");
    check_enc("a b", NK_ENC_SEGMENT, "a%20b");
    check_enc("\xc3\xa9", NK_ENC_SEGMENT, "%C3%A9");
    check_enc("?#[]@!$&'()*+,;=:", NK_ENC_SEGMENT,
              "%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A");
    check_enc("..", NK_ENC_SEGMENT, "%2E%2E");
    check_enc(".", NK_ENC_SEGMENT, "%2E");
    check_enc("...", NK_ENC_SEGMENT, "...");
    check_enc("a..b", NK_ENC_SEGMENT, "a..b");
    check_enc("", NK_ENC_SEGMENT, "");
    check_enc("a b&c=d+e", NK_ENC_QUERY, "a%20b%26c%3Dd%2Be");
    check_enc("..", NK_ENC_QUERY, "..");
    check_enc("a/b?c", NK_ENC_NONE, "a/b?c");

    /* Embedded NUL and high bytes with explicit length. */
    {
        char *s = nk_pct_encode("a\0\xff", 3, NK_ENC_QUERY);
        assert_string_equal(s, "a%00%FF");
        free(s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_parts),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_pct_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
