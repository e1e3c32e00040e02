/* SPDX-License-Identifier: Apache-2.0 */
/* mcp_stdio.c: `naftikod mcp-stdio`: MCP as newline-delimited JSON-RPC on stdin/stdout (logs on
 * stderr only), with its own upstream client and context, dispatching like the HTTP endpoint. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/audit.h"
#include "naftikod/authz.h"
#include "naftikod/cmd.h"
#include "naftikod/config.h"
#include "naftikod/invoke.h"
#include "naftikod/log.h"
#include "naftikod/loop.h"
#include "naftikod/mcp_core.h"
#include "naftikod/optable.h"
#include "naftikod/upstream.h"

#define MAX_LINE (16u * 1024 * 1024)

struct stdio_state {
    pthread_mutex_t mu; /* guards stdout and pending */
    pthread_cond_t idle;
    unsigned long pending;
    struct nk_context *ctx;
    struct nk_upstream *up;
    struct nk_mcp_access acc; /* permissions (or none) and the anonymous caller */
};

static enum nk_rc stdio_call(void *ud, const struct nk_exposed *tool, json_t *args,
                             nk_mcp_done_fn done, void *done_ud, struct nk_error *err)
{
    struct stdio_state *st = ud;

    return nk_mcp_invoke_access(st->ctx, st->up, &st->acc, tool, args, done, done_ud, NULL, err);
}

/* tools/list: only what the permission rules let the (anonymous) caller call. */
static bool stdio_visible(void *ud, const struct nk_exposed *tool)
{
    struct stdio_state *st = ud;
    static const struct nk_principal anonymous;

    return nk_authz_visible(st->acc.authz, &anonymous, NK_ADAPTER_MCP, tool);
}

static void stdio_cancel(void *ud, uint64_t tag)
{
    struct stdio_state *st = ud;

    nk_upstream_cancel(st->up, tag);
}

