/* SPDX-License-Identifier: Apache-2.0 */
/* invoke_build.c: argument checking and upstream request building (path, query, headers, auth,
 * body). */
#include "naftikod/invoke.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "invoke_int.h"
#include "naftikod/jsonout.h"

/* ---- small helpers ------------------------------------------------------------------------ */

void nk_wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void nk_sb_add(struct nk_sbuf *b, const char *s, size_t n)
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

void nk_sb_str(struct nk_sbuf *b, const char *s)
{
    nk_sb_add(b, s, strlen(s));
}

/* Hand the buffer out (always a string, possibly empty), or NULL on OOM. */
char *nk_sb_take(struct nk_sbuf *b)
{
    char *p;

    nk_sb_add(b, "", 0);
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

void nk_sb_wipe(struct nk_sbuf *b)
{
    if (b->p != NULL)
        explicit_bzero(b->p, b->cap);
    free(b->p);
    b->p = NULL;
}

/* Not json_dumps: jansson 2.14 ignores the result of dumping an object key, so json_dumps can
 * return a damaged text under memory pressure (found by the allocation-failure test);
 * nk_json_compact fails whole. */
char *nk_dump_json(json_t *v)
{
    return nk_json_compact(v, NULL);
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

void nk_describe_json(json_t *v, char *out, size_t n)
{
    char *s = nk_dump_json(v);

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

    nk_describe_json(v, got, sizeof(got));
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
    /* orchestration: the outputs of the steps run so far by step name (borrowed), or NULL */
    json_t *steps;
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
            nk_wipe_free(s);
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
char *nk_text_of(json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_true(v))
        return strdup("true");
    if (json_is_false(v))
        return strdup("false");
    if (json_is_null(v))
        return strdup("");
    return nk_dump_json(v);
}

/* A value by any of its spellings: x, rest.x, tools.x, ns.x, $this.ns.x (dotted names such as
 * pagination.limit are tried whole before a prefix is stripped); at each spelling a, then b. */
json_t *nk_json_by_spelling(json_t *a, json_t *b, const char *name)
{
    const char *p = name;
    json_t *v;

    if (strncmp(p, "$this.", 6) == 0)
        p += 6;
    while (p != NULL && *p != '\0') {
        v = a != NULL ? json_object_get(a, p) : NULL;
        if (v == NULL && b != NULL)
            v = json_object_get(b, p);
        if (v != NULL && !json_is_null(v))
            return v;
        p = strchr(p, '.');
        if (p != NULL)
            p++;
    }
    return NULL;
}

/* `step.a.b` (step the name of a step that has run): that step's output, then member a, then
 * b (a number indexes an array). Borrowed; NULL when name names no step or nothing is there. */
json_t *nk_step_value(json_t *steps, const char *name)
{
    const char *p = name, *dot;
    json_t *v = NULL;
    char seg[256];
    size_t n;

    if (steps == NULL)
        return NULL;
    for (; p != NULL; p = dot != NULL ? dot + 1 : NULL) {
        dot = strchr(p, '.');
        n = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof(seg))
            return NULL;
        memcpy(seg, p, n);
        seg[n] = '\0';
        if (v == NULL && p == name) {
            v = json_object_get(steps, seg);
            if (v == NULL)
                return NULL;
        } else if (json_is_object(v)) {
            v = json_object_get(v, seg);
        } else if (json_is_array(v) && n > 0 && strspn(seg, "0123456789") == n && n < 10) {
            v = json_array_get(v, (size_t)strtoul(seg, NULL, 10));
        } else {
            return NULL;
        }
        if (v == NULL)
            return NULL;
    }
    return json_is_null(v) ? NULL : v;
}

/* Does `name`, or its first segment (up to a '.'), name one of op's steps? */
static bool names_step(const struct nk_exposed *op, const char *name)
{
    size_t n = strcspn(name, "."), i;

    for (i = 0; i < op->n_steps; i++)
        if (strlen(op->steps[i].name) == n && strncmp(op->steps[i].name, name, n) == 0)
            return true;
    return false;
}

/* An argument of this build by any of its spellings (coerced values first, then raw); in a
 * step, `{{step.field}}` reads an earlier step's output instead (the loader refuses a step
 * named like an input). */
static json_t *find_arg_value(struct build *b, const char *name)
{
    if (b->steps != NULL && names_step(b->op, name))
        return nk_step_value(b->steps, name);
    return nk_json_by_spelling(b->vals, b->raw_args, name);
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
    const char *v = b->caller_auth != NULL ? NULL : nk_context_find_bind(b->ctx, name);
    json_t *a;

    if (v != NULL)
        return v;
    a = body_value(b, name);
    if (a == NULL)
        return NULL;
    if (json_is_string(a))
        return json_string_value(a);
    return keep(b, nk_text_of(a));
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
        nk_wipe_free(*out);
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
        nk_context_find_bind(b->ctx, t->parts[0].text) == NULL) {
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
    nk_wipe_free(s);
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

/* Zero and free every line (one may hold a credential) and the list. */
static void hdr_wipe(struct hdrs *h)
{
    size_t i;

    for (i = 0; i < h->n; i++)
        nk_wipe_free(h->v[i]);
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

static void query_add(struct nk_sbuf *q, const char *name, const char *value)
{
    char *en = nk_pct_encode(name, strlen(name), NK_ENC_QUERY);
    char *ev = nk_pct_encode(value, strlen(value), NK_ENC_QUERY);

    if (en == NULL || ev == NULL) {
        q->oom = true;
    } else {
        nk_sb_add(q, q->len == 0 ? "?" : "&", 1);
        nk_sb_str(q, en);
        nk_sb_add(q, "=", 1);
        nk_sb_str(q, ev);
    }
    free(en);
    nk_wipe_free(ev);
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
static enum nk_rc add_auth(struct build *b, const struct nk_auth *a, struct hdrs *h,
                           struct nk_sbuf *q, struct nk_error *err)
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
        nk_wipe_free(v);
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
    case NK_AUTH_OAUTH2: /* inbound only: the loader refuses it on a consumer */
        nk_error_set(err, "oauth2 authentication of a consumer is not supported by naftikod");
        rc = NK_ERR_UNSUPPORTED;
        break;
    }
    if (rc == NK_ERR_NOMEM)
        nk_error_set(err, "out of memory");
    nk_wipe_free(v);
    nk_wipe_free(u);
    nk_wipe_free(pw);
    nk_wipe_free(joined);
    nk_wipe_free(enc);
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
        nk_context_find_bind(b->ctx, tm.parts[0].text) == NULL &&
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
    nk_wipe_free(s);
    return r;
fail:
    json_decref(r);
    if (*rc == NK_OK)
        *rc = NK_ERR_NOMEM;
    return NULL;
}

/* Check the caller's arguments (raw, an object or NULL) against op's inputs: required ones
 * present, each coerced to its declared type and matching its pattern; the results go into vals
 * by name. NK_ERR_INVALID names the argument in err. */
enum nk_rc nk_check_args(const struct nk_exposed *op, json_t *raw_args, enum nk_args_mode mode,
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
        if (a->re != NULL && json_is_string(v) &&
            regexec(a->re, json_string_value(v), 0, NULL, 0) != 0) {
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
    return nk_build_request(ctx, op, args, mode, request_id, NULL, NULL, out, err);
}

/* Does template t name a bind (a credential)? */
static bool tmpl_uses_bind(const struct build *b, const struct nk_tmpl *t)
{
    size_t i;

    for (i = 0; i < t->n; i++)
        if (t->parts[i].kind == NK_TMPL_VAR &&
            nk_context_find_bind(b->ctx, t->parts[i].text) != NULL)
            return true;
    return false;
}

/* The request id, when it is safe to send, then the built request's method, URL and header
 * lines into out (the lines move: h is left empty). NK_ERR_NOMEM. */
static enum nk_rc hand_over(struct nk_upstream_request *out, const char *method,
                            struct nk_sbuf *url, struct hdrs *h, const char *request_id)
{
    if (request_id != NULL && request_id[0] != '\0' && !has_crlf(request_id) &&
        strlen(request_id) <= 200 && hdr_add(h, "X-Request-Id", request_id) != NK_OK)
        return NK_ERR_NOMEM;
    out->method = strdup(method);
    out->url = nk_sb_take(url);
    if (out->method == NULL || out->url == NULL)
        return NK_ERR_NOMEM;
    out->headers = h->v;
    out->n_headers = h->n;
    h->v = NULL;
    h->n = 0;
    return NK_OK;
}

enum nk_rc nk_build_request(struct nk_context *ctx, const struct nk_exposed *op, json_t *args,
                            enum nk_args_mode mode, const char *request_id, const char *caller_auth,
                            json_t *steps, struct nk_upstream_request *out, struct nk_error *err)
{
    enum nk_rc rc = NK_OK;
    const struct nk_operation *o = op->target;
    const struct nk_consumer *cons = o->consumer;
    struct build b;
    struct hdrs h = {NULL, 0, 0};
    struct nk_sbuf q = {NULL, 0, 0, false}, cookie = {NULL, 0, 0, false}, url = {NULL, 0, 0, false};
    json_t *v = NULL, *body = NULL, **pvals = NULL, *e;
    char *s = NULL, *path = NULL, *enc = NULL;
    size_t i, j, ci, n_body = 0;

    memset(out, 0, sizeof(*out));
    memset(&b, 0, sizeof(b));
    b.ctx = ctx;
    b.op = op;
    b.caller_auth = caller_auth;
    b.raw_args = json_is_object(args) ? args : NULL;
    b.steps = json_is_object(steps) ? steps : NULL;
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
    ci = cons != NULL ? cons->index : 0;
    if (cons == NULL || ci >= ctx->t->n_consumers || &ctx->t->consumers[ci] != cons) {
        nk_error_set(err, "operation '%s' does not belong to this context's table", op->name);
        rc = NK_ERR_INTERNAL;
        goto out;
    }

    /* 1. the caller's arguments */
    rc = nk_check_args(op, b.raw_args, mode, b.vals, err);
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
                s = nk_text_of(e);
                if (s == NULL)
                    goto nomem;
                query_add(&q, p->name, s);
                nk_wipe_free(s);
                s = NULL;
            }
            continue;
        }
        s = nk_text_of(pvals[i]);
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
                nk_sb_str(&cookie, "; ");
            nk_sb_str(&cookie, p->name);
            nk_sb_str(&cookie, "=");
            nk_sb_str(&cookie, enc);
            nk_wipe_free(enc);
            enc = NULL;
            break;
        case NK_IN_BODY:
        case NK_IN_ENVIRONMENT:
            break;
        }
        nk_wipe_free(s);
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
        out->body = nk_dump_json(body);
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
        nk_wipe_free(s);
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
    nk_sb_str(&url, ctx->bases[ci]);
    if (path[0] != '/' && path[0] != '\0' && path[0] != '?')
        nk_sb_add(&url, "/", 1);
    nk_sb_str(&url, path);
    if (q.len > 0) {
        /* the path template may already carry a query of its own */
        if (strchr(path, '?') != NULL)
            q.p[0] = '&';
        nk_sb_str(&url, q.p);
    }

    if (q.oom || url.oom)
        goto nomem;
    if (!hdr_has(&h, "Accept") && hdr_add(&h, "Accept", "application/json") != NK_OK)
        goto nomem;
    if (out->body != NULL && !hdr_has(&h, "Content-Type") &&
        hdr_add(&h, "Content-Type", "application/json") != NK_OK)
        goto nomem;
    if (hand_over(out, o->method, &url, &h, request_id) != NK_OK)
        goto nomem;
    rc = NK_OK;
    goto out;
nomem:
    rc = NK_ERR_NOMEM;
    nk_error_set(err, "out of memory");
out:
    if (rc != NK_OK)
        nk_upstream_request_cleanup(out);
    hdr_wipe(&h);
    nk_sb_wipe(&q);
    nk_sb_wipe(&cookie);
    nk_sb_wipe(&url);
    nk_wipe_free(s);
    nk_wipe_free(enc);
    nk_wipe_free(path);
    json_decref(v);
    json_decref(body);
    for (i = 0; pvals != NULL && i < o->n_params; i++)
        json_decref(pvals[i]);
    free(pvals);
    for (i = 0; b.path_vals != NULL && i < o->n_params; i++)
        nk_wipe_free(b.path_vals[i]);
    free(b.path_vals);
    for (i = 0; i < b.n_scratch; i++)
        nk_wipe_free(b.scratch[i]);
    free(b.scratch);
    json_decref(b.vals);
    return rc;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* One raw path segment of a forwarded request: refused when it is empty, a dot segment (also
 * when encoded: %2e%2e), or holds an encoded '/' or '\', a '\', NUL, a bad escape or a byte
 * that is not an RFC 3986 pchar. Nothing is normalised: what passes goes upstream as it came. */
static bool fw_segment_ok(const char *s, size_t n, struct nk_error *err)
{
    size_t i, dots = 0, chars = 0;
    int hi, lo, c;

    if (n == 0) {
        nk_error_set(err, "the forwarded path has an empty segment ('//')");
        return false;
    }
    for (i = 0; i < n; i++, chars++) {
        c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n) {
                nk_error_set(err, "the forwarded path has a bad percent escape");
                return false;
            }
            hi = nk_hex_digit((unsigned char)s[i + 1]);
            lo = nk_hex_digit((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0) {
                nk_error_set(err, "the forwarded path has a bad percent escape");
                return false;
            }
            c = hi * 16 + lo;
            i += 2;
            if (c == '/' || c == '\\' || c == 0) {
                nk_error_set(err,
                             "the forwarded path has an encoded '%s' (refused: it could "
                             "leave the forwarded base path)",
                             c == '/'    ? "/"
                             : c == '\\' ? "\\"
                                         : "NUL");
                return false;
            }
        } else if (c == '\\') {
            nk_error_set(err, "the forwarded path has a '\\' (refused: some servers read it as "
                              "'/')");
            return false;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("-._~!$&'()*+,;=:@", c) != NULL)) {
            nk_error_set(err,
                         "the forwarded path has a character that is not allowed in a URL "
                         "path (byte 0x%02x)",
                         (unsigned)c);
            return false;
        }
        if (c == '.')
            dots++;
    }
    if (dots == chars && dots <= 2) {
        nk_error_set(err, "the forwarded path has a dot segment ('.' or '..', also encoded): "
                          "refused, it would leave the forwarded base path");
        return false;
    }
    return true;
}

