/* SPDX-License-Identifier: Apache-2.0 */
/* upstream.c: the shared asynchronous HTTP client: a curl multi handle driven by an event loop. */
#include "naftikod/upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "naftikod/loop.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_RESPONSE ((size_t)16 * 1024 * 1024)
#define DEFAULT_MAX_HOST_CONNS 256U
/* Finished easy handles kept for reuse (their buffers survive curl_easy_reset). */
#define EASY_POOL_MAX 256U

struct origin;

/* A waiting transfer whose total time ran out (NK_ERR_TIMEOUT). */
#define WAIT_EXPIRED "no connection to the upstream was free before the timeout"

/* One transfer, from submit to callback. */
struct xfer {
    struct xfer *next; /* running: u->running; waiting: its origin's queue */
    struct xfer *prev;
    struct nk_upstream *u;
    struct origin *origin;         /* counted there while it runs or waits */
    CURL *easy;                    /* NULL while it waits (xfer_setup makes it when it starts) */
    bool wait_expired;             /* its total time ran out while it waited */
    int64_t queued_ms;             /* nk_loop_now_ms() when it began to wait */
    long waited_ms;                /* how long it waited before it started */
    struct nk_loop_timer deadline; /* armed while it waits: its total time (timeout_ms) */
    struct curl_slist *hdrs;
    struct nk_upstream_request req;
    struct nk_upstream_response resp;
    size_t cap;     /* allocated size of resp.body */
    bool too_large; /* the write callback refused more data */
    bool streamed;  /* nk_upstream_submit_stream: the body goes to st */
    bool head_sent; /* st.on_head has run */
    bool paused;    /* st.on_data refused a piece: CURL_WRITEFUNC_PAUSE */
    struct nk_upstream_stream st;
    nk_upstream_done_fn done;
    void *ud;
    struct nk_loop_call start; /* submitted from another thread: started on the loop */
};

/* The transfers of one origin (scheme://authority, as the URL spells it, case aside) on one
 * client: at most max_conns of them are with curl at once (curl's own limit on connections per
 * host is the same number); the others wait here, oldest first, with no easy handle yet (a call
 * waiting in curl cost some 12 KiB of resident memory more, measured at 1,000 in flight). Freed
 * when nothing runs, waits or holds it. Loop owner only. */
struct origin {
    struct origin *next, *prev;
    size_t running;
    struct xfer *head, *tail; /* waiting */
    unsigned pins;            /* a function up the stack still uses it: not freed */
    size_t len;
    char key[];
};

/* A socket curl asked the loop to watch (curl_multi_assign keeps it with the socket). */
struct sock {
    struct nk_loop_watch w;
    struct nk_upstream *u;
    struct sock *prev, *next;
};

/* Event-driven: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION), and they become
 * watches on the loop; it tells us when its next timeout is due (CURLMOPT_TIMERFUNCTION), and
 * that becomes a loop timer. Each wakeup costs work proportional to the sockets that are ready,
 * not to the number of transfers in flight. */
struct nk_upstream {
    CURLM *multi;
    struct nk_loop *loop; /* borrowed; outlives the client */
    pthread_mutex_t mu;
    /* under mu: */
    size_t in_flight;
    bool closed;               /* nk_upstream_free began: submits are refused */
    CURL *pool[EASY_POOL_MAX]; /* reset easy handles ready for reuse */
    size_t n_pool;
    /* loop owner only: */
    struct xfer *running; /* added to multi (doubly linked) */
    struct origin *origins;
    size_t max_conns;      /* per origin, with curl at once */
    atomic_size_t waiting; /* transfers waiting for their origin (any thread reads it) */
    struct sock *socks;    /* watched sockets */
    struct nk_loop_timer timer;
    /* immutable after new: */
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_response;
    char *ca_file;
    bool insecure;
    bool openssl;  /* curl's TLS backend is OpenSSL (on_ssl_ctx() gets an SSL_CTX) */
    bool no_proxy; /* no proxy variable in the environment: curl need not look on every call */
    struct nk_upstream_share *share; /* borrowed, or NULL */
};

enum nk_rc nk_upstream_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? NK_OK : NK_ERR_INTERNAL;
}

void nk_upstream_global_cleanup(void)
{
    curl_global_cleanup();
}

/* What the clients of several loops share: curl's DNS cache and TLS session cache, each behind
 * a lock of its own. Not the connection cache: libcurl 7.88 documents sharing connections
 * between concurrent threads as unsupported (CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT), so each
 * loop keeps its multi handle's own pool. */
struct nk_upstream_share {
    CURLSH *sh;
    pthread_mutex_t mu[CURL_LOCK_DATA_LAST];
};

