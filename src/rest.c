/* SPDX-License-Identifier: Apache-2.0 */
/* rest.c: the REST adapter: route matching on the raw path, argument collection, nk_invoke(),
 * status mapping and RFC 9457 problem bodies; GET /openapi.json. */
#include "naftikod/rest.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "naftikod/audit.h"
#include "naftikod/authz.h"
#include "naftikod/invoke.h"
#include "naftikod/jsonout.h"
#include "naftikod/log.h"
#include "naftikod/metrics.h"
#include "naftikod/openapi.h"
#include "naftikod/optable.h"
#include "naftikod/problem.h"
#include "naftikod/server.h"
#include "naftikod/template.h"

#define MAX_SEGMENTS 64
#define MAX_VARS 16

/* One in-flight call: what the completion needs. */
struct call {
    struct nk_http_req *req;
    struct nk_context *ctx; /* reference held until the answer */
    /* the audit record's part known at dispatch (only when the audit trail is on) */
    bool audit;
    const struct nk_exposed *op; /* borrowed from ctx's table */
    char rule[160];
    json_t *audit_args;     /* owned, or NULL */
    double t0;              /* dispatch time, monotonic seconds */
    struct nk_upstream *up; /* borrowed: the loop's client the call runs on */
    uint64_t tag;           /* an orchestrated call's cancel tag, else 0 */
};

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One audit record for a call that reached dispatch (audit.h). */
static void audit_call(struct nk_http_req *req, const struct nk_exposed *op, bool allowed,
                       const char *rule, const char *reason, const json_t *args, long status,
                       const char *outcome, double t0)
{
    struct nk_audit_record rec;
    char label[300];

    if (!nk_audit_enabled())
        return;
    snprintf(label, sizeof(label), "%s %s", op->method, op->path);
    memset(&rec, 0, sizeof(rec));
    rec.request_id = nk_http_req_id(req);
    rec.caller = nk_http_req_principal(req);
    rec.adapter = op->adapter_ns;
    rec.kind = "route";
    rec.operation = label;
    rec.allowed = allowed;
    rec.rule = rule;
    rec.reason = reason;
    rec.args = args;
    rec.upstream_status = status;
    rec.outcome = outcome;
    rec.latency_ms = (mono_s() - t0) * 1000.0;
    nk_audit_write(&rec);
}

/* The caller closed the connection of an orchestrated call: stop the step in flight (its
 * completion ends the call and answers the closed request, which frees c). */
static void caller_gone(void *ud)
{
    struct call *c = ud;

    nk_upstream_cancel(c->up, c->tag);
}

struct seg {
    const char *p;
    size_t n;
};

/* A path variable found while matching: name is the route's variable (borrowed from the table). */
struct var {
    const char *name;
    size_t name_len;
    const char *raw; /* the matched raw text inside the request path */
    size_t raw_len;
};

/* Copy s keeping printable ASCII only: problem details quote request text, which may be any
 * bytes, and must stay valid JSON strings. */
static void sanitize(const char *s, size_t n, char *out, size_t cap)
{
    size_t i, o = 0;

    for (i = 0; i < n && s[i] != '\0' && o + 1 < cap; i++)
        out[o++] = ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f) ? s[i] : '?';
    out[o] = '\0';
}

/* Answer with an application/problem+json body. On OOM, an empty 500. */
static void respond_problem(struct nk_http_req *req, unsigned status, const char *detail,
                            const char *const *headers)
{
    char *text = nk_problem_new(status, NULL, detail != NULL ? detail : "", NULL);

    if (text == NULL) {
        nk_http_respond(req, 500, NULL, NULL, 0, NULL);
        return;
    }
    nk_http_respond(req, status, "application/problem+json", text, strlen(text), headers);
}

static void respond_json(struct nk_http_req *req, unsigned status, json_t *j)
{
    size_t len = 0;
    char *text = nk_json_compact(j, &len);

    if (text == NULL) {
        respond_problem(req, 500, "out of memory while encoding the answer", NULL);
        return;
    }
    nk_http_respond(req, status, "application/json", text, len, NULL);
}