enum nk_rc nk_forward_build(struct nk_context *ctx, const struct nk_forward *fw, const char *method,
                            const char *rest, const char *query, const char *const *headers,
                            const char *body, size_t body_len, const char *request_id,
                            const char *caller_auth, struct nk_upstream_request *out,
                            struct nk_error *err)
{
    const struct nk_consumer *cons = fw->target;
    struct nk_exposed none;
    struct build b;
    struct hdrs h = {NULL, 0, 0}, auth = {NULL, 0, 0};
    struct nk_sbuf q = {NULL, 0, 0, false}, url = {NULL, 0, 0, false};
    enum nk_rc rc = NK_OK;
    const char *p, *slash;
    size_t i, j, ci;
    bool taken;

    memset(out, 0, sizeof(*out));
    memset(&b, 0, sizeof(b));
    memset(&none, 0, sizeof(none));
    b.ctx = ctx;
    b.op = &none;
    ci = cons != NULL ? cons->index : 0;
    if (cons == NULL || ci >= ctx->t->n_consumers || &ctx->t->consumers[ci] != cons) {
        nk_error_set(err, "the forward target does not belong to this context's table");
        return NK_ERR_INTERNAL;
    }
    /* the path: every segment checked, none rewritten */
    for (p = rest;; p = slash + 1) {
        slash = strchr(p, '/');
        if (!fw_segment_ok(p, slash != NULL ? (size_t)(slash - p) : strlen(p), err))
            return NK_ERR_INVALID;
        if (slash == NULL)
            break;
    }
    /* the consumer's authentication first (passthrough: the caller's own Authorization): its
     * header names are not taken from the caller's trusted headers */
    if (caller_auth != NULL) {
        if (has_crlf(caller_auth)) {
            nk_error_set(err, "the Authorization header contains a line break");
            return NK_ERR_INVALID;
        }
        rc = hdr_add(&auth, "Authorization", caller_auth);
    } else {
        rc = add_auth(&b, &cons->auth, &auth, &q, err);
    }
    if (rc != NK_OK)
        goto out;
    for (i = 0; i < fw->n_headers; i++) {
        char *hv = NULL;
        if (caller_auth != NULL && tmpl_uses_bind(&b, &fw->headers[i].value))
            continue; /* passthrough: the bound credential never leaves */
        rc = expand_text(&b, &fw->headers[i].value, &hv, err);
        if (rc == NK_OK && has_crlf(hv)) {
            nk_error_set(err, "header '%s' must not contain a line break", fw->headers[i].name);
            rc = NK_ERR_INVALID;
        }
        if (rc == NK_OK)
            rc = hdr_add(&auth, fw->headers[i].name, hv);
        nk_wipe_free(hv);
        if (rc != NK_OK)
            goto out;
    }
    for (i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2) {
        size_t n = strlen(headers[i]);
        taken = false;
        for (j = 0; j < auth.n && !taken; j++)
            taken = strncasecmp(auth.v[j], headers[i], n) == 0 && auth.v[j][n] == ':';
        if (taken || has_crlf(headers[i + 1]))
            continue;
        if (hdr_add(&h, headers[i], headers[i + 1]) != NK_OK)
            goto nomem;
    }
    for (j = 0; j < auth.n; j++) {
        /* the credential lines move over as they are */
        if (hdr_add(&h, "X", "") != NK_OK)
            goto nomem;
        free(h.v[h.n - 1]);
        h.v[h.n - 1] = auth.v[j];
        auth.v[j] = NULL;
    }
    nk_sb_str(&url, ctx->bases[ci]);
    nk_sb_add(&url, "/", 1);
    nk_sb_str(&url, rest);
    if (query != NULL && query[0] != '\0') {
        nk_sb_add(&url, "?", 1);
        nk_sb_str(&url, query);
    }
    if (q.len > 0) {
        /* an apikey placed in the query */
        if (query != NULL && query[0] != '\0')
            q.p[0] = '&';
        nk_sb_str(&url, q.p);
    }
    if (q.oom || url.oom)
        goto nomem;
    if (body != NULL && body_len > 0) {
        out->body = malloc(body_len + 1);
        if (out->body == NULL)
            goto nomem;
        memcpy(out->body, body, body_len);
        out->body[body_len] = '\0';
        out->body_len = body_len;
    }
    if (hand_over(out, method, &url, &h, request_id) != NK_OK)
        goto nomem;
    rc = NK_OK;
    goto out;
nomem:
    rc = NK_ERR_NOMEM;
    nk_error_set(err, "out of memory");
out:
    if (rc != NK_OK)
        nk_upstream_request_cleanup(out);
    hdr_wipe(&h);
    hdr_wipe(&auth);
    nk_sb_wipe(&q);
    nk_sb_wipe(&url);
    for (i = 0; i < b.n_scratch; i++)
        nk_wipe_free(b.scratch[i]);
    free(b.scratch);
    return rc;
}
