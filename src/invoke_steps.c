/* SPDX-License-Identifier: Apache-2.0 */
/* invoke_steps.c: orchestrated calls: call and lookup steps one after another on the loop (the
 * completion of one call step starts the next), then `mappings` build the answer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "invoke_int.h"
#include "naftikod/loop.h"
#include "naftikod/metrics.h"

struct run {
    struct nk_context *ctx;
    struct nk_upstream *up;
    const struct nk_exposed *op;
    json_t *args;   /* the caller's arguments (own reference) */
    json_t *inputs; /* the checked arguments, for output value templates */
    enum nk_args_mode mode;
    char *request_id;
    char *caller_auth;                /* passthrough: the caller's Authorization (wiped), or NULL */
    uint64_t tag;                     /* every transfer of the run carries it */
    json_t *outs;                     /* step name -> output, for the steps run so far */
    size_t k;                         /* the step running */
    struct nk_upstream_request first; /* step 0's request, built by the caller's thread */
    struct nk_loop_timer deadline;
    struct nk_loop_call start;
    long budget_ms; /* the whole run: the client's timeout for one call */
    bool timed_out;
    double seconds;
    struct nk_result *res; /* allocated up front so an ending never lacks one */
    nk_invoke_done_fn done;
    void *ud;
};

static void run_free(struct run *run)
{
    if (run == NULL)
        return;
    nk_upstream_request_cleanup(&run->first);
    json_decref(run->args);
    json_decref(run->inputs);
    json_decref(run->outs);
    free(run->request_id);
    nk_wipe_free(run->caller_auth);
    nk_result_free(run->res);
    if (run->ctx != NULL)
        nk_context_unref(run->ctx);
    free(run);
}

/* End the run and hand the result over. On the loop thread. The run goes first: the result may
 * share JSON values with it (a step's answer), and whoever gets the result may read and free
 * them on another thread. */
static void finish(struct run *run)
{
    struct nk_result *r = run->res;
    nk_invoke_done_fn done = run->done;
    void *ud = run->ud;

    nk_loop_timer_cancel(&run->deadline);
    run->res = NULL;
    r->seconds = run->seconds;
    nk_utf8_fix(r->message, sizeof(r->message));
    run_free(run);
    done(ud, r);
}

static void fail(struct run *run, enum nk_result_kind kind, long status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(struct run *run, enum nk_result_kind kind, long status, const char *fmt, ...)
{
    struct nk_result *r = run->res;
    va_list ap;

    json_decref(r->json);
    free(r->raw);
    free(r->content_type);
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->status = status;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    finish(run);
}

/* The operation as seen by step st: its target and bindings, the operation's arguments. */
static void step_view(const struct nk_exposed *op, const struct nk_step *st, struct nk_exposed *v)
{
    *v = *op;
    v->target = st->target;
    v->bindings = st->bindings;
    v->n_bindings = st->n_bindings;
    v->output = NULL;
}

/* What a step reference reads: a new reference (null when nothing is there); a query that can
 * select several nodes gives the list of them. NULL on OOM. */
static json_t *stepref_eval(const struct run *run, const struct nk_stepref *ref)
{
    json_t *base = json_object_get(run->outs, run->op->steps[ref->step].name), *v;

    if (base == NULL)
        return json_null();
    if (nk_jsonpath_is_singular(ref->path)) {
        v = nk_jsonpath_first(ref->path, base);
        return v != NULL ? v : json_null();
    }
    return nk_jsonpath_query(ref->path, base);
}

/* A scalar's text for matching (strings as they are, numbers and booleans as JSON); NULL for
 * anything else (null, objects and arrays match nothing). Caller frees. */
static char *match_text(json_t *v)
{
    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_number(v) || json_is_boolean(v))
        return nk_dump_json(v);
    return NULL;
}

/* The first entry of table (an array of objects, or one object) whose field `match` has the
 * text want, reduced to the step's fields (absent ones null). *out NULL: no match. */
static enum nk_rc match_one(const struct nk_step *st, json_t *table, const char *want, json_t **out)
{
    json_t *entry = NULL, *e, *f, *r;
    size_t i;
    char *t;

