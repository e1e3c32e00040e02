/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_template.c: libFuzzer harness for template compilation/expansion and percent-encoding.
 * Checks that compiled parts re-assemble the source and that encoded text only holds unreserved
 * characters and %XX escapes that decode to the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *lookup(void *ud, const char *name)
{
    (void)ud;
    return name[0] == 'x' ? NULL : "v a/l%?#\xc3\xa9";
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void check_encoding(const uint8_t *data, size_t size, enum nk_encode enc)
{
    char *e = nk_pct_encode((const char *)data, size, enc);
    size_t i, o = 0;
    int hi, lo;

    if (e == NULL)
        return;
    for (i = 0; e[i] != '\0'; i++, o++) {
        if (e[i] == '%') {
            hi = hexval(e[i + 1]);
            lo = e[i + 1] != '\0' ? hexval(e[i + 2]) : -1;
            if (hi < 0 || lo < 0 || o >= size || data[o] != (uint8_t)(hi * 16 + lo))
                abort();
            i += 2;
            continue;
        }
        if (!((e[i] >= 'A' && e[i] <= 'Z') || (e[i] >= 'a' && e[i] <= 'z') ||
              (e[i] >= '0' && e[i] <= '9') || strchr("-._~", e[i]) != NULL))
            abort();
        if (o >= size || data[o] != (uint8_t)e[i])
            abort();
    }
    if (o != size)
        abort();
    free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *src = malloc(size + 1), *out = NULL;
    struct nk_tmpl t;
    struct nk_error err;
    int syn;
    size_t i;

    if (src == NULL)
        return 0;
    memcpy(src, data, size);
    src[size] = '\0';
    for (syn = 0; syn < 2; syn++) {
        if (nk_tmpl_compile(src, syn ? NK_TMPL_PATH : NK_TMPL_MUSTACHE, &t, &err) != NK_OK)
            continue;
        /* parts are in order and literals are verbatim slices of the source */
        for (i = 0; i < t.n; i++) {
            if (i > 0 && t.parts[i].offset <= t.parts[i - 1].offset)
                abort();
            if (t.parts[i].kind == NK_TMPL_LIT &&
                strncmp(t.src + t.parts[i].offset, t.parts[i].text, strlen(t.parts[i].text)) != 0)
                abort();
        }
        if (nk_tmpl_expand(&t, lookup, NULL, NK_ENC_SEGMENT, &out, &err) == NK_OK)
            free(out);
        out = NULL;
        nk_tmpl_cleanup(&t);
    }
    free(src);
    check_encoding(data, size, NK_ENC_SEGMENT);
    check_encoding(data, size, NK_ENC_QUERY);
    return 0;
}
