/* SPDX-License-Identifier: Apache-2.0 */
/* test_upstream.c: the shared HTTP client against a recording server inside the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "fake_http.h"
#include "naftikod/loop.h"
#include "naftikod/template.h"
#include "naftikod/upstream.h"

/* The loop every client of this test runs on (global_setup). */
static struct nk_loop *g_loop;

/* A completion slot that a test can wait on. */
struct done {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool fired;
    int order; /* 1-based order in which callbacks fired */
    int *counter;
    struct nk_upstream_response resp;
};

static void done_init(struct done *d, int *counter)
{
    memset(d, 0, sizeof(*d));
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    d->counter = counter;
}

static void done_cleanup(struct done *d)
{
    nk_upstream_response_cleanup(&d->resp);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;

static void on_done(void *ud, struct nk_upstream_response *resp)
{
    struct done *d = ud;

    pthread_mutex_lock(&d->mu);
    if (d->fired) /* cmocka asserts cannot run on the client's thread */
        abort();
    d->resp = *resp;
    /* Take the body and content type: the client must not free them now. */
    resp->body = NULL;
    resp->content_type = NULL;
    if (d->counter != NULL) {
        pthread_mutex_lock(&order_mu);
        d->order = ++*d->counter;
        pthread_mutex_unlock(&order_mu);
    }
    d->fired = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* d's callback has not run (yet). */
static void assert_not_fired(struct done *d)
{
    pthread_mutex_lock(&d->mu);
    assert_false(d->fired);
    pthread_mutex_unlock(&d->mu);
}

static void done_wait(struct done *d)
{
    pthread_mutex_lock(&d->mu);
    while (!d->fired)
        pthread_cond_wait(&d->cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);

    assert_non_null(p);
    return p;
}

/* Build a request; headers is a NULL-terminated list. */
static void make_req(struct nk_upstream_request *r, const char *method, const char *url,
                     const char *const *headers, const char *body)
{
    size_t n = 0, i;

    memset(r, 0, sizeof(*r));
    r->method = xstrdup(method);
    r->url = xstrdup(url);
    while (headers != NULL && headers[n] != NULL)
        n++;
    r->headers = calloc(n + 1, sizeof(char *));
    assert_non_null(r->headers);
    for (i = 0; i < n; i++)
        r->headers[i] = xstrdup(headers[i]);
    r->n_headers = n;
    if (body != NULL) {
        r->body = xstrdup(body);
        r->body_len = strlen(body);
    }
}

static void submit(struct nk_upstream *u, const char *method, const char *url,
                   const char *const *headers, const char *body, struct done *d)
{
    struct nk_upstream_request r;

    make_req(&r, method, url, headers, body);
    assert_int_equal(nk_upstream_submit(u, &r, on_done, d), NK_OK);
    assert_null(r.url);
}

static void fetch(struct nk_upstream *u, const char *method, const char *url,
                  const char *const *headers, const char *body, struct done *d)
{
    done_init(d, NULL);
    submit(u, method, url, headers, body, d);
    done_wait(d);
}

/* A client on g_loop with at most max transfers per origin at once (0: the default). */
static struct nk_upstream *client_with(long timeout_ms, size_t max_response, unsigned max)
{
    struct nk_upstream_options o;
    struct nk_upstream *u = NULL;
    struct nk_error err;

    memset(&o, 0, sizeof(o));
    o.timeout_ms = timeout_ms;
    o.max_response = max_response;
    o.max_host_conns = max;
    assert_int_equal(nk_upstream_new(g_loop, &o, &u, &err), NK_OK);
    return u;
}

static struct nk_upstream *client(long timeout_ms, size_t max_response)
{
    return client_with(timeout_ms, max_response, 0);
}

/* Handler: answers by path prefix. */
static void handler(void *ud, const struct fake_req *req, struct fake_resp *resp)
{
    size_t n;

    (void)ud;
    if (strncmp(req->target, "/stall", 6) == 0) {
        resp->stall = true;
    } else if (strncmp(req->target, "/big-close", 10) == 0 ||
               strncmp(req->target, "/big", 4) == 0) {
        n = 4096;
        resp->body = malloc(n);
        assert_non_null(resp->body);
        memset(resp->body, 'x', n);
        resp->body_len = n;
        resp->content_type = "text/plain";
        resp->no_length = strncmp(req->target, "/big-close", 10) == 0;
    } else if (strncmp(req->target, "/pattern", 8) == 0) {
        /* 1 MiB of a pattern that shows a lost, doubled or reordered piece */
        n = 1024 * 1024;
        resp->body = malloc(n);
        assert_non_null(resp->body);
        for (size_t i = 0; i < n; i++)
            resp->body[i] = (char)(i % 251);
        resp->body_len = n;
        resp->content_type = "application/octet-stream";
        resp->no_length = strcmp(req->target, "/pattern-close") == 0;
    } else if (strcmp(req->target, "/redirect") == 0) {
        resp->status = 302;
        resp->extra_headers = "Location: /elsewhere\r\n";
    } else if (strcmp(req->target, "/error") == 0) {
        resp->status = 400;
        resp->body = strdup("{\"code\":3,\"message\":\"bad\"}");
        resp->body_len = strlen(resp->body);
    } else if (strcmp(req->target, "/empty") == 0) {
        resp->body = strdup("");
        resp->body_len = 0;
        resp->content_type = NULL;
    }
}

static int setup(void **state)
{
    *state = fake_http_start(handler, NULL);
    return 0;
}

static int teardown(void **state)
{
    fake_http_stop(*state);
    return 0;
}

static void test_get_records_everything(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    const char *hdrs[] = {"Authorization: Bearer test-key-not-a-secret", "X-Request-Id: req-42",
                          "Accept: application/json", NULL};
    const char *hostile[] = {"../x?y=1#z", "a/b", "%", "\xc3\xa9", "a b", "..", NULL};
    const char *want[] = {"/v1/t/..%2Fx%3Fy%3D1%23z",
                          "/v1/t/a%2Fb",
                          "/v1/t/%25",
                          "/v1/t/%C3%A9",
                          "/v1/t/a%20b",
                          "/v1/t/%2E%2E"};
    struct fake_req *r;
    struct done d;
    char url[512], *enc;
    size_t i, n;

    for (i = 0; hostile[i] != NULL; i++) {
        enc = nk_pct_encode(hostile[i], strlen(hostile[i]), NK_ENC_SEGMENT);
        snprintf(url, sizeof(url), "%s/v1/t/%s", fake_http_base(s), enc);
        free(enc);
        fetch(u, "GET", url, hdrs, NULL, &d);
        assert_int_equal(d.resp.rc, NK_OK);
        assert_int_equal(d.resp.status, 200);
        assert_string_equal(d.resp.body, "{\"ok\":true}");
        assert_int_equal(d.resp.body_len, 11);
        assert_string_equal(d.resp.content_type, "application/json");
        done_cleanup(&d);
        r = fake_http_request(s, i);
        assert_non_null(r);
        assert_string_equal(r->method, "GET");
        assert_string_equal(r->target, want[i]);
        assert_string_equal(fake_req_header(r, "Authorization", &n),
                            "Bearer test-key-not-a-secret");
        assert_int_equal(n, 1);
        assert_string_equal(fake_req_header(r, "X-Request-Id", NULL), "req-42");
        assert_string_equal(fake_req_header(r, "Accept", &n), "application/json");
        assert_int_equal(n, 1);
        assert_int_equal(r->body_len, 0);
        fake_req_free(r);
    }
    nk_upstream_free(u);
}

static void test_query_and_body(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    const char *hdrs[] = {"Content-Type: application/json", NULL};
    struct fake_req *r;
    struct done d;
    char url[512], *enc;

    enc = nk_pct_encode("a b&c=d", 7, NK_ENC_QUERY);
    snprintf(url, sizeof(url), "%s/q?x=%s&x=2", fake_http_base(s), enc);
    free(enc);
    fetch(u, "POST", url, hdrs, "{\"name\":\"t\"}", &d);
    assert_int_equal(d.resp.rc, NK_OK);
    done_cleanup(&d);
    r = fake_http_request(s, 0);
    assert_string_equal(r->method, "POST");
    assert_string_equal(r->target, "/q?x=a%20b%26c%3Dd&x=2");
    assert_string_equal(r->body, "{\"name\":\"t\"}");
    assert_string_equal(fake_req_header(r, "Content-Type", NULL), "application/json");
    assert_null(fake_req_header(r, "Expect", NULL));
    fake_req_free(r);

    /* PATCH with no body: Content-Length 0, no form content type invented by curl. */
    snprintf(url, sizeof(url), "%s/v1/revoke/x", fake_http_base(s));
    fetch(u, "PATCH", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_OK);
    done_cleanup(&d);
    r = fake_http_request(s, 1);
    assert_string_equal(r->method, "PATCH");
    assert_string_equal(fake_req_header(r, "Content-Length", NULL), "0");
    assert_null(fake_req_header(r, "Content-Type", NULL));
    fake_req_free(r);

    snprintf(url, sizeof(url), "%s/v1/x", fake_http_base(s));
    fetch(u, "DELETE", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_OK);
    done_cleanup(&d);
    r = fake_http_request(s, 2);
    assert_string_equal(r->method, "DELETE");
    fake_req_free(r);
    nk_upstream_free(u);
}

static void test_status_passthrough(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    struct done d;
    char url[512];

    snprintf(url, sizeof(url), "%s/redirect", fake_http_base(s));
    fetch(u, "GET", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_OK);
    assert_int_equal(d.resp.status, 302); /* not followed */
    done_cleanup(&d);
    assert_int_equal(fake_http_n_requests(s), 1);

    snprintf(url, sizeof(url), "%s/error", fake_http_base(s));
    fetch(u, "GET", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_OK);
    assert_int_equal(d.resp.status, 400);
    assert_string_equal(d.resp.body, "{\"code\":3,\"message\":\"bad\"}");
    done_cleanup(&d);

    snprintf(url, sizeof(url), "%s/empty", fake_http_base(s));
    fetch(u, "GET", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_OK);
    assert_int_equal(d.resp.status, 200);
    assert_non_null(d.resp.body);
    assert_int_equal(d.resp.body_len, 0);
    assert_null(d.resp.content_type);
    done_cleanup(&d);
    nk_upstream_free(u);
}

static void test_timeout(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(300, 0);
    struct done d;
    char url[512];

    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    fetch(u, "GET", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_ERR_TIMEOUT);
    assert_int_equal(d.resp.status, 0);
    assert_null(d.resp.body);
    assert_true(d.resp.error[0] != '\0');
    done_cleanup(&d);
    nk_upstream_free(u);
}

static void test_refused(void **state)
{
    struct nk_upstream *u = client(0, 0);
    const char *hdrs[] = {"Authorization: Bearer test-key-not-a-secret", NULL};
    struct done d;
    char url[512];

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", (unsigned)fake_unused_port());
    fetch(u, "GET", url, hdrs, NULL, &d);
    assert_int_equal(d.resp.rc, NK_ERR_UPSTREAM);
    assert_string_equal(d.resp.error, "connection refused");
    assert_null(strstr(d.resp.error, "test-key"));
    done_cleanup(&d);

    fetch(u, "GET", "ftp://127.0.0.1/x", NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_ERR_UPSTREAM);
    assert_non_null(strstr(d.resp.error, "scheme"));
    done_cleanup(&d);
    nk_upstream_free(u);
}

static void test_size_cap(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 1024);
    struct done d;
    char url[512];

    /* Announced by Content-Length. */
    snprintf(url, sizeof(url), "%s/big", fake_http_base(s));
    fetch(u, "GET", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_ERR_TOO_LARGE);
    assert_null(d.resp.body);
    done_cleanup(&d);
    /* Streamed without a length: caught in the write callback. */
    snprintf(url, sizeof(url), "%s/big-close", fake_http_base(s));
    fetch(u, "GET", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_ERR_TOO_LARGE);
    done_cleanup(&d);
    nk_upstream_free(u);

    /* Exactly at the cap is fine. */
    u = client(0, 4096);
    snprintf(url, sizeof(url), "%s/big-close", fake_http_base(s));
    fetch(u, "GET", url, NULL, NULL, &d);
    assert_int_equal(d.resp.rc, NK_OK);
    assert_int_equal(d.resp.body_len, 4096);
    assert_string_equal(d.resp.content_type, "text/plain");
    done_cleanup(&d);
    nk_upstream_free(u);
}

static void test_stall_does_not_block_others(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    struct done slow, fast;
    char url[512];
    int counter = 0;

    done_init(&slow, &counter);
    done_init(&fast, &counter);
    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &slow);
    fake_http_wait_requests(s, 1); /* the stalling one is really on the wire */
    snprintf(url, sizeof(url), "%s/fast", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &fast);
    done_wait(&fast);
    assert_int_equal(fast.resp.rc, NK_OK);
    /* the fast one is counted down only after its callback returns: 1 or 2 here */
    assert_true(nk_upstream_in_flight(u) >= 1);
    assert_not_fired(&slow);
    fake_http_release(s);
    done_wait(&slow);
    if (slow.resp.rc != NK_OK)
        fail_msg("slow: %s (%s)", nk_rc_str(slow.resp.rc), slow.resp.error);
    assert_int_equal(fast.order, 1);
    assert_int_equal(slow.order, 2);
    done_cleanup(&slow);
    done_cleanup(&fast);
    nk_upstream_free(u);
}

