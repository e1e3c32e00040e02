/* SPDX-License-Identifier: Apache-2.0 */
/* test_problem.c: the problem+json builder: members, default titles, escaping of quotes and
 * control characters, invalid UTF-8 repaired, extra members that cannot replace the core ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/problem.h"

/* Parse the builder's text back; every text it returns must be one JSON object. */
static json_t *parsed(char *text)
{
    json_t *j;

    assert_non_null(text);
    j = json_loads(text, 0, NULL);
    free(text);
    assert_true(json_is_object(j));
    return j;
}

static void test_members(void **state)
{
    json_t *j = parsed(nk_problem_new(404, NULL, "no route", NULL));

    (void)state;
    assert_string_equal(json_string_value(json_object_get(j, "type")), "about:blank");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Not Found");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 404);
    assert_string_equal(json_string_value(json_object_get(j, "detail")), "no route");
    assert_int_equal(json_object_size(j), 4);
    json_decref(j);

    j = parsed(nk_problem_new(599, "Custom", NULL, NULL));
    assert_string_equal(json_string_value(json_object_get(j, "title")), "Custom");
    assert_null(json_object_get(j, "detail"));
    json_decref(j);
    assert_string_equal(nk_problem_title(599), "Error");
    assert_string_equal(nk_problem_title(401), "Unauthorized");
}

/* Quotes, backslashes and control characters in a detail are escaped, never spliced. */
static void test_escaping(void **state)
{
    const char *hostile = "a\"b\\c\n\x01}\",\"status\":200";
    json_t *j = parsed(nk_problem_new(400, "t\"itle", hostile, NULL));

    (void)state;
    assert_string_equal(json_string_value(json_object_get(j, "detail")), hostile);
    assert_string_equal(json_string_value(json_object_get(j, "title")), "t\"itle");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 400);
    json_decref(j);
}

static void test_invalid_utf8(void **state)
{
    json_t *j = parsed(nk_problem_new(502, NULL, "bad \xff\xfe byte", NULL));

    (void)state;
    assert_string_equal(json_string_value(json_object_get(j, "detail")),
                        "bad \xef\xbf\xbd\xef\xbf\xbd byte");
    json_decref(j);
}

static void test_extra(void **state)
{
    json_t *extra =
        json_pack("{s:s,s:i,s:[i]}", "instance", "/items/1", "status", 200, "errors", 1);
    json_t *j = parsed(nk_problem_new(422, NULL, "d", extra));

    (void)state;
    assert_string_equal(json_string_value(json_object_get(j, "instance")), "/items/1");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 422);
    assert_true(json_is_array(json_object_get(j, "errors")));
    json_decref(j);
    json_decref(extra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_extra),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
