/* SPDX-License-Identifier: Apache-2.0 */
/* mcp_stdio.c: `naftikod mcp-stdio`: MCP as newline-delimited JSON-RPC on stdin/stdout (logs on
 * stderr only), with its own upstream client and context, dispatching like the HTTP endpoint. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/cmd.h"
#include "naftikod/invoke.h"
#include "naftikod/loop.h"
#include "naftikod/mcp_core.h"
#include "naftikod/optable.h"
#include "naftikod/upstream.h"

#define MAX_VARS 64
#define MAX_LINE (16u * 1024 * 1024)

static const char usage[] =
    "Usage: naftikod mcp-stdio [OPTIONS] CAPABILITY...\n"
    "\n"
    "Speak MCP (JSON-RPC 2.0, one message a line) on stdin/stdout for desktop clients; logs go\n"
    "to stderr. Serves the tools of one MCP adapter of the capabilities (any transport).\n"
    "\n"
    "Options:\n"
    "  --adapter NS          the MCP adapter namespace to serve (default: the first one)\n"
    "  --var NAME=VALUE      a baseUri server variable, e.g. --var central-host=central:8443\n"
    "                        (else the environment variable NAME upper-cased, '-' -> '_')\n"
    "  --ca-file FILE        trust this PEM bundle for upstream TLS instead of the system store\n"
    "  --insecure-skip-verify  do not verify upstream TLS certificates (labs only; warned)\n"
    "  --connect-timeout MS  upstream connect timeout (default 5000)\n"
    "  --timeout MS          upstream total timeout per call (default 30000)\n"
    "  -h, --help            show this help and exit\n"
    "\n"
    "Exit status: 0 at end of input, 1 when the capabilities do not load, 2 on a usage error.\n";

struct stdio_state {
    pthread_mutex_t mu; /* guards stdout and pending */
    pthread_cond_t idle;
    unsigned long pending;
    struct nk_context *ctx;
    struct nk_upstream *up;
};

static enum nk_rc stdio_call(void *ud, const struct nk_exposed *tool, json_t *args,
                             nk_mcp_done_fn done, void *done_ud, struct nk_error *err)
{
    struct stdio_state *st = ud;

    return nk_mcp_invoke(st->ctx, st->up, tool, args, NULL, done, done_ud, err);
}

static void stdio_cancel(void *ud, uint64_t tag)
{
    struct stdio_state *st = ud;

    nk_upstream_cancel(st->up, tag);
}

/* The loader's warning about a literal Authorization value without a scheme comes again from
 * nk_context_new(), which judges every value once resolved (templates included): keep one. */
static void drop_loader_scheme_warnings(struct nk_diags *d)
{
    size_t i, k = 0;

    for (i = 0; i < d->n; i++) {
        struct nk_diag *g = &d->v[i];

        if (g->sev == NK_SEV_WARNING && strstr(g->msg, "the Authorization value '") == g->msg &&
            strstr(g->msg, "' has no scheme") != NULL) {
            free(g->file);
            free(g->msg);
            d->n_warnings--;
            continue;
        }
        d->v[k++] = *g;
    }
    d->n = k;
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
    struct nk_var vars[MAX_VARS];
    char var_names[MAX_VARS][128];
    size_t n_vars = 0;
    const char **files = NULL;
    size_t n_files = 0;
    const char *adapter_ns = NULL;
    struct nk_upstream_options uo;
    struct nk_loop *loop = NULL;
    struct nk_diags diags;
    struct nk_optable *table = NULL;
    struct nk_mcp *m = NULL;
    struct nk_mcp_backend b;
    struct nk_mcp_conn conn;
    struct stdio_state st;
    struct nk_error err;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool global = false;
    int status = 1, i;

    memset(&uo, 0, sizeof(uo));
    memset(&st, 0, sizeof(st));
    memset(&conn, 0, sizeof(conn));
    memset(&err, 0, sizeof(err));
    nk_diags_init(&diags);
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.idle, NULL);
    files = calloc((size_t)argc + 1, sizeof(*files));
    if (files == NULL)
        goto out;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(usage, stdout);
            status = 0;
            goto out;
        } else if (strcmp(a, "--adapter") == 0 && i + 1 < argc) {
            adapter_ns = argv[++i];
        } else if (strcmp(a, "--ca-file") == 0 && i + 1 < argc) {
            uo.ca_file = argv[++i];
        } else if (strcmp(a, "--insecure-skip-verify") == 0) {
            uo.insecure = true;
        } else if ((strcmp(a, "--timeout") == 0 || strcmp(a, "--connect-timeout") == 0) &&
                   i + 1 < argc) {
            char *end;
            long v = strtol(argv[i + 1], &end, 10);

            if (*end != '\0' || v <= 0) {
                fprintf(stderr, "naftikod: mcp-stdio: %s wants milliseconds\n", a);
                status = 2;
                goto out;
            }
            if (strcmp(a, "--timeout") == 0)
                uo.timeout_ms = v;
            else
                uo.connect_timeout_ms = v;
            i++;
        } else if (strcmp(a, "--var") == 0 && i + 1 < argc) {
            char *eq = strchr(argv[++i], '=');

            if (eq == NULL || eq == argv[i] || n_vars == MAX_VARS ||
                (size_t)(eq - argv[i]) >= sizeof(var_names[0])) {
                fprintf(stderr, "naftikod: mcp-stdio: --var wants NAME=VALUE\n");
                status = 2;
                goto out;
            }
            /* argv stays as given (it shows in ps). */
            memcpy(var_names[n_vars], argv[i], (size_t)(eq - argv[i]));
            var_names[n_vars][eq - argv[i]] = '\0';
            vars[n_vars].name = var_names[n_vars];
            vars[n_vars].value = eq + 1;
            n_vars++;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "naftikod: mcp-stdio: unknown or incomplete option '%s'\n%s", a, usage);
            status = 2;
            goto out;
        } else {
            files[n_files++] = a;
        }
    }
    if (n_files == 0) {
        fputs(usage, stderr);
        status = 2;
        goto out;
    }
    signal(SIGPIPE, SIG_IGN);
    if (nk_optable_load(files, n_files, NULL, &diags, &table) != NK_OK) {
        nk_diags_print(&diags, stderr);
        goto out;
    }
    drop_loader_scheme_warnings(&diags);
    nk_diags_print(&diags, stderr); /* warnings */
    nk_diags_cleanup(&diags);
    nk_diags_init(&diags);
    memset(&b, 0, sizeof(b));
    b.adapter = pick_adapter(table, adapter_ns);
    if (b.adapter == NULL) {
        fprintf(stderr, "naftikod: mcp-stdio: no MCP adapter%s%s in the capabilities\n",
                adapter_ns ? " named " : "", adapter_ns ? adapter_ns : "");
        goto out;
    }
    if (nk_context_new(table, vars, n_vars, &diags, &st.ctx) != NK_OK) {
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
    b.call = stdio_call;
    b.call_ud = &st;
    b.cancel = stdio_cancel;
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
    if (global)
        nk_upstream_global_cleanup();
    nk_diags_cleanup(&diags);
    pthread_cond_destroy(&st.idle);
    pthread_mutex_destroy(&st.mu);
    free(files);
    return status;
}
