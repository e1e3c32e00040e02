/* SPDX-License-Identifier: Apache-2.0 */
/* ops.c: the operations listener (/healthz, /readyz, /metrics) on its own httpd. /readyz says
 * whether this replica can serve (a table loaded, not shutting down); whether the upstreams
 * answer is detail of /healthz and a gauge of /metrics: a probe of every consumed API's baseUri
 * through the shared upstream client, without credentials, run in the background when the last
 * verdict is older than ready_cache_ms, so probes never hammer the upstream and an upstream down
 * never takes every replica out of a Service at once. */
#include "naftikod/ops.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "naftikod/httpd.h"
#include "naftikod/loop.h"
#include "naftikod/invoke.h"
#include "naftikod/keyring.h"
#include "naftikod/mcp.h"
#include "naftikod/upstream.h"

struct nk_ops {
    struct nk_httpd *httpd;
    struct nk_loop *loop; /* the listener's own: probes answer while the adapters' is busy */
    struct nk_server *server;
    nk_ops_inflight_fn inflight;
    void *inflight_ud;
    long cache_ms;
    double start_time_s;
    char address[64];

    pthread_mutex_t mu; /* guards everything below */
    bool shutting_down;
    bool have_verdict;
    double checked_at; /* monotonic seconds */
    bool ready;
    char reason[400]; /* why not ready */
    bool probing;
    size_t pending;          /* probe answers still expected */
    char fail[400];          /* first failure of the probe in progress */
    struct nk_context *pctx; /* context the probe in progress reads */
};

struct probe {
    struct nk_ops *o;
    const char *ns; /* borrowed from o->pctx's table */
};

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool nk_ops_parse_listen(const char *v, char *addr, size_t cap, unsigned *port, bool *off)
{
    const char *host, *digits, *p;
    size_t alen;
    unsigned long n = 0;

    *off = false;
    if (strcmp(v, "off") == 0) {
        *off = true;
        return true;
    }
    if (!nk_split_listen(v, &host, &alen, &digits))
        return false;
    if (digits[0] == '\0' || strlen(digits) > 5)
        return false;
    for (p = digits; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        n = n * 10 + (unsigned long)(*p - '0');
    }
    if (n > 65535 || alen >= cap)
        return false;
    if (alen == 0) {
        snprintf(addr, cap, "127.0.0.1");
    } else {
        memcpy(addr, host, alen);
        addr[alen] = '\0';
    }
    *port = (unsigned)n;
    return true;
}

static void respond_text(struct nk_http_req *req, unsigned status, const char *ctype,
                         const char *text)
{
    char *body = strdup(text);

    nk_http_respond(req, status, body != NULL ? ctype : NULL, body, body != NULL ? strlen(body) : 0,
                    NULL);
}

/* Answer one /readyz from a verdict. Called without o->mu. */
static void answer_ready(struct nk_http_req *req, bool ready, const char *reason)
{
    json_t *j = ready ? json_pack("{s:s}", "status", "ready")
                      : json_pack("{s:s,s:s}", "status", "not ready", "reason", reason);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    if (text == NULL) {
        respond_text(req, ready ? 200 : 503, "application/json",
                     ready ? "{\"status\":\"ready\"}" : "{\"status\":\"not ready\"}");
        return;
    }
    nk_http_respond(req, ready ? 200 : 503, "application/json", text, strlen(text), NULL);
}

/* One probe answer arrived (fail: why it failed, or NULL). The last one settles the verdict. */
static void probe_settle(struct nk_ops *o, const char *fail)
{
    struct nk_context *ctx = NULL;

    pthread_mutex_lock(&o->mu);
    if (fail != NULL && o->fail[0] == '\0')
        snprintf(o->fail, sizeof(o->fail), "%s", fail);
    if (--o->pending > 0) {
        pthread_mutex_unlock(&o->mu);
        return;
    }
    o->ready = o->fail[0] == '\0';
    snprintf(o->reason, sizeof(o->reason), "%s", o->fail);
    o->have_verdict = true;
    o->checked_at = mono_s();
    o->probing = false;
    ctx = o->pctx;
    o->pctx = NULL;
    pthread_mutex_unlock(&o->mu);
    if (ctx != NULL)
        nk_context_unref(ctx);
}