static void share_lock(CURL *e, curl_lock_data data, curl_lock_access access, void *ud)
{
    struct nk_upstream_share *s = ud;

    (void)e;
    (void)access;
    if ((unsigned)data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&s->mu[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *ud)
{
    struct nk_upstream_share *s = ud;

    (void)e;
    if ((unsigned)data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&s->mu[data]);
}

enum nk_rc nk_upstream_share_new(struct nk_upstream_share **out)
{
    struct nk_upstream_share *s = calloc(1, sizeof(*s));
    size_t i;

    *out = NULL;
    if (s == NULL)
        return NK_ERR_NOMEM;
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&s->mu[i], NULL);
    s->sh = curl_share_init();
    if (s->sh == NULL || curl_share_setopt(s->sh, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
        curl_share_setopt(s->sh, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK ||
        curl_share_setopt(s->sh, CURLSHOPT_USERDATA, s) != CURLSHE_OK ||
        curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
        nk_upstream_share_free(s);
        return NK_ERR_NOMEM;
    }
    *out = s;
    return NK_OK;
}

void nk_upstream_share_free(struct nk_upstream_share *s)
{
    size_t i;

    if (s == NULL)
        return;
    if (s->sh != NULL)
        curl_share_cleanup(s->sh);
    for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&s->mu[i]);
    free(s);
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void nk_upstream_request_cleanup(struct nk_upstream_request *r)
{
    size_t i;

    if (r == NULL)
        return;
    free(r->method);
    /* The URL may carry an apikey in its query, headers carry credentials. */
    wipe_free(r->url);
    for (i = 0; i < r->n_headers; i++)
        wipe_free(r->headers[i]);
    free(r->headers);
    if (r->body != NULL) {
        explicit_bzero(r->body, r->body_len);
        free(r->body);
    }
    memset(r, 0, sizeof(*r));
}

void nk_upstream_response_cleanup(struct nk_upstream_response *r)
{
    if (r == NULL)
        return;
    free(r->body);
    free(r->content_type);
    r->body = NULL;
    r->content_type = NULL;
    r->body_len = 0;
}

/* Take a ready easy handle from the pool, or make one. */
static CURL *easy_get(struct nk_upstream *u)
{
    CURL *e = NULL;

    pthread_mutex_lock(&u->mu);
    if (u->n_pool > 0)
        e = u->pool[--u->n_pool];
    pthread_mutex_unlock(&u->mu);
    return e != NULL ? e : curl_easy_init();
}

/* Reset e (no request data survives: options, headers and URL are forgotten) and keep it, or
 * clean it up when the pool is full. */
static void easy_put(struct nk_upstream *u, CURL *e)
{
    if (e == NULL)
        return;
    curl_easy_reset(e);
    pthread_mutex_lock(&u->mu);
    if (u->n_pool < EASY_POOL_MAX) {
        u->pool[u->n_pool++] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&u->mu);
    if (e != NULL)
        curl_easy_cleanup(e);
}

static void xfer_free(struct xfer *x)
{
    struct curl_slist *l;

    if (x == NULL)
        return;
    easy_put(x->u, x->easy);
    /* The slist holds copies of the header lines, credentials included. */
    for (l = x->hdrs; l != NULL; l = l->next)
        explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(x->hdrs);
    nk_upstream_request_cleanup(&x->req);
    nk_upstream_response_cleanup(&x->resp);
    free(x);
}

static void stream_head(struct xfer *x)
{
    long status = 0;
    char *ct = NULL;

    x->head_sent = true;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK)
        ct = NULL;
    x->st.on_head(x->ud, status, ct);
}

/* Streamed transfers: the blank line that ends a final (non-1xx) head is when the consumer
 * can answer. A Content-Length over max_response has failed the transfer before it. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t n = size * nmemb;
    long status = 0;

    if (!x->head_sent && (n == 2 || n == 1) && (data[0] == '\r' || data[0] == '\n') &&
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status >= 200)
        stream_head(x);
    return n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t n = size * nmemb, ncap;
    curl_off_t announced = -1;
    char *nb;

    if (n > x->u->max_response - x->resp.body_len) {
        x->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (x->streamed) {
        /* Nothing is kept: the piece is the consumer's, or it comes again after the pause. */
        if (!x->head_sent)
            stream_head(x);
        if (n > 0 && !x->st.on_data(x->ud, data, n)) {
            x->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        x->resp.body_len += n;
        return n;
    }
    if (x->cap == 0 &&
        curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK &&
        announced > 0 && (curl_off_t)n <= announced &&
        (uint64_t)announced <= (uint64_t)x->u->max_response) {
        /* The size is announced: one allocation of it, not a doubling series that peaks at
         * twice the body plus the copy. A lying Content-Length only costs max_response. */
        nb = malloc((size_t)announced + 1);
        if (nb == NULL)
            return 0;
        x->resp.body = nb;
        x->cap = (size_t)announced + 1;
    }
    if (x->resp.body_len + n + 1 > x->cap) {
        ncap = x->cap ? x->cap : 4096;
        while (ncap < x->resp.body_len + n + 1)
            ncap *= 2;
        nb = realloc(x->resp.body, ncap);
        if (nb == NULL)
            return 0;
        x->resp.body = nb;
        x->cap = ncap;
    }
    memcpy(x->resp.body + x->resp.body_len, data, n);
    x->resp.body_len += n;
    x->resp.body[x->resp.body_len] = '\0';
    return n;
}

/* Whether the environment names a proxy the way curl reads it (http_proxy in lower case only;
 * the others in either case). The environment of a running daemon does not change, so when there
 * is none the transfers say so (CURLOPT_PROXY "") and curl skips six getenv() calls a request. */
static bool proxy_env(void)
{
    static const char *const names[] = {"http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy",
                                        "ALL_PROXY",  "no_proxy",    "NO_PROXY",    "ftp_proxy",
                                        "FTP_PROXY",  "socks_proxy", "SOCKS_PROXY"};
    size_t i;
    const char *v;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if ((v = getenv(names[i])) != NULL && v[0] != '\0')
            return true;
    return false;
}

/* Every TLS context curl makes for an upstream connection: OpenSSL gives back a connection's
 * read and write buffers (about 34 KiB) while it is idle, which is most of the time for a
 * connection waiting on a slow upstream or parked in the pool. */
static CURLcode on_ssl_ctx(CURL *e, void *ctx, void *ud)
{
    (void)e;
    (void)ud;
    SSL_CTX_set_mode((SSL_CTX *)ctx, SSL_MODE_RELEASE_BUFFERS);
    return CURLE_OK;
}

static bool has_header(const struct nk_upstream_request *r, const char *name)
{
    size_t i, n = strlen(name);

    for (i = 0; i < r->n_headers; i++)
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return true;
    return false;
}

static enum nk_rc append_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *tmp = curl_slist_append(*list, line);

    if (tmp == NULL)
        return NK_ERR_NOMEM;
    *list = tmp;
    return NK_OK;
}

