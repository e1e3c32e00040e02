/* SPDX-License-Identifier: Apache-2.0 */
/* common.c: return-code names, nk_error helpers and the diagnostics list. */
#include "naftikod/common.h"

#include <stdlib.h>
#include <string.h>

int nk_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool nk_split_listen(const char *v, const char **host, size_t *host_len, const char **port)
{
    const char *colon;

    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':')
            return false;
        *host = v + 1;
        *host_len = (size_t)(close - v - 1);
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL || memchr(v, ':', (size_t)(colon - v)) != NULL)
            return false; /* no port, or an unbracketed IPv6 address */
        *host = v;
        *host_len = (size_t)(colon - v);
    }
    *port = colon + 1;
    return true;
}

size_t nk_utf8_char_len(const unsigned char *s, size_t n)
{
    size_t need, i;
    unsigned lo = 0x80, hi = 0xbf;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        need = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        need = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        need = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (n < need || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < need; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return need;
}

size_t nk_utf8_copy(char *dst, size_t cap, const char *src, size_t len)
{
    static const char fffd[] = "\xef\xbf\xbd";
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, o = 0, k;

    while (i < len) {
        const char *from = src + i;

        k = nk_utf8_char_len(s + i, len - i);
        if (k == 0) {
            from = fffd;
            k = 3;
            i++;
        } else {
            i += k;
        }
        if (o + k + 1 > cap)
            break;
        memcpy(dst + o, from, k);
        o += k;
    }
    dst[o] = '\0';
    return o;
}

void nk_utf8_fix(char *buf, size_t cap)
{
    char tmp[4096];
    size_t n = strlen(buf), lead, want;
    unsigned char c;

    if (n >= sizeof(tmp))
        n = sizeof(tmp) - 1;
    /* A character cut at the end (snprintf truncation) is dropped, not replaced. */
    for (lead = n; lead > 0 && n - lead < 3 && ((unsigned char)buf[lead - 1] & 0xc0) == 0x80;)
        lead--;
    if (lead > 0) {
        c = (unsigned char)buf[lead - 1];
        want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (c >= 0xc2 && c <= 0xf4 && n - lead + 1 < want)
            n = lead - 1;
    }
    memcpy(tmp, buf, n);
    nk_utf8_copy(buf, cap < sizeof(tmp) ? cap : sizeof(tmp), tmp, n);
}

const char *nk_rc_str(enum nk_rc rc)
{
    switch (rc) {
    case NK_OK:
        return "ok";
    case NK_ERR_NOMEM:
        return "out of memory";
    case NK_ERR_INVALID:
        return "invalid";
    case NK_ERR_IO:
        return "I/O error";
    case NK_ERR_NOTFOUND:
        return "not found";
    case NK_ERR_UNSUPPORTED:
        return "unsupported";
    case NK_ERR_UPSTREAM:
        return "upstream unreachable";
    case NK_ERR_TIMEOUT:
        return "timed out";
    case NK_ERR_TOO_LARGE:
        return "too large";
    case NK_ERR_INTERNAL:
        return "internal error";
    case NK_ERR_FORBIDDEN:
        return "permission denied";
    }
    return "unknown error";
}

void nk_error_set(struct nk_error *e, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return;
    e->line = 0;
    e->column = 0;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    nk_utf8_fix(e->msg, sizeof(e->msg));
}

void nk_error_setpos(struct nk_error *e, unsigned line, unsigned column, const char *fmt, ...)
{
    va_list ap;

    if (e == NULL)
        return;
    e->line = line;
    e->column = column;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    nk_utf8_fix(e->msg, sizeof(e->msg));
}

void nk_diags_init(struct nk_diags *d)
{
    memset(d, 0, sizeof(*d));
}

void nk_diags_cleanup(struct nk_diags *d)
{
    size_t i;

    if (d == NULL)
        return;
    for (i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].msg);
    }
    free(d->v);
    memset(d, 0, sizeof(*d));
}

static char *vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    int len;
    char *s;

    va_copy(ap2, ap);
    len = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (len < 0)
        return NULL;
    s = malloc((size_t)len + 1);
    if (s != NULL)
        vsnprintf(s, (size_t)len + 1, fmt, ap);
    return s;
}

void nk_diags_vadd(struct nk_diags *d, enum nk_severity sev, const char *file, unsigned line,
                   unsigned column, const char *fmt, va_list ap)
{
    struct nk_diag *slot;
    char *msg = NULL;
    char *fcopy = NULL;

    if (d->n == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 16;
        struct nk_diag *nv = realloc(d->v, ncap * sizeof(*nv));
        if (nv == NULL)
            goto oom;
        d->v = nv;
        d->cap = ncap;
    }
    msg = vformat(fmt, ap);
    fcopy = strdup(file ? file : "<input>");
    if (msg == NULL || fcopy == NULL)
        goto oom;
    slot = &d->v[d->n++];
    slot->sev = sev;
    slot->file = fcopy;
    slot->line = line;
    slot->column = column;
    slot->msg = msg;
    if (sev == NK_SEV_ERROR)
        d->n_errors++;
    else
        d->n_warnings++;
    return;
oom:
    free(msg);
    free(fcopy);
    d->oom = 1;
    if (sev == NK_SEV_ERROR)
        d->n_errors++;
}

void nk_diags_add(struct nk_diags *d, enum nk_severity sev, const char *file, unsigned line,
                  unsigned column, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    nk_diags_vadd(d, sev, file, line, column, fmt, ap);
    va_end(ap);
}

static int diag_before(const struct nk_diag *a, const struct nk_diag *b)
{
    int c = strcmp(a->file, b->file);

    if (c != 0)
        return c < 0;
    if (a->line != b->line)
        return a->line < b->line;
    return a->column < b->column;
}

void nk_diags_sort(struct nk_diags *d)
{
    size_t i, j;

    /* Insertion sort: stable, and diagnostic lists are short and nearly sorted. */
    for (i = 1; i < d->n; i++) {
        struct nk_diag tmp = d->v[i];
        for (j = i; j > 0 && diag_before(&tmp, &d->v[j - 1]); j--)
            d->v[j] = d->v[j - 1];
        d->v[j] = tmp;
    }
    /* The same message at the same place once: a construct compiled for several users (an
     * aggregate function referenced by several operations) reports its problems once. */
    for (i = 0, j = 0; i < d->n; i++) {
        size_t k;
        bool dup = false;
        for (k = j; k > 0 && !dup && !diag_before(&d->v[k - 1], &d->v[i]); k--)
            dup = d->v[k - 1].sev == d->v[i].sev && strcmp(d->v[k - 1].msg, d->v[i].msg) == 0;
        if (!dup) {
            d->v[j++] = d->v[i];
            continue;
        }
        if (d->v[i].sev == NK_SEV_ERROR)
            d->n_errors--;
        else
            d->n_warnings--;
        free(d->v[i].file);
        free(d->v[i].msg);
    }
    d->n = j;
}

void nk_diags_print(const struct nk_diags *d, FILE *out)
{
    size_t i;

    for (i = 0; i < d->n; i++) {
        const struct nk_diag *g = &d->v[i];
        fprintf(out, "%s:%u:%u: %s: %s\n", g->file, g->line, g->column,
                g->sev == NK_SEV_ERROR ? "error" : "warning", g->msg);
    }
    if (d->oom)
        fprintf(out, "naftikod: out of memory: some diagnostics were lost\n");
}
