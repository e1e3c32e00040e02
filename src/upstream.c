/* SPDX-License-Identifier: Apache-2.0 */
/* upstream.c: the shared asynchronous HTTP client: one curl_multi loop thread per client. */
#include "naftikod/upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "naftikod/log.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 5000L
#define DEFAULT_TIMEOUT_MS 30000L
#define DEFAULT_MAX_RESPONSE ((size_t)16 * 1024 * 1024)
#define DEFAULT_MAX_HOST_CONNS 256U
/* Finished easy handles kept for reuse (their buffers survive curl_easy_reset). */
#define EASY_POOL_MAX 256U
#define MAX_EVENTS 64
#define MAX_SOURCES 16U

/* What an epoll event is about: the tag in the high half of data.u64, an id in the low half. */
#define TAG_CURL 0U   /* id: a socket curl asked us to watch */
#define TAG_WAKE 1U   /* the eventfd */
#define TAG_SOURCE 2U /* id: a slot in sources[] */

/* One transfer, from submit to callback. */
struct xfer {
    struct xfer *next;
    struct xfer *prev;
    struct nk_upstream *u;
    CURL *easy;
    struct curl_slist *hdrs;
    struct nk_upstream_request req;
    struct nk_upstream_response resp;
    size_t cap;     /* allocated size of resp.body */
    bool too_large; /* the write callback refused more data */
    nk_upstream_done_fn done;
    void *ud;
};

/* The loop is event-driven: curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and
 * when its next timeout is due (CURLMOPT_TIMERFUNCTION); an epoll set waits on those sockets and
 * an eventfd that submit and free write to. Each wakeup costs work proportional to the sockets
 * that are ready, not to the number of transfers in flight (curl_multi_perform + poll walked
 * every transfer and rebuilt the poll set on every wakeup). */
struct nk_upstream {
    CURLM *multi;
    pthread_t thread;
    bool thread_started;
    int epfd;
    int wakefd;
    pthread_mutex_t mu;
    /* under mu: */
    struct xfer *queue; /* submitted, not yet added to multi (FIFO via tail) */
    struct xfer *queue_tail;
    size_t in_flight;
    bool stop;
    bool loop_done;                 /* the loop has exited: posts are refused */
    struct nk_upstream_call *calls; /* posted, not yet run (FIFO via tail) */
    struct nk_upstream_call *calls_tail;
    pthread_cond_t sync_cv;    /* nk_upstream_run_sync waits here */
    CURL *pool[EASY_POOL_MAX]; /* reset easy handles ready for reuse */
    size_t n_pool;
    /* loop thread only: */
    struct xfer *running;   /* added to multi (doubly linked) */
    int64_t timer_deadline; /* CLOCK_MONOTONIC ms when curl wants its timeout call; -1 none */
    struct nk_upstream_source *sources[MAX_SOURCES];
    /* immutable after new: */
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_response;
    char *ca_file;
    bool insecure;
};

enum nk_rc nk_upstream_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? NK_OK : NK_ERR_INTERNAL;
}

void nk_upstream_global_cleanup(void)
{
    curl_global_cleanup();
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
    /* curl would add a form Content-Type and Expect: 100-continue of its own. */
    if (with_body && !has_header(r, "Content-Type") &&
        append_header(&x->hdrs, "Content-Type:") != NK_OK)
        goto nomem;
    if (!has_header(r, "Expect") && append_header(&x->hdrs, "Expect:") != NK_OK)
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
    cc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, u->connect_timeout_ms);
    cc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, u->timeout_ms);
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
    cc |= curl_easy_setopt(e, CURLOPT_PRIVATE, x);
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
        x->resp.rc = NK_ERR_UPSTREAM;
        snprintf(x->resp.error, sizeof(x->resp.error), "%s", why);
    } else {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->resp.status);
        curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &secs);
        x->resp.seconds = secs;
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
    if (x->resp.rc != NK_OK) {
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
    x->prev = NULL;
    x->next = u->running;
    if (u->running != NULL)
        u->running->prev = x;
    u->running = x;
}

