/* SPDX-License-Identifier: Apache-2.0 */
/* jsonpath.c: TEMPORARY minimal JSONPath compiler (loader branch: `$`, `$.`, `$.a.b`) until
 * the jsonpath module lands on main; the merge must take the jsonpath owner's file. */
#include "naftikod/jsonpath.h"

#include <stdlib.h>
#include <string.h>

struct nk_jsonpath {
    char *text;
};

enum nk_rc nk_jsonpath_compile(const char *expr, struct nk_jsonpath **out, struct nk_error *err)
{
    struct nk_jsonpath *p;
    const char *s;

    *out = NULL;
    if (expr[0] != '$') {
        nk_error_setpos(err, 0, 1, "a query must start with '$', found '%c'", expr[0]);
        return NK_ERR_INVALID;
    }
    for (s = expr + 1; *s != '\0'; s++) {
        if (*s == '.' && (s[1] == '.' || (s[1] == '\0' && s != expr + 1))) {
            nk_error_setpos(err, 0, (unsigned)(s - expr) + 2, "expected a member name");
            return NK_ERR_INVALID;
        }
        if (*s != '.' && *s != '_' && *s != '-' && !(*s >= 'a' && *s <= 'z') &&
            !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9')) {
            nk_error_setpos(err, 0, (unsigned)(s - expr) + 1, "unexpected character '%c'", *s);
            return NK_ERR_INVALID;
        }
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL || (p->text = strdup(expr)) == NULL) {
        free(p);
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    *out = p;
    return NK_OK;
}

void nk_jsonpath_free(struct nk_jsonpath *p)
{
    if (p == NULL)
        return;
    free(p->text);
    free(p);
}

const char *nk_jsonpath_text(const struct nk_jsonpath *p)
{
    return p->text;
}
