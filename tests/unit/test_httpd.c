/* SPDX-License-Identifier: Apache-2.0 */
/* test_httpd.c: the HTTP listener over real loopback sockets (a raw-socket client, so the
 * request line reaches the server exactly as written). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "naftikod/httpd.h"
#include "naftikod/loop.h"

/* The loop start() serves on (each test gets its own: loop_setup). */
static struct nk_loop *g_loop;
/* start()'s request deadline in seconds (0: none). */
static unsigned g_request_timeout_s;

/* What the handler saw and how it should answer. */
enum mode { ANSWER_NOW, ANSWER_LATER, NEVER_ANSWER, ANSWER_IN_THREAD };

struct fixture {
    struct nk_httpd *h;
    enum mode mode;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct nk_http_req *held; /* ANSWER_LATER / NEVER_ANSWER */
    int calls;
    int access_lines;
    unsigned last_access_status;
    char last_access_caller[64];
    json_t *seen;        /* what the handler saw, as JSON */
    int admits;          /* admit hook calls */
    size_t admit_body;   /* body length the admit hook saw (it must be 0) */
    char admit_path[64]; /* path the admit hook saw */
};

static json_t *describe(struct nk_http_req *req)
{
    json_t *q = json_array();
    size_t i, len = 0;
    const char *name, *value, *body;

    for (i = 0; i < nk_http_req_query_count(req); i++) {
        nk_http_req_query_at(req, i, &name, &value);
        json_array_append_new(q, json_pack("[s,s?]", name, value));
    }
    body = nk_http_req_body(req, &len);
    return json_pack("{s:s,s:s,s:o,s:s%,s:s?,s:s,s:s}", "method", nk_http_req_method(req), "path",
                     nk_http_req_path(req), "query", q, "body", body, len, "x_test",
                     nk_http_req_header(req, "x-TEST"), "client", nk_http_req_client(req), "id",
                     nk_http_req_id(req));
}

static void answer(struct nk_http_req *req, json_t *seen)
{
    char *text = json_dumps(seen, JSON_COMPACT);
    static const char *const hdrs[] = {"X-Extra", "yes", NULL};

    nk_http_respond(req, 200, "application/json", text, text ? strlen(text) : 0, hdrs);
}

struct thread_answer {
    struct nk_http_req *req;
    json_t *seen;
};

static void *answer_thread(void *arg)
{
    struct thread_answer *t = arg;

    answer(t->req, t->seen);
    json_decref(t->seen);
    free(t);
    return NULL;
}

static void handler(void *ud, struct nk_http_req *req)
{
    struct fixture *f = ud;
    json_t *seen = describe(req);

    if (f->mode == ANSWER_IN_THREAD) {
        struct thread_answer *t = malloc(sizeof(*t));
        pthread_t th;
        t->req = req;
        t->seen = seen;
        pthread_mutex_lock(&f->mu);
        f->calls++;
        pthread_mutex_unlock(&f->mu);
        if (pthread_create(&th, NULL, answer_thread, t) == 0) {
            pthread_detach(th);
            return;
        }
        answer(req, seen);
        json_decref(seen);
        free(t);
        return;
    }

    pthread_mutex_lock(&f->mu);
    f->calls++;
    json_decref(f->seen);
    if (f->mode != ANSWER_NOW) {
        /* The responder thread takes it from here; this thread no longer touches seen. */
        f->seen = seen;
        f->held = req;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->mu);
        return;
    }
    f->seen = json_deep_copy(seen);
    pthread_mutex_unlock(&f->mu);
    answer(req, seen);
    json_decref(seen);
}

static void access_log(void *ud, const struct nk_http_access *a)
{
    struct fixture *f = ud;

    pthread_mutex_lock(&f->mu);
    f->access_lines++;
    f->last_access_status = a->status;
    snprintf(f->last_access_caller, sizeof(f->last_access_caller), "%s", a->caller);
    pthread_mutex_unlock(&f->mu);
}

/* A deferred admission's verdict, given from another thread: "later-yes" lets the request in
 * under that caller name, anything else refuses it with 401. */
static void *verdict_thread(void *arg)
{
    static const char body[] = "{\"status\":401,\"later\":true}";
    struct nk_http_req *req = arg;
    struct timespec pause = {0, 20 * 1000 * 1000};
    const char *who = nk_http_req_header(req, "X-Let-In");

    nanosleep(&pause, NULL);
    if (strcmp(who, "later-yes") == 0) {
        nk_http_req_set_caller(req, who);
        nk_http_req_admit(req);
    } else {
        nk_http_respond(req, 401, "application/json", strdup(body), sizeof(body) - 1, NULL);
    }
    return NULL;
}

/* The admit hook of the tests: X-Let-In names the caller; without it 401, with "mute" a refusal
 * without an answer. */
static bool admit(void *ud, struct nk_http_req *req)
{
    static const char *const hdrs[] = {"WWW-Authenticate", "Bearer realm=\"t\"", NULL};
    static const char body[] = "{\"status\":401}";
    struct fixture *f = ud;
    const char *who = nk_http_req_header(req, "X-Let-In");
    size_t len = 0;

    pthread_mutex_lock(&f->mu);
    f->admits++;
    (void)nk_http_req_body(req, &len);
    f->admit_body += len;
    snprintf(f->admit_path, sizeof(f->admit_path), "%s", nk_http_req_path(req));
    pthread_mutex_unlock(&f->mu);
    if (who == NULL) {
        nk_http_respond(req, 401, "application/problem+json", strdup(body), sizeof(body) - 1, hdrs);
        return false;
    }
    if (strcmp(who, "mute") == 0)
        return false;
    if (strcmp(who, "hold") == 0) {
        /* Deferred with no verdict until the test gives one (after the listener stopped). */
        nk_http_req_defer(req);
        pthread_mutex_lock(&f->mu);
        f->held = req;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->mu);
        return true;
    }
    if (strncmp(who, "later-", 6) == 0) {
        /* Decide on another thread, a little later (a key being fetched) */
        pthread_t th;
        nk_http_req_defer(req);
        if (pthread_create(&th, NULL, verdict_thread, req) != 0)
            fail_msg("pthread_create");
        pthread_detach(th);
        return false; /* ignored once deferred */
    }
    nk_http_req_set_caller(req, who);
    return true;
}