/* Configure x->easy from x->req. Any failure here is out of memory or a bad option. */
static enum nk_rc xfer_setup(struct nk_upstream *u, struct xfer *x, struct nk_error *err)
{
    struct nk_upstream_request *r = &x->req;
    bool with_body;
    CURLcode cc = CURLE_OK;
    CURL *e;
    size_t i;

    x->easy = e = easy_get(u);
    if (e == NULL) {
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    for (i = 0; i < r->n_headers; i++)
        if (append_header(&x->hdrs, r->headers[i]) != NK_OK)
            goto nomem;
    /* Methods that usually carry a body send Content-Length: 0 rather than nothing. */
    with_body = r->body != NULL || strcmp(r->method, "POST") == 0 ||
                strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0;
    /* curl would add a form Content-Type and Expect: 100-continue of its own (only to a
     * request with a body: curl adds neither to one without, so nothing is removed there). */
    if (with_body && !has_header(r, "Content-Type") &&
        append_header(&x->hdrs, "Content-Type:") != NK_OK)
        goto nomem;
    if (with_body && !has_header(r, "Expect") && append_header(&x->hdrs, "Expect:") != NK_OK)
        goto nomem;

    cc |= curl_easy_setopt(e, CURLOPT_URL, r->url);
    if (strcmp(r->method, "GET") == 0 && !with_body) {
        cc |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "HEAD") == 0) {
        cc |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        if (with_body) {
            cc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                                   (curl_off_t)(r->body != NULL ? r->body_len : 0));
            cc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body != NULL ? r->body : "");
        }
        if (strcmp(r->method, "POST") != 0)
            cc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    cc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    cc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (u->share != NULL)
        cc |= curl_easy_setopt(e, CURLOPT_SHARE, u->share->sh);
    cc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, u->connect_timeout_ms);
    /* What is left of its total time after its wait (all of it when it did not wait). */
    cc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                           u->timeout_ms > x->waited_ms ? u->timeout_ms - x->waited_ms : 1L);
    cc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    cc |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    cc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    cc |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Over TLS, ALPN tells at handshake time whether a connection multiplexes, so waiting
     * for it is cheap. Over plain http curl learns the version only from the first response,
     * and PIPEWAIT would queue every new request behind a slow one. */
    if (strncasecmp(r->url, "https:", 6) == 0)
        cc |= curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    cc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* The path was percent-encoded on purpose; curl must not squash dot segments. */
    cc |= curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    cc |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)u->max_response);
    cc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    cc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    if (x->streamed) {
        cc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
        cc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
        /* a proxy's CONNECT answer is no head of the upstream's */
        cc |= curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    }
    cc |= curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    if (u->no_proxy)
        cc |= curl_easy_setopt(e, CURLOPT_PROXY, "");
    if (u->openssl && strncasecmp(r->url, "https:", 6) == 0)
        cc |= curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
    if (u->ca_file != NULL)
        cc |= curl_easy_setopt(e, CURLOPT_CAINFO, u->ca_file);
    if (u->insecure) {
        cc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        cc |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (cc != CURLE_OK) {
        nk_error_set(err, "cannot configure the upstream request");
        return NK_ERR_INTERNAL;
    }
    return NK_OK;
nomem:
    nk_error_set(err, "out of memory");
    return NK_ERR_NOMEM;
}