static void running_remove(struct nk_upstream *u, struct xfer *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        u->running = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in s into the epoll set. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct nk_upstream *u = userp;
    struct epoll_event ev;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (socketp != NULL)
            (void)epoll_ctl(u->epfd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(u->multi, s, NULL);
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0U) | (what & CURL_POLL_OUT ? EPOLLOUT : 0U);
    ev.data.u64 = ((uint64_t)TAG_CURL << 32) | (uint32_t)s;
    if (socketp != NULL) {
        if (epoll_ctl(u->epfd, EPOLL_CTL_MOD, s, &ev) == 0)
            return 0;
    }
    if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, s, &ev) != 0 &&
        (errno != EEXIST || epoll_ctl(u->epfd, EPOLL_CTL_MOD, s, &ev) != 0))
        return -1; /* curl fails the transfers on this socket */
    /* Any non-NULL marker: "this socket is in the epoll set". */
    curl_multi_assign(u->multi, s, u);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: remember when curl wants curl_multi_socket_action(TIMEOUT). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct nk_upstream *u = userp;

    (void)multi;
    u->timer_deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    return 0;
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
        curl_multi_remove_handle(u->multi, x->easy);
        running_remove(u, x);
        finish(u, x, cc, NULL);
    }
}

/* The loop thread's own client, for nk_upstream_on_loop. */
static _Thread_local struct nk_upstream *tl_loop;

bool nk_upstream_on_loop(const struct nk_upstream *u)
{
    return u != NULL && tl_loop == u;
}

/* How long the loop may wait: until curl's timer, a source's timeout, or at most a second. A
 * source that is due now is marked kicked, and the wait is zero. */
static int loop_timeout(struct nk_upstream *u)
{
    int64_t wait = 1000, now;
    unsigned i;
    long t;

    if (u->timer_deadline >= 0) {
        now = now_ms();
        wait = u->timer_deadline <= now ? 0 : u->timer_deadline - now;
        if (wait > 1000)
            wait = 1000;
    }
    for (i = 0; i < MAX_SOURCES; i++) {
        struct nk_upstream_source *src = u->sources[i];

        if (src == NULL)
            continue;
        t = src->kicked ? 0 : src->timeout_ms != NULL ? src->timeout_ms(src->ud) : -1;
        if (t == 0)
            src->kicked = true;
        if (t >= 0 && t < wait)
            wait = t;
    }
    return (int)wait;
}

/* Run every kicked source (a run may kick its own or another source: those wait for the next
 * pass). */
static void run_sources(struct nk_upstream *u)
{
    struct nk_upstream_source *due[MAX_SOURCES];
    unsigned i, n = 0;

    for (i = 0; i < MAX_SOURCES; i++)
        if (u->sources[i] != NULL && u->sources[i]->kicked) {
            u->sources[i]->kicked = false;
            due[n++] = u->sources[i];
        }
    for (i = 0; i < n; i++)
        if (due[i]->attached == u) /* a run before it may have detached it */
            due[i]->run(due[i]->ud);
}

static void start_transfer(struct nk_upstream *u, struct xfer *x)
{
    /* Adding arms curl's timer at 0 ms: the transfer starts on the timeout action, in this same
     * turn of the loop. */
    if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK) {
        finish(u, x, CURLE_OK, "cannot start the transfer");
        return;
    }
    running_add(u, x);
}

/* The eventfd fired: take what other threads queued (transfers, calls, stop). */
static bool take_wakeup(struct nk_upstream *u)
{
    struct xfer *q, *x;
    struct nk_upstream_call *c, *cn;
    uint64_t junk;
    bool stop;

    if (read(u->wakefd, &junk, sizeof(junk)) < 0 && errno != EAGAIN)
        return false;
    pthread_mutex_lock(&u->mu);
    q = u->queue;
    u->queue = u->queue_tail = NULL;
    c = u->calls;
    u->calls = u->calls_tail = NULL;
    stop = u->stop;
    pthread_mutex_unlock(&u->mu);
    while (q != NULL) {
        x = q;
        q = q->next;
        if (stop)
            finish(u, x, CURLE_OK, "shutting down");
        else
            start_transfer(u, x);
    }
    for (; c != NULL; c = cn) {
        cn = c->next; /* c may be freed by its own function */
        c->fn(c->ud);
    }
    return stop;
}

