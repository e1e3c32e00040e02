/* SPDX-License-Identifier: Apache-2.0 */
/* engine_server.c: a test-only HTTP server (libmicrohttpd) around the MCP engine with four
 * fake tools that answer at once, so the conformance suite can exercise the protocol layer
 * without a capability, an upstream or the daemon. Usage: engine_server PORT_FILE */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "naftikod/mcp_core.h"

struct body {
    char *data;
    size_t len;
};

struct reply_box {
    struct nk_mcp_reply r;
    char *body;
};

static struct nk_mcp *engine;
static struct nk_mcp_backend backend;
static struct nk_exposed tools[4];
static struct nk_adapter adapter;

static enum nk_rc fake_call(void *ud, const struct nk_exposed *tool, json_t *args,
                            nk_mcp_done_fn done, void *done_ud, struct nk_error *err)
{
    struct nk_result r;

    (void)ud;
    (void)err;
    memset(&r, 0, sizeof(r));
    r.kind = NK_RES_OK;
    r.json = json_pack("{s:s, s:O}", "tool", tool->name, "arguments", args);
    done(done_ud, &r);
    json_decref(r.json);
    return NK_OK;
}

static void keep(void *ud, struct nk_mcp_reply *r)
{
    struct reply_box *b = ud;

    b->r = *r;
    b->body = r->body;
    r->body = NULL;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_len, void **con_cls)
{
    struct body *b = *con_cls;
    struct nk_mcp_http_in in;
    struct reply_box box;
    struct MHD_Response *resp;
    enum MHD_Result ret;

    (void)cls;
    (void)version;
    if (b == NULL) {
        b = calloc(1, sizeof(*b));
        if (b == NULL)
            return MHD_NO;
        *con_cls = b;
        return MHD_YES;
    }
    if (*upload_len > 0) {
        char *p = realloc(b->data, b->len + *upload_len + 1);

        if (p == NULL)
            return MHD_NO;
        b->data = p;
        memcpy(b->data + b->len, upload, *upload_len);
        b->len += *upload_len;
        b->data[b->len] = '\0';
        *upload_len = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/mcp") != 0) {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        ret = MHD_queue_response(c, 404, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    memset(&in, 0, sizeof(in));
    in.method = method;
    in.host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    in.origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    in.session_id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Mcp-Session-Id");
    in.protocol_version = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MCP-Protocol-Version");
    in.mcp_method = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Mcp-Method");
    in.mcp_name = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Mcp-Name");
    in.body = b->data;
    in.body_len = b->len;
    memset(&box, 0, sizeof(box));
    nk_mcp_http(engine, &backend, &in, keep, &box);
    resp = MHD_create_response_from_buffer(box.r.len, box.body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(box.body);
        return MHD_NO;
    }
    if (box.r.json)
        MHD_add_response_header(resp, "Content-Type", "application/json");
    if (box.r.session_id[0] != '\0')
        MHD_add_response_header(resp, "Mcp-Session-Id", box.r.session_id);
    if (box.r.allow != NULL)
        MHD_add_response_header(resp, "Allow", box.r.allow);
    ret = MHD_queue_response(c, box.r.status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct body *b = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (b != NULL) {
        free(b->data);
        free(b);
    }
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    static char names[4][32] = {"list-tokens", "generate-token", "revoke-token", "get-token"};
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    struct sockaddr_in sa;
    sigset_t set;
    FILE *f;
    int sig, i;

    if (argc != 2) {
        fprintf(stderr, "usage: engine_server PORT_FILE\n");
        return 2;
    }
    for (i = 0; i < 4; i++) {
        tools[i].name = names[i];
        tools[i].description = names[i];
    }
    tools[0].hints.read_only = tools[0].hints.idempotent = true;
    adapter.type = NK_ADAPTER_MCP;
    adapter.ns = names[0];
    adapter.ops = tools;
    adapter.n_ops = 4;
    backend.adapter = &adapter;
    backend.call = fake_call;
    if (nk_mcp_new(NULL, &engine, NULL) != NK_OK)
        return 1;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (d == NULL)
        return 1;
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    f = fopen(argv[1], "w");
    if (f == NULL)
        return 1;
    fprintf(f, "%u\n", (unsigned)info->port);
    fclose(f);
    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    nk_mcp_free(engine);
    return 0;
}