/* Translate a finished transfer's curl result into the response's rc and message. */
static void classify(struct xfer *x, CURLcode cc)
{
    struct nk_upstream_response *r = &x->resp;
    long os_errno = 0;
    const char *msg = NULL;

    curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
    r->rc = NK_ERR_UPSTREAM;
    switch (cc) {
    case CURLE_OK:
        r->rc = NK_OK;
        return;
    case CURLE_OPERATION_TIMEDOUT:
        r->rc = NK_ERR_TIMEOUT;
        msg = r->status == 0 ? "no answer before the timeout"
                             : "response not complete before the "
                               "timeout";
        break;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (x->too_large || cc == CURLE_FILESIZE_EXCEEDED) {
            r->rc = NK_ERR_TOO_LARGE;
            snprintf(r->error, sizeof(r->error), "response larger than %zu bytes",
                     x->u->max_response);
            return;
        }
        r->rc = NK_ERR_NOMEM;
        msg = "out of memory while reading the response";
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        msg = "could not resolve host";
        break;
    case CURLE_COULDNT_CONNECT:
        if (os_errno == ECONNREFUSED)
            msg = "connection refused";
        else if (os_errno == ENETUNREACH || os_errno == EHOSTUNREACH)
            msg = "host unreachable";
        else
            msg = "could not connect";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        msg = "TLS certificate verification failed";
        break;
    case CURLE_SSL_CACERT_BADFILE:
        msg = "cannot read the CA file";
        break;
    case CURLE_SSL_CONNECT_ERROR:
        msg = "TLS handshake failed";
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        msg = os_errno == ECONNRESET ? "connection reset by peer" : "connection error";
        break;
    case CURLE_GOT_NOTHING:
        msg = "empty reply from server";
        break;
    case CURLE_PARTIAL_FILE:
        msg = "connection closed before the response was complete";
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        msg = "unsupported URL scheme (only http and https)";
        break;
    case CURLE_URL_MALFORMAT:
        msg = "malformed URL";
        break;
    case CURLE_OUT_OF_MEMORY:
        r->rc = NK_ERR_NOMEM;
        msg = "out of memory";
        break;
    default:
        /* curl_easy_strerror is a fixed string per code: it never echoes request data. */
        msg = curl_easy_strerror(cc);
        break;
    }
    snprintf(r->error, sizeof(r->error), "%s", msg);
}

/* Fill the response from a finished (or aborted) transfer and hand it to the callback. */
static void finish(struct nk_upstream *u, struct xfer *x, CURLcode cc, const char *why)
{
    char *ct = NULL;
    double secs = 0;

    if (why != NULL) {
        x->resp.rc = x->wait_expired ? NK_ERR_TIMEOUT : NK_ERR_UPSTREAM;
        snprintf(x->resp.error, sizeof(x->resp.error), "%s", why);
    } else {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->resp.status);
        curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &secs);
        x->resp.seconds = secs + (double)x->waited_ms / 1000.0;
        classify(x, cc);
        if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct != NULL &&
            x->resp.rc == NK_OK) {
            x->resp.content_type = strdup(ct);
            if (x->resp.content_type == NULL) {
                x->resp.rc = NK_ERR_NOMEM;
                snprintf(x->resp.error, sizeof(x->resp.error), "out of memory");
            }
        }
    }
    if (x->streamed) {
        /* An answer without a body still has a head; a failure has none to give. */
        if (x->resp.rc == NK_OK && !x->head_sent)
            stream_head(x);
    } else if (x->resp.rc != NK_OK) {
        /* A partial body is of no use to anyone; on success it is always present. */
        free(x->resp.body);
        x->resp.body = NULL;
        x->resp.body_len = 0;
    } else if (x->resp.body == NULL) {
        x->resp.body = calloc(1, 1);
        if (x->resp.body == NULL) {
            x->resp.rc = NK_ERR_NOMEM;
            snprintf(x->resp.error, sizeof(x->resp.error), "out of memory");
        }
    }
    x->done(x->ud, &x->resp);
    xfer_free(x);
    /* Counted down only after the callback, so a drain that waits for zero also waits for
     * every callback to have run. */
    pthread_mutex_lock(&u->mu);
    u->in_flight--;
    pthread_mutex_unlock(&u->mu);
}

