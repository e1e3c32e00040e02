/* SPDX-License-Identifier: Apache-2.0 */
/* test_jsonpath.c: unit tests of the RFC 9535 JSONPath module: notable cases and error columns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/jsonpath.h"

/* The compact JSON of query(expr) over the JSON text doc; caller frees. NULL if it failed. */
static char *run(const char *expr, const char *doc_text)
{
    struct nk_jsonpath *jp = NULL;
    struct nk_error err = {0};
    json_t *doc, *res;
    char *out;

    if (nk_jsonpath_compile(expr, &jp, &err) != NK_OK) {
        print_error("compile %s: col %u: %s\n", expr, err.column, err.msg);
        return NULL;
    }
    doc = json_loads(doc_text, JSON_DECODE_ANY, NULL);
    assert_non_null(doc);
    res = nk_jsonpath_query(jp, doc);
    out = res ? json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(res);
    json_decref(doc);
    nk_jsonpath_free(jp);
    return out;
}

static void expect(const char *expr, const char *doc, const char *want)
{
    char *got = run(expr, doc);

    assert_non_null(got);
    if (strcmp(got, want) != 0)
        print_error("%s on %s: got %s, want %s\n", expr, doc, got, want);
    assert_string_equal(got, want);
    free(got);
}

/* Compiling expr fails at column col with a message containing needle. */
static void expect_error(const char *expr, unsigned col, const char *needle)
{
    struct nk_jsonpath *jp = NULL;
    struct nk_error err = {0};

    assert_int_equal(nk_jsonpath_compile(expr, &jp, &err), NK_ERR_INVALID);
    assert_null(jp);
    if (err.column != col || strstr(err.msg, needle) == NULL)
        print_error("%s: got col %u '%s', want col %u '%s'\n", expr, err.column, err.msg, col,
                    needle);
    assert_int_equal(err.column, col);
    assert_non_null(strstr(err.msg, needle));
}

static void test_basics(void **state)
{
    const char *doc = "{\"a\":{\"b\":[1,2,3,4,5]},\"c\":\"x\"}";

    (void)state;
    expect("$", "[1]", "[[1]]");
    expect("$.a.b[0]", doc, "[1]");
    expect("$.a.b[-1]", doc, "[5]");
    expect("$.a.b[-6]", doc, "[]");
    expect("$['a']['b'][1,0]", doc, "[2,1]");
    expect("$.a.b[1:3]", doc, "[2,3]");
    expect("$.a.b[::-2]", doc, "[5,3,1]");
    expect("$.a.b[:]", doc, "[1,2,3,4,5]");
    expect("$.a.b[::0]", doc, "[]");
    expect("$.a.b[-9007199254740991:9007199254740991:9007199254740991]", doc, "[1]");
    expect("$.*", "{\"a\":1}", "[1]");
    expect("$..b", doc, "[[1,2,3,4,5]]");
    expect("$..[0]", "[[1,[2]],3]", "[[1,[2]],1,2]");
    expect("$ .a [ 'c' ]", "{\"a\":{\"c\":7}}", "[7]");
    expect("$.nope", doc, "[]");
}

/* "$." is the generator's spelling of the root (NAFTIKO.md): it compiles as "$". */
static void test_dollar_dot_extension(void **state)
{
    struct nk_jsonpath *jp = NULL;

    (void)state;
    expect("$.", "{\"a\":1}", "[{\"a\":1}]");
    assert_int_equal(nk_jsonpath_compile("$.", &jp, NULL), NK_OK);
    assert_true(nk_jsonpath_is_singular(jp));
    assert_string_equal(nk_jsonpath_text(jp), "$.");
    nk_jsonpath_free(jp);
    expect_error("$.a.", 5, "expected a member name");
    expect_error("$. ", 3, "expected a member name");
}

static void test_names(void **state)
{
    (void)state;
    expect("$.ü", "{\"ü\":1}", "[1]");
    expect("$._x1", "{\"_x1\":2}", "[2]");
    expect("$['\\u00fc\\ud83d\\ude00']", "{\"ü😀\":3}", "[3]");
    expect("$[\"'\\\"\\b\\f\\n\\r\\t\\/\\\\\"]", "{\"'\\\"\\b\\f\\n\\r\\t/\\\\\":4}", "[4]");
    expect("$['a\\u0000b']", "{\"a\":5}", "[]");
    expect_error("$.1a", 3, "expected a member name");
    expect_error("$['\\x']", 4, "invalid escape");
    expect_error("$[\"\\'\"]", 4, "invalid escape \\'");
    expect_error("$['\\uD800']", 4, "high surrogate");
    expect_error("$['\\uDC00']", 4, "lone low surrogate");
    expect_error("$['\\u12']", 4, "four hex digits");
    expect_error("$['a\tb']", 5, "control character");
    expect_error("$['abc", 3, "unterminated string");
    /* Columns count code points, not bytes. */
    expect_error("$.üü[", 6, "expected a selector");
    expect_error("$['\xff']", 4, "invalid UTF-8");
}

