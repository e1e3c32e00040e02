/* SPDX-License-Identifier: Apache-2.0 */
/* test_loop.c: the event loop: posted calls, sources, kicks, detach, timers, watches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "naftikod/loop.h"

static struct nk_loop *new_loop(void)
{
    struct nk_loop *l = NULL;
    struct nk_error err;

    assert_int_equal(nk_loop_new(&l, &err), NK_OK);
    assert_int_equal(nk_loop_start(l, &err), NK_OK);
    return l;
}

/* The loop API: closures, sources, kicks, detach. */
struct loop_probe {
    struct nk_loop *l;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int runs;     /* source runs */
    int order[8]; /* posted calls, in the order they ran */
    int n_calls;
    bool all_on_loop; /* every callback saw nk_loop_on_loop() */
    int rfd;          /* the source's pipe */
    long next_timeout;
    struct nk_loop_source src;
};

struct probe_call {
    struct nk_loop_call call;
    struct loop_probe *p;
    int id;
};

static void probe_note(struct loop_probe *p)
{
    if (!nk_loop_on_loop(p->l))
        p->all_on_loop = false;
}

static void probe_run(void *ud)
{
    struct loop_probe *p = ud;
    char buf[16];

    probe_note(p);
    while (read(p->rfd, buf, sizeof(buf)) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    p->runs++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static long probe_timeout(void *ud)
{
    struct loop_probe *p = ud;
    long t = p->next_timeout;

    probe_note(p);
    p->next_timeout = -1; /* due once */
    return t;
}

/* Wait (bounded: 5 s) until the source ran at least n times; the count. */
static int probe_wait_runs(struct loop_probe *p, int n)
{
    struct timespec until;
    int runs;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&p->mu);
    while (p->runs < n)
        if (pthread_cond_timedwait(&p->cv, &p->mu, &until) != 0)
            break;
    runs = p->runs;
    pthread_mutex_unlock(&p->mu);
    return runs;
}

static void probe_call_fn(void *ud)
{
    struct probe_call *c = ud;

    probe_note(c->p);
    c->p->order[c->p->n_calls++] = c->id;
}

static void probe_kick(void *ud)
{
    struct loop_probe *p = ud;

    probe_note(p);
    nk_loop_kick(&p->src);
}

/* On the loop: the next timeout_ms() says 0 (due now). */
static void probe_due_now(void *ud)
{
    struct loop_probe *p = ud;

    probe_note(p);
    p->next_timeout = 0;
}

static void probe_init(struct loop_probe *p, int fds[2])
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->all_on_loop = true;
    p->next_timeout = -1;
    p->l = new_loop();
    assert_int_equal(pipe(fds), 0);
    p->rfd = fds[0];
    assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    p->src.fd = fds[0];
    p->src.run = probe_run;
    p->src.timeout_ms = probe_timeout;
    p->src.ud = p;
}

