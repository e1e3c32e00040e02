/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c: counters, one histogram and the Prometheus text exposition (format 0.0.4). Hot-path
 * updates are relaxed atomic adds on fixed arrays; rendering reads them without a lock. */
#include "naftikod/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Upper bounds (seconds) of the upstream latency histogram; +Inf is implicit. */
static const double bucket_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]) + 1)
#define N_INDEX (NK_METRICS_MAX_OPS * 2u) /* open-addressing index, load <= 1/2 */
_Static_assert((N_INDEX & (N_INDEX - 1u)) == 0, "the index size must be a power of two");

enum err_kind { ERR_CONNECT, ERR_TIMEOUT, ERR_TLS, ERR_TOO_LARGE, ERR_OTHER, N_ERR };
static const char *const err_names[N_ERR] = {"connect", "timeout", "tls", "too_large", "other"};
static const char *const adapter_names[2] = {"rest", "mcp"};
static const char *const class_names[4] = {"2xx", "3xx", "4xx", "5xx"};

struct op_slot {
    _Atomic(char *) name; /* set once under mu, then immutable */
    atomic_ullong requests[2][4];
    atomic_ullong buckets[N_BUCKETS]; /* not cumulative; rendered cumulatively */
    atomic_ullong sum_us;             /* microseconds */
};

struct nk_metrics {
    pthread_mutex_t mu; /* serialises name registration only */
    atomic_uint n_ops;
    atomic_uint index[N_INDEX]; /* 0: empty, else op id + 1 */
    struct op_slot ops[NK_METRICS_MAX_OPS];
    atomic_ullong errors[N_ERR];
    atomic_ullong reloads[2]; /* ok, error */
    atomic_uint n_loops;      /* 0: no per-loop series */
    atomic_ullong loop_requests[NK_METRICS_MAX_LOOPS];
};

/* An operation's key: its name, and for an exposed operation the adapter namespace too; kept as
 * "NAME" or "NAME\x1fNS" (put_op() splits it), but hashed and compared in place, so counting a
 * request builds no string. */
struct op_key {
    const char *name;
    const char *ns; /* NULL: none */
};

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static uint32_t hash_key(const struct op_key *k)
{
    uint32_t h = fnv(2166136261u, k->name);

    return k->ns != NULL ? fnv((h ^ 0x1fu) * 16777619u, k->ns) : h;
}

/* stored == "NAME" or "NAME\x1fNS" for k */
static bool key_equal(const char *stored, const struct op_key *k)
{
    size_t n = strlen(k->name);

    if (strncmp(stored, k->name, n) != 0)
        return false;
    stored += n;
    if (k->ns == NULL)
        return *stored == '\0';
    return *stored == '\x1f' && strcmp(stored + 1, k->ns) == 0;
}

static char *key_text(const struct op_key *k)
{
    size_t a = strlen(k->name), b = k->ns != NULL ? strlen(k->ns) : 0;
    char *s = malloc(a + b + 2);

    if (s == NULL)
        return NULL;
    memcpy(s, k->name, a);
    if (k->ns != NULL) {
        s[a] = '\x1f';
        memcpy(s + a + 1, k->ns, b);
        a += b + 1;
    }
    s[a] = '\0';
    return s;
}

static char unmatched_name[] = "unmatched", other_name[] = "other";

static void metrics_init(struct nk_metrics *m)
{
    /* m is zeroed storage (calloc or static): the slots' pages stay untouched until used */
    pthread_mutex_init(&m->mu, NULL);
    atomic_store(&m->ops[NK_METRICS_UNMATCHED].name, unmatched_name);
    atomic_store(&m->ops[NK_METRICS_OTHER].name, other_name);
    atomic_store(&m->n_ops, 2u);
}

void nk_metrics_set_loops(struct nk_metrics *m, unsigned n)
{
    atomic_store(&m->n_loops, n > NK_METRICS_MAX_LOOPS ? NK_METRICS_MAX_LOOPS : n);
}

void nk_metrics_loop_count(struct nk_metrics *m, unsigned loop)
{
    if (loop < NK_METRICS_MAX_LOOPS)
        atomic_fetch_add_explicit(&m->loop_requests[loop], 1, memory_order_relaxed);
}