static struct fixture *start_admit(const char *address, size_t max_body, bool with_admit)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct nk_httpd_options o = {0};
    struct nk_error err = {0};

    assert_non_null(f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    o.address = address;
    o.port = 0;
    o.max_body = max_body;
    o.access_log = access_log;
    o.access_ud = f;
    o.admit = with_admit ? admit : NULL;
    o.loop = g_loop;
    o.request_timeout_s = g_request_timeout_s;
    if (nk_httpd_start(&o, handler, f, &f->h, &err) != NK_OK)
        fail_msg("start: %s", err.msg);
    assert_int_not_equal(nk_httpd_port(f->h), 0);
    return f;
}

static struct fixture *start(const char *address, size_t max_body)
{
    return start_admit(address, max_body, false);
}

static void finish(struct fixture *f)
{
    nk_httpd_stop(f->h);
    json_decref(f->seen);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Whether the last exchange() on this thread ended because the server closed the connection
 * (not on the receive timeout); per thread, since several clients run at once. */
static _Thread_local bool g_eof;

/* Send raw bytes and read the whole answer (the request asks for Connection: close). Bounded by
 * a receive timeout. Returns a malloc'd string. */
static char *exchange(int family, unsigned port, const char *raw, size_t rawlen)
{
    struct sockaddr_storage ss;
    socklen_t slen;
    struct timeval tv = {10, 0};
    size_t cap = 2U << 20, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    int fd;

    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, "::1", &a->sin6_addr);
        slen = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, "127.0.0.1", &a->sin_addr);
        slen = sizeof(*a);
    }
    fd = socket(family, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&ss, slen), 0);
    assert_int_equal(send(fd, raw, rawlen, MSG_NOSIGNAL), (ssize_t)rawlen);
    while (len + 1 < cap && (n = recv(fd, buf + len, cap - len - 1, 0)) > 0)
        len += (size_t)n;
    g_eof = n == 0;
    buf[len] = '\0';
    close(fd);
    return buf;
}

static char *get(struct fixture *f, const char *target, const char *extra_headers)
{
    size_t cap = strlen(target) + (extra_headers ? strlen(extra_headers) : 0) + 64;
    char *raw = malloc(cap), *resp;
    int n;

    assert_non_null(raw);
    n = snprintf(raw, cap, "GET %s HTTP/1.1\r\nHost: t\r\n%sConnection: close\r\n\r\n", target,
                 extra_headers ? extra_headers : "");
    resp = exchange(AF_INET, nk_httpd_port(f->h), raw, (size_t)n);
    free(raw);
    return resp;
}

static unsigned status_of(const char *resp)
{
    unsigned s = 0;

    if (sscanf(resp, "HTTP/1.%*d %u", &s) != 1)
        return 0;
    return s;
}

static json_t *body_of(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    json_error_t e;
    json_t *j;

    assert_non_null(b);
    j = json_loads(b + 4, 0, &e);
    if (j == NULL)
        fail_msg("body is not JSON (%s): %s", e.text, b + 4);
    return j;
}

/* The request deadline is a loop timer: a client that never finishes its request head is cut
 * (the idle timeout, 30 s, would not: exchange() gives up after 10 s without an end). */
static void test_request_deadline(void **state)
{
    static const char partial[] = "GET /slow HTTP/1.1\r\nHost: t\r\nX-Trickle: 1";
    struct fixture *f;
    char *resp;

    (void)state;
    g_request_timeout_s = 1;
    f = start("127.0.0.1", 0);
    g_request_timeout_s = 0;
    resp = exchange(AF_INET, nk_httpd_port(f->h), partial, sizeof(partial) - 1);
    assert_true(g_eof); /* closed by the server, not given up on by the client */
    assert_string_equal(resp, "");
    free(resp);
    /* a complete request on a fresh connection still gets its answer */
    resp = get(f, "/after", NULL);
    assert_int_equal(status_of(resp), 200);
    free(resp);
    finish(f);
}