static void *loop_main(void *arg)
{
    struct nk_upstream *u = arg;
    struct epoll_event evs[MAX_EVENTS];
    struct nk_upstream_call *c, *cn;
    struct xfer *x;
    int running, n, i;
    unsigned tag, id;
    bool stop = false;
    int64_t last_flush = now_ms();

    tl_loop = u;
    nk_log_batch_begin();
    for (;;) {
        int wait = loop_timeout(u);

        /* Buffered log lines never wait for an event, and wait at most 50 ms in a busy loop. */
        if (wait != 0 || now_ms() - last_flush >= 50) {
            nk_log_flush();
            last_flush = now_ms();
        }
        n = epoll_wait(u->epfd, evs, MAX_EVENTS, wait);
        if (n < 0 && errno != EINTR)
            break; /* cannot happen with a valid epoll fd; stop rather than spin */
        for (i = 0; i < n; i++) {
            int flags = 0;

            tag = (unsigned)(evs[i].data.u64 >> 32);
            id = (unsigned)(evs[i].data.u64 & 0xffffffffU);
            if (tag == TAG_WAKE) {
                stop |= take_wakeup(u);
                continue;
            }
            if (tag == TAG_SOURCE) {
                if (id < MAX_SOURCES && u->sources[id] != NULL)
                    u->sources[id]->kicked = true;
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                flags |= CURL_CSELECT_IN;
            if (evs[i].events & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
            if (evs[i].events & EPOLLERR)
                flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(u->multi, (curl_socket_t)id, flags, &running);
        }
        if (stop)
            break;
        /* Sources first (a listener reads requests and submits them), then curl (which sends
         * them at once), then the finished transfers (whose answers resume connections), then
         * the sources those answers kicked: a response goes out in the turn it arrived. */
        run_sources(u);
        if (u->timer_deadline >= 0 && u->timer_deadline <= now_ms()) {
            u->timer_deadline = -1;
            curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        reap(u);
        run_sources(u);
    }

    while ((x = u->running) != NULL) {
        curl_multi_remove_handle(u->multi, x->easy);
        running_remove(u, x);
        finish(u, x, CURLE_OK, "shutting down");
    }
    run_sources(u); /* let the listeners queue the answers those callbacks gave */
    /* From here on posts are refused; whatever was posted before still runs. */
    pthread_mutex_lock(&u->mu);
    u->loop_done = true;
    c = u->calls;
    u->calls = u->calls_tail = NULL;
    pthread_mutex_unlock(&u->mu);
    for (; c != NULL; c = cn) {
        cn = c->next;
        c->fn(c->ud);
    }
    for (i = 0; i < (int)MAX_SOURCES; i++) {
        if (u->sources[i] != NULL) {
            (void)epoll_ctl(u->epfd, EPOLL_CTL_DEL, u->sources[i]->fd, NULL);
            u->sources[i]->attached = NULL;
            u->sources[i] = NULL;
        }
    }
    nk_log_flush();
    tl_loop = NULL;
    return NULL;
}

/* Wake the loop thread (submit, post, free). */
static void wake(struct nk_upstream *u)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is already non-zero: the loop is woken anyway. */
    (void)!write(u->wakefd, &one, sizeof(one));
}

bool nk_upstream_post(struct nk_upstream *u, struct nk_upstream_call *c)
{
    bool was_empty;

    pthread_mutex_lock(&u->mu);
    if (u->loop_done) {
        pthread_mutex_unlock(&u->mu);
        return false;
    }
    c->next = NULL;
    was_empty = u->calls == NULL && u->queue == NULL;
    if (u->calls_tail != NULL)
        u->calls_tail->next = c;
    else
        u->calls = c;
    u->calls_tail = c;
    pthread_mutex_unlock(&u->mu);
    if (was_empty)
        wake(u);
    return true;
}

struct sync_call {
    struct nk_upstream_call call;
    struct nk_upstream *u;
    void (*fn)(void *ud);
    void *ud;
    bool done; /* under u->mu */
};

static void sync_trampoline(void *arg)
{
    struct sync_call *sc = arg;
    struct nk_upstream *u = sc->u;

    sc->fn(sc->ud);
    pthread_mutex_lock(&u->mu);
    sc->done = true; /* sc may be gone once the lock is released */
    pthread_cond_broadcast(&u->sync_cv);
    pthread_mutex_unlock(&u->mu);
}

bool nk_upstream_run_sync(struct nk_upstream *u, void (*fn)(void *ud), void *ud)
{
    struct sync_call sc;

    if (nk_upstream_on_loop(u)) {
        fn(ud);
        return true;
    }
    memset(&sc, 0, sizeof(sc));
    sc.call.fn = sync_trampoline;
    sc.call.ud = &sc;
    sc.u = u;
    sc.fn = fn;
    sc.ud = ud;
    if (!nk_upstream_post(u, &sc.call))
        return false;
    /* Every posted call runs, in the loop or as it exits. */
    pthread_mutex_lock(&u->mu);
    while (!sc.done)
        pthread_cond_wait(&u->sync_cv, &u->mu);
    pthread_mutex_unlock(&u->mu);
    return true;
}

struct attach_args {
    struct nk_upstream *u;
    struct nk_upstream_source *src;
    bool ok;
};

static void attach_on_loop(void *arg)
{
    struct attach_args *a = arg;
    struct epoll_event ev;
    unsigned i;

    for (i = 0; i < MAX_SOURCES && a->u->sources[i] != NULL; i++)
        ;
    if (i == MAX_SOURCES)
        return;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = ((uint64_t)TAG_SOURCE << 32) | i;
    if (epoll_ctl(a->u->epfd, EPOLL_CTL_ADD, a->src->fd, &ev) != 0)
        return;
    a->src->slot = i;
    a->src->attached = a->u;
    a->src->kicked = true; /* a first run: the source may already have work */
    a->u->sources[i] = a->src;
    a->ok = true;
}

enum nk_rc nk_upstream_attach(struct nk_upstream *u, struct nk_upstream_source *src)
{
    struct attach_args a = {u, src, false};

    if (u == NULL || src == NULL || src->run == NULL || src->fd < 0)
        return NK_ERR_INVALID;
    src->attached = NULL;
    src->kicked = false;
    if (!nk_upstream_run_sync(u, attach_on_loop, &a) || !a.ok)
        return NK_ERR_INVALID;
    return NK_OK;
}

static void detach_on_loop(void *arg)
{
    struct nk_upstream_source *src = arg;
    struct nk_upstream *u = src->attached;

    if (u == NULL)
        return;
    (void)epoll_ctl(u->epfd, EPOLL_CTL_DEL, src->fd, NULL);
    u->sources[src->slot] = NULL;
    src->attached = NULL;
    src->kicked = false;
}

void nk_upstream_detach(struct nk_upstream_source *src)
{
    if (src == NULL || src->attached == NULL)
        return;
    (void)nk_upstream_run_sync(src->attached, detach_on_loop, src);
}

void nk_upstream_kick(struct nk_upstream_source *src)
{
    src->kicked = true;
}

enum nk_rc nk_upstream_new(const struct nk_upstream_options *opts, struct nk_upstream **out,
                           struct nk_error *err)
{
    enum nk_rc rc = NK_OK;
    struct nk_upstream *u = NULL;
    bool mu_ok = false, cv_ok = false;
    unsigned max_conns;
    struct epoll_event ev;

    *out = NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        goto nomem;
    u->epfd = u->wakefd = -1;
    u->timer_deadline = -1;
    u->connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    u->timeout_ms = DEFAULT_TIMEOUT_MS;
    u->max_response = DEFAULT_MAX_RESPONSE;
    max_conns = DEFAULT_MAX_HOST_CONNS;
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
        if (opts->ca_file != NULL) {
            u->ca_file = strdup(opts->ca_file);
            if (u->ca_file == NULL)
                goto nomem;
        }
    }
    if (pthread_mutex_init(&u->mu, NULL) != 0) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot create a mutex");
        goto out;
    }
    mu_ok = true;
    if (pthread_cond_init(&u->sync_cv, NULL) != 0) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot create a condition variable");
        goto out;
    }
    cv_ok = true;
    u->epfd = epoll_create1(EPOLL_CLOEXEC);
    u->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->epfd < 0 || u->wakefd < 0) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot create the HTTP client's event loop: %s", strerror(errno));
        goto out;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t)TAG_WAKE << 32;
    if (epoll_ctl(u->epfd, EPOLL_CTL_ADD, u->wakefd, &ev) != 0) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot create the HTTP client's event loop: %s", strerror(errno));
        goto out;
    }
    u->multi = curl_multi_init();
    if (u->multi == NULL)
        goto nomem;
    /* Keep-alive and HTTP/2 multiplexing come from the multi handle's shared pool. */
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
    if (pthread_create(&u->thread, NULL, loop_main, u) != 0) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot start the HTTP client thread");
        goto out;
    }
    u->thread_started = true;
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
        if (u->epfd >= 0)
            close(u->epfd);
        if (u->wakefd >= 0)
            close(u->wakefd);
        if (cv_ok)
            pthread_cond_destroy(&u->sync_cv);
        if (mu_ok)
            pthread_mutex_destroy(&u->mu);
        free(u->ca_file);
        free(u);
    }
    return rc;
}

