/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.h: the in-process metrics registry and its Prometheus text exposition (format 0.0.4).
 *
 * Hot-path calls are lock-free (relaxed atomics on fixed arrays). Operations are identified by a
 * small integer (an "op id") assigned the first time a name is seen: names come only from the
 * loaded table (REST operation names, MCP tool names), so the label set stays bounded; a table
 * swap simply brings new names, which get new ids until the registry is full (NK_METRICS_MAX_OPS),
 * after which they share the id NK_METRICS_OTHER (label "other"). Id NK_METRICS_UNMATCHED (label
 * "unmatched") counts requests that reached no operation. */
#ifndef NAFTIKOD_METRICS_H
#define NAFTIKOD_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/upstream.h"

#define NK_METRICS_MAX_OPS 16384u
#define NK_METRICS_UNMATCHED 0u
#define NK_METRICS_OTHER 1u

enum nk_metrics_adapter { NK_METRICS_REST = 0, NK_METRICS_MCP = 1 };

/* Values read at scrape time rather than counted. */
struct nk_metrics_gauges {
    double inflight[2];        /* per enum nk_metrics_adapter */
    double upstream_waiting;   /* upstream calls waiting for their origin (nk_upstream_waiting) */
    double start_time_s;       /* process start, seconds since the epoch */
    double resident_bytes;     /* resident set size */
    const char *version;       /* build_info label */
    const char *capability;    /* the table's fingerprint (naftikod_capability_info), or NULL */
    const char (*key_fps)[17]; /* session key fingerprints, signing key first */
    size_t n_key_fps;
    int upstream_reachable; /* the last upstream probe: 1, 0, or -1 when none ran yet */
    bool have_refused;      /* sessions_refused is set (an MCP engine runs) */
    unsigned long long sessions_refused[3]; /* missing, unknown, ended (enum nk_mcp_refused) */
};

struct nk_metrics;

/* A registry of one's own (tests); NULL on OOM. */
struct nk_metrics *nk_metrics_new(void);
void nk_metrics_free(struct nk_metrics *m); /* NULL is a no-op */
/* The process-wide registry the hooks below use (static storage, never NULL). */
struct nk_metrics *nk_metrics_global(void);

/* The id of operation name (NULL: NK_METRICS_UNMATCHED). Lock-free when already known. */
unsigned nk_metrics_op(struct nk_metrics *m, const char *name);
/* The id of operation name of adapter adapter_ns: its samples carry the label
 * adapter_namespace="NS" after operation="NAME" (adapter_ns NULL: nk_metrics_op). */
unsigned nk_metrics_op_of(struct nk_metrics *m, const char *adapter_ns, const char *name);
/* Count one answered request of adapter with HTTP status, bucketed into the classes 2xx, 3xx, 4xx
 * and 5xx (anything outside 200..499 counts as 5xx). */
void nk_metrics_count(struct nk_metrics *m, enum nk_metrics_adapter adapter, unsigned op,
                      unsigned status);
/* Record one finished upstream call of op: its duration and, when it failed in transport, the
 * error kind (connect, timeout, tls, too_large, other). */
void nk_metrics_observe(struct nk_metrics *m, unsigned op, const struct nk_upstream_response *resp);
void nk_metrics_reloaded(struct nk_metrics *m, bool ok);
/* Per-loop request counters (naftikod_loop_requests_total{loop="I"}), rendered for loops
 * 0..n-1 once n > 0 (serve sets it at start-up). Any thread. */
#define NK_METRICS_MAX_LOOPS 64
void nk_metrics_set_loops(struct nk_metrics *m, unsigned n);
/* Count one answered adapter request on loop (>= NK_METRICS_MAX_LOOPS: ignored). Any thread. */
void nk_metrics_loop_count(struct nk_metrics *m, unsigned loop);

/* Render the whole registry plus g as Prometheus text format 0.0.4 (NUL-terminated, malloc'd;
 * *len without the NUL). NULL on OOM. */
char *nk_metrics_render(struct nk_metrics *m, const struct nk_metrics_gauges *g, size_t *len);

/* Append value to out escaped as a label value (\\, \", \n); returns the bytes written excluding
 * the NUL, or the bytes needed when cap is too small (like snprintf). Exposed for tests. */
size_t nk_metrics_escape_label(const char *value, char *out, size_t cap);

/* ---- hooks on the global registry (one call at each site) ---- */

/* invoke.c, when an upstream call completes. */
void nk_metrics_upstream(const char *adapter_ns, const char *op_name,
                         const struct nk_upstream_response *resp);
/* Count a table reload: serve.c calls it once per SIGHUP, whether the reload worked or not. */
void nk_metrics_reload(bool ok);

/* Process start time (seconds since the epoch, from /proc/self/stat) and resident set size
 * (bytes, from /proc/self/statm); 0 when unknown. */
double nk_metrics_process_start(void);
double nk_metrics_process_rss(void);

#endif