/* nk_upstream_cancel aborts the tagged transfer only, at once (issue 17, item 15). */
static void test_cancel(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    struct nk_upstream_request r;
    struct done tagged, other;
    char url[512];

    done_init(&tagged, NULL);
    done_init(&other, NULL);
    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    make_req(&r, "GET", url, NULL, NULL);
    r.cancel_tag = 42;
    assert_int_equal(nk_upstream_submit(u, &r, on_done, &tagged), NK_OK);
    submit(u, "GET", url, NULL, NULL, &other);
    fake_http_wait_requests(s, 2); /* both are on the wire */
    nk_upstream_cancel(u, 0);      /* no tag: nothing */
    nk_upstream_cancel(u, 7);      /* no such tag: nothing */
    nk_upstream_cancel(u, 42);
    done_wait(&tagged);
    assert_int_equal(tagged.resp.rc, NK_ERR_UPSTREAM);
    assert_string_equal(tagged.resp.error, "cancelled");
    assert_null(tagged.resp.body);
    assert_not_fired(&other);
    fake_http_release(s);
    done_wait(&other);
    assert_int_equal(other.resp.rc, NK_OK);
    done_cleanup(&tagged);
    done_cleanup(&other);
    nk_upstream_free(u);
}

static void test_keepalive_reuse(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    struct done d;
    char url[512];
    int i;

    for (i = 0; i < 5; i++) {
        snprintf(url, sizeof(url), "%s/k/%d", fake_http_base(s), i);
        fetch(u, i % 2 ? "POST" : "GET", url, NULL, i % 2 ? "{}" : NULL, &d);
        assert_int_equal(d.resp.rc, NK_OK);
        done_cleanup(&d);
    }
    assert_int_equal(fake_http_n_requests(s), 5);
    assert_int_equal(fake_http_n_connections(s), 1);
    nk_upstream_free(u);
}