static void test_raw_path_and_query(void **state)
{
    struct fixture *f = start(NULL, 0);
    char *resp;
    json_t *seen, *want;

    (void)state;
    resp = get(f, "/v1/a%2Fb/..%2F/caf%C3%A9?a=1%202&b=x+y&flag&a=3&e=&%26k=v%3D", NULL);
    assert_int_equal(status_of(resp), 200);
    assert_non_null(strstr(resp, "X-Extra: yes"));
    seen = body_of(resp);
    assert_string_equal(json_string_value(json_object_get(seen, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(seen, "path")),
                        "/v1/a%2Fb/..%2F/caf%C3%A9");
    want = json_loads("[[\"a\",\"1 2\"],[\"b\",\"x y\"],[\"flag\",null],[\"a\",\"3\"],"
                      "[\"e\",\"\"],[\"&k\",\"v=\"]]",
                      0, NULL);
    assert_true(json_equal(json_object_get(seen, "query"), want));
    assert_string_equal(json_string_value(json_object_get(seen, "client")), "127.0.0.1");
    json_decref(want);
    json_decref(seen);
    free(resp);
    finish(f);
}

static void test_headers_body_and_request_id(void **state)
{
    struct fixture *f = start("127.0.0.1", 0);
    static const char raw[] = "POST /x HTTP/1.1\r\nHost: t\r\nX-Test: hello\r\n"
                              "X-Request-Id: abc.DEF_1-2\r\nContent-Length: 11\r\n"
                              "Connection: close\r\n\r\n{\"a\":true}\n";
    char *resp;
    json_t *seen;

    (void)state;
    resp = exchange(AF_INET, nk_httpd_port(f->h), raw, sizeof(raw) - 1);
    assert_int_equal(status_of(resp), 200);
    assert_non_null(strstr(resp, "X-Request-Id: abc.DEF_1-2\r\n"));
    seen = body_of(resp);
    assert_string_equal(json_string_value(json_object_get(seen, "body")), "{\"a\":true}\n");
    assert_string_equal(json_string_value(json_object_get(seen, "x_test")), "hello");
    json_decref(seen);
    free(resp);

    /* An unsafe incoming id is replaced by a generated one. */
    resp = get(f, "/y", "X-Request-Id: bad id with spaces\r\n");
    assert_int_equal(status_of(resp), 200);
    assert_null(strstr(resp, "bad id"));
    assert_non_null(strstr(resp, "X-Request-Id: "));
    free(resp);
    assert_int_equal(f->access_lines, 2);
    finish(f);
}

struct later {
    struct fixture *f;
    size_t pending_seen;
};

/* The request the handler held (ANSWER_LATER / NEVER_ANSWER), taken from the fixture; NULL
 * when none came within 100 s. */
static struct nk_http_req *wait_held(struct fixture *f)
{
    struct nk_http_req *r;
    struct timespec ts;
    int i;

    pthread_mutex_lock(&f->mu);
    for (i = 0; i < 100 && f->held == NULL; i++) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&f->cond, &f->mu, &ts);
    }
    r = f->held;
    f->held = NULL;
    pthread_mutex_unlock(&f->mu);
    return r;
}

static void *respond_later(void *arg)
{
    struct later *l = arg;
    struct fixture *f = l->f;
    struct nk_http_req *req;
    json_t *seen;

    req = wait_held(f);
    if (req == NULL)
        return NULL;
    pthread_mutex_lock(&f->mu);
    seen = json_incref(f->seen);
    pthread_mutex_unlock(&f->mu);
    /* The handler has returned and nothing has answered yet. */
    l->pending_seen = nk_httpd_pending(f->h);
    answer(req, seen);
    json_decref(seen);
    return NULL;
}

static void test_answer_later_from_another_thread(void **state)
{
    struct fixture *f = start(NULL, 0);
    struct later l = {f, 0};
    pthread_t t;
    char *resp;
    int k;

    (void)state;
    f->mode = ANSWER_LATER;
    for (k = 0; k < 3; k++) {
        l.pending_seen = 0;
        assert_int_equal(pthread_create(&t, NULL, respond_later, &l), 0);
        resp = get(f, "/slow?k=1", NULL);
        pthread_join(t, NULL);
        assert_int_equal(status_of(resp), 200);
        assert_int_equal(l.pending_seen, 1);
        assert_int_equal(nk_httpd_pending(f->h), 0);
        free(resp);
    }
    finish(f);
}

static void test_body_too_large(void **state)
{
    struct fixture *f = start(NULL, 16);
    static const char big_cl[] = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n"
                                 "Connection: close\r\n\r\n";
    static const char chunked[] = "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                                  "Connection: close\r\n\r\n"
                                  "a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
    static const char fits[] = "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n"
                               "Connection: close\r\n\r\n0123456789abcdef";
    char *resp;
    json_t *p;

    (void)state;
    /* Rejected on Content-Length alone, before any body byte is read. */
    resp = exchange(AF_INET, nk_httpd_port(f->h), big_cl, sizeof(big_cl) - 1);
    assert_int_equal(status_of(resp), 413);
    assert_non_null(strstr(resp, "Content-Type: application/problem+json"));
    assert_non_null(strstr(resp, "X-Request-Id: "));
    p = body_of(resp);
    assert_int_equal(json_integer_value(json_object_get(p, "status")), 413);
    assert_non_null(json_object_get(p, "title"));
    assert_non_null(json_object_get(p, "detail"));
    assert_non_null(json_object_get(p, "type"));
    json_decref(p);
    free(resp);
    /* No length announced: counted while reading. */
    resp = exchange(AF_INET, nk_httpd_port(f->h), chunked, sizeof(chunked) - 1);
    assert_int_equal(status_of(resp), 413);
    free(resp);
    assert_int_equal(f->calls, 0);
    assert_int_equal(f->last_access_status, 413);
    /* Exactly the limit is fine. */
    resp = exchange(AF_INET, nk_httpd_port(f->h), fits, sizeof(fits) - 1);
    assert_int_equal(status_of(resp), 200);
    free(resp);
    assert_int_equal(f->calls, 1);
    finish(f);
}

static void test_ipv6_and_bad_address(void **state)
{
    struct nk_httpd_options o = {0};
    struct nk_httpd *h = NULL;
    struct nk_error err = {0};
    struct fixture *f;
    char *resp;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a;

    (void)state;
    o.address = "127.0.0.1";
    assert_int_equal(nk_httpd_start(&o, handler, NULL, &h, &err), NK_ERR_INVALID); /* no loop */
    o.loop = g_loop;
    o.address = "not-an-address";
    assert_int_not_equal(nk_httpd_start(&o, handler, NULL, &h, &err), NK_OK);
    assert_null(h);
    assert_non_null(strstr(err.msg, "not-an-address"));

    /* Skip the IPv6 half where the machine has no ::1. */
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::1", &a.sin6_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    f = start("::1", 0);
    {
        char raw[] = "GET /six HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        resp = exchange(AF_INET6, nk_httpd_port(f->h), raw, sizeof(raw) - 1);
    }
    assert_int_equal(status_of(resp), 200);
    free(resp);
    finish(f);
}

static void test_port_in_use(void **state)
{
    struct fixture *f = start(NULL, 0);
    struct nk_httpd_options o = {0};
    struct nk_httpd *h = NULL;
    struct nk_error err = {0};

    (void)state;
    o.loop = g_loop;
    o.port = nk_httpd_port(f->h);
    assert_int_equal(nk_httpd_start(&o, handler, NULL, &h, &err), NK_ERR_IO);
    assert_non_null(strstr(err.msg, "cannot bind"));
    finish(f);
}