    *out = NULL;
    if (json_is_object(table)) {
        entry = table;
        f = json_object_get(entry, st->match);
        t = f != NULL ? match_text(f) : NULL;
        if (t == NULL || strcmp(t, want) != 0)
            entry = NULL;
        free(t);
    }
    json_array_foreach(json_is_array(table) ? table : NULL, i, e)
    {
        if (!json_is_object(e) || (f = json_object_get(e, st->match)) == NULL)
            continue;
        t = match_text(f);
        if (t != NULL && strcmp(t, want) == 0)
            entry = e;
        free(t);
        if (entry != NULL)
            break;
    }
    if (entry == NULL)
        return NK_OK;
    r = json_object();
    for (i = 0; r != NULL && i < st->n_fields; i++) {
        f = json_object_get(entry, st->fields[i]);
        if (json_object_set_new(r, st->fields[i], f != NULL ? json_incref(f) : json_null()) != 0) {
            json_decref(r);
            r = NULL;
        }
    }
    *out = r;
    return r != NULL ? NK_OK : NK_ERR_NOMEM;
}

/* Template variables of a lookupValue: a step's output (`{{step.field}}`) or an argument. */
struct tvars {
    struct run *run;
    char *kept[8]; /* texts handed out for non-string values */
    size_t n_kept;
    bool oom;
};

static const char *tvar(void *ud, const char *name)
{
    struct tvars *tv = ud;
    const struct nk_exposed *op = tv->run->op;
    size_t n = strcspn(name, "."), i;
    json_t *v = NULL;
    bool step = false;
    char *s;

    for (i = 0; i < op->n_steps && !step; i++)
        step = strlen(op->steps[i].name) == n && strncmp(op->steps[i].name, name, n) == 0;
    v = step ? nk_step_value(tv->run->outs, name)
             : nk_json_by_spelling(tv->run->inputs, tv->run->args, name);
    if (v == NULL)
        return NULL;
    if (json_is_string(v))
        return json_string_value(v);
    if (tv->n_kept == sizeof(tv->kept) / sizeof(tv->kept[0]) || (s = nk_text_of(v)) == NULL) {
        tv->oom = true;
        return NULL;
    }
    tv->kept[tv->n_kept++] = s;
    return s;
}

/* A lookup step: its output into *out (a new reference). */
static enum nk_rc run_lookup(struct run *run, const struct nk_step *st, json_t **out)
{
    json_t *table = nk_step_value(run->outs, st->index_path);
    json_t *val = NULL, *r = NULL, *e, *m;
    struct tvars tv;
    enum nk_rc rc = NK_OK;
    char *text = NULL;
    size_t i;

    memset(&tv, 0, sizeof(tv));
    tv.run = run;
    *out = NULL;
    if (st->value_is_ref) {
        if ((val = stepref_eval(run, &st->value_ref)) == NULL)
            return NK_ERR_NOMEM;
    } else {
        rc = nk_tmpl_expand(&st->value_tmpl, tvar, &tv, NK_ENC_NONE, &text, NULL);
        for (i = 0; i < tv.n_kept; i++)
            free(tv.kept[i]);
        if (tv.oom || rc == NK_ERR_NOMEM) {
            free(text);
            return NK_ERR_NOMEM;
        }
        val = rc == NK_OK ? json_string(text) : json_null(); /* an absent variable: no value */
        free(text);
        if (val == NULL)
            return NK_ERR_NOMEM;
        rc = NK_OK;
    }
    if (json_is_array(val)) {
        /* a list of values: the list of their matches (values that match nothing are left out) */
        r = json_array();
        json_array_foreach(val, i, e)
        {
            if (r == NULL)
                break;
            text = match_text(e);
            m = NULL;
            if (text != NULL && match_one(st, table, text, &m) != NK_OK) {
                json_decref(r);
                r = NULL;
            }
            free(text);
            if (m != NULL && r != NULL && json_array_append_new(r, m) != 0) {
                json_decref(r);
                r = NULL;
            }
        }
    } else {
        text = match_text(val);
        m = NULL;
        if (text != NULL && match_one(st, table, text, &m) != NK_OK)
            rc = NK_ERR_NOMEM;
        free(text);
        r = m != NULL ? m : rc == NK_OK ? json_null() : NULL;
    }
    json_decref(val);
    *out = r;
    return r != NULL ? NK_OK : NK_ERR_NOMEM;
}

/* Set obj's member at the dotted path to v (stolen): `route.from` makes route an object. */
static bool set_nested(json_t *obj, const char *path, json_t *v)
{
    const char *dot;
    char seg[256];
    json_t *child;
    size_t n;

    while ((dot = strchr(path, '.')) != NULL) {
        n = (size_t)(dot - path);
        if (n >= sizeof(seg))
            break;
        memcpy(seg, path, n);
        seg[n] = '\0';
        child = json_object_get(obj, seg);
        if (!json_is_object(child)) {
            child = json_object();
            if (json_object_set_new(obj, seg, child) != 0) {
                json_decref(v);
                return false;
            }
        }
        obj = child;
        path = dot + 1;
    }
    return json_object_set_new(obj, path, v) == 0;
}

