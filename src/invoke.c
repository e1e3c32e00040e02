/* SPDX-License-Identifier: Apache-2.0 */
/* invoke.c: run-time context (binds, server variables), argument checking, upstream request
 * building, and mapping of the upstream answer. */
#include "naftikod/invoke.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "naftikod/metrics.h"
#include "naftikod/secret.h"

struct nk_context {
    atomic_int refs;
    struct nk_optable *t;
    char **bind_values; /* parallel to t->binds; secrets */
    char **bases;       /* parallel to t->consumers: expanded baseUri, no trailing '/' */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    char *np;
    size_t ncap;

    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        ncap = b->cap ? b->cap : 128;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        np = realloc(b->p, ncap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* Hand the buffer out (always a string, possibly empty), or NULL on OOM. */
static char *sb_take(struct sbuf *b)
{
    char *p;

    sb_add(b, "", 0);
    if (b->oom) {
        if (b->p != NULL)
            explicit_bzero(b->p, b->cap);
        free(b->p);
        b->p = NULL;
        return NULL;
    }
    p = b->p;
    b->p = NULL;
    return p;
}

static void sb_wipe(struct sbuf *b)
{
    if (b->p != NULL)
        explicit_bzero(b->p, b->cap);
    free(b->p);
    b->p = NULL;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    struct sbuf *b = data;

    sb_add(b, buf, size);
    return b->oom ? -1 : 0;
}

/* json_dumps, except that a failed allocation is always an error: jansson 2.14 ignores the
 * result of dumping an object key, so json_dumps can return a damaged text under memory
 * pressure (found by the allocation-failure test). */
static char *dump_json(json_t *v)
{
    struct sbuf b = {NULL, 0, 0, false};

    if (json_dump_callback(v, dump_cb, &b,
                           JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17)) != 0)
        b.oom = true;
    return sb_take(&b);
}

/* ---- JSON and UTF-8 checks ---------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no overlong form, no
 * surrogate, nothing above U+10FFFF), or 0 when there is none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c < 0xC2 || c > 0xF4)
        return 0;
    if (n < 2 || (s[1] & 0xC0) != 0x80)
        return 0;
    if (c < 0xE0)
        return 2;
    if (n < 3 || (s[2] & 0xC0) != 0x80 || (c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F))
        return 0;
    if (c < 0xF0)
        return 3;
    if (n < 4 || (s[3] & 0xC0) != 0x80 || (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return 4;
}

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
            len = utf8_len(s + i, n - i);
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

/* ---- context ------------------------------------------------------------------------------ */

static bool tmpl_uses(const struct nk_tmpl *t, const struct nk_bind *b)
{
    size_t i, nl = strlen(b->ns);

    for (i = 0; t != NULL && i < t->n; i++) {
        const char *x = t->parts[i].text;
        if (t->parts[i].kind != NK_TMPL_VAR)
            continue;
        if (strcmp(x, b->name) == 0 ||
            (strncmp(x, b->ns, nl) == 0 && x[nl] == '.' && strcmp(x + nl + 1, b->name) == 0))
            return true;
    }
    return false;
}

/* " (used by ...)" for a diagnostic about bind b, or "" when no use is found. */
static void bind_use(const struct nk_optable *t, const struct nk_bind *b, char *out, size_t n)
{
    size_t i, j;

    out[0] = '\0';
    for (i = 0; i < t->n_consumers; i++) {
        const struct nk_consumer *c = &t->consumers[i];
        const struct nk_auth *a = &c->auth;
        const char *what = NULL;
        if (tmpl_uses(&a->value, b) || tmpl_uses(&a->token, b) || tmpl_uses(&a->username, b) ||
            tmpl_uses(&a->password, b))
            what = "the authentication of consumer";
        else if (tmpl_uses(&c->base_uri, b))
            what = "the baseUri of consumer";
        for (j = 0; what == NULL && j < c->n_headers; j++)
            if (tmpl_uses(&c->headers[j].value, b))
                what = "a header of consumer";
        if (what != NULL) {
            snprintf(out, n, " (used in %s '%s' at %s:%u)", what, c->ns,
                     c->pos.file ? c->pos.file : "<input>", c->pos.line);
            return;
        }
    }
}

/* Read a bind from its file. A file holding a JSON object is a set of values keyed by the
 * bind's source name (so one `location` can serve several keys); any other file is the value
 * itself, with one trailing newline removed. */
static enum nk_rc read_bind_file(const struct nk_bind *b, char **out, char *why, size_t why_n)
{
    enum nk_rc rc;
    char *buf = NULL, label[4200];
    size_t n = 0, r;
    json_t *doc = NULL, *v;
    json_error_t jerr;

    *out = NULL;
    snprintf(label, sizeof(label), "'%s'", b->location);
    rc = nk_secret_read_small(b->location, label, &buf, &n, why, why_n);
    if (rc != NK_OK)
        return rc;
    for (r = 0; r < n && isspace((unsigned char)buf[r]); r++)
        ;
    if (r < n && buf[r] == '{') {
        doc = json_loadb(buf, n, 0, &jerr);
        if (doc == NULL) {
            if (json_error_code(&jerr) == json_error_out_of_memory) {
                rc = NK_ERR_NOMEM;
            } else {
                snprintf(why, why_n, "'%s' is not valid JSON: %s (line %d)", b->location, jerr.text,
                         jerr.line);
                rc = NK_ERR_INVALID;
            }
            goto out;
        }
    }
    if (json_is_object(doc)) {
        v = json_object_get(doc, b->source);
        if (!json_is_string(v)) {
            snprintf(why, why_n, "'%s' has no string value '%s'", b->location, b->source);
            rc = NK_ERR_NOTFOUND;
            goto out;
        }
        *out = strdup(json_string_value(v));
    } else {
        if (n > 0 && buf[n - 1] == '\n')
            buf[--n] = '\0';
        if (n > 0 && buf[n - 1] == '\r')
            buf[--n] = '\0';
        if (strlen(buf) != n) {
            snprintf(why, why_n, "'%s' contains a NUL byte", b->location);
            rc = NK_ERR_INVALID;
            goto out;
        }
        *out = strdup(buf);
    }
    if (*out == NULL)
        rc = NK_ERR_NOMEM;
out:
    nk_secret_free_wiped(buf);
    /* jansson keeps its own copies of the strings: nothing to wipe reliably, drop it. */
    json_decref(doc);
    return rc;
}

struct base_lookup {
    const struct nk_context *c;
    const struct nk_var *vars;
    size_t n_vars;
    char env_name[256];
};

static const char *find_bind(const struct nk_context *c, const char *name)
{
    const struct nk_optable *t = c->t;
    size_t i, nl;

    for (i = 0; i < t->n_binds; i++) {
        const struct nk_bind *b = &t->binds[i];
        nl = strlen(b->ns);
        if (strcmp(name, b->name) == 0 || (strncmp(name, b->ns, nl) == 0 && name[nl] == '.' &&
                                           strcmp(name + nl + 1, b->name) == 0))
            return c->bind_values[i];
    }
    return NULL;
}

static const char *bind_lookup(void *ud, const char *name)
{
    return find_bind(ud, name);
}

/* "Bearer x", "Basic x", "ApiKey x": a token, a space, something. */
static bool has_scheme(const char *v)
{
    const char *sp = strchr(v, ' ');

    return sp != NULL && sp != v && sp[1] != '\0';
}

/* Judge the resolved Authorization value of every apikey consumer: a value without a scheme
 * ("<token>" instead of "Bearer <token>") is sent as is, which servers such as StackRox Central
 * refuse. A warning names the consumer and the bind, never the value. */
static enum nk_rc check_auth_schemes(const struct nk_context *c, struct nk_diags *diags)
{
    const struct nk_optable *t = c->t;
    struct nk_error err;
    char *v = NULL;
    size_t i;

