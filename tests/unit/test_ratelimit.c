/* SPDX-License-Identifier: Apache-2.0 */
/* test_ratelimit.c: per-client buckets: the two addresses of issue 17 (127.0.0.1 and
 * 127.0.0.144, which shared a bucket under the unkeyed hash) and many distinct addresses get
 * independent buckets; batches take n tokens or none; a full table still limits, and reuses a
 * slot only once its owner's bucket is full again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "naftikod/ratelimit.h"

static void addr_of(unsigned i, char *buf, size_t cap)
{
    snprintf(buf, cap, "10.%u.%u.%u", (i >> 16) & 255U, (i >> 8) & 255U, i & 255U);
}

static void test_issue_pair(void **state)
{
    struct nk_rate *t = NULL;
    unsigned retry = 0;

    (void)state;
    assert_int_equal(nk_rate_new(1, 1, 0, &t), NK_OK);
    assert_true(nk_rate_take(t, "127.0.0.1", 1, 100.0, &retry));
    assert_false(nk_rate_take(t, "127.0.0.1", 1, 100.0, &retry));
    assert_int_equal(retry, 1);
    /* The neighbour keeps its own full bucket, and using it leaves 127.0.0.1's alone. */
    assert_true(nk_rate_take(t, "127.0.0.144", 1, 100.0, &retry));
    assert_false(nk_rate_take(t, "127.0.0.144", 1, 100.0, &retry));
    assert_false(nk_rate_take(t, "127.0.0.1", 1, 100.5, &retry));
    assert_true(nk_rate_take(t, "127.0.0.1", 1, 101.0, &retry));
    nk_rate_free(t);
}

/* 1024 addresses in 4096 slots: each gets exactly its own burst, none is charged for another
 * (a quarter full, no address's probe window of 64 slots fills up, whatever the hash key). */
static void test_distinct_addresses(void **state)
{
    struct nk_rate *t = NULL;
    unsigned retry, i;
    char a[32];

    (void)state;
    assert_int_equal(nk_rate_new(0.001, 2, 4096, &t), NK_OK);
    for (i = 0; i < 1024; i++) {
        addr_of(i, a, sizeof(a));
        assert_true(nk_rate_take(t, a, 1, 0.0, &retry));
    }
    for (i = 0; i < 1024; i++) {
        addr_of(i, a, sizeof(a));
        assert_true(nk_rate_take(t, a, 1, 0.0, &retry));
        assert_false(nk_rate_take(t, a, 1, 0.0, &retry));
    }
    nk_rate_free(t);
}

static void test_batch_all_or_nothing(void **state)
{
    struct nk_rate *t = NULL;
    unsigned retry = 0;

    (void)state;
    assert_int_equal(nk_rate_new(1, 5, 0, &t), NK_OK);
    assert_true(nk_rate_take(t, "::1", 3, 0.0, &retry));
    assert_false(nk_rate_take(t, "::1", 3, 0.0, &retry));
    assert_int_equal(retry, 1); /* 2 left, 1 s until 3 */
    assert_true(nk_rate_take(t, "::1", 2, 0.0, &retry));
    assert_false(nk_rate_take(t, "::1", 1, 0.0, &retry));
    assert_false(nk_rate_take(t, "::1", 10, 0.0, &retry));
    assert_int_equal(retry, 10);
    nk_rate_free(t);
}

/* The smallest table (NK_RATE_PROBE slots, so every address may use every slot). */
static void test_full_table_limits(void **state)
{
    struct nk_rate *t = NULL;
    unsigned retry = 0, i;
    char a[32];

    (void)state;
    assert_int_equal(nk_rate_new(1, 1, 1, &t), NK_OK);
    for (i = 0; i < NK_RATE_PROBE; i++) {
        addr_of(i, a, sizeof(a));
        assert_true(nk_rate_take(t, a, 1, 0.0, &retry));
    }
    /* Full of clients still refilling: a newcomer is refused, not given a shared bucket, and
     * nobody's empty bucket is refilled by an eviction. */
    assert_false(nk_rate_take(t, "192.0.2.1", 1, 0.5, &retry));
    assert_int_equal(retry, 1);
    for (i = 0; i < NK_RATE_PROBE; i++) {
        addr_of(i, a, sizeof(a));
        assert_false(nk_rate_take(t, a, 1, 0.5, &retry));
    }
    /* Once buckets are full again their slots may go to newcomers; then they are refused again
     * while the newcomers' buckets refill. */
    assert_true(nk_rate_take(t, "192.0.2.1", 1, 2.0, &retry));
    assert_false(nk_rate_take(t, "192.0.2.1", 1, 2.0, &retry));
    for (i = 1; i < NK_RATE_PROBE; i++) {
        addr_of(1000 + i, a, sizeof(a));
        assert_true(nk_rate_take(t, a, 1, 2.0, &retry));
    }
    assert_false(nk_rate_take(t, "192.0.2.2", 1, 2.0, &retry));
    nk_rate_free(t);
}

static void test_bad_arguments(void **state)
{
    struct nk_rate *t = NULL;

    (void)state;
    assert_int_equal(nk_rate_new(0, 1, 0, &t), NK_ERR_INVALID);
    assert_int_equal(nk_rate_new(1, 0, 0, &t), NK_ERR_INVALID);
    assert_null(t);
    nk_rate_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_issue_pair),           cmocka_unit_test(test_distinct_addresses),
        cmocka_unit_test(test_batch_all_or_nothing), cmocka_unit_test(test_full_table_limits),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
