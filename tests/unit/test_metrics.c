/* SPDX-License-Identifier: Apache-2.0 */
/* test_metrics.c: the metrics registry and its Prometheus text exposition: label escaping,
 * histogram cumulativity, status classes, operation ids, error kinds, the bounded label set. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/metrics.h"
#include "naftikod/ops.h"

static char *render(struct nk_metrics *m)
{
    struct nk_metrics_gauges g;
    size_t len = 0;
    char *text;

    memset(&g, 0, sizeof(g));
    g.inflight[NK_METRICS_REST] = 3;
    g.upstream_waiting = 7;
    g.start_time_s = 1700000000.5;
    g.resident_bytes = 4096;
    g.version = "1.2.3-\"x\"";
    text = nk_metrics_render(m, &g, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    return text;
}

/* The value of the sample line that starts with prefix (name{labels}), or -1 when absent. */
static double sample(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return -1;
}

static void test_escape_label(void **state)
{
    char out[64];
    size_t n;

    (void)state;
    n = nk_metrics_escape_label("a\\b\"c\nd", out, sizeof(out));
    assert_string_equal(out, "a\\\\b\\\"c\\nd");
    assert_int_equal(n, strlen("a\\\\b\\\"c\\nd"));
    n = nk_metrics_escape_label("plain", out, 3);
    assert_int_equal(n, 5);
    assert_string_equal(out, "pl");
}

static void test_escaped_in_exposition(void **state)
{
    struct nk_metrics *m = nk_metrics_new();
    unsigned op;
    char *text;

    (void)state;
    assert_non_null(m);
    op = nk_metrics_op(m, "we\"ird\\op\nname");
    nk_metrics_count(m, NK_METRICS_MCP, op, 200);
    text = render(m);
    assert_true(sample(text, "naftikod_requests_total{adapter=\"mcp\",operation=\"we\\\"ird\\\\op"
                             "\\nname\",code=\"2xx\"}") == 1);
    assert_non_null(strstr(text, "naftikod_build_info{version=\"1.2.3-\\\"x\\\"\"} 1\n"));
    /* No raw newline inside a sample: every line is a comment or name{...} value. */
    assert_null(strstr(text, "op\nname"));
    free(text);
    nk_metrics_free(m);
}

static void test_histogram_cumulative(void **state)
{
    struct nk_metrics *m = nk_metrics_new();
    struct nk_upstream_response r;
    static const double secs[] = {0.001, 0.004, 0.02, 0.3, 0.3, 7, 100};
    unsigned op;
    size_t i;
    char *text, *p;
    double prev = -1, v, count;
    int n_buckets = 0;

    (void)state;
    assert_non_null(m);
    op = nk_metrics_op(m, "getToken");
    memset(&r, 0, sizeof(r));
    for (i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
        r.seconds = secs[i];
        nk_metrics_observe(m, op, &r);
    }
    text = render(m);
    /* Bucket lines in order, non-decreasing, ending with +Inf == _count. */
    for (p = strstr(text, "naftikod_upstream_request_duration_seconds_bucket{"); p != NULL;
         p = strstr(p + 1, "naftikod_upstream_request_duration_seconds_bucket{")) {
        v = strtod(strchr(p, '}') + 2, NULL);
        assert_true(v >= prev);
        prev = v;
        n_buckets++;
    }
    assert_int_equal(n_buckets, 13);
    count =
        sample(text, "naftikod_upstream_request_duration_seconds_count{operation=\"getToken\"}");
    assert_true(count == 7);
    assert_true(sample(text, "naftikod_upstream_request_duration_seconds_bucket{operation="
                             "\"getToken\",le=\"+Inf\"}") == 7);
    assert_true(sample(text, "naftikod_upstream_request_duration_seconds_bucket{operation="
                             "\"getToken\",le=\"0.005\"}") == 2);
    assert_true(sample(text, "naftikod_upstream_request_duration_seconds_bucket{operation="
                             "\"getToken\",le=\"0.025\"}") == 3);
    assert_true(sample(text, "naftikod_upstream_request_duration_seconds_bucket{operation="
                             "\"getToken\",le=\"0.5\"}") == 5);
    assert_true(sample(text, "naftikod_upstream_request_duration_seconds_bucket{operation="
                             "\"getToken\",le=\"30\"}") == 6);
    v = sample(text, "naftikod_upstream_request_duration_seconds_sum{operation=\"getToken\"}");
    assert_true(v > 107.624 && v < 107.626);
    free(text);
    nk_metrics_free(m);
}

