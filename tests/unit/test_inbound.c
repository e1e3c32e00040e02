/* SPDX-License-Identifier: Apache-2.0 */
/* test_inbound.c: the tokens file parser and the bearer check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/inbound.h"
#include "naftikod/sha256.h"

static void line_for(const char *token, const char *name, char *out, size_t cap)
{
    unsigned char h[NK_SHA256_LEN];
    size_t i, o;

    nk_sha256(token, strlen(token), h);
    o = (size_t)snprintf(out, cap, "sha256:");
    for (i = 0; i < NK_SHA256_LEN; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", h[i]);
    snprintf(out + o, cap - o, "  %s\n", name);
}

static struct nk_tokens *parse(const char *text, struct nk_error *err)
{
    struct nk_tokens *t = NULL;

    memset(err, 0, sizeof(*err));
    if (nk_tokens_parse("t.tokens", text, strlen(text), &t, err) != NK_OK)
        return NULL;
    return t;
}

static void test_check(void **state)
{
    char file[1024], a[160], b[160], name[NK_CALLER_NAME_MAX];
    struct nk_error err;
    struct nk_tokens *t;

    (void)state;
    line_for("token-for-agent-one-xxxxxxxx", "agent-1", a, sizeof(a));
    line_for("token-for-ci-pipeline-yyyyyy", "ci@example", b, sizeof(b));
    snprintf(file, sizeof(file), "# callers\n\n%s   \r\n%s", a, b);
    t = parse(file, &err);
    assert_non_null(t);
    assert_int_equal(nk_tokens_count(t), 2);
    assert_true(nk_tokens_check(t, "Bearer token-for-agent-one-xxxxxxxx", name));
    assert_string_equal(name, "agent-1");
    assert_true(nk_tokens_check(t, "bearer token-for-ci-pipeline-yyyyyy", name));
    assert_string_equal(name, "ci@example");
    assert_false(nk_tokens_check(t, "Bearer token-for-agent-one-xxxxxxxY", name));
    assert_false(nk_tokens_check(t, "Bearer ", name));
    assert_false(nk_tokens_check(t, "Basic token-for-agent-one-xxxxxxxx", name));
    assert_false(nk_tokens_check(t, "token-for-agent-one-xxxxxxxx", name));
    assert_false(nk_tokens_check(t, NULL, name));
    assert_false(nk_tokens_check(NULL, "Bearer token-for-agent-one-xxxxxxxx", name));
    nk_tokens_free(t);
}

static void expect_error(const char *text, const char *needle)
{
    struct nk_error err;

    assert_null(parse(text, &err));
    if (strstr(err.msg, needle) == NULL)
        fail_msg("error '%s' does not contain '%s'", err.msg, needle);
}

static void test_errors(void **state)
{
    char a[160], two[400];

    (void)state;
    expect_error("", "no caller token");
    expect_error("# only a comment\n", "no caller token");
    expect_error("plain-token name\n", "t.tokens:1: expected 'sha256:");
    expect_error("\nsha256:zz", "t.tokens:2:");
    expect_error("sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeZZ x\n",
                 "64 hexadecimal");
    expect_error("sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
                 "caller name");
    expect_error(
        "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff bad/name\n",
        "caller names");
    expect_error("sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff0 x\n",
                 "64 hexadecimal");
    line_for("same-token-twice-zzzzzzzzzz", "one", a, sizeof(a));
    snprintf(two, sizeof(two), "%s%.*s two\n", a, 71, a);
    expect_error(two, "listed twice");
}

static void test_modes(void **state)
{
    enum nk_inbound_mode m;

    (void)state;
    assert_true(nk_inbound_mode_parse("none", false, &m) && m == NK_INBOUND_NONE);
    assert_true(nk_inbound_mode_parse("token", false, &m) && m == NK_INBOUND_TOKEN);
    assert_false(nk_inbound_mode_parse("passthrough", false, &m));
    assert_true(nk_inbound_mode_parse("passthrough", true, &m) && m == NK_INBOUND_PASSTHROUGH);
    assert_false(nk_inbound_mode_parse("Token", true, &m));
    assert_string_equal(nk_inbound_mode_name(NK_INBOUND_PASSTHROUGH), "passthrough");
}

/* The document credential check: the request's credential hashed and compared with the bound
 * one's hash, per type. */
static void test_doc_check(void **state)
{
    struct nk_doc_secret s;
    struct nk_auth a;

    (void)state;
    memset(&s, 0, sizeof(s));
    memset(&a, 0, sizeof(a));
    a.type = NK_AUTH_BEARER;
    assert_false(nk_doc_check(&a, &s, "Bearer tok-1", NULL)); /* nothing set */
    nk_sha256("tok-1", 5, s.digest);
    s.set = true;
    assert_true(nk_doc_check(&a, &s, "Bearer tok-1", NULL));
    assert_true(nk_doc_check(&a, &s, "bearer   tok-1", NULL));
    assert_false(nk_doc_check(&a, &s, "Bearer tok-2", NULL));
    assert_false(nk_doc_check(&a, &s, "Bearer tok-1 ", NULL));
    assert_false(nk_doc_check(&a, &s, "Basic tok-1", NULL));
    assert_false(nk_doc_check(&a, &s, "Bearer ", NULL));
    assert_false(nk_doc_check(&a, &s, NULL, "tok-1"));
    a.type = NK_AUTH_APIKEY;
    assert_true(nk_doc_check(&a, &s, NULL, "tok-1"));
    assert_false(nk_doc_check(&a, &s, "Bearer tok-1", NULL));
    assert_false(nk_doc_check(&a, &s, NULL, ""));
    a.type = NK_AUTH_BASIC;
    nk_sha256("alice:pw:x", 10, s.digest);
    assert_true(nk_doc_check(&a, &s, "Basic YWxpY2U6cHc6eA==", NULL));  /* alice:pw:x */
    assert_true(nk_doc_check(&a, &s, "Basic YWxpY2U6cHc6eA", NULL));    /* unpadded */
    assert_false(nk_doc_check(&a, &s, "Basic YWxpY2U6cHc6eQ==", NULL)); /* alice:pw:y */
    assert_false(nk_doc_check(&a, &s, "Basic YWxp!2U6cHc6eA==", NULL));
    assert_false(nk_doc_check(&a, &s, "Basic YWxpY2U=", NULL)); /* no ':' */
    assert_false(nk_doc_check(&a, &s, "Basic YWxpY2U6cHc6eA==x", NULL));
    assert_false(nk_doc_check(&a, &s, "Bearer alice:pw:x", NULL));
    a.type = NK_AUTH_DIGEST;
    assert_false(nk_doc_check(&a, &s, "Basic YWxpY2U6cHc6eA==", NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_doc_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