void nk_upstream_free(struct nk_upstream *u)
{
    if (u == NULL)
        return;
    pthread_mutex_lock(&u->mu);
    u->stop = true;
    pthread_mutex_unlock(&u->mu);
    wake(u);
    if (u->thread_started)
        pthread_join(u->thread, NULL);
    curl_multi_cleanup(u->multi);
    while (u->n_pool > 0)
        curl_easy_cleanup(u->pool[--u->n_pool]);
    close(u->epfd);
    close(u->wakefd);
    pthread_cond_destroy(&u->sync_cv);
    pthread_mutex_destroy(&u->mu);
    free(u->ca_file);
    free(u);
}

enum nk_rc nk_upstream_submit(struct nk_upstream *u, struct nk_upstream_request *req,
                              nk_upstream_done_fn done, void *ud)
{
    enum nk_rc rc = NK_OK;
    struct xfer *x = NULL;
    bool was_empty = false;

    if (u == NULL || req == NULL || done == NULL || req->method == NULL || req->url == NULL) {
        rc = NK_ERR_INVALID;
        goto out;
    }
    x = calloc(1, sizeof(*x));
    if (x == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    x->u = u;
    x->done = done;
    x->ud = ud;
    x->req = *req;
    memset(req, 0, sizeof(*req));
    rc = xfer_setup(u, x, NULL);
    if (rc != NK_OK)
        goto out;
    if (nk_upstream_on_loop(u)) {
        /* From a listener on the loop thread: start it here, no wakeup needed. */
        pthread_mutex_lock(&u->mu);
        if (!u->stop)
            u->in_flight++;
        else
            rc = NK_ERR_INVALID;
        pthread_mutex_unlock(&u->mu);
        if (rc != NK_OK)
            goto out;
        if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK) {
            pthread_mutex_lock(&u->mu);
            u->in_flight--;
            pthread_mutex_unlock(&u->mu);
            rc = NK_ERR_INTERNAL;
            goto out;
        }
        running_add(u, x);
        x = NULL;
        goto out;
    }
    pthread_mutex_lock(&u->mu);
    if (u->stop) {
        rc = NK_ERR_INVALID;
    } else {
        was_empty = u->queue == NULL && u->calls == NULL;
        if (u->queue_tail != NULL)
            u->queue_tail->next = x;
        else
            u->queue = x;
        u->queue_tail = x;
        u->in_flight++;
        x = NULL;
    }
    pthread_mutex_unlock(&u->mu);
    /* A non-empty queue has a wakeup on its way already: the loop takes the whole queue. */
    if (was_empty)
        wake(u);
out:
    /* The request is stolen even on failure. */
    if (req != NULL)
        nk_upstream_request_cleanup(req);
    xfer_free(x);
    return rc;
}

struct cancel_call {
    struct nk_upstream_call call;
    struct nk_upstream *u;
    uint64_t tag;
};

static void cancel_on_loop(void *ud)
{
    struct cancel_call *cc = ud;
    struct nk_upstream *u = cc->u;
    struct xfer *x;

    /* Rescan after each abort: the callback may have changed the running list. */
    for (x = u->running; x != NULL;) {
        if (x->req.cancel_tag != cc->tag) {
            x = x->next;
            continue;
        }
        curl_multi_remove_handle(u->multi, x->easy);
        running_remove(u, x);
        finish(u, x, CURLE_OK, "cancelled");
        x = u->running;
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
    if (nk_upstream_on_loop(u)) {
        cancel_on_loop(cc);
        return;
    }
    /* Posted calls run after the queued transfers of the same wakeup have started. */
    cc->call.fn = cancel_on_loop;
    cc->call.ud = cc;
    if (!nk_upstream_post(u, &cc->call))
        free(cc);
}

size_t nk_upstream_in_flight(struct nk_upstream *u)
{
    size_t n;

    pthread_mutex_lock(&u->mu);
    n = u->in_flight;
    pthread_mutex_unlock(&u->mu);
    return n;
}
