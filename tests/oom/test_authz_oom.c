/* SPDX-License-Identifier: Apache-2.0 */
/* test_authz_oom.c: fails the N-th allocation for every N while compiling a permissions file,
 * deciding calls with it, and loading a document whose adapters declare inbound authentication
 * (bearer, basic, oauth2). Each run must give NK_ERR_NOMEM or exactly the unconstrained result:
 * never a crash, a leak (ASan) or another answer. Linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/authz.h"
#include "naftikod/optable.h"
#include "naftikod/spec.h"
#include "oom.h"

static const char perms[] =
    "callers:\n"
    "  - name: ci\n    match: {token: ci}\n    grants:\n"
    "      - tools: [generatetoken-*, x]\n        routes: ['POST /v1/*', 'GET /a']\n"
    "        calls: '*.generatetoken'\n        class: notDestructive\n        scope: s\n"
    "        args:\n          body.roles: {enum: [a, b], maxItems: 2, required: true}\n"
    "          body.name: {prefix: ci-, maxLength: 9, minimum: 0, maximum: 1}\n"
    "  - name: o\n    match: {oauth: {subject: 'u*', client: c, scopes: [a, b]}}\n"
    "    grants: [{class: readOnly}]\n"
    "audit:\n  - calls: '*'\n    fields: [body.name, body.roles, id]\n";

static char n_gen[] = "generatetoken", q_gen[] = "svc.generatetoken", t_gen[] = "generatetoken-x";
static struct nk_operation gen_target = {.name = n_gen, .qname = q_gen};
static struct nk_exposed gen_tool = {.name = t_gen, .target = &gen_target};

/* Compile and decide under nk_oom_countdown n; the outcome as text (or "nomem"). */
static void run(long n, char *out, size_t cap)
{
    struct nk_authz *az = NULL;
    struct nk_authz_decision d;
    struct nk_principal p;
    struct nk_error err;
    json_t *args;
    enum nk_rc rc;
    char *dumped = NULL;

    memset(&p, 0, sizeof(p));
    memset(&d, 0, sizeof(d));
    p.kind = NK_PRINCIPAL_TOKEN;
    snprintf(p.name, sizeof(p.name), "ci");
    args =
        json_loads("{\"body\":{\"name\":\"ci-a\",\"roles\":[\"a\",\"c\"]},\"id\":\"7\"}", 0, NULL);
    assert_non_null(args);
    memset(&err, 0, sizeof(err));
    nk_oom_countdown = n;
    rc = nk_authz_parse("p.yaml", perms, strlen(perms), &az, &err);
    if (rc == NK_OK)
        rc = nk_authz_check(az, &p, NK_ADAPTER_MCP, &gen_tool, args, &d);
    if (rc == NK_OK && d.audit_args != NULL) {
        dumped = json_dumps(d.audit_args, JSON_COMPACT | JSON_SORT_KEYS);
        if (dumped == NULL)
            rc = NK_ERR_NOMEM;
    }
    nk_oom_countdown = -1;
    if (rc == NK_ERR_NOMEM)
        snprintf(out, cap, "nomem");
    else if (rc != NK_OK)
        snprintf(out, cap, "rc %d: %s", (int)rc, err.msg);
    else
        snprintf(out, cap, "%d|%s|%s|%s", d.allowed, d.rule, d.reason, dumped ? dumped : "-");
    nk_authz_decision_cleanup(&d);
    free(dumped);
    nk_authz_free(az);
    json_decref(args);
}

static void test_authz_every_allocation(void **state)
{
    char want[2048], got[2048];
    long n, total;

    (void)state;
    nk_oom_calls = 0;
    run(-1, want, sizeof(want));
    total = nk_oom_calls;
    assert_true(total > 20);
    assert_null(strstr(want, "nomem"));
    for (n = 0; n < total; n++) {
        run(n, got, sizeof(got));
        if (strcmp(got, "nomem") != 0 && strcmp(got, want) != 0)
            fail_msg("allocation %ld of %ld: got '%s', want '%s'", n, total, got, want);
    }
}

static void test_adapter_auth_every_allocation(void **state)
{
    const char *files[] = {NK_TEST_DATA "/spec/valid/adapter-auth.yaml"};
    struct nk_optable *t = NULL;
    struct nk_diags d;
    enum nk_rc rc;
    long n, total;

    (void)state;
    nk_oom_calls = 0;
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 1, NULL, &d, &t), NK_OK);
    assert_non_null(t->adapters[1].oauth);
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
    total = nk_oom_calls;
    for (n = 0; n < total; n++) {
        t = NULL;
        nk_diags_init(&d);
        nk_oom_countdown = n;
        rc = nk_optable_load(files, 1, NULL, &d, &t);
        nk_oom_countdown = -1;
        if (rc != NK_OK && rc != NK_ERR_NOMEM)
            fail_msg("allocation %ld of %ld: rc %d", n, total, (int)rc);
        nk_optable_unref(t);
        nk_diags_cleanup(&d);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_authz_every_allocation),
        cmocka_unit_test(test_adapter_auth_every_allocation),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