static void test_index_errors(void **state)
{
    (void)state;
    expect_error("$[1", 4, "expected ']' or ',' after index");
    expect_error("$[01]", 3, "leading zeros");
    expect_error("$[-0]", 3, "-0");
    expect_error("$[9007199254740992]", 3, "out of range");
    expect_error("$[-9007199254740992]", 3, "out of range");
    expect_error("$[1:2:-0]", 7, "-0");
    expect_error("$[]", 3, "empty bracketed selection");
    expect_error("$[1,]", 5, "expected a selector after ','");
    expect_error("$[1 2]", 5, "expected ']' or ',' after index");
    expect_error("$[a]", 3, "expected a selector");
    expect_error("$[1] ", 5, "whitespace is not allowed at the end");
    expect_error(" $", 1, "must start with '$'");
    expect_error("", 1, "must start with '$'");
    expect_error("$a", 2, "unexpected 'a'");
    expect_error("$...a", 4, "expected a member name");
}

static void test_filters(void **state)
{
    const char *doc = "[{\"a\":1},{\"a\":2.0},{\"a\":\"x\"},{\"b\":[1,{\"c\":2}]},{\"a\":null}]";

    (void)state;
    expect("$[?@.a == 2]", doc, "[{\"a\":2.0}]");
    expect("$[?@.a > 1]", doc, "[{\"a\":2.0}]");
    expect("$[?@.a < 'y']", doc, "[{\"a\":\"x\"}]");
    expect("$[?@.a]", doc, "[{\"a\":1},{\"a\":2.0},{\"a\":\"x\"},{\"a\":null}]");
    expect("$[?!@.a]", doc, "[{\"b\":[1,{\"c\":2}]}]");
    expect("$[?@.a == null]", doc, "[{\"a\":null}]");
    /* Nothing == Nothing, and Nothing != any value. */
    expect("$[?@.x == @.y]", "[1]", "[1]");
    expect("$[?@.x != 1]", "[1]", "[1]");
    expect("$[?@.x <= @.y]", "[1]", "[1]");
    expect("$[?@.x < @.y]", "[1]", "[]");
    /* Deep equality of structures, numbers by value. */
    expect("$[?@.k == $[0].k]",
           "[{\"k\":{\"x\":1,\"y\":[2]}},{\"k\":{\"y\":[2.0],\"x\":1}},{\"k\":{\"x\":1}}]",
           "[{\"k\":{\"x\":1,\"y\":[2]}},{\"k\":{\"y\":[2.0],\"x\":1}}]");
    expect_error("$[?@.b == [1]]", 11, "expected a query, a literal or a function call");
    expect("$[?@ == $[0]]", "[{\"k\":[1]},{\"k\":[1.0]},{\"k\":[2]}]",
           "[{\"k\":[1]},{\"k\":[1.0]}]");
    expect("$[?@.a == 1 || @.a == 'x' && true == true]", doc, "[{\"a\":1},{\"a\":\"x\"}]");
    expect("$[?(@.a == 1 || @.a == 'x') && !(@.a == 1)]", doc, "[{\"a\":\"x\"}]");
    expect("$[?@..c]", doc, "[{\"b\":[1,{\"c\":2}]}]");
    expect("$..[?@ == 2]", doc, "[2.0,2]");
    expect("$[?@.a==-0]", "[{\"a\":0}]", "[{\"a\":0}]");
    expect("$[?@.a==1e2]", "[{\"a\":100}]", "[{\"a\":100}]");
    expect("$.*[?@ > 1]", "{\"o\":{\"p\":1,\"q\":3}}", "[3]");
}

static void test_filter_errors(void **state)
{
    (void)state;
    expect_error("$[?@.* == 1]", 4, "non-singular query cannot be compared");
    expect_error("$[?@[ 'a' ] == 1]", 4, "non-singular");
    expect_error("$[?1]", 4, "literal cannot be used as a test");
    expect_error("$[?true]", 4, "literal cannot be used as a test");
    expect_error("$[?!true]", 5, "'!' cannot be applied to a literal");
    expect_error("$[?(@.a) == 1]", 4, "parenthesised expression cannot be compared");
    expect_error("$[?@.a == (1)]", 11, "expected a literal, a singular query or a function");
    expect_error("$[?@.a === 1]", 10, "expected a query, a literal or a function call");
    expect_error("$[?@.a = 1]", 8, "'=' is not an operator; compare with '=='");
    expect_error("$[?@.a == 01]", 11, "leading zeros");
    expect_error("$[?@.a == 1.]", 13, "after the decimal point");
    expect_error("$[?@.a == .1]", 11, "expected a query, a literal or a function");
    expect_error("$[?@.a == tru]", 11, "unknown name 'tru'");
    expect_error("$[?(@.a]", 8, "expected ')' to close the '(' at column 4");
    expect_error("$[?@.a &&]", 10, "expected a query, a literal or a function");
    expect_error("$[?@.a", 7, "expected ']' or ',' after filter");
}

