/* SPDX-License-Identifier: Apache-2.0 */
/* invoke.c: the call flow: check, build, send upstream (or mock), map the answer, report. */
#include "naftikod/invoke.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "invoke_int.h"
#include "naftikod/loop.h"
#include "naftikod/metrics.h"

void nk_result_free(struct nk_result *r)
{
    if (r == NULL)
        return;
    json_decref(r->json);
    free(r->raw);
    free(r->content_type);
    free(r);
}

/* ---- invoke ------------------------------------------------------------------------------- */

struct call {
    struct nk_context *ctx;
    const struct nk_exposed *op;
    nk_invoke_done_fn done;
    void *ud;
    struct nk_result *res;    /* allocated up front so completion never lacks one */
    json_t *inputs;           /* the checked arguments, for output value templates */
    struct nk_loop_call post; /* a mock's answer is handed over on the loop */
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
        len = p[i] < 0x80 ? 1 : nk_utf8_char_len(p + i, n - i);
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

void nk_invoke_classify(const struct nk_operation *target, const struct nk_outmap *output,
                        json_t *inputs, struct nk_upstream_response *resp, struct nk_result *r)
{
    json_t *j = NULL;
    char summary[300];
    struct nk_error err;
    enum nk_rc rc;

    memset(&err, 0, sizeof(err));
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
    if (resp->status <= 299 && passes_through(output) && nk_outmap_is_identity(target) &&
        r->raw != NULL && !all_space(r->raw, r->raw_len)) {
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
        if (!nk_outmap_is_identity(target)) {
            json_t *pj = NULL;
            rc = nk_outmap_project(target, j, &pj, &err);
            json_decref(j);
            j = pj;
            if (rc != NK_OK)
                goto mapfail;
        }
        rc = nk_outmap_eval(output, j, inputs, &r->json, &err);
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
}

/* Free the call, then hand its result over: the result may share JSON values with the call's
 * inputs (an output built from an argument), and whoever gets it may read and free them on
 * another thread. */
static void call_end(struct call *c, struct nk_result *r)
{
    nk_invoke_done_fn done = c->done;
    void *ud = c->ud;

    nk_context_unref(c->ctx);
    json_decref(c->inputs);
    free(c);
    done(ud, r);
}

static void on_upstream(void *ud, struct nk_upstream_response *resp)
{
    struct call *c = ud;
    struct nk_result *r = c->res;

    nk_metrics_upstream(c->op->adapter_ns, c->op->name, resp);
    nk_invoke_classify(c->op->target, c->op->output, c->inputs, resp, r);
    c->res = NULL;
    call_end(c, r);
}

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
    call_end(c, r);
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
    rc = nk_check_args(op, json_is_object(args) ? args : NULL, mode, c->inputs, err);
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
    if (!nk_loop_post(nk_upstream_loop(up), &c->post)) {
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
    return nk_invoke_tagged(ctx, up, op, args, mode, request_id, caller_auth, 0, done, ud, err);
}

enum nk_rc nk_invoke_cancellable(struct nk_context *ctx, struct nk_upstream *up,
                                 const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                                 const char *request_id, uint64_t cancel_tag,
                                 nk_invoke_done_fn done, void *ud, struct nk_error *err)
{
    return nk_invoke_tagged(ctx, up, op, args, mode, request_id, NULL, cancel_tag, done, ud, err);
}

uint64_t nk_invoke_new_tag(void)
{
    static atomic_uint_fast64_t next;

    /* the top bit keeps these apart from the MCP engines' own counters */
    return (UINT64_C(1) << 63) | (uint64_t)(atomic_fetch_add(&next, 1) + 1);
}

enum nk_rc nk_invoke_tagged(struct nk_context *ctx, struct nk_upstream *up,
                            const struct nk_exposed *op, json_t *args, enum nk_args_mode mode,
                            const char *request_id, const char *caller_auth, uint64_t cancel_tag,
                            nk_invoke_done_fn done, void *ud, struct nk_error *err)
{
    enum nk_rc rc;
    struct nk_upstream_request req;
    struct call *c = NULL;

    if (op->n_steps > 0)
        return nk_invoke_steps(ctx, up, op, args, mode, request_id, caller_auth, cancel_tag, done,
                               ud, err);
    if (op->target == NULL)
        return invoke_mock(ctx, up, op, args, mode, done, ud, err);
    rc = nk_build_request(ctx, op, args, mode, request_id, caller_auth, NULL, &req, err);
    if (rc != NK_OK)
        return rc;
    req.cancel_tag = cancel_tag;
    c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->res = calloc(1, sizeof(*c->res));
    if (c != NULL && c->res != NULL)
        c->inputs = json_object();
    if (c != NULL && c->inputs != NULL && json_is_object(args) && uses_inputs(op->output) &&
        nk_check_args(op, args, mode, c->inputs, NULL) != NK_OK) {
        json_decref(c->inputs);
        c->inputs = NULL;
    }
    if (c != NULL && c->inputs != NULL && json_object_size(c->inputs) > 0) {
        /* the inputs share values with the borrowed args and are read and freed on the loop:
         * a copy of the call's own, so no JSON value is shared with a caller on another thread */
        json_t *own = json_deep_copy(c->inputs);

        json_decref(c->inputs);
        c->inputs = own;
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
