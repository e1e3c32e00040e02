/* SPDX-License-Identifier: Apache-2.0 */
/* mcp.c: the MCP Streamable HTTP endpoint: wraps the transport-free engine (mcp_core.c) around
 * one nk_http_req, with the server's current context and shared upstream client. */
#include "naftikod/mcp.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/authz.h"
#include "naftikod/httpd.h"
#include "naftikod/invoke.h"
#include "naftikod/loop.h"
#include "naftikod/log.h"
#include "naftikod/mcp_core.h"
#include "naftikod/metrics.h"
#include "naftikod/upstream.h"

static pthread_mutex_t engine_mu = PTHREAD_MUTEX_INITIALIZER;
static struct nk_mcp *engine;

enum nk_rc nk_mcp_configure(const struct nk_mcp_options *opts, struct nk_error *err)
{
    enum nk_rc rc;

    pthread_mutex_lock(&engine_mu);
    if (engine != NULL) {
        nk_error_set(err, "the MCP engine is already configured");
        rc = NK_ERR_INVALID;
    } else {
        rc = nk_mcp_new(opts, &engine, err);
    }
    pthread_mutex_unlock(&engine_mu);
    return rc;
}

bool nk_mcp_set_session_keys(const struct nk_keyring *ring)
{
    bool ok;

    pthread_mutex_lock(&engine_mu);
    ok = engine != NULL;
    if (ok)
        nk_mcp_set_keys(engine, ring);
    pthread_mutex_unlock(&engine_mu);
    return ok;
}

size_t nk_mcp_session_key_fingerprints(char (*fp)[17], size_t max)
{
    size_t n = 0;

    pthread_mutex_lock(&engine_mu);
    if (engine != NULL)
        n = nk_mcp_key_fingerprints(engine, fp, max);
    pthread_mutex_unlock(&engine_mu);
    return n;
}

_Static_assert(NK_MCP_REFUSED_N == 3, "nk_mcp_sessions_refused_all() copies three reasons");

bool nk_mcp_sessions_refused_all(unsigned long long out[3])
{
    bool ok;
    int i;

    pthread_mutex_lock(&engine_mu);
    ok = engine != NULL;
    for (i = 0; ok && i < NK_MCP_REFUSED_N; i++)
        out[i] = nk_mcp_sessions_refused(engine, (enum nk_mcp_refused)i);
    pthread_mutex_unlock(&engine_mu);
    return ok;
}

static struct nk_mcp *get_engine(void)
{
    struct nk_error err;
    struct nk_mcp *m;

    pthread_mutex_lock(&engine_mu);
    if (engine == NULL && nk_mcp_new(NULL, &engine, &err) != NK_OK) /* not configured: defaults */
        nk_log(NK_LOG_ERROR, "mcp: %s", err.msg);
    m = engine;
    pthread_mutex_unlock(&engine_mu);
    return m;
}

/* One request in flight: what the engine's callbacks need. */
struct hreq {
    struct nk_http_req *req;
    struct nk_context *ctx;
    struct nk_upstream *up;    /* the client of the loop this request arrived on */
    struct nk_server *server;  /* borrowed; every loop's client, for a cancellation */
    const char *request_id;    /* borrowed from req; used only while dispatching */
    const struct nk_authz *az; /* the rules in force when the request arrived, or NULL */
    /* A denial an OAuth scope would fix: answered 403 with the step-up challenge. */
    char missing_scope[128];
    const char *delete_sid; /* DELETE: the session it ends (borrowed from req) */
};

static enum nk_rc http_call(void *ud, const struct nk_exposed *tool, json_t *args,
                            nk_mcp_done_fn done, void *done_ud, struct nk_error *err)
{
    struct hreq *h = ud;
    struct nk_mcp_access acc;

    nk_http_req_set_tag(
        h->req, nk_metrics_op_of(nk_metrics_global(), tool->adapter_ns, tool->name)); /* metrics */
    memset(&acc, 0, sizeof(acc));
    acc.authz = h->az;
    acc.who = nk_http_req_principal(h->req);
    acc.request_id = h->request_id;
    return nk_mcp_invoke_access(h->ctx, h->up, &acc, tool, args, done, done_ud, h->missing_scope,
                                err);
}