    for (i = 0; i < t->n_consumers; i++) {
        const struct nk_consumer *k = &t->consumers[i];
        const struct nk_auth *a = &k->auth;
        /* A literal value was judged by the loader already (so `check` warns too): only a
         * template's value is new here. */
        if (a->type != NK_AUTH_APIKEY || a->placement != NK_PLACE_HEADER ||
            strcasecmp(a->key, "Authorization") != 0 || nk_tmpl_is_literal(&a->value))
            continue;
        memset(&err, 0, sizeof(err));
        if (nk_tmpl_expand(&a->value, bind_lookup, (void *)c, NK_ENC_NONE, &v, &err) ==
            NK_ERR_NOMEM)
            return NK_ERR_NOMEM;
        if (v != NULL && !has_scheme(v))
            nk_diags_add(diags, NK_SEV_WARNING, k->pos.file, k->pos.line, k->pos.column,
                         "the Authorization value of consumer '%s' (%s) has no scheme: it is "
                         "sent exactly as configured; servers such as StackRox Central only "
                         "accept 'Bearer <token>', so set the value to \"Bearer <token>\" or "
                         "use type: bearer",
                         k->ns, a->value.src);
        wipe_free(v);
        v = NULL;
    }
    return NK_OK;
}

/* central-host -> CENTRAL_HOST */
static void env_name_of(const char *name, char *out, size_t n)
{
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < n; i++)
        out[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
    out[i] = '\0';
}

static const char *server_var(struct base_lookup *l, const char *name)
{
    size_t i;

    for (i = 0; i < l->n_vars; i++)
        if (strcmp(l->vars[i].name, name) == 0)
            return l->vars[i].value;
    env_name_of(name, l->env_name, sizeof(l->env_name));
    return getenv(l->env_name);
}

static enum nk_rc expand_base(struct nk_context *ctx, const struct nk_consumer *c,
                              const struct nk_var *vars, size_t n_vars, struct nk_diags *diags,
                              char **out)
{
    struct base_lookup l = {ctx, vars, n_vars, ""};
    struct sbuf b = {NULL, 0, 0, false};
    const struct nk_tmpl *t = &c->base_uri;
    const char *file = c->pos.file;
    const char *v;
    bool missing = false;
    size_t i;

    *out = NULL;
    for (i = 0; i < t->n; i++) {
        const struct nk_tmpl_part *p = &t->parts[i];
        if (p->kind == NK_TMPL_LIT) {
            sb_str(&b, p->text);
            continue;
        }
        v = p->double_braced ? find_bind(ctx, p->text) : server_var(&l, p->text);
        if (v == NULL || (!p->double_braced && v[0] == '\0')) {
            if (!p->double_braced) {
                env_name_of(p->text, l.env_name, sizeof(l.env_name));
                nk_diags_add(diags, NK_SEV_ERROR, file, c->pos.line, c->pos.column,
                             "baseUri variable '%s' of consumer '%s' is not set: pass --var "
                             "%s=VALUE or set the environment variable %s",
                             p->text, c->ns, p->text, l.env_name);
            }
            /* a missing bind was already reported by the bind pass */
            missing = true;
            continue;
        }
        sb_str(&b, v);
    }
    if (missing) {
        sb_wipe(&b);
        return NK_ERR_INVALID;
    }
    *out = sb_take(&b);
    if (*out == NULL)
        return NK_ERR_NOMEM;
    while (strlen(*out) > 0 && (*out)[strlen(*out) - 1] == '/')
        (*out)[strlen(*out) - 1] = '\0';
    return NK_OK;
}

const char *nk_context_base_uri(const struct nk_context *c, size_t consumer)
{
    return consumer < c->t->n_consumers ? c->bases[consumer] : NULL;
}

static void context_free(struct nk_context *c)
{
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; c->bind_values != NULL && i < c->t->n_binds; i++)
        wipe_free(c->bind_values[i]);
    free(c->bind_values);
    for (i = 0; c->bases != NULL && i < c->t->n_consumers; i++)
        free(c->bases[i]);
    free(c->bases);
    nk_optable_unref(c->t);
    free(c);
}

enum nk_rc nk_context_new(struct nk_optable *t, const struct nk_var *vars, size_t n_vars,
                          struct nk_diags *diags, struct nk_context **out)
{
    enum nk_rc rc = NK_OK, r;
    struct nk_context *c = NULL;
    char why[400], use[300];
    size_t i;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NK_ERR_NOMEM;
    atomic_init(&c->refs, 1);
    c->t = nk_optable_ref(t);
    c->bind_values = calloc(t->n_binds + 1, sizeof(char *));
    c->bases = calloc(t->n_consumers + 1, sizeof(char *));
    if (c->bind_values == NULL || c->bases == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < t->n_binds; i++) {
        const struct nk_bind *b = &t->binds[i];
        bind_use(t, b, use, sizeof(use));
        if (b->location != NULL) {
            why[0] = '\0';
            r = read_bind_file(b, &c->bind_values[i], why, sizeof(why));
            if (r == NK_ERR_NOMEM) {
                rc = r;
                goto out;
            }
            if (r != NK_OK) {
                nk_diags_add(diags, NK_SEV_ERROR, b->pos.file, b->pos.line, b->pos.column,
                             "bind '%s.%s' has no value: %s%s", b->ns, b->name, why, use);
                rc = NK_ERR_INVALID;
            }
            continue;
        }
        why[0] = '\0';
        r = nk_secret_value(b->source, &c->bind_values[i], why, sizeof(why));
        if (r == NK_ERR_NOMEM) {
            rc = r;
            goto out;
        }
        if (r != NK_OK) {
            nk_diags_add(diags, NK_SEV_ERROR, b->pos.file, b->pos.line, b->pos.column,
                         "bind '%s.%s' has no value: %s%s", b->ns, b->name, why, use);
            rc = NK_ERR_INVALID;
        }
    }
    for (i = 0; i < t->n_binds; i++) {
        const struct nk_bind *b = &t->binds[i];
        /* No HTTP header can carry a line break: refuse now rather than fail every call. */
        if (c->bind_values[i] == NULL || strpbrk(c->bind_values[i], "\r\n") == NULL)
            continue;
        bind_use(t, b, use, sizeof(use));
        nk_diags_add(diags, NK_SEV_ERROR, b->pos.file, b->pos.line, b->pos.column,
                     "bind '%s.%s' holds a line break (CR or LF), which no HTTP header can "
                     "carry: remove it from %s%s%s%s",
                     b->ns, b->name, b->location != NULL ? "the file '" : "the value of ",
                     b->location != NULL ? b->location : b->source,
                     b->location != NULL ? "'" : " (or its _FILE)", use);
        rc = NK_ERR_INVALID;
    }
    for (i = 0; i < t->n_consumers; i++) {
        r = expand_base(c, &t->consumers[i], vars, n_vars, diags, &c->bases[i]);
        if (r == NK_ERR_NOMEM) {
            rc = r;
            goto out;
        }
        if (r != NK_OK)
            rc = NK_ERR_INVALID;
    }
    if (rc == NK_OK && diags != NULL)
        rc = check_auth_schemes(c, diags);
    if (diags != NULL && diags->oom)
        rc = NK_ERR_NOMEM;
out:
    if (rc != NK_OK) {
        context_free(c);
        return rc;
    }
    *out = c;
    return NK_OK;
}

struct nk_context *nk_context_ref(struct nk_context *c)
{
    if (c != NULL)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void nk_context_unref(struct nk_context *c)
{
    if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
        context_free(c);
}

const struct nk_optable *nk_context_table(const struct nk_context *c)
{
    return c->t;
}

void nk_result_free(struct nk_result *r)
{
    if (r == NULL)
        return;
    json_decref(r->json);
    free(r->raw);
    free(r->content_type);
    free(r);
}

/* ---- argument checking -------------------------------------------------------------------- */

/* Strict decimal integer: optional '-', digits, nothing else. */
static bool parse_int(const char *s, json_int_t *out)
{
    long long v;
    char *end;

    if (s[0] == '\0' || (!isdigit((unsigned char)s[0]) && s[0] != '-'))
        return false;
    if (s[0] == '-' && !isdigit((unsigned char)s[1]))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (json_int_t)v;
    return true;
}

/* A JSON number: -?digits(.digits)?([eE][+-]?digits)?, finite. */
static bool parse_number(const char *s, double *out)
{
    const char *p = s;
    char *end;

    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return false;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return false;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p != '\0')
        return false;
    errno = 0;
    *out = strtod(s, &end);
    return errno == 0 && *end == '\0' && isfinite(*out);
}

/* Booleans take Go's strconv.ParseBool spellings, because the upstream that motivated
 * naftikod (StackRox Central) accepts exactly those: 1 t T TRUE true True / 0 f F FALSE false
 * False. */
static int parse_bool(const char *s)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    size_t i;

    for (i = 0; i < 6; i++) {
        if (strcmp(s, yes[i]) == 0)
            return 1;
        if (strcmp(s, no[i]) == 0)
            return 0;
    }
    return -1;
}

static void describe(json_t *v, char *out, size_t n)
{
    char *s = dump_json(v);

    if (s == NULL) {
        snprintf(out, n, "a value");
        return;
    }
    /* Cut on a character boundary: a cut character makes the message invalid UTF-8. */
    if (strlen(s) > 64 && n > 64) {
        size_t k = nk_utf8_copy(out, 61, s, strlen(s));

        snprintf(out + k, n - k, "...");
    } else {
        nk_utf8_copy(out, n, s, strlen(s));
    }
    free(s);
}

static json_t *type_error(const char *name, enum nk_type t, json_t *v, struct nk_error *err)
{
    char got[80];

    describe(v, got, sizeof(got));
    nk_error_set(err, "parameter '%s' must be %s %s, got %s", name,
                 t == NK_TYPE_INTEGER || t == NK_TYPE_ARRAY || t == NK_TYPE_OBJECT ? "an" : "a",
                 nk_type_name(t), got);
    return NULL;
}

/* Check v against type t, coercing strings in NK_ARGS_STRINGS mode. Returns a new reference
 * or NULL with err set (*oom tells allocation failure). */
static json_t *coerce(const char *name, enum nk_type t, json_t *v, enum nk_args_mode mode,
                      struct nk_error *err, bool *oom)
{
    json_int_t iv;
    double dv;
    json_t *r = NULL, *a, *e;
    size_t i;
    int bv;

