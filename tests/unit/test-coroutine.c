/*
 * Unit tests for the runtime: coroutines, coroutine locks, the main loop
 * (bottom halves, timers, fd handlers) and the thread pool.
 *
 * Every test drives the one global main loop with aio_poll(); each leaves
 * no BH, timer or coroutine behind so that tests stay independent.
 */
#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/aio.h"
#include "block/thread-pool.h"

/* Drain anything still runnable without blocking. */
static void poll_drain(void)
{
    while (aio_poll(false)) {
        /* keep going */
    }
}

/* ---- coroutines ---- */

typedef struct {
    int step;
    Coroutine *co;
} YieldState;

static void coroutine_fn yield_twice(void *opaque)
{
    YieldState *s = opaque;

    g_assert(qemu_in_coroutine());
    g_assert(qemu_coroutine_self() == s->co);
    g_assert(qemu_coroutine_entered(s->co));
    s->step = 1;
    qemu_coroutine_yield();
    s->step = 2;
    qemu_coroutine_yield();
    s->step = 3;
}

/* Each enter resumes right after the yield that parked the coroutine. */
static void test_yield_and_reenter(void)
{
    YieldState s = { 0 };

    s.co = qemu_coroutine_create(yield_twice, &s);
    g_assert(!qemu_in_coroutine());
    qemu_coroutine_enter(s.co);
    g_assert_cmpint(s.step, ==, 1);
    g_assert(!qemu_coroutine_entered(s.co));
    qemu_coroutine_enter(s.co);
    g_assert_cmpint(s.step, ==, 2);
    qemu_coroutine_enter(s.co);
    g_assert_cmpint(s.step, ==, 3);
    g_assert(qemu_coroutine_self() == NULL);
}

typedef struct {
    GString *log;
    Coroutine *inner;
} NestState;

static void coroutine_fn nest_inner(void *opaque)
{
    NestState *s = opaque;

    g_string_append(s->log, "i1 ");
    qemu_coroutine_yield();
    g_string_append(s->log, "i2 ");
}

static void coroutine_fn nest_outer(void *opaque)
{
    NestState *s = opaque;
    Coroutine *self = qemu_coroutine_self();

    g_string_append(s->log, "o1 ");
    s->inner = qemu_coroutine_create(nest_inner, s);
    qemu_coroutine_enter(s->inner);       /* inner yields back to us */
    g_assert(qemu_coroutine_self() == self);
    g_string_append(s->log, "o2 ");
    qemu_coroutine_enter(s->inner);       /* inner terminates */
    g_string_append(s->log, "o3");
}

/* A coroutine entering another is resumed when the callee yields/ends. */
static void test_nested(void)
{
    NestState s = { .log = g_string_new("") };

    qemu_coroutine_enter(qemu_coroutine_create(nest_outer, &s));
    g_assert_cmpstr(s.log->str, ==, "o1 i1 o2 i2 o3");
    g_assert(!qemu_in_coroutine());
    g_string_free(s.log, TRUE);
}

static void coroutine_fn noop_entry(void *opaque)
{
    (*(int *)opaque)++;
}

/* A finished coroutine's memory and stack are recycled by the next create. */
static void test_pool_reuse(void)
{
    int runs = 0;
    Coroutine *a, *b;
    int i;

    a = qemu_coroutine_create(noop_entry, &runs);
    qemu_coroutine_enter(a);
    b = qemu_coroutine_create(noop_entry, &runs);
    g_assert(a == b);                      /* recycled from the pool */
    qemu_coroutine_enter(b);
    for (i = 0; i < 1000; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(noop_entry, &runs));
    }
    g_assert_cmpint(runs, ==, 1002);
}

/* Deep recursion must fit in the coroutine stack. */
static int coroutine_fn recurse(int depth)
{
    volatile char pad[256];

    pad[0] = (char)depth;
    if (depth == 0) {
        return pad[0];
    }
    return recurse(depth - 1) + 1 + pad[0] * 0;
}

