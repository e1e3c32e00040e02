/* SPDX-License-Identifier: Apache-2.0 */
/* upstream.h: the one shared, asynchronous HTTP client (libcurl multi) every adapter uses. */
#ifndef NAFTIKOD_UPSTREAM_H
#define NAFTIKOD_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "naftikod/common.h"

struct nk_upstream_options {
    long connect_timeout_ms; /* 0: default 5000 */
    long timeout_ms;         /* total per transfer; 0: default 30000 */
    size_t max_response;     /* bytes; 0: default 16 MiB. Larger: NK_ERR_TOO_LARGE */
    const char *ca_file;     /* PEM bundle to trust instead of the system store, or NULL */
    bool insecure;           /* skip TLS verification (labs only; logged loudly by the caller) */
    unsigned max_host_conns; /* transfers at once per origin (and connections per host); 0: 256 */
    /* Caches shared with the clients of other loops (nk_upstream_share_new), or NULL; borrowed:
     * it must outlive every client that uses it. */
    struct nk_upstream_share *share;
};

/* The DNS cache and TLS session cache, shared by the clients of several loops behind locks
 * (libcurl's share interface). Connections are not shared: each client keeps its own pool
 * (libcurl 7.88 does not support sharing connections between concurrent threads).
 * *out: caller frees with nk_upstream_share_free() after every client using it. NK_ERR_NOMEM. */
struct nk_upstream_share;
enum nk_rc nk_upstream_share_new(struct nk_upstream_share **out);
void nk_upstream_share_free(struct nk_upstream_share *s); /* NULL is a no-op */

/* A request to send. Everything is owned by the request; nk_upstream_request_cleanup frees. */
struct nk_upstream_request {
    char *method;   /* "GET", ... */
    char *url;      /* absolute, already encoded */
    char **headers; /* "Name: value" lines */
    size_t n_headers;
    char *body; /* or NULL */
    size_t body_len;
    uint64_t cancel_tag; /* non-zero: nk_upstream_cancel(u, cancel_tag) aborts this transfer */
};
void nk_upstream_request_cleanup(struct nk_upstream_request *r);

struct nk_upstream_response {
    enum nk_rc rc; /* NK_OK when an HTTP response arrived (any status); NK_ERR_UPSTREAM
                      (connect/DNS/TLS/reset), NK_ERR_TIMEOUT, NK_ERR_TOO_LARGE otherwise */
    long status;   /* HTTP status, 0 when none */
    char *body;    /* NUL-terminated (not counted in body_len); owned by the response */
    size_t body_len;
    char *content_type; /* or NULL; owned */
    char error[256];    /* transport failure detail, never containing credentials */
    double seconds;     /* total transfer time */
};
void nk_upstream_response_cleanup(struct nk_upstream_response *r);

/* Called exactly once per submitted request, on the client's loop thread (or, once that loop
 * has stopped, on the thread that frees the client). resp is borrowed for
 * the duration of the call; the callee may take resp->body / content_type by setting the field to
 * NULL. Must not block. */
typedef void (*nk_upstream_done_fn)(void *ud, struct nk_upstream_response *resp);

struct nk_upstream;
struct nk_loop;

/* curl_global_init, once, before any thread starts. */
enum nk_rc nk_upstream_global_init(void);
void nk_upstream_global_cleanup(void);
/* A client on loop (borrowed: it must outlive the client; running or not yet started): curl's
 * sockets become watches of the loop and curl's timeout a loop timer, so every transfer runs on
 * the loop thread. opts may be NULL (defaults). NK_ERR_INVALID without a loop. Any thread. */
enum nk_rc nk_upstream_new(struct nk_loop *loop, const struct nk_upstream_options *opts,
                           struct nk_upstream **out, struct nk_error *err);
/* In-flight transfers complete with NK_ERR_UPSTREAM "shutting down" (on the loop thread, or on
 * this one when the loop has stopped), then free. Any thread, but not from one of this client's
 * callbacks. Free it before the loop. NULL is a no-op. */
void nk_upstream_free(struct nk_upstream *u);

/* Queue a request. Thread-safe: on the loop thread it starts at once, from another thread it
 * is posted to the loop. Steals *req (even on failure: the struct is reset). On NK_OK the
 * callback will be called exactly once; on failure (NK_ERR_INVALID once the client is being
 * freed or the loop has stopped) it is never called. */
enum nk_rc nk_upstream_submit(struct nk_upstream *u, struct nk_upstream_request *req,
                              nk_upstream_done_fn done, void *ud);

/* Streaming (opt-in, for a relay such as a REST forward): the body is handed over piece by piece
 * as it arrives instead of being collected, so the client holds no more of it than one piece.
 * Both callbacks run on the client's loop thread and must not block. */
struct nk_upstream_stream {
    /* Once, when the head of the final (non-1xx) response is complete, before any byte of
     * its body; never when the transfer fails before (then done carries the error: a
     * Content-Length over max_response is refused there with NK_ERR_TOO_LARGE). status: the
     * HTTP status; content_type: borrowed for the call, NULL when none. */
    void (*on_head)(void *ud, long status, const char *content_type);
    /* A piece of the body (borrowed for the call; len > 0). Return true when taken. false:
     * the consumer is full: the piece is not taken and the transfer pauses (its socket is not
     * read) until nk_upstream_unpause(), which hands the same piece over again. */
    bool (*on_data)(void *ud, const char *data, size_t len);
};

/* Like nk_upstream_submit, but the body goes to st's callbacks (st is copied) and done gets
 * none: resp->body is NULL and resp->body_len counts the bytes handed over. The total is still
 * bounded by max_response (beyond it the transfer is aborted: rc NK_ERR_TOO_LARGE); the total
 * time by timeout_ms, pauses included. Loop thread only. */
enum nk_rc nk_upstream_submit_stream(struct nk_upstream *u, struct nk_upstream_request *req,
                                     const struct nk_upstream_stream *st, nk_upstream_done_fn done,
                                     void *ud);
/* Resume the streamed transfer tagged tag that paused because on_data returned false (the
 * piece is handed over again, possibly inside this call). A tag that matches nothing paused is
 * ignored. Loop thread only, never from inside this client's callbacks. */
void nk_upstream_unpause(struct nk_upstream *u, uint64_t tag);

/* Abort every running transfer whose request carried cancel_tag (0: nothing): its callback runs
 * at once with rc NK_ERR_UPSTREAM and error "cancelled". Thread-safe and non-blocking: from
 * another thread the abort is posted to the loop (best effort: lost when memory runs out or the
 * loop has stopped). A tag that matches nothing is ignored. */
void nk_upstream_cancel(struct nk_upstream *u, uint64_t tag);

/* Number of transfers queued or running (for metrics and drain). */
size_t nk_upstream_in_flight(struct nk_upstream *u);
/* Of those, the ones waiting for their origin: at most max_host_conns transfers per origin
 * (scheme://authority) run at once on a client; the others wait in order of submission, without
 * a curl handle, and their total time (timeout_ms) counts from the submission: one still waiting
 * when it runs out ends with NK_ERR_TIMEOUT. Any thread. */
size_t nk_upstream_waiting(struct nk_upstream *u);

/* The total time one transfer may take (options.timeout_ms or its default), in ms. */
long nk_upstream_timeout_ms(const struct nk_upstream *u);

/* The loop the client runs on (borrowed). */
struct nk_loop *nk_upstream_loop(const struct nk_upstream *u);

#endif
