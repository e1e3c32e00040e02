/* SPDX-License-Identifier: Apache-2.0 */
/* test_optable_oom.c: "fail the N-th allocation": load the shipped capability with the N-th
 * malloc/calloc/realloc/strdup of naftikod's own code failing, for every N until a load needs
 * fewer allocations. Each run must return NK_ERR_NOMEM (or succeed), never crash or leak
 * (run under ASan). Linked with -Wl,--wrap so only naftikod_core's calls are counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/optable.h"
#include "oom.h"

static void run(const char *path, long n, enum nk_rc *rc)
{
    const char *files[1];
    struct nk_diags d;
    struct nk_optable *t = NULL;

    files[0] = path;
    nk_oom_disarm();
    nk_diags_init(&d);
    nk_oom_arm(n > 0 ? n - 1 : -1); /* the n-th allocation, counted from 1 */
    *rc = nk_optable_load(files, 1, NULL, &d, &t);
    nk_oom_disarm();
    nk_optable_unref(t);
    nk_diags_cleanup(&d);
}

static void fail_each(const char *path, enum nk_rc ok_rc)
{
    long n, total;
    enum nk_rc rc;

    nk_oom_calls = 0;
    run(path, -1, &rc);
    assert_int_equal(rc, ok_rc);
    total = nk_oom_calls;
    assert_true(total > 10);
    for (n = 1; n <= total; n++) {
        run(path, n, &rc);
        if (rc != NK_ERR_NOMEM && rc != ok_rc)
            fail_msg("allocation %ld of %ld: rc %d", n, total, (int)rc);
    }
}

static void test_seed_every_allocation(void **state)
{
    (void)state;
    fail_each(NK_SOURCE_DIR "/capabilities/stackrox-apitokenservice.yaml", NK_OK);
}

static void test_full_every_allocation(void **state)
{
    (void)state;
    fail_each(NK_TEST_DATA "/spec/valid/full.yaml", NK_OK);
}

/* Orchestration (steps, lookups, mappings, orchestrated outputs) and forward (issue 15). */
static void test_steps_forward_every_allocation(void **state)
{
    (void)state;
    fail_each(NK_TEST_DATA "/spec/valid/steps.yaml", NK_OK);
    fail_each(NK_TEST_DATA "/spec/valid/forward.yaml", NK_OK);
    fail_each(NK_TEST_DATA "/spec/invalid/steps-script.yaml", NK_ERR_INVALID);
    fail_each(NK_TEST_DATA "/spec/invalid/forward-bad.yaml", NK_ERR_INVALID);
}

static void test_invalid_every_allocation(void **state)
{
    (void)state;
    fail_each(NK_TEST_DATA "/spec/invalid/param-path-not-in-path.yaml", NK_ERR_INVALID);
}

/* issue 15: the ikanos translation and the aggregate functions compiled into ref operations */
static void test_ikanos_aggregates_every_allocation(void **state)
{
    (void)state;
    fail_each(NK_TEST_DATA "/spec/valid/ikanos-aggregates.yaml", NK_OK);
    /* an aggregate function with steps, compiled into a REST operation and an MCP tool */
    fail_each(NK_SOURCE_DIR "/capabilities/demo/stackrox-token-roles.yaml", NK_OK);
    fail_each(NK_TEST_DATA "/spec/invalid/ref-errors.yaml", NK_ERR_INVALID);
}

static void test_ikanos_errors_every_allocation(void **state)
{
    (void)state;
    fail_each(NK_TEST_DATA "/spec/invalid/ikanos-errors.yaml", NK_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_every_allocation),
        cmocka_unit_test(test_full_every_allocation),
        cmocka_unit_test(test_steps_forward_every_allocation),
        cmocka_unit_test(test_invalid_every_allocation),
        cmocka_unit_test(test_ikanos_aggregates_every_allocation),
        cmocka_unit_test(test_ikanos_errors_every_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