static void coroutine_fn deep_entry(void *opaque)
{
    *(int *)opaque = recurse(1000);
}

/* ~256 KiB of frames fit in a coroutine stack. */
static void test_deep_stack(void)
{
    int r = -1;

    qemu_coroutine_enter(qemu_coroutine_create(deep_entry, &r));
    g_assert_cmpint(r, ==, 1000);
}

typedef struct {
    bool done;
    int64_t slept;
} SleepState;

static void coroutine_fn sleep_entry(void *opaque)
{
    SleepState *s = opaque;
    int64_t start = qemu_clock_get_ns();

    qemu_co_sleep_ns(20 * 1000 * 1000);
    s->slept = qemu_clock_get_ns() - start;
    s->done = true;
}

/* run_sync drives the loop until done; the sleep lasts at least 20 ms. */
static void test_sleep_and_run_sync(void)
{
    SleepState s = { 0 };

    qemu_coroutine_run_sync(sleep_entry, &s, &s.done);
    g_assert(s.done);
    g_assert_cmpint(s.slept, >=, 20 * 1000 * 1000);
}

static void coroutine_fn wake_entry(void *opaque)
{
    int *stage = opaque;

    *stage = 1;
    aio_co_wake(qemu_coroutine_self());   /* schedule our own resumption */
    qemu_coroutine_yield();
    *stage = 2;
}

/* aio_co_wake never enters on the waker's stack; the loop does it. */
static void test_aio_co_wake_defers(void)
{
    int stage = 0;

    qemu_coroutine_enter(qemu_coroutine_create(wake_entry, &stage));
    g_assert_cmpint(stage, ==, 1);        /* not resumed on our stack */
    poll_drain();
    g_assert_cmpint(stage, ==, 2);
}

/* ---- CoMutex / CoQueue / CoRwlock ---- */

typedef struct {
    CoMutex mutex;
    CoQueue queue;
    CoRwlock rw;
    GString *log;
    int done;
    int inside;
} LockState;

typedef struct {
    LockState *s;
    char name;
} LockArg;

static void coroutine_fn mutex_user(void *opaque)
{
    LockArg *a = opaque;
    LockState *s = a->s;

    qemu_co_mutex_lock(&s->mutex);
    g_assert_cmpint(s->inside++, ==, 0);
    g_string_append_c(s->log, a->name);
    qemu_coroutine_yield();               /* hold the mutex across yields */
    s->inside--;
    qemu_co_mutex_unlock(&s->mutex);
    s->done++;
}

/*
 * Waiters get the mutex in arrival order, by hand-over: a coroutine that
 * arrives while the hand-over is pending queues behind the others.
 */
static void test_mutex_fifo_handover(void)
{
    LockState s = { .log = g_string_new("") };
    LockArg args[4] = { { &s, 'a' }, { &s, 'b' }, { &s, 'c' }, { &s, 'd' } };
    Coroutine *cos[4];
    int i;

    qemu_co_mutex_init(&s.mutex);
    for (i = 0; i < 4; i++) {
        cos[i] = qemu_coroutine_create(mutex_user, &args[i]);
        qemu_coroutine_enter(cos[i]);
    }
    g_assert_cmpstr(s.log->str, ==, "a");  /* b, c, d queued */
    /* Release a; a late-comer 'e' must not overtake b. */
    qemu_coroutine_enter(cos[0]);
    {
        LockArg e = { &s, 'e' };
        Coroutine *ce = qemu_coroutine_create(mutex_user, &e);

        qemu_coroutine_enter(ce);
        poll_drain();                       /* b is handed the mutex */
        g_assert_cmpstr(s.log->str, ==, "ab");
        for (i = 1; i < 4; i++) {
            qemu_coroutine_enter(cos[i]);
            poll_drain();
        }
        qemu_coroutine_enter(ce);
    }
    g_assert_cmpstr(s.log->str, ==, "abcde");
    g_assert_cmpint(s.done, ==, 5);
    g_assert(!s.mutex.locked);
    g_string_free(s.log, TRUE);
}