static void running_add(struct nk_upstream *u, struct xfer *x)
{
    x->origin->running++;
    x->prev = NULL;
    x->next = u->running;
    if (u->running != NULL)
        u->running->prev = x;
    u->running = x;
}

static void running_remove(struct nk_upstream *u, struct xfer *x)
{
    x->origin->running--;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        u->running = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
}

/* The origin of url: its scheme (*scheme_len bytes from url) and its host and port (*host_len
 * bytes from the return value), without any user:password@ (never kept here). */
static const char *origin_parts(const char *url, size_t *scheme_len, size_t *host_len)
{
    const char *p = strstr(url, "://"), *at;
    size_t n;

    if (p == NULL) {
        *scheme_len = 0;
        *host_len = strcspn(url, "/?#");
        return url;
    }
    *scheme_len = (size_t)(p - url);
    p += 3;
    n = strcspn(p, "/?#");
    for (at = p + n; at > p && at[-1] != '@'; at--)
        ;
    if (at > p) {
        n -= (size_t)(at - p);
        p = at;
    }
    *host_len = n;
    return p;
}

/* Find url's origin, or make it. NULL when out of memory. */
static struct origin *origin_get(struct nk_upstream *u, const char *url)
{
    size_t sl, hl;
    const char *host = origin_parts(url, &sl, &hl);
    struct origin *o;

    for (o = u->origins; o != NULL; o = o->next)
        if (o->len == sl + 3 + hl && strncasecmp(o->key, url, sl) == 0 &&
            strncasecmp(o->key + sl + 3, host, hl) == 0)
            return o;
    o = calloc(1, sizeof(*o) + sl + 3 + hl + 1);
    if (o == NULL)
        return NULL;
    memcpy(o->key, url, sl);
    memcpy(o->key + sl, "://", 3);
    memcpy(o->key + sl + 3, host, hl);
    o->len = sl + 3 + hl;
    o->next = u->origins;
    if (u->origins != NULL)
        u->origins->prev = o;
    u->origins = o;
    return o;
}

/* Free o when nothing runs, waits or holds it. */
static void origin_put(struct nk_upstream *u, struct origin *o)
{
    if (o == NULL || o->running > 0 || o->head != NULL || o->pins > 0)
        return;
    if (o->prev != NULL)
        o->prev->next = o->next;
    else
        u->origins = o->next;
    if (o->next != NULL)
        o->next->prev = o->prev;
    free(o);
}

static void wait_unlink(struct nk_upstream *u, struct xfer *x)
{
    struct origin *o = x->origin;

    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        o->head = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    else
        o->tail = x->prev;
    x->next = x->prev = NULL;
    nk_loop_timer_cancel(&x->deadline);
    atomic_fetch_sub(&u->waiting, 1);
}

/* Set x up and hand it to curl. */
static enum nk_rc launch(struct nk_upstream *u, struct xfer *x)
{
    enum nk_rc rc = xfer_setup(u, x, NULL);

    if (rc != NK_OK)
        return rc;
    if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK)
        return NK_ERR_INTERNAL;
    running_add(u, x);
    return NK_OK;
}

/* End x, which waits, with why: out of its origin's queue, then its callback; the origin lives
 * through the callback and is freed after it when idle. */
static void end_waiting(struct nk_upstream *u, struct xfer *x, const char *why)
{
    struct origin *o = x->origin;

    wait_unlink(u, x);
    o->pins++;
    finish(u, x, CURLE_OK, why);
    o->pins--;
    origin_put(u, o);
}

/* A waiting transfer's total time ran out before a connection of its origin was free. */
static void wait_due(void *ud)
{
    struct xfer *x = ud;

    x->wait_expired = true;
    end_waiting(x->u, x, WAIT_EXPIRED);
}

/* On the loop: start x (its origin set) now when its origin has room and nothing waits before
 * it, or queue it. NK_OK; on failure x is neither running nor queued. */
static enum nk_rc admit(struct nk_upstream *u, struct xfer *x)
{
    struct origin *o = x->origin;

    if (o->running < u->max_conns && o->head == NULL)
        return launch(u, x);
    x->deadline.fn = wait_due;
    x->deadline.ud = x;
    if (nk_loop_timer_arm(u->loop, &x->deadline, u->timeout_ms) != NK_OK)
        return NK_ERR_NOMEM;
    x->queued_ms = nk_loop_now_ms();
    x->next = NULL;
    x->prev = o->tail;
    if (o->tail != NULL)
        o->tail->next = x;
    else
        o->head = x;
    o->tail = x;
    atomic_fetch_add(&u->waiting, 1);
    return NK_OK;
}

