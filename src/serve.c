/* SPDX-License-Identifier: Apache-2.0 */
/* serve.c: `naftikod serve`: start-up order, one listener per adapter, signals, reload, drain
 * (options: config.c; the state the adapters share: server.c). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "naftikod/audit.h"
#include "naftikod/authz.h"
#include "naftikod/cmd.h"
#include "naftikod/common.h"
#include "naftikod/config.h"
#include "naftikod/httpd.h"
#include "naftikod/inbound.h"
#include "naftikod/invoke.h"
#include "naftikod/keyring.h"
#include "naftikod/log.h"
#include "naftikod/loop.h"
#include "naftikod/mcp.h"
#include "naftikod/mcp_core.h"
#include "naftikod/jose.h"
#include "naftikod/metrics.h"
#include "naftikod/oauth.h"
#include "naftikod/ops.h"
#include "naftikod/optable.h"
#include "naftikod/problem.h"
#include "naftikod/proxies.h"
#include "naftikod/ratelimit.h"
#include "naftikod/rest.h"
#include "naftikod/sdnotify.h"
#include "naftikod/secret.h"
#include "naftikod/server.h"
#include "naftikod/spec.h"
#include "naftikod/upstream.h"

/* ---- logging ------------------------------------------------------------------------------ */

static void logline(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One line an event on stderr (log.c: time, level, message in the --log-format). */
static void logline(const char *level, const char *fmt, ...)
{
    enum nk_log_level l = NK_LOG_INFO;
    va_list ap;

    nk_log_parse_level(level, &l);
    va_start(ap, fmt);
    nk_logv(l, fmt, ap);
    va_end(ap);
}

/* Copy s into out with anything not printable ASCII shown as '?' (paths are logged raw). */
static void printable(const char *s, char *out, size_t cap)
{
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < cap; i++)
        out[i] = (s[i] > 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
}

/* The access line: "access" level (counted as info) in text, msg "access" with fields in logfmt
 * and JSON. */
static void access_line(void *ud, const struct nk_http_access *a)
{
    char path[512], method[32], rpc[64], tool[128], text[1200];
    struct nk_log_field f[10];
    size_t nf = 6;

    (void)ud;
    if (!nk_log_enabled(NK_LOG_INFO))
        return;
    printable(a->path, path, sizeof(path));
    printable(a->method, method, sizeof(method));
    printable(a->rpc_method != NULL ? a->rpc_method : "", rpc, sizeof(rpc));
    printable(a->rpc_tool != NULL ? a->rpc_tool : "", tool, sizeof(tool));
    if (nk_log_format() == NK_LOG_TEXT) {
        snprintf(text, sizeof(text), "%s %s %u %.1fms id=%s client=%s%s%s%s%s%s%s%s%s", method,
                 path, a->status, a->seconds * 1000.0, a->request_id, a->client,
                 a->peer != NULL ? " proxy=" : "", a->peer != NULL ? a->peer : "",
                 a->caller != NULL && a->caller[0] != '\0' ? " caller=" : "",
                 a->caller != NULL ? a->caller : "", rpc[0] != '\0' ? " mcp_method=" : "", rpc,
                 tool[0] != '\0' ? " tool=" : "", tool);
        nk_log_event(NK_LOG_INFO, "access", text, NULL, 0);
        return;
    }
    memset(f, 0, sizeof(f));
    f[0].key = "method";
    f[0].str = method;
    f[1].key = "path";
    f[1].str = path;
    f[2].key = "status";
    f[2].num = a->status;
    f[3].key = "duration_ms";
    f[3].num = a->seconds * 1000.0;
    f[3].decimals = 1;
    f[4].key = "request_id";
    f[4].str = a->request_id;
    f[5].key = "client";
    f[5].str = a->client;
    if (a->peer != NULL) {
        f[nf].key = "proxy";
        f[nf++].str = a->peer;
    }
    if (a->caller != NULL && a->caller[0] != '\0') {
        f[nf].key = "caller";
        f[nf++].str = a->caller;
    }
    if (rpc[0] != '\0') {
        f[nf].key = "mcp_method";
        f[nf++].str = rpc;
    }
    if (tool[0] != '\0') {
        f[nf].key = "tool";
        f[nf++].str = tool;
    }
    nk_log_event(NK_LOG_INFO, NULL, "access", f, nf);
}

/* Apply --log-format / --log-level (validated when read). */
static void configure_log(const char *format, const char *level)
{
    enum nk_log_format f = NK_LOG_TEXT;
    enum nk_log_level l = NK_LOG_INFO;

    nk_log_parse_format(format, &f);
    nk_log_parse_level(level, &l);
    nk_log_configure(f, l);
}

/* Errors that stop start-up: "naftikod serve: ..." on stderr, or an error log line once a
 * --log-format other than text is in force (one wording with the option errors). */
#define report_error(...) nk_config_error(NK_CONFIG_SERVE, __VA_ARGS__)

static bool is_loopback(const char *addr)
{
    return strncmp(addr, "127.", 4) == 0 || strcmp(addr, "::1") == 0 ||
           strcasecmp(addr, "localhost") == 0;
}

/* Log the session keys in force by fingerprint (never a byte of a key). */
static void log_keys(const char *what, const struct nk_keyring *ring, const char *path)
{
    char list[NK_KEYRING_MAX * 18 + 1];
    size_t i, n = 0;

    list[0] = '\0';
    for (i = 0; i < ring->n; i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", i > 0 ? "," : "",
                              ring->fingerprint[i]);
    logline("info",
            "%smcp: %zu session key(s) from %s: signing with %s, accepting %s (fingerprints)", what,
            ring->n, path, ring->fingerprint[0], list);
}

/* The MCP engine's settings, read at start: the session key ring (a secret: checked here so a
 * missing or placeholder key stops the start, not the first MCP request) and the extra allowed
 * host names. */
static bool configure_mcp(const struct nk_config *cfg)
{
    struct nk_mcp_options mo;
    struct nk_keyring ring;
    const char *hosts[64];
    char *hosts_copy = NULL, why[600];
    struct nk_error err;
    bool ok = false, have_file;

    memset(&mo, 0, sizeof(mo));
    memset(&ring, 0, sizeof(ring));
    mo.page_size = (size_t)cfg->mcp_page_size;
    mo.no_delete = cfg->replicas;
    mo.tools_ttl_ms = cfg->mcp_tools_ttl_ms;
    memset(&err, 0, sizeof(err));
    have_file = cfg->mcp_session_key_file != NULL && cfg->mcp_session_key_file[0] != '\0';
    if (cfg->replicas && !have_file) {
        report_error("--replicas needs --mcp-session-key-file (NAFTIKOD_MCP_SESSION_KEY_FILE): "
                     "every replica must verify the session ids the others sign");
        goto out;
    }
    if (have_file) {
        if (nk_keyring_load(cfg->mcp_session_key_file, &ring, why, sizeof(why)) != NK_OK) {
            report_error("the MCP session key: %s", why);
            goto out;
        }
        mo.session_keys = &ring;
    }
    if (cfg->mcp_allowed_hosts != NULL && cfg->mcp_allowed_hosts[0] != '\0') {
        enum nk_rc rc = nk_config_split_list(cfg->mcp_allowed_hosts, &hosts_copy, hosts,
                                             sizeof(hosts) / sizeof(hosts[0]), &mo.n_allowed_hosts);
        if (rc != NK_OK) {
            report_error(rc == NK_ERR_TOO_LARGE ? "--mcp-allowed-hosts names more than 64 hosts"
                                                : "out of memory");
            goto out;
        }
        mo.allowed_hosts = hosts;
    }
    if (nk_mcp_configure(&mo, &err) != NK_OK) {
        report_error("mcp: %s", err.msg);
        goto out;
    }
    if (have_file)
        log_keys("", &ring, cfg->mcp_session_key_file);
    if (cfg->replicas)
        logline("info", "replicas: DELETE /mcp answers 405; sessions end when they expire");
    ok = true;
out:
    nk_keyring_wipe(&ring);
    free(hosts_copy);
    return ok;
}

/* SIGHUP: read the session key file again; a bad file keeps the keys in force. */
static void reload_keys(const struct nk_config *cfg)
{
    struct nk_keyring ring;
    char why[600];

    if (cfg->mcp_session_key_file == NULL || cfg->mcp_session_key_file[0] == '\0')
        return;
    if (nk_keyring_load(cfg->mcp_session_key_file, &ring, why, sizeof(why)) != NK_OK) {
        logline("error", "reload: the MCP session key: %s; the keys in force stay", why);
        return;
    }
    if (nk_mcp_set_session_keys(&ring))
        log_keys("reload: ", &ring, cfg->mcp_session_key_file);
    nk_keyring_wipe(&ring);
}

/* ---- listeners ---------------------------------------------------------------------------- */

struct listener {
    struct nk_server *server;
    enum nk_adapter_type type;
    char *ns; /* the listener's key in the table ("ADDR PORT", nk_optable_find_listener) */
    struct nk_httpd *httpd;
    unsigned port;
    char *address;
    unsigned loop_idx; /* which event loop serves this instance of the adapter's listener */
    bool count_loop;   /* several loops: count its answers in naftikod_loop_requests_total */
    /* The adapter's rate buckets and per-client connection counts, shared by its instances:
     * the first instance's listener owns them (NULL: no such limit, one loop, or not first) */
    struct nk_rate *rate;
    struct nk_httpd_client_conns *client_conns;
    /* The listener's OAuth resource server (the document's oauth2 authentication or the
     * --rest-oauth-* / --mcp-oauth-* options), shared by its instances; NULL: none. Owned by
     * nk_cmd_serve's oauths[]. */
    struct nk_oauth *oauth;
};

/* 401 with the challenge (NULL: none); REST gets a problem document, MCP a plain JSON body (the
 * MCP authorization rules answer at the HTTP layer, not with a JSON-RPC error). */
static void unauthorized_with(struct nk_http_req *req, bool rest, const char *why,
                              const char *challenge)
{
    const char *const hdrs[] = {"WWW-Authenticate", challenge, NULL};
    json_t *j = NULL;
    char *body;

    if (rest) {
        body = nk_problem_new(401, NULL, why, NULL);
    } else {
        j = json_pack("{s:s,s:s}", "error", "unauthorized", "error_description", why);
        body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
    }
    nk_http_respond(req, 401,
                    body == NULL ? NULL
                    : rest       ? "application/problem+json"
                                 : "application/json",
                    body, body != NULL ? strlen(body) : 0, challenge != NULL ? hdrs : NULL);
}

/* 401 with a Bearer challenge. */
static void unauthorized(struct nk_http_req *req, bool rest, const char *why)
{
    unauthorized_with(req, rest, why, "Bearer realm=\"naftikod\"");
}

/* The value of query argument name, or NULL. */
static const char *query_value(const struct nk_http_req *req, const char *name)
{
    size_t i, n = nk_http_req_query_count(req);
    const char *k, *v;

    for (i = 0; i < n; i++) {
        nk_http_req_query_at(req, i, &k, &v);
        if (k != NULL && strcmp(k, name) == 0)
            return v;
    }
    return NULL;
}

static void permission_warning(void *ud, const char *file, unsigned line, const char *msg)
{
    logline("warning", "%s%s:%u: %s (a typo here denies silently)", (const char *)ud, file, line,
            msg);
}

/* The permissions' names that match nothing the table serves, as warnings. */
static void lint_permissions(const struct nk_authz *az, struct nk_server *server, const char *what)
{
    struct nk_context *ctx = nk_server_context(server);

    if (az != NULL && ctx != NULL)
        (void)nk_authz_lint(az, nk_context_table(ctx), permission_warning, (void *)what);
    if (ctx != NULL)
        nk_context_unref(ctx);
}

/* The document's own inbound `authentication` of the adapters on listener l (every adapter
 * on one listener declares the same one, nk_optable_group()), used when no --rest-auth /
 * --mcp-auth mode is set. A match makes the caller a document principal: for basic its user
 * name, else the adapter's namespace. */
static bool admit_document(struct listener *l, struct nk_http_req *req)
{
    struct nk_context *ctx = nk_server_context(l->server);
    const struct nk_adapter *lst =
        ctx != NULL ? nk_optable_find_listener(nk_context_table(ctx), l->type, l->ns) : NULL;
    const struct nk_adapter *a = lst != NULL && lst->n_members > 0 ? lst->members[0] : NULL;
    const char *authz = nk_http_req_header(req, "Authorization"), *key_value = NULL;
    struct nk_principal who = {.kind = NK_PRINCIPAL_DOCUMENT};
    const struct nk_doc_secret *s;
    bool rest = l->type == NK_ADAPTER_REST, ok = true;
    char why[300];

    if (a == NULL || a->auth.type == NK_AUTH_NONE)
        goto out; /* nothing declared (or the adapter is gone: the handler answers 404) */
    s = nk_context_doc_secret(ctx, a);
    if (a->auth.type == NK_AUTH_APIKEY)
        key_value = a->auth.placement == NK_PLACE_QUERY ? query_value(req, a->auth.key)
                                                        : nk_http_req_header(req, a->auth.key);
    if (nk_doc_check(&a->auth, s, authz, key_value)) {
        snprintf(who.name, sizeof(who.name), "%s",
                 a->auth.type == NK_AUTH_BASIC && s->user[0] != '\0' ? s->user : a->ns);
        nk_http_req_set_principal(req, &who);
        goto out;
    }
    ok = false;
    switch (a->auth.type) {
    case NK_AUTH_BASIC:
        unauthorized_with(req, rest,
                          authz == NULL ? "this adapter needs 'Authorization: Basic ...'"
                                        : "the user name or password is not valid here",
                          "Basic realm=\"naftikod\", charset=\"UTF-8\"");
        break;
    case NK_AUTH_APIKEY:
        /* An API key has no HTTP authentication scheme: no challenge, the problem names where
         * the key goes. */
        snprintf(why, sizeof(why), "this adapter needs its API key in the %s '%.100s'%s",
                 a->auth.placement == NK_PLACE_QUERY ? "query parameter" : "header", a->auth.key,
                 key_value != NULL ? ": the one sent is not valid here" : "");
        unauthorized_with(req, rest, why, NULL);
        break;
    case NK_AUTH_BEARER:
    default:
        unauthorized(req, rest,
                     authz == NULL ? "this adapter needs 'Authorization: Bearer <token>'"
                                   : "the bearer token is not valid here");
        break;
    }
out:
    if (ctx != NULL)
        nk_context_unref(ctx);
    return ok;
}

/* True for a missing Authorization header, an empty one, or one of blanks only. */
static bool blank(const char *s)
{
    if (s == NULL)
        return true;
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == '\0';
}

/* The listeners' admit hook: the inbound check, on the request head alone, so a caller without
 * a valid token (or, in passthrough mode, without a credential) never makes the daemon read or
 * hold a body. Runs on the event loop thread, where the token set is swapped on reload. */
static bool admit(void *ud, struct nk_http_req *req)
{
    struct listener *l = ud;
    const struct nk_inbound_policy *pol = nk_server_policy(l->server);
    enum nk_inbound_mode mode = l->type == NK_ADAPTER_REST ? pol->rest : pol->mcp;
    const char *authz = nk_http_req_header(req, "Authorization");
    struct nk_principal who = {.kind = NK_PRINCIPAL_TOKEN};

    /* With OAuth, its RFC 9728 metadata is public (on_request serves it); the check may wait
     * for the issuer's keys without holding the loop (nk_http_req_defer). */
    if (l->oauth != NULL && nk_oauth_metadata_path(l->oauth, nk_http_req_path(req)))
        return true;
    /* MCP OAuth discovery paths are admitted without a token: the adapter answers them 404
     * whatever the mode (this daemon is no authorization server; without OAuth a 401 sent
     * clients into Dynamic Client Registration). */
    if (l->type == NK_ADAPTER_MCP && nk_mcp_oauth_path(nk_http_req_path(req)))
        return true;
    if (l->oauth != NULL)
        return nk_oauth_admit(l->oauth, nk_server_upstream_at(l->server, l->loop_idx), req,
                              l->type == NK_ADAPTER_REST);
    if (mode == NK_INBOUND_TOKEN) {
        if (!nk_tokens_check(nk_server_tokens(l->server), authz, who.name)) {
            unauthorized(req, l->type == NK_ADAPTER_REST,
                         authz == NULL ? "this adapter needs 'Authorization: Bearer <token>'"
                                       : "the bearer token is not valid here");
            return false;
        }
        nk_http_req_set_principal(req, &who);
    } else if (mode == NK_INBOUND_PASSTHROUGH && blank(authz)) {
        unauthorized(req, true,
                     "this adapter forwards the caller's own credential to the upstream: send "
                     "an Authorization header");
        return false;
    } else if (mode == NK_INBOUND_NONE) {
        return admit_document(l, req);
    }
    return true;
}

/* The request was admitted (admit) and read whole. */
static void on_request(void *ud, struct nk_http_req *req)
{
    struct listener *l = ud;

    if (l->oauth != NULL && nk_oauth_metadata_path(l->oauth, nk_http_req_path(req)))
        nk_oauth_metadata(l->oauth, req);
    else if (l->type == NK_ADAPTER_REST)
        nk_rest_handle(l->server, l->ns, req);
    else
        nk_mcp_handle(l->server, l->ns, req);
}

static enum nk_rc write_port_file(const char *path, const struct listener *ls, size_t n,
                                  unsigned ops_port)
{
    char *tmp = NULL;
    FILE *f = NULL;
    enum nk_rc rc = NK_ERR_IO;
    size_t i;

    tmp = malloc(strlen(path) + 32);
    if (tmp == NULL)
        return NK_ERR_NOMEM;
    sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "w");
    if (f == NULL)
        goto out;
    for (i = 0; i < n; i++)
        if (ls[i].loop_idx == 0) /* the other loops' instances share its port */
            fprintf(f, "%s=%u\n", ls[i].type == NK_ADAPTER_REST ? "rest" : "mcp", ls[i].port);
    if (ops_port != 0)
        fprintf(f, "ops=%u\n", ops_port);
    if (fclose(f) != 0) {
        f = NULL;
        goto out;
    }
    f = NULL;
    if (rename(tmp, path) != 0)
        goto out;
    rc = NK_OK;
out:
    if (f != NULL)
        fclose(f);
    if (rc != NK_OK && tmp != NULL)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* ---- ops listener and metrics hooks (health, readiness, metrics) ---------------------------- */

/* The adapters' access hook: count the answer (operation id in the request tag), then log. */
static void access_counted(void *ud, const struct nk_http_access *a)
{
    const struct listener *l = ud;

    nk_metrics_count(nk_metrics_global(),
                     l->type == NK_ADAPTER_REST ? NK_METRICS_REST : NK_METRICS_MCP, a->tag,
                     a->status);
    if (l->count_loop)
        nk_metrics_loop_count(nk_metrics_global(), l->loop_idx);
    access_line(NULL, a);
}

struct ls_view {
    const struct listener *ls;
    const size_t *n;
};

static size_t inflight_of(void *ud, enum nk_metrics_adapter kind)
{
    const struct ls_view *v = ud;
    size_t i, n = 0;

    for (i = 0; i < *v->n; i++)
        if ((v->ls[i].type == NK_ADAPTER_REST) == (kind == NK_METRICS_REST))
            n += nk_httpd_pending(v->ls[i].httpd);
    return n;
}

/* A malformed --ops-listen is a usage error, found before anything is loaded. */
static bool ops_listen_valid(const struct nk_config *cfg)
{
    char addr[64];
    unsigned port;
    bool off;

    if (cfg->ops_listen == NULL ||
        nk_ops_parse_listen(cfg->ops_listen, addr, sizeof(addr), &port, &off))
        return true;
    report_error("--ops-listen (or NAFTIKOD_OPS_LISTEN): expected ADDR:PORT, "
                 "[IPV6]:PORT, :PORT or off, got '%s'",
                 cfg->ops_listen);
    return false;
}

static bool ops_off(const struct nk_config *cfg)
{
    char addr[64];
    unsigned port;
    bool off = false;

    return cfg->ops_listen != NULL &&
           nk_ops_parse_listen(cfg->ops_listen, addr, sizeof(addr), &port, &off) && off;
}

/* Descriptors the listeners' connections may not take: standard streams, the log, epoll and
 * wakeup descriptors, capability and token files read on reload, the listeners' reserve
 * descriptor (FD_RESERVE_FIXED), and the upstream client's connections (FD_RESERVE_UPSTREAM:
 * upstream.c caps them at 256 per host). */
#define FD_RESERVE_FIXED 64UL
#define FD_RESERVE_UPSTREAM 256UL

/* Raise the soft descriptor limit to the hard one (systemd's default soft limit is 1024) and
 * return the limit now in force. */
static unsigned long raise_nofile(void)
{
    struct rlimit rl;
    rlim_t before;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    before = rl.rlim_cur;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
            logline("info", "descriptor limit raised from %lu to its hard limit %lu",
                    (unsigned long)before, (unsigned long)rl.rlim_cur);
        else
            rl.rlim_cur = before;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > ULONG_MAX / 2 ? ULONG_MAX / 2
                                                                       : (unsigned long)rl.rlim_cur;
}

/* Make every listener's connections fit in nofile descriptors together: each of the
 * n_adapters adapter listeners may hold *adapter_max, the ops listener (unless off) *ops_max,
 * and the reserve stays free, so no accept() ever fails for want of a descriptor (libmicrohttpd
 * stops accepting at its limit instead). Logs once what was lowered and why. */
static void fit_connections(unsigned long nofile, size_t n_adapters, bool ops_on, long *adapter_max,
                            unsigned *ops_max)
{
    unsigned long reserve = FD_RESERVE_FIXED + FD_RESERVE_UPSTREAM;
    unsigned long budget, ops = 0, per;
    long asked = *adapter_max;

    if (reserve > nofile / 2)
        reserve = nofile / 2;
    budget = nofile - reserve;
    if (ops_on) {
        ops = NK_OPS_DEFAULT_MAX_CONNECTIONS;
        if (ops > budget / 4)
            ops = budget / 4 > 0 ? budget / 4 : 1;
    }
    per = n_adapters > 0 && budget > ops ? (budget - ops) / n_adapters : 1;
    if (per == 0)
        per = 1;
    *ops_max = (unsigned)ops;
    if ((unsigned long)asked <= per && ops == (ops_on ? NK_OPS_DEFAULT_MAX_CONNECTIONS : 0))
        return;
    if ((unsigned long)asked > per)
        *adapter_max = (long)per;
    logline("warning",
            "descriptor limit %lu: open connections lowered to %ld per adapter listener "
            "(--max-connections %ld) and %lu on the ops listener, so that %zu adapter "
            "listener(s) and the ops listener fit with %lu descriptors kept for upstream "
            "connections, logs and files; raise LimitNOFILE (ulimit -n) to allow more",
            nofile, *adapter_max, asked, ops, n_adapters, reserve);
}

/* Start the ops listener unless it is off. A bind failure is fatal when --ops-listen was given,
 * and only a warning for the default address (another instance may hold it). */
static bool start_ops(const struct nk_config *cfg, struct nk_server *server, struct ls_view *view,
                      unsigned max_connections, struct nk_ops **ops)
{
    struct nk_ops_options oo;
    struct nk_error err;

    memset(&oo, 0, sizeof(oo));
    memset(&err, 0, sizeof(err));
    oo.listen = cfg->ops_listen != NULL ? cfg->ops_listen : NK_OPS_DEFAULT_LISTEN;
    oo.ready_cache_ms = cfg->ready_cache_ms;
    oo.server = server;
    oo.inflight = inflight_of;
    oo.inflight_ud = view;
    oo.max_connections = max_connections;
    if (nk_ops_start(&oo, ops, &err) != NK_OK) {
        if (cfg->ops_listen == NULL) {
            logline("warning", "ops listener (health, metrics) not started on %s: %s",
                    NK_OPS_DEFAULT_LISTEN, err.msg);
            return true;
        }
        report_error("--ops-listen: %s", err.msg);
        return false;
    }
    if (*ops != NULL)
        logline("info", "ops listener on http://%s%s%s:%u (/healthz /readyz /metrics)",
                strchr(nk_ops_address(*ops), ':') ? "[" : "", nk_ops_address(*ops),
                strchr(nk_ops_address(*ops), ':') ? "]" : "", nk_ops_port(*ops));
    return true;
}

/* ---- end of ops listener and metrics hooks ------------------------------------------------- */

/* ---- reload (SIGHUP) ----------------------------------------------------------------------- */

/* Report diagnostics: at start-up in the text format as `naftikod check` prints them
 * (FILE:LINE:COLUMN: error: ...), otherwise one log line each, FILE:LINE:COLUMN first, prefixed
 * with what ("reload") when not NULL. */
static void log_diags(struct nk_diags *d, const char *what)
{
    size_t i;

    nk_diags_sort(d);
    if (what == NULL && nk_log_format() == NK_LOG_TEXT) {
        nk_diags_print(d, stderr);
        return;
    }
    for (i = 0; i < d->n; i++) {
        const struct nk_diag *g = &d->v[i];
        logline(g->sev == NK_SEV_ERROR ? "error" : "warning", "%s%s%s:%u:%u: %s: %s",
                what ? what : "", what ? ": " : "", g->file ? g->file : "<input>", g->line,
                g->column, g->sev == NK_SEV_ERROR ? "error" : "warning", g->msg);
    }
}

/* Warn about what a new table asks for that only a restart can give: listeners are bound once. */
static void warn_listener_changes(const struct nk_optable *old, const struct nk_optable *nt,
                                  const struct listener *ls, size_t n_ls)
{
    size_t i;

    (void)old;
    for (i = 0; i < n_ls; i++)
        if (ls[i].loop_idx == 0 && /* one warning per listener, not per loop */
            nk_optable_find_listener(nt, ls[i].type, ls[i].ns) == NULL)
            logline("warning",
                    "reload: no %s adapter is left on listener %s: it stays up and answers 404 "
                    "until a restart",
                    ls[i].type == NK_ADAPTER_REST ? "rest" : "mcp", ls[i].ns);
    for (i = 0; i < nt->n_listeners; i++) {
        const struct nk_adapter *l = &nt->listeners[i];
        size_t j;
        bool served = false;

        for (j = 0; j < n_ls && !served; j++)
            served = ls[j].type == l->type && strcmp(ls[j].ns, l->key) == 0;
        if (!served)
            logline("warning",
                    "reload: new %s listener %s (adapter '%s') is not served until a "
                    "restart",
                    l->type == NK_ADAPTER_REST ? "rest" : "mcp", l->key, l->members[0]->ns);
    }
}

/* The port options as nk_optable_group() takes them. */
static void group_options(const struct nk_config *cfg, struct nk_group_options *go)
{
    memset(go, 0, sizeof(*go));
    go->listen = cfg->listen;
    go->listen_given = cfg->listen_given;
    go->rest_port = cfg->rest_port;
    go->mcp_port = cfg->mcp_port;
    go->rest_listen_given = cfg->rest_listen.given;
    go->rest_listen_addr = cfg->rest_listen.addr;
    go->rest_listen_port = cfg->rest_listen.port;
    go->mcp_listen_given = cfg->mcp_listen.given;
    go->mcp_listen_addr = cfg->mcp_listen.addr;
    go->mcp_listen_port = cfg->mcp_listen.port;
    go->tool_prefix =
        cfg->mcp_tool_prefix != NULL && strcmp(cfg->mcp_tool_prefix, "namespace") == 0;
}

/* Load the capabilities and group their adapters into listeners under cfg's port options. */
static enum nk_rc load_grouped(const struct nk_config *cfg, const char *const *files,
                               size_t n_files, struct nk_diags *diags, struct nk_optable **out)
{
    struct nk_group_options go;
    struct nk_optable *t = NULL;
    enum nk_rc rc = nk_optable_load(files, n_files, NULL, diags, &t);

    if (rc != NK_OK)
        return rc;
    group_options(cfg, &go);
    rc = nk_optable_group(t, &go, diags);
    if (rc != NK_OK) {
        nk_optable_unref(t);
        return rc;
    }
    *out = t;
    return NK_OK;
}

/* Load files and resolve binds/variables into a new context, off to the side; on success make it
 * the one in force (requests already running finish on the old one). On any error, log it and
 * keep serving the old context. Counted in naftikod_reloads_total either way. */
/* The document's oauth2 authentication of a listener's adapters, when the options leave
 * authentication to the document; NULL when it has none. */
static const struct nk_oauth_conf *doc_oauth(const struct nk_config *cfg,
                                             const struct nk_adapter *lst)
{
    const char *mode = lst->type == NK_ADAPTER_REST ? cfg->rest_auth : cfg->mcp_auth;
    size_t j;

    if (mode != NULL && strcmp(mode, "none") != 0)
        return NULL; /* the option wins */
    for (j = 0; j < lst->n_members; j++)
        if (lst->members[j]->oauth != NULL)
            return lst->members[j]->oauth;
    return NULL;
}

/* A listener's OAuth resource server is made at start-up: a reload that gives a served listener
 * oauth2 authentication, or takes it away, is refused (the previous table stays) rather than
 * leaving it checking tokens it should not, or none. */
static bool oauth_unchanged(const struct nk_config *cfg, const struct nk_optable *nt,
                            const struct listener *ls, size_t n_ls)
{
    size_t i, k;
    bool had, has;

    for (i = 0; i < nt->n_listeners; i++)
        for (k = 0; k < n_ls; k++) {
            const char *mode = ls[k].type == NK_ADAPTER_REST ? cfg->rest_auth : cfg->mcp_auth;

            if (ls[k].loop_idx != 0 || ls[k].type != nt->listeners[i].type ||
                strcmp(ls[k].ns, nt->listeners[i].key) != 0)
                continue;
            /* from the document: made at start-up when the option said none */
            had = ls[k].oauth != NULL && (mode == NULL || strcmp(mode, "none") == 0);
            has = doc_oauth(cfg, &nt->listeners[i]) != NULL;
            if (had != has) {
                logline("error",
                        "reload failed: the %s listener %s %s oauth2 authentication in the "
                        "document; OAuth settings apply at start-up: restart naftikod; still "
                        "serving the previous table",
                        ls[k].type == NK_ADAPTER_REST ? "rest" : "mcp", ls[k].ns,
                        had ? "loses" : "gains");
                return false;
            }
        }
    return true;
}

static bool reload_table(struct nk_server *server, const struct nk_config *cfg,
                         const char *const *files, size_t n_files, const struct nk_var *vars,
                         size_t n_vars, const struct listener *ls, size_t n_ls)
{
    struct nk_diags diags;
    struct nk_optable *nt = NULL;
    struct nk_context *nc = NULL, *old = NULL;
    bool ok = false;

    nk_diags_init(&diags);
    if (load_grouped(cfg, files, n_files, &diags, &nt) != NK_OK) {
        log_diags(&diags, "reload");
        logline("error",
                "reload failed: %zu error(s) in the capabilities; still serving the "
                "previous table",
                diags.n_errors);
        goto out;
    }
    log_diags(&diags, "reload");
    nk_diags_cleanup(&diags);
    nk_diags_init(&diags);
    if (nk_context_new(nt, vars, n_vars, &diags, &nc) != NK_OK) {
        log_diags(&diags, "reload");
        logline("error", "reload failed: cannot resolve variables and credentials; still "
                         "serving the previous table");
        goto out;
    }
    if (!oauth_unchanged(cfg, nt, ls, n_ls))
        goto out;
    old = nk_server_context(server);
    warn_listener_changes(nk_context_table(old), nt, ls, n_ls);
    nk_server_swap(server, nc);
    logline("info", "reload: new table in force (%zu file(s), %zu adapter(s))", n_files,
            nt->n_adapters);
    /* Other documents may list other tools: the MCP sessions' GET streams hear of it (the same
     * documents give the same fingerprint, and then nothing is sent). */
    if (strcmp(nk_context_table(old)->fingerprint, nt->fingerprint) != 0)
        nk_mcp_streams_tools_changed();
    ok = true;
out:
    nk_metrics_reload(ok);
    if (old != NULL)
        nk_context_unref(old);
    if (nc != NULL)
        nk_context_unref(nc);
    nk_optable_unref(nt);
    nk_diags_cleanup(&diags);
    return ok;
}

/* Posted to each loop after the token set changed: a check runs within one turn of its loop
 * (the admit hook), so once this ran on a loop no check there still reads the previous set. */
static void turn_done(void *arg)
{
    (void)arg;
}

/* SIGHUP: read every option source again (config file, environment, flags) and the caller
 * tokens file, then reload the capabilities with the new list and variables; the tokens are
 * swapped in only when all of that succeeded. Options other than --var and the log options
 * keep their running values (a warning names each changed one). */
static void reload(int argc, char **argv, const struct nk_config *running, struct nk_config *live,
                   bool *have_live, struct nk_server *server, const struct listener *ls,
                   size_t n_ls, struct nk_tokens **tokens, struct nk_authz **authz)
{
    struct nk_config next;
    struct nk_tokens *fresh = NULL;
    struct nk_authz *fresh_az = NULL;
    struct nk_error err;
    int r;

    /* logrotate moved the audit log: a new file, whatever else this reload does */
    memset(&err, 0, sizeof(err));
    if (nk_audit_reopen(&err) != NK_OK)
        logline("error", "reload: %s; still writing the audit trail to the old file", err.msg);

    r = nk_config_read(&next, NK_CONFIG_SERVE, true, argc, argv);
    if (r != 0) {
        logline("error", "reload failed: invalid options or config file; still serving the "
                         "previous table");
        nk_metrics_reload(false);
        nk_config_free(&next);
        return;
    }
    nk_config_warn_changes(running, &next);
    /* The caller tokens file is read again too; a reload applies all of it or none of it. */
    if (*tokens != NULL && nk_tokens_load(running->auth_tokens, &fresh, &err) != NK_OK) {
        logline("error", "reload failed: %s; still serving the previous table and caller tokens",
                err.msg);
        nk_metrics_reload(false);
        nk_config_free(&next);
        return;
    }
    /* The permissions too: the tokens, the permissions and the table change together or not at
     * all (a caller renamed in one and not the other would lose or gain rights). */
    if (*authz != NULL && nk_authz_load(running->permissions, &fresh_az, &err) != NK_OK) {
        logline("error",
                "reload failed: %s; still serving the previous table, caller tokens and "
                "permissions",
                err.msg);
        nk_metrics_reload(false);
        nk_tokens_free(fresh);
        nk_config_free(&next);
        return;
    }
    if (!reload_table(server, &next, next.files, next.n_files, next.vars, next.n_vars, ls, n_ls)) {
        nk_tokens_free(fresh);
        nk_authz_free(fresh_az);
        nk_config_free(&next);
        return;
    }
    if (fresh != NULL || fresh_az != NULL) {
        size_t i;

        if (fresh != NULL)
            nk_server_set_tokens(server, fresh);
        if (fresh_az != NULL)
            nk_server_set_authz(server, fresh_az);
        /* A check and a decision run within one turn of their loop (admit hook, adapter
         * handler): once each loop has finished a turn after the swap, the previous sets are
         * unread. */
        for (i = 0; i < nk_server_n_upstreams(server); i++)
            (void)nk_loop_run_sync(nk_upstream_loop(nk_server_upstream_at(server, i)), turn_done,
                                   NULL);
    }
    if (fresh_az != NULL) {
        nk_authz_free(*authz);
        *authz = fresh_az;
        lint_permissions(fresh_az, server, "reload: permissions: ");
        logline("info", "reload: permissions in force from %s (%zu caller(s), %zu grant(s))",
                running->permissions, nk_authz_n_callers(fresh_az), nk_authz_n_grants(fresh_az));
    }
    if (fresh != NULL) {
        nk_tokens_free(*tokens); /* the previous set: no check can be reading it now */
        *tokens = fresh;
        logline("info", "reload: %zu caller token(s) in force from %s", nk_tokens_count(fresh),
                running->auth_tokens);
    }
    configure_log(next.log_format, next.log_level);
    if (*have_live)
        nk_config_free(live);
    *live = next;
    *have_live = true;
}

/* Tell systemd (when $NOTIFY_SOCKET is set); a failure is logged, never fatal. */
static void notify(const char *state)
{
    int r = strcmp(state, "RELOADING=1") == 0 ? nk_sd_notify_reloading() : nk_sd_notify(state);

    if (r < 0)
        logline("warning", "cannot notify systemd (%s) via $NOTIFY_SOCKET: %s", state,
                strerror(errno));
}

/* Wait for one of sigs; with a watchdog period, send WATCHDOG=1 every half period meanwhile. */
static int wait_signal(const sigset_t *sigs, bool watchdog, uint64_t watchdog_usec)
{
    struct timespec half;
    int sig;

    if (!watchdog) {
        while (sigwait(sigs, &sig) != 0)
            ;
        return sig;
    }
    half.tv_sec = (time_t)(watchdog_usec / 2 / 1000000u);
    half.tv_nsec = (long)(watchdog_usec / 2 % 1000000u) * 1000L;
    for (;;) {
        sig = sigtimedwait(sigs, NULL, &half);
        if (sig > 0)
            return sig;
        if (errno == EAGAIN)
            notify("WATCHDOG=1");
    }
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The lame-duck period: delay_s seconds in which the listeners go on serving while balancers,
 * told by /readyz, take this replica out of their lists. A second SIGTERM or SIGINT ends it at
 * once; SIGHUP is ignored now. */
static void lame_duck(const sigset_t *sigs, long delay_s, bool watchdog, uint64_t watchdog_usec)
{
    double deadline = now_s() + (double)delay_s;
    double step_s = watchdog ? (double)watchdog_usec / 2e6 : 3600.0;
    struct timespec ts;
    double left;
    int sig;

    for (;;) {
        left = deadline - now_s();
        if (left <= 0)
            return;
        if (left > step_s)
            left = step_s;
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            logline("info", "%s again: lame duck cut short", sig == SIGINT ? "SIGINT" : "SIGTERM");
            return;
        }
        if (watchdog)
            notify("WATCHDOG=1");
    }
}

/* Wait (bounded by drain_ms) until no listener has a request in flight. */
static void drain(struct listener *ls, size_t n, long drain_ms, bool watchdog,
                  uint64_t watchdog_usec)
{
    double deadline = now_s() + (double)drain_ms / 1000.0;
    double next_ping = now_s() + (double)watchdog_usec / 2e6;
    struct timespec pause = {0, 10 * 1000 * 1000};
    size_t i, pending;

    for (;;) {
        pending = 0;
        for (i = 0; i < n; i++)
            pending += nk_httpd_pending(ls[i].httpd);
        if (pending == 0) {
            logline("info", "drained: no request in flight");
            return;
        }
        if (now_s() >= deadline) {
            logline("warning", "drain timeout: %zu request(s) still in flight are cut short",
                    pending);
            return;
        }
        if (watchdog && now_s() >= next_ping) { /* a long drain is not a hang */
            notify("WATCHDOG=1");
            next_ping = now_s() + (double)watchdog_usec / 2e6;
        }
        /* httpd offers no completion signal across listeners; poll at 10 ms. */
        nanosleep(&pause, NULL);
    }
}

/* Start one instance of adapter a's listener on loop into l (l->loop_idx set by the caller):
 * bind (port_given >= 0: that port, the one the first instance got), with SO_REUSEPORT when
 * n_loops > 1 so that every loop's instance listens on the same address and port. first: the
 * adapter's first instance, whose rate buckets and connection counts every instance shares. */
static bool start_listener(const struct nk_config *cfg, const struct nk_adapter *a,
                           struct nk_server *server, struct nk_loop *loop, size_t n_loops,
                           long port_given, const struct listener *first,
                           const struct nk_proxies *proxies, struct nk_oauth *oauth,
                           struct listener *l)
{
    const struct nk_inbound_policy *policy = nk_server_policy(server);
    struct nk_httpd_options ho;
    struct nk_error err;
    const char *kind = a->type == NK_ADAPTER_REST ? "rest" : "mcp";
    size_t j;

    memset(&ho, 0, sizeof(ho));
    memset(&err, 0, sizeof(err));
    /* a is a listener of the grouped table: its address and port already follow the options. */
    ho.address = a->address;
    ho.port = a->port;
    if (port_given >= 0)
        ho.port = (unsigned)port_given;
    ho.reuse_port = n_loops > 1;
    ho.max_body = (size_t)cfg->max_body;
    /* The adapter's connection budget is split over its loops' instances; a client's cap is
     * counted across them (first->client_conns). */
    ho.max_connections = (unsigned)(cfg->max_connections / (long)n_loops);
    if (ho.max_connections == 0)
        ho.max_connections = 1;
    ho.max_per_client = (unsigned)cfg->max_per_client;
    ho.max_header_bytes = (size_t)cfg->max_header_bytes;
    ho.conn_timeout_s = (unsigned)cfg->idle_timeout_s;
    ho.rate_per_s = (double)cfg->rate_limit;
    ho.rate_burst = (unsigned)cfg->rate_burst;
    ho.shared_rate = first->rate;
    ho.shared_client_conns = first->client_conns;
    ho.request_timeout_s = (unsigned)cfg->request_timeout_s;
    ho.trusted_proxies = proxies;
    ho.admit = admit;               /* inbound authentication, before the body */
    ho.access_log = access_counted; /* metrics, then access_line */
    ho.access_ud = l;
    ho.loop = loop;
    l->server = server;
    l->type = a->type;
    l->oauth = oauth;
    l->ns = strdup(a->key);
    l->address = strdup(ho.address);
    if (l->ns == NULL || l->address == NULL)
        return false;
    if ((a->type == NK_ADAPTER_REST ? policy->rest : policy->mcp) != NK_INBOUND_NONE &&
        a->members[0]->auth.type != NK_AUTH_NONE && l->loop_idx == 0)
        logline("warning",
                "%s adapter '%s': --%s-auth %s replaces the document's '%s' authentication "
                "(the option wins; see docs/security.md)",
                kind, a->members[0]->ns, kind,
                nk_inbound_mode_name(a->type == NK_ADAPTER_REST ? policy->rest : policy->mcp),
                nk_auth_type_name(a->members[0]->auth.type));
    if (!is_loopback(ho.address) && oauth == NULL &&
        (a->type == NK_ADAPTER_REST ? policy->rest : policy->mcp) == NK_INBOUND_NONE &&
        a->members[0]->auth.type == NK_AUTH_NONE) {
        if (!cfg->allow_remote) {
            report_error("refusing to serve %s adapter '%s' on non-loopback address %s "
                         "without inbound authentication: it acts with the upstream "
                         "credential. Add --%s-auth token --auth-tokens FILE (lines from "
                         "'naftikod hash-token NAME')%s, or pass --allow-remote to accept "
                         "the risk",
                         kind, a->ns, ho.address, kind,
                         a->type == NK_ADAPTER_REST ? " or --rest-auth passthrough" : "");
            return false;
        }
        if (l->loop_idx == 0)
            logline("warning",
                    "%s adapter '%s' listens on non-loopback address %s WITHOUT inbound "
                    "authentication (--allow-remote)",
                    kind, a->ns, ho.address);
    }
    if (nk_httpd_start(&ho, on_request, l, &l->httpd, &err) != NK_OK) {
        report_error("%s adapter '%s': %s", kind, a->ns, err.msg);
        return false;
    }
    l->port = nk_httpd_port(l->httpd);
    for (j = 0; l->loop_idx == 0 && j < a->n_members; j++)
        logline("info", "%s adapter '%s' listening on http://%s%s%s:%u%s", kind, a->members[j]->ns,
                strchr(ho.address, ':') ? "[" : "", ho.address, strchr(ho.address, ':') ? "]" : "",
                l->port, a->type == NK_ADAPTER_REST ? "/" : "/mcp");
    return true;
}

_Static_assert(NK_CONFIG_MAX_LOOPS <= NK_SERVER_MAX_UPSTREAMS &&
                   NK_CONFIG_MAX_LOOPS <= NK_METRICS_MAX_LOOPS,
               "every loop needs its upstream client in nk_server and its metrics counter");

/* ---- OAuth resource servers ---------------------------------------------------------------- */

/* The OAuth settings of the options for adapters of type type, into conf (strings borrowed from
 * cfg, scopes split into *copy and words). false (reported) when incomplete. */
static bool oauth_conf_from_options(const struct nk_config *cfg, enum nk_adapter_type type,
                                    struct nk_oauth_conf *conf, char **copy, char **words,
                                    size_t max_words)
{
    bool mcp = type == NK_ADAPTER_MCP;
    const char *scopes = mcp ? cfg->mcp_oauth_scopes : cfg->rest_oauth_scopes;
    const char *flag = mcp ? "mcp" : "rest";
    size_t n = 0;

    memset(conf, 0, sizeof(*conf));
    conf->authorization_server_uri = (char *)(mcp ? cfg->mcp_oauth_issuer : cfg->rest_oauth_issuer);
    conf->resource = (char *)(mcp ? cfg->mcp_oauth_resource : cfg->rest_oauth_resource);
    conf->audience = (char *)(mcp ? cfg->mcp_oauth_audience : cfg->rest_oauth_audience);
    conf->token_validation = strcmp(cfg->oauth_token_validation, "introspection") == 0
                                 ? NK_TOKEN_VALIDATION_INTROSPECTION
                                 : NK_TOKEN_VALIDATION_JWKS;
    if (conf->authorization_server_uri == NULL || conf->resource == NULL) {
        report_error("--%s-auth oauth needs --%s-oauth-issuer URL and --%s-oauth-resource URI",
                     flag, flag, flag);
        return false;
    }
    if (scopes != NULL && scopes[0] != '\0' &&
        nk_config_split_list(scopes, copy, (const char **)words, max_words, &n) != NK_OK) {
        report_error("--%s-oauth-scopes: at most %zu scopes", flag, max_words);
        return false;
    }
    conf->scopes = words;
    conf->n_scopes = n;
    return true;
}

/* The resource-server options shared by every OAuth adapter; *secret (the client file's
 * contents) is wiped and freed by the caller. */
static bool oauth_options(const struct nk_config *cfg, struct nk_oauth_options *o, char **secret)
{
    char why[600];
    char *colon;

    memset(o, 0, sizeof(*o));
    if (nk_jose_algs_parse(cfg->oauth_algorithms, &o->algs, why, sizeof(why)) != NK_OK) {
        report_error("--oauth-algorithms: %s", why);
        return false;
    }
    if (cfg->oauth_leeway_s > 600) {
        report_error("--oauth-leeway is at most 600 seconds");
        return false;
    }
    o->leeway_s = cfg->oauth_leeway_s;
    o->refresh_min_s = cfg->oauth_jwks_refresh_s > 0 ? cfg->oauth_jwks_refresh_s : 30;
    o->jwks_max_age_s = cfg->oauth_jwks_max_age_s > 0 ? cfg->oauth_jwks_max_age_s : 3600;
    o->cache_entries =
        (size_t)(cfg->oauth_cache_entries > 1000000 ? 1000000 : cfg->oauth_cache_entries);
    o->cache_ttl_s = cfg->oauth_cache_ttl_s;
    if (cfg->oauth_client_file != NULL && cfg->oauth_client_file[0] != '\0') {
        if (nk_secret_file(cfg->oauth_client_file, "--oauth-client-file", false, secret, NULL, why,
                           sizeof(why)) != NK_OK) {
            report_error("the OAuth client credentials: %s", why);
            return false;
        }
        colon = strchr(*secret, ':');
        if (colon == NULL || colon == *secret || colon[1] == '\0') {
            report_error("--oauth-client-file %s: expected one line CLIENT_ID:SECRET",
                         cfg->oauth_client_file);
            return false;
        }
        *colon = '\0';
        o->client_id = *secret;
        o->client_secret = colon + 1;
    }
    return true;
}

/* One resource server per listener that needs one: a member adapter's document oauth2
 * authentication first, else the options when that type's mode is oauth. */
static bool setup_oauth(const struct nk_config *cfg, const struct nk_inbound_policy *policy,
                        const struct nk_optable *t, struct nk_oauth **oauths)
{
    struct nk_oauth_options oo;
    struct nk_oauth_conf conf;
    const struct nk_oauth_conf *use;
    char *secret = NULL, *copy = NULL, *words[64];
    struct nk_error err;
    bool ok = false;
    size_t i;

    memset(&err, 0, sizeof(err));
    if (!oauth_options(cfg, &oo, &secret))
        goto out;
    for (i = 0; i < t->n_listeners; i++) {
        const struct nk_adapter *a = &t->listeners[i];
        enum nk_inbound_mode mode = a->type == NK_ADAPTER_REST ? policy->rest : policy->mcp;

        use = doc_oauth(cfg, a); /* the option wins over the document */
        if (use == NULL && mode == NK_INBOUND_OAUTH) {
            free(copy);
            copy = NULL;
            if (!oauth_conf_from_options(cfg, a->type, &conf, &copy, words,
                                         sizeof(words) / sizeof(words[0])))
                goto out;
            use = &conf;
        }
        if (use == NULL)
            continue;
        if (use->token_validation == NK_TOKEN_VALIDATION_INTROSPECTION && oo.client_id == NULL) {
            report_error("introspection needs --oauth-client-file FILE (CLIENT_ID:SECRET)");
            goto out;
        }
        if (nk_oauth_new(use, &oo, &oauths[i], &err) != NK_OK) {
            report_error("%s adapter '%s': OAuth: %s", a->type == NK_ADAPTER_REST ? "rest" : "mcp",
                         a->ns, err.msg);
            goto out;
        }
        logline("info",
                "%s listener %s: OAuth resource server %s, issuer %s, %s, %zu required "
                "scope(s)",
                a->type == NK_ADAPTER_REST ? "rest" : "mcp", a->key, use->resource,
                use->authorization_server_uri,
                use->token_validation == NK_TOKEN_VALIDATION_JWKS ? "JWT (JWKS)" : "introspection",
                use->n_scopes);
    }
    ok = true;
out:
    free(copy);
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret) +
                                   (oo.client_secret != NULL ? strlen(oo.client_secret) + 1 : 0));
        free(secret);
    }
    return ok;
}

