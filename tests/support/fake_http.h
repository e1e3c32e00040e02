/* SPDX-License-Identifier: Apache-2.0 */
/* fake_http.h: a tiny HTTP/1.1 server for tests (raw sockets, one thread per connection) that
 * records every request it receives and answers through a test-supplied handler. */
#ifndef NK_TEST_FAKE_HTTP_H
#define NK_TEST_FAKE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct fake_req {
    char method[16];
    char *target; /* raw request target as sent, e.g. "/v1/a%2Fb?x=1" */
    char **names; /* header names as sent */
    char **values;
    size_t n_headers;
    char *body; /* NUL-terminated */
    size_t body_len;
    unsigned conn; /* 1-based connection number this request arrived on */
};

/* What the handler answers. Defaults: 200, application/json, body {"ok":true}. */
struct fake_resp {
    int status;
    const char *content_type; /* NULL: no Content-Type header */
    char *body;               /* malloc'd by the handler (freed by the server), or NULL */
    size_t body_len;
    const char *extra_headers; /* "Name: value\r\n..." or NULL */
    bool stall;                /* do not answer until fake_http_release() or the client goes away */
    bool no_length; /* send without Content-Length and close the connection after the body */
};

typedef void (*fake_handler_fn)(void *ud, const struct fake_req *req, struct fake_resp *resp);

struct fake_http;

/* Start on 127.0.0.1 port 0. handler may be NULL (default answer). */
struct fake_http *fake_http_start(fake_handler_fn handler, void *ud);
unsigned short fake_http_port(const struct fake_http *s);
/* "http://127.0.0.1:PORT"; static per server. */
const char *fake_http_base(const struct fake_http *s);
/* Stop: wakes stalled handlers, closes every connection, joins every thread, frees. */
void fake_http_stop(struct fake_http *s);

/* Let every stalled (and future stalled) request answer. */
void fake_http_release(struct fake_http *s);
/* Block until at least n requests have been received (bounded: fails the test after 10 s). */
void fake_http_wait_requests(struct fake_http *s, size_t n);

size_t fake_http_n_requests(struct fake_http *s);
/* Copy of request i (caller frees with fake_req_free). */
struct fake_req *fake_http_request(struct fake_http *s, size_t i);
void fake_req_free(struct fake_req *r);
/* First header value named name (case-insensitive), or NULL; count in *n if not NULL. */
const char *fake_req_header(const struct fake_req *r, const char *name, size_t *n);
unsigned fake_http_n_connections(struct fake_http *s);

/* A 127.0.0.1 port that nothing listens on (bound, then closed). */
unsigned short fake_unused_port(void);

#endif