struct nk_metrics *nk_metrics_new(void)
{
    struct nk_metrics *m = calloc(1, sizeof(*m));

    if (m != NULL)
        metrics_init(m);
    return m;
}

void nk_metrics_free(struct nk_metrics *m)
{
    unsigned i;

    if (m == NULL)
        return;
    for (i = 2; i < atomic_load(&m->n_ops); i++)
        free(atomic_load(&m->ops[i].name));
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static struct nk_metrics global_metrics;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    metrics_init(&global_metrics);
}

struct nk_metrics *nk_metrics_global(void)
{
    pthread_once(&global_once, global_init);
    return &global_metrics;
}

/* Probe the index for key; returns the op id, or -1 with *slot the first empty index slot. */
static long lookup(struct nk_metrics *m, const struct op_key *key, uint32_t h, size_t *slot)
{
    size_t i, k;
    unsigned v;

    for (k = 0; k < N_INDEX; k++) {
        i = (h + k) & (N_INDEX - 1u);
        v = atomic_load_explicit(&m->index[i], memory_order_acquire);
        if (v == 0) {
            *slot = i;
            return -1;
        }
        if (key_equal(atomic_load_explicit(&m->ops[v - 1].name, memory_order_relaxed), key))
            return (long)(v - 1);
    }
    *slot = N_INDEX;
    return -1;
}