static void test_free_completes_in_flight(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    struct done d;
    char url[512];

    done_init(&d, NULL);
    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &d);
    fake_http_wait_requests(s, 1);
    assert_int_equal(nk_upstream_in_flight(u), 1);
    nk_upstream_free(u);
    assert_true(d.fired);
    assert_int_equal(d.resp.rc, NK_ERR_UPSTREAM);
    assert_string_equal(d.resp.error, "shutting down");
    done_cleanup(&d);
    nk_upstream_free(NULL);
}

/* A client whose loop stopped first: its transfers end on the thread that frees it, and a
 * submit is refused rather than queued for a loop that will never run it. */
static void test_loop_stopped_before_free(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream_request r;
    struct nk_upstream *u = NULL;
    struct nk_loop *l = NULL;
    struct done d;
    char url[512];

    assert_int_equal(nk_loop_new(&l, NULL), NK_OK);
    assert_int_equal(nk_loop_start(l, NULL), NK_OK);
    assert_int_equal(nk_upstream_new(l, NULL, &u, NULL), NK_OK);
    done_init(&d, NULL);
    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &d);
    fake_http_wait_requests(s, 1);
    nk_loop_stop(l);
    assert_false(d.fired);
    make_req(&r, "GET", url, NULL, NULL);
    assert_int_equal(nk_upstream_submit(u, &r, on_done, NULL), NK_ERR_INVALID);
    assert_int_equal(nk_upstream_in_flight(u), 1);
    nk_upstream_free(u);
    assert_true(d.fired);
    assert_int_equal(d.resp.rc, NK_ERR_UPSTREAM);
    assert_string_equal(d.resp.error, "shutting down");
    done_cleanup(&d);
    nk_loop_free(l);
}

