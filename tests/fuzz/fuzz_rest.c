/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_rest.c: libFuzzer harness for the REST adapter's router and parameter mapping: the seed
 * capability is loaded once, then every input becomes one request (line 1 the method, line 2
 * the request target, line 3 the Content-Type, optionally followed by '|' and a Host header
 * value, the rest the body) handled by nk_rest_handle() on a detached request. There is no
 * upstream client, so a request that routes and maps cleanly stops at the submit after
 * nk_invoke_build(); nothing leaves the process. Checks: exactly one answer, a valid status, a
 * body that is well-formed JSON whenever it has a type (problem documents quote request text cut
 * anywhere, UTF-8 included), and the bound credential never in the answer. The body is also
 * given to the pass-through JSON checker, which must never refuse what jansson accepts (nor
 * accept what it refuses, unless for a number out of jansson's range), and never accept a NUL
 * byte (which jansson takes for the end of the text). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "naftikod/common.h"
#include "naftikod/invoke.h"
#include "naftikod/optable.h"
#include "naftikod/rest.h"
#include "naftikod/server.h"

#ifndef NK_SEED_CAPABILITY
#define NK_SEED_CAPABILITY "capabilities/stackrox-apitokenservice.yaml"
#endif
#define KEY "fuzz-key-not-a-secret"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct nk_server *server;
static const char *ns;

struct answer {
    unsigned calls;
    unsigned status;
    bool echo_ok; /* the input itself holds the key: an echo of it is no leak */
};

static bool contains(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle), i;

    for (i = 0; i + k <= n; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return true;
    return false;
}

static void on_answer(void *ud, unsigned status, const char *content_type, const char *body,
                      size_t len)
{
    struct answer *a = ud;

    a->calls++;
    a->status = status;
    if (content_type != NULL && len > 0 && !nk_invoke_check_json(body, len))
        abort(); /* an answer that says it is JSON and is not */
    if (!a->echo_ok && contains(body, len, KEY))
        abort(); /* the credential leaked into an answer */
}

/* The harness must reach the router: a known path with a method it does not serve answers 405
 * (a 404 here means the harness no longer addresses the adapter as `serve` does, and every
 * input would stop at the door). */
static void routes_reached(void)
{
    struct answer a = {0, 0, false};
    struct nk_http_req *req =
        nk_http_req_detached("PUT", "/v1/v1/apitokens", NULL, NULL, 0, on_answer, &a);

    if (req == NULL)
        abort();
    nk_rest_handle(server, ns, req);
    if (a.calls != 1 || a.status != 405)
        abort();
}

static void setup(void)
{
    const char *files[] = {getenv("NK_FUZZ_CAPABILITY") ? getenv("NK_FUZZ_CAPABILITY")
                                                        : NK_SEED_CAPABILITY};
    struct nk_var var = {"central-host", "127.0.0.1:9"};
    struct nk_group_options go = {.rest_port = -1, .mcp_port = -1};
    struct nk_optable *t = NULL;
    struct nk_context *ctx = NULL;
    struct nk_diags d;
    size_t i;

    setenv("STACKROX_API_KEY", "Bearer " KEY, 1);
    nk_diags_init(&d);
    /* Grouped as `serve` groups it: the REST adapter answers on its listener (key "ADDR PORT"). */
    if (nk_optable_load(files, 1, NULL, &d, &t) != NK_OK || nk_optable_group(t, &go, &d) != NK_OK ||
        nk_context_new(t, &var, 1, &d, &ctx) != NK_OK ||
        nk_server_new(ctx, NULL, &server) != NK_OK) {
        nk_diags_print(&d, stderr);
        abort();
    }
    for (i = 0; i < t->n_listeners; i++)
        if (t->listeners[i].type == NK_ADAPTER_REST)
            ns = t->listeners[i].key;
    if (ns == NULL)
        abort();
    nk_diags_cleanup(&d);
    /* The server keeps its own references; the table lives as long as the process. */
    nk_context_unref(ctx);
    routes_reached();
}

/* Cut the next line out of [*p, end): returns a NUL-terminated copy. */
static char *next_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl != NULL ? nl : end;
    size_t n = (size_t)(stop - *p);
    char *s = malloc(n + 1); /* not strndup: the input is not NUL-terminated */

    if (s != NULL) {
        memcpy(s, *p, n);
        s[n] = '\0';
    }

    *p = nl != NULL ? nl + 1 : end;
    return s;
}

/* The pass-through checker against jansson on the same bytes. */
static void check_checker(const char *body, size_t len)
{
    json_error_t e;
    json_t *j = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    bool ours = nk_invoke_check_json(body, len);
    size_t i, depth = 0, max = 0;

    for (i = 0; i < len; i++) { /* brackets inside strings count too: an upper bound */
        if (body[i] == '[' || body[i] == '{')
            depth++;
        else if ((body[i] == ']' || body[i] == '}') && depth > 0)
            depth--;
        if (depth > max)
            max = depth;
    }
    if (memchr(body, '\0', len) != NULL) {
        /* jansson stops at a NUL byte and may accept what precedes it; no JSON holds one. */
        if (ours)
            abort();
    } else if (max < NK_JSON_MAX_DEPTH - 2) {
        if (j != NULL && !ours)
            abort(); /* refused what jansson accepts */
        if (j == NULL && ours && json_error_code(&e) != json_error_numeric_overflow &&
            json_error_code(&e) != json_error_out_of_memory)
            abort(); /* accepted what jansson refuses */
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    char *method, *target, *ctype, *host;
    struct nk_http_req *req;
    struct answer a = {0, 0, contains((const char *)data, size, KEY)};
    const char *hdrs[] = {"Content-Type", NULL, "Accept", "application/json", NULL, NULL, NULL};

    if (server == NULL)
        setup();
    method = next_line(&p, end);
    target = next_line(&p, end);
    ctype = next_line(&p, end);
    if (method == NULL || target == NULL || ctype == NULL)
        goto out;
    host = strchr(ctype, '|');
    if (host != NULL) {
        *host++ = '\0';
        hdrs[4] = "Host";
        hdrs[5] = host;
    }
    hdrs[1] = ctype;
    check_checker(p, (size_t)(end - p));
    req = nk_http_req_detached(method, target, ctype[0] != '\0' ? hdrs : hdrs + 2, p,
                               (size_t)(end - p), on_answer, &a);
    if (req == NULL)
        goto out;
    nk_rest_handle(server, ns, req);
    if (a.calls != 1 || a.status < 100 || a.status > 599)
        abort();
out:
    free(method);
    free(target);
    free(ctype);
    return 0;
}