/* tools/list: only what the permission rules let this caller call. */
static bool http_visible(void *ud, const struct nk_exposed *tool)
{
    struct hreq *h = ud;

    return nk_authz_visible(h->az, nk_http_req_principal(h->req), NK_ADAPTER_MCP, tool);
}

/* Each further call of a batch takes a token of its own from the caller's rate bucket. */
static bool http_charge(void *ud, unsigned *retry_s)
{
    struct hreq *h = ud;

    return nk_http_req_charge(h->req, 1, retry_s);
}

/* The access line names the MCP method and tool. */
static void http_note(void *ud, const char *method, const char *tool)
{
    struct hreq *h = ud;

    nk_http_req_set_rpc(h->req, method, tool);
}

static void http_cancel(void *ud, uint64_t tag)
{
    struct hreq *h = ud;
    struct nk_server *server = h->server;
    size_t i, n = nk_server_n_upstreams(server);

    /* The call named may run on another loop than this notification's (each loop has its own
     * client, and a session's requests land on any loop): ask every client. Tags are unique
     * in the process, so the others ignore it. A cancel on this loop's client answers at once
     * and may free h: it is not read again. */
    for (i = 0; i < n; i++)
        nk_upstream_cancel(nk_server_upstream_at(server, i), tag);
}

/* The client closed the connection while its request waited (loop thread). */
static void http_closed(void *ud)
{
    struct nk_mcp *m = get_engine();

    if (m != NULL)
        nk_mcp_http_closed(m, ud);
}

/* One open server-to-client stream. The stream itself is touched on its loop thread only;
 * the fields under sse_mu are how other threads (a reload, DELETE on another loop, shutdown)
 * ask that thread to write or end. */
struct sse {
    struct sse *next;
    struct nk_loop *loop;
    struct nk_http_stream *st; /* loop thread only */
    char sid[NK_MCP_SESSION_ID_MAX];
    /* under sse_mu: */
    unsigned notes; /* list_changed notifications to write */
    bool end;       /* asked to end */
    bool posted;    /* call queued on the loop */
    bool dead;      /* ended or gone: freed once no call is queued */
    struct nk_loop_call call;
};

static pthread_mutex_t sse_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sse *sse_list;
static size_t sse_n;
static bool sse_closing; /* shutting down: no new stream */

static void sse_run(void *ud);

/* Under sse_mu: have e's loop look at it. */
static void sse_post(struct sse *e)
{
    if (e->posted || e->dead)
        return;
    e->call.fn = sse_run;
    e->call.ud = e;
    e->posted = nk_loop_post(e->loop, &e->call);
}

/* Under sse_mu. */
static void sse_unlink_free(struct sse *e)
{
    struct sse **pp;

    for (pp = &sse_list; *pp != NULL; pp = &(*pp)->next)
        if (*pp == e) {
            *pp = e->next;
            sse_n--;
            break;
        }
    free(e);
}

/* e has no stream any more: freed now, or by its queued call. */
static void sse_bury(struct sse *e)
{
    pthread_mutex_lock(&sse_mu);
    e->dead = true;
    if (!e->posted)
        sse_unlink_free(e);
    pthread_mutex_unlock(&sse_mu);
}

static void sse_gone(void *ud)
{
    struct sse *e = ud;

    nk_http_stream_end(e->st, false);
    e->st = NULL;
    sse_bury(e);
}

static void sse_drained(void *ud)
{
    (void)ud; /* a client that lets 64 KiB of notifications pile up is cut instead */
}

static const struct nk_http_stream_ops sse_ops = {sse_drained, sse_gone};

/* On e's loop: write what is owed, end when asked. */
static void sse_run(void *ud)
{
    static const char note[] = "event: message\ndata: "
                               "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/"
                               "list_changed\"}\n\n";
    struct sse *e = ud;
    unsigned notes;
    bool end, ok = true;

    pthread_mutex_lock(&sse_mu);
    e->posted = false;
    if (e->dead) {
        sse_unlink_free(e);
        pthread_mutex_unlock(&sse_mu);
        return;
    }
    notes = e->notes;
    e->notes = 0;
    end = e->end;
    pthread_mutex_unlock(&sse_mu);
    while (ok && notes-- > 0)
        ok = nk_http_stream_write(e->st, note, sizeof(note) - 1);
    if (!ok || end) {
        nk_http_stream_end(e->st, ok);
        e->st = NULL;
        sse_bury(e);
    }
}