static void test_submit_invalid(void **state)
{
    struct nk_upstream *u = client(0, 0);
    struct nk_upstream_request r;

    (void)state;
    make_req(&r, "GET", "http://127.0.0.1/", NULL, NULL);
    free(r.method);
    r.method = NULL;
    assert_int_equal(nk_upstream_submit(u, &r, on_done, NULL), NK_ERR_INVALID);
    assert_null(r.url); /* stolen even on failure */
    assert_int_equal(nk_upstream_in_flight(u), 0);
    nk_upstream_free(u);
}

static void test_many_concurrent(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    struct done d[20];
    char url[512];
    int i;

    for (i = 0; i < 20; i++) {
        done_init(&d[i], NULL);
        snprintf(url, sizeof(url), "%s/c/%d", fake_http_base(s), i);
        submit(u, "GET", url, NULL, NULL, &d[i]);
    }
    for (i = 0; i < 20; i++) {
        done_wait(&d[i]);
        assert_int_equal(d[i].resp.rc, NK_OK);
        done_cleanup(&d[i]);
    }
    assert_int_equal(fake_http_n_requests(s), 20);
    nk_upstream_free(u);
}

/* Until n transfers of u wait (bounded: 10 s). */
static void wait_waiting(struct nk_upstream *u, size_t n)
{
    int i;

    for (i = 0; i < 10000 && nk_upstream_waiting(u) != n; i++)
        usleep(1000);
    assert_int_equal(nk_upstream_waiting(u), n);
}

/* Beyond max_host_conns transfers of one origin wait without reaching the server, start in
 * order as the running ones end, and a waiting one can be cancelled. */
static void test_waiting_room(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client_with(0, 0, 2);
    struct nk_upstream_request r;
    struct done d[5];
    char url[512];
    int i, counter = 0;

    for (i = 0; i < 5; i++)
        done_init(&d[i], &counter);
    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &d[0]);
    submit(u, "GET", url, NULL, NULL, &d[1]);
    fake_http_wait_requests(s, 2);
    snprintf(url, sizeof(url), "%s/fast/2", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &d[2]);
    snprintf(url, sizeof(url), "%s/fast/3", fake_http_base(s));
    make_req(&r, "GET", url, NULL, NULL);
    r.cancel_tag = 9;
    assert_int_equal(nk_upstream_submit(u, &r, on_done, &d[3]), NK_OK);
    snprintf(url, sizeof(url), "%s/fast/4", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &d[4]);
    wait_waiting(u, 3);
    assert_int_equal(nk_upstream_in_flight(u), 5);
    assert_int_equal(fake_http_n_requests(s), 2); /* the three wait here, not at the server */

    nk_upstream_cancel(u, 9);
    done_wait(&d[3]);
    assert_int_equal(d[3].resp.rc, NK_ERR_UPSTREAM);
    assert_string_equal(d[3].resp.error, "cancelled");
    assert_int_equal(nk_upstream_waiting(u), 2);

    fake_http_release(s);
    for (i = 0; i < 5; i++) {
        done_wait(&d[i]);
        if (i != 3 && d[i].resp.rc != NK_OK)
            fail_msg("transfer %d: %s (%s)", i, nk_rc_str(d[i].resp.rc), d[i].resp.error);
    }
    assert_int_equal(fake_http_n_requests(s), 4); /* the cancelled one never went out */
    assert_int_equal(nk_upstream_waiting(u), 0);
    for (i = 0; i < 5; i++)
        done_cleanup(&d[i]);
    nk_upstream_free(u);
}

/* Waiting transfers start in the order they were submitted. */
static void test_waiting_order(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client_with(0, 0, 1);
    struct fake_req *fr;
    struct done d[4];
    char url[512];
    int i;

    for (i = 0; i < 4; i++) {
        done_init(&d[i], NULL);
        snprintf(url, sizeof(url), "%s/%s/%d", fake_http_base(s), i == 0 ? "stall" : "fast", i);
        submit(u, "GET", url, NULL, NULL, &d[i]);
        if (i == 0)
            fake_http_wait_requests(s, 1);
    }
    wait_waiting(u, 3);
    fake_http_release(s);
    for (i = 0; i < 4; i++) {
        done_wait(&d[i]);
        assert_int_equal(d[i].resp.rc, NK_OK);
        done_cleanup(&d[i]);
    }
    for (i = 1; i < 4; i++) {
        snprintf(url, sizeof(url), "/fast/%d", i);
        fr = fake_http_request(s, (size_t)i);
        assert_non_null(fr);
        assert_string_equal(fr->target, url);
        fake_req_free(fr);
    }
    nk_upstream_free(u);
}

/* Runs on the loop: holds it 500 ms, so that every timer of the test is overdue at once. */
static void hold_loop(void *ud)
{
    (void)ud;
    usleep(500 * 1000);
}

/* A transfer's total time counts from its submission: one whose time runs out while it waits
 * ends with NK_ERR_TIMEOUT without ever reaching the server. */