static void test_codes_and_families(void **state)
{
    struct nk_metrics *m = nk_metrics_new();
    unsigned a, b;
    char *text;

    (void)state;
    assert_non_null(m);
    a = nk_metrics_op(m, "listTokens");
    b = nk_metrics_op(m, "listTokens");
    assert_int_equal(a, b);
    assert_int_not_equal(a, NK_METRICS_UNMATCHED);
    assert_int_equal(nk_metrics_op(m, NULL), NK_METRICS_UNMATCHED);
    nk_metrics_count(m, NK_METRICS_REST, a, 200);
    nk_metrics_count(m, NK_METRICS_REST, a, 204);
    nk_metrics_count(m, NK_METRICS_REST, a, 302);
    nk_metrics_count(m, NK_METRICS_REST, a, 404);
    nk_metrics_count(m, NK_METRICS_REST, a, 504);
    nk_metrics_count(m, NK_METRICS_REST, NK_METRICS_UNMATCHED, 405);
    nk_metrics_reloaded(m, true);
    nk_metrics_reloaded(m, false);
    nk_metrics_reloaded(m, false);
    text = render(m);
    assert_true(sample(text, "naftikod_requests_total{adapter=\"rest\",operation=\"listTokens\","
                             "code=\"2xx\"}") == 2);
    assert_true(sample(text, "naftikod_requests_total{adapter=\"rest\",operation=\"listTokens\","
                             "code=\"3xx\"}") == 1);
    assert_true(sample(text, "naftikod_requests_total{adapter=\"rest\",operation=\"listTokens\","
                             "code=\"4xx\"}") == 1);
    assert_true(sample(text, "naftikod_requests_total{adapter=\"rest\",operation=\"listTokens\","
                             "code=\"5xx\"}") == 1);
    assert_true(sample(text, "naftikod_requests_total{adapter=\"rest\",operation=\"unmatched\","
                             "code=\"4xx\"}") == 1);
    /* The MCP side of listTokens was never used: no series. */
    assert_true(sample(text, "naftikod_requests_total{adapter=\"mcp\",operation=\"listTokens\","
                             "code=\"2xx\"}") < 0);
    assert_true(sample(text, "naftikod_reloads_total{result=\"ok\"}") == 1);
    assert_true(sample(text, "naftikod_reloads_total{result=\"error\"}") == 2);
    assert_true(sample(text, "naftikod_inflight_requests{adapter=\"rest\"}") == 3);
    assert_true(sample(text, "naftikod_inflight_requests{adapter=\"mcp\"}") == 0);
    assert_true(sample(text, "naftikod_upstream_waiting_calls") == 7);
    assert_true(sample(text, "process_start_time_seconds") == 1700000000.5);
    assert_true(sample(text, "process_resident_memory_bytes") == 4096);
    assert_non_null(strstr(text, "# TYPE naftikod_requests_total counter\n"));
    assert_non_null(strstr(text, "# TYPE naftikod_upstream_request_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE naftikod_upstream_errors_total counter\n"));
    assert_non_null(strstr(text, "# TYPE naftikod_inflight_requests gauge\n"));
    assert_non_null(strstr(text, "# TYPE naftikod_reloads_total counter\n"));
    assert_non_null(strstr(text, "# TYPE naftikod_build_info gauge\n"));
    assert_non_null(strstr(text, "# TYPE process_start_time_seconds gauge\n"));
    assert_non_null(strstr(text, "# TYPE process_resident_memory_bytes gauge\n"));
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);
    nk_metrics_free(m);
}