void nk_mcp_streams_tools_changed(void)
{
    struct sse *e;

    pthread_mutex_lock(&sse_mu);
    for (e = sse_list; e != NULL; e = e->next)
        if (!e->dead) {
            e->notes++;
            sse_post(e);
        }
    pthread_mutex_unlock(&sse_mu);
}

/* Under sse_mu: end the streams of session sid (all when sid is NULL). */
static void sse_end_locked(const char *sid)
{
    struct sse *e;

    for (e = sse_list; e != NULL; e = e->next)
        if (sid == NULL || strcmp(e->sid, sid) == 0) {
            e->end = true;
            sse_post(e);
        }
}

static void sse_end(const char *sid)
{
    pthread_mutex_lock(&sse_mu);
    sse_end_locked(sid);
    pthread_mutex_unlock(&sse_mu);
}

void nk_mcp_streams_end_all(void)
{
    pthread_mutex_lock(&sse_mu);
    sse_closing = true;
    pthread_mutex_unlock(&sse_mu);
    sse_end(NULL);
}

/* GET /mcp with a valid session (loop thread, inside the handler). */
static void sse_open(struct hreq *h, const char *sid)
{
    static const char full[] =
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,\"message\":\"Service "
        "Unavailable: no MCP stream can open now (at most 256 are open, or the server is "
        "shutting down); retry later\"}}";
    const char *headers[] = {"Cache-Control", "no-cache", "Mcp-Session-Id", sid, NULL};
    struct nk_loop *loop = nk_upstream_loop(h->up);
    struct sse *e = calloc(1, sizeof(*e));
    char *body;

    pthread_mutex_lock(&sse_mu);
    if (e == NULL || loop == NULL || sse_closing || sse_n >= NK_MCP_MAX_STREAMS) {
        pthread_mutex_unlock(&sse_mu);
        free(e);
        body = strdup(full);
        nk_http_respond(h->req, 503, body != NULL ? "application/json" : NULL, body,
                        body != NULL ? strlen(body) : 0, NULL);
        return;
    }
    /* One stream per session: the spec forbids sending a message on two streams, and a client
     * that opens a second one has given up on the first. */
    sse_end_locked(sid);
    e->loop = loop;
    snprintf(e->sid, sizeof(e->sid), "%s", sid);
    e->next = sse_list;
    sse_list = e;
    sse_n++;
    pthread_mutex_unlock(&sse_mu);
    /* Posted calls for e run on this thread, after this handler returns: e->st is set by then. */
    e->st = nk_http_respond_stream(h->req, 200, "text/event-stream", headers, &sse_ops, e);
    if (e->st == NULL)
        sse_bury(e);
}

static void http_reply(void *ud, struct nk_mcp_reply *r)
{
    struct hreq *h = ud;
    const char *headers[7];
    char challenge[200];
    unsigned status = r->status;
    size_t n = 0;

    if (r->session_id[0] != '\0') {
        headers[n++] = "Mcp-Session-Id";
        headers[n++] = r->session_id;
    }
    if (r->allow != NULL) {
        headers[n++] = "Allow";
        headers[n++] = r->allow;
    }
    if (h->missing_scope[0] != '\0') {
        /* MCP authorization: 403 with the step-up challenge when a scope would allow it. */
        snprintf(challenge, sizeof(challenge), "Bearer error=\"insufficient_scope\", scope=\"%s\"",
                 h->missing_scope);
        headers[n++] = "WWW-Authenticate";
        headers[n++] = challenge;
        status = 403;
    }
    headers[n] = NULL;
    if (r->stream) {
        sse_open(h, r->session_id);
        goto done;
    }
    if (h->delete_sid != NULL && status == 204)
        sse_end(h->delete_sid); /* the session ended: so do its streams */
    nk_http_respond(h->req, status, r->json ? "application/json" : NULL, r->body, r->len, headers);
done:
    r->body = NULL;
    if (h->ctx != NULL)
        nk_context_unref(h->ctx);
    free(h);
}