static void test_functions(void **state)
{
    const char *doc = "[\"abc\",\"ab\",[1,2],{\"k\":1},5,\"\xc3\xa9t\xc3\xa9\"]";

    (void)state;
    expect("$[?length(@) == 2]", doc, "[\"ab\",[1,2]]");
    expect("$[?length(@) == 3]", doc, "[\"abc\",\"\xc3\xa9t\xc3\xa9\"]");
    expect("$[?count(@.*) == 1]", doc, "[{\"k\":1}]");
    expect("$[?value(@..k) == 1]", doc, "[{\"k\":1}]");
    expect("$[?match(@, 'a.*')]", doc, "[\"abc\",\"ab\"]");
    expect("$[?match(@, 'b')]", doc, "[]");
    expect("$[?search(@, 'b')]", doc, "[\"abc\",\"ab\"]");
    expect("$[?search(@, '^b')]", doc, "[]");
    expect("$[?search(@, 'c$')]", doc, "[\"abc\"]");
    expect("$[?match(@, '\\\\p{Ll}{3}')]", doc, "[\"abc\",\"\xc3\xa9t\xc3\xa9\"]");
    expect("$[?match(@, '[^a-b]+')]", doc, "[\"\xc3\xa9t\xc3\xa9\"]");
    expect("$[?match(@, 'a(b|x){1,2}c?')]", doc, "[\"abc\",\"ab\"]");
    /* An invalid I-Regexp makes the test false, it is not a compile error. */
    expect("$[?match(@, 'a(')]", doc, "[]");
    expect("$[?match(@, '\\\\d')]", "[\"1\"]", "[]");
    expect("$[?match(@.s, @.re)]", "[{\"s\":\"aa\",\"re\":\"a+\"},{\"s\":\"b\",\"re\":\"a\"}]",
           "[{\"s\":\"aa\",\"re\":\"a+\"}]");
    expect("$[?length(@.x) == @.y]", "[1]", "[1]"); /* Nothing == Nothing */
    expect_error("$[?foo(@)]", 4, "unknown function 'foo'");
    expect_error("$[?length (@)==1]", 4, "unknown name 'length'");
    expect_error("$[?length(@)]", 4, "length() returns a value");
    expect_error("$[?length(@.*)==1]", 11, "argument 1 of length() must be a value");
    expect_error("$[?count(1)==1]", 10, "argument 1 of count() must be a query");
    expect_error("$[?match(@)]", 4, "match() takes 2 arguments, not 1");
    expect_error("$[?match(@, 'a') == true]", 4, "returns a logical result");
    expect_error("$[?value(@.a, @.b)==1]", 4, "value() takes 1 argument, not 2");
    expect_error("$[?length(@ == 1)==1]", 11, "must be a value");
    expect_error("$[?count(@.a", 13, "expected ',' or ')' in the arguments of count()");
}

static void test_regex_is_linear(void **state)
{
    char doc[20000];
    char *got;

    (void)state;
    /* A backtracking engine takes exponential time on this; the NFA is linear. */
    doc[0] = '[';
    doc[1] = '"';
    memset(doc + 2, 'a', 10000);
    strcpy(doc + 10002, "\"]");
    got = run("$[?match(@, '(a*)*b')]", doc);
    assert_non_null(got);
    assert_string_equal(got, "[]");
    free(got);
    got = run("$[?match(@, '(a|aa)*')]", doc);
    assert_non_null(got);
    assert_int_equal(strlen(got), 10004);
    free(got);
    /* A program too large after {n,m} expansion is an invalid pattern: false. */
    expect("$[?match(@, '((a{1000}){1000}){1000}')]", "[\"a\"]", "[]");
    expect("$[?match(@, 'a{1001}')]", "[\"a\"]", "[]");
}