/* Every step has run: build the answer. */
static void answer(struct run *run)
{
    const struct nk_exposed *op = run->op;
    json_t *body = NULL, *v;
    struct nk_error err;
    enum nk_rc rc;
    size_t i;

    memset(&err, 0, sizeof(err));
    if (op->n_mappings == 0) {
        /* no mappings: the last call step's output, as the reference runtime answers */
        for (i = op->n_steps; i > 0 && body == NULL; i--)
            if (op->steps[i - 1].kind == NK_STEP_CALL)
                body = json_incref(json_object_get(run->outs, op->steps[i - 1].name));
        if (body == NULL)
            body = json_null();
    } else {
        body = json_object();
        for (i = 0; body != NULL && i < op->n_mappings; i++) {
            v = stepref_eval(run, &op->mappings[i].value);
            if (v == NULL || !set_nested(body, op->mappings[i].target, v)) {
                json_decref(body);
                body = NULL;
            }
        }
    }
    if (body == NULL) {
        fail(run, NK_RES_INTERNAL, 0, "out of memory building the answer");
        return;
    }
    rc = nk_outmap_eval(op->output, body, run->inputs, &run->res->json, &err);
    json_decref(body);
    if (rc == NK_ERR_NOMEM) {
        fail(run, NK_RES_INTERNAL, 0, "out of memory building the answer");
        return;
    }
    if (rc != NK_OK) {
        /* the steps' answers do not fit the declared outputs: the upstream broke the contract */
        fail(run, NK_RES_BAD_UPSTREAM, 0, "upstream answer does not fit: %.400s", err.msg);
        return;
    }
    run->res->kind = NK_RES_OK;
    run->res->status = 200;
    finish(run);
}

static void on_step(void *ud, struct nk_upstream_response *resp);

/* Run lookups until the next call step and send it, or answer when none is left. */
static void advance(struct run *run)
{
    const struct nk_exposed *op = run->op;
    const struct nk_step *st;
    struct nk_upstream_request req;
    struct nk_exposed view;
    struct nk_error err;
    json_t *v = NULL;
    enum nk_rc rc;

    while (run->k < op->n_steps && op->steps[run->k].kind == NK_STEP_LOOKUP) {
        st = &op->steps[run->k];
        if (run_lookup(run, st, &v) != NK_OK || json_object_set_new(run->outs, st->name, v) != 0) {
            fail(run, NK_RES_INTERNAL, 0, "step '%s': out of memory", st->name);
            return;
        }
        run->k++;
    }
    if (run->k == op->n_steps) {
        answer(run);
        return;
    }
    st = &op->steps[run->k];
    memset(&err, 0, sizeof(err));
    step_view(op, st, &view);
    rc = nk_build_request(run->ctx, &view, run->args, run->mode, run->request_id, run->caller_auth,
                          run->outs, &req, &err);
    if (rc != NK_OK) {
        /* the value came from an earlier step's answer (the caller's were checked up front) */
        fail(run, rc == NK_ERR_NOMEM ? NK_RES_INTERNAL : NK_RES_BAD_UPSTREAM, 0,
             "step '%s' (%s) cannot be sent: %s", st->name, st->target->qname, err.msg);
        return;
    }
    req.cancel_tag = run->tag;
    rc = nk_upstream_submit(run->up, &req, on_step, run);
    if (rc != NK_OK)
        fail(run, NK_RES_UNREACHABLE, 0, "step '%s' (%s) cannot be sent: %s", st->name,
             st->target->qname, nk_rc_str(rc));
}

static void on_step(void *ud, struct nk_upstream_response *resp)
{
    struct run *run = ud;
    const struct nk_step *st = &run->op->steps[run->k];
    struct nk_result r;
    json_t *v = NULL;

    memset(&r, 0, sizeof(r));
    nk_metrics_upstream(run->op->adapter_ns, run->op->name, resp);
    run->seconds += resp->seconds;
    nk_invoke_classify(st->target, NULL, NULL, resp, &r);
    if (run->timed_out) {
        fail(run, NK_RES_TIMEOUT, 0,
             "the steps did not finish within %ld ms (step '%s' (%s) was still running)",
             run->budget_ms, st->name, st->target->qname);
    } else if (r.kind != NK_RES_OK) {
        fail(run, r.kind, r.status, "step '%s' (%s) failed: %s", st->name, st->target->qname,
             r.message);
    } else {
        if (r.raw_is_output)
            v = json_loadb(r.raw, r.raw_len, JSON_DECODE_ANY, NULL); /* checked JSON */
        else
            v = json_incref(r.json);
        if (v == NULL && !r.raw_is_output)
            v = json_null();
        if (v == NULL || json_object_set_new(run->outs, st->name, v) != 0) {
            fail(run, NK_RES_INTERNAL, 0, "step '%s': out of memory", st->name);
        } else {
            run->k++;
            advance(run);
        }
    }
    json_decref(r.json);
    free(r.raw);
    free(r.content_type);
}