static const struct nk_adapter *find_adapter(const struct nk_optable *t, const char *ns)
{
    return nk_optable_find_listener(t, NK_ADAPTER_MCP, ns);
}

/* Where OAuth clients look for an authorization server before they send a token. */
static const char *const oauth_paths[] = {
    "/.well-known/oauth-protected-resource",   "/.well-known/oauth-protected-resource/mcp",
    "/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server/mcp",
    "/.well-known/openid-configuration",       "/.well-known/openid-configuration/mcp",
    "/mcp/.well-known/openid-configuration",   "/register",
};

bool nk_mcp_oauth_path(const char *path)
{
    size_t i;

    for (i = 0; i < sizeof(oauth_paths) / sizeof(oauth_paths[0]); i++)
        if (strcmp(path, oauth_paths[i]) == 0)
            return true;
    return false;
}

void nk_mcp_handle(struct nk_server *s, const char *ns, struct nk_http_req *req)
{
    struct nk_mcp *m = get_engine();
    struct nk_mcp_backend b;
    struct nk_mcp_http_in in;
    struct hreq *h;
    static const char oom[] =
        "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,\"message\":\"Internal "
        "error\"}}";
    char *body;

    if (nk_mcp_oauth_path(nk_http_req_path(req))) {
        /* No OAuth here: a 404 tells clients to stop before Dynamic Client Registration (a 401
         * made them try it and report "registration rejected"). */
        static const char no_oauth[] =
            "{\"error\":\"not_found\",\"error_description\":\"no OAuth authorization server is "
            "configured here: send 'Authorization: Bearer <token>' when the server asks for one\"}";

        body = strdup(no_oauth);
        nk_http_respond(req, 404, body != NULL ? "application/json" : NULL, body,
                        body != NULL ? strlen(body) : 0, NULL);
        return;
    }
    if (strcmp(nk_http_req_path(req), "/mcp") != 0) {
        static const char nf[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"
                                 "\"message\":\"Not Found: the MCP endpoint is /mcp\"}}";

        body = strdup(nf);
        nk_http_respond(req, 404, body != NULL ? "application/json" : NULL, body,
                        body != NULL ? strlen(body) : 0, NULL);
        return;
    }
    h = m != NULL ? calloc(1, sizeof(*h)) : NULL;
    if (h == NULL) {
        body = strdup(oom);
        nk_http_respond(req, 500, body != NULL ? "application/json" : NULL, body,
                        body != NULL ? strlen(body) : 0, NULL);
        return;
    }
    h->req = req;
    h->ctx = nk_server_context(s);
    h->up = nk_server_upstream(s);
    h->server = s;
    h->request_id = nk_http_req_id(req);
    memset(&b, 0, sizeof(b));
    b.adapter = h->ctx != NULL ? find_adapter(nk_context_table(h->ctx), ns) : NULL;
    b.call = http_call;
    b.call_ud = h;
    b.charge = http_charge;
    b.cancel = http_cancel;
    b.note = http_note;
    b.read_only = nk_server_policy(s)->read_only;
    h->az = nk_server_authz(s);
    if (h->az != NULL) {
        b.visible = http_visible;
        b.private_list = true;
    }
    b.max_batch = nk_server_policy(s)->mcp_max_batch;
    memset(&in, 0, sizeof(in));
    in.method = nk_http_req_method(req);
    in.host = nk_http_req_header(req, "Host");
    in.origin = nk_http_req_header(req, "Origin");
    in.session_id = nk_http_req_header(req, "Mcp-Session-Id");
    in.protocol_version = nk_http_req_header(req, "MCP-Protocol-Version");
    in.mcp_method = nk_http_req_header(req, "Mcp-Method");
    in.mcp_name = nk_http_req_header(req, "Mcp-Name");
    in.accept = nk_http_req_header(req, "Accept");
    in.caller = nk_http_req_caller(req);
    if (strcmp(in.method, "DELETE") == 0)
        h->delete_sid = in.session_id;
    in.body = nk_http_req_body(req, &in.body_len);
    if (strcmp(in.method, "POST") == 0)
        nk_http_req_on_close(req, http_closed, h); /* stateless era: a closed stream cancels */
    nk_mcp_http(m, &b, &in, http_reply, h);
}
