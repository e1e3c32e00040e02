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
    unsigned max_host_conns; /* 0: default 256 */
};

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

/* Called exactly once per submitted request, on the client's loop thread. resp is borrowed for
 * the duration of the call; the callee may take resp->body / content_type by setting the field to
 * NULL. Must not block. */
typedef void (*nk_upstream_done_fn)(void *ud, struct nk_upstream_response *resp);

struct nk_upstream;

/* Start the client and its loop thread. opts may be NULL (defaults). curl_global_init must have
 * been called (nk_upstream_global_init) before any thread starts. */
enum nk_rc nk_upstream_global_init(void);
void nk_upstream_global_cleanup(void);
enum nk_rc nk_upstream_new(const struct nk_upstream_options *opts, struct nk_upstream **out,
                           struct nk_error *err);
/* Stop the loop (in-flight transfers complete with NK_ERR_UPSTREAM "shutting down") and free.
 * NULL is a no-op. */
void nk_upstream_free(struct nk_upstream *u);

/* Queue a request. Thread-safe. Steals *req (even on failure: the struct is reset). On NK_OK the
 * callback will be called exactly once; on failure it is never called. */
enum nk_rc nk_upstream_submit(struct nk_upstream *u, struct nk_upstream_request *req,
                              nk_upstream_done_fn done, void *ud);

/* Abort every running transfer whose request carried cancel_tag (0: nothing): its callback runs
 * at once with rc NK_ERR_UPSTREAM and error "cancelled". Thread-safe and non-blocking: from
 * another thread the abort is posted to the loop (best effort: lost when memory runs out or the
 * loop has stopped). A tag that matches nothing is ignored. */
void nk_upstream_cancel(struct nk_upstream *u, uint64_t tag);

/* Number of transfers queued or running (for metrics and drain). */
size_t nk_upstream_in_flight(struct nk_upstream *u);

/* The client's loop thread also serves other event sources: the HTTP listeners run there (in
 * libmicrohttpd's external-polling mode), so a request is read, sent upstream, answered and
 * written back on one thread, with no hand-off between threads on the way. */
struct nk_upstream_source {
    int fd;                       /* level-triggered: readable means run() has work */
    void (*run)(void *ud);        /* on the loop thread; must not block */
    long (*timeout_ms)(void *ud); /* ms until run() is due anyway, -1 for none; loop thread */
    void *ud;
    /* Owned by the loop: */
    struct nk_upstream *attached; /* non-NULL while attached to a running loop */
    unsigned slot;
    bool kicked;
};

/* Run fn(ud) on the loop thread, once. The caller keeps *c alive until fn has run. */
struct nk_upstream_call {
    struct nk_upstream_call *next;
    void (*fn)(void *ud);
    void *ud;
};

/* Serve src on the loop (at most 16 sources). Not from the loop thread. NK_ERR_INVALID when the
 * loop is full or stopping. */
enum nk_rc nk_upstream_attach(struct nk_upstream *u, struct nk_upstream_source *src);
/* After return run() is never called again. Not from the loop thread. A source still attached
 * when the loop stops (nk_upstream_free) is detached by it: src->attached becomes NULL. */
void nk_upstream_detach(struct nk_upstream_source *src);
/* Loop thread only: run src again before the loop next waits. */
void nk_upstream_kick(struct nk_upstream_source *src);
/* True on the loop thread of u. */
bool nk_upstream_on_loop(const struct nk_upstream *u);
/* Queue c to run on the loop thread. false when the loop has stopped (c is not queued). */
bool nk_upstream_post(struct nk_upstream *u, struct nk_upstream_call *c);
/* Run fn(ud) on the loop thread and wait for it (runs it here when called on the loop thread;
 * false, without running it, when the loop has stopped). */
bool nk_upstream_run_sync(struct nk_upstream *u, void (*fn)(void *ud), void *ud);

#endif