static void test_waiting_timeout(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client_with(300, 0, 1);
    struct done first, second;
    char url[512];

    done_init(&first, NULL);
    done_init(&second, NULL);
    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &first);
    fake_http_wait_requests(s, 1);
    submit(u, "GET", url, NULL, NULL, &second);
    wait_waiting(u, 1);
    /* Both deadlines pass while the loop is held; the running one's comes first and frees
     * the connection, too late for the waiting one. */
    assert_true(nk_loop_run_sync(g_loop, hold_loop, NULL));
    done_wait(&first);
    done_wait(&second);
    assert_int_equal(first.resp.rc, NK_ERR_TIMEOUT);
    assert_int_equal(second.resp.rc, NK_ERR_TIMEOUT);
    assert_int_equal(second.resp.status, 0);
    assert_string_equal(second.resp.error,
                        "no connection to the upstream was free before the timeout");
    assert_int_equal(fake_http_n_requests(s), 1);
    assert_int_equal(nk_upstream_waiting(u), 0);
    done_cleanup(&first);
    done_cleanup(&second);
    nk_upstream_free(u);
}

/* The limit is per origin: another origin (the same server as "localhost") is not held up. */
static void test_waiting_per_origin(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client_with(0, 0, 1);
    struct done slow, other;
    char url[512];

    done_init(&slow, NULL);
    done_init(&other, NULL);
    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    submit(u, "GET", url, NULL, NULL, &slow);
    fake_http_wait_requests(s, 1);
    snprintf(url, sizeof(url), "http://user:pw@localhost:%s/fast",
             strrchr(fake_http_base(s), ':') + 1);
    submit(u, "GET", url, NULL, NULL, &other);
    done_wait(&other);
    assert_int_equal(other.resp.rc, NK_OK);
    assert_int_equal(nk_upstream_waiting(u), 0);
    assert_not_fired(&slow);
    fake_http_release(s);
    done_wait(&slow);
    assert_int_equal(slow.resp.rc, NK_OK);
    done_cleanup(&slow);
    done_cleanup(&other);
    nk_upstream_free(u);
}

/* Freeing the client ends the waiting transfers too, each exactly once. */
static void test_free_completes_waiting(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client_with(0, 0, 1);
    struct done d[3];
    char url[512];
    int i;

    snprintf(url, sizeof(url), "%s/stall", fake_http_base(s));
    for (i = 0; i < 3; i++) {
        done_init(&d[i], NULL);
        submit(u, "GET", url, NULL, NULL, &d[i]);
    }
    fake_http_wait_requests(s, 1);
    wait_waiting(u, 2);
    nk_upstream_free(u);
    for (i = 0; i < 3; i++) {
        assert_true(d[i].fired);
        assert_int_equal(d[i].resp.rc, NK_ERR_UPSTREAM);
        assert_string_equal(d[i].resp.error, "shutting down");
        done_cleanup(&d[i]);
    }
}

/* Two clients on two loops (serve --loops 2) sharing one DNS and TLS session cache: transfers
 * run on both loop threads at once, through the share's lock callbacks (TSan checks them), and
 * each client still answers on its own loop. "localhost" goes through the shared DNS cache. */
struct on_which {
    struct done d;
    struct nk_loop *loop;
    bool on_own_loop;
};

static void on_done_which(void *ud, struct nk_upstream_response *resp)
{
    struct on_which *w = ud;

    w->on_own_loop = nk_loop_on_loop(w->loop);
    on_done(&w->d, resp);
}

static void test_two_loops_share_caches(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream_share *share = NULL;
    struct nk_loop *l2 = NULL;
    struct nk_upstream *u[2] = {NULL, NULL};
    struct nk_upstream_options o;
    struct nk_upstream_request r;
    struct on_which w[16];
    char url[512];
    const char *base = fake_http_base(s), *port = strrchr(base, ':');
    int i;

    assert_non_null(port);
    assert_int_equal(nk_upstream_share_new(&share), NK_OK);
    assert_int_equal(nk_loop_new(&l2, NULL), NK_OK);
    assert_int_equal(nk_loop_start(l2, NULL), NK_OK);
    memset(&o, 0, sizeof(o));
    o.share = share;
    assert_int_equal(nk_upstream_new(g_loop, &o, &u[0], NULL), NK_OK);
    assert_int_equal(nk_upstream_new(l2, &o, &u[1], NULL), NK_OK);
    for (i = 0; i < 16; i++) {
        w[i].loop = i % 2 == 0 ? g_loop : l2;
        w[i].on_own_loop = false;
        done_init(&w[i].d, NULL);
        snprintf(url, sizeof(url), "http://%s%s/s/%d", i % 4 < 2 ? "localhost" : "127.0.0.1", port,
                 i);
        make_req(&r, "GET", url, NULL, NULL);
        assert_int_equal(nk_upstream_submit(u[i % 2], &r, on_done_which, &w[i]), NK_OK);
    }
    for (i = 0; i < 16; i++) {
        done_wait(&w[i].d);
        assert_int_equal(w[i].d.resp.rc, NK_OK);
        assert_int_equal(w[i].d.resp.status, 200);
        assert_true(w[i].on_own_loop);
        done_cleanup(&w[i].d);
    }
    assert_int_equal(fake_http_n_requests(s), 16);
    nk_upstream_free(u[0]);
    nk_upstream_free(u[1]);
    nk_loop_free(l2);
    nk_upstream_share_free(share);
    nk_upstream_share_free(NULL);
}

static void test_dns_and_tls_failures(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream_options o;
    struct nk_upstream *u = NULL;
    const char *hdrs[] = {"Authorization: Bearer test-key-not-a-secret", NULL};
    struct done d;
    char url[512];

    memset(&o, 0, sizeof(o));
    o.connect_timeout_ms = 3000;
    o.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(nk_upstream_new(g_loop, &o, &u, NULL), NK_OK);
    /* .invalid never resolves (RFC 6761); a resolver that does not answer in time is a
     * timeout instead, so both are accepted */
    fetch(u, "GET", "http://nonexistent-host.invalid/x", hdrs, NULL, &d);
    if (d.resp.rc == NK_ERR_UPSTREAM)
        assert_string_equal(d.resp.error, "could not resolve host");
    else
        assert_int_equal(d.resp.rc, NK_ERR_TIMEOUT);
    done_cleanup(&d);

    /* TLS to a plain-HTTP server, with an unreadable CA file: a TLS failure, said plainly */
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/x", (unsigned)fake_http_port(s));
    fetch(u, "GET", url, hdrs, NULL, &d);
    assert_int_equal(d.resp.rc, NK_ERR_UPSTREAM);
    assert_true(strstr(d.resp.error, "TLS") != NULL || strstr(d.resp.error, "CA file") != NULL);
    assert_null(strstr(d.resp.error, "test-key"));
    done_cleanup(&d);
    nk_upstream_free(u);
}

