/* SPDX-License-Identifier: Apache-2.0 */
/* context.c: run-time context: bind values, secret files, expanded consumer baseUri. */
#include "naftikod/invoke.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "invoke_int.h"
#include "naftikod/secret.h"

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

const char *nk_context_find_bind(const struct nk_context *c, const char *name)
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
    return nk_context_find_bind(ud, name);
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
        nk_wipe_free(v);
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
    struct nk_sbuf b = {NULL, 0, 0, false};
    const struct nk_tmpl *t = &c->base_uri;
    const char *file = c->pos.file;
    const char *v;
    bool missing = false;
    size_t i;

    *out = NULL;
    for (i = 0; i < t->n; i++) {
        const struct nk_tmpl_part *p = &t->parts[i];
        if (p->kind == NK_TMPL_LIT) {
            nk_sb_str(&b, p->text);
            continue;
        }
        v = p->double_braced ? nk_context_find_bind(ctx, p->text) : server_var(&l, p->text);
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
        nk_sb_str(&b, v);
    }
    if (missing) {
        nk_sb_wipe(&b);
        return NK_ERR_INVALID;
    }
    *out = nk_sb_take(&b);
    if (*out == NULL)
        return NK_ERR_NOMEM;
    while (strlen(*out) > 0 && (*out)[strlen(*out) - 1] == '/')
        (*out)[strlen(*out) - 1] = '\0';
    return NK_OK;
}

/* Resolve adapter a's document credential into d: the templates expanded over the binds, then
 * hashed; the plain value is wiped at once. */
static enum nk_rc doc_secret(struct nk_context *c, const struct nk_adapter *a,
                             struct nk_doc_secret *d, struct nk_diags *diags)
{
    char *v = NULL, *u = NULL, *joined = NULL;
    struct nk_error err;
    enum nk_rc rc = NK_OK;
    size_t n;

    memset(&err, 0, sizeof(err));
    switch (a->auth.type) {
    case NK_AUTH_BEARER:
        rc = nk_tmpl_expand(&a->auth.token, bind_lookup, c, NK_ENC_NONE, &v, &err);
        break;
    case NK_AUTH_APIKEY:
        rc = nk_tmpl_expand(&a->auth.value, bind_lookup, c, NK_ENC_NONE, &v, &err);
        break;
    case NK_AUTH_BASIC:
        rc = nk_tmpl_expand(&a->auth.username, bind_lookup, c, NK_ENC_NONE, &u, &err);
        if (rc == NK_OK)
            rc = nk_tmpl_expand(&a->auth.password, bind_lookup, c, NK_ENC_NONE, &v, &err);
        if (rc == NK_OK && strchr(u, ':') != NULL) {
            nk_diags_add(diags, NK_SEV_ERROR, a->pos.file, a->pos.line, a->pos.column,
                         "the basic authentication user name of adapter '%s' holds a ':', "
                         "which no Basic credential can carry",
                         a->ns);
            rc = NK_ERR_INVALID;
        }
        if (rc == NK_OK) {
            n = strlen(u) + strlen(v) + 2;
            joined = malloc(n);
            if (joined == NULL) {
                rc = NK_ERR_NOMEM;
                break;
            }
            snprintf(joined, n, "%s:%s", u, v);
            nk_wipe_free(v);
            v = joined;
            joined = NULL;
            if (strlen(u) < sizeof(d->user))
                memcpy(d->user, u, strlen(u) + 1);
        }
        break;
    default:
        return NK_OK;
    }
    if (rc == NK_OK && v[0] == '\0') {
        nk_diags_add(diags, NK_SEV_ERROR, a->pos.file, a->pos.line, a->pos.column,
                     "the inbound credential of adapter '%s' is empty once its binds are "
                     "resolved: every caller would be refused",
                     a->ns);
        rc = NK_ERR_INVALID;
    }
    if (rc == NK_OK) {
        nk_sha256(v, strlen(v), d->digest);
        d->set = true;
    } else if (rc != NK_ERR_NOMEM && rc != NK_ERR_INVALID) {
        /* an undeclared bind was refused at load; a missing value by the bind pass */
        rc = NK_ERR_INVALID;
    }
    nk_wipe_free(v);
    nk_wipe_free(u);
    return rc;
}

const struct nk_doc_secret *nk_context_doc_secret(const struct nk_context *c,
                                                  const struct nk_adapter *a)
{
    size_t i;

    if (c == NULL || a < c->t->adapters || a >= c->t->adapters + c->t->n_adapters)
        return NULL;
    i = (size_t)(a - c->t->adapters);
    return c->doc != NULL && c->doc[i].set ? &c->doc[i] : NULL;
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
        nk_wipe_free(c->bind_values[i]);
    free(c->bind_values);
    for (i = 0; c->bases != NULL && i < c->t->n_consumers; i++)
        free(c->bases[i]);
    free(c->bases);
    if (c->doc != NULL)
        explicit_bzero(c->doc, c->t->n_adapters * sizeof(*c->doc));
    free(c->doc);
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
    c->doc = calloc(t->n_adapters + 1, sizeof(*c->doc));
    if (c->bind_values == NULL || c->bases == NULL || c->doc == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < t->n_binds; i++) {
        const struct nk_bind *b = &t->binds[i];
        bind_use(t, b, use, sizeof(use));
        why[0] = '\0';
        if (b->location != NULL)
            r = read_bind_file(b, &c->bind_values[i], why, sizeof(why));
        else
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
    for (i = 0; rc == NK_OK && i < t->n_adapters; i++)
        rc = doc_secret(c, &t->adapters[i], &c->doc[i], diags);
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