/* Per-loop counters: absent with one loop, one series per loop once set, out of range ignored. */
static void test_loop_counters(void **state)
{
    struct nk_metrics *m = nk_metrics_new();
    char *text;

    (void)state;
    assert_non_null(m);
    nk_metrics_loop_count(m, 0);
    text = render(m);
    assert_null(strstr(text, "naftikod_loop_requests_total"));
    free(text);
    nk_metrics_set_loops(m, 2);
    nk_metrics_loop_count(m, 1);
    nk_metrics_loop_count(m, 1);
    nk_metrics_loop_count(m, NK_METRICS_MAX_LOOPS);
    text = render(m);
    assert_non_null(strstr(text, "# TYPE naftikod_loop_requests_total counter"));
    assert_true(sample(text, "naftikod_loop_requests_total{loop=\"0\"}") == 1);
    assert_true(sample(text, "naftikod_loop_requests_total{loop=\"1\"}") == 2);
    assert_true(sample(text, "naftikod_loop_requests_total{loop=\"2\"}") == -1);
    free(text);
    nk_metrics_free(m);
}

static void test_error_kinds(void **state)
{
    struct nk_metrics *m = nk_metrics_new();
    struct nk_upstream_response r;
    static const struct {
        enum nk_rc rc;
        const char *msg;
    } cases[] = {
        {NK_ERR_UPSTREAM, "connection refused"},
        {NK_ERR_UPSTREAM, "could not resolve host"},
        {NK_ERR_TIMEOUT, "no answer before the timeout"},
        {NK_ERR_UPSTREAM, "TLS certificate verification failed"},
        {NK_ERR_UPSTREAM, "TLS handshake failed"},
        {NK_ERR_TOO_LARGE, "response larger than 10 bytes"},
        {NK_ERR_UPSTREAM, "connection reset by peer"},
        {NK_OK, ""},
    };
    size_t i;
    char *text;

    (void)state;
    assert_non_null(m);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&r, 0, sizeof(r));
        r.rc = cases[i].rc;
        snprintf(r.error, sizeof(r.error), "%s", cases[i].msg);
        nk_metrics_observe(m, nk_metrics_op(m, "op"), &r);
    }
    text = render(m);
    assert_true(sample(text, "naftikod_upstream_errors_total{kind=\"connect\"}") == 2);
    assert_true(sample(text, "naftikod_upstream_errors_total{kind=\"timeout\"}") == 1);
    assert_true(sample(text, "naftikod_upstream_errors_total{kind=\"tls\"}") == 2);
    assert_true(sample(text, "naftikod_upstream_errors_total{kind=\"too_large\"}") == 1);
    assert_true(sample(text, "naftikod_upstream_errors_total{kind=\"other\"}") == 1);
    assert_true(
        sample(text, "naftikod_upstream_request_duration_seconds_count{operation=\"op\"}") == 8);
    free(text);
    nk_metrics_free(m);
}

static void test_bounded_names(void **state)
{
    struct nk_metrics *m = nk_metrics_new();
    char name[32];
    unsigned i, id, seen_other = 0;

    (void)state;
    assert_non_null(m);
    for (i = 0; i < NK_METRICS_MAX_OPS + 50; i++) {
        snprintf(name, sizeof(name), "op%u", i);
        id = nk_metrics_op(m, name);
        assert_true(id < NK_METRICS_MAX_OPS);
        if (id == NK_METRICS_OTHER)
            seen_other++;
        else
            assert_int_equal(nk_metrics_op(m, name), id); /* stable */
    }
    /* Slots 0 and 1 are "unmatched" and "other": 52 names overflow into "other". */
    assert_int_equal(seen_other, 52);
    nk_metrics_free(m);
}

/* An exposed operation is keyed by its name and its adapter's namespace: the same name in two
 * adapters counts apart, each pair keeps its id, a name alone is a third key, and the exposition
 * shows the namespace as a label of its own. */
