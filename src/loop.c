/* SPDX-License-Identifier: Apache-2.0 */
/* loop.c: the event loop (epoll, eventfd, posted calls, a timer heap, watches, sources). */
#include "naftikod/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "naftikod/log.h"

#define MAX_EVENTS 64
#define MAX_WAIT_MS 1000
#define FLUSH_EVERY_MS 50

struct nk_loop {
    int epfd;
    int wakefd;
    struct nk_loop_watch wake; /* the eventfd's watch */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t sync_cv; /* nk_loop_run_sync waits here */
    /* under mu: */
    struct nk_loop_call *calls; /* posted, not yet run (FIFO via tail) */
    struct nk_loop_call *calls_tail;
    bool running; /* started and not told to stop: posts are taken */
    bool started;
    bool stop;
    bool joined; /* the thread has exited and been joined */
    /* owner only: */
    struct epoll_event evs[MAX_EVENTS]; /* the batch of phase 2 */
    int ev_next;                        /* the batch's next event */
    int ev_count;
    bool posted; /* the eventfd fired this turn */
    struct nk_loop_timer **heap;
    size_t n_heap, cap_heap;
    struct nk_loop_source **sources;
    struct nk_loop_source **due; /* phase 4/6 scratch, as large as sources */
    size_t n_sources, cap_sources;
    atomic_uint_fast64_t turns; /* nk_loop_turns() */
};

/* The loop this thread runs, for nk_loop_on_loop. */
static _Thread_local struct nk_loop *tl_loop;

int64_t nk_loop_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t nk_loop_turns(struct nk_loop *l)
{
    return (uint64_t)atomic_load(&l->turns);
}

bool nk_loop_on_loop(const struct nk_loop *l)
{
    return l != NULL && tl_loop == l;
}

bool nk_loop_owned(struct nk_loop *l)
{
    bool running;

    if (nk_loop_on_loop(l))
        return true;
    pthread_mutex_lock(&l->mu);
    running = l->started && !l->joined;
    pthread_mutex_unlock(&l->mu);
    return !running;
}

/* ---- watches ---- */

static uint32_t epoll_events(unsigned events)
{
    return (events & NK_LOOP_READ ? (uint32_t)EPOLLIN : 0U) |
           (events & NK_LOOP_WRITE ? (uint32_t)EPOLLOUT : 0U);
}

enum nk_rc nk_loop_watch_add(struct nk_loop *l, struct nk_loop_watch *w, unsigned events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = epoll_events(events);
    ev.data.ptr = w;
    if (w->loop == l && epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) == 0)
        return NK_OK;
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) != 0 &&
        (errno != EEXIST || epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) != 0))
        return NK_ERR_IO;
    w->loop = l;
    return NK_OK;
}

void nk_loop_watch_del(struct nk_loop_watch *w)
{
    struct nk_loop *l = w->loop;
    int i;

    if (l == NULL)
        return;
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL); /* EBADF once closed: gone anyway */
    /* An event of the current batch may still name w: w may be freed after this returns. */
    for (i = l->ev_next; i < l->ev_count; i++)
        if (l->evs[i].data.ptr == w)
            l->evs[i].data.ptr = NULL;
    w->loop = NULL;
}

/* ---- timers: a binary min-heap on due_ms ---- */

static void heap_set(struct nk_loop *l, size_t i, struct nk_loop_timer *t)
{
    l->heap[i] = t;
    t->slot = i;
}