static unsigned op_id(struct nk_metrics *m, const struct op_key *key)
{
    uint32_t h;
    size_t slot = 0;
    long id;
    unsigned n;
    char *copy;

    h = hash_key(key);
    id = lookup(m, key, h, &slot);
    if (id >= 0)
        return (unsigned)id;
    pthread_mutex_lock(&m->mu);
    id = lookup(m, key, h, &slot); /* someone may have added it meanwhile */
    if (id < 0) {
        n = atomic_load(&m->n_ops);
        copy = n < NK_METRICS_MAX_OPS && slot < N_INDEX ? key_text(key) : NULL;
        if (copy == NULL) {
            id = NK_METRICS_OTHER; /* full (or out of memory): share the fallback label */
        } else {
            atomic_store_explicit(&m->ops[n].name, copy, memory_order_relaxed);
            atomic_store_explicit(&m->n_ops, n + 1, memory_order_release);
            atomic_store_explicit(&m->index[slot], n + 1, memory_order_release);
            id = (long)n;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return (unsigned)id;
}

unsigned nk_metrics_op(struct nk_metrics *m, const char *name)
{
    struct op_key k = {name, NULL};

    return name != NULL ? op_id(m, &k) : NK_METRICS_UNMATCHED;
}

void nk_metrics_count(struct nk_metrics *m, enum nk_metrics_adapter adapter, unsigned op,
                      unsigned status)
{
    unsigned cls = status >= 200 && status <= 499 ? status / 100 - 2 : 3;

    if (op >= NK_METRICS_MAX_OPS)
        op = NK_METRICS_OTHER;
    atomic_fetch_add_explicit(&m->ops[op].requests[adapter == NK_METRICS_MCP][cls], 1,
                              memory_order_relaxed);
}

/* The transport failure kind, from the response code and upstream.c's fixed messages. */
static enum err_kind error_kind(const struct nk_upstream_response *r)
{
    static const char *const connect_msgs[] = {"could not resolve host", "connection refused",
                                               "host unreachable", "could not connect"};
    size_t i;

    if (r->rc == NK_ERR_TIMEOUT)
        return ERR_TIMEOUT;
    if (r->rc == NK_ERR_TOO_LARGE)
        return ERR_TOO_LARGE;
    if (strncmp(r->error, "TLS", 3) == 0 || strcmp(r->error, "cannot read the CA file") == 0)
        return ERR_TLS;
    for (i = 0; i < sizeof(connect_msgs) / sizeof(connect_msgs[0]); i++)
        if (strcmp(r->error, connect_msgs[i]) == 0)
            return ERR_CONNECT;
    return ERR_OTHER;
}

void nk_metrics_observe(struct nk_metrics *m, unsigned op, const struct nk_upstream_response *resp)
{
    double s = resp->seconds > 0 ? resp->seconds : 0;
    size_t b = 0;

    if (op >= NK_METRICS_MAX_OPS)
        op = NK_METRICS_OTHER;
    while (b + 1 < N_BUCKETS && s > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&m->ops[op].buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->ops[op].sum_us, (unsigned long long)(s * 1e6 + 0.5),
                              memory_order_relaxed);
    if (resp->rc != NK_OK)
        atomic_fetch_add_explicit(&m->errors[error_kind(resp)], 1, memory_order_relaxed);
}

void nk_metrics_reloaded(struct nk_metrics *m, bool ok)
{
    atomic_fetch_add_explicit(&m->reloads[ok ? 0 : 1], 1, memory_order_relaxed);
}

unsigned nk_metrics_op_of(struct nk_metrics *m, const char *adapter_ns, const char *name)
{
    struct op_key k = {name, adapter_ns};

    if (adapter_ns == NULL || name == NULL)
        return nk_metrics_op(m, name);
    return op_id(m, &k);
}

void nk_metrics_upstream(const char *adapter_ns, const char *op_name,
                         const struct nk_upstream_response *resp)
{
    struct nk_metrics *m = nk_metrics_global();

    nk_metrics_observe(m, nk_metrics_op_of(m, adapter_ns, op_name), resp);
}

void nk_metrics_reload(bool ok)
{
    nk_metrics_reloaded(nk_metrics_global(), ok);
}

/* ---- exposition --------------------------------------------------------------------------- */

size_t nk_metrics_escape_label(const char *value, char *out, size_t cap)
{
    size_t n = 0;
    const char *s;
    char esc;

    for (s = value; *s != '\0'; s++) {
        esc = *s == '\\' ? '\\' : *s == '"' ? '"' : *s == '\n' ? 'n' : 0;
        if (esc != 0) {
            if (n + 2 < cap) {
                out[n] = '\\';
                out[n + 1] = esc;
            }
            n += 2;
        } else {
            if (n + 1 < cap)
                out[n] = *s;
            n++;
        }
    }
    if (cap > 0)
        out[n < cap ? n : cap - 1] = '\0';
    return n;
}

/* Write value to f escaped as a label value. */
static void put_label(FILE *f, const char *value)
{
    for (; *value != '\0'; value++) {
        if (*value == '\\')
            fputs("\\\\", f);
        else if (*value == '"')
            fputs("\\\"", f);
        else if (*value == '\n')
            fputs("\\n", f);
        else
            fputc(*value, f);
    }
}

/* An operation's label value; a name registered by nk_metrics_op_of ("OP\x1fNS") becomes
 * OP","adapter_namespace="NS (the caller writes the quotes around it). */
static void put_op(FILE *f, const char *name)
{
    const char *sep = strchr(name, '\x1f');
    char *op;

    if (sep == NULL) {
        put_label(f, name);
        return;
    }
    op = strndup(name, (size_t)(sep - name));
    put_label(f, op != NULL ? op : "other");
    free(op);
    fputs("\",adapter_namespace=\"", f);
    put_label(f, sep + 1);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    /* HELP text here is fixed ASCII without '\\' or newlines: nothing to escape. */
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A float the way the format wants it: Go-style, +Inf/-Inf/NaN spelled out. */
static void put_double(FILE *f, double v)
{
    if (v != v)
        fputs("NaN", f);
    else if (v > 1e308)
        fputs("+Inf", f);
    else if (v < -1e308)
        fputs("-Inf", f);
    else {
        char b[40];
        /* The shortest of %.15g / %.17g that reads back as v (0.005, not 0.0050000000000000001). */
        snprintf(b, sizeof(b), "%.15g", v);
        if (strtod(b, NULL) != v)
            snprintf(b, sizeof(b), "%.17g", v);
        fputs(b, f);
    }
}

char *nk_metrics_render(struct nk_metrics *m, const struct nk_metrics_gauges *g, size_t *len)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    unsigned n_ops = atomic_load_explicit(&m->n_ops, memory_order_acquire), i, a, c, n;
    unsigned long long v[2][4], bk[N_BUCKETS], cum;
    size_t b;

    if (f == NULL)
        return NULL;
    family(f, "naftikod_requests_total", "counter",
           "Requests answered by the REST and MCP adapters, by operation (or tool) and status "
           "class.");
    for (i = 0; i < n_ops; i++) {
        const char *name = atomic_load_explicit(&m->ops[i].name, memory_order_relaxed);
        unsigned long long any = 0;
        for (a = 0; a < 2; a++)
            for (c = 0; c < 4; c++)
                any += v[a][c] =
                    atomic_load_explicit(&m->ops[i].requests[a][c], memory_order_relaxed);
        if (any == 0)
            continue;
        for (a = 0; a < 2; a++) {
            if (v[a][0] + v[a][1] + v[a][2] + v[a][3] == 0)
                continue;
            for (c = 0; c < 4; c++) {
                fprintf(f, "naftikod_requests_total{adapter=\"%s\",operation=\"", adapter_names[a]);
                put_op(f, name);
                fprintf(f, "\",code=\"%s\"} %llu\n", class_names[c], v[a][c]);
            }
        }
    }

    family(f, "naftikod_upstream_request_duration_seconds", "histogram",
           "Time of upstream (Central) calls made for an operation, from submission to the "
           "last byte or the transport error.");
    for (i = 0; i < n_ops; i++) {
        const char *name = atomic_load_explicit(&m->ops[i].name, memory_order_relaxed);
        unsigned long long sum_us = atomic_load_explicit(&m->ops[i].sum_us, memory_order_relaxed);
        cum = 0;
        for (b = 0; b < N_BUCKETS; b++)
            cum += bk[b] = atomic_load_explicit(&m->ops[i].buckets[b], memory_order_relaxed);
        if (cum == 0)
            continue;
        cum = 0;
        for (b = 0; b < N_BUCKETS; b++) {
            cum += bk[b];
            fputs("naftikod_upstream_request_duration_seconds_bucket{operation=\"", f);
            put_op(f, name);
            fputs("\",le=\"", f);
            if (b + 1 < N_BUCKETS)
                put_double(f, bucket_le[b]);
            else
                fputs("+Inf", f);
            fprintf(f, "\"} %llu\n", cum);
        }
        fputs("naftikod_upstream_request_duration_seconds_sum{operation=\"", f);
        put_op(f, name);
        fputs("\"} ", f);
        put_double(f, (double)sum_us / 1e6);
        fputs("\nnaftikod_upstream_request_duration_seconds_count{operation=\"", f);
        put_op(f, name);
        fprintf(f, "\"} %llu\n", cum);
    }

    family(f, "naftikod_upstream_errors_total", "counter",
           "Upstream calls that got no HTTP answer, by kind of transport failure.");
    for (c = 0; c < N_ERR; c++)
        fprintf(f, "naftikod_upstream_errors_total{kind=\"%s\"} %llu\n", err_names[c],
                atomic_load_explicit(&m->errors[c], memory_order_relaxed));

    family(f, "naftikod_upstream_waiting_calls", "gauge",
           "Upstream calls waiting for their origin: at most 256 run at once per origin and "
           "event loop, the others wait in order of arrival.");
    fputs("naftikod_upstream_waiting_calls ", f);
    put_double(f, g != NULL ? g->upstream_waiting : 0);
    fputc('\n', f);

    family(f, "naftikod_inflight_requests", "gauge",
           "Requests received by an adapter and not answered yet.");
    for (a = 0; a < 2; a++) {
        fprintf(f, "naftikod_inflight_requests{adapter=\"%s\"} ", adapter_names[a]);
        put_double(f, g != NULL ? g->inflight[a] : 0);
        fputc('\n', f);
    }

    n = atomic_load_explicit(&m->n_loops, memory_order_relaxed);
    if (n > 0) {
        family(f, "naftikod_loop_requests_total", "counter",
               "Adapter requests answered, by the event loop that read them.");
        for (c = 0; c < n; c++)
            fprintf(f, "naftikod_loop_requests_total{loop=\"%u\"} %llu\n", (unsigned)c,
                    atomic_load_explicit(&m->loop_requests[c], memory_order_relaxed));
    }

    family(f, "naftikod_reloads_total", "counter", "Capability reloads, by result.");
    fprintf(f, "naftikod_reloads_total{result=\"ok\"} %llu\n",
            atomic_load_explicit(&m->reloads[0], memory_order_relaxed));
    fprintf(f, "naftikod_reloads_total{result=\"error\"} %llu\n",
            atomic_load_explicit(&m->reloads[1], memory_order_relaxed));

    family(f, "naftikod_build_info", "gauge", "Always 1; the version is in the label.");
    fputs("naftikod_build_info{version=\"", f);
    put_label(f, g != NULL && g->version != NULL ? g->version : NK_VERSION);
    fputs("\"} 1\n", f);

    if (g != NULL && g->capability != NULL) {
        family(f, "naftikod_capability_info", "gauge",
               "Always 1; the fingerprint of the capability table in force is in the label.");
        fputs("naftikod_capability_info{fingerprint=\"", f);
        put_label(f, g->capability);
        fputs("\"} 1\n", f);
    }
    if (g != NULL && g->n_key_fps > 0) {
        family(f, "naftikod_mcp_session_key_info", "gauge",
               "Always 1; one line per MCP session key in force, by fingerprint and role (the "
               "first key signs, every key is accepted).");
        for (b = 0; b < g->n_key_fps; b++) {
            fputs("naftikod_mcp_session_key_info{fingerprint=\"", f);
            put_label(f, g->key_fps[b]);
            fprintf(f, "\",role=\"%s\"} 1\n", b == 0 ? "sign" : "accept");
        }
    }
    if (g != NULL && g->have_refused) {
        family(f, "naftikod_mcp_sessions_refused_total", "counter",
               "Handshake-era MCP requests refused for their session id: missing (400), unknown "
               "(404: forged, signed with a key not in force, expired) or ended (404).");
        fprintf(f, "naftikod_mcp_sessions_refused_total{reason=\"missing\"} %llu\n",
                g->sessions_refused[0]);
        fprintf(f, "naftikod_mcp_sessions_refused_total{reason=\"unknown\"} %llu\n",
                g->sessions_refused[1]);
        fprintf(f, "naftikod_mcp_sessions_refused_total{reason=\"ended\"} %llu\n",
                g->sessions_refused[2]);
    }
    if (g != NULL && g->upstream_reachable >= 0) {
        family(f, "naftikod_upstream_reachable", "gauge",
               "1 when the last probe of every consumed API's baseUri got an HTTP answer, else "
               "0 (not part of readiness).");
        fprintf(f, "naftikod_upstream_reachable %d\n", g->upstream_reachable);
    }

    family(f, "process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch in seconds.");
    fputs("process_start_time_seconds ", f);
    put_double(f, g != NULL ? g->start_time_s : 0);
    fputc('\n', f);
    family(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    fputs("process_resident_memory_bytes ", f);
    put_double(f, g != NULL ? g->resident_bytes : 0);
    fputc('\n', f);

    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    if (len != NULL)
        *len = size;
    return buf;
}

/* ---- process figures ---------------------------------------------------------------------- */

double nk_metrics_process_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    long page = sysconf(_SC_PAGESIZE);
    int n;

    if (f == NULL)
        return 0;
    n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 && page > 0 ? (double)resident * (double)page : 0;
}

double nk_metrics_process_start(void)
{
    char line[1024], *p;
    unsigned long long start_ticks = 0, btime = 0;
    long hz = sysconf(_SC_CLK_TCK);
    FILE *f = fopen("/proc/self/stat", "r");
    int field;

    if (f == NULL)
        return 0;
    p = fgets(line, sizeof(line), f);
    fclose(f);
    /* Fields after the command name (in parentheses, may hold spaces): state is field 3,
     * starttime field 22 (clock ticks since boot). */
    if (p == NULL || (p = strrchr(line, ')')) == NULL)
        return 0;
    for (field = 2; field < 22 && p != NULL; field++)
        p = strchr(p + 1, ' ');
    if (p == NULL || sscanf(p + 1, "%llu", &start_ticks) != 1)
        return 0;
    f = fopen("/proc/stat", "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "btime %llu", &btime) == 1)
            break;
    fclose(f);
    if (btime == 0 || hz <= 0)
        return 0;
    return (double)btime + (double)start_ticks / (double)hz;
}
