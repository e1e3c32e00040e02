/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_jsonpath.c: libFuzzer harness; the selector is the input up to the first NUL byte (or,
 * without one, the first newline), the JSON document is the rest. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/jsonpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memchr(data, '\0', size);
    struct nk_jsonpath *jp = NULL;
    struct nk_error err = {0};
    json_t *doc = NULL, *res, *first;
    char *sel;
    size_t n;

    if (sep == NULL)
        sep = memchr(data, '\n', size);
    n = sep ? (size_t)(sep - data) : size;
    sel = malloc(n + 1);
    if (sel == NULL)
        return 0;
    memcpy(sel, data, n);
    sel[n] = '\0';
    if (nk_jsonpath_compile(sel, &jp, &err) == NK_OK) {
        if (nk_jsonpath_is_singular(jp) < 0 || strcmp(nk_jsonpath_text(jp), sel) != 0)
            abort();
        if (sep != NULL)
            doc = json_loadb((const char *)sep + 1, size - n - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                             NULL);
        if (doc == NULL)
            doc = json_pack("{s:[i,s,{s:n}]}", "a", 1, "b", "c");
        res = nk_jsonpath_query(jp, doc);
        first = nk_jsonpath_first(jp, doc);
        if (res != NULL && first != NULL && json_array_get(res, 0) != first)
            abort();
        json_decref(first);
        json_decref(res);
        json_decref(doc);
        nk_jsonpath_free(jp);
        jp = NULL;
    } else if (err.column == 0 || err.msg[0] == '\0') {
        abort(); /* every rejection says where and why */
    }
    /* Without an error sink the outcome is the same. */
    if (nk_jsonpath_compile(sel, &jp, NULL) == NK_OK)
        nk_jsonpath_free(jp);
    free(sel);
    return 0;
}