static void probe_done(void *ud, struct nk_upstream_response *resp)
{
    struct probe *p = ud;
    char why[400];

    /* Any HTTP answer (even 401 or 500) proves the upstream is reachable. */
    if (resp->rc == NK_OK) {
        probe_settle(p->o, NULL);
    } else {
        snprintf(why, sizeof(why), "upstream of consumer '%s' unreachable: %s", p->ns,
                 resp->error[0] != '\0' ? resp->error : nk_rc_str(resp->rc));
        probe_settle(p->o, why);
    }
    free(p);
}

/* Probe every consumer of ctx (o->pctx). Called without o->mu, after pending was set to
 * n_consumers + 1 (the +1 is settled by the caller once every probe is submitted). */
static void probe_submit_all(struct nk_ops *o, struct nk_context *ctx)
{
    const struct nk_optable *t = nk_context_table(ctx);
    struct nk_upstream *up = nk_server_upstream(o->server);
    struct nk_upstream_request rq;
    struct probe *p;
    const char *base;
    char why[400];
    size_t i;

    for (i = 0; i < t->n_consumers; i++) {
        memset(&rq, 0, sizeof(rq));
        base = nk_context_base_uri(ctx, i);
        p = malloc(sizeof(*p));
        rq.method = strdup("GET");
        rq.url = base != NULL ? strdup(base) : NULL;
        if (p == NULL || rq.method == NULL || rq.url == NULL) {
            free(p);
            nk_upstream_request_cleanup(&rq);
            probe_settle(o, "out of memory while probing the upstream");
            continue;
        }
        p->o = o;
        p->ns = t->consumers[i].ns;
        /* No credential and no header at all: the probe only asks for any HTTP answer. */
        if (nk_upstream_submit(up, &rq, probe_done, p) != NK_OK) {
            snprintf(why, sizeof(why), "cannot probe the upstream of consumer '%s'",
                     t->consumers[i].ns);
            free(p);
            probe_settle(o, why);
        }
    }
}

/* Start a probe in the background unless one runs or the last verdict is fresh. */
static void maybe_probe(struct nk_ops *o)
{
    struct nk_context *ctx;

    pthread_mutex_lock(&o->mu);
    if (o->probing || o->shutting_down ||
        (o->have_verdict && (mono_s() - o->checked_at) * 1000.0 < (double)o->cache_ms)) {
        pthread_mutex_unlock(&o->mu);
        return;
    }
    ctx = nk_server_context(o->server);
    if (ctx == NULL) {
        pthread_mutex_unlock(&o->mu);
        return;
    }
    o->probing = true;
    o->fail[0] = '\0';
    o->pctx = ctx;
    o->pending = nk_context_table(ctx)->n_consumers + 1;
    pthread_mutex_unlock(&o->mu);
    probe_submit_all(o, ctx);
    probe_settle(o, NULL); /* the +1: nothing settles before every probe was submitted */
}

/* The fingerprint of the table in force into fp ("" without one). */
static void capability_of(struct nk_ops *o, char fp[17])
{
    struct nk_context *ctx = nk_server_context(o->server);

    fp[0] = '\0';
    if (ctx != NULL) {
        memcpy(fp, nk_context_table(ctx)->fingerprint, 17);
        nk_context_unref(ctx);
    }
}

/* Ready: this replica can serve (the listeners are up before this one starts, the session
 * keys were checked at start, a table is loaded) and is not shutting down. The upstream is not
 * asked: with it down every replica would leave the Service at once, though tools/list and
 * most answers do not need it. */