struct client_arg {
    unsigned port;
    char *resp;
};

static void *client_thread(void *arg)
{
    struct client_arg *c = arg;
    static const char raw[] = "GET /never HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";

    c->resp = exchange(AF_INET, c->port, raw, sizeof(raw) - 1);
    return NULL;
}

static void test_quiesce_and_stop_with_pending(void **state)
{
    struct fixture *f = start(NULL, 0);
    struct client_arg c = {nk_httpd_port(f->h), NULL};
    struct nk_http_req *req;
    pthread_t t;

    (void)state;
    f->mode = NEVER_ANSWER;
    assert_int_equal(pthread_create(&t, NULL, client_thread, &c), 0);
    req = wait_held(f);
    assert_non_null(req);
    assert_int_equal(nk_httpd_pending(f->h), 1);
    nk_httpd_quiesce(f->h);
    assert_int_equal(nk_httpd_pending(f->h), 1);
    /* Stopping with a request still unanswered answers it 503 itself. */
    nk_httpd_stop(f->h);
    f->h = NULL;
    pthread_join(t, NULL);
    assert_int_equal(status_of(c.resp), 503);
    free(c.resp);
    /* The handler's late answer is dropped harmlessly. */
    nk_http_respond(req, 200, "text/plain", strdup("late"), 4, NULL);
    finish(f);
}

static void *held_client_thread(void *arg)
{
    struct client_arg *c = arg;
    static const char raw[] = "POST /held HTTP/1.1\r\nHost: t\r\nX-Let-In: hold\r\n"
                              "Content-Length: 5\r\nConnection: close\r\n\r\nhello";

    c->resp = exchange(AF_INET, c->port, raw, sizeof(raw) - 1);
    return NULL;
}

/* A request whose admission is still deferred when the listener stops: answered 503 by the
 * stop (libmicrohttpd cannot stop with a suspended connection), never handed to the handler;
 * the late verdict only releases it. */
static void test_stop_with_deferred(void **state)
{
    struct fixture *f = start_admit(NULL, 0, true);
    struct client_arg c = {nk_httpd_port(f->h), NULL};
    struct nk_http_req *req;
    pthread_t t;

    (void)state;
    assert_int_equal(pthread_create(&t, NULL, held_client_thread, &c), 0);
    req = wait_held(f);
    assert_non_null(req);
    nk_httpd_stop(f->h);
    f->h = NULL;
    pthread_join(t, NULL);
    assert_int_equal(status_of(c.resp), 503);
    free(c.resp);
    nk_http_req_admit(req); /* too late: dropped */
    assert_int_equal(f->calls, 0);
    finish(f);
}

struct burst {
    unsigned port;
    int ok;
};

static void *burst_client(void *arg)
{
    struct burst *b = arg;
    int i;

    for (i = 0; i < 25; i++) {
        static const char raw[] = "GET /burst?i=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        char *resp = exchange(AF_INET, b->port, raw, sizeof(raw) - 1);
        if (status_of(resp) == 200 && strstr(resp, "\"/burst\"") != NULL)
            b->ok++;
        free(resp);
    }
    return NULL;
}