static size_t split_path(const char *path, struct seg *segs, size_t max)
{
    size_t n = 0;
    const char *p = path, *slash;

    if (*p == '/')
        p++;
    for (;;) {
        if (n == max)
            return max + 1;
        slash = strchr(p, '/');
        segs[n].p = p;
        segs[n].n = slash != NULL ? (size_t)(slash - p) : strlen(p);
        n++;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    return n;
}

/* Match one compiled route segment against a raw request segment. */
static bool match_segment(const struct nk_route_seg *t, const struct seg *r, struct var *vars,
                          size_t *n_vars)
{
    const char *suffix = t->text + t->prefix_len;

    if (t->var == NULL)
        return t->prefix_len == r->n && memcmp(t->text, r->p, r->n) == 0;
    if (r->n <= t->prefix_len + t->suffix_len || memcmp(r->p, t->text, t->prefix_len) != 0 ||
        memcmp(r->p + r->n - t->suffix_len, suffix, t->suffix_len) != 0)
        return false;
    if (*n_vars == MAX_VARS)
        return false;
    vars[*n_vars].name = t->var;
    vars[*n_vars].name_len = strlen(t->var);
    vars[*n_vars].raw = r->p + t->prefix_len;
    vars[*n_vars].raw_len = r->n - t->prefix_len - t->suffix_len;
    (*n_vars)++;
    return true;
}

/* Match a route's compiled path against the request segments. score: literal segments weigh
 * more the earlier they come, so /a/generate beats /a/{id}. */
static bool match_route(const struct nk_exposed *op, const struct seg *rs, size_t n_rs,
                        struct var *vars, size_t *n_vars, uint64_t *score)
{
    size_t i;

    if (op->route == NULL || op->method == NULL || op->n_route != n_rs)
        return false;
    *n_vars = 0;
    *score = 0;
    for (i = 0; i < n_rs; i++) {
        if (!match_segment(&op->route[i], &rs[i], vars, n_vars))
            return false;
        if (op->route[i].var == NULL && i < 63)
            *score |= (uint64_t)1 << (63 - i);
    }
    return true;
}

/* Percent-decode one path segment ('+' stays '+'). NULL with *bad set on a malformed escape or
 * an encoded NUL; NULL without on OOM. */
static char *decode_segment(const char *s, size_t n, size_t *out_len, bool *bad)
{
    char *out = malloc(n + 1);
    size_t i, o = 0;

    *bad = false;
    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        if (i + 2 >= n) {
            *bad = true;
            break;
        }
        if (nk_hex_digit(s[i + 1]) < 0 || nk_hex_digit(s[i + 2]) < 0 ||
            (nk_hex_digit(s[i + 1]) == 0 && nk_hex_digit(s[i + 2]) == 0)) {
            *bad = true;
            break;
        }
        out[o++] = (char)(nk_hex_digit(s[i + 1]) * 16 + nk_hex_digit(s[i + 2]));
        i += 2;
    }
    if (*bad) {
        free(out);
        return NULL;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* Append method m to the comma-separated list allow unless it is there already. */
static void allow_add(char *allow, size_t cap, const char *m)
{
    const char *p = allow;
    size_t n = strlen(m), len;

    while (*p != '\0') {
        len = strcspn(p, ", ");
        if (len == n && strncmp(p, m, n) == 0)
            return;
        p += len;
        p += strspn(p, ", ");
    }
    if (allow[0] != '\0')
        strncat(allow, ", ", cap - strlen(allow) - 1);
    strncat(allow, m, cap - strlen(allow) - 1);
}

static bool is_json_type(const char *ct)
{
    size_t n;

    if (ct == NULL)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    /* application/<anything>+json */
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* A header value made of visible ASCII and spaces only. */
static bool plain_header(const char *v)
{
    for (; *v != '\0'; v++)
        if ((unsigned char)*v < 0x20 || (unsigned char)*v > 0x7e)
            return false;
    return true;
}

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
    default:
        return "null";
    }
}

/* The value of cookie `name` from the Cookie header, as a new string, or NULL. */
static char *cookie_value(const char *header, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = header;

    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == ';')
            p++;
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            p += nlen + 1;
            return strndup(p, strcspn(p, ";"));
        }
        p = strchr(p, ';');
    }
    return NULL;
}