static void handle_ready(struct nk_ops *o, struct nk_http_req *req)
{
    struct nk_context *ctx;
    bool down;

    pthread_mutex_lock(&o->mu);
    down = o->shutting_down;
    pthread_mutex_unlock(&o->mu);
    if (down) {
        answer_ready(req, false, "shutting down");
        return;
    }
    ctx = nk_server_context(o->server);
    if (ctx == NULL) {
        answer_ready(req, false, "no capability table loaded");
        return;
    }
    nk_context_unref(ctx);
    answer_ready(req, true, NULL);
}

/* Liveness, always 200 at once, with detail: the table's fingerprint, the last upstream
 * verdict (a probe starts in the background when it is stale), shutting down or not. */
static void handle_health(struct nk_ops *o, struct nk_http_req *req)
{
    json_t *j, *up;
    char fp[17], *text;

    maybe_probe(o);
    capability_of(o, fp);
    pthread_mutex_lock(&o->mu);
    if (!o->have_verdict)
        up = json_pack("{s:n,s:s}", "reachable", "reason", "not probed yet");
    else if (o->ready)
        up = json_pack("{s:b,s:I}", "reachable", 1, "checked_ms_ago",
                       (json_int_t)((mono_s() - o->checked_at) * 1000.0));
    else
        up = json_pack("{s:b,s:s,s:I}", "reachable", 0, "reason", o->reason, "checked_ms_ago",
                       (json_int_t)((mono_s() - o->checked_at) * 1000.0));
    j = json_pack("{s:s,s:s,s:b,s:o*}", "status", "ok", "capability", fp, "shutting_down",
                  o->shutting_down, "upstream", up);
    pthread_mutex_unlock(&o->mu);
    text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text == NULL) {
        respond_text(req, 200, "application/json", "{\"status\":\"ok\"}");
        return;
    }
    nk_http_respond(req, 200, "application/json", text, strlen(text), NULL);
}

static void handle_metrics(struct nk_ops *o, struct nk_http_req *req)
{
    struct nk_metrics_gauges g;
    char cap[17], fps[NK_KEYRING_MAX][17];
    char *text;
    size_t len = 0, i;

    memset(&g, 0, sizeof(g));
    if (o->inflight != NULL) {
        g.inflight[NK_METRICS_REST] = (double)o->inflight(o->inflight_ud, NK_METRICS_REST);
        g.inflight[NK_METRICS_MCP] = (double)o->inflight(o->inflight_ud, NK_METRICS_MCP);
    }
    if (o->server != NULL)
        for (i = 0; i < nk_server_n_upstreams(o->server); i++)
            g.upstream_waiting += (double)nk_upstream_waiting(nk_server_upstream_at(o->server, i));
    g.start_time_s = o->start_time_s;
    g.resident_bytes = nk_metrics_process_rss();
    g.version = NK_VERSION;
    maybe_probe(o);
    capability_of(o, cap);
    g.capability = cap[0] != '\0' ? cap : NULL;
    g.n_key_fps = nk_mcp_session_key_fingerprints(fps, NK_KEYRING_MAX);
    if (g.n_key_fps > NK_KEYRING_MAX)
        g.n_key_fps = NK_KEYRING_MAX;
    g.key_fps = (const char(*)[17])fps;
    g.have_refused = nk_mcp_sessions_refused_all(g.sessions_refused);
    pthread_mutex_lock(&o->mu);
    g.upstream_reachable = o->have_verdict ? (o->ready ? 1 : 0) : -1;
    pthread_mutex_unlock(&o->mu);
    text = nk_metrics_render(nk_metrics_global(), &g, &len);
    if (text == NULL) {
        respond_text(req, 500, "text/plain; charset=utf-8", "out of memory\n");
        return;
    }
    nk_http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len, NULL);
}

