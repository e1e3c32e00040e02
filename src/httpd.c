/* SPDX-License-Identifier: Apache-2.0 */
/* httpd.c: the HTTP listener: libmicrohttpd behind nk_httpd_*, bounded bodies, suspend/resume. */
#include "naftikod/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "naftikod/log.h"
#include "naftikod/problem.h"
#include "naftikod/ratelimit.h"
#include "naftikod/loop.h"

/* Connections the kernel completes before the loop accepts them. A burst larger than the queue
 * loses SYNs, and each lost one costs its client a retransmission a second later; 128 (what this
 * was) made 1,000 simultaneous connects take over a second. The kernel caps the value at
 * net.core.somaxconn (4096 on current kernels). */
#define LISTEN_BACKLOG 4096
#define DEFAULT_MAX_BODY ((size_t)1 << 20)
/* A body of unknown length (chunked) grows by doubling up to this, then by this much at a time:
 * it never holds more than this beyond its size. */
#define BODY_STEP ((size_t)64 * 1024)

/* Where one request is in its life. */
enum req_state {
    RS_NEW,        /* request line seen (URI log callback), headers not yet handed to us */
    RS_ADMIT,      /* head complete, with the admit hook (which may answer it) */
    RS_DEFERRED,   /* the admit hook deferred its verdict; connection suspended, no body read */
    RS_READMIT,    /* admitted later (nk_http_req_admit); resumed, the head's call comes again */
    RS_BODY,       /* reading the body */
    RS_DISPATCHED, /* handed to the handler; connection suspended */
    RS_ANSWERED,   /* response built; waiting for MHD to call us back and queue it */
    RS_QUEUED      /* response queued */
};

struct kv {
    char *name;
    char *value; /* may be NULL (query "?flag") */
};

/* libmicrohttpd's own warnings: a burst of this many lines, then one per LOG_EVERY_S seconds
 * (the rest counted and reported with the next line), so a client that makes it complain on
 * every connection cannot flood the log. */
#define LOG_BURST 5.0
#define LOG_EVERY_S 10.0

/* One open connection, for the request deadline (slow clients). Loop owner only. */
struct conn_track {
    struct conn_track *prev, *next;
    struct nk_httpd *h;
    int fd;
    bool busy; /* a request is with the handler (its time is the upstream's, not the client's) */
    bool cut;
    struct nk_loop_timer deadline; /* armed while the client owes us a request */
};

struct nk_httpd {
    struct MHD_Daemon *daemon;
    /* libmicrohttpd polls nothing itself: its epoll fd is a source on the loop, whose thread
     * calls MHD_run. */
    struct nk_loop *loop;
    struct nk_loop_source src; /* src.fd: libmicrohttpd's epoll descriptor */
    atomic_bool closing; /* nk_httpd_stop began: new requests get 503, handlers are not called */
    atomic_bool lame;    /* nk_httpd_lame_duck(): every answer closes its connection */
    const struct nk_proxies *proxies; /* opts->trusted_proxies, or NULL */
    atomic_bool conn_closed;          /* a connection closed during the current MHD_run */
    /* request deadline: a loop timer per connection shuts down a connection still sending a
     * request after request_timeout seconds (a client trickling bytes never trips the idle
     * timeout). Loop owner only: */
    long request_timeout_ms;
    struct conn_track *conns;
    bool deadlines_off; /* nk_httpd_stop disarmed them all: arm no more */
    double rate_per_s;
    struct nk_rate *rate; /* per-client buckets, or NULL when unlimited */
    bool rate_borrowed;   /* opts->shared_rate: not ours to free */
    /* opts->shared_client_conns, or one of the listener's own (client_conns_owned) when
     * max_per_client meets trusted proxies, or NULL */
    struct nk_httpd_client_conns *client_conns;
    bool client_conns_owned;
    pthread_mutex_t log_mu; /* guards the log_* budget of mhd_log */
    double log_tokens;
    double log_last;
    unsigned long log_dropped;
    /* the listening socket, for shedding a connection when descriptors run out (mhd_log) */
    atomic_int accept_fd;
    nk_httpd_handler_fn handler;
    void *ud;
    nk_httpd_admit_fn admit; /* NULL: none */
    nk_httpd_access_fn access_log;
    void *access_ud;
    size_t max_body;
    unsigned port;
    int listen_fd;
    bool quiesced;
    pthread_mutex_t mu; /* guards pending_head, n_pending, n_abandoned */
    pthread_cond_t abandoned_done;
    struct nk_http_req *pending_head;
    size_t n_pending;
    /* dispatched and not yet completed by libmicrohttpd (answer written or connection gone):
     * what a drain waits for, since an answered request may still be on its way out */
    atomic_size_t n_unfinished;
    size_t n_abandoned; /* answered 503 by nk_httpd_stop, not yet completed by MHD */
    size_t n_watched;   /* under mu: pending requests with an on_close */
    double last_sweep;  /* loop thread: when watched connections were last looked at */
    /* loop owner: streamed answers still on their connection, and how many of those wait
     * for their producer (connection suspended) */
    struct nk_http_stream *streams;
    size_t n_suspended;
};

struct nk_http_req {
    struct nk_httpd *h;
    struct MHD_Connection *conn;
    atomic_int refs; /* one for MHD (until completion), one for the handler (until respond) */
    pthread_mutex_t mu;
    enum req_state state;
    bool abandoned;  /* the listener stopped before the handler answered */
    bool too_large;  /* the body went over max_body; answer 413 */
    bool in_pending; /* linked in h->pending_* */
    bool unfinished; /* counted in h->n_unfinished (set by dispatch, cleared on completion) */
    bool deferred;   /* nk_http_req_defer() was called in the admit hook */
    struct nk_http_req *prev, *next;
    struct timespec start;
    char *uri; /* raw request target */
    char *path;
    char *method;
    struct kv *headers;
    size_t n_headers;
    struct kv *query;
    size_t n_query;
    char *body;
    size_t body_len;
    size_t body_cap;
    size_t body_expect; /* Content-Length when given (0: none, or chunked) */
    char id[65];
    struct nk_principal principal; /* principal.name is the caller */
    char client[INET6_ADDRSTRLEN];
    char peer[INET6_ADDRSTRLEN]; /* the connection's peer, when client was forwarded; else "" */
    bool via_proxy;              /* the peer is a trusted proxy (forwarded_client) */
    unsigned char held_key[16];  /* held_len > 0: counted in h->client_conns under this key */
    size_t held_len;
    char rpc_method[64];
    char rpc_tool[128];
    struct MHD_Response *resp;
    unsigned status;
    unsigned tag;                 /* nk_http_req_set_tag(); passed to the access hook */
    nk_http_detached_fn detached; /* non-NULL: nk_http_req_detached() (no connection) */
    void *detached_ud;
    struct nk_loop_call resume_call; /* a resume posted from another thread */
    void (*on_close)(void *ud);      /* under h->mu: nk_http_req_on_close(), until answered */
    void *on_close_ud;
    struct nk_http_stream *stream; /* loop thread: the streamed answer, while it lives */
};

/* A streamed answer (nk_http_respond_stream). Loop owner only. Held by the producer (until
 * nk_http_stream_end) and by libmicrohttpd's response (until its free callback). */
struct nk_http_stream {
    struct nk_http_req *r; /* a reference of its own, dropped when the stream is freed */
    int refs;
    char *buf; /* bytes [off, len) wait for the client */
    size_t off, len, cap;
    bool full;      /* a write was refused: drained() once the client took enough */
    bool ended;     /* nk_http_stream_end() came */
    bool ok;        /* ... with a complete body */
    bool lost;      /* the connection is done with the response: nothing more goes out */
    bool cut;       /* end the body with an error at once (client gone, OOM, listener stop) */
    bool told_gone; /* ops.gone has run */
    bool suspended; /* the reader found nothing and suspended the connection */
    bool linked;    /* in h->streams (from the answer until the connection lets go) */
    struct nk_http_stream *prev, *next;
    struct nk_http_stream_ops ops;
    void *ud;
    unsigned status;    /* detached requests: the answer, given at the end */
    char *content_type; /* detached requests, or NULL */
};

static double elapsed_since(const struct timespec *t0)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

static void kv_free(struct kv *v, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
}

static void req_unref(struct nk_http_req *r)
{
    if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1)
        return;
    if (r->resp != NULL)
        MHD_destroy_response(r->resp);
    pthread_mutex_destroy(&r->mu);
    free(r->uri);
    free(r->path);
    free(r->method);
    kv_free(r->headers, r->n_headers);
    kv_free(r->query, r->n_query);
    free(r->body);
    free(r);
}

/* Decode n bytes of a query component: %XX and '+' (form encoding). Invalid escapes stay as
 * written. Returns a new string or NULL on OOM. */
