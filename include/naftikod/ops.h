/* SPDX-License-Identifier: Apache-2.0 */
/* ops.h: the operations listener: GET /healthz, /readyz and /metrics on a port of its own, so
 * probes and scrapes never share a port with the adapters that act with the upstream
 * credential. */
#ifndef NAFTIKOD_OPS_H
#define NAFTIKOD_OPS_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"
#include "naftikod/metrics.h"
#include "naftikod/server.h"

#define NK_OPS_DEFAULT_LISTEN "127.0.0.1:8091"
#define NK_OPS_DEFAULT_READY_CACHE_MS 5000
/* The listener's own limits (docs/security.md): probes and scrapes are small and quick, so a
 * client trickling bytes or holding many connections is cut off long before it could keep
 * another client's /healthz from being served. */
#define NK_OPS_DEFAULT_MAX_CONNECTIONS 256 /* open connections in all */
#define NK_OPS_MAX_PER_CLIENT 16           /* open connections per client address */
#define NK_OPS_REQUEST_TIMEOUT_S 5         /* a request must arrive whole within this */
#define NK_OPS_IDLE_TIMEOUT_S 10           /* a silent connection is closed after this */

/* Requests in flight on the adapters of one kind, read at scrape time. */
typedef size_t (*nk_ops_inflight_fn)(void *ud, enum nk_metrics_adapter a);

struct nk_ops_options {
    const char *listen;          /* ADDR:PORT, [V6ADDR]:PORT, :PORT (127.0.0.1) or "off" */
    long ready_cache_ms;         /* how long a /readyz verdict is reused; 0: probe every time */
    struct nk_server *server;    /* borrowed; must outlive the listener */
    nk_ops_inflight_fn inflight; /* optional */
    void *inflight_ud;
    unsigned max_connections; /* 0: NK_OPS_DEFAULT_MAX_CONNECTIONS */
};

struct nk_ops;

/* Parse an --ops-listen value. *off is set for "off" (addr/port untouched). false: malformed. */
bool nk_ops_parse_listen(const char *v, char *addr, size_t cap, unsigned *port, bool *off);

/* Start the listener (*out stays NULL for "off"). NK_ERR_INVALID: malformed listen value;
 * NK_ERR_IO: cannot bind (reason in err). */
enum nk_rc nk_ops_start(const struct nk_ops_options *o, struct nk_ops **out, struct nk_error *err);
unsigned nk_ops_port(const struct nk_ops *o);
/* The bound address (numeric), borrowed. */
const char *nk_ops_address(const struct nk_ops *o);
/* From now on /readyz answers 503 "shutting down" (called when the drain starts). */
void nk_ops_shutting_down(struct nk_ops *o);
/* Stop and free. Readiness probes still running must have completed: call after the upstream
 * client was freed. NULL is a no-op. */
void nk_ops_stop(struct nk_ops *o);

#endif