static void coroutine_fn queue_waiter(void *opaque)
{
    LockArg *a = opaque;

    qemu_co_queue_wait(&a->s->queue, NULL);
    g_string_append_c(a->s->log, a->name);
    a->s->done++;
}

/* restart_all wakes every waiter, through the loop, in FIFO order. */
static void test_queue_restart_all(void)
{
    LockState s = { .log = g_string_new("") };
    LockArg args[3] = { { &s, 'x' }, { &s, 'y' }, { &s, 'z' } };
    int i;

    qemu_co_queue_init(&s.queue);
    g_assert(qemu_co_queue_empty(&s.queue));
    for (i = 0; i < 3; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(queue_waiter, &args[i]));
    }
    g_assert(!qemu_co_queue_empty(&s.queue));
    qemu_co_queue_restart_all(&s.queue);
    g_assert(qemu_co_queue_empty(&s.queue));
    g_assert_cmpint(s.done, ==, 0);       /* woken via the loop only */
    poll_drain();
    g_assert_cmpstr(s.log->str, ==, "xyz");
    g_assert_cmpint(s.done, ==, 3);
    g_assert(!qemu_co_queue_next(&s.queue));
    g_string_free(s.log, TRUE);
}

static void coroutine_fn queue_waiter_with_mutex(void *opaque)
{
    LockArg *a = opaque;

    qemu_co_mutex_lock(&a->s->mutex);
    qemu_co_queue_wait(&a->s->queue, &a->s->mutex);
    g_assert(a->s->mutex.holder == qemu_coroutine_self());
    g_string_append_c(a->s->log, a->name);
    qemu_co_mutex_unlock(&a->s->mutex);
    a->s->done++;
}

/* A waiter drops the mutex while parked and holds it again on return. */
static void test_queue_wait_releases_mutex(void)
{
    LockState s = { .log = g_string_new("") };
    LockArg args[2] = { { &s, '1' }, { &s, '2' } };

    qemu_co_mutex_init(&s.mutex);
    qemu_co_queue_init(&s.queue);
    qemu_coroutine_enter(qemu_coroutine_create(queue_waiter_with_mutex,
                                               &args[0]));
    g_assert(!s.mutex.locked);            /* released while waiting */
    qemu_coroutine_enter(qemu_coroutine_create(queue_waiter_with_mutex,
                                               &args[1]));
    g_assert(qemu_co_queue_next(&s.queue));
    poll_drain();
    g_assert_cmpstr(s.log->str, ==, "1");
    qemu_co_queue_restart_all(&s.queue);
    poll_drain();
    g_assert_cmpstr(s.log->str, ==, "12");
    g_assert_cmpint(s.done, ==, 2);
    g_string_free(s.log, TRUE);
}

static void coroutine_fn rw_reader(void *opaque)
{
    LockArg *a = opaque;

    qemu_co_rwlock_rdlock(&a->s->rw);
    g_assert(!a->s->rw.writer);
    g_string_append_c(a->s->log, a->name);
    qemu_coroutine_yield();
    qemu_co_rwlock_unlock(&a->s->rw);
    a->s->done++;
}

static void coroutine_fn rw_writer(void *opaque)
{
    LockArg *a = opaque;

    qemu_co_rwlock_wrlock(&a->s->rw);
    g_assert_cmpint(a->s->rw.readers, ==, 0);
    g_string_append_c(a->s->log, a->name);
    qemu_coroutine_yield();
    qemu_co_rwlock_unlock(&a->s->rw);
    a->s->done++;
}

/*
 * Readers share; a writer waits for all of them, and a reader arriving
 * after a queued writer waits for that writer (no writer starvation).
 */