/* Replies may come from the upstream thread: one whole line at a time under the lock. */
static void stdio_reply(void *ud, struct nk_mcp_reply *r)
{
    struct stdio_state *st = ud;

    pthread_mutex_lock(&st->mu);
    if (r->body != NULL) {
        fwrite(r->body, 1, r->len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    st->pending--;
    if (st->pending == 0)
        pthread_cond_broadcast(&st->idle);
    pthread_mutex_unlock(&st->mu);
}

static const struct nk_adapter *pick_adapter(const struct nk_optable *t, const char *ns)
{
    size_t i;

    for (i = 0; i < t->n_adapters; i++)
        if (t->adapters[i].type == NK_ADAPTER_MCP &&
            (ns == NULL || strcmp(t->adapters[i].ns, ns) == 0))
            return &t->adapters[i];
    return NULL;
}

int nk_cmd_mcp_stdio(int argc, char **argv)
{
    struct nk_config cfg;
    enum nk_log_format lf = NK_LOG_TEXT;
    enum nk_log_level ll = NK_LOG_INFO;
    struct nk_upstream_options uo;
    struct nk_loop *loop = NULL;
    struct nk_diags diags;
    struct nk_optable *table = NULL;
    struct nk_mcp *m = NULL;
    struct nk_mcp_backend b;
    struct nk_mcp_conn conn;
    struct stdio_state st;
    struct nk_authz *authz = NULL;
    struct nk_error err;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool global = false;
    int status = 1, r;

    memset(&uo, 0, sizeof(uo));
    memset(&st, 0, sizeof(st));
    memset(&conn, 0, sizeof(conn));
    memset(&err, 0, sizeof(err));
    nk_diags_init(&diags);
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.idle, NULL);
    /* The shared option table: only the options that apply here are accepted. */
    r = nk_config_read(&cfg, NK_CONFIG_MCP_STDIO, false, argc, argv);
    if (r != 0) {
        status = r < 0 ? 0 : r;
        goto out;
    }
    nk_log_parse_format(cfg.log_format, &lf);
    nk_log_parse_level(cfg.log_level, &ll);
    nk_log_configure(lf, ll);
    uo.ca_file = cfg.ca_file;
    uo.insecure = cfg.insecure;
    uo.connect_timeout_ms = cfg.connect_timeout_ms;
    uo.timeout_ms = cfg.timeout_ms;
    uo.max_response = (size_t)cfg.max_response;
    if (cfg.mcp_max_batch < 1 || cfg.mcp_max_batch > 100000) {
        fprintf(stderr, "naftikod: mcp-stdio: --mcp-max-batch must be 1..100000\n");
        status = 2;
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    if (nk_optable_load(cfg.files, cfg.n_files, NULL, &diags, &table) != NK_OK) {
        nk_diags_print(&diags, stderr);
        goto out;
    }
    nk_diags_print(&diags, stderr); /* warnings */
    nk_diags_cleanup(&diags);
    nk_diags_init(&diags);
    memset(&b, 0, sizeof(b));
    b.adapter = pick_adapter(table, cfg.adapter);
    if (b.adapter == NULL) {
        fprintf(stderr, "naftikod: mcp-stdio: no MCP adapter%s%s in the capabilities\n",
                cfg.adapter ? " named " : "", cfg.adapter ? cfg.adapter : "");
        goto out;
    }
    if (nk_context_new(table, cfg.vars, cfg.n_vars, &diags, &st.ctx) != NK_OK) {
        nk_diags_print(&diags, stderr);
        goto out;
    }
    nk_diags_print(&diags, stderr); /* warnings about the resolved values, as serve has them */
    if (nk_upstream_global_init() != NK_OK) {
        fprintf(stderr, "naftikod: mcp-stdio: cannot initialise the HTTP client\n");
        goto out;
    }
    global = true;
    if (nk_loop_new(&loop, &err) != NK_OK || nk_loop_start(loop, &err) != NK_OK ||
        nk_upstream_new(loop, &uo, &st.up, &err) != NK_OK) {
        fprintf(stderr, "naftikod: mcp-stdio: %s\n", err.msg);
        goto out;
    }
    if (nk_mcp_new(NULL, &m, &err) != NK_OK) {
        fprintf(stderr, "naftikod: mcp-stdio: %s\n", err.msg);
        goto out;
    }
    if (uo.insecure)
        fprintf(stderr, "naftikod: mcp-stdio: warning: upstream TLS certificates are NOT "
                        "verified (--insecure-skip-verify)\n");
    /* The caller of a stdio server is the process that started it: anonymous to the rules. */
    if (cfg.permissions != NULL) {
        if (nk_authz_load(cfg.permissions, &authz, &err) != NK_OK) {
            fprintf(stderr, "naftikod: mcp-stdio: %s\n", err.msg);
            goto out;
        }
        st.acc.authz = authz;
        b.visible = stdio_visible;
        b.private_list = true;
    }
    if (cfg.audit_log != NULL && nk_audit_open(cfg.audit_log, &err) != NK_OK) {
        fprintf(stderr, "naftikod: mcp-stdio: --audit-log: %s\n", err.msg);
        goto out;
    }
    st.acc.adapter = b.adapter->ns;
    b.call = stdio_call;
    b.call_ud = &st;
    b.cancel = stdio_cancel;
    b.read_only = cfg.read_only;
    b.max_batch = (size_t)cfg.mcp_max_batch;
    fprintf(stderr, "naftikod: mcp-stdio: serving %zu tools of %s\n", b.adapter->n_ops,
            b.adapter->ns);
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)n;

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (len == 0)
            continue;
        if (len > MAX_LINE) {
            static const char big[] = "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":"
                                      "-32600,\"message\":\"Invalid Request: too large\"}}\n";

            pthread_mutex_lock(&st.mu);
            fputs(big, stdout);
            fflush(stdout);
            pthread_mutex_unlock(&st.mu);
            continue;
        }
        pthread_mutex_lock(&st.mu);
        st.pending++;
        pthread_mutex_unlock(&st.mu);
        nk_mcp_line(m, &b, &conn, line, len, stdio_reply, &st);
    }
    /* End of input: let calls in flight answer before the client goes away. */
    pthread_mutex_lock(&st.mu);
    while (st.pending > 0)
        pthread_cond_wait(&st.idle, &st.mu);
    pthread_mutex_unlock(&st.mu);
    status = 0;
out:
    free(line);
    nk_mcp_free(m);
    nk_upstream_free(st.up);
    nk_loop_free(loop);
    nk_context_unref(st.ctx);
    nk_optable_unref(table);
    nk_authz_free(authz);
    nk_audit_close();
    if (global)
        nk_upstream_global_cleanup();
    nk_diags_cleanup(&diags);
    pthread_cond_destroy(&st.idle);
    pthread_mutex_destroy(&st.mu);
    nk_config_free(&cfg);
    return status;
}