/* Start o's waiting transfers while it has room; free it when it is idle. */
static void pump(struct nk_upstream *u, struct origin *o)
{
    struct xfer *x;
    int64_t waited;

    o->pins++;
    while (o->head != NULL && o->running < u->max_conns) {
        x = o->head;
        waited = nk_loop_now_ms() - x->queued_ms;
        x->waited_ms = waited > 0 ? (long)waited : 1L;
        if (x->waited_ms >= u->timeout_ms) {
            /* its deadline is due in this same turn: it ends as its timer would end it */
            x->wait_expired = true;
            end_waiting(u, x, WAIT_EXPIRED);
            continue;
        }
        wait_unlink(u, x);
        if (launch(u, x) != NK_OK)
            finish(u, x, CURLE_OK, "cannot start the transfer");
    }
    o->pins--;
    origin_put(u, o);
}

/* x is out of curl (done or aborted): its callback, then the next waiting one of its origin. */
static void retire(struct nk_upstream *u, struct xfer *x, CURLcode cc, const char *why)
{
    struct origin *o = x->origin;

    curl_multi_remove_handle(u->multi, x->easy);
    running_remove(u, x);
    o->pins++;
    finish(u, x, cc, why);
    o->pins--;
    pump(u, o);
}

/* Hand every finished transfer to its callback. */
static void reap(struct nk_upstream *u)
{
    struct xfer *x;
    CURLMsg *msg;
    CURLcode cc;
    char *priv;
    int left;

    while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        priv = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        x = (struct xfer *)(void *)priv;
        /* msg is invalid once the handle is removed: read the result first. */
        cc = msg->data.result;
        retire(u, x, cc, NULL);
    }
}

/* A watched socket is ready: tell curl, then hand over what finished. */
static void on_sock_ready(void *ud, unsigned events)
{
    struct sock *k = ud;
    struct nk_upstream *u = k->u;
    int flags = 0, running;

    if (events & (NK_LOOP_READ | NK_LOOP_ERROR))
        flags |= CURL_CSELECT_IN;
    if (events & NK_LOOP_WRITE)
        flags |= CURL_CSELECT_OUT;
    if (events & NK_LOOP_ERROR)
        flags |= CURL_CSELECT_ERR;
    /* k may be freed inside (CURL_POLL_REMOVE): u was read first. */
    curl_multi_socket_action(u->multi, (curl_socket_t)k->w.fd, flags, &running);
    reap(u);
}

static void sock_free(struct nk_upstream *u, struct sock *k)
{
    nk_loop_watch_del(&k->w);
    if (k->prev != NULL)
        k->prev->next = k->next;
    else
        u->socks = k->next;
    if (k->next != NULL)
        k->next->prev = k->prev;
    free(k);
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in s into a loop watch. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct nk_upstream *u = userp;
    struct sock *k = socketp;
    unsigned events;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (k != NULL)
            sock_free(u, k);
        curl_multi_assign(u->multi, s, NULL);
        return 0;
    }
    if (k == NULL) {
        k = calloc(1, sizeof(*k));
        if (k == NULL)
            return -1; /* curl fails the transfers on this socket */
        k->u = u;
        k->w.fd = s;
        k->w.ready = on_sock_ready;
        k->w.ud = k;
        k->next = u->socks;
        if (u->socks != NULL)
            u->socks->prev = k;
        u->socks = k;
        curl_multi_assign(u->multi, s, k);
    }
    events =
        (what & CURL_POLL_IN ? NK_LOOP_READ : 0U) | (what & CURL_POLL_OUT ? NK_LOOP_WRITE : 0U);
    if (nk_loop_watch_add(u->loop, &k->w, events) != NK_OK) {
        sock_free(u, k);
        curl_multi_assign(u->multi, s, NULL);
        return -1;
    }
    return 0;
}

/* The loop timer that stands for curl's timeout. */
static void on_timer_due(void *ud)
{
    struct nk_upstream *u = ud;
    int running;

    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    reap(u);
}

/* CURLMOPT_TIMERFUNCTION: (re-)arm or cancel the loop timer. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct nk_upstream *u = userp;

    (void)multi;
    if (timeout_ms < 0) {
        nk_loop_timer_cancel(&u->timer);
        return 0;
    }
    return nk_loop_timer_arm(u->loop, &u->timer, timeout_ms) == NK_OK ? 0 : -1;
}

/* On the loop: start a transfer, or queue it behind its origin's (submit). Adding to the multi
 * handle arms curl's timer at 0 ms: the transfer starts in phase 5 of this same turn. NK_OK;
 * on failure x is neither running nor queued (nor counted by an origin). */
static enum nk_rc start_on_loop(struct nk_upstream *u, struct xfer *x)
{
    enum nk_rc rc;