static void heap_up(struct nk_loop *l, size_t i)
{
    struct nk_loop_timer *t = l->heap[i];

    while (i > 0 && l->heap[(i - 1) / 2]->due_ms > t->due_ms) {
        heap_set(l, i, l->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(l, i, t);
}

static void heap_down(struct nk_loop *l, size_t i)
{
    struct nk_loop_timer *t = l->heap[i];
    size_t c;

    for (;;) {
        c = 2 * i + 1;
        if (c >= l->n_heap)
            break;
        if (c + 1 < l->n_heap && l->heap[c + 1]->due_ms < l->heap[c]->due_ms)
            c++;
        if (l->heap[c]->due_ms >= t->due_ms)
            break;
        heap_set(l, i, l->heap[c]);
        i = c;
    }
    heap_set(l, i, t);
}

void nk_loop_timer_cancel(struct nk_loop_timer *t)
{
    struct nk_loop *l = t->loop;
    struct nk_loop_timer *last;
    size_t i = t->slot;

    if (l == NULL)
        return;
    t->loop = NULL;
    last = l->heap[--l->n_heap];
    if (i == l->n_heap)
        return;
    heap_set(l, i, last);
    heap_up(l, i);
    heap_down(l, last->slot);
}

enum nk_rc nk_loop_timer_arm(struct nk_loop *l, struct nk_loop_timer *t, long ms)
{
    struct nk_loop_timer **nh;
    size_t ncap;

    nk_loop_timer_cancel(t);
    if (l->n_heap == l->cap_heap) {
        ncap = l->cap_heap != 0 ? l->cap_heap * 2 : 64;
        nh = realloc(l->heap, ncap * sizeof(*nh));
        if (nh == NULL)
            return NK_ERR_NOMEM;
        l->heap = nh;
        l->cap_heap = ncap;
    }
    t->due_ms = nk_loop_now_ms() + (ms > 0 ? ms : 0);
    t->loop = l;
    heap_set(l, l->n_heap++, t);
    heap_up(l, t->slot);
    return NK_OK;
}

/* Phase 5: fire the timers due by now (one re-armed by its own fn for 0 ms waits a turn). */
static void run_timers(struct nk_loop *l)
{
    int64_t now = nk_loop_now_ms();
    struct nk_loop_timer *t;
    size_t n = l->n_heap;

    /* At most as many as were armed when the phase began: a timer that keeps re-arming itself
     * for 0 ms cannot hold the loop in this phase. */
    while (n-- > 0 && l->n_heap > 0 && l->heap[0]->due_ms <= now) {
        t = l->heap[0];
        nk_loop_timer_cancel(t);
        t->fn(t->ud);
    }
}

/* ---- posted calls ---- */

static void wake(struct nk_loop *l)
{
    uint64_t one = 1;

    /* EAGAIN means the counter is already non-zero: the loop is woken anyway. */
    (void)!write(l->wakefd, &one, sizeof(one));
}

bool nk_loop_post(struct nk_loop *l, struct nk_loop_call *c)
{
    bool was_empty;

    pthread_mutex_lock(&l->mu);
    if (!l->running) {
        pthread_mutex_unlock(&l->mu);
        return false;
    }
    c->next = NULL;
    was_empty = l->calls == NULL;
    if (l->calls_tail != NULL)
        l->calls_tail->next = c;
    else
        l->calls = c;
    l->calls_tail = c;
    pthread_mutex_unlock(&l->mu);
    /* A non-empty queue has a wake-up on its way already. */
    if (was_empty)
        wake(l);
    return true;
}

struct sync_call {
    struct nk_loop_call call;
    struct nk_loop *l;
    void (*fn)(void *ud);
    void *ud;
    bool done; /* under l->mu */
};

static void sync_trampoline(void *arg)
{
    struct sync_call *sc = arg;
    struct nk_loop *l = sc->l;

    sc->fn(sc->ud);
    pthread_mutex_lock(&l->mu);
    sc->done = true; /* sc may be gone once the lock is released */
    pthread_cond_broadcast(&l->sync_cv);
    pthread_mutex_unlock(&l->mu);
}

bool nk_loop_run_sync(struct nk_loop *l, void (*fn)(void *ud), void *ud)
{
    struct sync_call sc;

    if (nk_loop_on_loop(l)) {
        fn(ud);
        return true;
    }
    memset(&sc, 0, sizeof(sc));
    sc.call.fn = sync_trampoline;
    sc.call.ud = &sc;
    sc.l = l;
    sc.fn = fn;
    sc.ud = ud;
    if (!nk_loop_post(l, &sc.call))
        return false;
    /* Every posted call runs, in a turn or as the loop exits. */
    pthread_mutex_lock(&l->mu);
    while (!sc.done)
        pthread_cond_wait(&l->sync_cv, &l->mu);
    pthread_mutex_unlock(&l->mu);
    return true;
}

/* Phase 3: run what was posted before this point. */
static void run_calls(struct nk_loop *l)
{
    struct nk_loop_call *c, *cn;

    pthread_mutex_lock(&l->mu);
    c = l->calls;
    l->calls = l->calls_tail = NULL;
    pthread_mutex_unlock(&l->mu);
    for (; c != NULL; c = cn) {
        cn = c->next; /* c may be freed by its own function */
        c->fn(c->ud);
    }
}

static void on_wake(void *ud, unsigned events)
{
    struct nk_loop *l = ud;
    uint64_t junk;

    (void)events;
    (void)!read(l->wakefd, &junk, sizeof(junk));
    l->posted = true;
}

/* ---- sources ---- */

static void on_source(void *ud, unsigned events)
{
    struct nk_loop_source *src = ud;

    (void)events;
    src->kicked = true;
}

void nk_loop_kick(struct nk_loop_source *src)
{
    src->kicked = true;
}

struct attach_args {
    struct nk_loop *l;
    struct nk_loop_source *src;
    enum nk_rc rc;
};

static void attach_on_loop(void *arg)
{
    struct attach_args *a = arg;
    struct nk_loop *l = a->l;
    struct nk_loop_source **ns, **nd;
    size_t ncap;

    if (l->n_sources == l->cap_sources) {
        ncap = l->cap_sources != 0 ? l->cap_sources * 2 : 8;
        ns = realloc(l->sources, ncap * sizeof(*ns));
        if (ns == NULL)
            return;
        l->sources = ns;
        nd = realloc(l->due, ncap * sizeof(*nd));
        if (nd == NULL)
            return;
        l->due = nd;
        l->cap_sources = ncap;
    }
    a->src->watch.fd = a->src->fd;
    a->src->watch.ready = on_source;
    a->src->watch.ud = a->src;
    a->src->watch.loop = NULL;
    if (nk_loop_watch_add(l, &a->src->watch, NK_LOOP_READ) != NK_OK) {
        a->rc = NK_ERR_INVALID;
        return;
    }
    a->src->slot = l->n_sources;
    a->src->attached = l;
    a->src->kicked = true; /* a first run: the source may already have work */
    l->sources[l->n_sources++] = a->src;
    a->rc = NK_OK;
}

enum nk_rc nk_loop_attach(struct nk_loop *l, struct nk_loop_source *src)
{
    struct attach_args a = {l, src, NK_ERR_NOMEM};

    if (l == NULL || src == NULL || src->run == NULL || src->fd < 0)
        return NK_ERR_INVALID;
    src->attached = NULL;
    src->kicked = false;
    if (!nk_loop_run_sync(l, attach_on_loop, &a))
        return NK_ERR_INVALID;
    return a.rc;
}

static void detach_now(struct nk_loop_source *src)
{
    struct nk_loop *l = src->attached;

    if (l == NULL)
        return;
    nk_loop_watch_del(&src->watch);
    l->sources[src->slot] = l->sources[--l->n_sources];
    l->sources[src->slot]->slot = src->slot;
    src->attached = NULL;
    src->kicked = false;
}

static void detach_on_loop(void *arg)
{
    detach_now(arg);
}

void nk_loop_detach(struct nk_loop_source *src)
{
    if (src == NULL || src->attached == NULL)
        return;
    /* A loop that stopped meanwhile detached it already. */
    (void)nk_loop_run_sync(src->attached, detach_on_loop, src);
}

/* Phases 4 and 6: run every kicked source (a run may kick its own or another source: those
 * wait for the next pass). */
static void run_sources(struct nk_loop *l)
{
    size_t i, n = 0;

    for (i = 0; i < l->n_sources; i++)
        if (l->sources[i]->kicked) {
            l->sources[i]->kicked = false;
            l->due[n++] = l->sources[i];
        }
    for (i = 0; i < n; i++)
        if (l->due[i]->attached == l) /* a run before it may have detached it */
            l->due[i]->run(l->due[i]->ud);
}

/* ---- the thread ---- */

/* Phase 1's bound: the nearest timer or source due time, at most MAX_WAIT_MS; a source that is
 * due now is marked kicked, and the wait is zero. */
static int wait_ms(struct nk_loop *l)
{
    int64_t wait = MAX_WAIT_MS, now;
    size_t i;
    long t;

    if (l->n_heap > 0) {
        now = nk_loop_now_ms();
        wait = l->heap[0]->due_ms <= now ? 0 : l->heap[0]->due_ms - now;
        if (wait > MAX_WAIT_MS)
            wait = MAX_WAIT_MS;
    }
    for (i = 0; i < l->n_sources; i++) {
        struct nk_loop_source *src = l->sources[i];

        t = src->kicked ? 0 : src->timeout_ms != NULL ? src->timeout_ms(src->ud) : -1;
        if (t == 0)
            src->kicked = true;
        if (t >= 0 && t < wait)
            wait = t;
    }
    return (int)wait;
}

static bool stop_asked(struct nk_loop *l)
{
    bool stop;

    pthread_mutex_lock(&l->mu);
    stop = l->stop;
    pthread_mutex_unlock(&l->mu);
    return stop;
}

static void *loop_main(void *arg)
{
    struct nk_loop *l = arg;
    struct nk_loop_watch *w;
    unsigned events;
    int64_t last_flush = nk_loop_now_ms();
    int wait, n;

    tl_loop = l;
    nk_log_batch_begin();
    for (;;) {
        wait = wait_ms(l);
        /* 7 (of the previous turn): buffered log lines never wait for an event, and wait at
         * most FLUSH_EVERY_MS in a loop that never waits. */
        if (wait != 0 || nk_loop_now_ms() - last_flush >= FLUSH_EVERY_MS) {
            nk_log_flush();
            last_flush = nk_loop_now_ms();
        }
        n = epoll_wait(l->epfd, l->evs, MAX_EVENTS, wait); /* 1 */
        atomic_fetch_add(&l->turns, 1);
        if (n < 0 && errno != EINTR)
            break; /* cannot happen with a valid epoll fd; stop rather than spin */
        l->ev_count = n > 0 ? n : 0;
        for (l->ev_next = 0; l->ev_next < l->ev_count;) { /* 2 */
            struct epoll_event *ev = &l->evs[l->ev_next++];

            w = ev->data.ptr;
            if (w == NULL)
                continue; /* deleted by an earlier event of this batch */
            events = (ev->events & EPOLLIN ? NK_LOOP_READ : 0U) |
                     (ev->events & EPOLLOUT ? NK_LOOP_WRITE : 0U) |
                     (ev->events & (EPOLLERR | EPOLLHUP) ? NK_LOOP_ERROR : 0U);
            w->ready(w->ud, events);
        }
        l->ev_count = l->ev_next = 0;
        if (l->posted) {
            l->posted = false;
            if (stop_asked(l))
                break;
            run_calls(l); /* 3 */
        }
        run_sources(l); /* 4 */
        run_timers(l);  /* 5 */
        run_sources(l); /* 6 */
    }
    /* From here on posts are refused; whatever was posted before still runs. */
    pthread_mutex_lock(&l->mu);
    l->running = false;
    pthread_mutex_unlock(&l->mu);
    run_calls(l);
    run_sources(l); /* let the sources write what those calls answered */
    while (l->n_sources > 0)
        detach_now(l->sources[0]);
    nk_log_flush();
    tl_loop = NULL;
    return NULL;
}

enum nk_rc nk_loop_new(struct nk_loop **out, struct nk_error *err)
{
    enum nk_rc rc = NK_OK;
    struct nk_loop *l = NULL;
    bool mu_ok = false, cv_ok = false;

    *out = NULL;
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    l->epfd = l->wakefd = -1;
    if (pthread_mutex_init(&l->mu, NULL) != 0 || !(mu_ok = true) ||
        pthread_cond_init(&l->sync_cv, NULL) != 0) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot create the event loop's lock");
        goto out;
    }
    cv_ok = true;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    l->wake.fd = l->wakefd;
    l->wake.ready = on_wake;
    l->wake.ud = l;
    if (l->epfd < 0 || l->wakefd < 0 || nk_loop_watch_add(l, &l->wake, NK_LOOP_READ) != NK_OK) {
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot create the event loop: %s", strerror(errno));
        goto out;
    }
    *out = l;
    l = NULL;
out:
    if (l != NULL) {
        if (l->epfd >= 0)
            close(l->epfd);
        if (l->wakefd >= 0)
            close(l->wakefd);
        if (cv_ok)
            pthread_cond_destroy(&l->sync_cv);
        if (mu_ok)
            pthread_mutex_destroy(&l->mu);
        free(l);
    }
    return rc;
}

enum nk_rc nk_loop_start(struct nk_loop *l, struct nk_error *err)
{
    enum nk_rc rc = NK_OK;

    pthread_mutex_lock(&l->mu);
    if (l->started) {
        rc = NK_ERR_INVALID;
        nk_error_set(err, "the event loop runs already");
        goto out;
    }
    l->running = true;
    if (pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        l->running = false;
        rc = NK_ERR_INTERNAL;
        nk_error_set(err, "cannot start the event loop thread");
        goto out;
    }
    l->started = true;
out:
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void nk_loop_stop(struct nk_loop *l)
{
    bool join;

    if (l == NULL)
        return;
    pthread_mutex_lock(&l->mu);
    join = l->started && !l->stop;
    l->stop = true;
    pthread_mutex_unlock(&l->mu);
    if (!join)
        return;
    wake(l);
    pthread_join(l->thread, NULL);
    pthread_mutex_lock(&l->mu);
    l->joined = true;
    pthread_mutex_unlock(&l->mu);
}

void nk_loop_free(struct nk_loop *l)
{
    if (l == NULL)
        return;
    nk_loop_stop(l);
    close(l->epfd);
    close(l->wakefd);
    free(l->heap);
    free(l->sources);
    free(l->due);
    pthread_cond_destroy(&l->sync_cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}