/* --loops 0 (the default): the CPUs this process may run on, at most NK_CONFIG_MAX_LOOPS. */
static size_t default_loops(void)
{
    cpu_set_t set;
    int n;

    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 1;
    n = CPU_COUNT(&set);
    if (n < 1)
        return 1;
    return n > NK_CONFIG_MAX_LOOPS ? NK_CONFIG_MAX_LOOPS : (size_t)n;
}

int nk_cmd_serve(int argc, char **argv)
{
    struct nk_config cfg, live; /* cfg: what runs; live: the last reloaded config */
    bool have_live = false;
    size_t i, k, n_ls = 0, n_http, n_loops = 1;
    unsigned ops_max = 0;
    struct nk_diags diags;
    struct nk_optable *table = NULL;
    struct nk_context *ctx = NULL;
    struct nk_loop *loops[NK_CONFIG_MAX_LOOPS] = {NULL};
    struct nk_upstream *ups[NK_CONFIG_MAX_LOOPS] = {NULL};
    struct nk_upstream_share *share = NULL;
    struct nk_server *server = NULL;
    struct nk_upstream_options uo;
    struct listener *ls = NULL;
    struct nk_ops *ops = NULL;               /* ops listener */
    struct ls_view ops_view = {NULL, &n_ls}; /* ops listener */
    struct nk_error err;
    const struct nk_optable *t;
    sigset_t sigs;
    bool global = false, watchdog = false;
    uint64_t watchdog_usec = 0;
    int status = 1, sig = 0, r;
    struct nk_inbound_policy policy;
    struct nk_proxies proxies; /* --trusted-proxies; the listeners borrow it */
    struct nk_tokens *tokens = NULL;
    struct nk_authz *authz = NULL;
    struct nk_oauth **oauths = NULL; /* per listener of the table, or NULL */
    size_t n_oauths = 0;
    const char *rest_hosts[64];
    char *rest_hosts_copy = NULL, *tok, *save = NULL;

    memset(&policy, 0, sizeof(policy));
    memset(&proxies, 0, sizeof(proxies));
    memset(&cfg, 0, sizeof(cfg));
    memset(&live, 0, sizeof(live));
    memset(&uo, 0, sizeof(uo));
    memset(&err, 0, sizeof(err));
    nk_diags_init(&diags);
    r = nk_config_read(&cfg, NK_CONFIG_SERVE, false, argc, argv);
    if (r != 0) {
        status = r < 0 ? 0 : r;
        goto out;
    }
    configure_log(cfg.log_format, cfg.log_level);
    if (!ops_listen_valid(&cfg)) { /* ops listener */
        status = 2;
        goto out;
    }

    /* Signals are handled on this thread only: block them before any thread starts. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* Limits fit the listener's types (checked here rather than truncated later). */
    if (cfg.max_connections > 1000000 || cfg.max_per_client > 1000000 ||
        cfg.max_header_bytes > (64L << 20) || cfg.max_header_bytes < 1024 ||
        cfg.idle_timeout_s > 86400 || cfg.request_timeout_s > 86400 || cfg.rate_limit > 1000000 ||
        cfg.rate_burst > 1000000 || cfg.mcp_max_batch < 1 || cfg.mcp_max_batch > 100000 ||
        cfg.loops > NK_CONFIG_MAX_LOOPS || cfg.shutdown_delay_s > 3600 ||
        cfg.mcp_tools_ttl_ms > 86400000L) {
        report_error(
            "a limit is out of range: connections and rates at most 1000000, "
            "--max-header-bytes 1024..67108864, --idle-timeout and --request-timeout at most "
            "86400, --mcp-max-batch 1..100000, --loops at most 64, --shutdown-delay at most "
            "3600, --mcp-tools-ttl at most 86400000");
        goto out;
    }
    /* Inbound authentication: modes, tokens, and who may listen beyond loopback. */
    if (!nk_inbound_mode_parse(cfg.rest_auth, true, &policy.rest) ||
        !nk_inbound_mode_parse(cfg.mcp_auth, false, &policy.mcp)) {
        report_error("unknown authentication mode");
        goto out;
    }
    policy.read_only = cfg.read_only;
    if (cfg.rest_allowed_hosts != NULL && cfg.rest_allowed_hosts[0] != '\0') {
        rest_hosts_copy = strdup(cfg.rest_allowed_hosts);
        if (rest_hosts_copy == NULL)
            goto out;
        for (tok = strtok_r(rest_hosts_copy, ", ", &save); tok != NULL;
             tok = strtok_r(NULL, ", ", &save)) {
            if (policy.n_rest_hosts == sizeof(rest_hosts) / sizeof(rest_hosts[0])) {
                report_error("--rest-allowed-hosts names more than 64 hosts");
                goto out;
            }
            rest_hosts[policy.n_rest_hosts++] = tok;
        }
        policy.rest_hosts = rest_hosts;
    }
    policy.mcp_max_batch = (size_t)cfg.mcp_max_batch;
    if (policy.rest == NK_INBOUND_TOKEN || policy.mcp == NK_INBOUND_TOKEN) {
        if (cfg.auth_tokens == NULL) {
            report_error("--rest-auth token / --mcp-auth token need --auth-tokens FILE (make its "
                         "lines with 'naftikod hash-token NAME')");
            goto out;
        }
        if (nk_tokens_load(cfg.auth_tokens, &tokens, &err) != NK_OK) {
            report_error("%s", err.msg);
            goto out;
        }
        policy.tokens = tokens;
        logline("info", "inbound authentication: rest=%s mcp=%s, %zu caller token(s) from %s",
                nk_inbound_mode_name(policy.rest), nk_inbound_mode_name(policy.mcp),
                nk_tokens_count(tokens), cfg.auth_tokens);
    } else if (cfg.auth_tokens != NULL) {
        logline("warning", "--auth-tokens is set but no adapter uses token authentication");
    }
    if (cfg.permissions != NULL) {
        if (nk_authz_load(cfg.permissions, &authz, &err) != NK_OK) {
            report_error("%s", err.msg);
            goto out;
        }
        logline("info",
                "permissions: %zu caller(s), %zu grant(s) from %s; anything not granted is "
                "denied",
                nk_authz_n_callers(authz), nk_authz_n_grants(authz), cfg.permissions);
    }
    if (cfg.audit_log != NULL) {
        if (nk_audit_open(cfg.audit_log, &err) != NK_OK) {
            report_error("--audit-log: %s", err.msg);
            goto out;
        }
        logline("info", "audit trail: one JSON line per call to %s", cfg.audit_log);
    }
    if (cfg.read_only)
        logline("info", "read-only: only GET routes and read-only tools are served");
    if (cfg.trusted_proxies != NULL) {
        char why[300];

        if (nk_proxies_parse(cfg.trusted_proxies, &proxies, why, sizeof(why)) != NK_OK) {
            report_error("%s", why);
            goto out;
        }
        if (proxies.n > 0)
            logline("info",
                    "trusted proxies: %zu block(s); X-Forwarded-For / Forwarded from them name "
                    "the client (access log, rate limit)",
                    proxies.n);
    }
    if (!configure_mcp(&cfg))
        goto out;

    if (nk_upstream_global_init() != NK_OK) {
        report_error("cannot initialise the HTTP client library");
        goto out;
    }
    global = true;

    if (load_grouped(&cfg, cfg.files, cfg.n_files, &diags, &table) != NK_OK) {
        log_diags(&diags, NULL);
        report_error("cannot load the capabilities (%zu error(s))", diags.n_errors);
        goto out;
    }
    log_diags(&diags, NULL); /* warnings */
    nk_diags_cleanup(&diags);
    nk_diags_init(&diags);
    if (nk_context_new(table, cfg.vars, cfg.n_vars, &diags, &ctx) != NK_OK) {
        log_diags(&diags, NULL);
        report_error("cannot resolve variables and credentials; set them "
                     "and start again");
        goto out;
    }
    log_diags(&diags, NULL); /* warnings */

    uo.connect_timeout_ms = cfg.connect_timeout_ms;
    uo.timeout_ms = cfg.timeout_ms;
    uo.max_response = (size_t)cfg.max_response;
    uo.ca_file = cfg.ca_file;
    uo.insecure = cfg.insecure;
    if (cfg.insecure)
        logline("warning", "upstream TLS certificates are NOT verified (--insecure-skip-verify)");
    /* N event loops, one thread each: every loop runs an instance of each adapter's listener
     * (SO_REUSEPORT spreads connections) and an upstream client of its own, so a request is
     * read, sent upstream and answered on one thread. The table is shared by reference. */
    n_loops = cfg.loops > 0 ? (size_t)cfg.loops : default_loops();
    if (n_loops > 1 && nk_upstream_share_new(&share) != NK_OK) {
        report_error("out of memory");
        goto out;
    }
    uo.share = share;
    for (k = 0; k < n_loops; k++) {
        if (nk_loop_new(&loops[k], &err) != NK_OK || nk_loop_start(loops[k], &err) != NK_OK) {
            report_error("cannot start the event loop: %s", err.msg);
            goto out;
        }
        if (nk_upstream_new(loops[k], &uo, &ups[k], &err) != NK_OK) {
            report_error("cannot start the upstream client: %s", err.msg);
            goto out;
        }
        if (k == 0 ? nk_server_new(ctx, ups[0], &server) != NK_OK
                   : nk_server_add_upstream(server, ups[k]) != NK_OK) {
            report_error("out of memory");
            goto out;
        }
    }
    nk_server_set_policy(server, &policy);
    nk_server_set_authz(server, authz);
    lint_permissions(authz, server, "permissions: ");
    if (n_loops > 1)
        nk_metrics_set_loops(nk_metrics_global(), (unsigned)n_loops);

    t = nk_context_table(ctx);
    ls = calloc((t->n_listeners + 1) * n_loops, sizeof(*ls));
    if (ls == NULL)
        goto out;
    for (i = 0; i < t->n_adapters; i++)
        if (t->adapters[i].type == NK_ADAPTER_MCP && t->adapters[i].transport != NULL &&
            strcmp(t->adapters[i].transport, "http") != 0)
            logline("info",
                    "mcp adapter '%s' uses transport %s: not served here (use "
                    "'naftikod mcp-stdio')",
                    t->adapters[i].ns, t->adapters[i].transport);
    oauths = calloc(t->n_listeners + 1, sizeof(*oauths));
    n_oauths = t->n_listeners;
    if (oauths == NULL || !setup_oauth(&cfg, &policy, t, oauths))
        goto out;
    n_http = t->n_listeners;
    fit_connections(raise_nofile(), n_http, !ops_off(&cfg), &cfg.max_connections, &ops_max);
    /* One listener per (type, address, port), every adapter on it served there; one instance
     * of it per loop. */
    for (i = 0; i < t->n_listeners; i++) {
        const struct nk_adapter *a = &t->listeners[i];
        unsigned port = 0;

        /* The first instance binds (port 0: the kernel picks the port), the others bind the
         * port it got. */
        for (k = 0; k < n_loops; k++) {
            struct listener *l = &ls[n_ls];

            l->loop_idx = (unsigned)k;
            l->count_loop = n_loops > 1;
            n_ls++;
            /* One rate budget per client and listener, whichever loop its connections reach. */
            if (k == 0 && n_loops > 1 && cfg.rate_limit > 0 &&
                nk_rate_new((double)cfg.rate_limit,
                            cfg.rate_burst > 0 ? (double)cfg.rate_burst : (double)cfg.rate_limit, 0,
                            &l->rate) != NK_OK) {
                report_error("cannot set up the rate limit");
                goto out;
            }
            /* And one count of a client's connections. */
            if (k == 0 && n_loops > 1 && cfg.max_per_client > 0 &&
                nk_httpd_client_conns_new((unsigned)cfg.max_per_client, &l->client_conns) !=
                    NK_OK) {
                report_error("out of memory");
                goto out;
            }
            if (!start_listener(&cfg, a, server, loops[k], n_loops, k == 0 ? -1 : (long)port,
                                &ls[n_ls - 1 - k], &proxies, oauths[i], l))
                goto out;
            port = l->port;
        }
    }
    if (n_ls == 0) {
        report_error("the capabilities expose no REST or MCP (http) adapter");
        goto out;
    }
    for (i = 0; i < n_oauths; i++) /* the first caller should not wait for the keys */
        if (oauths[i] != NULL)
            nk_oauth_prefetch(oauths[i], ups[0]);
    ops_view.ls = ls; /* ops listener */
    if (!start_ops(&cfg, server, &ops_view, ops_max, &ops))
        goto out;
    if (cfg.port_file != NULL &&
        write_port_file(cfg.port_file, ls, n_ls, ops != NULL ? nk_ops_port(ops) : 0) != NK_OK) {
        report_error("cannot write the port file %s: %s", cfg.port_file, strerror(errno));
        goto out;
    }
    if (n_loops > 1)
        logline("info", "naftikod %s ready (%zu listener(s) on each of %zu event loops, pid %ld)",
                NK_VERSION, n_ls / n_loops, n_loops, (long)getpid());
    else
        logline("info", "naftikod %s ready (%zu listener(s), pid %ld)", NK_VERSION, n_ls,
                (long)getpid());
    notify("READY=1");
    watchdog = nk_sd_watchdog(&watchdog_usec);
    if (watchdog)
        logline("info", "systemd watchdog: WATCHDOG=1 every %" PRIu64 " ms", watchdog_usec / 2000u);

    for (;;) {
        sig = wait_signal(&sigs, watchdog, watchdog_usec);
        if (sig == SIGHUP) {
            logline("info", "SIGHUP: reloading the capabilities");
            notify("RELOADING=1");
            reload(argc, argv, &cfg, &live, &have_live, server, ls, n_ls, &tokens, &authz);
            reload_keys(&cfg); /* on its own: a key rotation needs no capability change */
            notify("READY=1"); /* serving either way: the new table or the previous one */
            continue;
        }
        break;
    }
    notify("STOPPING=1");
    nk_ops_shutting_down(ops); /* /readyz: 503 from now on */
    nk_mcp_streams_end_all();  /* the MCP GET streams end now: their clients reconnect elsewhere */
    if (cfg.shutdown_delay_s > 0) {
        logline("info",
                "%s: shutting down: lame duck for %ld s (/readyz 503, still serving, answers "
                "close their connections), then draining for at most %ld ms",
                sig == SIGINT ? "SIGINT" : "SIGTERM", cfg.shutdown_delay_s, cfg.drain_ms);
        for (i = 0; i < n_ls; i++)
            nk_httpd_lame_duck(ls[i].httpd);
        lame_duck(&sigs, cfg.shutdown_delay_s, watchdog, watchdog_usec);
    } else {
        logline("info", "%s: shutting down, draining for at most %ld ms",
                sig == SIGINT ? "SIGINT" : "SIGTERM", cfg.drain_ms);
    }
    for (i = 0; i < n_ls; i++)
        nk_httpd_quiesce(ls[i].httpd);
    drain(ls, n_ls, cfg.drain_ms, watchdog, watchdog_usec);
    status = 0;
out:
    /* Upstream first: its shutdown completes the calls still running, whose answers the loop
     * hands to the adapters and writes out in its last turn; from then on nothing runs the
     * adapters' listeners until nk_httpd_stop(), which refuses new requests (503) and answers
     * 503 to anything still unanswered. The ops listener reads the adapters' counters: it stops
     * after the upstream (its probes completed) and before the adapters. A request that arrives
     * on an open connection from here on gets 503 at once rather than a failed upstream call. */
    for (i = 0; ls != NULL && i < n_ls; i++)
        nk_httpd_refuse(ls[i].httpd);
    for (k = 0; k < n_loops; k++)
        nk_upstream_free(ups[k]);
    nk_ops_stop(ops);
    for (i = 0; ls != NULL && i < n_ls; i++) {
        nk_httpd_stop(ls[i].httpd);
        free(ls[i].ns);
        free(ls[i].address);
    }
    for (i = 0; ls != NULL && i < n_ls; i++) { /* after every instance that shared them stopped */
        nk_rate_free(ls[i].rate);
        nk_httpd_client_conns_free(ls[i].client_conns);
    }
    free(ls);
    for (i = 0; oauths != NULL && i < n_oauths; i++) /* its fetches ended with the clients */
        nk_oauth_free(oauths[i]);
    free(oauths);
    for (k = 0; k < n_loops; k++)
        nk_loop_free(loops[k]); /* its last clients are gone */
    nk_upstream_share_free(share);
    nk_server_free(server);
    nk_tokens_free(tokens);
    nk_authz_free(authz);
    nk_audit_close();
    free(rest_hosts_copy);
    if (ctx != NULL)
        nk_context_unref(ctx);
    nk_optable_unref(table);
    if (global)
        nk_upstream_global_cleanup();
    nk_diags_cleanup(&diags);
    if (have_live)
        nk_config_free(&live);
    nk_config_free(&cfg);
    if (status == 0 && sig != 0)
        logline("info", "stopped");
    return status;
}
