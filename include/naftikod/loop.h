/* SPDX-License-Identifier: Apache-2.0 */
/* loop.h: one event loop on a thread of its own (epoll, an eventfd wake-up, posted calls, timers,
 * descriptor watches and sources), beneath the HTTP server and the upstream client. */
#ifndef NAFTIKOD_LOOP_H
#define NAFTIKOD_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "naftikod/common.h"

/* One turn of the loop, in this order:
 *  1. wait in epoll_wait, at most until the nearest timer, a source's timeout_ms(), or 1 s
 *     (zero when posted calls, kicked sources or expired timers are waiting);
 *  2. ready descriptors: each watch's ready() runs (a source's descriptor only marks the source
 *     kicked; the eventfd only says that calls were posted);
 *  3. posted calls, in the order they were posted (those posted while these run wait for the
 *     next turn);
 *  4. kicked sources (a listener reads requests here and starts upstream transfers);
 *  5. expired timers, nearest first (curl's timeout starts those transfers in this same turn;
 *     request deadlines);
 *  6. kicked sources again, so an answer given in 2-5 is written before the loop waits;
 *  7. end of turn: buffered log lines (the access log) are written when the loop is about to
 *     wait, and at least every 50 ms when it never waits.
 *
 * Threads: the loop runs on a thread nk_loop_start() creates. Everything here is loop-thread
 * only unless it says otherwise; "owner" means the loop thread while the loop runs, or any one
 * thread once nk_loop_stop() has returned (nothing runs the loop then). Nothing is global: run
 * as many loops as there are threads to give them, each with its own watches and timers. */

struct nk_loop;

/* Create a loop (not running yet). NK_ERR_NOMEM, NK_ERR_INTERNAL (epoll or eventfd refused). */
enum nk_rc nk_loop_new(struct nk_loop **out, struct nk_error *err);
/* Start its thread. Once. NK_ERR_INTERNAL when the thread cannot start. */
enum nk_rc nk_loop_start(struct nk_loop *l, struct nk_error *err);
/* Stop the thread and wait for it: calls posted before are still run (on the loop thread, as it
 * exits); later posts are refused. Sources still attached are detached (src->attached becomes
 * NULL); watches and timers stay registered and belong to the calling thread from then on. Not
 * from the loop thread. Idempotent; NULL is a no-op. */
void nk_loop_stop(struct nk_loop *l);
/* Stop (when running) and free. Every watch, timer and source must be gone or detached: free the
 * loop's clients (listeners, upstream clients) first. NULL is a no-op. */
void nk_loop_free(struct nk_loop *l);

/* How many turns l has made so far (tests: a loop that waits makes few). Any thread. */
uint64_t nk_loop_turns(struct nk_loop *l);
/* True on l's loop thread (while it runs). Any thread. */
bool nk_loop_on_loop(const struct nk_loop *l);
/* True on l's loop thread, or when l is not running (then the caller is the owner). Any thread. */
bool nk_loop_owned(struct nk_loop *l);

/* A call to run once on the loop thread. The caller keeps *c alive until fn has run. */
struct nk_loop_call {
    struct nk_loop_call *next; /* owned by the loop while queued */
    void (*fn)(void *ud);
    void *ud;
};
/* Queue c (phase 3). Any thread. false when the loop is not running (c is not queued). */
bool nk_loop_post(struct nk_loop *l, struct nk_loop_call *c);
/* Run fn(ud) on the loop thread and wait for it; runs it at once when called on the loop
 * thread. false, without running it, when the loop is not running. Any thread. */
bool nk_loop_run_sync(struct nk_loop *l, void (*fn)(void *ud), void *ud);

/* A descriptor the loop waits on (epoll, level-triggered). No limit on their number. */
#define NK_LOOP_READ 1U
#define NK_LOOP_WRITE 2U
#define NK_LOOP_ERROR 4U /* in ready() only: error or hang-up */
struct nk_loop_watch {
    int fd;
    void (*ready)(void *ud, unsigned events); /* phase 2; events: NK_LOOP_* */
    void *ud;
    /* Owned by the loop: */
    struct nk_loop *loop; /* non-NULL while added */
};
/* Owner only. events: NK_LOOP_READ | NK_LOOP_WRITE (0 is allowed: only errors are reported).
 * add on a watch already added modifies it. NK_ERR_IO when epoll refuses the descriptor. */
enum nk_rc nk_loop_watch_add(struct nk_loop *l, struct nk_loop_watch *w, unsigned events);
/* Owner only. After return ready() is never called for w (even for an event of the turn in
 * progress). A watch not added is ignored; the descriptor may already be closed. */
void nk_loop_watch_del(struct nk_loop_watch *w);

/* A timer: one-shot, re-armable (a min-heap: no limit on their number). */
struct nk_loop_timer {
    void (*fn)(void *ud); /* phase 5; the timer is disarmed before fn runs (fn may re-arm it) */
    void *ud;
    /* Owned by the loop: */
    struct nk_loop *loop; /* non-NULL while armed */
    int64_t due_ms;       /* CLOCK_MONOTONIC */
    size_t slot;
};
/* Owner only. Arm t to fire in ms milliseconds (0: this turn), re-arming it when armed.
 * NK_ERR_NOMEM when the heap cannot grow. */
enum nk_rc nk_loop_timer_arm(struct nk_loop *l, struct nk_loop_timer *t, long ms);
/* Owner only. A timer not armed is ignored. */
void nk_loop_timer_cancel(struct nk_loop_timer *t);
/* CLOCK_MONOTONIC in milliseconds. Any thread. */
int64_t nk_loop_now_ms(void);

/* A source: a level-triggered descriptor whose readiness means "run() has work" (an epoll set
 * of a library polled externally, such as libmicrohttpd's), with an optional due time. No limit
 * on their number. */
struct nk_loop_source {
    int fd;
    void (*run)(void *ud);        /* phases 4 and 6, when kicked; must not block */
    long (*timeout_ms)(void *ud); /* ms until run() is due anyway, -1 for none; phase 1 */
    void *ud;
    /* Owned by the loop: */
    struct nk_loop *attached; /* non-NULL while attached to a running loop */
    size_t slot;
    bool kicked;
    struct nk_loop_watch watch;
};
/* Serve src on l (its first run comes in the next turn). Any thread but l's own (the loop runs
 * the attach itself). NK_ERR_INVALID when l is not running or src is malformed; NK_ERR_NOMEM. */
enum nk_rc nk_loop_attach(struct nk_loop *l, struct nk_loop_source *src);
/* After return run() is never called again. Any thread; a source not attached is ignored. */
void nk_loop_detach(struct nk_loop_source *src);
/* Loop thread only: run src in phase 4 or 6 of this turn, or the next one. */
void nk_loop_kick(struct nk_loop_source *src);

#endif