static void test_concurrent_answers_from_threads(void **state)
{
    struct fixture *f = start(NULL, 0);
    struct burst b[4];
    pthread_t t[4];
    int i, ok = 0;

    (void)state;
    f->mode = ANSWER_IN_THREAD;
    for (i = 0; i < 4; i++) {
        b[i].port = nk_httpd_port(f->h);
        b[i].ok = 0;
        assert_int_equal(pthread_create(&t[i], NULL, burst_client, &b[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ok += b[i].ok;
    }
    assert_int_equal(ok, 100);
    assert_int_equal(nk_httpd_pending(f->h), 0);
    finish(f);
}

static void test_refuse(void **state)
{
    struct fixture *f = start(NULL, 0);
    char *resp;
    json_t *body;

    (void)state;
    resp = get(f, "/before", NULL);
    assert_int_equal(status_of(resp), 200);
    free(resp);
    nk_httpd_refuse(f->h);
    resp = get(f, "/after", NULL);
    assert_int_equal(status_of(resp), 503);
    body = body_of(resp);
    assert_string_equal(json_string_value(json_object_get(body, "detail")), "server shutting down");
    json_decref(body);
    free(resp);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->calls, 1); /* the handler never saw the refused request */
    assert_int_equal(f->last_access_status, 503);
    pthread_mutex_unlock(&f->mu);
    finish(f);
}

/* Child side of test_out_of_descriptors: connect n clients, then count those the server closes
 * within 10 s. Async-signal-safe calls only (forked from a threaded process). */
static int count_closed(unsigned port, int n)
{
    struct sockaddr_in sa;
    struct pollfd p[16];
    int i, closed = 0, left = n, round;
    char c;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (i = 0; i < n; i++) {
        p[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        p[i].events = POLLIN;
        if (p[i].fd < 0 || connect(p[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            return 100;
    }
    for (round = 0; round < 100 && left > 0; round++) {
        if (poll(p, (nfds_t)n, 100) <= 0)
            continue;
        for (i = 0; i < n; i++) {
            if (p[i].fd >= 0 && p[i].revents != 0 && read(p[i].fd, &c, 1) <= 0) {
                close(p[i].fd);
                p[i].fd = -1; /* poll skips it from now on */
                closed++;
                left--;
            }
        }
    }
    return closed;
}

/* Descriptors run out while the listener has no connection (issue 17, item 3): libmicrohttpd
 * 0.9.75 would retry accept() at once for ever, logging two lines each time. Each waiting
 * connection is taken off the queue and closed instead, and the log gets a few lines. */
static void test_out_of_descriptors(void **state)
{
    struct fixture *f;
    char path[] = "/tmp/nk-test-httpd-log.XXXXXX";
    int go[2], logfd, saved_err, fill[4096], n_fill = 0, fd, hi = 0, status = -1, lines = 0;
    struct rlimit saved, low;
    char line[1024];
    pid_t child;
    FILE *lf;

    (void)state;
    f = start("127.0.0.1", 0);
    assert_int_equal(pipe(go), 0);
    child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        char c;

        close(go[1]);
        _exit(read(go[0], &c, 1) == 1 ? count_closed(nk_httpd_port(f->h), 8) : 101);
    }
    close(go[0]);
    logfd = mkstemp(path);
    assert_true(logfd >= 0);
    saved_err = dup(2);
    assert_true(saved_err >= 0);
    fflush(stderr);
    dup2(logfd, 2);
    /* A limit just above the highest descriptor open, and every free one below it taken. */
    for (fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) != -1)
            hi = fd;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = (rlim_t)hi + 1;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (n_fill < 4096 && (fd = open("/dev/null", O_RDONLY)) >= 0)
        fill[n_fill++] = fd;
    if (write(go[1], "g", 1) == 1)
        (void)waitpid(child, &status, 0);
    while (n_fill > 0)
        close(fill[--n_fill]);
    setrlimit(RLIMIT_NOFILE, &saved);
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    close(go[1]);
    lf = fdopen(logfd, "r");
    assert_non_null(lf);
    rewind(lf);
    while (lines < 1000 && fgets(line, sizeof(line), lf) != NULL)
        lines++;
    fclose(lf);
    unlink(path);
    finish(f);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 8); /* every waiting connection closed */
    assert_true(lines <= 10);
}

/* How many answers a reply holds (status lines at the start of a line). */
static int answers_in(const char *resp)
{
    const char *p = resp;
    int n = 0;

    for (; (p = strstr(p, "HTTP/1.")) != NULL; p++)
        if (p == resp || p[-1] == '\n')
            n++;
    return n;
}

static void assert_problem(const char *resp, unsigned status)
{
    json_t *p;

    assert_int_equal(status_of(resp), status);
    assert_non_null(strstr(resp, "Content-Type: application/problem+json\r\n"));
    assert_non_null(strstr(resp, "X-Content-Type-Options: nosniff\r\n"));
    p = body_of(resp);
    assert_int_equal(json_integer_value(json_object_get(p, "status")), status);
    assert_true(json_is_string(json_object_get(p, "detail")));
    json_decref(p);
}

/* The admit hook sees the head before any body byte: a refusal is answered while the client
 * has sent only the head (a listener that waited for the announced MiB would answer nothing
 * before the receive timeout), the handler never runs, the connection closes. */
static void test_admit_before_body(void **state)
{
    struct fixture *f = start_admit(NULL, 2U << 20, true);
    static const char head[] = "POST /guarded?x=1 HTTP/1.1\r\nHost: t\r\n"
                               "Content-Length: 1048576\r\n\r\n";
    static const char in[] = "POST /in HTTP/1.1\r\nHost: t\r\nX-Let-In: agent-1\r\n"
                             "Content-Length: 5\r\nConnection: close\r\n\r\nhello";
    static const char mute[] = "GET /m HTTP/1.1\r\nHost: t\r\nX-Let-In: mute\r\n"
                               "Connection: close\r\n\r\n";
    char *resp;
    json_t *seen;

    (void)state;
    resp = exchange(AF_INET, nk_httpd_port(f->h), head, sizeof(head) - 1);
    assert_int_equal(status_of(resp), 401);
    assert_true(g_eof);
    assert_non_null(strstr(resp, "WWW-Authenticate: Bearer realm=\"t\"\r\n"));
    assert_non_null(strstr(resp, "Connection: close\r\n"));
    assert_non_null(strstr(resp, "X-Content-Type-Options: nosniff\r\n"));
    assert_non_null(strstr(resp, "{\"status\":401}"));
    free(resp);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->calls, 0);
    assert_int_equal(f->admits, 1);
    assert_int_equal(f->admit_body, 0);
    assert_string_equal(f->admit_path, "/guarded");
    assert_int_equal(f->last_access_status, 401);
    pthread_mutex_unlock(&f->mu);

    /* Admitted: the body is read and the handler runs; the caller named by the hook shows. */
    resp = exchange(AF_INET, nk_httpd_port(f->h), in, sizeof(in) - 1);
    assert_int_equal(status_of(resp), 200);
    seen = body_of(resp);
    assert_string_equal(json_string_value(json_object_get(seen, "body")), "hello");
    json_decref(seen);
    free(resp);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->admit_body, 0);
    assert_string_equal(f->last_access_caller, "agent-1");
    pthread_mutex_unlock(&f->mu);

    /* Refused without an answer: a 500, still without the handler. */
    resp = exchange(AF_INET, nk_httpd_port(f->h), mute, sizeof(mute) - 1);
    assert_problem(resp, 500);
    free(resp);
    assert_int_equal(f->calls, 1);
    finish(f);
}

/* The admit hook may defer its verdict (a key to fetch first): the connection waits, suspended,
 * without any body byte read; a later admission from another thread reads the body (or none)
 * and runs the handler, a later refusal answers while the client has sent only the head. */
static void test_admit_deferred(void **state)
{
    struct fixture *f = start_admit(NULL, 2U << 20, true);
    static const char post[] = "POST /in HTTP/1.1\r\nHost: t\r\nX-Let-In: later-yes\r\n"
                               "Content-Length: 5\r\nConnection: close\r\n\r\nhello";
    static const char get[] = "GET /g HTTP/1.1\r\nHost: t\r\nX-Let-In: later-yes\r\n"
                              "Connection: close\r\n\r\n";
    static const char head[] = "POST /big HTTP/1.1\r\nHost: t\r\nX-Let-In: later-no\r\n"
                               "Content-Length: 1048576\r\n\r\n";
    char *resp;
    json_t *seen;

    (void)state;
    resp = exchange(AF_INET, nk_httpd_port(f->h), post, sizeof(post) - 1);
    assert_int_equal(status_of(resp), 200);
    seen = body_of(resp);
    assert_string_equal(json_string_value(json_object_get(seen, "body")), "hello");
    json_decref(seen);
    free(resp);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->calls, 1);
    assert_string_equal(f->last_access_caller, "later-yes");
    pthread_mutex_unlock(&f->mu);

    /* No body at all: admitted later, the handler still runs (once). */
    resp = exchange(AF_INET, nk_httpd_port(f->h), get, sizeof(get) - 1);
    assert_int_equal(status_of(resp), 200);
    seen = body_of(resp);
    assert_string_equal(json_string_value(json_object_get(seen, "path")), "/g");
    assert_string_equal(json_string_value(json_object_get(seen, "body")), "");
    json_decref(seen);
    free(resp);

    /* Refused later: answered before the announced MiB, connection closed, no handler. */
    resp = exchange(AF_INET, nk_httpd_port(f->h), head, sizeof(head) - 1);
    assert_int_equal(status_of(resp), 401);
    assert_true(g_eof);
    assert_non_null(strstr(resp, "\"later\":true"));
    free(resp);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->calls, 2);
    assert_int_equal(f->admit_body, 0);
    assert_int_equal(f->last_access_status, 401);
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(nk_httpd_pending(f->h), 0);
    finish(f);
}