static void test_rwlock_writer_excludes_readers(void)
{
    LockState s = { .log = g_string_new("") };
    LockArg r1 = { &s, 'r' }, r2 = { &s, 's' }, w = { &s, 'W' };
    LockArg r3 = { &s, 't' };
    Coroutine *c1, *c2, *cw, *c3;

    qemu_co_rwlock_init(&s.rw);
    c1 = qemu_coroutine_create(rw_reader, &r1);
    c2 = qemu_coroutine_create(rw_reader, &r2);
    cw = qemu_coroutine_create(rw_writer, &w);
    c3 = qemu_coroutine_create(rw_reader, &r3);
    qemu_coroutine_enter(c1);
    qemu_coroutine_enter(c2);             /* two readers share */
    g_assert_cmpstr(s.log->str, ==, "rs");
    qemu_coroutine_enter(cw);             /* writer waits */
    qemu_coroutine_enter(c3);             /* reader queues behind writer */
    g_assert_cmpstr(s.log->str, ==, "rs");
    qemu_coroutine_enter(c1);
    poll_drain();
    g_assert_cmpstr(s.log->str, ==, "rs");  /* s still reads */
    qemu_coroutine_enter(c2);
    poll_drain();
    g_assert_cmpstr(s.log->str, ==, "rsW");
    g_assert(s.rw.writer);
    qemu_coroutine_enter(cw);
    poll_drain();
    g_assert_cmpstr(s.log->str, ==, "rsWt");
    qemu_coroutine_enter(c3);
    g_assert_cmpint(s.done, ==, 4);
    g_assert(!s.rw.writer && s.rw.readers == 0);
    g_string_free(s.log, TRUE);
}

/* ---- main loop ---- */

static void count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

/* Scheduling coalesces; cancel and delete stop a queued BH from running. */
static void test_bh_runs_once(void)
{
    int n = 0;
    QEMUBH *bh = qemu_bh_new(count_cb, &n);

    qemu_bh_schedule(bh);
    qemu_bh_schedule(bh);                 /* coalesces */
    poll_drain();
    g_assert_cmpint(n, ==, 1);
    poll_drain();
    g_assert_cmpint(n, ==, 1);
    qemu_bh_schedule(bh);
    qemu_bh_cancel(bh);
    poll_drain();
    g_assert_cmpint(n, ==, 1);
    qemu_bh_schedule(bh);
    qemu_bh_delete(bh);                   /* deleted while queued */
    poll_drain();
    g_assert_cmpint(n, ==, 1);
}

static gpointer oneshot_thread(gpointer opaque)
{
    aio_bh_schedule_oneshot(count_cb, opaque);
    return NULL;
}

/* A one-shot scheduled from another thread wakes a blocked aio_poll. */
static void test_bh_oneshot_from_thread(void)
{
    int n = 0;
    GThread *t = g_thread_new("oneshot", oneshot_thread, &n);

    g_thread_join(t);
    while (n == 0) {
        aio_poll(true);
    }
    g_assert_cmpint(n, ==, 1);
}

typedef struct {
    GString *log;
    char name;
} TimerArg;

static void timer_log_cb(void *opaque)
{
    TimerArg *a = opaque;

    g_string_append_c(a->log, a->name);
}

/* Timers fire by deadline, ties in arming order; deleted ones never. */
static void test_timer_fires_in_order(void)
{
    GString *log = g_string_new("");
    TimerArg a[4] = { { log, 'a' }, { log, 'b' }, { log, 'c' }, { log, 'd' } };
    QEMUTimer *t[4];
    int64_t now = qemu_clock_get_ns();
    int i;

    for (i = 0; i < 4; i++) {
        t[i] = timer_new_ns(timer_log_cb, &a[i]);
    }
    timer_mod_ns(t[2], now + 3000000);
    timer_mod_ns(t[0], now + 1000000);
    timer_mod_ns(t[1], now + 2000000);
    timer_mod_ns(t[3], now + 2000000);    /* same deadline: after b */
    g_assert(timer_pending(t[0]));
    while (log->len < 4) {
        aio_poll(true);
    }
    g_assert_cmpstr(log->str, ==, "abdc");
    g_assert(!timer_pending(t[0]));
    /* A deleted timer does not fire. */
    timer_mod_ns(t[0], qemu_clock_get_ns());
    timer_del(t[0]);
    poll_drain();
    g_assert_cmpstr(log->str, ==, "abdc");
    for (i = 0; i < 4; i++) {
        timer_free(t[i]);
    }
    g_string_free(log, TRUE);
}

