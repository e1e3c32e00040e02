/* SPDX-License-Identifier: Apache-2.0 */
/* httpd.h: the HTTP listener (libmicrohttpd behind this seam), served on an event loop
 * (loop.h). It reads a whole request (bounded), hands it to one handler, and lets the handler
 * answer later from any thread: the connection is suspended meanwhile, so a slow upstream never
 * holds the loop. */
#ifndef NAFTIKOD_HTTPD_H
#define NAFTIKOD_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"
#include "naftikod/principal.h"
#include "naftikod/proxies.h"

/* One answered request, for the access log. Every field borrowed for the duration of the call.
 * Never carries a header value other than the request id. */
struct nk_http_access {
    const char *method;
    const char *path; /* raw path as received, without the query */
    unsigned status;
    double seconds;         /* from the request line to the response being queued */
    const char *request_id; /* nk_http_req_id() */
    const char *client;     /* numeric client address (trusted_proxies: the one forwarded) */
    const char *peer;       /* the peer's address when it differs from client, else NULL */
    const char *rpc_method; /* nk_http_req_set_rpc(), "" when never set */
    const char *rpc_tool;   /* nk_http_req_set_rpc(), "" when none */
    unsigned tag;           /* nk_http_req_set_tag(), 0 when never set */
    const char *caller;     /* nk_http_req_set_caller(), "" when unauthenticated */
};
/* Called once per answered request (including the listener's own 4xx answers) on the answering
 * thread (the loop thread, or the thread that calls nk_http_respond()). Must not block. */
typedef void (*nk_httpd_access_fn)(void *ud, const struct nk_http_access *a);

struct nk_http_req;

/* Called once per request when its head (request line and headers) is complete and well formed,
 * before any byte of its body is accepted, on the loop thread; ud is the handler's.
 * Method, path, query, headers, client and id are readable; the body is not (empty). It may call
 * nk_http_req_set_caller(). Return true to let the request in: its body is read and the handler
 * gets it. To refuse it, answer it with nk_http_respond() before returning false: the body is
 * then never read and the connection closes once the answer is sent (returning false without an
 * answer sends a 500). Must not block. */
typedef bool (*nk_httpd_admit_fn)(void *ud, struct nk_http_req *req);

struct nk_rate;

/* Open connections per client address (and requests in flight per client behind a trusted
 * proxy), counted across several listeners (the instances of one adapter on several loops); at
 * most max per address (0: no limit). Thread-safe. *out: caller
 * frees with nk_httpd_client_conns_free() after every listener using it stopped. NK_ERR_NOMEM. */
struct nk_httpd_client_conns;
enum nk_rc nk_httpd_client_conns_new(unsigned max, struct nk_httpd_client_conns **out);
void nk_httpd_client_conns_free(struct nk_httpd_client_conns *c); /* NULL is a no-op */

struct nk_httpd_options {
    const char *address;      /* numeric IPv4/IPv6 address to bind; NULL: "127.0.0.1" */
    unsigned port;            /* 0: ephemeral (read back with nk_httpd_port) */
    bool reuse_port;          /* SO_REUSEPORT: other listeners (other loops) may bind the
                                 same address and port, and the kernel spreads new
                                 connections over them */
    size_t max_body;          /* request body limit in bytes (413 beyond); 0: 1 MiB */
    unsigned max_connections; /* 0: 1024 */
    unsigned conn_timeout_s;  /* idle timeout; 0: 30 */
    unsigned max_per_client;  /* connections per client address (requests in flight for a
                                 client behind trusted_proxies); 0: no limit of its own */
    size_t max_header_bytes;  /* per-connection memory for the request head; 0: 16 KiB */
    double rate_per_s;        /* requests per second per client address; 0: unlimited */
    unsigned rate_burst;      /* bucket size; 0: max(1, rate_per_s) */
    /* With rate_per_s > 0: buckets shared with other listeners (the instances of one adapter
     * on several loops: a client's rate is one budget whichever loop it reaches), borrowed, it
     * must outlive the listener; NULL: buckets of the listener's own (rate_per_s, rate_burst) */
    struct nk_rate *shared_rate;
    /* Non-NULL: count connections per client address together with the other listeners given
     * the same counter (nk_httpd_client_conns_new; borrowed, it must outlive the listener)
     * instead of max_per_client for this listener alone. */
    struct nk_httpd_client_conns *shared_client_conns;
    unsigned request_timeout_s; /* a request must arrive whole within this (a loop timer per
                                   connection); 0: no deadline */
    /* Optional, borrowed (must outlive the listener): from a peer in these blocks the client
     * of a request is the one its X-Forwarded-For / Forwarded header names (nk_proxies_client):
     * the access log's client and the rate limit's key. With max_per_client, a trusted
     * proxy's connections are not counted (they carry many clients); each request through it
     * counts as one for its client while it is in flight, and beyond max_per_client the
     * request is answered 429. */
    const struct nk_proxies *trusted_proxies;
    nk_httpd_admit_fn admit;       /* optional (NULL: every well-formed request is read) */
    nk_httpd_access_fn access_log; /* optional (NULL: none) */
    void *access_ud;               /* passed to access_log */
    /* Required; borrowed, running, and it must outlive the listener (stop the listener before
     * nk_loop_free()). The listener has no thread of its own: libmicrohttpd's epoll set is a
     * source of the loop, so with the upstream client on the same loop a request is read, sent
     * upstream and answered on one thread. */
    struct nk_loop *loop;
};