/* Ambiguous framing is refused before the body, the connection closes, and the bytes after
 * the head never run as a second request (the smuggled GET would be answered too). */
#define SMUGGLED "GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
static void test_framing_refused(void **state)
{
    static const struct {
        const char *raw;
        unsigned status;
    } cases[] = {
        {"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: 36\r\n\r\n" SMUGGLED,
         400},
        {"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: "
         "5\r\n\r\nhello" SMUGGLED,
         400},
        {"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello" SMUGGLED, 400},
        {"POST /a HTTP/1.1\r\nHost: t\r\nX\tBad: 5\r\n\r\n" SMUGGLED, 400},
        {"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n"
         "0\r\n\r\n" SMUGGLED,
         400},
        {"POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
         "0\r\n\r\n" SMUGGLED,
         400},
        {"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, "
         "chunked\r\n\r\n0\r\n\r\n" SMUGGLED,
         501},
        {"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n" SMUGGLED, 501},
        {"POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUGGLED,
         501},
    };
    struct fixture *f = start_admit(NULL, 0, true);
    char *resp;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        resp = exchange(AF_INET, nk_httpd_port(f->h), cases[i].raw, strlen(cases[i].raw));
        if (status_of(resp) != cases[i].status || answers_in(resp) != 1 || !g_eof)
            fail_msg("case %zu: expected one %u and the end of the connection, got: %s", i,
                     cases[i].status, resp);
        assert_problem(resp, cases[i].status);
        assert_non_null(strstr(resp, "Connection: close\r\n"));
        free(resp);
    }
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->calls, 0);
    assert_int_equal(f->admits, 0); /* refused before the admit hook too */
    pthread_mutex_unlock(&f->mu);
    /* "chunked" in any case is the one coding accepted. */
    {
        static const char ok[] = "POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n"
                                 "X-Let-In: a\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        resp = exchange(AF_INET, nk_httpd_port(f->h), ok, sizeof(ok) - 1);
        assert_int_equal(status_of(resp), 200);
        free(resp);
    }
    finish(f);
}

/* Hundreds of query arguments get a prompt answer (libmicrohttpd 0.9.75 alone ran out of
 * connection memory copying them and left the connection hanging until the idle timeout). */
static void test_many_query_args(void **state)
{
    struct fixture *f = start(NULL, 0);
    char *target = malloc(16 * 1024);
    size_t n = 0;
    char *resp;
    json_t *seen;
    int i;

    (void)state;
    assert_non_null(target);
    n += (size_t)sprintf(target, "/q?");
    for (i = 0; i < 600; i++)
        n += (size_t)sprintf(target + n, "%sp%d=v", i ? "&" : "", i);
    resp = get(f, target, NULL);
    assert_problem(resp, 414);
    free(resp);
    assert_int_equal(f->calls, 0);
    /* The bound itself is fine. */
    n = (size_t)sprintf(target, "/q?");
    for (i = 0; i < NK_HTTPD_MAX_QUERY_ARGS; i++)
        n += (size_t)sprintf(target + n, "%sp%d=v", i ? "&" : "", i);
    resp = get(f, target, NULL);
    assert_int_equal(status_of(resp), 200);
    seen = body_of(resp);
    assert_int_equal(json_array_size(json_object_get(seen, "query")), NK_HTTPD_MAX_QUERY_ARGS);
    json_decref(seen);
    free(resp);
    free(target);
    finish(f);
}

/* Bodies of every size arrive whole, with and without a length (the buffer is sized from
 * Content-Length, or grows in bounded steps). */
