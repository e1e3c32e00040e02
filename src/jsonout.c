/* SPDX-License-Identifier: Apache-2.0 */
/* jsonout.c: compact JSON text of a jansson value (see jsonout.h). One pass into a growing
 * buffer; a failed allocation or a refused value stops the walk and frees the buffer. */
#include "naftikod/jsonout.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/common.h"

struct out {
    char *p;
    size_t len, cap;
    bool bad; /* out of memory, invalid UTF-8 or too deep: the text is dropped */
};

static bool reserve(struct out *o, size_t n)
{
    size_t cap;
    char *p;

    if (o->bad)
        return false;
    if (o->cap - o->len > n)
        return true;
    cap = o->cap != 0 ? o->cap : 256;
    while (cap - o->len <= n) {
        if (cap > ((size_t)-1) / 2) {
            o->bad = true;
            return false;
        }
        cap *= 2;
    }
    p = realloc(o->p, cap);
    if (p == NULL) {
        o->bad = true;
        return false;
    }
    o->p = p;
    o->cap = cap;
    return true;
}

static void put(struct out *o, const char *s, size_t n)
{
    if (!reserve(o, n))
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

#define SHORT_FROM "\"\\\b\f\n\r\t"
#define SHORT_TO "\"\\bfnrt"

/* A string as jansson writes it: '"' and '\\' escaped, the five short escapes, other bytes
 * below 0x20 as \u00XX (upper-case hex), everything else as it is once checked to be UTF-8. */
static void put_string(struct out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run, k;
    const char *p;
    char esc[6];

    put(o, "\"", 1);
    while (i < n && !o->bad) {
        run = i;
        while (run < n && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' && u[run] != '\\')
            run++;
        put(o, s + i, run - i);
        i = run;
        if (i == n)
            break;
        if (u[i] >= 0x80) {
            k = nk_utf8_char_len(u + i, n - i);
            if (k == 0) {
                o->bad = true;
                break;
            }
            put(o, s + i, k);
            i += k;
            continue;
        }
        /* the escapes with a letter of their own, then \u00XX for the other control bytes */
        p = memchr(SHORT_FROM, u[i], sizeof(SHORT_FROM) - 1);
        esc[0] = '\\';
        if (p != NULL) {
            esc[1] = SHORT_TO[p - SHORT_FROM];
            put(o, esc, 2);
        } else {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[u[i] >> 4];
            esc[5] = hex[u[i] & 0xf];
            put(o, esc, 6);
        }
        i++;
    }
    put(o, "\"", 1);
}

/* Decimal text of v into buf (at least 21 bytes); returns its length. */
static size_t fmt_int(char *buf, json_int_t v)
{
    char tmp[24];
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    size_t n = 0, k = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[k++] = '-';
    while (n > 0)
        buf[k++] = tmp[--n];
    return k;
}

static void put_value(struct out *o, const json_t *v, unsigned depth)
{
    char num[32];
    size_t i, n;
    void *it;
    char *text;

    if (o->bad)
        return;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (depth >= NK_JSON_OUT_MAX_DEPTH) {
            o->bad = true;
            return;
        }
        put(o, "{", 1);
        for (it = json_object_iter((json_t *)v); it != NULL && !o->bad;) {
            put_string(o, json_object_iter_key(it), json_object_iter_key_len(it));
            put(o, ":", 1);
            put_value(o, json_object_iter_value(it), depth + 1);
            it = json_object_iter_next((json_t *)v, it);
            if (it != NULL)
                put(o, ",", 1);
        }
        put(o, "}", 1);
        return;
    case JSON_ARRAY:
        if (depth >= NK_JSON_OUT_MAX_DEPTH) {
            o->bad = true;
            return;
        }
        put(o, "[", 1);
        n = json_array_size(v);
        for (i = 0; i < n && !o->bad; i++) {
            if (i > 0)
                put(o, ",", 1);
            put_value(o, json_array_get(v, i), depth + 1);
        }
        put(o, "]", 1);
        return;
    case JSON_STRING:
        put_string(o, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        n = fmt_int(num, json_integer_value(v));
        put(o, num, n);
        return;
    case JSON_REAL:
        /* jansson's own formatting (precision 17, ".0" added, exponent trimmed); no container,
         * so none of its per-container cost. */
        text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (text == NULL) {
            o->bad = true;
            return;
        }
        put(o, text, strlen(text));
        free(text);
        return;
    case JSON_TRUE:
        put(o, "true", 4);
        return;
    case JSON_FALSE:
        put(o, "false", 5);
        return;
    case JSON_NULL:
        put(o, "null", 4);
        return;
    }
    o->bad = true;
}

char *nk_json_compact(const json_t *v, size_t *len)
{
    struct out o = {NULL, 0, 0, false};

    if (v == NULL)
        return NULL;
    put_value(&o, v, 0);
    if (!o.bad && reserve(&o, 0))
        o.p[o.len] = '\0';
    if (o.bad) {
        free(o.p);
        return NULL;
    }
    if (len != NULL)
        *len = o.len;
    return o.p;
}