    x->origin = origin_get(u, x->req.url);
    if (x->origin == NULL)
        return NK_ERR_NOMEM;
    rc = admit(u, x);
    if (rc != NK_OK) {
        origin_put(u, x->origin);
        x->origin = NULL;
    }
    return rc;
}

/* Posted by a submit from another thread. */
static void start_transfer(void *ud)
{
    struct xfer *x = ud;

    if (start_on_loop(x->u, x) != NK_OK)
        finish(x->u, x, CURLE_OK, "cannot start the transfer");
}

enum nk_rc nk_upstream_new(struct nk_loop *loop, const struct nk_upstream_options *opts,
                           struct nk_upstream **out, struct nk_error *err)
{
    enum nk_rc rc = NK_OK;
    struct nk_upstream *u = NULL;
    bool mu_ok = false;
    unsigned max_conns;
    const curl_version_info_data *vi;

    *out = NULL;
    if (loop == NULL) {
        nk_error_set(err, "the HTTP client needs an event loop");
        return NK_ERR_INVALID;
    }
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        goto nomem;
    u->loop = loop;
    u->timer.fn = on_timer_due;
    u->timer.ud = u;
    u->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    u->timeout_ms = DEFAULT_TIMEOUT_MS;
    u->max_response = DEFAULT_MAX_RESPONSE;
    max_conns = DEFAULT_MAX_HOST_CONNS;
    atomic_init(&u->waiting, 0);
    if (opts != NULL) {
        if (opts->connect_timeout_ms > 0)
            u->connect_timeout_ms = opts->connect_timeout_ms;
        if (opts->timeout_ms > 0)
            u->timeout_ms = opts->timeout_ms;
        if (opts->max_response > 0)
            u->max_response = opts->max_response;
        if (opts->max_host_conns > 0)
            max_conns = opts->max_host_conns;
        u->insecure = opts->insecure;
        u->share = opts->share;
        if (opts->ca_file != NULL) {
            u->ca_file = strdup(opts->ca_file);
            if (u->ca_file == NULL)
                goto nomem;
        }
    }
    u->no_proxy = !proxy_env();
    vi = curl_version_info(CURLVERSION_NOW);
    u->openssl = vi->ssl_version != NULL && strncmp(vi->ssl_version, "OpenSSL/", 8) == 0;
    if (pthread_mutex_init(&u->mu, NULL) != 0) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot create a mutex");
        goto out;
    }
    mu_ok = true;
    u->multi = curl_multi_init();
    if (u->multi == NULL)
        goto nomem;
    /* Keep-alive and HTTP/2 multiplexing come from the multi handle's shared pool. */
    u->max_conns = max_conns;
    if (curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_conns) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, (long)max_conns) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
        curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u) != CURLM_OK) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot configure the HTTP client");
        goto out;
    }
    *out = u;
    u = NULL;
    goto out;
nomem:
    rc = NK_ERR_NOMEM;
    nk_error_set(err, "out of memory");
out:
    if (u != NULL) {
        if (u->multi != NULL)
            curl_multi_cleanup(u->multi);
        if (mu_ok)
            pthread_mutex_destroy(&u->mu);
        free(u->ca_file);
        free(u);
    }
    return rc;
}

/* On the loop (or by its owner once it stopped): complete what runs, let go of the loop. */
static void shutdown_on_loop(void *ud)
{
    struct nk_upstream *u = ud;
    struct origin *o;
    struct xfer *x;

    /* The waiting first, so that no running one's end starts them (submits are refused by
     * now). Each callback may change the lists: look again from the start after each. */
    for (;;) {
        for (o = u->origins; o != NULL && o->head == NULL; o = o->next)
            ;
        if (o == NULL)
            break;
        end_waiting(u, o->head, "shutting down");
    }
    while ((x = u->running) != NULL)
        retire(u, x, CURLE_OK, "shutting down");
    curl_multi_cleanup(u->multi); /* closes the pooled connections */
    u->multi = NULL;
    nk_loop_timer_cancel(&u->timer);
    while (u->socks != NULL)
        sock_free(u, u->socks);
}

void nk_upstream_free(struct nk_upstream *u)
{
    if (u == NULL)
        return;
    pthread_mutex_lock(&u->mu);
    u->closed = true;
    pthread_mutex_unlock(&u->mu);
    /* Transfers posted before this still start first (posted calls run in order), then end. */
    if (!nk_loop_run_sync(u->loop, shutdown_on_loop, u))
        shutdown_on_loop(u);
    while (u->n_pool > 0)
        curl_easy_cleanup(u->pool[--u->n_pool]);
    pthread_mutex_destroy(&u->mu);
    free(u->ca_file);
    free(u);
}