static void test_body_sizes(void **state)
{
    static const size_t sizes[] = {1, 1023, 1024, 65535, 65536, 200000, 1U << 20};
    struct fixture *f = start(NULL, 1U << 20);
    char *raw = malloc((2U << 20) + 4096), *body = malloc((1U << 20) + 1), *resp;
    size_t i, k, n, off;
    json_t *seen;

    (void)state;
    assert_non_null(raw);
    assert_non_null(body);
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (k = 0; k < sizes[i]; k++)
            body[k] = (char)('a' + (k * 7 + i) % 26);
        body[sizes[i]] = '\0';
        for (int chunked = 0; chunked < 2; chunked++) {
            if (!chunked) {
                n = (size_t)sprintf(raw,
                                    "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n"
                                    "Connection: close\r\n\r\n",
                                    sizes[i]);
                memcpy(raw + n, body, sizes[i]);
                n += sizes[i];
            } else {
                n = (size_t)sprintf(raw, "POST /b HTTP/1.1\r\nHost: t\r\n"
                                         "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
                for (off = 0; off < sizes[i]; off += 7000) {
                    size_t c = sizes[i] - off < 7000 ? sizes[i] - off : 7000;
                    n += (size_t)sprintf(raw + n, "%zx\r\n", c);
                    memcpy(raw + n, body + off, c);
                    n += c;
                    memcpy(raw + n, "\r\n", 2);
                    n += 2;
                }
                memcpy(raw + n, "0\r\n\r\n", 5);
                n += 5;
            }
            resp = exchange(AF_INET, nk_httpd_port(f->h), raw, n);
            if (status_of(resp) != 200)
                fail_msg("size %zu chunked %d: %.200s", sizes[i], chunked, resp);
            seen = body_of(resp);
            assert_string_equal(json_string_value(json_object_get(seen, "body")), body);
            json_decref(seen);
            free(resp);
        }
    }
    free(raw);
    free(body);
    finish(f);
}

/* Every test runs its listener on a loop of its own, as serve does: answers given on the loop
 * thread, from other threads (posted to the loop), later, never (503 at stop), and refused
 * requests. */
/* ---- streamed answers (nk_http_respond_stream) ---- */

#define STREAM_PIECE ((size_t)16 * 1024)

/* A producer on the loop thread: writes a pattern piece by piece until refused, again on each
 * drained(), ends the body when all of it is written. */
struct producer {
    struct nk_http_req *req;
    struct nk_http_stream *s;
    size_t total; /* bytes to write in all */
    size_t sent;
    size_t limit; /* produce() writes up to here */
    unsigned refusals, drained, gone;
    size_t first_refusal_at; /* bytes taken when a write was first refused */
    bool ended;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char piece[STREAM_PIECE];
};

static void produce(void *ud)
{
    struct producer *p = ud;
    size_t n, i;

    while (!p->ended && p->sent < p->limit) {
        n = p->limit - p->sent < STREAM_PIECE ? p->limit - p->sent : STREAM_PIECE;
        for (i = 0; i < n; i++)
            p->piece[i] = (char)('a' + (p->sent + i) % 26);
        if (!nk_http_stream_write(p->s, p->piece, n)) {
            if (p->refusals++ == 0)
                p->first_refusal_at = p->sent;
            return;
        }
        p->sent += n;
    }
    if (!p->ended && p->sent == p->total) {
        p->ended = true;
        nk_http_stream_end(p->s, true);
    }
}

static void prod_drained(void *ud)
{
    struct producer *p = ud;

    p->drained++;
    produce(p);
}