static void probe_cleanup(struct loop_probe *p, int fds[2])
{
    close(fds[0]);
    close(fds[1]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

static void test_loop_calls_run_on_the_loop_in_order(void **state)
{
    struct loop_probe p;
    struct probe_call c[5];
    int fds[2], i;

    (void)state;
    probe_init(&p, fds);
    assert_false(nk_loop_on_loop(p.l));
    for (i = 0; i < 5; i++) {
        c[i].call.fn = probe_call_fn;
        c[i].call.ud = &c[i];
        c[i].p = &p;
        c[i].id = i + 1;
    }
    for (i = 0; i < 4; i++)
        assert_true(nk_loop_post(p.l, &c[i].call));
    /* run_sync returns once its function ran, after everything posted before it. */
    assert_true(nk_loop_run_sync(p.l, probe_call_fn, &c[4]));
    assert_int_equal(p.n_calls, 5);
    for (i = 0; i < 5; i++)
        assert_int_equal(p.order[i], i + 1);
    assert_true(p.all_on_loop);
    nk_loop_free(p.l);
    probe_cleanup(&p, fds);
}

static void test_loop_source_runs_when_ready_kicked_or_due(void **state)
{
    struct loop_probe p;
    int fds[2], before;

    (void)state;
    probe_init(&p, fds);
    assert_int_equal(nk_loop_attach(p.l, &p.src), NK_OK);
    assert_ptr_equal(p.src.attached, p.l);
    assert_true(probe_wait_runs(&p, 1) >= 1); /* a first run right after attaching */
    /* readable descriptor */
    before = probe_wait_runs(&p, 0);
    assert_int_equal(write(fds[1], "x", 1), 1);
    assert_true(probe_wait_runs(&p, before + 1) >= before + 1);
    /* a kick from the loop thread */
    before = probe_wait_runs(&p, 0);
    assert_true(nk_loop_run_sync(p.l, probe_kick, &p));
    assert_true(probe_wait_runs(&p, before + 1) >= before + 1);
    /* a timeout that is due: no event, no kick */
    before = probe_wait_runs(&p, 0);
    assert_true(nk_loop_run_sync(p.l, probe_due_now, &p));
    assert_true(probe_wait_runs(&p, before + 1) >= before + 1);
    /* detached: never run again, whatever happens on its descriptor */
    nk_loop_detach(&p.src);
    assert_null(p.src.attached);
    before = probe_wait_runs(&p, 0);
    assert_int_equal(write(fds[1], "z", 1), 1);
    assert_true(nk_loop_run_sync(p.l, probe_kick, &p)); /* a full turn of the loop */
    assert_true(nk_loop_run_sync(p.l, probe_kick, &p));
    assert_int_equal(probe_wait_runs(&p, 0), before);
    assert_true(p.all_on_loop);
    nk_loop_free(p.l);
    probe_cleanup(&p, fds);
}

static void test_loop_stop_detaches_sources(void **state)
{
    struct loop_probe p;
    struct probe_call c;
    int fds[2];

    (void)state;
    probe_init(&p, fds);
    assert_int_equal(nk_loop_attach(p.l, &p.src), NK_OK);
    assert_false(nk_loop_owned(p.l));
    nk_loop_stop(p.l);
    assert_null(p.src.attached); /* the stopped loop let go of it */
    nk_loop_detach(&p.src);      /* and a late detach is harmless */
    assert_true(nk_loop_owned(p.l));
    c.call.fn = probe_call_fn;
    c.call.ud = &c;
    c.p = &p;
    c.id = 1;
    assert_false(nk_loop_post(p.l, &c.call)); /* refused once stopped */
    assert_false(nk_loop_run_sync(p.l, probe_kick, &p));
    assert_int_equal(p.n_calls, 0);
    nk_loop_free(p.l);
    probe_cleanup(&p, fds);
}

/* Timers: fired nearest first, re-armed, cancelled, and as many as wanted. */
#define N_TIMERS 200

struct timer_probe {
    struct nk_loop *l;
    struct nk_loop_timer t[N_TIMERS];
    int fired[N_TIMERS];   /* fire order, 1-based; 0: not fired */
    int64_t due[N_TIMERS]; /* each timer's deadline once armed */
    int n_fired;
    int rearms; /* the timer that re-arms itself: times left */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

struct timer_slot {
    struct timer_probe *tp;
    int i;
};

static struct timer_slot slots[N_TIMERS];

static void slot_fired(void *ud)
{
    struct timer_slot *s = ud;
    struct timer_probe *tp = s->tp;

    assert_true(nk_loop_on_loop(tp->l));
    assert_null(tp->t[s->i].loop); /* disarmed before its function runs */
    if (s->i == 0 && tp->rearms > 0) {
        tp->rearms--;
        assert_int_equal(nk_loop_timer_arm(tp->l, &tp->t[0], 1), NK_OK);
        return;
    }
    pthread_mutex_lock(&tp->mu);
    tp->fired[s->i] = ++tp->n_fired;
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
}

static void arm_all(void *ud)
{
    struct timer_probe *tp = ud;
    int i;

    /* Delays in a scrambled order: i * 37 mod N_TIMERS ms. Arming takes time too (a slow or
     * busy machine can spend more than a millisecond here), so the order to check is that of
     * the deadlines the loop recorded, not of the delays. */
    for (i = 0; i < N_TIMERS; i++) {
        assert_int_equal(nk_loop_timer_arm(tp->l, &tp->t[i], (long)((i * 37) % N_TIMERS) + 10),
                         NK_OK);
        tp->due[i] = tp->t[i].due_ms;
    }
    /* Re-arming moves a timer (no duplicate), cancelling removes it. */
    assert_int_equal(nk_loop_timer_arm(tp->l, &tp->t[1], 5), NK_OK);
    tp->due[1] = tp->t[1].due_ms;
    nk_loop_timer_cancel(&tp->t[2]);
    nk_loop_timer_cancel(&tp->t[2]); /* twice: ignored */
}

static void test_loop_timers(void **state)
{
    struct timer_probe tp;
    struct timespec until;
    int i, j;

    (void)state;
    memset(&tp, 0, sizeof(tp));
    pthread_mutex_init(&tp.mu, NULL);
    pthread_cond_init(&tp.cv, NULL);
    tp.l = new_loop();
    tp.rearms = 3;
    for (i = 0; i < N_TIMERS; i++) {
        slots[i].tp = &tp;
        slots[i].i = i;
        tp.t[i].fn = slot_fired;
        tp.t[i].ud = &slots[i];
    }
    assert_true(nk_loop_run_sync(tp.l, arm_all, &tp));
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&tp.mu);
    while (tp.n_fired < N_TIMERS - 1)
        if (pthread_cond_timedwait(&tp.cv, &tp.mu, &until) != 0)
            break;
    pthread_mutex_unlock(&tp.mu);
    nk_loop_stop(tp.l);
    assert_int_equal(tp.n_fired >= N_TIMERS - 1, 1);
    /* every timer fired after each one due before it (timer 0 re-armed itself and timer 2 was
     * cancelled: skip both; timer 1 was re-armed to 5 ms after the others were armed) */
    for (i = 1; i < N_TIMERS; i++)
        for (j = 1; j < N_TIMERS; j++)
            if (i != 2 && j != 2 && tp.due[i] < tp.due[j])
                assert_true(tp.fired[i] != 0 && tp.fired[i] < tp.fired[j]);
    assert_int_equal(tp.rearms, 0);
    arm_all(&tp); /* the owner once stopped: arms without a thread */
    for (i = 0; i < N_TIMERS; i++)
        nk_loop_timer_cancel(&tp.t[i]);
    nk_loop_free(tp.l);
    pthread_mutex_destroy(&tp.mu);
    pthread_cond_destroy(&tp.cv);
}

/* More sources than the old fixed table (16) held, each run when its descriptor is readable. */
#define N_SOURCES 40

static void test_loop_many_sources(void **state)
{
    struct loop_probe p[N_SOURCES];
    int fds[N_SOURCES][2], i;
    struct nk_loop *l = new_loop();

    (void)state;
    for (i = 0; i < N_SOURCES; i++) {
        probe_init(&p[i], fds[i]);
        nk_loop_free(p[i].l);
        p[i].l = l;
        assert_int_equal(nk_loop_attach(l, &p[i].src), NK_OK);
    }
    for (i = 0; i < N_SOURCES; i++)
        assert_true(probe_wait_runs(&p[i], 1) >= 1);
    for (i = 0; i < N_SOURCES; i += 2)
        nk_loop_detach(&p[i].src); /* holes in the middle of the table */
    for (i = 0; i < N_SOURCES; i++) {
        int before = probe_wait_runs(&p[i], 0);

        assert_int_equal(write(fds[i][1], "x", 1), 1);
        if (i % 2 == 1)
            assert_true(probe_wait_runs(&p[i], before + 1) >= before + 1);
    }
    assert_true(nk_loop_run_sync(l, probe_kick, &p[1])); /* a full turn */
    for (i = 0; i < N_SOURCES; i++) {
        assert_true(p[i].all_on_loop);
        nk_loop_detach(&p[i].src);
    }
    nk_loop_free(l);
    for (i = 0; i < N_SOURCES; i++)
        probe_cleanup(&p[i], fds[i]);
}

/* Watches: ready() with the events; a watch deleted by an earlier event of the same batch is
 * not called. */
struct watch_probe {
    struct nk_loop *l;
    struct nk_loop_watch w[2];
    int fds[2][2];
    int calls[2];
    unsigned events[2];
};

static void watch_ready_n(struct watch_probe *wp, int i, unsigned events)
{
    char buf[8];

    wp->calls[i]++;
    wp->events[i] |= events;
    while (read(wp->fds[i][0], buf, sizeof(buf)) > 0)
        ;
    nk_loop_watch_del(&wp->w[1 - i]); /* whichever runs first removes the other */
}

static void watch_ready0(void *ud, unsigned events)
{
    watch_ready_n(ud, 0, events);
}

static void watch_ready1(void *ud, unsigned events)
{
    watch_ready_n(ud, 1, events);
}

static void add_watches(void *ud)
{
    struct watch_probe *wp = ud;

    assert_int_equal(nk_loop_watch_add(wp->l, &wp->w[0], NK_LOOP_READ), NK_OK);
    assert_int_equal(nk_loop_watch_add(wp->l, &wp->w[1], NK_LOOP_READ), NK_OK);
    /* both readable before the loop next waits: one batch */
    assert_int_equal(write(wp->fds[0][1], "a", 1), 1);
    assert_int_equal(write(wp->fds[1][1], "b", 1), 1);
}

static void nothing(void *ud)
{
    (void)ud;
}

static void test_loop_watch_deleted_in_batch(void **state)
{
    struct watch_probe wp;
    int i;

    (void)state;
    memset(&wp, 0, sizeof(wp));
    wp.l = new_loop();
    for (i = 0; i < 2; i++) {
        assert_int_equal(pipe(wp.fds[i]), 0);
        assert_int_equal(fcntl(wp.fds[i][0], F_SETFL, O_NONBLOCK), 0);
        wp.w[i].fd = wp.fds[i][0];
        wp.w[i].ud = &wp;
    }
    wp.w[0].ready = watch_ready0;
    wp.w[1].ready = watch_ready1;
    assert_true(nk_loop_run_sync(wp.l, add_watches, &wp));
    assert_true(nk_loop_run_sync(wp.l, nothing, NULL)); /* a full turn */
    assert_true(nk_loop_run_sync(wp.l, nothing, NULL));
    assert_int_equal(wp.calls[0] + wp.calls[1], 1);
    assert_int_equal(wp.events[0] | wp.events[1], NK_LOOP_READ);
    nk_loop_stop(wp.l);
    for (i = 0; i < 2; i++) {
        nk_loop_watch_del(&wp.w[i]);
        close(wp.fds[i][0]);
        close(wp.fds[i][1]);
    }
    nk_loop_free(wp.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_calls_run_on_the_loop_in_order),
        cmocka_unit_test(test_loop_source_runs_when_ready_kicked_or_due),
        cmocka_unit_test(test_loop_stop_detaches_sources),
        cmocka_unit_test(test_loop_timers),
        cmocka_unit_test(test_loop_many_sources),
        cmocka_unit_test(test_loop_watch_deleted_in_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