static enum nk_rc submit(struct nk_upstream *u, struct nk_upstream_request *req,
                         const struct nk_upstream_stream *st, nk_upstream_done_fn done, void *ud)
{
    enum nk_rc rc = NK_OK;
    struct xfer *x = NULL;

    if (u == NULL || req == NULL || done == NULL || req->method == NULL || req->url == NULL ||
        (st != NULL && (st->on_head == NULL || st->on_data == NULL || !nk_loop_on_loop(u->loop)))) {
        rc = NK_ERR_INVALID;
        goto out;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    x->u = u;
    if (st != NULL) {
        x->streamed = true;
        x->st = *st;
    }
    x->done = done;
    x->ud = ud;
    x->req = *req;
    memset(req, 0, sizeof(*req));
    pthread_mutex_lock(&u->mu);
    if (!u->closed)
        u->in_flight++;
    else
        rc = NK_ERR_INVALID;
    pthread_mutex_unlock(&u->mu);
    if (rc != NK_OK)
        goto out;
    if (nk_loop_on_loop(u->loop)) {
        /* From a listener on the loop thread: start it here, no wakeup needed. */
        rc = start_on_loop(u, x);
        if (rc == NK_OK)
            x = NULL;
    } else {
        x->start.fn = start_transfer;
        x->start.ud = x;
        if (nk_loop_post(u->loop, &x->start))
            x = NULL;
        else
            rc = NK_ERR_INVALID; /* the loop has stopped */
    }
    if (rc != NK_OK) {
        pthread_mutex_lock(&u->mu);
        u->in_flight--;
        pthread_mutex_unlock(&u->mu);
    }
out:
    /* The request is stolen even on failure. */
    if (req != NULL)
        nk_upstream_request_cleanup(req);
    xfer_free(x);
    return rc;
}

enum nk_rc nk_upstream_submit(struct nk_upstream *u, struct nk_upstream_request *req,
                              nk_upstream_done_fn done, void *ud)
{
    return submit(u, req, NULL, done, ud);
}

enum nk_rc nk_upstream_submit_stream(struct nk_upstream *u, struct nk_upstream_request *req,
                                     const struct nk_upstream_stream *st, nk_upstream_done_fn done,
                                     void *ud)
{
    return submit(u, req, st, done, ud);
}

void nk_upstream_unpause(struct nk_upstream *u, uint64_t tag)
{
    struct xfer *x;

    if (u == NULL || tag == 0)
        return;
    for (x = u->running; x != NULL; x = x->next)
        if (x->paused && x->req.cancel_tag == tag)
            break;
    if (x == NULL)
        return;
    x->paused = false;
    /* curl hands the held piece over again inside this call (on_data may pause once more) and
     * arms its timer to carry on reading the socket. */
    (void)curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

struct cancel_call {
    struct nk_loop_call call;
    struct nk_upstream *u;
    uint64_t tag;
};

static void cancel_on_loop(void *ud)
{
    struct cancel_call *cc = ud;
    struct nk_upstream *u = cc->u;
    struct origin *o;
    struct xfer *x;

    /* Rescan after each abort: the callback may have changed the lists. */
    for (x = u->running; x != NULL;) {
        if (x->req.cancel_tag != cc->tag) {
            x = x->next;
            continue;
        }
        retire(u, x, CURLE_OK, "cancelled");
        x = u->running;
    }
    for (o = u->origins; o != NULL;) {
        for (x = o->head; x != NULL && x->req.cancel_tag != cc->tag; x = x->next)
            ;
        if (x == NULL) {
            o = o->next;
            continue;
        }
        end_waiting(u, x, "cancelled");
        o = u->origins;
    }
    free(cc);
}

void nk_upstream_cancel(struct nk_upstream *u, uint64_t tag)
{
    struct cancel_call *cc;

    if (u == NULL || tag == 0)
        return;
    cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        return;
    cc->u = u;
    cc->tag = tag;
    if (nk_loop_on_loop(u->loop)) {
        cancel_on_loop(cc);
        return;
    }
    /* Posted calls run in order: a transfer submitted before this has started by then. */
    cc->call.fn = cancel_on_loop;
    cc->call.ud = cc;
    if (!nk_loop_post(u->loop, &cc->call))
        free(cc);
}

size_t nk_upstream_waiting(struct nk_upstream *u)
{
    return atomic_load(&u->waiting);
}

size_t nk_upstream_in_flight(struct nk_upstream *u)
{
    size_t n;

    pthread_mutex_lock(&u->mu);
    n = u->in_flight;
    pthread_mutex_unlock(&u->mu);
    return n;
}

struct nk_loop *nk_upstream_loop(const struct nk_upstream *u)
{
    return u->loop;
}

long nk_upstream_timeout_ms(const struct nk_upstream *u)
{
    return u->timeout_ms;
}
