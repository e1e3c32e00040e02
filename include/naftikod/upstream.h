/* SPDX-License-Identifier: Apache-2.0 */
/* upstream.h: the one shared, asynchronous HTTP client (libcurl multi) every adapter uses. */
#ifndef NAFTIKOD_UPSTREAM_H
#define NAFTIKOD_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

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

/* Number of transfers queued or running (for metrics and drain). */
size_t nk_upstream_in_flight(struct nk_upstream *u);

#endif