static void pipe_read_cb(void *opaque)
{
    int *fds = opaque;
    char c;

    g_assert_cmpint(read(fds[0], &c, 1), ==, 1);
    fds[2]++;
}

/* io_read runs when the fd has data, and never after removal. */
static void test_fd_handler_readable(void)
{
    int fds[3] = { -1, -1, 0 };

    g_assert_cmpint(pipe(fds), ==, 0);
    aio_set_fd_handler(fds[0], pipe_read_cb, NULL, fds);
    poll_drain();
    g_assert_cmpint(fds[2], ==, 0);
    g_assert_cmpint(write(fds[1], "x", 1), ==, 1);
    while (fds[2] == 0) {
        aio_poll(true);
    }
    g_assert_cmpint(fds[2], ==, 1);
    aio_set_fd_handler(fds[0], NULL, NULL, NULL);
    g_assert_cmpint(write(fds[1], "y", 1), ==, 1);
    poll_drain();
    g_assert_cmpint(fds[2], ==, 1);       /* removed: not called */
    close(fds[0]);
    close(fds[1]);
}

typedef struct {
    QEMUBH *second;
    bool second_ran;
    bool first_done;
} NestedBHState;

static void nested_second_cb(void *opaque)
{
    ((NestedBHState *)opaque)->second_ran = true;
}

/* Waits inside a BH for a BH queued after it: needs a nested aio_poll. */
static void nested_first_cb(void *opaque)
{
    NestedBHState *s = opaque;

    while (!s->second_ran) {
        aio_poll(true);
    }
    s->first_done = true;
}

/* A BH that polls for a later BH does not deadlock. */
static void test_nested_poll_sees_later_bh(void)
{
    NestedBHState s = { 0 };
    QEMUBH *first = qemu_bh_new(nested_first_cb, &s);

    s.second = qemu_bh_new(nested_second_cb, &s);
    qemu_bh_schedule(first);
    qemu_bh_schedule(s.second);
    while (!s.first_done) {
        aio_poll(true);
    }
    g_assert(s.second_ran);
    qemu_bh_delete(first);
    qemu_bh_delete(s.second);
}

typedef struct {
    int fds[2];
    int calls;
} SelfRemoveState;

/* Removes its own handler from inside the dispatch. */
static void self_remove_cb(void *opaque)
{
    SelfRemoveState *s = opaque;

    s->calls++;
    aio_set_fd_handler(s->fds[1], NULL, NULL, NULL);
}

/* A handler may remove itself while it is being dispatched. */
static void test_fd_handler_removed_in_callback(void)
{
    SelfRemoveState s = { .calls = 0 };

    g_assert_cmpint(pipe(s.fds), ==, 0);
    /* The write end of an empty pipe is always writable. */
    aio_set_fd_handler(s.fds[1], NULL, self_remove_cb, &s);
    while (s.calls == 0) {
        aio_poll(true);
    }
    poll_drain();
    g_assert_cmpint(s.calls, ==, 1);
    close(s.fds[0]);
    close(s.fds[1]);
}

static void coroutine_fn yield_once(void *opaque)
{
    (*(int *)opaque)++;
    qemu_coroutine_yield();
    (*(int *)opaque)++;
}

/* enter_if_inactive leaves a coroutine with a pending wake to the loop. */
static void test_enter_if_inactive(void)
{
    int n = 0;
    Coroutine *co = qemu_coroutine_create(yield_once, &n);

    qemu_coroutine_enter_if_inactive(co);
    g_assert_cmpint(n, ==, 1);
    aio_co_wake(co);
    qemu_coroutine_enter_if_inactive(co);   /* scheduled: left alone */
    g_assert_cmpint(n, ==, 1);
    poll_drain();
    g_assert_cmpint(n, ==, 2);
}