/* ---- TLS: a libmicrohttpd HTTPS server with a throw-away self-signed certificate ---------- */

static enum MHD_Result tls_answer(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    static const char body[] = "{\"tls\":true}";
    struct MHD_Response *r;
    enum MHD_Result ret;

    (void)cls, (void)url, (void)method, (void)version, (void)upload_data;
    (void)upload_data_size, (void)req_cls;
    r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL)
        return NULL;
    buf = calloc(1, 65536);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

struct loop_submit {
    struct nk_upstream *u;
    const char *url;
    struct done d;
    enum nk_rc rc;
    bool on_loop;
};

static void submit_from_loop(void *ud)
{
    struct loop_submit *ls = ud;
    struct nk_upstream_request r;

    ls->on_loop = nk_loop_on_loop(g_loop);
    make_req(&r, "GET", ls->url, NULL, NULL);
    ls->rc = nk_upstream_submit(ls->u, &r, on_done, &ls->d);
}

static void test_loop_submit_on_the_loop_thread(void **state)
{
    struct fake_http *s = *state;
    struct loop_submit ls;
    char url[512];

    memset(&ls, 0, sizeof(ls));
    ls.u = client(0, 0);
    snprintf(url, sizeof(url), "%s/from-the-loop", fake_http_base(s));
    ls.url = url;
    done_init(&ls.d, NULL);
    assert_true(nk_loop_run_sync(g_loop, submit_from_loop, &ls));
    assert_true(ls.on_loop);
    assert_int_equal(ls.rc, NK_OK);
    done_wait(&ls.d);
    assert_int_equal(ls.d.resp.rc, NK_OK);
    assert_int_equal(ls.d.resp.status, 200);
    assert_int_equal(fake_http_n_requests(s), 1);
    done_cleanup(&ls.d);
    nk_upstream_free(ls.u);
}

static void test_tls(void **state)
{
    char dir[] = "/tmp/nk-tls-XXXXXX", cmd[1024], crt[64], key[64], url[128];
    struct nk_upstream_options o;
    struct nk_upstream *u = NULL;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    struct sockaddr_in sa;
    char *kpem, *cpem;
    struct done dn;
    int rc;

    (void)state;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        skip();
    assert_non_null(mkdtemp(dir));
    snprintf(crt, sizeof(crt), "%s/c.pem", dir);
    snprintf(key, sizeof(key), "%s/k.pem", dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout %s "
             "-out %s >/dev/null 2>&1",
             key, crt);
    rc = system(cmd);
    kpem = slurp(key);
    cpem = slurp(crt);
    if (rc != 0 || kpem == NULL || cpem == NULL) {
        free(kpem);
        free(cpem);
        unlink(key);
        unlink(crt);
        rmdir(dir);
        skip(); /* no openssl on this machine */
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS, 0, NULL, NULL, tls_answer,
                         NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_HTTPS_MEM_KEY, kpem, MHD_OPTION_HTTPS_MEM_CERT, cpem,
                         MHD_OPTION_END);
    assert_non_null(d);
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    snprintf(url, sizeof(url), "https://127.0.0.1:%u/x", (unsigned)info->port);

    /* trusted through ca_file */
    memset(&o, 0, sizeof(o));
    o.ca_file = crt;
    assert_int_equal(nk_upstream_new(g_loop, &o, &u, NULL), NK_OK);
    fetch(u, "GET", url, NULL, NULL, &dn);
    assert_int_equal(dn.resp.rc, NK_OK);
    assert_int_equal(dn.resp.status, 200);
    assert_string_equal(dn.resp.body, "{\"tls\":true}");
    done_cleanup(&dn);
    nk_upstream_free(u);

    /* the system store does not know it */
    assert_int_equal(nk_upstream_new(g_loop, NULL, &u, NULL), NK_OK);
    fetch(u, "GET", url, NULL, NULL, &dn);
    assert_int_equal(dn.resp.rc, NK_ERR_UPSTREAM);
    assert_string_equal(dn.resp.error, "TLS certificate verification failed");
    done_cleanup(&dn);
    nk_upstream_free(u);

    /* labs: verification off */
    memset(&o, 0, sizeof(o));
    o.insecure = true;
    assert_int_equal(nk_upstream_new(g_loop, &o, &u, NULL), NK_OK);
    fetch(u, "GET", url, NULL, NULL, &dn);
    assert_int_equal(dn.resp.rc, NK_OK);
    done_cleanup(&dn);
    nk_upstream_free(u);

    MHD_stop_daemon(d);
    free(kpem);
    free(cpem);
    unlink(key);
    unlink(crt);
    rmdir(dir);
}

/* ---- streaming (nk_upstream_submit_stream) ---- */

/* A consumer with a budget: it takes pieces while the budget lasts, then refuses (pausing the
 * transfer) until the test gives more. Everything but the waits runs on the loop thread. */
