/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_rest.c: libFuzzer harness for the REST adapter's router and parameter mapping: the seed
 * capability is loaded once, then every input becomes one request (line 1 the method, line 2
 * the request target, line 3 the Content-Type, the rest the body) handled by nk_rest_handle()
 * on a detached request. There is no upstream client, so a request that routes and maps cleanly
 * stops at the submit after nk_invoke_build(); nothing leaves the process. Checks: exactly one
 * answer, a valid status, and the bound credential never in the answer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

    (void)content_type;
    a->calls++;
    a->status = status;
    if (!a->echo_ok && contains(body, len, KEY))
        abort(); /* the credential leaked into an answer */
}

static void setup(void)
{
    const char *files[] = {getenv("NK_FUZZ_CAPABILITY") ? getenv("NK_FUZZ_CAPABILITY")
                                                        : NK_SEED_CAPABILITY};
    struct nk_var var = {"central-host", "127.0.0.1:9"};
    struct nk_optable *t = NULL;
    struct nk_context *ctx = NULL;
    struct nk_diags d;
    size_t i;

    setenv("STACKROX_API_KEY", "Bearer " KEY, 1);
    nk_diags_init(&d);
    if (nk_optable_load(files, 1, NULL, &d, &t) != NK_OK ||
        nk_context_new(t, &var, 1, &d, &ctx) != NK_OK ||
        nk_server_new(ctx, NULL, &server) != NK_OK) {
        nk_diags_print(&d, stderr);
        abort();
    }
    for (i = 0; i < t->n_adapters; i++)
        if (t->adapters[i].type == NK_ADAPTER_REST)
            ns = t->adapters[i].ns;
    if (ns == NULL)
        abort();
    nk_diags_cleanup(&d);
    /* The server keeps its own references; the table lives as long as the process. */
    nk_context_unref(ctx);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    char *method, *target, *ctype;
    struct nk_http_req *req;
    struct answer a = {0, 0, contains((const char *)data, size, KEY)};
    const char *hdrs[] = {"Content-Type", NULL, "Accept", "application/json", NULL};

    if (server == NULL)
        setup();
    method = next_line(&p, end);
    target = next_line(&p, end);
    ctype = next_line(&p, end);
    if (method == NULL || target == NULL || ctype == NULL)
        goto out;
    hdrs[1] = ctype;
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
