/* SPDX-License-Identifier: Apache-2.0 */
/* outmap.c: output mapping: outputParameters and outmap trees applied to an answer, with coercion.
 */
#include "naftikod/invoke.h"

#include <stdlib.h>
#include <string.h>

#include "invoke_int.h"

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
    return nk_json_by_spelling(inputs, NULL, name);
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
    t = nk_text_of(v);
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
        nk_describe_json(base, got, sizeof(got));
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
bool nk_outmap_is_identity(const struct nk_operation *o)
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
enum nk_rc nk_outmap_project(const struct nk_operation *o, json_t *answer, json_t **out,
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
            nk_describe_json(v, got, sizeof(got));
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