struct sink {
    struct nk_upstream *u;
    const char *url;
    uint64_t tag;
    enum nk_rc submit_rc;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int heads;
    long status;
    char ctype[64];
    unsigned char *got;
    size_t n_got, cap;
    size_t budget; /* SIZE_MAX: unlimited */
    bool refused;  /* the last piece was refused: the transfer is paused */
    unsigned pauses;
    bool data_before_head;
    struct done d;
};

static void sink_head(void *ud, long status, const char *ct)
{
    struct sink *k = ud;

    pthread_mutex_lock(&k->mu);
    k->heads++;
    k->status = status;
    snprintf(k->ctype, sizeof(k->ctype), "%s", ct != NULL ? ct : "");
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static bool sink_data(void *ud, const char *data, size_t len)
{
    struct sink *k = ud;
    bool take;

    pthread_mutex_lock(&k->mu);
    if (k->heads == 0)
        k->data_before_head = true;
    take = k->budget == SIZE_MAX || len <= k->budget;
    if (take) {
        if (k->n_got + len > k->cap) {
            k->cap = (k->n_got + len) * 2;
            k->got = realloc(k->got, k->cap);
            if (k->got == NULL)
                abort();
        }
        memcpy(k->got + k->n_got, data, len);
        k->n_got += len;
        if (k->budget != SIZE_MAX)
            k->budget -= len;
    } else {
        k->refused = true;
        k->pauses++;
    }
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return take;
}

static void sink_done(void *ud, struct nk_upstream_response *resp)
{
    struct sink *k = ud;

    on_done(&k->d, resp);
}

static void sink_submit_on_loop(void *ud)
{
    static const struct nk_upstream_stream st = {sink_head, sink_data};
    struct sink *k = ud;
    struct nk_upstream_request r;

    make_req(&r, "GET", k->url, NULL, NULL);
    r.cancel_tag = k->tag;
    k->submit_rc = nk_upstream_submit_stream(k->u, &r, &st, sink_done, k);
}

static void sink_unpause_on_loop(void *ud)
{
    struct sink *k = ud;

    nk_upstream_unpause(k->u, k->tag);
}

static void noop_on_loop(void *ud)
{
    (void)ud;
}

static void sink_init(struct sink *k, struct nk_upstream *u, const char *url, size_t budget)
{
    static uint64_t next_tag = 1000;

    memset(k, 0, sizeof(*k));
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    k->u = u;
    k->url = url;
    k->tag = ++next_tag;
    k->budget = budget;
    done_init(&k->d, NULL);
    assert_true(nk_loop_run_sync(g_loop, sink_submit_on_loop, k));
    assert_int_equal(k->submit_rc, NK_OK);
}

static void sink_cleanup(struct sink *k)
{
    free(k->got);
    done_cleanup(&k->d);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
}

static void check_pattern(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(i % 251))
            fail_msg("byte %zu is %u, not %zu", i, b[i], i % 251);
}

/* The body goes to on_data piece by piece, after one on_head; done carries no body. */
static void test_stream_callbacks(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    struct sink k;
    char url[512];

    snprintf(url, sizeof(url), "%s/pattern", fake_http_base(s));
    sink_init(&k, u, url, SIZE_MAX);
    done_wait(&k.d);
    assert_int_equal(k.d.resp.rc, NK_OK);
    assert_null(k.d.resp.body);
    assert_int_equal(k.d.resp.body_len, 1024 * 1024);
    assert_int_equal(k.heads, 1);
    assert_false(k.data_before_head);
    assert_int_equal(k.status, 200);
    assert_string_equal(k.ctype, "application/octet-stream");
    assert_int_equal(k.n_got, 1024 * 1024);
    check_pattern(k.got, k.n_got);
    sink_cleanup(&k);

    /* No body: the head still comes, before done. */
    snprintf(url, sizeof(url), "%s/empty", fake_http_base(s));
    sink_init(&k, u, url, SIZE_MAX);
    done_wait(&k.d);
    assert_int_equal(k.d.resp.rc, NK_OK);
    assert_int_equal(k.heads, 1);
    assert_int_equal(k.n_got, 0);
    sink_cleanup(&k);

    /* Not from another thread: the consumer's callbacks belong to the loop. */
    {
        static const struct nk_upstream_stream st = {sink_head, sink_data};
        struct nk_upstream_request r;
        make_req(&r, "GET", url, NULL, NULL);
        assert_int_equal(nk_upstream_submit_stream(u, &r, &st, on_done, &k), NK_ERR_INVALID);
        assert_null(r.url);
    }
    nk_upstream_free(u);
}

/* A slow consumer pauses the transfer: nothing more arrives and it does not finish until the
 * consumer unpauses; every byte arrives once, in order. */
static void test_stream_pause_resume(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 0);
    struct sink k;
    char url[512];
    size_t before;
    unsigned rounds = 0;
    bool fired;

    snprintf(url, sizeof(url), "%s/pattern-close", fake_http_base(s));
    sink_init(&k, u, url, 100 * 1024);
    for (;;) {
        pthread_mutex_lock(&k.mu);
        while (!k.refused) {
            struct timespec ts;
            pthread_mutex_lock(&k.d.mu);
            fired = k.d.fired;
            pthread_mutex_unlock(&k.d.mu);
            if (fired)
                break;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&k.cv, &k.mu, &ts);
        }
        if (!k.refused) {
            pthread_mutex_unlock(&k.mu);
            break; /* done */
        }
        /* Paused: the loop keeps turning, but nothing more is handed over. */
        before = k.n_got;
        pthread_mutex_unlock(&k.mu);
        for (int i = 0; i < 3; i++)
            assert_true(nk_loop_run_sync(g_loop, noop_on_loop, NULL));
        pthread_mutex_lock(&k.mu);
        assert_int_equal(k.n_got, before);
        assert_not_fired(&k.d);
        k.refused = false;
        k.budget = 100 * 1024;
        rounds++;
        pthread_mutex_unlock(&k.mu);
        assert_true(nk_loop_run_sync(g_loop, sink_unpause_on_loop, &k));
        assert_true(rounds < 1000);
    }
    done_wait(&k.d);
    assert_int_equal(k.d.resp.rc, NK_OK);
    assert_true(k.pauses >= 5); /* 1 MiB through a 100 KiB budget */
    assert_int_equal(k.n_got, 1024 * 1024);
    assert_int_equal(k.d.resp.body_len, 1024 * 1024);
    check_pattern(k.got, k.n_got);
    sink_cleanup(&k);
    nk_upstream_free(u);
}