/* Fill args from the request for op. On a client error, answers req itself and returns false. */
static bool collect_args(struct nk_http_req *req, const struct nk_exposed *op,
                         const struct var *vars, size_t n_vars, json_t *args)
{
    char detail[640], name[128];
    size_t i, k, q, n_body = 0;
    const char *qname, *qvalue, *body;
    size_t body_len = 0;
    json_t *parsed = NULL;
    bool ok = false;

    for (i = 0; i < op->n_args; i++)
        if (op->args[i].in == NK_IN_BODY)
            n_body++;

    for (i = 0; i < op->n_args; i++) {
        const struct nk_arg *arg = &op->args[i];
        json_t *v = NULL;

        switch (arg->in) {
        case NK_IN_PATH:
            for (k = 0; k < n_vars; k++) {
                char *dec;
                size_t dlen = 0;
                bool bad;
                if (vars[k].name_len != strlen(arg->name) ||
                    strncmp(vars[k].name, arg->name, vars[k].name_len) != 0)
                    continue;
                dec = decode_segment(vars[k].raw, vars[k].raw_len, &dlen, &bad);
                if (dec == NULL) {
                    snprintf(detail, sizeof(detail),
                             bad ? "path parameter '%s' has a malformed or NUL percent-escape"
                                 : "out of memory (path parameter '%s')",
                             arg->name);
                    respond_problem(req, bad ? 400 : 500, detail, NULL);
                    goto out;
                }
                v = json_stringn(dec, dlen);
                free(dec);
                if (v == NULL) {
                    snprintf(detail, sizeof(detail),
                             "path parameter '%s' is not valid UTF-8 once decoded", arg->name);
                    respond_problem(req, 400, detail, NULL);
                    goto out;
                }
                break;
            }
            break;
        case NK_IN_QUERY: {
            size_t seen = 0;
            for (q = 0; q < nk_http_req_query_count(req); q++) {
                json_t *s;
                nk_http_req_query_at(req, q, &qname, &qvalue);
                if (strcmp(qname, arg->name) != 0)
                    continue;
                seen++;
                s = json_string(qvalue != NULL ? qvalue : "");
                if (s == NULL) {
                    snprintf(detail, sizeof(detail),
                             "query parameter '%s' is not valid UTF-8 once decoded", arg->name);
                    json_decref(v);
                    respond_problem(req, 400, detail, NULL);
                    goto out;
                }
                if (arg->type == NK_TYPE_ARRAY) {
                    if (v == NULL)
                        v = json_array();
                    json_array_append_new(v, s);
                } else if (seen > 1) {
                    json_decref(s);
                    json_decref(v);
                    snprintf(detail, sizeof(detail),
                             "query parameter '%s' is given more than once; it takes one value",
                             arg->name);
                    respond_problem(req, 400, detail, NULL);
                    goto out;
                } else {
                    v = s;
                }
            }
            break;
        }
        case NK_IN_HEADER: {
            const char *h = nk_http_req_header(req, arg->name);
            if (h != NULL && (v = json_string(h)) == NULL) {
                snprintf(detail, sizeof(detail), "header '%s' is not valid UTF-8", arg->name);
                respond_problem(req, 400, detail, NULL);
                goto out;
            }
            break;
        }
        case NK_IN_COOKIE: {
            const char *h = nk_http_req_header(req, "Cookie");
            char *c = h != NULL ? cookie_value(h, arg->name) : NULL;
            if (c != NULL) {
                v = json_string(c);
                free(c);
            }
            break;
        }
        case NK_IN_BODY:
            body = nk_http_req_body(req, &body_len);
            if (body_len == 0) {
                if (arg->required) {
                    snprintf(detail, sizeof(detail),
                             "a JSON request body is required (parameter '%s')", arg->name);
                    respond_problem(req, 400, detail, NULL);
                    goto out;
                }
                break;
            }
            if (parsed == NULL) {
                json_error_t e;
                if (!is_json_type(nk_http_req_header(req, "Content-Type"))) {
                    sanitize(nk_http_req_header(req, "Content-Type") != NULL
                                 ? nk_http_req_header(req, "Content-Type")
                                 : "(none)",
                             SIZE_MAX, name, sizeof(name));
                    snprintf(detail, sizeof(detail),
                             "the request body must be application/json, got %s", name);
                    respond_problem(req, 415, detail, NULL);
                    goto out;
                }
                parsed = json_loadb(body, body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
                if (parsed == NULL) {
                    snprintf(detail, sizeof(detail),
                             "the request body is not valid JSON: %s (line %d, column %d)", e.text,
                             e.line, e.column);
                    respond_problem(req, 400, detail, NULL);
                    goto out;
                }
            }
            /* One body argument is the whole body; several are its properties. */
            if (n_body == 1) {
                v = json_incref(parsed);
            } else if (json_is_object(parsed)) {
                v = json_incref(json_object_get(parsed, arg->name));
            } else {
                respond_problem(req, 400, "the request body must be a JSON object", NULL);
                goto out;
            }
            if (v != NULL && arg->type == NK_TYPE_OBJECT && !json_is_object(v)) {
                snprintf(detail, sizeof(detail), "%s '%s' must be a JSON object, got %s",
                         n_body == 1 ? "the request body (parameter" : "body property", arg->name,
                         json_kind(v));
                if (n_body == 1)
                    strncat(detail, ")", sizeof(detail) - strlen(detail) - 1);
                json_decref(v);
                respond_problem(req, 400, detail, NULL);
                goto out;
            }
            if (v != NULL && arg->type == NK_TYPE_ARRAY && !json_is_array(v)) {
                snprintf(detail, sizeof(detail), "'%s' must be a JSON array, got %s", arg->name,
                         json_kind(v));
                json_decref(v);
                respond_problem(req, 400, detail, NULL);
                goto out;
            }
            break;
        case NK_IN_ENVIRONMENT:
        default:
            break;
        }
        if (v != NULL && json_object_set_new(args, arg->name, v) != 0) {
            respond_problem(req, 500, "out of memory collecting arguments", NULL);
            goto out;
        }
    }
    ok = true;
out:
    json_decref(parsed);
    return ok;
}

static void on_done(void *ud, struct nk_result *r)
{
    struct call *c = ud;
    struct nk_http_req *req = c->req;
    char *raw;
    size_t raw_len;
    unsigned status;

    if (c->audit)
        audit_call(req, c->op, true, c->rule, NULL, c->audit_args, r->status,
                   nk_audit_outcome(r->kind), c->t0);
    switch (r->kind) {
    case NK_RES_OK:
        if (r->raw_is_output) {
            /* Checked JSON, passed through as it came: no tree, no copy. */
            raw = r->raw;
            r->raw = NULL;
            nk_http_respond(req, 200, "application/json", raw, r->raw_len, NULL);
        } else if (r->json == NULL) {
            nk_http_respond(req, 204, NULL, NULL, 0, NULL);
        } else {
            respond_json(req, 200, r->json);
        }
        break;
    case NK_RES_UPSTREAM_ERROR:
        /* invoke turns anything but 4xx/5xx into another kind; this is a guard. */
        status = r->status >= 400 && r->status <= 599 ? (unsigned)r->status : 502;
        if (r->json != NULL && r->raw != NULL) {
            /* Central's own JSON error body, byte for byte; the type is JSON whatever the
             * upstream called it (an upstream type is never relayed: text/html from our
             * origin would be a page). */
            raw = r->raw;
            raw_len = r->raw_len;
            r->raw = NULL;
            nk_http_respond(req, status,
                            is_json_type(r->content_type) && plain_header(r->content_type)
                                ? r->content_type
                                : "application/json",
                            raw, raw_len, NULL);
        } else if (r->json != NULL) {
            respond_json(req, status, r->json);
        } else if (r->raw != NULL && r->raw_len > 0) {
            /* Not JSON (an HTML page from a proxy in front of Central, plain text): the status
             * stays, the body becomes a problem document that quotes a summary of it. */
            respond_problem(req, status, r->message, NULL);
        } else {
            respond_problem(req, status, r->message, NULL);
        }
        break;
    case NK_RES_UNREACHABLE:
        respond_problem(req, 502, r->message[0] ? r->message : "upstream unreachable", NULL);
        break;
    case NK_RES_TIMEOUT:
        respond_problem(req, 504, r->message[0] ? r->message : "upstream timed out", NULL);
        break;
    case NK_RES_BAD_UPSTREAM:
        respond_problem(req, 502, r->message[0] ? r->message : "bad upstream answer", NULL);
        break;
    case NK_RES_INTERNAL:
    default:
        respond_problem(req, 500, r->message[0] ? r->message : "internal error", NULL);
        break;
    }
    nk_result_free(r);
    nk_context_unref(c->ctx);
    json_decref(c->audit_args);
    free(c);
}

/* ---- forward ------------------------------------------------------------------------------ */

struct fwcall {
    struct nk_http_req *req;
    struct nk_context *ctx; /* reference held until the answer */
    struct nk_upstream *up;
    uint64_t tag;
    /* the audit record (only when the audit trail is on) */
    const struct nk_forward *fw; /* borrowed from ctx's table */
    char method[16];
    char *path; /* owned */
    char rule[160];
    double t0;
    /* the streamed answer (loop thread) */
    struct nk_http_stream *stream; /* once the head went out, until the end */
    bool answered;                 /* the head went out, or the request was answered */
    bool bad_head;                 /* the upstream's head had no final status: refused */
    long bad_status;               /* ... that status */
    char id[65];                   /* the request id, for the log (req may be gone) */
};

/* A forwarded request as the permission rules and the audit trail see it: a route named
 * "forward" whose path is the request's own (a grant's route glob over the forward's prefix
 * covers it), read-only when its method is GET. It borrows method and path. */
static void forward_op(struct nk_exposed *op, const char *method, const char *path,
                       const struct nk_forward *fw)
{
    static char name[] = "forward";

    memset(op, 0, sizeof(*op));
    op->name = name;
    op->method = (char *)method;
    op->path = (char *)path;
    op->adapter_ns = fw->target->ns;
}

static void audit_forward(struct fwcall *c, long status, const char *outcome)
{
    struct nk_exposed op;

    if (c->path == NULL)
        return; /* no audit trail */
    forward_op(&op, c->method, c->path, c->fw);
    audit_call(c->req, &op, true, c->rule, NULL, NULL, status, outcome, c->t0);
}

static void fw_gone(void *ud)
{
    struct fwcall *c = ud;

    nk_upstream_cancel(c->up, c->tag); /* fw_done answers the closed request and frees c */
}

/* A content type relayed only when it is one plain header value. */
static bool plain_type(const char *s)
{
    for (; s != NULL && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return s != NULL;
}

static void fw_free(struct fwcall *c)
{
    nk_context_unref(c->ctx);
    free(c->path);
    free(c);
}

static void fw_drained(void *ud)
{
    struct fwcall *c = ud;

    nk_upstream_unpause(c->up, c->tag);
}

/* The caller went away mid-stream: stop reading the upstream. */
static void fw_lost(void *ud)
{
    struct fwcall *c = ud;

    nk_log(NK_LOG_INFO, "forward: the caller of request %s went away; upstream transfer cancelled",
           c->id);
    nk_upstream_cancel(c->up, c->tag); /* fw_done ends the stream and frees c */
}

/* The upstream's head: status and content type go out now, as they came (nothing else of its
 * headers: Set-Cookie, Location and the rest would speak for the upstream from our origin). */
static void fw_head(void *ud, long status, const char *content_type)
{
    static const char *const hdrs[] = {"Content-Security-Policy", "sandbox", NULL};
    static const struct nk_http_stream_ops ops = {fw_drained, fw_lost};
    struct fwcall *c = ud;
    const char *ct = content_type;

    if (status < 200 || status > 599) {
        c->bad_head = true; /* fw_done refuses it: the transfer goes on, discarded */
        c->bad_status = status;
        return;
    }
    if (ct != NULL && !plain_type(ct))
        ct = "application/octet-stream";
    audit_forward(c, status, status < 400 ? "ok" : "upstream_error");
    c->answered = true;
    c->stream = nk_http_respond_stream(c->req, (unsigned)status, ct, hdrs, &ops, c);
}

/* A piece of the upstream's body, relayed as it came; false pauses the upstream. */
static bool fw_data(void *ud, const char *data, size_t len)
{
    struct fwcall *c = ud;

    if (c->stream == NULL)
        return true; /* nothing to relay to: dropped until done */
    return nk_http_stream_write(c->stream, data, len);
}

/* The end of the upstream's answer. Before the head, errors are problem+json answers; after
 * it, the stream ends, cut when the upstream failed (the caller sees an incomplete chunked
 * body, the honest signal). */
static void fw_done(void *ud, struct nk_upstream_response *resp)
{
    struct fwcall *c = ud;
    char detail[400];

    if (c->answered) {
        if (resp->rc != NK_OK)
            nk_log(NK_LOG_WARNING,
                   "forward: request %s: the upstream answer broke off after %zu "
                   "bytes (%s); the relayed body is cut",
                   c->id, resp->body_len, resp->error);
        nk_http_stream_end(c->stream, resp->rc == NK_OK);
        goto out;
    }
    if (c->bad_head) {
        audit_forward(c, c->bad_status, "bad_upstream");
        snprintf(detail, sizeof(detail), "upstream answered %ld, which is not a final HTTP status",
                 c->bad_status);
        respond_problem(c->req, 502, detail, NULL);
        goto out;
    }
    switch (resp->rc) {
    case NK_ERR_TIMEOUT:
        audit_forward(c, 0, "timeout");
        snprintf(detail, sizeof(detail), "upstream timed out: %s", resp->error);
        respond_problem(c->req, 504, detail, NULL);
        break;
    case NK_ERR_TOO_LARGE:
        audit_forward(c, resp->status, "bad_upstream");
        snprintf(detail, sizeof(detail), "upstream answer too large: %s", resp->error);
        respond_problem(c->req, 502, detail, NULL);
        break;
    case NK_ERR_NOMEM:
        audit_forward(c, 0, "internal");
        respond_problem(c->req, 500, "out of memory", NULL);
        break;
    default:
        audit_forward(c, 0, "unreachable");
        snprintf(detail, sizeof(detail), "upstream unreachable: %s", resp->error);
        respond_problem(c->req, 502, detail, NULL);
        break;
    }
out:
    fw_free(c);
}

/* The forward of a's members whose prefix is the longest one path continues with '/', or NULL;
 * *rest: the path after that '/'. */
static const struct nk_forward *find_forward(const struct nk_adapter *a, const char *path,
                                             const char **rest)
{
    const struct nk_forward *best = NULL;
    size_t i, j, n, best_n = 0;

    for (i = 0; i < a->n_members; i++)
        for (j = 0; j < a->members[i]->n_forwards; j++) {
            const struct nk_forward *fw = &a->members[i]->forwards[j];
            n = strlen(fw->prefix);
            if (strncmp(path, fw->prefix, n) == 0 && path[n] == '/' &&
                (best == NULL || n > best_n)) {
                best = fw;
                best_n = n;
            }
        }
    if (best != NULL)
        *rest = path + best_n + 1;
    return best;
}

static void forward(struct nk_server *s, struct nk_context *ctx, struct nk_http_req *req,
                    const struct nk_forward *fw, const char *method, const char *path,
                    const char *rest, const char *rule, double t0)
{
    static const struct nk_upstream_stream stream = {fw_head, fw_data};
    const struct nk_inbound_policy *pol = nk_server_policy(s);
    const char **hdrs = calloc(2 * fw->n_trusted + 3, sizeof(*hdrs));
    struct nk_upstream_request r;
    struct fwcall *c = NULL;
    struct nk_error err;
    const char *body, *v, *name, *val;
    char *en = NULL, *ev = NULL, *query = NULL, *nq;
    size_t i, n = 0, len = 0, qlen = 0, need;
    enum nk_rc rc;

    memset(&err, 0, sizeof(err));
    memset(&r, 0, sizeof(r));
    if (hdrs == NULL)
        goto nomem;
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 &&
        strcmp(method, "PATCH") != 0 && strcmp(method, "DELETE") != 0) {
        static const char *const allow[] = {"Allow", "GET, HEAD, POST, PUT, PATCH, DELETE", NULL};
        respond_problem(req, 405, "a forward relays GET, HEAD, POST, PUT, PATCH and DELETE only",
                        allow);
        goto out;
    }
    if (pol->read_only && strcmp(method, "GET") != 0) {
        respond_problem(req, 403, "naftikod runs with --read-only: only GET routes are served",
                        NULL);
        goto out;
    }
    for (i = 0; i < fw->n_trusted; i++)
        if ((v = nk_http_req_header(req, fw->trusted[i])) != NULL &&
            (pol->rest != NK_INBOUND_TOKEN || strcasecmp(fw->trusted[i], "Authorization") != 0)) {
            /* (with --rest-auth token the caller's Authorization is naftikod's own token: it
             * never goes upstream) */
            hdrs[n++] = fw->trusted[i];
            hdrs[n++] = v;
        }
    body = nk_http_req_body(req, &len);
    if (len > 0 && (v = nk_http_req_header(req, "Content-Type")) != NULL) {
        hdrs[n++] = "Content-Type";
        hdrs[n++] = v;
    }
    /* the query, re-encoded from its decoded arguments */
    for (i = 0; i < nk_http_req_query_count(req); i++) {
        nk_http_req_query_at(req, i, &name, &val);
        en = nk_pct_encode(name, strlen(name), NK_ENC_QUERY);
        ev = val != NULL ? nk_pct_encode(val, strlen(val), NK_ENC_QUERY) : NULL;
        if (en == NULL || (val != NULL && ev == NULL))
            goto nomem;
        need = qlen + strlen(en) + (ev != NULL ? strlen(ev) + 1 : 0) + 2;
        nq = realloc(query, need);
        if (nq == NULL)
            goto nomem;
        query = nq;
        snprintf(query + qlen, need - qlen, "%s%s%s%s", qlen > 0 ? "&" : "", en,
                 ev != NULL ? "=" : "", ev != NULL ? ev : "");
        qlen = strlen(query);
        free(en);
        free(ev);
        en = ev = NULL;
    }
    rc = nk_forward_build(
        ctx, fw, method, rest, query, hdrs, body, len, nk_http_req_id(req),
        pol->rest == NK_INBOUND_PASSTHROUGH ? nk_http_req_header(req, "Authorization") : NULL, &r,
        &err);
    if (rc == NK_ERR_NOMEM)
        goto nomem;
    if (rc != NK_OK) {
        respond_problem(req, rc == NK_ERR_INVALID ? 400 : 500,
                        err.msg[0] ? err.msg : "cannot forward", NULL);
        goto out;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        goto nomem;
    c->req = req;
    c->ctx = nk_context_ref(ctx);
    c->up = nk_server_upstream(s);
    c->tag = nk_invoke_new_tag();
    snprintf(c->id, sizeof(c->id), "%s", nk_http_req_id(req));
    c->fw = fw;
    c->t0 = t0;
    snprintf(c->method, sizeof(c->method), "%s", method);
    snprintf(c->rule, sizeof(c->rule), "%s", rule);
    if (nk_audit_enabled() && (c->path = strdup(path)) == NULL) {
        nk_context_unref(c->ctx);
        free(c);
        goto nomem;
    }
    r.cancel_tag = c->tag;
    if (nk_upstream_submit_stream(c->up, &r, &stream, fw_done, c) != NK_OK) {
        fw_free(c);
        respond_problem(req, 503, "the upstream client is shutting down", NULL);
        goto out;
    }
    nk_http_req_on_close(req, fw_gone, c); /* answered later, on this loop */
    goto out;
nomem:
    respond_problem(req, 500, "out of memory", NULL);
out:
    nk_upstream_request_cleanup(&r);
    free(en);
    free(ev);
    free(query);
    free(hdrs);
}

/* servers[0].url is "/" (relative: the document's own origin), never the Host header, which
 * a caller chooses. */
static void serve_openapi(struct nk_http_req *req, const struct nk_optable *t,
                          const struct nk_adapter *a)
{
    json_t *doc = nk_openapi_build(t, a, "/");

    if (doc == NULL) {
        respond_problem(req, 500, "out of memory building the OpenAPI document", NULL);
        return;
    }
    respond_json(req, 200, doc);
    json_decref(doc);
}

void nk_rest_handle(struct nk_server *s, const char *ns, struct nk_http_req *req)
{
    struct nk_context *ctx = nk_server_context(s);
    const struct nk_optable *t = ctx != NULL ? nk_context_table(ctx) : NULL;
    const struct nk_adapter *a = NULL;
    const struct nk_exposed *best = NULL;
    const struct nk_forward *fw = NULL;
    const char *method = nk_http_req_method(req), *path = nk_http_req_path(req), *fw_rest = NULL;
    const struct nk_inbound_policy *pol = nk_server_policy(s);
    struct seg rs[MAX_SEGMENTS];
    struct var vars[MAX_VARS], best_vars[MAX_VARS];
    size_t n_rs, i, n_vars = 0, best_n = 0;
    uint64_t score, best_score = 0;
    char allow[256] = "", detail[640], shown[300];
    bool path_known = false;
    json_t *args = NULL;
    struct call *c = NULL;
    struct nk_error err;
    enum nk_rc rc;
    const struct nk_authz *az = nk_server_authz(s);
    struct nk_authz_decision d;
    double t0 = mono_s();

    memset(&err, 0, sizeof(err));
    memset(&d, 0, sizeof(d));
    if (!nk_inbound_host_allowed(pol->rest_hosts, pol->n_rest_hosts,
                                 nk_http_req_header(req, "Host"),
                                 nk_http_req_header(req, "Origin"))) {
        /* DNS rebinding: a page whose name now resolves to us would call with our credential. */
        respond_problem(req, 403,
                        "the Host or Origin header names a host this REST adapter does not "
                        "serve (see --rest-allowed-hosts)",
                        NULL);
        goto out;
    }
    /* HEAD is GET without the body (the HTTP layer leaves the body out). */
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    a = nk_optable_find_listener(t, NK_ADAPTER_REST, ns);
    if (a == NULL) {
        respond_problem(req, 404, "this REST adapter is no longer served", NULL);
        goto out;
    }
    n_rs = path[0] == '/' ? split_path(path, rs, MAX_SEGMENTS) : MAX_SEGMENTS + 1;
    for (i = 0; n_rs <= MAX_SEGMENTS && i < a->n_ops; i++) {
        const struct nk_exposed *op = &a->ops[i];
        if (!match_route(op, rs, n_rs, vars, &n_vars, &score))
            continue;
        path_known = true;
        if (strcmp(op->method, method) != 0) {
            allow_add(allow, sizeof(allow), op->method);
            continue;
        }
        if (best == NULL || score > best_score) {
            best = op;
            best_score = score;
            best_n = n_vars;
            memcpy(best_vars, vars, n_vars * sizeof(vars[0]));
        }
    }
    sanitize(path, strlen(path), shown, sizeof(shown));
    if (best == NULL && (fw = find_forward(a, path, &fw_rest)) != NULL) {
        /* no operation takes the request: the resource's forward does (the reference runtime's
         * order), under the same permission rules as a route */
        struct nk_exposed fop;

        forward_op(&fop, method, path, fw);
        if (az != NULL) {
            if (nk_authz_check(az, nk_http_req_principal(req), NK_ADAPTER_REST, &fop, NULL, &d) !=
                NK_OK) {
                respond_problem(req, 500, "out of memory", NULL);
                goto out;
            }
            if (!d.allowed) {
                audit_call(req, &fop, false, d.rule, d.reason, NULL, 0, "denied", t0);
                respond_problem(req, 403, d.reason, NULL);
                goto out;
            }
        } else {
            snprintf(d.rule, sizeof(d.rule), "no permissions file");
        }
        forward(s, ctx, req, fw, method, path, fw_rest, d.rule, t0);
        goto out;
    }
    if (best == NULL) {
        if (!path_known && strcmp(path, "/openapi.json") == 0) {
            if (strcmp(method, "GET") == 0) {
                serve_openapi(req, t, a);
            } else {
                static const char *const hdrs[] = {"Allow", "GET", NULL};
                respond_problem(req, 405, "/openapi.json only answers GET", hdrs);
            }
        } else if (path_known) {
            const char *hdrs[] = {"Allow", allow, NULL};
            sanitize(method, strlen(method), detail, 32);
            snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                     " is not allowed on %s; allowed: %s", shown, allow);
            respond_problem(req, 405, detail, hdrs);
        } else {
            snprintf(detail, sizeof(detail), "no route matches %s", shown);
            respond_problem(req, 404, detail, NULL);
        }
        goto out;
    }

    nk_http_req_set_tag(
        req, nk_metrics_op_of(nk_metrics_global(), best->adapter_ns, best->name)); /* metrics */
    if (pol->read_only && strcmp(best->method, "GET") != 0) {
        static const char ro[] = "naftikod runs with --read-only: only GET routes are served";

        audit_call(req, best, false, "read-only", ro, NULL, 0, "denied", t0);
        respond_problem(req, 403, ro, NULL);
        goto out;
    }
    args = json_object();
    if (args == NULL) {
        respond_problem(req, 500, "out of memory", NULL);
        goto out;
    }
    if (!collect_args(req, best, best_vars, best_n, args))
        goto out; /* already answered */
    /* The permission rules, on the arguments as collected, before anything goes upstream. */
    if (az != NULL) {
        if (nk_authz_check(az, nk_http_req_principal(req), NK_ADAPTER_REST, best, args, &d) !=
            NK_OK) {
            respond_problem(req, 500, "out of memory", NULL);
            goto out;
        }
        if (!d.allowed) {
            char scope_hdr[200];
            const char *hdrs[] = {"WWW-Authenticate", scope_hdr, NULL};

            audit_call(req, best, false, d.rule, d.reason, d.audit_args, 0, "denied", t0);
            /* A scope would fix it (OAuth callers): the step-up challenge of RFC 6750. */
            snprintf(scope_hdr, sizeof(scope_hdr),
                     "Bearer error=\"insufficient_scope\", scope=\"%s\"", d.missing_scope);
            respond_problem(req, 403, d.reason, d.missing_scope[0] != '\0' ? hdrs : NULL);
            goto out;
        }
    } else {
        snprintf(d.rule, sizeof(d.rule), "no permissions file");
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        respond_problem(req, 500, "out of memory", NULL);
        goto out;
    }
    c->req = req;
    c->ctx = ctx;
    c->op = best;
    c->t0 = t0;
    c->audit = nk_audit_enabled();
    if (c->audit) {
        memcpy(c->rule, d.rule, sizeof(c->rule));
        c->audit_args = d.audit_args;
        d.audit_args = NULL;
    }
    c->up = nk_server_upstream(s);
    /* steps run several transfers one after another: a caller that leaves stops them */
    c->tag = best->n_steps > 0 ? nk_invoke_new_tag() : 0;
    rc = nk_invoke_tagged(ctx, c->up, best, args, NK_ARGS_STRINGS, nk_http_req_id(req),
                          nk_server_policy(s)->rest == NK_INBOUND_PASSTHROUGH
                              ? nk_http_req_header(req, "Authorization")
                              : NULL,
                          c->tag, on_done, c, &err);
    if (rc == NK_OK) {
        if (c->tag != 0)
            nk_http_req_on_close(req, caller_gone, c); /* answered later, on this loop */
        ctx = NULL;                                    /* the call owns the reference now */
        c = NULL;
        goto out;
    }
    c->ctx = NULL;
    audit_call(req, best, true, c->rule, err.msg, c->audit_args, 0,
               rc == NK_ERR_INVALID || rc == NK_ERR_NOTFOUND ? "invalid" : "internal", t0);
    switch (rc) {
    case NK_ERR_INVALID:
    case NK_ERR_NOTFOUND:
        respond_problem(req, 400, err.msg[0] ? err.msg : "invalid arguments", NULL);
        break;
    case NK_ERR_UNSUPPORTED:
        respond_problem(req, 501, err.msg[0] ? err.msg : "not supported", NULL);
        break;
    case NK_ERR_TOO_LARGE:
        respond_problem(req, 413, err.msg[0] ? err.msg : "too large", NULL);
        break;
    case NK_ERR_NOMEM:
        respond_problem(req, 500, "out of memory", NULL);
        break;
    default:
        respond_problem(req, 500, err.msg[0] ? err.msg : nk_rc_str(rc), NULL);
        break;
    }
out:
    if (c != NULL)
        json_decref(c->audit_args);
    free(c);
    nk_authz_decision_cleanup(&d);
    json_decref(args);
    if (ctx != NULL)
        nk_context_unref(ctx);
}
