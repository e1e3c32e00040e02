/* SPDX-License-Identifier: Apache-2.0 */
/* test_jsonout.c: nk_json_compact against jansson's own json_dumps(v, JSON_ENCODE_ANY |
 * JSON_COMPACT), byte for byte: every control character and escape, UTF-8 of each length,
 * integers at their limits, reals, keys with escapes and NUL bytes, member order after
 * removals, and thousands of generated trees; refusals where jansson refuses (invalid UTF-8)
 * and beyond NK_JSON_OUT_MAX_DEPTH (where jansson, which has no bound, would go on). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/jsonout.h"

/* v is dumped the same way by both; v is released. */
static void same(json_t *v)
{
    char *want = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    size_t len = 0;
    char *got = nk_json_compact(v, &len);

    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_int_equal(len, strlen(want));
    free(want);
    free(got);
    json_decref(v);
}

static void test_scalars(void **state)
{
    static const double reals[] = {
        0.0,    -0.0,  0.5, 1.0, -1.5, 3.141592653589793, 1e300, 1e-300, 123456789012345678.0,
        2.5e-7, 100.0, 1e21};
    size_t i;

    (void)state;
    same(json_true());
    same(json_false());
    same(json_null());
    same(json_integer(0));
    same(json_integer(-1));
    same(json_integer(42));
    same(json_integer(INT64_MAX));
    same(json_integer(INT64_MIN));
    for (i = 0; i < sizeof(reals) / sizeof(reals[0]); i++)
        same(json_real(reals[i]));
    same(json_string(""));
}

static void test_strings(void **state)
{
    char s[128];
    size_t i;

    (void)state;
    /* every ASCII byte, NUL included (a string with a length), one string each and all in one */
    for (i = 0; i < 128; i++) {
        char one[3] = {'a', (char)i, 'z'};

        same(json_stringn(one, 3));
        s[i] = (char)i;
    }
    same(json_stringn(s, sizeof(s)));
    same(json_string("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf \xed\x9f\xbf"));
    same(json_string("\"quoted\" back\\slash /slash/ \x7f"));
    same(json_string("\xc2\x80\xdf\xbf\xe0\xa0\x80\xf4\x8f\xbf\xbf"));
}

static void test_invalid_utf8_refused(void **state)
{
    static const char *const bad[] = {"\xc3",   "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "ok\xff", "\xe2\x82"};
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *v = json_pack("{s:[o]}", "k", json_stringn_nocheck(bad[i], strlen(bad[i])));

        assert_non_null(v);
        assert_null(json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT));
        assert_null(nk_json_compact(v, NULL));
        json_decref(v);
    }
}

static void test_containers(void **state)
{
    json_t *o = json_object(), *a = json_array();

    (void)state;
    same(json_object());
    same(json_array());
    json_object_set_new(o, "b", json_integer(1));
    json_object_set_new(o, "a", json_string("x"));
    json_object_set_new(o, "c\"\n\\", json_null());
    json_object_setn_new(o, "nul\0key", 7, json_true());
    json_object_set_new(o, "\xc3\xa9t\xc3\xa9", json_object());
    json_object_set_new(o, "gone", json_false());
    json_object_del(o, "a");
    json_object_set_new(o, "a", json_string("back, now last"));
    json_object_del(o, "gone");
    json_array_append_new(a, json_integer(1));
    json_array_append_new(a, json_array());
    json_array_append_new(a, json_pack("{s:[i,f,s]}", "k", 2, 0.25, "v"));
    json_array_append(a, o);
    json_object_set_new(o, "inner", json_pack("[[[]],{}]"));
    same(json_incref(a));
    same(o);
    json_decref(a);
    /* the shape of an MCP answer */
    same(json_pack("{s:s,s:i,s:{s:[{s:s,s:s}],s:{s:[]}}}", "jsonrpc", "2.0", "id", 7, "result",
                   "content", "type", "text", "text", "{\"tokens\":[]}", "structuredContent",
                   "tokens"));
}

static void test_depth(void **state)
{
    json_t *top, *cur, *next;
    char *t;
    int i;

    (void)state;
    /* NK_JSON_OUT_MAX_DEPTH containers nested: written; one more: refused */
    top = cur = json_array();
    for (i = 1; i < NK_JSON_OUT_MAX_DEPTH; i++) {
        next = json_array();
        json_array_append_new(cur, next);
        cur = next;
    }
    json_array_append_new(cur, json_integer(1));
    t = nk_json_compact(top, NULL);
    assert_non_null(t);
    assert_int_equal(strlen(t), 2 * NK_JSON_OUT_MAX_DEPTH + 1);
    free(t);
    next = json_array();
    json_array_append_new(next, top);
    assert_null(nk_json_compact(next, NULL));
    json_decref(next);
    /* a cycle is a value that never ends: refused, not followed */
    top = json_object();
    cur = json_array();
    json_object_set(top, "a", cur);
    json_array_append(cur, top);
    assert_null(nk_json_compact(top, NULL));
    json_array_clear(cur);
    json_decref(cur);
    json_decref(top);
}

/* ---- generated trees ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* A string of valid UTF-8 with a bias to the characters that need escaping. */
static json_t *gen_string(void)
{
    static const char *const pieces[] = {
        "a",  "Z",  "0",  " ",    "\"",   "\\",   "/",        "\n",           "\r",
        "\t", "\b", "\f", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "{",  "}",  "[",  ":"};
    char buf[96];
    size_t n = 0, k;
    unsigned i, count = rnd(12);

    for (i = 0; i < count; i++) {
        const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];

        k = strlen(p);
        memcpy(buf + n, p, k);
        n += k;
    }
    if (rnd(8) == 0)
        buf[n++] = '\0'; /* an embedded NUL */
    return json_stringn(buf, n);
}

static json_t *gen(unsigned depth)
{
    json_t *v;
    unsigned i, n;

    switch (depth > 5 ? rnd(6) : rnd(8)) {
    case 0:
        return gen_string();
    case 1:
        return json_integer((json_int_t)(rnd(2) ? rnd(1000) : rng) * (rnd(2) ? 1 : -1));
    case 2:
        return json_real((double)rnd(100000) / (double)(1 + rnd(1000)) * (rnd(2) ? 1e-5 : 1e5));
    case 3:
        return rnd(2) ? json_true() : json_false();
    case 4:
        return json_null();
    case 5:
        return json_string("plain");
    case 6:
        v = json_array();
        for (i = 0, n = rnd(5); i < n; i++)
            json_array_append_new(v, gen(depth + 1));
        return v;
    default:
        v = json_object();
        for (i = 0, n = rnd(5); i < n; i++) {
            json_t *key = gen_string();

            json_object_setn_new(v, json_string_value(key), json_string_length(key),
                                 gen(depth + 1));
            json_decref(key);
        }
        return v;
    }
}

static void test_generated(void **state)
{
    int i;

    (void)state;
    for (i = 0; i < 5000; i++)
        same(gen(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_invalid_utf8_refused),
        cmocka_unit_test(test_containers),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_generated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
