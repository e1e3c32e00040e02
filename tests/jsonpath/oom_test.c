/* SPDX-License-Identifier: Apache-2.0 */
/* oom_test.c: fails the N-th allocation for every N while compiling and evaluating queries; each
 * run must end in NK_ERR_NOMEM / NULL or the right answer, never a crash or a leak.
 * Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/jsonpath.h"
#include "oom.h"

static void *json_alloc(size_t n)
{
    return __wrap_malloc(n);
}

/* One run with the n-th allocation failing; 1 when no allocation failed (the loop is done). */
static int run(const char *expr, json_t *doc, const char *want, long n, int *bad)
{
    struct nk_jsonpath *jp = NULL;
    struct nk_error err = {0};
    enum nk_rc rc;
    json_t *res = NULL;
    char *got;

    nk_oom_arm(n);
    rc = nk_jsonpath_compile(expr, &jp, &err);
    if (rc == NK_OK)
        res = nk_jsonpath_query(jp, doc);
    nk_oom_disarm();
    if (rc != NK_OK && rc != NK_ERR_NOMEM) {
        printf("FAIL %s at allocation %ld: rc %d (%s)\n", expr, n, rc, err.msg);
        *bad = 1;
    } else if (rc == NK_ERR_NOMEM && !nk_oom_failed) {
        printf("FAIL %s at allocation %ld: NOMEM without a failed allocation\n", expr, n);
        *bad = 1;
    } else if (res != NULL) {
        got = json_dumps(res, JSON_COMPACT);
        if (got == NULL || strcmp(got, want) != 0) {
            printf("FAIL %s at allocation %ld: got %s\n", expr, n, got ? got : "NULL");
            *bad = 1;
        }
        free(got);
    } else if (rc == NK_OK && !nk_oom_failed) {
        printf("FAIL %s at allocation %ld: NULL without a failed allocation\n", expr, n);
        *bad = 1;
    }
    json_decref(res);
    nk_jsonpath_free(jp);
    return !nk_oom_failed;
}

int main(void)
{
    static const struct {
        const char *expr, *want;
    } cases[] = {
        {"$..[?@.a == 1 || match(@.s, 'x(y|z){1,3}\\\\p{L}') && count(@.*) > 1]",
         "[{\"a\":1},{\"s\":\"xyzQ\",\"t\":2}]"},
        {"$.l[1:3, -1, ::-2]['s', 'x'].*", "[]"},
        {"$..[?search(@.s, $.re) && length(value(@..s)) >= 2 && !(@.n == null)]",
         "[{\"s\":\"xyzQ\",\"t\":2}]"},
        {"$.l[?@ < 3]", "[1,2]"},
    };
    json_t *doc;
    size_t i;
    long n;
    int bad = 0;

    doc = json_loads("{\"l\":[1,2,3,{\"a\":1},{\"s\":\"xyzQ\",\"t\":2}],\"re\":\"y.Q\"}", 0, NULL);
    if (doc == NULL)
        return 2;
    json_set_alloc_funcs(json_alloc, free);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (n = 0; n < 100000; n++)
            if (run(cases[i].expr, doc, cases[i].want, n, &bad))
                break;
        printf("%s: %ld allocation points\n", cases[i].expr, n);
    }
    json_decref(doc);
    return bad;
}