static char *query_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t i, o = 0;

    if (out == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && nk_hex_digit(s[i + 1]) >= 0 &&
            nk_hex_digit(s[i + 2]) >= 0) {
            out[o++] = (char)(nk_hex_digit(s[i + 1]) * 16 + nk_hex_digit(s[i + 2]));
            i += 2;
        } else if (s[i] == '+') {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

/* Split the raw target into path and query arguments. NK_ERR_TOO_LARGE beyond
 * NK_HTTPD_MAX_QUERY_ARGS arguments. */
static enum nk_rc parse_target(struct nk_http_req *r)
{
    const char *q = strchr(r->uri, '?');
    const char *p, *end, *amp, *eq;
    size_t plen = q != NULL ? (size_t)(q - r->uri) : strlen(r->uri);
    size_t cap = 0;
    struct kv *tmp;

    /* A fragment never belongs to the request; drop one if a client sent it. */
    if (q == NULL) {
        const char *h = strchr(r->uri, '#');
        if (h != NULL)
            plen = (size_t)(h - r->uri);
    }
    r->path = strndup(r->uri, plen);
    if (r->path == NULL)
        return NK_ERR_NOMEM;
    if (q == NULL)
        return NK_OK;
    p = q + 1;
    end = p + strcspn(p, "#");
    while (p < end) {
        amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        if (amp > p) {
            if (r->n_query == NK_HTTPD_MAX_QUERY_ARGS)
                return NK_ERR_TOO_LARGE;
            if (r->n_query == cap) {
                cap = cap ? cap * 2 : 8;
                tmp = realloc(r->query, cap * sizeof(*tmp));
                if (tmp == NULL)
                    return NK_ERR_NOMEM;
                r->query = tmp;
            }
            eq = memchr(p, '=', (size_t)(amp - p));
            r->query[r->n_query].name = query_decode(p, (size_t)((eq ? eq : amp) - p));
            r->query[r->n_query].value = NULL;
            r->n_query++;
            if (r->query[r->n_query - 1].name == NULL)
                return NK_ERR_NOMEM;
            if (eq != NULL) {
                r->query[r->n_query - 1].value = query_decode(eq + 1, (size_t)(amp - eq - 1));
                if (r->query[r->n_query - 1].value == NULL)
                    return NK_ERR_NOMEM;
            }
        }
        p = amp + 1;
    }
    return NK_OK;
}

struct hdr_copy {
    struct nk_http_req *r;
    size_t cap;
    bool oom;
};

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct hdr_copy *c = cls;
    struct kv *tmp;

    (void)kind;
    if (c->r->n_headers == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        tmp = realloc(c->r->headers, c->cap * sizeof(*tmp));
        if (tmp == NULL) {
            c->oom = true;
            return MHD_NO;
        }
        c->r->headers = tmp;
    }
    c->r->headers[c->r->n_headers].name = strdup(key);
    c->r->headers[c->r->n_headers].value = strdup(value != NULL ? value : "");
    c->r->n_headers++;
    if (c->r->headers[c->r->n_headers - 1].name == NULL ||
        c->r->headers[c->r->n_headers - 1].value == NULL) {
        c->oom = true;
        return MHD_NO;
    }
    return MHD_YES;
}

static bool id_is_safe(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= 64 || !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return n > 0;
}

/* Request ids need to be unique, not secret: a per-thread splitmix64 sequence seeded once from
 * getrandom() saves a system call per request. */