/* A handler whose fd was closed behind the loop's back is dropped. */
static void test_closed_fd_handler_dropped(void)
{
    int fds[3] = { -1, -1, 0 };

    g_assert_cmpint(pipe(fds), ==, 0);
    aio_set_fd_handler(fds[0], pipe_read_cb, NULL, fds);
    close(fds[0]);
    close(fds[1]);
    aio_poll(false);                      /* warns and removes it */
    g_assert(!aio_poll(false));           /* no longer reported */
    g_assert_cmpint(fds[2], ==, 0);
}

/* ---- thread pool ---- */

static int square_job(void *opaque)
{
    int *v = opaque;

    g_usleep(1000);
    return *v * *v;
}

typedef struct {
    int in;
    int out;
    bool done;
} PoolArg;

static void coroutine_fn pool_entry(void *opaque)
{
    PoolArg *a = opaque;

    a->out = thread_pool_submit_co(square_job, &a->in);
    a->done = true;
}

/* The submitting coroutine gets the worker function's return value. */
static void test_pool_submit_co_returns_result(void)
{
    PoolArg a = { .in = 7 };

    qemu_coroutine_run_sync(pool_entry, &a, &a.done);
    g_assert_cmpint(a.out, ==, 49);
}

static int fail_job(void *opaque)
{
    return -EIO;
}

static void coroutine_fn pool_fail_entry(void *opaque)
{
    PoolArg *a = opaque;

    a->out = thread_pool_submit_co(fail_job, NULL);
    a->done = true;
}

/* A -errno from the worker comes back unchanged. */
static void test_pool_error_propagates(void)
{
    PoolArg a = { 0 };

    qemu_coroutine_run_sync(pool_fail_entry, &a, &a.done);
    g_assert_cmpint(a.out, ==, -EIO);
}

/* More jobs than the thread limit all complete with their own results. */
static void test_pool_many_concurrent(void)
{
    enum { N = 200 };
    PoolArg *args = g_new0(PoolArg, N);
    int i, finished = 0;
    bool all = false;

    for (i = 0; i < N; i++) {
        args[i].in = i;
        qemu_coroutine_enter(qemu_coroutine_create(pool_entry, &args[i]));
    }
    while (!all) {
        aio_poll(true);
        for (finished = 0, i = 0; i < N; i++) {
            finished += args[i].done;
        }
        all = finished == N;
    }
    for (i = 0; i < N; i++) {
        g_assert_cmpint(args[i].out, ==, i * i);
    }
    g_free(args);
}

/* ---- cheap wake-ups: no lost notifications, no starvation ---- */

/*
 * The tests below would hang, not fail, if a wake-up were lost (the loop
 * blocks forever). A watchdog turns a hang into a loud failure.
 */
#define WAKE_WATCHDOG_SEC 60

/* Tiny job; every 8th one sleeps so completions race the loop's ppoll. */
static int hammer_job(void *opaque)
{
    int *v = opaque;

    if ((*v & 7) == 0) {
        g_usleep(*v % 50);
    }
    return *v + 1;
}

typedef struct {
    int rounds;
    int bad;
    bool done;
} HammerArg;

/* Submit jobs one after another; each completion must wake us. */
static void coroutine_fn hammer_entry(void *opaque)
{
    HammerArg *a = opaque;
    int i;

    for (i = 0; i < a->rounds; i++) {
        int v = i;

        if (thread_pool_submit_co(hammer_job, &v) != i + 1) {
            a->bad++;
        }
    }
    a->done = true;
}

/*
 * Thousands of worker completions land while the loop is blocking in
 * aio_poll(true) (or about to): each one must get through.
 */