    if (mode == NK_ARGS_STRINGS && json_is_string(v)) {
        const char *s = json_string_value(v);
        switch (t) {
        case NK_TYPE_BOOLEAN:
            bv = parse_bool(s);
            if (bv < 0)
                return type_error(name, t, v, err);
            return json_boolean(bv);
        case NK_TYPE_INTEGER:
            if (!parse_int(s, &iv))
                return type_error(name, t, v, err);
            r = json_integer(iv);
            break;
        case NK_TYPE_NUMBER:
            if (parse_int(s, &iv))
                r = json_integer(iv);
            else if (parse_number(s, &dv))
                r = json_real(dv);
            else
                return type_error(name, t, v, err);
            break;
        case NK_TYPE_ARRAY:
            /* one query value for an array parameter is a one-element array */
            a = json_array();
            if (a == NULL || json_array_append(a, v) != 0) {
                json_decref(a);
                break;
            }
            r = a;
            break;
        case NK_TYPE_OBJECT:
            return type_error(name, t, v, err);
        case NK_TYPE_STRING:
        case NK_TYPE_ANY:
            return json_incref(v);
        }
        if (r == NULL)
            *oom = true;
        return r;
    }
    switch (t) {
    case NK_TYPE_ANY:
        return json_incref(v);
    case NK_TYPE_STRING:
        return json_is_string(v) ? json_incref(v) : type_error(name, t, v, err);
    case NK_TYPE_BOOLEAN:
        return json_is_boolean(v) ? json_incref(v) : type_error(name, t, v, err);
    case NK_TYPE_NUMBER:
        return json_is_number(v) ? json_incref(v) : type_error(name, t, v, err);
    case NK_TYPE_INTEGER:
        if (json_is_integer(v))
            return json_incref(v);
        /* JSON does not tell 5 from 5.0; an integral real is an integer */
        dv = json_is_real(v) ? json_real_value(v) : 0.5;
        if (dv == floor(dv) && fabs(dv) < 9007199254740992.0) {
            r = json_integer((json_int_t)dv);
            if (r == NULL)
                *oom = true;
            return r;
        }
        return type_error(name, t, v, err);
    case NK_TYPE_OBJECT:
        return json_is_object(v) ? json_incref(v) : type_error(name, t, v, err);
    case NK_TYPE_ARRAY:
        if (!json_is_array(v))
            return type_error(name, t, v, err);
        if (mode == NK_ARGS_STRINGS) {
            /* REST gives repeated query values as strings: items must be scalars */
            json_array_foreach(v, i, e)
            {
                if (json_is_object(e) || json_is_array(e))
                    return type_error(name, t, v, err);
            }
        }
        return json_incref(v);
    }
    return type_error(name, t, v, err);
}

static bool pattern_ok(const char *pattern, const char *s)
{
    regex_t re;
    bool ok = true;

    /* JSON Schema patterns are ECMA-262; the common subset is POSIX ERE. A pattern POSIX cannot
     * compile is not enforced here (the loader reports patterns it rejects). */
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return true;
    ok = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

/* ---- request building --------------------------------------------------------------------- */

struct build {
    const struct nk_context *ctx;
    const struct nk_exposed *op;
    json_t *raw_args; /* borrowed */
    json_t *vals;     /* coerced arguments by name */
    /* strings handed out by lookups, freed (wiped) when the build ends */
    char **scratch;
    size_t n_scratch, cap_scratch;
    bool oom;
    /* path parameter values by param index (strings), for the path template */
    char **path_vals;
    /* passthrough: the caller's Authorization goes upstream; no bind is ever expanded */
    const char *caller_auth;
    /* the first path variable whose value is a dot segment ("." or ".."), or NULL */
    const char *dot_var;
    /* while the body expands: the consumed parameters' values (by param index), so a body
     * `{{p}}` reads what `with` gave parameter p */
    json_t **body_pvals;
};

static const char *keep(struct build *b, char *s)
{
    char **ns;

    if (s == NULL) {
        b->oom = true;
        return NULL;
    }
    if (b->n_scratch == b->cap_scratch) {
        b->cap_scratch = b->cap_scratch ? b->cap_scratch * 2 : 8;
        ns = realloc(b->scratch, b->cap_scratch * sizeof(*ns));
        if (ns == NULL) {
            wipe_free(s);
            b->oom = true;
            return NULL;
        }
        b->scratch = ns;
    }
    b->scratch[b->n_scratch++] = s;
    return s;
}

/* Text form of a JSON value for URLs and headers: strings as is, scalars as JSON, containers as
 * compact JSON. New malloc'd string or NULL on OOM. */
static char *text_of(json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_true(v))
        return strdup("true");
    if (json_is_false(v))
        return strdup("false");
    if (json_is_null(v))
        return strdup("");
    return dump_json(v);
}

/* An argument by any of its spellings: x, rest.x, tools.x, ns.x, $this.ns.x (dotted argument
 * names such as pagination.limit are tried whole before a prefix is stripped). */
static json_t *find_arg_value(struct build *b, const char *name)
{
    const char *p = name;
    json_t *v;

    if (strncmp(p, "$this.", 6) == 0)
        p += 6;
    while (p != NULL && *p != '\0') {
        v = json_object_get(b->vals, p);
        if (v == NULL && b->raw_args != NULL)
            v = json_object_get(b->raw_args, p);
        if (v != NULL && !json_is_null(v))
            return v;
        p = strchr(p, '.');
        if (p != NULL)
            p++;
    }
    return NULL;
}

/* A body variable: an argument by any spelling, else the value `with` gave the consumed
 * parameter of that name (body phase only). */
static json_t *body_value(struct build *b, const char *name)
{
    const struct nk_operation *o = b->op->target;
    json_t *v = find_arg_value(b, name);
    size_t i;

    for (i = 0; v == NULL && b->body_pvals != NULL && i < o->n_params; i++)
        if (strcmp(o->params[i].name, name) == 0 && b->body_pvals[i] != NULL &&
            !json_is_null(b->body_pvals[i]))
            v = b->body_pvals[i];
    return v;
}

static const char *lookup(void *ud, const char *name)
{
    struct build *b = ud;
    const char *v = b->caller_auth != NULL ? NULL : find_bind(b->ctx, name);
    json_t *a;

    if (v != NULL)
        return v;
    a = body_value(b, name);
    if (a == NULL)
        return NULL;
    if (json_is_string(a))
        return json_string_value(a);
    return keep(b, text_of(a));
}

static bool is_dot_segment(const char *v)
{
    return v != NULL && (strcmp(v, ".") == 0 || strcmp(v, "..") == 0);
}

/* Path variables: a value "." or ".." would survive encoding as a dot segment that the upstream
 * (or a proxy in front of it) resolves to another path, reached with the bound credential; it is
 * noted here and refused after the expansion. */
static const char *path_lookup(void *ud, const char *name)
{
    struct build *b = ud;
    const struct nk_operation *o = b->op->target;
    const char *v = NULL;
    size_t i;

    for (i = 0; i < o->n_params; i++)
        if (o->params[i].in == NK_IN_PATH && strcmp(o->params[i].name, name) == 0)
            break;
    v = i < o->n_params ? b->path_vals[i] : lookup(ud, name);
    if (is_dot_segment(v) && b->dot_var == NULL)
        b->dot_var = name;
    return v;
}

static const struct nk_binding *binding_of(const struct nk_exposed *op, const struct nk_param *p)
{
    size_t i;

    for (i = 0; i < op->n_bindings; i++)
        if (op->bindings[i].param == p)
            return &op->bindings[i];
    return NULL;
}

static enum nk_rc expand_text(struct build *b, const struct nk_tmpl *t, char **out,
                              struct nk_error *err)
{
    enum nk_rc rc = nk_tmpl_expand(t, lookup, b, NK_ENC_NONE, out, err);

    if (b->oom) {
        wipe_free(*out);
        *out = NULL;
        return NK_ERR_NOMEM;
    }
    return rc;
}

/* The value consumed parameter p receives: a new reference, or NULL when it is omitted. */
static enum nk_rc param_value(struct build *b, const struct nk_param *p, json_t **out,
                              enum nk_args_mode mode, struct nk_error *err)
{
    const struct nk_binding *bd = binding_of(b->op, p);
    const struct nk_tmpl *t = NULL;
    const struct nk_arg *arg;
    enum nk_rc rc;
    json_t *v;
    char *s = NULL;
    bool oom = false;