struct nk_loop;

/* Called once per complete request on the loop thread. It must arrange for exactly one
 * nk_http_respond() on req, now or later, from any thread.
 *
 * Before the handler (and the admit hook) sees a request, the listener answers these itself,
 * with a problem document and Connection: close, without reading the body:
 * 400 for two or more Content-Length headers, Content-Length together with Transfer-Encoding,
 * or a header name that is not an RFC 9110 token (e.g. "Content-Length : 5");
 * 501 for a Transfer-Encoding other than the single coding "chunked";
 * 414 for a target with more than NK_HTTPD_MAX_QUERY_ARGS query arguments;
 * 429 beyond the rate limit or a forwarded client's max_per_client; 413 when Content-Length is
 * over max_body. */
#define NK_HTTPD_MAX_QUERY_ARGS 256
typedef void (*nk_httpd_handler_fn)(void *ud, struct nk_http_req *req);

struct nk_httpd;

/* Bind and start serving on opts->loop. Any thread but the loop's own. On failure returns
 * NK_ERR_IO (address in use, bad address), NK_ERR_INVALID (no loop), NK_ERR_INTERNAL (the loop
 * is not running), with the reason in err. */
enum nk_rc nk_httpd_start(const struct nk_httpd_options *opts, nk_httpd_handler_fn handler,
                          void *ud, struct nk_httpd **out, struct nk_error *err);
/* The port actually bound. */
unsigned nk_httpd_port(const struct nk_httpd *h);
/* Lame duck (SIGTERM, before the drain): keep accepting and serving, but answer every request
 * with Connection: close. Any thread; NULL is a no-op. */
void nk_httpd_lame_duck(struct nk_httpd *h);
/* Stop accepting new connections (the socket closes); requests already read still complete. */
void nk_httpd_quiesce(struct nk_httpd *h);
/* Requests handed to the handler whose answer has not been completely sent yet (or whose
 * connection has not ended): zero means a drain is done. */
size_t nk_httpd_pending(struct nk_httpd *h);
/* From now on answer 503 ("server shutting down", Connection: close) to every new request
 * without calling the handler; requests already handed over are not affected. Any thread;
 * NULL is a no-op. nk_httpd_stop() does it too. */
void nk_httpd_refuse(struct nk_httpd *h);
/* Stop and free. Call after pending reached zero (or the drain timeout). Any thread but the
 * loop's own; the loop may have stopped already (this thread then writes the last answers).
 * NULL is a no-op. */
void nk_httpd_stop(struct nk_httpd *h);

/* Request accessors; all results borrowed, valid until nk_http_respond(). */
const char *nk_http_req_method(const struct nk_http_req *r);
/* The path as received (still percent-encoded), without the query string. */
const char *nk_http_req_path(const struct nk_http_req *r);
const char *nk_http_req_header(const struct nk_http_req *r, const char *name); /* case-insens. */
/* Query arguments in order; values percent-decoded; value NULL for "?flag". */
size_t nk_http_req_query_count(const struct nk_http_req *r);
void nk_http_req_query_at(const struct nk_http_req *r, size_t i, const char **name,
                          const char **value);
/* NUL-terminated; "" (len 0) in the admit hook, before the body is read. */
const char *nk_http_req_body(const struct nk_http_req *r, size_t *len);
/* numeric client address: the peer's, or the one a trusted proxy forwarded */
const char *nk_http_req_client(const struct nk_http_req *r);
/* Name the RPC method and tool of the request for the access line (copied, truncated to 63 and
 * 127 bytes; tool may be NULL). The handler's thread, before nk_http_respond(). */
void nk_http_req_set_rpc(struct nk_http_req *r, const char *method, const char *tool);
/* The request id: the incoming X-Request-Id when it is safe ([A-Za-z0-9._-]{1,64}), else one
 * generated here. nk_http_respond() adds it as X-Request-Id unless headers already name one. */
const char *nk_http_req_id(const struct nk_http_req *r);
/* The authenticated caller's name (inbound token authentication), shown in the access log;
 * "" until set. */
void nk_http_req_set_caller(struct nk_http_req *r, const char *name);
const char *nk_http_req_caller(const struct nk_http_req *r);
/* The whole principal (principal.h): copied onto the request; sets the caller name too. Until
 * set, nk_http_req_principal() is an anonymous one with an empty name. */
void nk_http_req_set_principal(struct nk_http_req *r, const struct nk_principal *p);
const struct nk_principal *nk_http_req_principal(const struct nk_http_req *r);