static void test_pool_completions_hammer(void)
{
    enum { NCO = 4, ROUNDS = 1500 };
    HammerArg args[NCO] = { { 0 } };
    int i, done;

    alarm(WAKE_WATCHDOG_SEC);
    for (i = 0; i < NCO; i++) {
        args[i].rounds = ROUNDS;
        qemu_coroutine_enter(qemu_coroutine_create(hammer_entry, &args[i]));
    }
    do {
        aio_poll(true);
        for (done = 0, i = 0; i < NCO; i++) {
            done += args[i].done;
        }
    } while (done < NCO);
    alarm(0);
    for (i = 0; i < NCO; i++) {
        g_assert_cmpint(args[i].bad, ==, 0);
    }
}

typedef struct {
    int flag;        /* atomic: set by the thread, cleared by the loop */
    int quit;        /* atomic */
} NotifyArg;

/* Set the flag and aio_notify(), wait for the loop to consume it. */
static gpointer notify_thread(gpointer opaque)
{
    NotifyArg *a = opaque;

    while (!g_atomic_int_get(&a->quit)) {
        if (!g_atomic_int_get(&a->flag)) {
            g_atomic_int_set(&a->flag, 1);
            aio_notify();
        }
    }
    return NULL;
}

/* A bare aio_notify() (no queued work) still ends a blocking poll. */
static void test_notify_wakes_blocked_poll(void)
{
    NotifyArg a = { 0 };
    GThread *t;
    int i;

    alarm(WAKE_WATCHDOG_SEC);
    t = g_thread_new("notify", notify_thread, &a);
    for (i = 0; i < 20000; i++) {
        AIO_WAIT_WHILE(!g_atomic_int_get(&a.flag));
        g_atomic_int_set(&a.flag, 0);
    }
    g_atomic_int_set(&a.quit, 1);
    g_thread_join(t);
    alarm(0);
    poll_drain();
}

/* A same-thread wake makes a blocking poll run it instead of sleeping. */
static void test_local_wake_does_not_block(void)
{
    int stage = 0;

    alarm(WAKE_WATCHDOG_SEC);
    qemu_coroutine_enter(qemu_coroutine_create(wake_entry, &stage));
    g_assert_cmpint(stage, ==, 1);
    g_assert(aio_poll(true));             /* no fd, timer or BH: just it */
    g_assert_cmpint(stage, ==, 2);
    alarm(0);
}

typedef struct {
    Coroutine *peer;
    int *count;
    int rounds;
} PingArg;

/* Wake the peer and wait to be woken, rounds times (a wake-up ring). */
static void coroutine_fn ping_entry(void *opaque)
{
    PingArg *a = opaque;
    int i;

    for (i = 0; i < a->rounds; i++) {
        (*a->count)++;
        if (a->peer && !qemu_coroutine_entered(a->peer)) {
            aio_co_wake(a->peer);
        }
        qemu_coroutine_yield();
    }
    a->peer = NULL;
}

static void record_count_cb(void *opaque)
{
    int *pair = opaque;

    pair[1] = pair[0];
}

/*
 * Two coroutines waking each other forever must not starve the loop: a
 * BH scheduled meanwhile runs long before they are done.
 */
static void test_wake_ring_does_not_starve(void)
{
    enum { ROUNDS = 20000 };
    int pair[2] = { 0, -1 };     /* wake count, count seen by the BH */
    PingArg a = { .count = &pair[0], .rounds = ROUNDS };
    PingArg b = { .count = &pair[0], .rounds = ROUNDS };
    Coroutine *ca = qemu_coroutine_create(ping_entry, &a);
    Coroutine *cb = qemu_coroutine_create(ping_entry, &b);
    QEMUBH *bh = qemu_bh_new(record_count_cb, pair);

    a.peer = cb;
    b.peer = ca;
    qemu_coroutine_enter(ca);             /* wakes b, yields */
    qemu_bh_schedule(bh);
    while (pair[0] < 2 * ROUNDS - 1) {
        aio_poll(true);
    }
    g_assert_cmpint(pair[1], >=, 0);
    g_assert_cmpint(pair[1], <, ROUNDS);
    /* Whoever is left parked gets one last wake to finish. */
    if (a.peer) {
        aio_co_wake(ca);
    }
    if (b.peer) {
        aio_co_wake(cb);
    }
    poll_drain();
    qemu_bh_delete(bh);
}