    *out = NULL;
    if (bd != NULL && bd->kind == NK_BIND_ARG) {
        arg = &b->op->args[bd->arg];
        v = json_object_get(b->vals, arg->name);
        if (v != NULL) {
            /* An undeclared argument type falls back to the consumed parameter's type. */
            if (arg->type == NK_TYPE_ANY && p->type != NK_TYPE_ANY) {
                *out = coerce(arg->name, p->type, v, mode, err, &oom);
                return *out != NULL ? NK_OK : oom ? NK_ERR_NOMEM : NK_ERR_INVALID;
            }
            *out = json_incref(v);
            return NK_OK;
        }
        t = p->value; /* absent argument: the static value, if any */
    } else if (bd != NULL) {
        t = &bd->tmpl;
    } else {
        t = p->value;
    }
    if (t == NULL)
        goto absent;
    /* A template that is exactly one argument keeps that argument's JSON type (bodies). */
    if (t->n == 1 && t->parts[0].kind == NK_TMPL_VAR &&
        find_bind(b->ctx, t->parts[0].text) == NULL) {
        v = find_arg_value(b, t->parts[0].text);
        if (v == NULL)
            goto absent;
        /* checked like an argument; a string parameter takes any scalar as its text */
        if (p->type != NK_TYPE_ANY && p->type != NK_TYPE_STRING) {
            *out = coerce(p->name, p->type, v, mode, err, &oom);
            return *out != NULL ? NK_OK : oom ? NK_ERR_NOMEM : NK_ERR_INVALID;
        }
        *out = json_incref(v);
        return NK_OK;
    }
    rc = expand_text(b, t, &s, err);
    if (rc == NK_ERR_NOTFOUND)
        goto absent; /* a template over an absent optional argument omits the parameter */
    if (rc != NK_OK)
        return rc;
    *out = json_string(s);
    wipe_free(s);
    if (*out == NULL) {
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    return NK_OK;
absent:
    if (p->required && p->in != NK_IN_BODY) {
        nk_error_set(err, "missing required parameter '%s'", p->name);
        return NK_ERR_INVALID;
    }
    if (p->required) {
        nk_error_set(err, "missing required parameter '%s' (the request body)", p->name);
        return NK_ERR_INVALID;
    }
    return NK_OK;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

struct hdrs {
    char **v;
    size_t n, cap;
};

static enum nk_rc hdr_add(struct hdrs *h, const char *name, const char *value)
{
    char **nv;
    size_t len = strlen(name) + strlen(value) + 3;
    char *line;

    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        nv = realloc(h->v, h->cap * sizeof(*nv));
        if (nv == NULL)
            return NK_ERR_NOMEM;
        h->v = nv;
    }
    line = malloc(len);
    if (line == NULL)
        return NK_ERR_NOMEM;
    snprintf(line, len, "%s: %s", name, value);
    h->v[h->n++] = line;
    return NK_OK;
}

static bool hdr_has(const struct hdrs *h, const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i < h->n; i++)
        if (strncasecmp(h->v[i], name, n) == 0 && h->v[i][n] == ':')
            return true;
    return false;
}