static void on_request(void *ud, struct nk_http_req *req)
{
    struct nk_ops *o = ud;
    const char *m = nk_http_req_method(req), *path = nk_http_req_path(req);
    static const char *const allow[] = {"Allow", "GET, HEAD", NULL};
    char *body;

    if (strcmp(path, "/healthz") != 0 && strcmp(path, "/readyz") != 0 &&
        strcmp(path, "/metrics") != 0) {
        respond_text(req, 404, "application/json",
                     "{\"error\":\"not found: this listener serves /healthz, /readyz and "
                     "/metrics\"}");
        return;
    }
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        body = strdup("{\"error\":\"method not allowed: use GET or HEAD\"}");
        nk_http_respond(req, 405, body != NULL ? "application/json" : NULL, body,
                        body != NULL ? strlen(body) : 0, allow);
        return;
    }
    if (strcmp(path, "/healthz") == 0)
        handle_health(o, req);
    else if (strcmp(path, "/readyz") == 0)
        handle_ready(o, req);
    else
        handle_metrics(o, req);
}

enum nk_rc nk_ops_start(const struct nk_ops_options *opts, struct nk_ops **out,
                        struct nk_error *err)
{
    struct nk_httpd_options ho;
    struct nk_ops *o;
    unsigned port = 0;
    bool off = false;
    char addr[64];
    enum nk_rc rc;

    *out = NULL;
    if (!nk_ops_parse_listen(opts->listen != NULL ? opts->listen : NK_OPS_DEFAULT_LISTEN, addr,
                             sizeof(addr), &port, &off)) {
        nk_error_set(err, "expected ADDR:PORT, [IPV6]:PORT, :PORT or off, got '%s'", opts->listen);
        return NK_ERR_INVALID;
    }
    if (off)
        return NK_OK;
    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    pthread_mutex_init(&o->mu, NULL);
    o->server = opts->server;
    o->inflight = opts->inflight;
    o->inflight_ud = opts->inflight_ud;
    o->cache_ms = opts->ready_cache_ms;
    o->start_time_s = nk_metrics_process_start();
    snprintf(o->address, sizeof(o->address), "%s", addr);
    memset(&ho, 0, sizeof(ho));
    ho.address = o->address;
    ho.port = port;
    ho.max_body = 4096;
    ho.max_connections =
        opts->max_connections != 0 ? opts->max_connections : NK_OPS_DEFAULT_MAX_CONNECTIONS;
    ho.max_per_client = NK_OPS_MAX_PER_CLIENT;
    ho.request_timeout_s = NK_OPS_REQUEST_TIMEOUT_S;
    ho.conn_timeout_s = NK_OPS_IDLE_TIMEOUT_S;
    rc = nk_loop_new(&o->loop, err);
    if (rc == NK_OK)
        rc = nk_loop_start(o->loop, err);
    if (rc == NK_OK) {
        ho.loop = o->loop;
        rc = nk_httpd_start(&ho, on_request, o, &o->httpd, err);
    }
    if (rc != NK_OK) {
        nk_loop_free(o->loop);
        pthread_mutex_destroy(&o->mu);
        free(o);
        return rc;
    }
    *out = o;
    maybe_probe(o); /* the first verdict, for /healthz and /metrics */
    return NK_OK;
}

unsigned nk_ops_port(const struct nk_ops *o)
{
    return nk_httpd_port(o->httpd);
}

const char *nk_ops_address(const struct nk_ops *o)
{
    return o->address;
}

void nk_ops_shutting_down(struct nk_ops *o)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->shutting_down = true;
    pthread_mutex_unlock(&o->mu);
}

void nk_ops_stop(struct nk_ops *o)
{
    if (o == NULL)
        return;
    nk_httpd_stop(o->httpd); /* answers anything still waiting */
    nk_loop_free(o->loop);
    if (o->pctx != NULL)
        nk_context_unref(o->pctx);
    pthread_mutex_destroy(&o->mu);
    free(o);
}