static uint64_t next_id(void)
{
    static _Thread_local uint64_t state;
    static _Thread_local bool seeded;
    static atomic_uint_fast64_t counter;
    uint64_t z;

    if (!seeded) {
        if (getrandom(&state, sizeof(state), GRND_NONBLOCK) != (ssize_t)sizeof(state))
            state = ((uint64_t)getpid() << 40) ^ (uint64_t)time(NULL);
        /* Distinct threads never share a sequence, even seeded at the same instant. */
        state ^= atomic_fetch_add(&counter, 1) << 56;
        seeded = true;
    }
    z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void set_request_id(struct nk_http_req *r, const char *incoming)
{
    if (id_is_safe(incoming)) {
        snprintf(r->id, sizeof(r->id), "%s", incoming);
        return;
    }
    snprintf(r->id, sizeof(r->id), "%016llx", (unsigned long long)next_id());
}

static void log_access(struct nk_httpd *h, struct nk_http_req *r)
{
    struct nk_http_access a;

    if (h->access_log == NULL)
        return;
    a.method = r->method != NULL ? r->method : "-";
    a.path = r->path != NULL ? r->path : "-";
    a.status = r->status;
    a.seconds = elapsed_since(&r->start);
    a.request_id = r->id;
    a.caller = r->principal.name;
    a.client = r->client;
    a.peer = r->peer[0] != '\0' ? r->peer : NULL;
    a.rpc_method = r->rpc_method;
    a.rpc_tool = r->rpc_tool;
    a.tag = r->tag;
    h->access_log(h->access_ud, &a);
}

/* The headers every answer carries: content type, the caller's, X-Request-Id and nosniff.
 * false on OOM. */
static bool add_headers(struct MHD_Response *resp, const char *request_id, const char *content_type,
                        const char *const *headers)
{
    bool have_id = false, have_nosniff = false;
    size_t i;

    if (content_type != NULL &&
        MHD_add_response_header(resp, "Content-Type", content_type) != MHD_YES)
        return false;
    for (i = 0; headers != NULL && headers[i] != NULL && headers[i + 1] != NULL; i += 2) {
        if (strcasecmp(headers[i], "X-Request-Id") == 0)
            have_id = true;
        if (strcasecmp(headers[i], "X-Content-Type-Options") == 0)
            have_nosniff = true;
        if (MHD_add_response_header(resp, headers[i], headers[i + 1]) != MHD_YES)
            return false;
    }
    if (!have_id && request_id != NULL && request_id[0] != '\0' &&
        MHD_add_response_header(resp, "X-Request-Id", request_id) != MHD_YES)
        return false;
    /* No browser may take an answer (an upstream's error page, say) for another type than the
     * one it is labelled with. */
    return have_nosniff ||
           MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") == MHD_YES;
}

/* Build a response (steals body even on failure). NULL on OOM. */
static struct MHD_Response *make_response(const char *request_id, const char *content_type,
                                          char *body, size_t len, const char *const *headers)
{
    struct MHD_Response *resp;

    if (body == NULL)
        len = 0;
    resp = MHD_create_response_from_buffer(len, body != NULL ? body : (char *)"",
                                           body != NULL ? MHD_RESPMEM_MUST_FREE
                                                        : MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(body);
        return NULL;
    }
    if (!add_headers(resp, request_id, content_type, headers)) {
        MHD_destroy_response(resp);
        return NULL;
    }
    return resp;
}

/* A problem+json answer (the one builder: every text escaped). */
static struct MHD_Response *problem_response(const char *request_id, unsigned status,
                                             const char *title, const char *detail)
{
    char *body = nk_problem_new(status, title, detail, NULL);

    if (body == NULL)
        return NULL;
    return make_response(request_id, "application/problem+json", body, strlen(body), NULL);
}

/* In the lame-duck period every answer says Connection: close, so a client (or a balancer's
 * pooled connection) opens its next connection elsewhere, through an endpoint list that no
 * longer names this replica. */
static void lame_close(struct nk_httpd *h, struct MHD_Response *resp)
{
    if (h != NULL && resp != NULL && atomic_load(&h->lame) &&
        MHD_get_response_header(resp, "Connection") == NULL)
        (void)MHD_add_response_header(resp, "Connection", "close");
}

static enum MHD_Result queue_problem_h(struct nk_http_req *r, unsigned status, const char *title,
                                       const char *detail, const char *hname, const char *hvalue)
{
    struct MHD_Response *resp = problem_response(r->id, status, title, detail);
    enum MHD_Result ret;

    if (resp == NULL)
        return MHD_NO;
    if (hname != NULL && MHD_add_response_header(resp, hname, hvalue) != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    r->status = status;
    r->state = RS_QUEUED;
    lame_close(r->h, resp);
    ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    log_access(r->h, r);
    return ret;
}

static enum MHD_Result queue_problem(struct nk_http_req *r, unsigned status, const char *title,
                                     const char *detail)
{
    return queue_problem_h(r, status, title, detail, NULL, NULL);
}

static double mono_now(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

bool nk_http_req_charge(struct nk_http_req *r, unsigned n, unsigned *retry_s)
{
    if (n == 0 || r->h == NULL || r->h->rate == NULL)
        return true;
    return nk_rate_take(r->h->rate, r->client, n, mono_now(), retry_s);
}

static struct conn_track *track_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

/* The deadline passed: shut the connection down; libmicrohttpd then sees the end of the
 * stream and closes it in its next run. */
static void deadline_due(void *ud)
{
    struct conn_track *t = ud;

    if (t->busy || t->cut)
        return;
    (void)shutdown(t->fd, SHUT_RDWR);
    t->cut = true;
    nk_loop_kick(&t->h->src);
}

/* Start the connection's request window now (accepted, or its last request done). */
static void deadline_arm(struct nk_httpd *h, struct conn_track *t)
{
    if (!h->deadlines_off &&
        nk_loop_timer_arm(h->loop, &t->deadline, h->request_timeout_ms) != NK_OK)
        nk_log(NK_LOG_WARNING, "httpd: out of memory: a connection goes without its deadline");
}

static void track_busy(struct nk_httpd *h, struct MHD_Connection *conn, bool busy)
{
    struct conn_track *t = track_of(conn);

    if (t == NULL)
        return;
    t->busy = busy;
    if (busy)
        nk_loop_timer_cancel(&t->deadline);
    else
        deadline_arm(h, t);
}

/* Inside MHD_run: on the loop thread, or on the thread that stops the listener. */
/* Per client address, shared by listeners on several loops: a chained hash of addresses
 * (4 or 16 bytes) under one mutex, with the client's open connections, plus, for a client
 * that comes through a trusted proxy, its requests in flight (the proxy's own connections
 * carry many clients and are not counted). Touched once per accept and close, and twice per
 * forwarded request. */
#define CLIENT_CONNS_BUCKETS 1024
struct client_conn {
    struct client_conn *next;
    unsigned char addr[16];
    size_t len;
    unsigned n;
};
struct nk_httpd_client_conns {
    pthread_mutex_t mu;
    unsigned max;
    struct client_conn *bucket[CLIENT_CONNS_BUCKETS];
};

enum nk_rc nk_httpd_client_conns_new(unsigned max, struct nk_httpd_client_conns **out)
{
    struct nk_httpd_client_conns *c = calloc(1, sizeof(*c));

    *out = NULL;
    if (c == NULL)
        return NK_ERR_NOMEM;
    pthread_mutex_init(&c->mu, NULL);
    c->max = max;
    *out = c;
    return NK_OK;
}

void nk_httpd_client_conns_free(struct nk_httpd_client_conns *c)
{
    struct client_conn *e, *next;
    size_t i;

    if (c == NULL)
        return;
    for (i = 0; i < CLIENT_CONNS_BUCKETS; i++)
        for (e = c->bucket[i]; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* The key of an IPv6 address: an IPv4-mapped one as its IPv4 bytes, as a forwarded client is
 * written. */
static void in6_key(const struct in6_addr *a, unsigned char key[16], size_t *len)
{
    if (IN6_IS_ADDR_V4MAPPED(a)) {
        memcpy(key, a->s6_addr + 12, 4);
        *len = 4;
    } else {
        memcpy(key, a->s6_addr, 16);
        *len = 16;
    }
}

/* The address bytes of sa (IPv4 or IPv6, see in6_key), false for another family. */
static bool addr_key(const struct sockaddr *sa, unsigned char key[16], size_t *len)
{
    if (sa != NULL && sa->sa_family == AF_INET) {
        memcpy(key, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        *len = 4;
        return true;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        in6_key(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, key, len);
        return true;
    }
    return false;
}

/* The same bytes from numeric address text (r->client). */
static bool text_key(const char *s, unsigned char key[16], size_t *len)
{
    struct in6_addr a6;

    if (inet_pton(AF_INET, s, key) == 1) {
        *len = 4;
        return true;
    }
    if (inet_pton(AF_INET6, s, &a6) != 1)
        return false;
    in6_key(&a6, key, len);
    return true;
}

static struct client_conn **client_slot(struct nk_httpd_client_conns *c, const unsigned char *key,
                                        size_t len)
{
    uint32_t hash = 2166136261u;
    struct client_conn **pp;
    size_t i;

    for (i = 0; i < len; i++)
        hash = (hash ^ key[i]) * 16777619u;
    for (pp = &c->bucket[hash % CLIENT_CONNS_BUCKETS]; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->len == len && memcmp((*pp)->addr, key, len) == 0)
            break;
    return pp;
}

/* Count one more for key. With at_most, not when the key already has c->max: false then.
 * Out of memory the one more goes uncounted (true). */
static bool client_take(struct nk_httpd_client_conns *c, const unsigned char *key, size_t len,
                        bool at_most)
{
    struct client_conn **pp;
    bool ok = true;

    pthread_mutex_lock(&c->mu);
    pp = client_slot(c, key, len);
    if (at_most && *pp != NULL && (*pp)->n >= c->max)
        ok = false;
    else {
        if (*pp == NULL && (*pp = calloc(1, sizeof(**pp))) != NULL) {
            memcpy((*pp)->addr, key, len);
            (*pp)->len = len;
        }
        if (*pp != NULL)
            (*pp)->n++;
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

static void client_give(struct nk_httpd_client_conns *c, const unsigned char *key, size_t len)
{
    struct client_conn **pp, *e;

    pthread_mutex_lock(&c->mu);
    pp = client_slot(c, key, len);
    if (*pp != NULL && (*pp)->n > 0 && --(*pp)->n == 0) {
        e = *pp;
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&c->mu);
}

static void client_text(const struct sockaddr *sa, char *out, size_t cap);

/* A connection from a trusted proxy: its clients are counted per request instead. */
static bool peer_is_proxy(const struct nk_httpd *h, const struct sockaddr *sa)
{
    char text[INET6_ADDRSTRLEN];

    if (h->proxies == NULL || sa == NULL)
        return false;
    text[0] = '\0';
    client_text(sa, text, sizeof(text));
    return nk_proxies_trusted(h->proxies, text);
}

/* libmicrohttpd's accept policy: refuse a client already at the shared limit. The count itself
 * moves when the connection starts and closes (below), so a connection libmicrohttpd drops
 * after this check is never counted. Two loops accepting the same client at the same instant
 * may both pass: at most loops - 1 connections over, until one closes. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *sa, socklen_t salen)
{
    struct nk_httpd *h = cls;
    struct nk_httpd_client_conns *c = h->client_conns;
    unsigned char key[16];
    size_t len;
    struct client_conn *e;
    bool ok = true;

    (void)salen;
    if (c == NULL || c->max == 0 || !addr_key(sa, key, &len) || peer_is_proxy(h, sa))
        return MHD_YES;
    pthread_mutex_lock(&c->mu);
    e = *client_slot(c, key, len);
    ok = e == NULL || e->n < c->max;
    pthread_mutex_unlock(&c->mu);
    return ok ? MHD_YES : MHD_NO;
}

/* Count conn's client up (delta 1, when it starts) or down (-1, when it closes). */
static void client_conns_move(struct nk_httpd *h, struct MHD_Connection *conn, int delta)
{
    struct nk_httpd_client_conns *c = h->client_conns;
    const union MHD_ConnectionInfo *ci;
    unsigned char key[16];
    size_t len;

    if (c == NULL || c->max == 0)
        return;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || !addr_key(ci->client_addr, key, &len) || peer_is_proxy(h, ci->client_addr))
        return;
    if (delta > 0)
        (void)client_take(c, key, len, false);
    else
        client_give(c, key, len);
}

/* A request through a trusted proxy: one more in flight for its client (r->client, forwarded
 * or the proxy itself), released on completion. False when the client already has max. */
static bool hold_forwarded(struct nk_httpd *h, struct nk_http_req *r)
{
    struct nk_httpd_client_conns *c = h->client_conns;
    unsigned char key[16];
    size_t len;

    if (!r->via_proxy || c == NULL || c->max == 0 || !text_key(r->client, key, &len))
        return true;
    if (!client_take(c, key, len, true))
        return false;
    memcpy(r->held_key, key, len);
    r->held_len = len;
    return true;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct nk_httpd *h = cls;
    struct conn_track *t = *socket_context;
    const union MHD_ConnectionInfo *ci;

    client_conns_move(h, conn, toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_store(&h->conn_closed, true);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED && h->request_timeout_ms <= 0)
        return; /* no deadline: nothing to track */
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        t = ci != NULL ? calloc(1, sizeof(*t)) : NULL;
        if (t == NULL)
            return; /* untracked: only the idle timeout applies to it */
        t->h = h;
        t->fd = ci->connect_fd;
        t->deadline.fn = deadline_due;
        t->deadline.ud = t;
        t->next = h->conns;
        if (h->conns != NULL)
            h->conns->prev = t;
        h->conns = t;
        *socket_context = t;
        deadline_arm(h, t);
        return;
    }
    if (t == NULL)
        return;
    /* Closed: disarmed before libmicrohttpd closes the descriptor, so the deadline never
     * touches a number the kernel may already have given to someone else. */
    nk_loop_timer_cancel(&t->deadline);
    if (t->prev != NULL)
        t->prev->next = t->next;
    else
        h->conns = t->next;
    if (t->next != NULL)
        t->next->prev = t->prev;
    free(t);
    *socket_context = NULL;
}

/* The numeric peer address: IPv4 by hand, inet_ntop() for IPv6 (getnameinfo() costs several
 * times as much per request), getnameinfo() for an IPv6 address with a scope ("fe80::1%eth0"). */
static void client_text(const struct sockaddr *sa, char *out, size_t cap)
{
    const void *addr = NULL;

    if (sa->sa_family == AF_INET && cap >= INET_ADDRSTRLEN) {
        /* by hand: glibc's inet_ntop() formats IPv4 with sprintf() */
        const unsigned char *b =
            (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        size_t n = 0;
        int i;

        for (i = 0; i < 4; i++) {
            if (b[i] >= 100)
                out[n++] = (char)('0' + b[i] / 100);
            if (b[i] >= 10)
                out[n++] = (char)('0' + b[i] / 10 % 10);
            out[n++] = (char)('0' + b[i] % 10);
            out[n++] = i < 3 ? '.' : '\0';
        }
        return;
    }
    if (sa->sa_family == AF_INET)
        addr = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    else if (sa->sa_family == AF_INET6 &&
             ((const struct sockaddr_in6 *)(const void *)sa)->sin6_scope_id == 0)
        addr = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
    if (addr != NULL ? inet_ntop(sa->sa_family, addr, out, (socklen_t)cap) == NULL
                     : getnameinfo(sa,
                                   sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                             : sizeof(struct sockaddr_in),
                                   out, (socklen_t)cap, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, cap, "-");
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct nk_httpd *h = cls;
    struct nk_http_req *r = calloc(1, sizeof(*r));
    const union MHD_ConnectionInfo *ci;

    if (r == NULL)
        return NULL;
    r->h = h;
    r->conn = conn;
    atomic_init(&r->refs, 1);
    pthread_mutex_init(&r->mu, NULL);
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    r->uri = strdup(uri != NULL ? uri : "/");
#if MHD_VERSION >= 0x00097500 && MHD_VERSION < 0x00097700
    /* libmicrohttpd 0.9.75 and 0.9.76 next copy every query argument into the connection's
     * memory pool; when the pool runs out there (some 300 arguments in 16 KiB) they queue a 431
     * and then overwrite the state that would send it, and the connection hangs until the idle
     * timeout. The listener parses the query itself from its own copy (parse_target, with its
     * own bound), so it ends the query in libmicrohttpd's request line here, which it splits
     * right after this callback: libmicrohttpd sees no arguments. uri points into that line,
     * which is writable memory of the connection. */
    if (uri != NULL && strchr(uri, '?') != NULL)
        strchr((char *)uri, '?')[1] = '\0';
#endif
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(r->client, sizeof(r->client), "-");
    if (ci != NULL && ci->client_addr != NULL)
        client_text(ci->client_addr, r->client, sizeof(r->client));
    return r;
}

/* Keep the path exactly as received: route matching and path variables decode per segment. */
static size_t unescape_none(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return strlen(s);
}

static void pending_add(struct nk_httpd *h, struct nk_http_req *r)
{
    pthread_mutex_lock(&h->mu);
    r->prev = NULL;
    r->next = h->pending_head;
    if (h->pending_head != NULL)
        h->pending_head->prev = r;
    h->pending_head = r;
    r->in_pending = true;
    h->n_pending++;
    pthread_mutex_unlock(&h->mu);
}

/* Caller holds h->mu. */
static void pending_remove_locked(struct nk_httpd *h, struct nk_http_req *r)
{
    if (!r->in_pending)
        return;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        h->pending_head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    r->in_pending = false;
    h->n_pending--;
    if (r->on_close != NULL) {
        r->on_close = NULL;
        h->n_watched--;
    }
}

static enum MHD_Result dispatch(struct nk_httpd *h, struct nk_http_req *r)
{
    if (r->body == NULL) {
        r->body = strdup("");
        if (r->body == NULL)
            return queue_problem(r, 500, "Internal Server Error", "out of memory");
    }
    if (atomic_load(&h->closing))
        return queue_problem_h(r, 503, "Service Unavailable", "server shutting down", "Connection",
                               "close");
    r->state = RS_DISPATCHED;
    track_busy(h, r->conn, true);
    atomic_fetch_add(&r->refs, 1); /* the handler's reference, dropped by nk_http_respond */
    pending_add(h, r);
    r->unfinished = true;
    atomic_fetch_add(&h->n_unfinished, 1);
    /* Suspend before the handler runs: it may answer from another thread at once. */
    MHD_suspend_connection(r->conn);
    h->handler(h->ud, r);
    return MHD_YES;
}

/* RFC 9110 token (a header name). */
static bool is_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    size_t i;

    for (i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr(extra, c) != NULL))
            return false;
    }
    return i > 0;
}

/* Framing that libmicrohttpd 0.9.75 accepts but reads one way where a proxy in front may read
 * it another (request smuggling), or never finishes reading: two Content-Length headers (it
 * takes the first), Content-Length with Transfer-Encoding, a header name with whitespace in it
 * ("Content-Length : 5" is kept as an unknown header, the body then runs as the next request),
 * a Transfer-Encoding other than chunked (it reads until the client closes). Returns the status
 * to answer with *detail, or 0. */
static unsigned framing_refusal(const struct nk_http_req *r, const char **detail)
{
    const char *te = NULL;
    size_t i, n_cl = 0, n_te = 0;

    for (i = 0; i < r->n_headers; i++) {
        if (!is_token(r->headers[i].name)) {
            *detail = "a header name is not a token (whitespace or a separator in it)";
            return 400;
        }
        if (strcasecmp(r->headers[i].name, "Content-Length") == 0) {
            n_cl++;
        } else if (strcasecmp(r->headers[i].name, "Transfer-Encoding") == 0) {
            n_te++;
            te = r->headers[i].value;
        }
    }
    if (n_cl > 1) {
        *detail = "more than one Content-Length header";
        return 400;
    }
    if (n_cl > 0 && n_te > 0) {
        *detail = "Content-Length together with Transfer-Encoding";
        return 400;
    }
    if (n_te > 1 || (te != NULL && strcasecmp(te, "chunked") != 0)) {
        *detail = "the only Transfer-Encoding accepted is chunked";
        return 501;
    }
    return 0;
}

/* Copy the head out of libmicrohttpd and check it; the answer when it is refused. */
static enum MHD_Result read_head(struct nk_http_req *r, bool *refused)
{
    struct hdr_copy hc = {r, 0, false};
    const char *detail = NULL;
    enum nk_rc rc;
    unsigned status;
    char msg[96];

    *refused = true;
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, copy_header, &hc);
    rc = hc.oom ? NK_ERR_NOMEM : parse_target(r);
    if (rc == NK_ERR_TOO_LARGE) {
        snprintf(msg, sizeof(msg), "the target has more than %u query arguments",
                 (unsigned)NK_HTTPD_MAX_QUERY_ARGS);
        return queue_problem(r, 414, "URI Too Long", msg);
    }
    if (rc != NK_OK || r->path == NULL)
        return queue_problem(r, 500, "Internal Server Error", "out of memory");
    status = framing_refusal(r, &detail);
    if (status != 0)
        return queue_problem(r, status, status == 501 ? "Not Implemented" : "Bad Request", detail);
    *refused = false;
    return MHD_YES;
}

/* Every value of header name joined with ',' (several lines are one list, RFC 9110 5.3), or
 * NULL when absent; *oom on an allocation failure. Caller frees. */
static char *joined_header(const struct nk_http_req *r, const char *name, bool *oom)
{
    size_t i, len = 0, n = 0;
    char *out;

    for (i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0 && r->headers[i].value != NULL) {
            len += strlen(r->headers[i].value) + 1;
            n++;
        }
    if (n == 0)
        return NULL;
    out = malloc(len);
    if (out == NULL) {
        *oom = true;
        return NULL;
    }
    len = 0;
    for (i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0 && r->headers[i].value != NULL) {
            size_t k = strlen(r->headers[i].value);

            if (len > 0)
                out[len++] = ',';
            memcpy(out + len, r->headers[i].value, k);
            len += k;
        }
    out[len] = '\0';
    return out;
}

/* From a trusted proxy: the client its header names (the peer stays in r->peer). */
static bool forwarded_client(struct nk_httpd *h, struct nk_http_req *r)
{
    char *xff, *fwd = NULL, client[NK_PROXIES_ADDR_MAX];
    bool oom = false;

    if (h->proxies == NULL || !nk_proxies_trusted(h->proxies, r->client))
        return true;
    r->via_proxy = true;
    xff = joined_header(r, "X-Forwarded-For", &oom);
    if (xff == NULL && !oom)
        fwd = joined_header(r, "Forwarded", &oom);
    if (!oom && nk_proxies_client(h->proxies, r->client, xff, fwd, client)) {
        snprintf(r->peer, sizeof(r->peer), "%s", r->client);
        snprintf(r->client, sizeof(r->client), "%s", client);
    }
    free(xff);
    free(fwd);
    return !oom;
}

/* Queue the answer the admit hook gave (RS_ANSWERED), or a 500 when it refused without one. */
static enum MHD_Result queue_refusal(struct nk_http_req *r)
{
    enum MHD_Result ret;

    if (r->state != RS_ANSWERED)
        return queue_problem(r, 500, "Internal Server Error", "request refused without an answer");
    if (r->resp == NULL)
        return MHD_NO;
    r->state = RS_QUEUED;
    lame_close(r->h, r->resp);
    ret = MHD_queue_response(r->conn, r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    log_access(r->h, r);
    return ret;
}

/* Size of the body buffer for n more bytes. With a Content-Length (already checked against
 * max_body) exactly that, allocated once; without one (chunked) doubling up to BODY_STEP, then
 * BODY_STEP at a time, never past max_body + 1. */
static size_t body_cap_for(const struct nk_httpd *h, const struct nk_http_req *r, size_t n)
{
    size_t need = r->body_len + n + 1;
    size_t cap;

    if (r->body_expect > 0 && need <= r->body_expect + 1)
        return r->body_expect + 1;
    cap = r->body_cap ? r->body_cap : 1024;
    while (cap < need)
        cap += cap < BODY_STEP ? cap : BODY_STEP;
    return cap > h->max_body + 1 ? h->max_body + 1 : cap;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
    struct nk_httpd *h = cls;
    struct nk_http_req *r = *req_cls;
    const char *cl;
    enum MHD_Result ret;
    bool refused, admitted;
    char detail[128];

    (void)url;
    (void)version;
    if (r == NULL)
        return MHD_NO; /* out of memory in on_uri: drop the connection */
    switch (r->state) {
    case RS_NEW:
        r->method = strdup(method);
        if (r->uri == NULL || r->method == NULL)
            return MHD_NO;
        set_request_id(r, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id"));
        ret = read_head(r, &refused);
        if (refused)
            return ret;
        if (!forwarded_client(h, r))
            return queue_problem(r, 500, "Internal Server Error", "out of memory");
        r->state = RS_BODY;
        if (h->rate != NULL) {
            unsigned retry = 1;
            if (!nk_rate_take(h->rate, r->client, 1, mono_now(), &retry)) {
                char ra[16];
                if (r->path == NULL)
                    r->path = strndup(r->uri, strcspn(r->uri, "?#"));
                snprintf(ra, sizeof(ra), "%u", retry);
                snprintf(detail, sizeof(detail),
                         "more than %g requests per second from %s; retry after %u s",
                         h->rate_per_s, r->client, retry);
                return queue_problem_h(r, 429, "Too Many Requests", detail, "Retry-After", ra);
            }
        }
        if (!hold_forwarded(h, r)) {
            snprintf(detail, sizeof(detail), "more than %u requests at once from %s",
                     h->client_conns->max, r->client);
            return queue_problem_h(r, 429, "Too Many Requests", detail, "Retry-After", "1");
        }
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL) {
            char *end = NULL;
            unsigned long long n;
            errno = 0;
            n = strtoull(cl, &end, 10);
            if (errno != 0 || n > h->max_body) {
                /* Answer before reading the body; MHD then closes the connection. */
                snprintf(detail, sizeof(detail), "request body exceeds the limit of %zu bytes",
                         h->max_body);
                return queue_problem(r, 413, "Content Too Large", detail);
            }
            r->body_expect = (size_t)n;
        }
        if (h->admit != NULL) {
            /* Queued now, before the first body byte is accepted, an answer makes libmicrohttpd
             * skip the body and close the connection after it. */
            r->state = RS_ADMIT;
            atomic_fetch_add(&r->refs, 1); /* the hook's: nk_http_respond() or below drops it */
            admitted = h->admit(h->ud, r);
            if (r->deferred)
                return MHD_YES; /* suspended; the verdict resumes it (maybe already did) */
            if (r->state != RS_ADMIT || !admitted) {
                if (r->state == RS_ADMIT)
                    req_unref(r);
                return queue_refusal(r);
            }
            req_unref(r);
            r->state = RS_BODY;
        }
        return MHD_YES;
    case RS_BODY:
        if (*upload_size > 0) {
            size_t n = *upload_size;
            *upload_size = 0;
            if (r->too_large)
                return MHD_YES;
            if (n > h->max_body - r->body_len) {
                r->too_large = true;
                free(r->body);
                r->body = NULL;
                r->body_len = r->body_cap = 0;
                return MHD_YES;
            }
            if (r->body_len + n + 1 > r->body_cap) {
                size_t cap = body_cap_for(h, r, n);
                char *tmp = realloc(r->body, cap);
                if (tmp == NULL)
                    return queue_problem(r, 500, "Internal Server Error", "out of memory");
                r->body = tmp;
                r->body_cap = cap;
            }
            memcpy(r->body + r->body_len, upload, n);
            r->body_len += n;
            r->body[r->body_len] = '\0';
            return MHD_YES;
        }
        if (r->too_large) {
            if (r->path == NULL)
                r->path = strndup(r->uri, strcspn(r->uri, "?#"));
            snprintf(detail, sizeof(detail), "request body exceeds the limit of %zu bytes",
                     h->max_body);
            return queue_problem(r, 413, "Content Too Large", detail);
        }
        return dispatch(h, r);
    case RS_READMIT:
        /* libmicrohttpd calls again for the head after the resume: from now on, the body. */
        r->state = RS_BODY;
        if (*upload_size == 0)
            return MHD_YES;
        return on_request(cls, conn, url, method, version, upload, upload_size, req_cls);
    case RS_ANSWERED:
        pthread_mutex_lock(&r->mu);
        r->state = RS_QUEUED;
        lame_close(r->h, r->resp);
        ret = MHD_queue_response(conn, r->status, r->resp);
        MHD_destroy_response(r->resp);
        r->resp = NULL;
        pthread_mutex_unlock(&r->mu);
        return ret;
    case RS_ADMIT:
    case RS_DEFERRED:
    case RS_DISPATCHED:
    case RS_QUEUED:
    default:
        return MHD_YES;
    }
}

static void stream_lose(struct nk_http_stream *s);

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct nk_httpd *h = cls;
    struct nk_http_req *r = *req_cls;
    bool abandoned;

    (void)toe;
    if (h->request_timeout_ms > 0)
        track_busy(h, conn, false); /* the next request's window starts now */
    if (r != NULL && r->stream != NULL)
        stream_lose(r->stream);
    if (r != NULL && r->held_len > 0) {
        client_give(h->client_conns, r->held_key, r->held_len);
        r->held_len = 0;
    }
    if (r != NULL && r->unfinished) {
        r->unfinished = false;
        atomic_fetch_sub(&h->n_unfinished, 1);
    }
    if (r != NULL) {
        pthread_mutex_lock(&r->mu);
        abandoned = r->abandoned;
        pthread_mutex_unlock(&r->mu);
        if (abandoned) {
            pthread_mutex_lock(&h->mu);
            h->n_abandoned--;
            pthread_cond_broadcast(&h->abandoned_done);
            pthread_mutex_unlock(&h->mu);
        }
    }
    req_unref(r);
    *req_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* One descriptor held in reserve for the whole process, so that a listener out of descriptors
 * can still accept (and close) the connection it cannot serve. */
static pthread_mutex_t reserve_mu = PTHREAD_MUTEX_INITIALIZER;
static int reserve_fd = -1;

static void reserve_open_locked(void)
{
    if (reserve_fd < 0)
        reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* libmicrohttpd 0.9.75 retries at once when accept() fails for want of descriptors on a
 * listener with no connection of its own (with one, it pauses accepting until one closes): the
 * pending connection keeps the socket readable and the loop spins. Take that connection off
 * the queue with the reserve descriptor and close it, so each failure consumes a connection;
 * when even that fails, pause briefly so the retry cannot take a whole core. */
static void shed_connection(struct nk_httpd *h)
{
    struct timespec pause = {0, 10 * 1000 * 1000};
    bool shed = false;
    int fd;

    pthread_mutex_lock(&reserve_mu);
    reserve_open_locked(); /* lost to another thread's accept() last time */
    if (reserve_fd >= 0) {
        close(reserve_fd);
        reserve_fd = -1;
        fd = accept(atomic_load(&h->accept_fd), NULL, NULL); /* non-blocking: MHD made it so */
        if (fd >= 0) {
            close(fd);
            shed = true;
        }
        reserve_open_locked();
    }
    pthread_mutex_unlock(&reserve_mu);
    if (!shed)
        nanosleep(&pause, NULL);
}

/* libmicrohttpd's messages go through the log module, in the format in force. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static const char first[] = "Hit process or system resource limit at FIRST";
    struct nk_httpd *h = cls;
    unsigned long dropped;
    char line[512];
    double now = mono_now();
    bool print;

    if (strncmp(fmt, first, sizeof(first) - 1) == 0 && atomic_load(&h->accept_fd) >= 0)
        shed_connection(h);
    pthread_mutex_lock(&h->log_mu);
    h->log_tokens += (now - h->log_last) / LOG_EVERY_S;
    if (h->log_tokens > LOG_BURST)
        h->log_tokens = LOG_BURST;
    h->log_last = now;
    print = h->log_tokens >= 1.0;
    dropped = h->log_dropped;
    if (print) {
        h->log_tokens -= 1.0;
        h->log_dropped = 0;
    } else {
        h->log_dropped++;
    }
    pthread_mutex_unlock(&h->log_mu);
    if (!print || !nk_log_enabled(NK_LOG_WARNING))
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    if (dropped > 0)
        nk_log(NK_LOG_WARNING, "httpd: %s (%lu similar line(s) suppressed)", line, dropped);
    else
        nk_log(NK_LOG_WARNING, "httpd: %s", line);
}

/* True when the client has closed conn (orderly or reset) while it is suspended: libmicrohttpd
 * does not read a suspended connection, so it never notices. Bytes still unread (a pipelined
 * request) hide a close; that is only a missed cancellation. */
static bool conn_closed(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    char b;
    ssize_t n;

    if (ci == NULL)
        return false;
    n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

#define CLOSE_SWEEP_MS 200

static void stream_cut(struct nk_http_stream *s);

/* Loop thread: a client that closed while its streamed answer waited for the producer (the
 * connection is suspended, libmicrohttpd would not notice): end that body now. */
static void sweep_streams(struct nk_httpd *h)
{
    struct nk_http_stream *s;

    for (s = h->streams; s != NULL;) {
        if (s->suspended && !s->cut && conn_closed(s->r->conn)) {
            stream_cut(s); /* the producer may end other streams: start over */
            s = h->streams;
        } else {
            s = s->next;
        }
    }
}

/* Loop thread: hand each watched request whose client went away to its on_close, once. */
static void sweep_closed(struct nk_httpd *h)
{
    struct nk_http_req *r;
    void (*fn)(void *ud);
    void *fn_ud;
    double now = mono_now();

    if (now - h->last_sweep < CLOSE_SWEEP_MS / 1000.0)
        return;
    h->last_sweep = now;
    sweep_streams(h);
    for (;;) {
        fn = NULL;
        pthread_mutex_lock(&h->mu);
        for (r = h->n_watched > 0 ? h->pending_head : NULL; r != NULL; r = r->next)
            if (r->on_close != NULL && r->conn != NULL && conn_closed(r->conn))
                break;
        if (r != NULL) {
            fn = r->on_close;
            fn_ud = r->on_close_ud;
            r->on_close = NULL;
            h->n_watched--;
        }
        pthread_mutex_unlock(&h->mu);
        if (fn == NULL)
            return;
        /* Answers come on this thread: r is not answered while fn runs. */
        fn(fn_ud);
    }
}

/* The loop calls this when libmicrohttpd's epoll fd is readable, when its timeout is due, or
 * after a resume or a deadline (kick). */
static void src_run(void *ud)
{
    struct nk_httpd *h = ud;

    atomic_store(&h->conn_closed, false);
    (void)MHD_run(h->daemon);
    /* At its connection limit libmicrohttpd takes its listening socket out of its epoll set,
     * and puts it back only at the start of a run: once connections closed, run again, or a
     * listener that was full would wait for an event that never comes. */
    if (atomic_exchange(&h->conn_closed, false))
        (void)MHD_run(h->daemon);
    sweep_closed(h);
}

static long src_timeout(void *ud)
{
    struct nk_httpd *h = ud;
    MHD_UNSIGNED_LONG_LONG t = 0;

    long sweep = -1;
    double since;

    pthread_mutex_lock(&h->mu);
    if (h->n_watched > 0 || h->n_suspended > 0) {
        /* Due when the next look at watched connections is. */
        since = (mono_now() - h->last_sweep) * 1000.0;
        sweep = since >= CLOSE_SWEEP_MS ? 0 : CLOSE_SWEEP_MS - (long)since;
    }
    pthread_mutex_unlock(&h->mu);
    if (MHD_get_timeout(h->daemon, &t) != MHD_YES)
        return sweep;
    if (sweep >= 0 && t > (MHD_UNSIGNED_LONG_LONG)sweep)
        t = (MHD_UNSIGNED_LONG_LONG)sweep;
    return t > 1000000U ? 1000000L : (long)t;
}

static enum nk_rc bind_socket(const char *address, unsigned port, bool reuse_port, int *fd_out,
                              bool *v6, struct nk_error *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = -1, one = 1;
    enum nk_rc rc = NK_ERR_IO;

    memset(&ss, 0, sizeof(ss));
    *v6 = false;
    if (port > 65535) {
        nk_error_set(err, "port %u is out of range", port);
        return NK_ERR_INVALID;
    }
    if (inet_pton(AF_INET, address, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ((struct sockaddr_in *)&ss)->sin_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in);
    } else if (inet_pton(AF_INET6, address, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        len = sizeof(struct sockaddr_in6);
        *v6 = true;
    } else {
        nk_error_set(err, "'%s' is not a numeric IPv4 or IPv6 address", address);
        return NK_ERR_INVALID;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        nk_error_set(err, "socket: %s", strerror(errno));
        goto out;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Several listeners (one per loop) on one port: the kernel spreads new connections over
     * their sockets. Without it a second bind of the port fails, as it should. */
    if (reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        nk_error_set(err, "SO_REUSEPORT: %s", strerror(errno));
        goto out;
    }
    if (*v6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
        nk_error_set(err, "cannot bind %s%s%s:%u: %s", *v6 ? "[" : "", address, *v6 ? "]" : "",
                     port, strerror(errno));
        goto out;
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        nk_error_set(err, "cannot listen on %s:%u: %s", address, port, strerror(errno));
        goto out;
    }
    *fd_out = fd;
    fd = -1;
    rc = NK_OK;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

enum nk_rc nk_httpd_start(const struct nk_httpd_options *opts, nk_httpd_handler_fn handler,
                          void *ud, struct nk_httpd **out, struct nk_error *err)
{
    struct nk_httpd *h = NULL;
    const union MHD_DaemonInfo *di;
    const char *address = opts != NULL && opts->address != NULL ? opts->address : "127.0.0.1";
    unsigned max_conn = opts != NULL && opts->max_connections ? opts->max_connections : 1024;
    unsigned timeout = opts != NULL && opts->conn_timeout_s ? opts->conn_timeout_s : 30;
    unsigned per_ip = opts != NULL ? opts->max_per_client : 0;
    size_t mem = opts != NULL && opts->max_header_bytes ? opts->max_header_bytes : 16 * 1024;
    struct nk_loop *loop = opts != NULL ? opts->loop : NULL;
    /* No thread of libmicrohttpd's own and no inter-thread channel: every resume happens on the
     * loop thread, which runs MHD_run right after. */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    bool v6 = false;
    enum nk_rc rc;
    int fd = -1;

    *out = NULL;
    if (loop == NULL) {
        nk_error_set(err, "the HTTP listener needs an event loop");
        return NK_ERR_INVALID;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NK_ERR_NOMEM;
    atomic_init(&h->n_unfinished, 0);
    atomic_init(&h->closing, false);
    atomic_init(&h->lame, false);
    atomic_init(&h->conn_closed, false);
    h->loop = loop;
    h->src.fd = -1;
    h->handler = handler;
    h->ud = ud;
    h->listen_fd = -1;
    h->max_body = opts != NULL && opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
    if (opts != NULL) {
        h->proxies = opts->trusted_proxies != NULL && opts->trusted_proxies->n > 0
                         ? opts->trusted_proxies
                         : NULL;
        h->admit = opts->admit;
        h->access_log = opts->access_log;
        h->access_ud = opts->access_ud;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->abandoned_done, NULL);
    pthread_mutex_init(&h->log_mu, NULL);
    h->log_tokens = LOG_BURST;
    h->log_last = mono_now();
    atomic_init(&h->accept_fd, -1);
    h->request_timeout_ms = opts != NULL ? (long)opts->request_timeout_s * 1000L : 0;
    if (opts != NULL && opts->rate_per_s > 0 && opts->shared_rate != NULL) {
        h->rate_per_s = opts->rate_per_s;
        h->rate = opts->shared_rate;
        h->rate_borrowed = true;
    } else if (opts != NULL && opts->rate_per_s > 0) {
        h->rate_per_s = opts->rate_per_s;
        rc = nk_rate_new(opts->rate_per_s,
                         opts->rate_burst > 0   ? (double)opts->rate_burst
                         : opts->rate_per_s < 1 ? 1.0
                                                : opts->rate_per_s,
                         0, &h->rate);
        if (rc != NK_OK) {
            nk_error_set(err, "cannot set up the rate limit");
            goto out;
        }
    }
    pthread_mutex_lock(&reserve_mu);
    reserve_open_locked();
    pthread_mutex_unlock(&reserve_mu);
    rc = bind_socket(address, opts != NULL ? opts->port : 0, opts != NULL && opts->reuse_port, &fd,
                     &v6, err);
    if (rc != NK_OK)
        goto out;
    atomic_store(&h->accept_fd, fd);
    if (v6)
        flags |= MHD_USE_IPv6;
    if (opts->shared_client_conns != NULL) {
        h->client_conns = opts->shared_client_conns;
        per_ip = 0; /* counted across the listeners instead */
    } else if (per_ip > 0 && h->proxies != NULL) {
        /* libmicrohttpd's own per-address limit would cap a balancer at per_ip connections:
         * count here, connections per direct client and requests per forwarded one. */
        rc = nk_httpd_client_conns_new(per_ip, &h->client_conns);
        if (rc != NK_OK)
            goto out;
        h->client_conns_owned = true;
        per_ip = 0;
    }
    h->daemon = MHD_start_daemon(
        flags, 0, h->client_conns != NULL ? accept_policy : NULL, h, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_LISTEN_SOCKET, fd,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_UNESCAPE_CALLBACK, unescape_none, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, mem, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_END);
    if (h->daemon == NULL) {
        nk_error_set(err, "cannot start the HTTP listener on %s", address);
        rc = NK_ERR_IO;
        goto out;
    }
    h->listen_fd = fd;
    fd = -1; /* MHD owns it until quiesce */
    di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    h->src.fd = di != NULL ? di->epoll_fd : -1;
    h->src.run = src_run;
    h->src.timeout_ms = src_timeout;
    h->src.ud = h;
    if (h->src.fd < 0 || nk_loop_attach(loop, &h->src) != NK_OK) {
        MHD_stop_daemon(h->daemon);
        nk_error_set(err, "cannot serve the HTTP listener on the event loop (is it running?)");
        rc = NK_ERR_INTERNAL;
        goto out;
    }
    di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di != NULL ? di->port : 0;
    *out = h;
    h = NULL;
out:
    if (fd >= 0)
        close(fd);
    if (h != NULL) {
        pthread_cond_destroy(&h->abandoned_done);
        pthread_mutex_destroy(&h->mu);
        pthread_mutex_destroy(&h->log_mu);
        if (!h->rate_borrowed)
            nk_rate_free(h->rate);
        if (h->client_conns_owned)
            nk_httpd_client_conns_free(h->client_conns);
        free(h);
    }
    return rc;
}

unsigned nk_httpd_port(const struct nk_httpd *h)
{
    return h->port;
}

static void quiesce_now(void *arg)
{
    struct nk_httpd *h = arg;
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);

    atomic_store(&h->accept_fd, -1);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void nk_httpd_lame_duck(struct nk_httpd *h)
{
    if (h != NULL)
        atomic_store(&h->lame, true);
}

void nk_httpd_quiesce(struct nk_httpd *h)
{
    if (h == NULL || h->quiesced)
        return;
    h->quiesced = true;
    /* The daemon belongs to the loop thread while attached. */
    if (h->src.attached == NULL || !nk_loop_run_sync(h->src.attached, quiesce_now, h))
        quiesce_now(h);
}

size_t nk_httpd_pending(struct nk_httpd *h)
{
    return atomic_load(&h->n_unfinished);
}

/* Answer r with resp (may be NULL on OOM: the connection is then closed). Caller holds r->mu
 * and has checked r is dispatched and not abandoned. */
static void answer_locked(struct nk_http_req *r, unsigned status, struct MHD_Response *resp)
{
    struct nk_httpd *h = r->h;

    pthread_mutex_lock(&h->mu);
    pending_remove_locked(h, r);
    pthread_mutex_unlock(&h->mu);
    if (resp == NULL) {
        resp = problem_response(r->id, 500, "Internal Server Error", "out of memory");
        status = 500;
    }
    r->resp = resp;
    r->status = status;
    r->state = RS_ANSWERED;
    log_access(h, r);
}

/* Resume r's connection and drop one reference to r. The loop thread must do it
 * (libmicrohttpd has no channel to wake it otherwise) and then run the daemon: directly when on
 * it, else posted. Once the loop is gone, the thread that stops the listener runs the daemon. */
static void resume_on_loop(void *arg)
{
    struct nk_http_req *r = arg;

    MHD_resume_connection(r->conn);
    nk_loop_kick(&r->h->src);
    req_unref(r);
}

static void resume_unref(struct nk_http_req *r)
{
    struct nk_httpd *h = r->h;

    if (nk_loop_on_loop(h->loop)) {
        resume_on_loop(r);
        return;
    }
    if (h->src.attached != NULL) {
        r->resume_call.fn = resume_on_loop;
        r->resume_call.ud = r;
        if (nk_loop_post(h->src.attached, &r->resume_call))
            return;
    }
    MHD_resume_connection(r->conn);
    req_unref(r);
}

/* Answer 503 to every request a handler has not answered: libmicrohttpd refuses to stop with
 * suspended connections. A late nk_http_respond() then finds the request abandoned and only
 * drops it. */
static void abandon_pending(void *arg)
{
    struct nk_httpd *h = arg;
    struct nk_http_req *r;
    bool resume;

    for (;;) {
        pthread_mutex_lock(&h->mu);
        r = h->pending_head;
        if (r != NULL) {
            pending_remove_locked(h, r);
            atomic_fetch_add(&r->refs, 1);
        }
        pthread_mutex_unlock(&h->mu);
        if (r == NULL)
            break;
        resume = false;
        pthread_mutex_lock(&r->mu);
        if ((r->state == RS_DISPATCHED || r->state == RS_DEFERRED) && !r->abandoned) {
            r->abandoned = true;
            pthread_mutex_lock(&h->mu);
            h->n_abandoned++;
            pthread_mutex_unlock(&h->mu);
            r->resp = problem_response(r->id, 503, "Service Unavailable", "server shutting down");
            r->status = 503;
            r->state = RS_ANSWERED;
            log_access(h, r);
            resume = true;
        }
        pthread_mutex_unlock(&r->mu);
        /* Never call into MHD holding r->mu: on_request takes it. */
        if (resume)
            resume_unref(r);
        else
            req_unref(r);
    }
}

/* Loop owner: libmicrohttpd cannot stop with suspended connections: cut the streamed
 * answers that wait for their producer. */
static void cut_streams(void *arg)
{
    struct nk_httpd *h = arg;
    struct nk_http_stream *s;

    for (s = h->streams; s != NULL;) {
        if (!s->cut) {
            stream_cut(s);
            s = h->streams;
        } else {
            s = s->next;
        }
    }
}

void nk_httpd_refuse(struct nk_httpd *h)
{
    if (h != NULL)
        atomic_store(&h->closing, true);
}

static void detach_on_loop(void *arg)
{
    struct nk_httpd *h = arg;
    struct conn_track *t;

    h->deadlines_off = true;
    for (t = h->conns; t != NULL; t = t->next)
        nk_loop_timer_cancel(&t->deadline);
    nk_loop_detach(&h->src);
}

void nk_httpd_stop(struct nk_httpd *h)
{
    struct timespec deadline;
    struct pollfd pfd;
    double until;
    size_t left;
    bool looped;

    if (h == NULL)
        return;
    atomic_store(&h->closing, true);
    /* With the loop running, it owns the daemon until the detach below. */
    looped = h->src.attached != NULL && nk_loop_run_sync(h->src.attached, abandon_pending, h);
    if (!looped)
        abandon_pending(h);
    if (!nk_loop_run_sync(h->loop, cut_streams, h))
        cut_streams(h);
    /* Give those 503s a moment to reach their clients (bounded; MHD closes the rest). */
    if (!looped) {
        /* The loop is gone: nobody else runs the daemon now; this thread does. */
        until = mono_now() + 2.0;
        for (;;) {
            (void)MHD_run(h->daemon);
            pthread_mutex_lock(&h->mu);
            left = h->n_abandoned;
            pthread_mutex_unlock(&h->mu);
            if (left == 0 || mono_now() >= until)
                break;
            pfd.fd = h->src.fd;
            pfd.events = POLLIN;
            (void)poll(&pfd, 1, 50);
        }
    } else {
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 2;
        pthread_mutex_lock(&h->mu);
        while (h->n_abandoned > 0)
            if (pthread_cond_timedwait(&h->abandoned_done, &h->mu, &deadline) != 0)
                break;
        pthread_mutex_unlock(&h->mu);
    }
    /* Deadlines off and the source detached, on the loop (its timer heap is the loop's): from
     * here on this thread owns the daemon, and closing its connections touches no timer. */
    if (!nk_loop_run_sync(h->loop, detach_on_loop, h))
        detach_on_loop(h);
    if (!h->quiesced)
        h->listen_fd = -1; /* MHD closes it */
    MHD_stop_daemon(h->daemon);
    pthread_cond_destroy(&h->abandoned_done);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->log_mu);
    if (!h->rate_borrowed)
        nk_rate_free(h->rate);
    if (h->client_conns_owned)
        nk_httpd_client_conns_free(h->client_conns);
    free(h);
}

const char *nk_http_req_method(const struct nk_http_req *r)
{
    return r->method;
}

const char *nk_http_req_path(const struct nk_http_req *r)
{
    return r->path;
}

const char *nk_http_req_header(const struct nk_http_req *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

size_t nk_http_req_query_count(const struct nk_http_req *r)
{
    return r->n_query;
}

void nk_http_req_query_at(const struct nk_http_req *r, size_t i, const char **name,
                          const char **value)
{
    *name = i < r->n_query ? r->query[i].name : NULL;
    *value = i < r->n_query ? r->query[i].value : NULL;
}

const char *nk_http_req_body(const struct nk_http_req *r, size_t *len)
{
    if (len != NULL)
        *len = r->body_len;
    return r->body;
}

const char *nk_http_req_client(const struct nk_http_req *r)
{
    return r->client;
}

void nk_http_req_set_rpc(struct nk_http_req *r, const char *method, const char *tool)
{
    snprintf(r->rpc_method, sizeof(r->rpc_method), "%s", method != NULL ? method : "");
    snprintf(r->rpc_tool, sizeof(r->rpc_tool), "%s", tool != NULL ? tool : "");
}

const char *nk_http_req_id(const struct nk_http_req *r)
{
    return r->id;
}

void nk_http_req_set_caller(struct nk_http_req *r, const char *name)
{
    snprintf(r->principal.name, sizeof(r->principal.name), "%s", name != NULL ? name : "");
}

void nk_http_req_on_close(struct nk_http_req *r, void (*fn)(void *ud), void *ud)
{
    struct nk_httpd *h = r->h;

    if (h == NULL || fn == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    if (r->in_pending && r->on_close == NULL) {
        r->on_close = fn;
        r->on_close_ud = ud;
        h->n_watched++;
    }
    pthread_mutex_unlock(&h->mu);
}

const char *nk_http_req_caller(const struct nk_http_req *r)
{
    return r->principal.name;
}

void nk_http_req_set_principal(struct nk_http_req *r, const struct nk_principal *p)
{
    r->principal = *p;
    r->principal.name[sizeof(r->principal.name) - 1] = '\0';
    r->principal.client_id[sizeof(r->principal.client_id) - 1] = '\0';
    r->principal.scope[sizeof(r->principal.scope) - 1] = '\0';
}

const struct nk_principal *nk_http_req_principal(const struct nk_http_req *r)
{
    return &r->principal;
}

void nk_http_req_set_tag(struct nk_http_req *r, unsigned tag)
{
    r->tag = tag;
}

void nk_http_respond(struct nk_http_req *r, unsigned status, const char *content_type, char *body,
                     size_t len, const char *const *headers)
{
    struct MHD_Response *resp;

    if (r->detached != NULL) {
        r->status = status;
        r->detached(r->detached_ud, status, content_type, body != NULL ? body : "",
                    body != NULL ? len : 0);
        free(body);
        req_unref(r);
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (r->state == RS_ADMIT) {
        /* A refusal from the admit hook, on the reading thread: on_request queues it. */
        r->resp = make_response(r->id, content_type, body, len, headers);
        r->status = status;
        if (r->resp == NULL) {
            r->resp = problem_response(r->id, 500, "Internal Server Error", "out of memory");
            r->status = 500;
        }
        r->state = RS_ANSWERED;
        pthread_mutex_unlock(&r->mu);
        req_unref(r);
        return;
    }
    if (r->abandoned || (r->state != RS_DISPATCHED && r->state != RS_DEFERRED)) {
        /* Too late (listener stopped) or answered twice (a bug): drop it. */
        pthread_mutex_unlock(&r->mu);
        free(body);
        req_unref(r);
        return;
    }
    resp = make_response(r->id, content_type, body, len, headers);
    answer_locked(r, status, resp);
    pthread_mutex_unlock(&r->mu);
    /* The handler's reference keeps r alive until after the resume. */
    resume_unref(r);
}

static void stream_unref(struct nk_http_stream *s)
{
    if (--s->refs > 0)
        return;
    if (s->r->stream == s)
        s->r->stream = NULL;
    req_unref(s->r);
    free(s->buf);
    free(s->content_type);
    free(s);
}

static void stream_link(struct nk_http_stream *s)
{
    struct nk_httpd *h = s->r->h;

    s->prev = NULL;
    s->next = h->streams;
    if (h->streams != NULL)
        h->streams->prev = s;
    h->streams = s;
    s->linked = true;
}

/* There is something for the reader (bytes, the end, a cut): wake a waiting connection. */
static void stream_wake(struct nk_http_stream *s)
{
    struct nk_httpd *h = s->r->h;

    if (!s->suspended || s->lost)
        return;
    s->suspended = false;
    h->n_suspended--;
    MHD_resume_connection(s->r->conn);
    if (h->src.attached != NULL)
        nk_loop_kick(&h->src);
}

/* Tell the producer its client is gone, once, unless it has ended already. */
static void stream_tell_gone(struct nk_http_stream *s)
{
    if (s->ended || s->told_gone || s->r->detached != NULL)
        return;
    s->told_gone = true;
    if (s->ops.gone != NULL)
        s->ops.gone(s->ud); /* may end s: the caller holds a reference */
}

/* The connection is done with the response (sent, closed, or the listener stopped). */
static void stream_lose(struct nk_http_stream *s)
{
    struct nk_httpd *h = s->r->h;

    if (s->suspended) {
        s->suspended = false;
        h->n_suspended--;
    }
    if (s->linked) {
        if (s->prev != NULL)
            s->prev->next = s->next;
        else
            h->streams = s->next;
        if (s->next != NULL)
            s->next->prev = s->prev;
        s->prev = s->next = NULL;
        s->linked = false;
    }
    s->lost = true;
}

/* End the body with an error now and tell the producer. */
static void stream_cut(struct nk_http_stream *s)
{
    s->refs++;
    s->cut = true;
    stream_wake(s);
    stream_tell_gone(s);
    stream_unref(s);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct nk_http_stream *s = cls;
    size_t n = s->len - s->off;

    (void)pos;
    if (s->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    if (n > 0) {
        if (n > max)
            n = max;
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        if (s->off == s->len)
            s->off = s->len = 0;
        if (s->full && !s->ended && s->len - s->off < NK_HTTP_STREAM_BUFFER / 2) {
            /* The producer writes again (maybe at once, into the buffer: n is copied out). */
            s->full = false;
            if (s->ops.drained != NULL)
                s->ops.drained(s->ud);
        }
        return (ssize_t)n;
    }
    if (s->ended)
        return s->ok ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    /* Nothing yet: returning 0 alone would have libmicrohttpd ask again on every run (and its
     * timeout says "now"): the loop would spin. Sleep until a write, the end or a cut. */
    if (!s->suspended && !s->lost) {
        s->suspended = true;
        s->r->h->n_suspended++;
        MHD_suspend_connection(s->r->conn);
    }
    return 0;
}

/* libmicrohttpd let go of the response: the client has all of it, or is gone. */
static void stream_free_cb(void *cls)
{
    struct nk_http_stream *s = cls;

    stream_lose(s);
    stream_tell_gone(s);
    stream_unref(s);
}

struct nk_http_stream *nk_http_respond_stream(struct nk_http_req *r, unsigned status,
                                              const char *content_type, const char *const *headers,
                                              const struct nk_http_stream_ops *ops, void *ud)
{
    struct nk_http_stream *s = calloc(1, sizeof(*s));
    struct MHD_Response *resp = NULL;
    char *body;
    bool ok;

    if (s == NULL)
        goto nomem;
    s->r = r;
    atomic_fetch_add(&r->refs, 1);
    s->refs = 1;
    s->ops = *ops;
    s->ud = ud;
    if (r->detached != NULL) {
        s->status = status;
        if (content_type != NULL && (s->content_type = strdup(content_type)) == NULL)
            goto nomem;
        return s;
    }
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_read, s,
                                             stream_free_cb);
    if (resp == NULL)
        goto nomem;
    s->refs++; /* the response's */
    if (!add_headers(resp, r->id, content_type, headers))
        goto nomem;
    pthread_mutex_lock(&r->mu);
    ok = !r->abandoned && r->state == RS_DISPATCHED;
    if (ok) {
        r->stream = s;
        stream_link(s);
        answer_locked(r, status, resp);
        resp = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (!ok) {
        /* The listener stopped first (its 503 went out): nothing to stream to. */
        s->ended = true;
        MHD_destroy_response(resp); /* its free callback drops the response's reference */
        stream_unref(s);
        req_unref(r);
        return NULL;
    }
    resume_unref(r);
    return s;
nomem:
    if (s != NULL) {
        s->ended = true;
        if (resp != NULL)
            MHD_destroy_response(resp); /* its free callback drops the response's reference */
        stream_unref(s);
    }
    body = nk_problem_new(500, "Internal Server Error", "out of memory", NULL);
    nk_http_respond(r, 500, "application/problem+json", body, body != NULL ? strlen(body) : 0,
                    NULL);
    return NULL;
}

bool nk_http_stream_write(struct nk_http_stream *s, const char *data, size_t len)
{
    size_t waiting = s->len - s->off, cap;
    char *nb;

    if (s->lost || s->cut || len == 0)
        return true;
    if (waiting >= NK_HTTP_STREAM_BUFFER && s->r->detached == NULL) {
        s->full = true;
        return false;
    }
    if (s->off > 0 && s->len + len > s->cap) {
        memmove(s->buf, s->buf + s->off, waiting);
        s->off = 0;
        s->len = waiting;
    }
    if (s->len + len > s->cap) {
        cap = s->cap > 0 ? s->cap : 16 * 1024;
        while (cap < s->len + len)
            cap *= 2;
        nb = realloc(s->buf, cap);
        if (nb == NULL) {
            /* The body cannot be whole: cut it (the producer hears of it from the listener,
             * never from inside this call). */
            s->cut = true;
            stream_wake(s);
            return true;
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    stream_wake(s);
    return true;
}

void nk_http_stream_end(struct nk_http_stream *s, bool ok)
{
    struct nk_http_req *r;

    if (s == NULL)
        return;
    r = s->r;
    s->ended = true;
    s->ok = ok && !s->cut;
    if (r->detached != NULL) {
        r->status = s->status;
        r->detached(r->detached_ud, s->status, s->content_type, s->buf != NULL ? s->buf : "",
                    s->len);
        stream_unref(s);
        req_unref(r); /* the handler's */
        return;
    }
    stream_wake(s); /* the reader sends what waits, then ends the body */
    stream_unref(s);
}

void nk_http_req_defer(struct nk_http_req *r)
{
    struct nk_httpd *h = r->h;

    pthread_mutex_lock(&r->mu);
    if (r->detached != NULL || r->state != RS_ADMIT || r->deferred) {
        pthread_mutex_unlock(&r->mu);
        return; /* not in the admit hook, or answered already: nothing to wait for */
    }
    r->deferred = true;
    r->state = RS_DEFERRED;
    pthread_mutex_unlock(&r->mu);
    /* The hook's reference now belongs to the verdict; the listener's stop answers it 503. */
    pending_add(h, r);
    MHD_suspend_connection(r->conn);
}

void nk_http_req_admit(struct nk_http_req *r)
{
    struct nk_httpd *h = r->h;

    pthread_mutex_lock(&r->mu);
    if (r->abandoned || r->state != RS_DEFERRED) {
        pthread_mutex_unlock(&r->mu);
        req_unref(r);
        return;
    }
    pthread_mutex_lock(&h->mu);
    pending_remove_locked(h, r);
    pthread_mutex_unlock(&h->mu);
    r->state = RS_READMIT;
    pthread_mutex_unlock(&r->mu);
    resume_unref(r);
}

struct nk_http_req *nk_http_req_detached(const char *method, const char *target,
                                         const char *const *headers, const char *body,
                                         size_t body_len, nk_http_detached_fn answer, void *ud)
{
    struct nk_http_req *r = calloc(1, sizeof(*r));
    size_t n = 0, i;

    if (r == NULL)
        return NULL;
    atomic_init(&r->refs, 1);
    pthread_mutex_init(&r->mu, NULL);
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    r->detached = answer;
    r->detached_ud = ud;
    r->state = RS_DISPATCHED;
    snprintf(r->client, sizeof(r->client), "detached");
    for (; headers != NULL && headers[n] != NULL && headers[n + 1] != NULL; n += 2)
        ;
    r->uri = strdup(target);
    r->method = strdup(method);
    r->body = malloc(body_len + 1);
    r->headers = calloc(n / 2 + 1, sizeof(*r->headers));
    if (r->uri == NULL || r->method == NULL || r->body == NULL || r->headers == NULL ||
        parse_target(r) != NK_OK)
        goto fail;
    if (body_len > 0)
        memcpy(r->body, body, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    for (i = 0; i < n; i += 2) {
        r->headers[r->n_headers].name = strdup(headers[i]);
        r->headers[r->n_headers].value = strdup(headers[i + 1]);
        r->n_headers++;
        if (r->headers[r->n_headers - 1].name == NULL || r->headers[r->n_headers - 1].value == NULL)
            goto fail;
    }
    set_request_id(r, NULL);
    return r;
fail:
    req_unref(r);
    return NULL;
}