static void test_singular_and_first(void **state)
{
    struct nk_jsonpath *jp = NULL;
    json_t *doc, *v;

    (void)state;
    assert_int_equal(nk_jsonpath_compile("$.a[0]['b']", &jp, NULL), NK_OK);
    assert_true(nk_jsonpath_is_singular(jp));
    nk_jsonpath_free(jp);
    assert_int_equal(nk_jsonpath_compile("$.a[*]", &jp, NULL), NK_OK);
    assert_false(nk_jsonpath_is_singular(jp));
    nk_jsonpath_free(jp);
    assert_int_equal(nk_jsonpath_compile("$[ 'a' ]", &jp, NULL), NK_OK);
    assert_false(nk_jsonpath_is_singular(jp));
    nk_jsonpath_free(jp);
    assert_int_equal(nk_jsonpath_compile("$[0 ]", &jp, NULL), NK_OK);
    assert_false(nk_jsonpath_is_singular(jp));
    nk_jsonpath_free(jp);
    assert_int_equal(nk_jsonpath_compile("$ [0] .a", &jp, NULL), NK_OK);
    assert_true(nk_jsonpath_is_singular(jp));
    nk_jsonpath_free(jp);

    doc = json_loads("{\"a\":[10,20]}", 0, NULL);
    assert_int_equal(nk_jsonpath_compile("$.a[*]", &jp, NULL), NK_OK);
    v = nk_jsonpath_first(jp, doc);
    assert_int_equal(json_integer_value(v), 10);
    json_decref(v);
    nk_jsonpath_free(jp);
    assert_int_equal(nk_jsonpath_compile("$.b", &jp, NULL), NK_OK);
    assert_null(nk_jsonpath_first(jp, doc));
    nk_jsonpath_free(jp);
    json_decref(doc);
    nk_jsonpath_free(NULL);
}

static void test_limits(void **state)
{
    char expr[4096];
    struct nk_jsonpath *jp = NULL;
    struct nk_error err = {0};
    json_t *doc, *leaf, *res;
    size_t i, n = 0;

    (void)state;
    /* Parser nesting is bounded. */
    n += (size_t)snprintf(expr + n, sizeof(expr) - n, "$");
    for (i = 0; i < 300; i++)
        n += (size_t)snprintf(expr + n, sizeof(expr) - n, "[?@");
    for (i = 0; i < 300; i++)
        expr[n++] = ']';
    expr[n] = '\0';
    assert_int_equal(nk_jsonpath_compile(expr, &jp, &err), NK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "nested too deeply"));
    memset(expr, '(', 1000);
    memcpy(expr, "$[?", 3);
    expr[1000] = '\0';
    assert_int_equal(nk_jsonpath_compile(expr, &jp, &err), NK_ERR_INVALID);
    assert_non_null(strstr(err.msg, "nested too deeply"));

    /* A long flat selector compiles (no recursion along ||, segments or selectors). */
    n = (size_t)snprintf(expr, sizeof(expr), "$[?@.a");
    while (n < sizeof(expr) - 16)
        n += (size_t)snprintf(expr + n, sizeof(expr) - n, "||@.a");
    snprintf(expr + n, sizeof(expr) - n, "]");
    assert_int_equal(nk_jsonpath_compile(expr, &jp, &err), NK_OK);
    nk_jsonpath_free(jp);

    /* A document far deeper than any parser makes: descendants are walked iteratively. */
    doc = json_array();
    leaf = doc;
    for (i = 0; i < 200000; i++) {
        json_t *next = json_array();
        json_array_append_new(leaf, next);
        leaf = next;
    }
    assert_int_equal(nk_jsonpath_compile("$..*", &jp, NULL), NK_OK);
    res = nk_jsonpath_query(jp, doc);
    assert_non_null(res);
    assert_int_equal(json_array_size(res), 200000);
    json_decref(res);
    nk_jsonpath_free(jp);
    /* A result that grows as a power of the document fails instead of exhausting memory. */
    assert_int_equal(nk_jsonpath_compile("$..*..*..*", &jp, NULL), NK_OK);
    assert_null(nk_jsonpath_query(jp, doc));
    nk_jsonpath_free(jp);
    /* Deep equality over a deep document is bounded too. */
    assert_int_equal(nk_jsonpath_compile("$[?@ == $[0]]", &jp, NULL), NK_OK);
    assert_null(nk_jsonpath_query(jp, doc));
    nk_jsonpath_free(jp);
    /* Freeing a 200000-deep jansson value recurses in jansson; unwind it a level at a time. */
    while (json_array_size(doc) > 0) {
        json_t *child = json_incref(json_array_get(doc, 0));
        json_decref(doc);
        doc = child;
    }
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_dollar_dot_extension),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_index_errors),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_filter_errors),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_regex_is_linear),
        cmocka_unit_test(test_singular_and_first),
        cmocka_unit_test(test_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