static void query_add(struct sbuf *q, const char *name, const char *value)
{
    char *en = nk_pct_encode(name, strlen(name), NK_ENC_QUERY);
    char *ev = nk_pct_encode(value, strlen(value), NK_ENC_QUERY);

    if (en == NULL || ev == NULL) {
        q->oom = true;
    } else {
        sb_add(q, q->len == 0 ? "?" : "&", 1);
        sb_str(q, en);
        sb_add(q, "=", 1);
        sb_str(q, ev);
    }
    free(en);
    wipe_free(ev);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64(const char *s, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
    const unsigned char *p = (const unsigned char *)s;
    size_t i;

    if (out == NULL)
        return NULL;
    for (i = 0; i + 2 < n; i += 3) {
        *o++ = b64[p[i] >> 2];
        *o++ = b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        *o++ = b64[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        *o++ = b64[p[i + 2] & 63];
    }
    if (i < n) {
        *o++ = b64[p[i] >> 2];
        if (i + 1 < n) {
            *o++ = b64[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
            *o++ = b64[(p[i + 1] & 15) << 2];
        } else {
            *o++ = b64[(p[i] & 3) << 4];
            *o++ = '=';
        }
        *o++ = '=';
    }
    *o = '\0';
    return out;
}

/* Credentials: never echoed in errors (only the template variable names are). */
static enum nk_rc add_auth(struct build *b, const struct nk_auth *a, struct hdrs *h, struct sbuf *q,
                           struct nk_error *err)
{
    enum nk_rc rc = NK_OK;
    char *v = NULL, *u = NULL, *pw = NULL, *joined = NULL, *enc = NULL;
    size_t len;

    switch (a->type) {
    case NK_AUTH_NONE:
        break;
    case NK_AUTH_APIKEY:
        rc = expand_text(b, &a->value, &v, err);
        if (rc != NK_OK)
            break;
        if (a->placement == NK_PLACE_QUERY) {
            query_add(q, a->key, v);
        } else if (has_crlf(v)) {
            nk_error_set(err, "the credential for header '%s' contains a line break", a->key);
            rc = NK_ERR_INVALID;
        } else {
            rc = hdr_add(h, a->key, v);
        }
        break;
    case NK_AUTH_BEARER:
        rc = expand_text(b, &a->token, &v, err);
        if (rc != NK_OK)
            break;
        len = strlen(v) + 8;
        joined = malloc(len);
        if (joined == NULL) {
            rc = NK_ERR_NOMEM;
            break;
        }
        snprintf(joined, len, "Bearer %s", v);
        if (has_crlf(joined)) {
            nk_error_set(err, "the bearer token contains a line break");
            rc = NK_ERR_INVALID;
            break;
        }
        rc = hdr_add(h, "Authorization", joined);
        break;
    case NK_AUTH_BASIC:
        rc = expand_text(b, &a->username, &u, err);
        if (rc == NK_OK)
            rc = expand_text(b, &a->password, &pw, err);
        if (rc != NK_OK)
            break;
        len = strlen(u) + strlen(pw) + 2;
        joined = malloc(len);
        if (joined == NULL) {
            rc = NK_ERR_NOMEM;
            break;
        }
        snprintf(joined, len, "%s:%s", u, pw);
        enc = base64(joined, strlen(joined));
        wipe_free(v);
        v = enc != NULL ? malloc(strlen(enc) + 7) : NULL;
        if (v == NULL) {
            rc = NK_ERR_NOMEM;
            break;
        }
        snprintf(v, strlen(enc) + 7, "Basic %s", enc);
        rc = hdr_add(h, "Authorization", v);
        break;
    case NK_AUTH_DIGEST:
        nk_error_set(err, "digest authentication is not supported by naftikod yet");
        rc = NK_ERR_UNSUPPORTED;
        break;
    }
    if (rc == NK_ERR_NOMEM)
        nk_error_set(err, "out of memory");
    wipe_free(v);
    wipe_free(u);
    wipe_free(pw);
    wipe_free(joined);
    wipe_free(enc);
    return rc;
}

/* Copy of a body template with every string expanded (an exact `{{x}}` keeps x's JSON type). */
static json_t *expand_body(struct build *b, json_t *t, enum nk_rc *rc, struct nk_error *err)
{
    struct nk_tmpl tm;
    json_t *r = NULL, *c, *v;
    const char *k;
    char *s = NULL;
    size_t i;

    if (json_is_object(t)) {
        r = json_object();
        json_object_foreach(t, k, v)
        {
            c = r != NULL ? expand_body(b, v, rc, err) : NULL;
            if (c == NULL || json_object_set_new(r, k, c) != 0)
                goto fail;
        }
        return r;
    }
    if (json_is_array(t)) {
        r = json_array();
        json_array_foreach(t, i, v)
        {
            c = r != NULL ? expand_body(b, v, rc, err) : NULL;
            if (c == NULL || json_array_append_new(r, c) != 0)
                goto fail;
        }
        return r;
    }
    if (!json_is_string(t))
        return json_copy(t);
    *rc = nk_tmpl_compile(json_string_value(t), NK_TMPL_MUSTACHE, &tm, err);
    if (*rc != NK_OK)
        return NULL;
    if (tm.n == 1 && tm.parts[0].kind == NK_TMPL_VAR &&
        find_bind(b->ctx, tm.parts[0].text) == NULL &&
        (v = body_value(b, tm.parts[0].text)) != NULL) {
        nk_tmpl_cleanup(&tm);
        return json_incref(v);
    }
    *rc = expand_text(b, &tm, &s, err);
    nk_tmpl_cleanup(&tm);
    if (*rc == NK_ERR_NOTFOUND) {
        /* an absent optional argument in a body template is null */
        *rc = NK_OK;
        return json_null();
    }
    if (*rc != NK_OK)
        return NULL;
    r = json_string(s);
    wipe_free(s);
    return r;
fail:
    json_decref(r);
    if (*rc == NK_OK)
        *rc = NK_ERR_NOMEM;
    return NULL;
}

static enum nk_rc build_request(struct nk_context *ctx, const struct nk_exposed *op, json_t *args,
                                enum nk_args_mode mode, const char *request_id,
                                const char *caller_auth, struct nk_upstream_request *out,
                                struct nk_error *err);

/* Check the caller's arguments (raw, an object or NULL) against op's inputs: required ones
 * present, each coerced to its declared type and matching its pattern; the results go into vals
 * by name. NK_ERR_INVALID names the argument in err. */
static enum nk_rc check_args(const struct nk_exposed *op, json_t *raw_args, enum nk_args_mode mode,
                             json_t *vals, struct nk_error *err)
{
    json_t *v;
    size_t i;
    bool oom = false;

    for (i = 0; i < op->n_args; i++) {
        const struct nk_arg *a = &op->args[i];
        json_t *raw = raw_args != NULL ? json_object_get(raw_args, a->name) : NULL;
        if (raw == NULL || json_is_null(raw)) {
            if (a->required) {
                nk_error_set(err, "missing required parameter '%s'", a->name);
                return NK_ERR_INVALID;
            }
            continue;
        }
        v = coerce(a->name, a->type, raw, mode, err, &oom);
        if (v == NULL)
            return oom ? NK_ERR_NOMEM : NK_ERR_INVALID;
        if (a->pattern != NULL && json_is_string(v) &&
            !pattern_ok(a->pattern, json_string_value(v))) {
            json_decref(v);
            nk_error_set(err, "parameter '%s' does not match the pattern %s", a->name, a->pattern);
            return NK_ERR_INVALID;
        }
        if (json_object_set_new(vals, a->name, v) != 0)
            return NK_ERR_NOMEM;
    }
    return NK_OK;
}

enum nk_rc nk_invoke_build(struct nk_context *ctx, const struct nk_exposed *op, json_t *args,
                           enum nk_args_mode mode, const char *request_id,
                           struct nk_upstream_request *out, struct nk_error *err)
{
    if (op->target == NULL) {
        memset(out, 0, sizeof(*out));
        nk_error_set(err, "'%s' is a mock: it sends nothing upstream", op->name);
        return NK_ERR_INVALID;
    }
    return build_request(ctx, op, args, mode, request_id, NULL, out, err);
}

/* Does template t name a bind (a credential)? */
static bool tmpl_uses_bind(const struct build *b, const struct nk_tmpl *t)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        if (t->parts[i].kind == NK_TMPL_VAR && find_bind(b->ctx, t->parts[i].text) != NULL)
            return true;
    return false;
}

static enum nk_rc build_request(struct nk_context *ctx, const struct nk_exposed *op, json_t *args,
                                enum nk_args_mode mode, const char *request_id,
                                const char *caller_auth, struct nk_upstream_request *out,
                                struct nk_error *err)
{
    enum nk_rc rc = NK_OK;
    const struct nk_operation *o = op->target;
    const struct nk_consumer *cons = o->consumer;
    struct build b;
    struct hdrs h = {NULL, 0, 0};
    struct sbuf q = {NULL, 0, 0, false}, cookie = {NULL, 0, 0, false}, url = {NULL, 0, 0, false};
    json_t *v = NULL, *body = NULL, **pvals = NULL, *e;
    char *s = NULL, *path = NULL, *enc = NULL;
    size_t i, j, ci, n_body = 0;

    memset(out, 0, sizeof(*out));
    memset(&b, 0, sizeof(b));
    b.ctx = ctx;
    b.op = op;
    b.caller_auth = caller_auth;
    b.raw_args = json_is_object(args) ? args : NULL;
    b.vals = json_object();
    pvals = calloc(o->n_params + 1, sizeof(*pvals));
    b.path_vals = calloc(o->n_params + 1, sizeof(char *));
    if (b.vals == NULL || pvals == NULL || b.path_vals == NULL)
        goto nomem;
    if (args != NULL && !json_is_object(args)) {
        nk_error_set(err, "arguments must be a JSON object");
        rc = NK_ERR_INVALID;
        goto out;
    }
    for (ci = 0; cons != NULL && ci < ctx->t->n_consumers; ci++)
        if (&ctx->t->consumers[ci] == cons)
            break;
    if (cons == NULL || ci == ctx->t->n_consumers) {
        nk_error_set(err, "operation '%s' does not belong to this context's table", op->name);
        rc = NK_ERR_INTERNAL;
        goto out;
    }

    /* 1. the caller's arguments */
    rc = check_args(op, b.raw_args, mode, b.vals, err);
    if (rc == NK_ERR_NOMEM)
        goto nomem;
    if (rc != NK_OK)
        goto out;

    /* 2. each consumed parameter's value */
    for (i = 0; i < o->n_params; i++) {
        rc = param_value(&b, &o->params[i], &pvals[i], mode, err);
        if (rc == NK_ERR_NOMEM)
            goto nomem;
        if (rc != NK_OK)
            goto out;
    }

    /* 3. placement */
    for (i = 0; i < o->n_params; i++) {
        const struct nk_param *p = &o->params[i];
        if (pvals[i] == NULL || p->in == NK_IN_ENVIRONMENT)
            continue;
        if (p->in == NK_IN_BODY) {
            n_body++;
            continue;
        }
        if (p->in == NK_IN_QUERY && json_is_array(pvals[i])) {
            /* an array travels as repeated parameters */
            json_array_foreach(pvals[i], j, e)
            {
                s = text_of(e);
                if (s == NULL)
                    goto nomem;
                query_add(&q, p->name, s);
                wipe_free(s);
                s = NULL;
            }
            continue;
        }
        s = text_of(pvals[i]);
        if (s == NULL)
            goto nomem;
        switch (p->in) {
        case NK_IN_PATH:
            if (s[0] == '\0') {
                nk_error_set(err, "parameter '%s' must not be empty (it is a path segment)",
                             p->name);
                rc = NK_ERR_INVALID;
                goto out;
            }
            b.path_vals[i] = s;
            s = NULL;
            break;
        case NK_IN_QUERY:
            query_add(&q, p->name, s);
            break;
        case NK_IN_HEADER:
            if (has_crlf(s)) {
                nk_error_set(err, "parameter '%s' must not contain a line break", p->name);
                rc = NK_ERR_INVALID;
                goto out;
            }
            rc = hdr_add(&h, p->name, s);
            if (rc != NK_OK)
                goto nomem;
            break;
        case NK_IN_COOKIE:
            enc = nk_pct_encode(s, strlen(s), NK_ENC_QUERY);
            if (enc == NULL)
                goto nomem;
            if (cookie.len > 0)
                sb_str(&cookie, "; ");
            sb_str(&cookie, p->name);
            sb_str(&cookie, "=");
            sb_str(&cookie, enc);
            wipe_free(enc);
            enc = NULL;
            break;
        case NK_IN_BODY:
        case NK_IN_ENVIRONMENT:
            break;
        }
        wipe_free(s);
        s = NULL;
    }
    if (q.oom || cookie.oom)
        goto nomem;

    /* 4. body: the template, then `in: body` values merged on top */
    if (o->body_template != NULL) {
        b.body_pvals = pvals;
        body = expand_body(&b, o->body_template, &rc, err);
        b.body_pvals = NULL;
        if (body == NULL) {
            if (rc == NK_OK || rc == NK_ERR_NOMEM)
                goto nomem;
            goto out;
        }
    }
    for (i = 0; i < o->n_params; i++) {
        const struct nk_param *p = &o->params[i];
        if (pvals[i] == NULL || p->in != NK_IN_BODY)
            continue;
        if (n_body == 1 && body == NULL && !json_is_object(pvals[i])) {
            /* a single non-object body parameter (e.g. an array) is the body as is */
            body = json_incref(pvals[i]);
            continue;
        }
        if (body == NULL && (body = json_object()) == NULL)
            goto nomem;
        if (!json_is_object(body)) {
            nk_error_set(err, "parameter '%s' cannot be merged into a non-object body", p->name);
            rc = NK_ERR_INVALID;
            goto out;
        }
        if (json_is_object(pvals[i]) && (p->type == NK_TYPE_OBJECT || p->type == NK_TYPE_ANY)) {
            if (json_object_update(body, pvals[i]) != 0)
                goto nomem;
        } else if (json_object_set(body, p->name, pvals[i]) != 0) {
            goto nomem;
        }
    }
    if (body != NULL) {
        out->body = dump_json(body);
        if (out->body == NULL)
            goto nomem;
        out->body_len = strlen(out->body);
    }

    /* 5. headers */
    for (i = 0; i < cons->n_headers; i++) {
        if (b.caller_auth != NULL && (strcasecmp(cons->headers[i].name, "Authorization") == 0 ||
                                      tmpl_uses_bind(&b, &cons->headers[i].value)))
            continue; /* passthrough: the bound credential never leaves */
        rc = expand_text(&b, &cons->headers[i].value, &s, err);
        if (rc != NK_OK)
            goto out;
        if (has_crlf(s)) {
            nk_error_set(err, "header '%s' must not contain a line break", cons->headers[i].name);
            rc = NK_ERR_INVALID;
            goto out;
        }
        if (hdr_add(&h, cons->headers[i].name, s) != NK_OK)
            goto nomem;
        wipe_free(s);
        s = NULL;
    }
    if (cookie.len > 0 && hdr_add(&h, "Cookie", cookie.p) != NK_OK)
        goto nomem;
    if (b.caller_auth != NULL) {
        if (has_crlf(b.caller_auth)) {
            nk_error_set(err, "the Authorization header contains a line break");
            rc = NK_ERR_INVALID;
            goto out;
        }
        rc = hdr_add(&h, "Authorization", b.caller_auth);
        if (rc != NK_OK)
            goto nomem;
    } else {
        rc = add_auth(&b, &cons->auth, &h, &q, err);
        if (rc != NK_OK)
            goto out;
    }
    /* 6. URL: base + path + query (after auth, which may add an apikey to the query) */
    rc = nk_tmpl_expand(&o->path, path_lookup, &b, NK_ENC_SEGMENT, &path, err);
    if (b.oom)
        goto nomem;
    if (rc == NK_ERR_NOTFOUND) {
        /* the only unresolved path variables are path parameters without a value */
        for (i = 0; i < o->path.n; i++)
            if (o->path.parts[i].kind == NK_TMPL_VAR &&
                path_lookup(&b, o->path.parts[i].text) == NULL)
                break;
        nk_error_set(err, "missing required parameter '%s'",
                     i < o->path.n ? o->path.parts[i].text : "?");
        rc = NK_ERR_INVALID;
        goto out;
    }
    if (rc != NK_OK)
        goto out;
    if (b.dot_var != NULL) {
        nk_error_set(err,
                     "path parameter '%s' must not be '.' or '..' (a dot segment would change "
                     "the upstream path)",
                     b.dot_var);
        rc = NK_ERR_INVALID;
        goto out;
    }
    sb_str(&url, ctx->bases[ci]);
    if (path[0] != '/' && path[0] != '\0' && path[0] != '?')
        sb_add(&url, "/", 1);
    sb_str(&url, path);
    if (q.len > 0) {
        /* the path template may already carry a query of its own */
        if (strchr(path, '?') != NULL)
            q.p[0] = '&';
        sb_str(&url, q.p);
    }

    if (q.oom || url.oom)
        goto nomem;
    if (!hdr_has(&h, "Accept") && hdr_add(&h, "Accept", "application/json") != NK_OK)
        goto nomem;
    if (out->body != NULL && !hdr_has(&h, "Content-Type") &&
        hdr_add(&h, "Content-Type", "application/json") != NK_OK)
        goto nomem;
    if (request_id != NULL && request_id[0] != '\0' && !has_crlf(request_id) &&
        strlen(request_id) <= 200 && hdr_add(&h, "X-Request-Id", request_id) != NK_OK)
        goto nomem;

    out->method = strdup(o->method);
    out->url = sb_take(&url);
    if (out->method == NULL || out->url == NULL)
        goto nomem;
    out->headers = h.v;
    out->n_headers = h.n;
    h.v = NULL;
    h.n = 0;
    rc = NK_OK;
    goto out;
nomem:
    rc = NK_ERR_NOMEM;
    nk_error_set(err, "out of memory");
out:
    if (rc != NK_OK)
        nk_upstream_request_cleanup(out);
    for (i = 0; i < h.n; i++)
        wipe_free(h.v[i]);
    free(h.v);
    sb_wipe(&q);
    sb_wipe(&cookie);
    sb_wipe(&url);
    wipe_free(s);
    wipe_free(enc);
    wipe_free(path);
    json_decref(v);
    json_decref(body);
    for (i = 0; pvals != NULL && i < o->n_params; i++)
        json_decref(pvals[i]);
    free(pvals);
    for (i = 0; b.path_vals != NULL && i < o->n_params; i++)
        wipe_free(b.path_vals[i]);
    free(b.path_vals);
    for (i = 0; i < b.n_scratch; i++)
        wipe_free(b.scratch[i]);
    free(b.scratch);
    json_decref(b.vals);
    return rc;
}

/* ---- output mapping ----------------------------------------------------------------------- */

/* Semantics (documented in docs/spec-support.md):
 * - `value` wins: a Mustache template over the operation's inputs (an absent optional input is
 *   ""; a template that is exactly one `{{x}}` keeps x's JSON value, null when absent), then
 *   coerced to the declared type; `const` next;
 * - a mapping selects a nodelist: a singular query (RFC 9535 2.3.5.1) gives its one value (null
 *   when nothing is selected), any other query the list of every selected value ([] when none);
 * - properties build an object; each property's mapping is evaluated against the parent's
 *   selected value when the parent has a mapping, else against the parent's own input (so a
 *   top-level `type: object` with properties maps from the root);
 * - items map each element of the selected array (the input itself when there is no mapping);
 *   a selection that is not an array gives null;
 * - a node with none of these passes its input through;
 * - a leaf's result is coerced to its declared type (nk_type_coerce); one that cannot be is
 *   NK_ERR_INVALID naming the output. */

struct outeval {
    json_t *inputs; /* the checked arguments by name, or NULL */
    struct nk_error *err;
};

/* An input by any of its spellings (x, rest.x, tools.x, ns.x, $this.ns.x). */
static json_t *input_value(json_t *inputs, const char *name)
{
    const char *p = name;
    json_t *v;

    if (strncmp(p, "$this.", 6) == 0)
        p += 6;
    while (p != NULL && *p != '\0' && inputs != NULL) {
        v = json_object_get(inputs, p);
        if (v != NULL && !json_is_null(v))
            return v;
        p = strchr(p, '.');
        if (p != NULL)
            p++;
    }
    return NULL;
}

struct vlookup {
    json_t *inputs;
    char **scratch; /* texts of non-string inputs, freed after the expansion */
    size_t n, cap;
    bool oom;
};

static const char *value_lookup(void *ud, const char *name)
{
    struct vlookup *l = ud;
    json_t *v = input_value(l->inputs, name);
    char *t;

    if (v == NULL)
        return ""; /* an absent optional input expands to nothing, as in the reference runtime */
    if (json_is_string(v))
        return json_string_value(v);
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 4;
        char **ns = realloc(l->scratch, nc * sizeof(*ns));
        if (ns == NULL) {
            l->oom = true;
            return "";
        }
        l->scratch = ns;
        l->cap = nc;
    }
    t = text_of(v);
    if (t == NULL) {
        l->oom = true;
        return "";
    }
    l->scratch[l->n++] = t;
    return t;
}

static enum nk_rc expand_value(const struct nk_tmpl *t, json_t *inputs, json_t **out,
                               struct nk_error *err)
{
    struct vlookup l;
    enum nk_rc rc;
    char *s = NULL;
    size_t i;

    *out = NULL;
    if (t->n == 1 && t->parts[0].kind == NK_TMPL_VAR) {
        json_t *v = input_value(inputs, t->parts[0].text);
        *out = v != NULL ? json_incref(v) : json_null();
        return *out != NULL ? NK_OK : NK_ERR_NOMEM;
    }
    memset(&l, 0, sizeof(l));
    l.inputs = inputs;
    rc = nk_tmpl_expand(t, value_lookup, &l, NK_ENC_NONE, &s, err);
    for (i = 0; i < l.n; i++)
        free(l.scratch[i]);
    free(l.scratch);
    if (rc == NK_OK && !l.oom)
        *out = json_string(s);
    free(s);
    if (rc != NK_OK)
        return rc;
    return *out != NULL ? NK_OK : NK_ERR_NOMEM;
}

static enum nk_rc outmap_eval(const struct nk_outmap *map, json_t *body, const char *where,
                              const struct outeval *ev, json_t **out)
{
    json_t *base = NULL, *r = NULL, *c, *e;
    enum nk_rc rc = NK_OK;
    char sub[128];
    bool oom = false;
    size_t i;

    *out = NULL;
    if (map == NULL) {
        *out = json_incref(body);
        return NK_OK;
    }
    if (map->value != NULL) {
        rc = expand_value(map->value, ev->inputs, &base, ev->err);
        if (rc != NK_OK)
            return rc;
        goto typed;
    }
    if (map->konst != NULL) {
        *out = json_deep_copy(map->konst);
        return *out != NULL ? NK_OK : NK_ERR_NOMEM;
    }
    if (map->mapping != NULL) {
        if (body == NULL)
            base = NULL;
        else if (nk_jsonpath_is_singular(map->mapping))
            base = nk_jsonpath_first(map->mapping, body);
        else if ((base = nk_jsonpath_query(map->mapping, body)) == NULL)
            return NK_ERR_NOMEM;
        if (base == NULL && (base = json_null()) == NULL)
            return NK_ERR_NOMEM;
        if (json_is_null(base) && (map->n_props > 0 || map->items != NULL)) {
            *out = base;
            return NK_OK;
        }
    } else {
        base = json_incref(body);
    }
    if (map->n_props > 0) {
        if (!json_is_object(base) && map->mapping != NULL) {
            r = json_null();
            goto out;
        }
        r = json_object();
        for (i = 0; r != NULL && i < map->n_props; i++) {
            if (map->props[i].name == NULL)
                continue;
            snprintf(sub, sizeof(sub), "%s%s%s", where ? where : "", where ? "." : "",
                     map->props[i].name);
            rc = outmap_eval(&map->props[i], base, sub, ev, &c);
            if (rc != NK_OK) {
                json_decref(r);
                r = NULL;
                goto out;
            }
            if (json_object_set_new(r, map->props[i].name, c) != 0) {
                json_decref(r);
                r = NULL;
            }
        }
        goto out;
    }
    if (map->items != NULL && map->mapping == NULL && body == NULL) {
        /* a mock's array: its one item shape, built once (as the reference runtime does) */
        r = json_array();
        if (r != NULL) {
            snprintf(sub, sizeof(sub), "%s[0]", where ? where : "");
            rc = outmap_eval(map->items, NULL, sub, ev, &c);
            if (rc != NK_OK || json_array_append_new(r, c) != 0) {
                json_decref(r);
                r = NULL;
            }
        }
        goto out;
    }
    if (map->items != NULL) {
        if (!json_is_array(base)) {
            r = json_null();
            goto out;
        }
        r = json_array();
        json_array_foreach(base, i, e)
        {
            if (r == NULL)
                break;
            snprintf(sub, sizeof(sub), "%s[%zu]", where ? where : "", i);
            rc = outmap_eval(map->items, e, sub, ev, &c);
            if (rc != NK_OK) {
                json_decref(r);
                r = NULL;
                goto out;
            }
            if (json_array_append_new(r, c) != 0) {
                json_decref(r);
                r = NULL;
            }
        }
        goto out;
    }
typed:
    if (base == NULL && (base = json_null()) == NULL)
        return NK_ERR_NOMEM;
    r = nk_type_coerce(map->type, base, &oom);
    if (r == NULL && !oom) {
        char got[80];
        describe(base, got, sizeof(got));
        nk_error_set(ev->err, "output '%s' is declared %s, but the value is %s",
                     where ? where : "(root)", nk_type_name(map->type), got);
        rc = NK_ERR_INVALID;
    }
out:
    if (r == NULL && rc == NK_OK)
        rc = NK_ERR_NOMEM;
    json_decref(base);
    *out = r;
    return rc;
}

enum nk_rc nk_outmap_eval(const struct nk_outmap *map, json_t *body, json_t *inputs, json_t **out,
                          struct nk_error *err)
{
    struct outeval ev;

    ev.inputs = inputs;
    ev.err = err;
    return outmap_eval(map, body, map != NULL ? map->name : NULL, &ev, out);
}

json_t *nk_outmap_apply(const struct nk_outmap *map, json_t *body)
{
    json_t *r = NULL;

    if (nk_outmap_eval(map, body, NULL, &r, NULL) != NK_OK)
        return NULL;
    return r;
}

/* Is the consumed operation's outputParameters list the identity: none, or the generator's one
 * entry naming the whole answer (`value: $` / `$.`)? */
static bool projection_is_identity(const struct nk_operation *o)
{
    const char *q;

    if (o == NULL || o->n_outputs == 0)
        return true;
    if (o->n_outputs > 1)
        return false;
    q = nk_jsonpath_text(o->outputs[0].value);
    return q != NULL && (strcmp(q, "$") == 0 || strcmp(q, "$.") == 0);
}

/* The consumed operation's outputParameters applied to its answer: {name: value coerced to
 * type, ...}, each value by the nodelist rule above. NK_ERR_INVALID names the parameter. */
static enum nk_rc project(const struct nk_operation *o, json_t *answer, json_t **out,
                          struct nk_error *err)
{
    json_t *r = json_object(), *v = NULL, *c;
    char got[80];
    bool oom = false;
    size_t i;

    *out = NULL;
    if (r == NULL)
        return NK_ERR_NOMEM;
    for (i = 0; i < o->n_outputs; i++) {
        const struct nk_outparam *p = &o->outputs[i];
        if (nk_jsonpath_is_singular(p->value))
            v = nk_jsonpath_first(p->value, answer);
        else if ((v = nk_jsonpath_query(p->value, answer)) == NULL)
            goto nomem;
        if (v == NULL && (v = json_null()) == NULL)
            goto nomem;
        c = nk_type_coerce(p->type, v, &oom);
        if (c == NULL && oom)
            goto nomem;
        if (c == NULL) {
            describe(v, got, sizeof(got));
            nk_error_set(err, "outputParameter '%s' of '%s' is declared %s, but the value is %s",
                         p->name, o->qname, nk_type_name(p->type), got);
            json_decref(v);
            json_decref(r);
            return NK_ERR_INVALID;
        }
        json_decref(v);
        v = NULL;
        if (json_object_set_new(r, p->name, c) != 0)
            goto nomem;
    }
    *out = r;
    return NK_OK;
nomem:
    json_decref(v);
    json_decref(r);
    return NK_ERR_NOMEM;
}

/* ---- invoke ------------------------------------------------------------------------------- */

struct call {
    struct nk_context *ctx;
    const struct nk_exposed *op;
    nk_invoke_done_fn done;
    void *ud;
    struct nk_result *res;        /* allocated up front so completion never lacks one */
    json_t *inputs;               /* the checked arguments, for output value templates */
    struct nk_upstream_call post; /* a mock's answer is handed over on the loop */
};

/* Does map hand the whole upstream answer on unchanged? No mapping, or a mapping of the root
 * (`$`, or naftikod's `$.`) with no const and no shape under it. */
static bool passes_through(const struct nk_outmap *map)
{
    const char *q;

    if (map == NULL)
        return true;
    if (map->konst != NULL || map->value != NULL || map->n_props > 0 || map->items != NULL)
        return false;
    if (map->type != NK_TYPE_ANY && map->type != NK_TYPE_OBJECT)
        return false; /* the answer is checked against the declared type */
    if (map->mapping == NULL)
        return true;
    q = nk_jsonpath_text(map->mapping);
    return q != NULL && (strcmp(q, "$") == 0 || strcmp(q, "$.") == 0);
}

static bool all_space(const char *s, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return false;
    return true;
}

/* The text of the first <title>...</title> in an HTML body, or NULL. */
static const char *html_title(const char *raw, size_t len, size_t *tlen)
{
    size_t i, start;

    for (i = 0; i + 7 <= len; i++) {
        if (strncasecmp(raw + i, "<title>", 7) != 0)
            continue;
        start = i + 7;
        for (i = start; i + 8 <= len; i++) {
            if (strncasecmp(raw + i, "</title>", 8) == 0) {
                *tlen = i - start;
                return raw + start;
            }
        }
        return NULL;
    }
    return NULL;
}

/* Copy at most cap - 1 bytes of s[0..n) into out without cutting a character: well-formed UTF-8
 * is kept, any other byte becomes '?', control characters and runs of whitespace one space.
 * Returns true when all of s fitted. */
static bool copy_text(const char *s, size_t n, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0, len;
    bool sp = false;

    while (i < n) {
        if (isspace(p[i]) || p[i] < 0x20 || p[i] == 0x7f) {
            sp = o > 0;
            i++;
            continue;
        }
        len = p[i] < 0x80 ? 1 : utf8_len(p + i, n - i);
        if (o + (sp ? 1 : 0) + (len > 0 ? len : 1) + 1 > cap)
            break;
        if (sp)
            out[o++] = ' ';
        sp = false;
        if (len == 0) {
            out[o++] = '?';
            i++;
        } else {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
        }
    }
    out[o] = '\0';
    return i == n;
}

/* "<message field>", else a trimmed one-line snippet of the body; at most 200 bytes of it, cut
 * on a character boundary, always valid UTF-8 (it goes into JSON answers). */
static void error_summary(json_t *j, const char *raw, size_t len, char *out, size_t n)
{
    json_t *m = json_is_object(j) ? json_object_get(j, "message") : NULL;
    const char *t;
    size_t tlen = 0, cap = n < 201 ? n : 201;

    if (!json_is_string(m) && json_is_object(j))
        m = json_object_get(j, "error");
    if (json_is_string(m) && json_string_length(m) > 0) {
        raw = json_string_value(m);
        len = json_string_length(m);
    } else if (j == NULL && raw != NULL && (t = html_title(raw, len, &tlen)) != NULL) {
        /* An HTML error page: its <title> says it best ("502 Bad Gateway"). */
        raw = t;
        len = tlen;
    }
    if (raw == NULL || n < 4) {
        out[0] = '\0';
        return;
    }
    if (!copy_text(raw, len, out, cap - 3) && out[0] != '\0')
        strcat(out, "...");
}

static void on_upstream(void *ud, struct nk_upstream_response *resp)
{
    struct call *c = ud;
    struct nk_result *r = c->res;
    json_t *j = NULL;
    char summary[300];
    struct nk_error err;
    enum nk_rc rc;

    memset(&err, 0, sizeof(err));
    nk_metrics_upstream(c->op->name, resp);
    r->status = resp->status;
    r->seconds = resp->seconds;
    switch (resp->rc) {
    case NK_OK:
        break;
    case NK_ERR_TIMEOUT:
        r->kind = NK_RES_TIMEOUT;
        snprintf(r->message, sizeof(r->message), "upstream timed out: %s", resp->error);
        goto done;
    case NK_ERR_TOO_LARGE:
        r->kind = NK_RES_BAD_UPSTREAM;
        snprintf(r->message, sizeof(r->message), "upstream answer too large: %s", resp->error);
        goto done;
    case NK_ERR_NOMEM:
        r->kind = NK_RES_INTERNAL;
        snprintf(r->message, sizeof(r->message), "out of memory");
        goto done;
    default:
        r->kind = NK_RES_UNREACHABLE;
        snprintf(r->message, sizeof(r->message), "upstream unreachable: %s", resp->error);
        goto done;
    }
    r->raw = resp->body;
    r->raw_len = resp->body_len;
    r->content_type = resp->content_type;
    resp->body = NULL;
    resp->content_type = NULL;
    if (resp->status < 200 || resp->status > 599) {
        /* 1xx is never final (101 would switch protocols under the caller): a broken upstream. */
        r->kind = NK_RES_BAD_UPSTREAM;
        snprintf(r->message, sizeof(r->message),
                 "upstream answered %ld, which is not a final HTTP status", resp->status);
        goto done;
    }
    if (resp->status >= 300 && resp->status <= 399) {
        /* Following would send the credential wherever Location points, and relaying Location
         * would tell the caller the upstream's address: neither. */
        r->kind = NK_RES_BAD_UPSTREAM;
        snprintf(r->message, sizeof(r->message),
                 "upstream redirected (HTTP %ld); naftikod does not follow upstream redirects",
                 resp->status);
        goto done;
    }
    if (resp->status <= 299 && passes_through(c->op->output) &&
        projection_is_identity(c->op->target) && r->raw != NULL && !all_space(r->raw, r->raw_len)) {
        /* The whole answer is the output: check it in one pass and hand the buffer on. */
        if (!nk_invoke_check_json(r->raw, r->raw_len)) {
            r->kind = NK_RES_BAD_UPSTREAM;
            snprintf(r->message, sizeof(r->message),
                     "upstream answered %ld with a body that is not JSON", resp->status);
            goto done;
        }
        r->kind = NK_RES_OK;
        r->raw_is_output = true;
        goto done;
    }
    if (r->raw != NULL && !all_space(r->raw, r->raw_len))
        j = json_loadb(r->raw, r->raw_len, JSON_DECODE_ANY, NULL);
    if (resp->status <= 299) {
        if (j == NULL && r->raw != NULL && !all_space(r->raw, r->raw_len)) {
            r->kind = NK_RES_BAD_UPSTREAM;
            snprintf(r->message, sizeof(r->message),
                     "upstream answered %ld with a body that is not JSON", resp->status);
            goto done;
        }
        if (j == NULL && (j = json_object()) == NULL) {
            r->kind = NK_RES_INTERNAL;
            snprintf(r->message, sizeof(r->message), "out of memory");
            goto done;
        }
        if (!projection_is_identity(c->op->target)) {
            json_t *pj = NULL;
            rc = project(c->op->target, j, &pj, &err);
            json_decref(j);
            j = pj;
            if (rc != NK_OK)
                goto mapfail;
        }
        rc = nk_outmap_eval(c->op->output, j, c->inputs, &r->json, &err);
        if (rc != NK_OK)
            goto mapfail;
        r->kind = NK_RES_OK;
        goto done;
    }
    r->kind = NK_RES_UPSTREAM_ERROR;
    r->json = j;
    j = NULL;
    error_summary(r->json, r->raw, r->raw_len, summary, sizeof(summary));
    if (summary[0] != '\0')
        snprintf(r->message, sizeof(r->message), "upstream answered %ld: %s", resp->status,
                 summary);
    else
        snprintf(r->message, sizeof(r->message), "upstream answered %ld", resp->status);
    goto done;
mapfail:
    if (rc == NK_ERR_NOMEM) {
        r->kind = NK_RES_INTERNAL;
        snprintf(r->message, sizeof(r->message), "out of memory mapping the answer");
    } else {
        /* the answer does not fit the declared outputs: the upstream broke the contract */
        r->kind = NK_RES_BAD_UPSTREAM;
        snprintf(r->message, sizeof(r->message), "upstream answer does not fit: %.400s", err.msg);
    }
done:
    nk_utf8_fix(r->message, sizeof(r->message)); /* may end in a cut character */
    json_decref(j);
    c->res = NULL;
    c->done(c->ud, r);
    nk_context_unref(c->ctx);
    json_decref(c->inputs);
    free(c);
}

static enum nk_rc invoke_tagged(struct nk_context *ctx, struct nk_upstream *up,
                                const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                                const char *request_id, const char *caller_auth,
                                uint64_t cancel_tag, nk_invoke_done_fn done, void *ud,
                                struct nk_error *err);

/* Does an output value template anywhere in map read the inputs? */
static bool uses_inputs(const struct nk_outmap *map)
{
    size_t i;

    if (map == NULL)
        return false;
    if (map->value != NULL && !nk_tmpl_is_literal(map->value))
        return true;
    for (i = 0; i < map->n_props; i++)
        if (uses_inputs(&map->props[i]))
            return true;
    return uses_inputs(map->items);
}

/* A mock's answer, on the loop thread like every other completion. */
static void mock_done(void *ud)
{
    struct call *c = ud;
    struct nk_result *r = c->res;

    c->res = NULL;
    c->done(c->ud, r);
    nk_context_unref(c->ctx);
    json_decref(c->inputs);
    free(c);
}

/* A mock (no `call`): check the arguments, build the answer from the output values, and hand
 * it over on the loop. Nothing goes upstream. */
static enum nk_rc invoke_mock(struct nk_context *ctx, struct nk_upstream *up,
                              const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                              nk_invoke_done_fn done, void *ud, struct nk_error *err)
{
    struct call *c = calloc(1, sizeof(*c));
    enum nk_rc rc = NK_ERR_NOMEM;

    if (c == NULL || (c->res = calloc(1, sizeof(*c->res))) == NULL ||
        (c->inputs = json_object()) == NULL)
        goto fail;
    if (args != NULL && !json_is_object(args)) {
        nk_error_set(err, "arguments must be a JSON object");
        rc = NK_ERR_INVALID;
        goto fail;
    }
    rc = check_args(op, json_is_object(args) ? args : NULL, mode, c->inputs, err);
    if (rc != NK_OK)
        goto fail;
    rc = nk_outmap_eval(op->output, NULL, c->inputs, &c->res->json, err);
    if (rc != NK_OK)
        goto fail; /* a value built from the caller's input does not fit its type */
    c->res->kind = NK_RES_OK;
    c->res->status = 200;
    c->ctx = nk_context_ref(ctx);
    c->op = op;
    c->done = done;
    c->ud = ud;
    c->post.fn = mock_done;
    c->post.ud = c;
    if (!nk_upstream_post(up, &c->post)) {
        nk_context_unref(c->ctx);
        nk_error_set(err, "the loop is shutting down");
        rc = NK_ERR_UPSTREAM;
        goto fail;
    }
    return NK_OK;
fail:
    if (rc == NK_ERR_NOMEM)
        nk_error_set(err, "out of memory");
    if (c != NULL) {
        nk_result_free(c->res);
        json_decref(c->inputs);
        free(c);
    }
    return rc;
}

enum nk_rc nk_invoke(struct nk_context *ctx, struct nk_upstream *up, const struct nk_exposed *op,
                     json_t *args, enum nk_args_mode mode, const char *request_id,
                     nk_invoke_done_fn done, void *ud, struct nk_error *err)
{
    return nk_invoke_as(ctx, up, op, args, mode, request_id, NULL, done, ud, err);
}

enum nk_rc nk_invoke_as(struct nk_context *ctx, struct nk_upstream *up, const struct nk_exposed *op,
                        json_t *args, enum nk_args_mode mode, const char *request_id,
                        const char *caller_auth, nk_invoke_done_fn done, void *ud,
                        struct nk_error *err)
{
    return invoke_tagged(ctx, up, op, args, mode, request_id, caller_auth, 0, done, ud, err);
}

enum nk_rc nk_invoke_cancellable(struct nk_context *ctx, struct nk_upstream *up,
                                 const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                                 const char *request_id, uint64_t cancel_tag,
                                 nk_invoke_done_fn done, void *ud, struct nk_error *err)
{
    return invoke_tagged(ctx, up, op, args, mode, request_id, NULL, cancel_tag, done, ud, err);
}

static enum nk_rc invoke_tagged(struct nk_context *ctx, struct nk_upstream *up,
                                const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                                const char *request_id, const char *caller_auth,
                                uint64_t cancel_tag, nk_invoke_done_fn done, void *ud,
                                struct nk_error *err)
{
    enum nk_rc rc;
    struct nk_upstream_request req;
    struct call *c = NULL;

    if (op->target == NULL)
        return invoke_mock(ctx, up, op, args, mode, done, ud, err);
    rc = build_request(ctx, op, args, mode, request_id, caller_auth, &req, err);
    if (rc != NK_OK)
        return rc;
    req.cancel_tag = cancel_tag;
    c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->res = calloc(1, sizeof(*c->res));
    if (c != NULL && c->res != NULL)
        c->inputs = json_object();
    if (c != NULL && c->inputs != NULL && json_is_object(args) && uses_inputs(op->output) &&
        check_args(op, args, mode, c->inputs, NULL) != NK_OK) {
        json_decref(c->inputs);
        c->inputs = NULL;
    }
    if (c == NULL || c->res == NULL || c->inputs == NULL) {
        nk_upstream_request_cleanup(&req);
        if (c != NULL) {
            free(c->res);
            json_decref(c->inputs);
            free(c);
        }
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    c->ctx = nk_context_ref(ctx);
    c->op = op;
    c->done = done;
    c->ud = ud;
    rc = nk_upstream_submit(up, &req, on_upstream, c);
    if (rc != NK_OK) {
        nk_error_set(err, "cannot send the upstream request: %s", nk_rc_str(rc));
        nk_context_unref(c->ctx);
        free(c->res);
        json_decref(c->inputs);
        free(c);
    }
    return rc;
}