static void test_op_of_namespaces(void **state)
{
    struct nk_metrics *m = nk_metrics_new();
    unsigned a, b, alone, prefix;
    char *text;

    (void)state;
    assert_non_null(m);
    a = nk_metrics_op_of(m, "rest-a", "list");
    b = nk_metrics_op_of(m, "rest-b", "list");
    alone = nk_metrics_op(m, "list");
    prefix = nk_metrics_op_of(m, "rest", "list"); /* a prefix of "rest-a" is another key */
    assert_int_not_equal(a, b);
    assert_int_not_equal(a, alone);
    assert_int_not_equal(b, alone);
    assert_int_not_equal(prefix, a);
    assert_int_equal(nk_metrics_op_of(m, "rest-a", "list"), a);
    assert_int_equal(nk_metrics_op_of(m, "rest-b", "list"), b);
    assert_int_equal(nk_metrics_op_of(m, NULL, "list"), alone);
    assert_int_equal(nk_metrics_op_of(m, "rest-a", NULL), NK_METRICS_UNMATCHED);
    assert_int_not_equal(nk_metrics_op_of(m, "rest-a", "lis"), a);
    nk_metrics_count(m, NK_METRICS_REST, b, 200);
    text = render(m);
    assert_non_null(strstr(text, "operation=\"list\",adapter_namespace=\"rest-b\""));
    free(text);
    nk_metrics_free(m);
}

struct race {
    struct nk_metrics *m;
    int seed;
};

static void *race_thread(void *ud)
{
    struct race *r = ud;
    char name[32];
    int i;

    for (i = 0; i < 2000; i++) {
        snprintf(name, sizeof(name), "op%d", (i * 7 + r->seed) % 40);
        nk_metrics_count(r->m, NK_METRICS_REST, nk_metrics_op(r->m, name), 200);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    struct nk_metrics *m = nk_metrics_new();
    struct race r[4];
    pthread_t t[4];
    int i;
    double total = 0;
    char *text, *p;

    (void)state;
    assert_non_null(m);
    for (i = 0; i < 4; i++) {
        r[i].m = m;
        r[i].seed = i;
        assert_int_equal(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
    }
    for (i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    text = render(m);
    for (p = strstr(text, "code=\"2xx\"} "); p != NULL; p = strstr(p + 1, "code=\"2xx\"} "))
        total += strtod(p + strlen("code=\"2xx\"} "), NULL);
    assert_true(total == 8000);
    /* Each name registered once: exactly 40 operation series. */
    i = 0;
    for (p = strstr(text, "code=\"2xx\"} "); p != NULL; p = strstr(p + 1, "code=\"2xx\"} "))
        i++;
    assert_int_equal(i, 40);
    free(text);
    nk_metrics_free(m);
}

static void test_parse_listen(void **state)
{
    char addr[64];
    unsigned port = 1;
    bool off = false;

    (void)state;
    assert_true(nk_ops_parse_listen("off", addr, sizeof(addr), &port, &off) && off);
    assert_true(nk_ops_parse_listen("0.0.0.0:8091", addr, sizeof(addr), &port, &off) && !off);
    assert_string_equal(addr, "0.0.0.0");
    assert_int_equal(port, 8091);
    assert_true(nk_ops_parse_listen("[::1]:0", addr, sizeof(addr), &port, &off));
    assert_string_equal(addr, "::1");
    assert_int_equal(port, 0);
    assert_true(nk_ops_parse_listen(":9000", addr, sizeof(addr), &port, &off));
    assert_string_equal(addr, "127.0.0.1");
    assert_false(nk_ops_parse_listen("127.0.0.1", addr, sizeof(addr), &port, &off));
    assert_false(nk_ops_parse_listen("127.0.0.1:", addr, sizeof(addr), &port, &off));
    assert_false(nk_ops_parse_listen("127.0.0.1:65536", addr, sizeof(addr), &port, &off));
    assert_false(nk_ops_parse_listen("127.0.0.1:-1", addr, sizeof(addr), &port, &off));
    assert_false(nk_ops_parse_listen("::1:80", addr, sizeof(addr), &port, &off));
    assert_false(nk_ops_parse_listen("on", addr, sizeof(addr), &port, &off));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_label),         cmocka_unit_test(test_escaped_in_exposition),
        cmocka_unit_test(test_histogram_cumulative), cmocka_unit_test(test_codes_and_families),
        cmocka_unit_test(test_error_kinds),          cmocka_unit_test(test_loop_counters),
        cmocka_unit_test(test_bounded_names),        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_parse_listen),         cmocka_unit_test(test_op_of_namespaces),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