static void prod_gone(void *ud)
{
    struct producer *p = ud;

    pthread_mutex_lock(&p->mu);
    p->gone++;
    p->ended = true;
    nk_http_stream_end(p->s, false);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void prod_start(void *ud)
{
    static const struct nk_http_stream_ops ops = {prod_drained, prod_gone};
    static const char *const hdrs[] = {"X-Streamed", "yes", NULL};
    struct producer *p = ud;

    p->s = nk_http_respond_stream(p->req, 200, "text/plain", hdrs, &ops, p);
    if (p->s != NULL && nk_http_stream_write(p->s, "hello ", 6))
        p->sent = 0; /* the pattern starts after the greeting */
}

static void prod_noop(void *ud)
{
    (void)ud;
}

static void prod_cut(void *ud)
{
    struct producer *p = ud;

    p->ended = true;
    nk_http_stream_end(p->s, false);
}

static int connect_and_get(struct fixture *f, const char *target)
{
    struct sockaddr_in a;
    struct timeval tv = {10, 0};
    char raw[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)nk_httpd_port(f->h));
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    n = snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                 target);
    assert_int_equal(send(fd, raw, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t k)
{
    size_t i;

    for (i = 0; k <= n && i <= n - k; i++)
        if (memcmp(hay + i, needle, k) == 0)
            return hay + i;
    return NULL;
}

/* Read from fd into buf until it holds needle (or the connection ends: false). */
static bool read_until(int fd, char *buf, size_t cap, size_t *len, const char *needle)
{
    ssize_t n;

    for (;;) {
        buf[*len] = '\0';
        if (find_bytes(buf, *len, needle, strlen(needle)) != NULL)
            return true;
        if (*len + 1 >= cap)
            return false;
        n = recv(fd, buf + *len, cap - *len - 1, 0);
        if (n <= 0)
            return false;
        *len += (size_t)n;
    }
}

/* Decode a chunked body (after the head); *complete: the last chunk (0) came. */
static size_t dechunk(const char *in, size_t len, char *out, bool *complete)
{
    size_t o = 0, size;
    const char *p = in, *end = in + len, *eol;

    *complete = false;
    while (p < end && (eol = find_bytes(p, (size_t)(end - p), "\r\n", 2)) != NULL) {
        size = strtoul(p, NULL, 16);
        if (size == 0) {
            *complete = true;
            break;
        }
        p = eol + 2;
        if ((size_t)(end - p) < size + 2)
            break;
        memcpy(out + o, p, size);
        o += size;
        p += size + 2;
    }
    return o;
}

/* A streamed answer: head and the first bytes at once; the connection waits without spinning
 * while the producer has nothing; a full buffer refuses writes and drains; the body arrives
 * chunked and whole; the access line has the status. */
static void test_stream_answer(void **state)
{
    struct fixture *f = start(NULL, 0);
    struct producer *p = calloc(1, sizeof(*p));
    size_t cap = 4U << 20, len = 0, blen, i;
    char *buf = malloc(cap), *body = malloc(cap), *head_end;
    uint64_t turns;
    struct timespec idle = {0, 300 * 1000 * 1000};
    bool complete;
    int fd;

    (void)state;
    assert_non_null(p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    f->mode = ANSWER_LATER;
    fd = connect_and_get(f, "/stream");
    p->req = wait_held(f);
    assert_non_null(p->req);
    p->total = 1024 * 1024;
    assert_true(nk_loop_run_sync(g_loop, prod_start, p));
    assert_non_null(p->s);
    assert_true(read_until(fd, buf, cap, &len, "hello \r\n"));
    assert_non_null(strstr(buf, "HTTP/1.1 200"));
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked"));
    assert_non_null(strstr(buf, "X-Streamed: yes"));
    assert_non_null(strstr(buf, "Content-Type: text/plain"));

    /* Nothing to send: the reader suspended the connection; the loop sleeps (a reader that
     * answered "nothing yet" without suspending would turn the loop thousands of times). */
    turns = nk_loop_turns(g_loop);
    nanosleep(&idle, NULL);
    assert_true(nk_loop_turns(g_loop) - turns < 50);

    /* The client reads nothing for now: writes fill the buffer to its bound and are refused. */
    p->limit = 1024 * 1024;
    p->sent = 0;
    assert_true(nk_loop_run_sync(g_loop, produce, p));
    /* (the loop may have drained into the socket since: read what the first call saw) */
    assert_int_equal(p->first_refusal_at, NK_HTTP_STREAM_BUFFER);

    /* Now read it all: drained() brings the rest, then the end. */
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    head_end = strstr(buf, "\r\n\r\n");
    assert_non_null(head_end);
    head_end += 4;
    blen = dechunk(head_end, len - (size_t)(head_end - buf), body, &complete);
    assert_true(complete);
    assert_int_equal(blen, 6 + p->total);
    assert_memory_equal(body, "hello ", 6);
    for (i = 0; i < p->total; i++)
        if (body[6 + i] != (char)('a' + i % 26))
            fail_msg("byte %zu differs", i);
    assert_true(p->ended);
    assert_true(p->refusals >= 1);
    assert_true(p->drained >= 1);
    assert_int_equal(p->gone, 0);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->last_access_status, 200);
    pthread_mutex_unlock(&f->mu);
    finish(f);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    free(buf);
    free(body);
}

/* A producer's error cuts the chunked body (no last chunk); a client that goes away while its
 * connection waits is noticed and gone() tells the producer, once. */
static void test_stream_cut_and_gone(void **state)
{
    struct fixture *f = start(NULL, 0);
    struct producer *p = calloc(1, sizeof(*p));
    size_t cap = 1U << 16, len = 0, blen;
    char *buf = malloc(cap), body[1U << 16], *head_end;
    bool complete;
    ssize_t n;
    int fd;

    (void)state;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    f->mode = ANSWER_LATER;
    fd = connect_and_get(f, "/cut");
    p->req = wait_held(f);
    assert_non_null(p->req);
    assert_true(nk_loop_run_sync(g_loop, prod_start, p));
    assert_true(read_until(fd, buf, cap, &len, "hello \r\n"));
    assert_true(nk_loop_run_sync(g_loop, prod_cut, p));
    while ((n = recv(fd, buf + len, cap - len - 1, 0)) > 0)
        len += (size_t)n;
    assert_int_equal(n, 0); /* closed, not timed out */
    close(fd);
    head_end = strstr(buf, "\r\n\r\n");
    assert_non_null(head_end);
    head_end += 4;
    blen = dechunk(head_end, len - (size_t)(head_end - buf), body, &complete);
    assert_false(complete);
    assert_int_equal(blen, 6);
    assert_int_equal(p->gone, 0);

    /* gone: the client closes while the connection waits for the producer */
    memset(p, 0, offsetof(struct producer, mu));
    len = 0;
    fd = connect_and_get(f, "/gone");
    p->req = wait_held(f);
    assert_non_null(p->req);
    assert_true(nk_loop_run_sync(g_loop, prod_start, p));
    assert_true(read_until(fd, buf, cap, &len, "hello \r\n"));
    close(fd);
    pthread_mutex_lock(&p->mu);
    while (p->gone == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 10;
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) != 0)
            break;
    }
    assert_int_equal(p->gone, 1);
    pthread_mutex_unlock(&p->mu);
    /* the stream is released: the listener has nothing in flight */
    for (int i = 0; i < 200 && nk_httpd_pending(f->h) > 0; i++)
        assert_true(nk_loop_run_sync(g_loop, prod_noop, NULL));
    finish(f);
    assert_int_equal(p->gone, 1);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
    free(buf);
}

static int loop_setup(void **state)
{
    struct nk_error err = {0};

    (void)state;
    if (nk_loop_new(&g_loop, &err) != NK_OK)
        return -1;
    return nk_loop_start(g_loop, &err) == NK_OK ? 0 : -1;
}

static int loop_teardown(void **state)
{
    (void)state;
    nk_loop_free(g_loop);
    g_loop = NULL;
    return 0;
}

#define IN_LOOP(f) cmocka_unit_test_setup_teardown(f, loop_setup, loop_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        IN_LOOP(test_raw_path_and_query),
        IN_LOOP(test_headers_body_and_request_id),
        IN_LOOP(test_answer_later_from_another_thread),
        IN_LOOP(test_body_too_large),
        IN_LOOP(test_ipv6_and_bad_address),
        IN_LOOP(test_port_in_use),
        IN_LOOP(test_quiesce_and_stop_with_pending),
        IN_LOOP(test_concurrent_answers_from_threads),
        IN_LOOP(test_refuse),
        IN_LOOP(test_out_of_descriptors),
        IN_LOOP(test_admit_before_body),
        IN_LOOP(test_admit_deferred),
        IN_LOOP(test_stop_with_deferred),
        IN_LOOP(test_framing_refused),
        IN_LOOP(test_many_query_args),
        IN_LOOP(test_body_sizes),
        IN_LOOP(test_request_deadline),
        IN_LOOP(test_stream_answer),
        IN_LOOP(test_stream_cut_and_gone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
