/* SPDX-License-Identifier: Apache-2.0 */
/* jsoncheck.c: one-pass JSON and UTF-8 validator for upstream answers. */
#include "naftikod/invoke.h"

#include <string.h>

#include "invoke_int.h"

/* ---- JSON and UTF-8 checks ---------------------------------------------------------------- */

static size_t skip_ws(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* The value of the 4 hex digits at s[i..], or -1. */
static long hex4(const unsigned char *s, size_t n, size_t i)
{
    long v = 0;
    size_t k;
    int d;

    if (n - i < 4)
        return -1;
    for (k = 0; k < 4; k++) {
        d = nk_hex_digit(s[i + k]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* s[i] is '"': the index just past the closing quote, or 0 when the string is malformed. */
static size_t string_end(const unsigned char *s, size_t n, size_t i)
{
    size_t len;
    long u, lo;

    for (i++; i < n;) {
        if (s[i] == '"')
            return i + 1;
        if (s[i] < 0x20)
            return 0;
        if (s[i] < 0x80 && s[i] != '\\') {
            i++;
            continue;
        }
        if (s[i] >= 0x80) {
            len = nk_utf8_char_len(s + i, n - i);
            if (len == 0)
                return 0;
            i += len;
            continue;
        }
        if (i + 1 >= n)
            return 0;
        if (strchr("\"\\/bfnrt", s[i + 1]) != NULL && s[i + 1] != '\0') {
            i += 2;
            continue;
        }
        if (s[i + 1] != 'u' || (u = hex4(s, n, i + 2)) < 0)
            return 0;
        i += 6;
        if (u >= 0xDC00 && u <= 0xDFFF)
            return 0; /* a low surrogate alone */
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (i + 1 >= n || s[i] != '\\' || s[i + 1] != 'u')
                return 0;
            lo = hex4(s, n, i + 2);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return 0;
            i += 6;
        }
    }
    return 0;
}

static size_t digits_end(const unsigned char *s, size_t n, size_t i)
{
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* s[i] starts a number: the index just past it, or 0 when it is malformed. */
static size_t number_end(const unsigned char *s, size_t n, size_t i)
{
    size_t j;

    if (i < n && s[i] == '-')
        i++;
    if (i >= n || s[i] < '0' || s[i] > '9')
        return 0;
    i = s[i] == '0' ? i + 1 : digits_end(s, n, i);
    if (i < n && s[i] == '.') {
        j = digits_end(s, n, i + 1);
        if (j == i + 1)
            return 0;
        i = j;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        j = digits_end(s, n, i);
        if (j == i)
            return 0;
        i = j;
    }
    return i;
}

bool nk_invoke_check_json(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;
    char open[NK_JSON_MAX_DEPTH]; /* '{' or '[' of each container entered */
    enum { WANT_VALUE, WANT_KEY, AFTER_VALUE } st = WANT_VALUE;
    size_t i = 0, depth = 0, end;

    if (s == NULL)
        return false;
    for (;;) {
        i = skip_ws(s, n, i);
        if (st == AFTER_VALUE) {
            if (depth == 0)
                return i == n;
            if (i >= n)
                return false;
            if (s[i] == ',') {
                st = open[depth - 1] == '{' ? WANT_KEY : WANT_VALUE;
                i++;
            } else if (s[i] == (open[depth - 1] == '{' ? '}' : ']')) {
                depth--;
                i++;
            } else {
                return false;
            }
            continue;
        }
        if (i >= n)
            return false;
        if (st == WANT_KEY) {
            if (s[i] != '"' || (end = string_end(s, n, i)) == 0)
                return false;
            i = skip_ws(s, n, end);
            if (i >= n || s[i] != ':')
                return false;
            i++;
            st = WANT_VALUE;
            continue;
        }
        /* WANT_VALUE */
        switch (s[i]) {
        case '{':
        case '[':
            if (depth == NK_JSON_MAX_DEPTH)
                return false;
            open[depth++] = (char)s[i];
            i = skip_ws(s, n, i + 1);
            if (i < n && s[i] == (open[depth - 1] == '{' ? '}' : ']')) {
                depth--;
                i++;
                st = AFTER_VALUE;
            } else {
                st = open[depth - 1] == '{' ? WANT_KEY : WANT_VALUE;
            }
            continue;
        case '"':
            end = string_end(s, n, i);
            break;
        case 't':
            end = n - i >= 4 && memcmp(s + i, "true", 4) == 0 ? i + 4 : 0;
            break;
        case 'f':
            end = n - i >= 5 && memcmp(s + i, "false", 5) == 0 ? i + 5 : 0;
            break;
        case 'n':
            end = n - i >= 4 && memcmp(s + i, "null", 4) == 0 ? i + 4 : 0;
            break;
        default:
            end = number_end(s, n, i);
            break;
        }
        if (end == 0)
            return false;
        i = end;
        st = AFTER_VALUE;
    }
}