/*
 * A contended CoMutex hands over in FIFO order through same-thread
 * wakes: every coroutine gets the lock once per round, in turn.
 */
typedef struct {
    CoMutex *m;
    GString *log;
    char name;
    int rounds;
} ChainArg;

static void coroutine_fn chain_entry(void *opaque)
{
    ChainArg *a = opaque;
    int i;

    for (i = 0; i < a->rounds; i++) {
        qemu_co_mutex_lock(a->m);
        g_string_append_c(a->log, a->name);
        aio_co_wake(qemu_coroutine_self());   /* yield while holding */
        qemu_coroutine_yield();
        qemu_co_mutex_unlock(a->m);
    }
}

static void test_mutex_handover_chain(void)
{
    enum { NCO = 3, ROUNDS = 4 };
    CoMutex m;
    ChainArg args[NCO];
    GString *log = g_string_new(NULL);
    int i;

    qemu_co_mutex_init(&m);
    for (i = 0; i < NCO; i++) {
        args[i] = (ChainArg) { &m, log, 'a' + i, ROUNDS };
        qemu_coroutine_enter(qemu_coroutine_create(chain_entry, &args[i]));
    }
    poll_drain();
    g_assert_cmpstr(log->str, ==, "abcabcabcabc");
    g_assert(!m.locked);
    g_string_free(log, true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/coroutine/yield-and-reenter", test_yield_and_reenter);
    g_test_add_func("/coroutine/nested", test_nested);
    g_test_add_func("/coroutine/pool-reuse", test_pool_reuse);
    g_test_add_func("/coroutine/deep-stack", test_deep_stack);
    g_test_add_func("/coroutine/sleep-in-run-sync", test_sleep_and_run_sync);
    g_test_add_func("/coroutine/aio-co-wake-defers",
                    test_aio_co_wake_defers);
    g_test_add_func("/co-mutex/fifo-handover", test_mutex_fifo_handover);
    g_test_add_func("/co-queue/restart-all", test_queue_restart_all);
    g_test_add_func("/co-queue/wait-releases-mutex",
                    test_queue_wait_releases_mutex);
    g_test_add_func("/co-rwlock/writer-excludes-readers",
                    test_rwlock_writer_excludes_readers);
    g_test_add_func("/aio/bh-runs-once", test_bh_runs_once);
    g_test_add_func("/aio/bh-oneshot-from-thread",
                    test_bh_oneshot_from_thread);
    g_test_add_func("/aio/timer-fires-in-order", test_timer_fires_in_order);
    g_test_add_func("/aio/fd-handler-readable", test_fd_handler_readable);
    g_test_add_func("/aio/fd-handler-removed-in-callback",
                    test_fd_handler_removed_in_callback);
    g_test_add_func("/aio/closed-fd-handler-dropped",
                    test_closed_fd_handler_dropped);
    g_test_add_func("/aio/nested-poll-sees-later-bh",
                    test_nested_poll_sees_later_bh);
    g_test_add_func("/coroutine/enter-if-inactive-skips-scheduled",
                    test_enter_if_inactive);
    g_test_add_func("/thread-pool/submit-co-returns-result",
                    test_pool_submit_co_returns_result);
    g_test_add_func("/thread-pool/error-propagates",
                    test_pool_error_propagates);
    g_test_add_func("/thread-pool/many-concurrent", test_pool_many_concurrent);
    g_test_add_func("/thread-pool/completions-hammer",
                    test_pool_completions_hammer);
    g_test_add_func("/aio/notify-wakes-blocked-poll",
                    test_notify_wakes_blocked_poll);
    g_test_add_func("/coroutine/local-wake-does-not-block",
                    test_local_wake_does_not_block);
    g_test_add_func("/coroutine/wake-ring-does-not-starve",
                    test_wake_ring_does_not_starve);
    g_test_add_func("/co-mutex/handover-chain", test_mutex_handover_chain);
    return g_test_run();
}