/* Inside the admit hook only (on a request the hook has not answered): decide later, without
 * holding the loop (a key or an introspection answer to fetch first). The connection is
 * suspended and no byte of the body is read; the hook's return value is then ignored. Later,
 * from any thread, exactly one of: nk_http_respond() refuses it (as from the hook: the body is
 * never read and the connection closes after the answer), or nk_http_req_admit() lets it in
 * (its body is read and the handler gets it). The principal may be set before either. If the
 * listener stops first, the request is answered 503 and the late verdict only releases it.
 * Does nothing on a detached request or outside the hook. */
void nk_http_req_defer(struct nk_http_req *r);
void nk_http_req_admit(struct nk_http_req *r);

/* Charge n more requests to r's client under the listener's rate limit (a request that carries
 * several calls, e.g. a JSON-RPC batch): takes all n tokens from the client's bucket and returns
 * true, or takes none and returns false with *retry_s (seconds until n tokens are there) set.
 * Always true without a rate limit, for n == 0, and on a detached request. Any thread. */
bool nk_http_req_charge(struct nk_http_req *r, unsigned n, unsigned *retry_s);
/* Call fn(ud) on the loop thread, at most once, when the client
 * closes req's connection before req is answered (looked at every 200 ms while such a request
 * waits). Call from the handler; fn must not block and may answer req; ud must stay valid until
 * req is answered (answers come on the loop thread). Never called after
 * nk_http_respond(). For MCP's stateless era, where a closed request stream cancels it. */
void nk_http_req_on_close(struct nk_http_req *r, void (*fn)(void *ud), void *ud);

/* Attach a small number to req that the access hook receives (metrics use it for the operation
 * id). Call before nk_http_respond(), from the thread that owns req at that moment. */
void nk_http_req_set_tag(struct nk_http_req *r, unsigned tag);

/* Answer req and release it. status: HTTP status; content_type may be NULL; body is stolen (may
 * be NULL when len is 0) even on failure; headers: NULL, or name/value pairs ended by NULL.
 * Every answer carries X-Content-Type-Options: nosniff (unless headers name it).
 * Thread-safe: may be called from any thread, including inside the handler; inside the admit
 * hook it refuses the request (and must be called on the hook's thread, before it returns). */
void nk_http_respond(struct nk_http_req *r, unsigned status, const char *content_type, char *body,
                     size_t len, const char *const *headers);

/* A streamed answer: the head goes out now, the body follows as the producer writes it, chunked
 * (HTTP/1.0: until the connection closes). For a relay (a REST forward), on the listener's loop
 * thread: every function below and both callbacks run there. */
#define NK_HTTP_STREAM_BUFFER ((size_t)64 * 1024)
struct nk_http_stream;
struct nk_http_stream_ops {
    /* A write was refused (the buffer was full) and the client has since taken enough that
     * less than half of NK_HTTP_STREAM_BUFFER waits: write again. */
    void (*drained)(void *ud);
    /* The client went away (or the listener stops) before nk_http_stream_end(): whatever is
     * written from now on is dropped; end the stream. Called at most once, never after
     * nk_http_stream_end(), never from inside nk_http_stream_write() or _end(). */
    void (*gone)(void *ud);
};
/* Answer r (dispatched to the handler, not answered) with status, content_type (may be NULL)
 * and headers as nk_http_respond() does, and a body to come. ops is copied; ud must stay valid
 * until nk_http_stream_end(). Returns the stream, the caller's until nk_http_stream_end(), or
 * NULL when it could not be made (out of memory: r was answered 500; or the listener stopped:
 * r is released) -- r is answered either way. */
struct nk_http_stream *nk_http_respond_stream(struct nk_http_req *r, unsigned status,
                                              const char *content_type, const char *const *headers,
                                              const struct nk_http_stream_ops *ops, void *ud);
/* Queue len bytes (borrowed) for the client. true: taken (or dropped: the client is gone).
 * false: NK_HTTP_STREAM_BUFFER bytes or more are waiting; nothing was taken and drained()
 * comes once the client has read enough. A client that reads nothing thus holds at most the
 * buffer plus one write. */
bool nk_http_stream_write(struct nk_http_stream *s, const char *data, size_t len);
/* The body is complete (ok) or broken (!ok: the client gets a cut chunked body, the honest
 * signal that it is incomplete, once the bytes already queued have gone). Releases s. On a
 * detached request the body is collected and handed to its answer function here. */
void nk_http_stream_end(struct nk_http_stream *s, bool ok);

/* Tests and fuzzing only: a request that belongs to no listener or connection. target is the
 * raw request target (path and query), headers NULL or name/value pairs ended by NULL, body may
 * be NULL. nk_http_respond() on it hands the answer to answer(ud, status, content_type, body,
 * len) (all borrowed) and frees the request. NULL on OOM or a target with more than
 * NK_HTTPD_MAX_QUERY_ARGS query arguments. */
typedef void (*nk_http_detached_fn)(void *ud, unsigned status, const char *content_type,
                                    const char *body, size_t len);
struct nk_http_req *nk_http_req_detached(const char *method, const char *target,
                                         const char *const *headers, const char *body,
                                         size_t body_len, nk_http_detached_fn answer, void *ud);

#endif