/* max_response bounds the total streamed: announced (refused before the head) or counted
 * (aborted after the head, with no more than the limit handed over). */
static void test_stream_limit(void **state)
{
    struct fake_http *s = *state;
    struct nk_upstream *u = client(0, 64 * 1024);
    struct sink k;
    char url[512];

    snprintf(url, sizeof(url), "%s/pattern", fake_http_base(s));
    sink_init(&k, u, url, SIZE_MAX);
    done_wait(&k.d);
    assert_int_equal(k.d.resp.rc, NK_ERR_TOO_LARGE);
    assert_int_equal(k.heads, 0);
    assert_int_equal(k.n_got, 0);
    sink_cleanup(&k);

    snprintf(url, sizeof(url), "%s/pattern-close", fake_http_base(s));
    sink_init(&k, u, url, SIZE_MAX);
    done_wait(&k.d);
    assert_int_equal(k.d.resp.rc, NK_ERR_TOO_LARGE);
    assert_int_equal(k.heads, 1);
    assert_true(k.n_got <= 64 * 1024);
    check_pattern(k.got, k.n_got);
    sink_cleanup(&k);
    nk_upstream_free(u);
}

/* A raw server for one exchange: sends a head, then the body only once released. */
struct head_first {
    int lfd;
    unsigned short port;
    int release[2]; /* a pipe: a byte written to [1] lets the body go */
    pthread_t th;
};

static void *head_first_main(void *arg)
{
    struct head_first *hf = arg;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                               "Content-Length: 10\r\nConnection: close\r\n\r\n";
    char buf[4096], b;
    size_t len = 0;
    ssize_t n;
    int fd = accept(hf->lfd, NULL, NULL);

    if (fd < 0)
        return NULL;
    while (len + 1 < sizeof(buf) && (n = recv(fd, buf + len, sizeof(buf) - len - 1, 0)) > 0) {
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL)
            break;
    }
    if (send(fd, head, sizeof(head) - 1, MSG_NOSIGNAL) < 0 || read(hf->release[0], &b, 1) != 1 ||
        send(fd, "0123456789", 10, MSG_NOSIGNAL) < 0)
        b = 0;
    close(fd);
    return NULL;
}

/* The head reaches the consumer as soon as it is complete, before any byte of the body. */
static void test_stream_head_before_body(void **state)
{
    struct nk_upstream *u = client(0, 0);
    struct head_first hf;
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    struct sink k;
    char url[128];
    bool fired;

    (void)state;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    hf.lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(hf.lfd >= 0);
    assert_int_equal(bind(hf.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(hf.lfd, 1), 0);
    assert_int_equal(getsockname(hf.lfd, (struct sockaddr *)&a, &alen), 0);
    assert_int_equal(pipe(hf.release), 0);
    assert_int_equal(pthread_create(&hf.th, NULL, head_first_main, &hf), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/h", (unsigned)ntohs(a.sin_port));
    sink_init(&k, u, url, SIZE_MAX);
    pthread_mutex_lock(&k.mu);
    while (k.heads == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        if (pthread_cond_timedwait(&k.cv, &k.mu, &ts) != 0)
            break;
    }
    assert_int_equal(k.heads, 1);
    assert_int_equal(k.status, 200);
    assert_string_equal(k.ctype, "text/plain");
    assert_int_equal(k.n_got, 0); /* the server still holds the body */
    pthread_mutex_unlock(&k.mu);
    pthread_mutex_lock(&k.d.mu);
    fired = k.d.fired;
    pthread_mutex_unlock(&k.d.mu);
    assert_false(fired);
    assert_int_equal(write(hf.release[1], "x", 1), 1);
    done_wait(&k.d);
    assert_int_equal(k.d.resp.rc, NK_OK);
    assert_int_equal(k.n_got, 10);
    assert_memory_equal(k.got, "0123456789", 10);
    pthread_join(hf.th, NULL);
    close(hf.lfd);
    close(hf.release[0]);
    close(hf.release[1]);
    sink_cleanup(&k);
    nk_upstream_free(u);
}

static int global_setup(void **state)
{
    (void)state;
    if (nk_upstream_global_init() != NK_OK || nk_loop_new(&g_loop, NULL) != NK_OK)
        return -1;
    return nk_loop_start(g_loop, NULL) == NK_OK ? 0 : -1;
}

static int global_teardown(void **state)
{
    (void)state;
    nk_loop_free(g_loop);
    nk_upstream_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_records_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_and_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_passthrough, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stall_does_not_block_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_completes_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_stopped_before_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiting_per_origin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_completes_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_loops_share_caches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_and_tls_failures, setup, teardown),
        cmocka_unit_test(test_tls),
        cmocka_unit_test_setup_teardown(test_loop_submit_on_the_loop_thread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_pause_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_limit, setup, teardown),
        cmocka_unit_test(test_stream_head_before_body),
    };
    return cmocka_run_group_tests(tests, global_setup, global_teardown);
}