/* The whole run took too long: stop the step in flight (its callback ends the run). */
static void deadline_due(void *ud)
{
    struct run *run = ud;

    run->timed_out = true;
    nk_upstream_cancel(run->up, run->tag);
}

static void start_on_loop(void *ud)
{
    struct run *run = ud;
    const struct nk_step *st = &run->op->steps[0];
    enum nk_rc rc;

    run->deadline.fn = deadline_due;
    run->deadline.ud = run;
    if (run->budget_ms > 0 &&
        nk_loop_timer_arm(nk_upstream_loop(run->up), &run->deadline, run->budget_ms) != NK_OK) {
        fail(run, NK_RES_INTERNAL, 0, "out of memory");
        return;
    }
    rc = nk_upstream_submit(run->up, &run->first, on_step, run);
    if (rc != NK_OK)
        fail(run, NK_RES_UNREACHABLE, 0, "step '%s' (%s) cannot be sent: %s", st->name,
             st->target->qname, nk_rc_str(rc));
}

enum nk_rc nk_invoke_steps(struct nk_context *ctx, struct nk_upstream *up,
                           const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                           const char *request_id, const char *caller_auth, uint64_t cancel_tag,
                           nk_invoke_done_fn done, void *ud, struct nk_error *err)
{
    struct run *run = calloc(1, sizeof(*run));
    struct nk_exposed view;
    struct nk_error e2;
    enum nk_rc rc = NK_ERR_NOMEM;

    memset(&e2, 0, sizeof(e2));
    if (run == NULL)
        goto fail;
    if (args != NULL && !json_is_object(args)) {
        nk_error_set(err, "arguments must be a JSON object");
        rc = NK_ERR_INVALID;
        goto fail;
    }
    /* args are borrowed and later steps read them on the loop: a copy of the run's own, so no
     * JSON value is shared with a caller on another thread */
    run->args = args != NULL ? json_deep_copy(args) : json_object();
    run->inputs = json_object();
    run->outs = json_object();
    run->res = calloc(1, sizeof(*run->res));
    run->request_id = request_id != NULL ? strdup(request_id) : NULL;
    run->caller_auth = caller_auth != NULL ? strdup(caller_auth) : NULL;
    if (run->args == NULL || run->inputs == NULL || run->outs == NULL || run->res == NULL ||
        (request_id != NULL && run->request_id == NULL) ||
        (caller_auth != NULL && run->caller_auth == NULL))
        goto fail;
    rc = nk_check_args(op, run->args, mode, run->inputs, err);
    if (rc != NK_OK)
        goto fail;
    /* The loader makes step 0 a call (a lookup reads an earlier step). Problems building it are
     * the caller's: a 400 before anything is sent. */
    step_view(op, &op->steps[0], &view);
    rc = nk_build_request(ctx, &view, run->args, mode, request_id, caller_auth, run->outs,
                          &run->first, &e2);
    if (rc != NK_OK) {
        nk_error_set(err, "step '%s' (%s): %s", op->steps[0].name, op->steps[0].target->qname,
                     e2.msg);
        goto fail;
    }
    run->first.cancel_tag = cancel_tag != 0 ? cancel_tag : nk_invoke_new_tag();
    run->tag = run->first.cancel_tag;
    run->ctx = nk_context_ref(ctx);
    run->up = up;
    run->op = op;
    run->mode = mode;
    run->budget_ms = nk_upstream_timeout_ms(up);
    run->done = done;
    run->ud = ud;
    run->start.fn = start_on_loop;
    run->start.ud = run;
    if (!nk_loop_post(nk_upstream_loop(up), &run->start)) {
        nk_error_set(err, "the loop is shutting down");
        rc = NK_ERR_UPSTREAM;
        goto fail;
    }
    return NK_OK;
fail:
    if (rc == NK_ERR_NOMEM)
        nk_error_set(err, "out of memory");
    run_free(run);
    return rc;
}
