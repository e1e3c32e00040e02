/* SPDX-License-Identifier: Apache-2.0 */
/* cts_runner.c: runs the RFC 9535 JSONPath compliance test suite (cts.json) against naftikod. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/jsonpath.h"

#define PASS_PERCENT 95

/* The nodelist must equal `result`, or one of `results` (several orders are right). */
static int result_ok(json_t *test, json_t *got)
{
    json_t *want = json_object_get(test, "result"), *alts = json_object_get(test, "results");
    json_t *alt;
    size_t i;

    if (want != NULL)
        return json_equal(want, got);
    json_array_foreach(alts, i, alt) if (json_equal(alt, got)) return 1;
    return 0;
}

int main(int argc, char **argv)
{
    json_error_t jerr;
    json_t *cts, *tests, *t;
    size_t i, total, passed = 0, invalid_accepted = 0;
    int rc = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s cts.json\n", argv[0]);
        return 2;
    }
    cts = json_load_file(argv[1], JSON_ALLOW_NUL, &jerr);
    if (cts == NULL) {
        fprintf(stderr, "%s:%d: %s\n", argv[1], jerr.line, jerr.text);
        return 2;
    }
    tests = json_object_get(cts, "tests");
    total = json_array_size(tests);
    json_array_foreach(tests, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        json_t *sel = json_object_get(t, "selector");
        int invalid = json_is_true(json_object_get(t, "invalid_selector"));
        struct nk_jsonpath *jp = NULL;
        struct nk_error err = {0};
        enum nk_rc r;
        json_t *got;
        char *dump;

        if (!json_is_string(sel) || strlen(json_string_value(sel)) != json_string_length(sel)) {
            /* A selector with a NUL byte cannot reach a C-string API: it is never compiled. */
            if (invalid)
                passed++;
            else
                printf("FAIL %s: selector holds a NUL byte\n", name);
            continue;
        }
        r = nk_jsonpath_compile(json_string_value(sel), &jp, &err);
        if (invalid) {
            if (r == NK_ERR_INVALID) {
                passed++;
            } else {
                invalid_accepted++;
                printf("FAIL %s: invalid selector %s accepted\n", name, json_string_value(sel));
            }
            nk_jsonpath_free(jp);
            continue;
        }
        if (r != NK_OK) {
            printf("FAIL %s: %s rejected: col %u: %s\n", name, json_string_value(sel), err.column,
                   err.msg);
            continue;
        }
        got = nk_jsonpath_query(jp, json_object_get(t, "document"));
        if (got != NULL && result_ok(t, got)) {
            passed++;
        } else {
            dump = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            printf("FAIL %s: %s gave %s\n", name, json_string_value(sel), dump ? dump : "NULL");
            free(dump);
        }
        json_decref(got);
        nk_jsonpath_free(jp);
    }
    printf("jsonpath CTS: %zu/%zu passed (%.1f%%)\n", passed, total,
           total ? 100.0 * (double)passed / (double)total : 0.0);
    if (invalid_accepted > 0)
        printf("jsonpath CTS: %zu invalid selectors accepted\n", invalid_accepted);
    if (total > 0 && invalid_accepted == 0 && passed * 100 >= total * PASS_PERCENT)
        rc = 0;
    json_decref(cts);
    return rc;
}
