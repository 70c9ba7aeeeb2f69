/*
 * Coroutines on private stacks, switched with sigsetjmp/siglongjmp.
 *
 * Each coroutine owns an mmap'd stack with a PROT_NONE guard page below
 * it. makecontext/swapcontext run exactly once per stack, to start the
 * trampoline; the trampoline records its jump buffer and from then on
 * every switch is a sigsetjmp(buf, 0) + siglongjmp pair, which saves no
 * signal mask and so makes no system call.
 *
 * The trampoline loops forever: run entry(opaque), report termination to
 * the caller, and wait to be re-entered with a new entry. That is what
 * makes pooling cheap: a finished coroutine goes back on a per-thread
 * free list (up to POOL_MAX) with its stack and its trampoline frame
 * intact, and qemu_coroutine_create() just fills in entry/opaque.
 *
 * State is per thread (__thread): the current coroutine, the "leader"
 * (a pseudo-coroutine standing for the thread's own stack) and the pool.
 * Coroutines in practice live on the main loop thread; a coroutine must
 * only ever be entered on the thread that created it.
 *
 * co->caller is non-NULL exactly while co is running (entered and not
 * yet yielded or terminated); it is whom we return to. co->scheduled is
 * set while an aio_co_wake() is pending and is the only field touched by
 * other threads (atomically).
 *
 * aio_co_wake() has two paths. From another thread (thread-pool
 * completions) it goes through the loop's locked one-shot queue, which
 * also notifies the loop. On the coroutine's own thread (lock hand-over,
 * CoQueue wake-ups) it just links co onto this thread's wake list through
 * co->wake_next: no lock, no allocation, no system call. aio_poll() runs
 * that list after its dispatch phases and will not block while it is
 * non-empty. Only the owning thread touches the list.
 */
#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/aio.h"
#include "trace.h"

#include <setjmp.h>
#include <ucontext.h>
#include <sys/mman.h>

#ifdef __SANITIZE_ADDRESS__
#define CONFIG_ASAN 1
#include <sanitizer/asan_interface.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#define CONFIG_VALGRIND_H 1
#include <valgrind/valgrind.h>
#endif
#endif

#define COROUTINE_STACK_SIZE (1 * MiB)
#define COROUTINE_POOL_MAX 64

/* Values passed through siglongjmp; never 0. */
typedef enum {
    COROUTINE_ENTER = 1,
    COROUTINE_YIELD = 2,
    COROUTINE_TERMINATE = 3,
} CoroutineAction;

struct Coroutine {
    CoroutineEntry *entry;
    void *opaque;
    Coroutine *caller;       /* non-NULL while running */
    int scheduled;           /* aio_co_wake pending (atomic) */
    sigjmp_buf env;
    void *stack;             /* usable stack (above the guard page) */
    size_t stack_size;
    void *map;               /* whole mapping, guard page included */
    size_t map_size;
    unsigned valgrind_id;
#ifdef CONFIG_ASAN
    void *fake_stack;
#endif
    Coroutine *pool_next;
    Coroutine *home;         /* &co_leader of the creating thread */
    Coroutine *wake_next;    /* link in the home thread's wake list */
};

static __thread Coroutine *co_current;
static __thread Coroutine co_leader;
static __thread Coroutine *co_pool;
static __thread unsigned co_pool_size;
/* Handshake buffer used only while starting a fresh trampoline. */
static __thread sigjmp_buf *co_start_env;
/* Same-thread aio_co_wake() FIFO, linked through wake_next. */
static __thread Coroutine *co_wake_head;
static __thread Coroutine *co_wake_tail;

/*
 * Most same-thread wake-ups qemu_coroutine_run_wakes() enters in one call,
 * counting ones queued while it runs: coroutines waking each other in a
 * ring cannot starve fds and timers.
 */
#define COROUTINE_WAKE_BUDGET 1024

/* Switch from -> to, delivering action; returns the action we resume with. */
static CoroutineAction coroutine_switch(Coroutine *from, Coroutine *to,
                                        CoroutineAction action)
{
    int ret;
#ifdef CONFIG_ASAN
    void *fake_save = NULL;
    const void *old_bottom;
    size_t old_size;

    __sanitizer_start_switch_fiber(action == COROUTINE_TERMINATE ?
                                   NULL : &fake_save,
                                   to->stack, to->stack_size);
#endif
    ret = sigsetjmp(from->env, 0);
    if (ret == 0) {
        siglongjmp(to->env, action);
    }
#ifdef CONFIG_ASAN
    __sanitizer_finish_switch_fiber(fake_save, &old_bottom, &old_size);
    if (!co_leader.stack) {
        /* First time back on the thread stack: learn its bounds. */
        co_leader.stack = (void *)old_bottom;
        co_leader.stack_size = old_size;
    }
#endif
    return ret;
}

/* Body of every coroutine stack: run entries forever (see top comment). */
static void coroutine_trampoline(int lo, int hi)
{
    Coroutine *co = (Coroutine *)(((uintptr_t)(unsigned)hi << 32) |
                                  (uintptr_t)(unsigned)lo);
#ifdef CONFIG_ASAN
    const void *bottom;
    size_t size;

    /* Learn the creator's stack bounds (the thread's, the first time). */
    __sanitizer_finish_switch_fiber(NULL, &bottom, &size);
    if (!co_leader.stack) {
        co_leader.stack = (void *)bottom;
        co_leader.stack_size = size;
    }
#endif

    /* Record our context, then return to the creator. */
    if (!sigsetjmp(co->env, 0)) {
#ifdef CONFIG_ASAN
        __sanitizer_start_switch_fiber(&co->fake_stack, bottom, size);
#endif
        siglongjmp(*co_start_env, 1);
    }
#ifdef CONFIG_ASAN
    __sanitizer_finish_switch_fiber(co->fake_stack, NULL, NULL);
#endif

    for (;;) {
        co->entry(co->opaque);
        trace_qemu_coroutine_terminate(co);
        coroutine_switch(co, co->caller, COROUTINE_TERMINATE);
    }
}

/* Allocate a stack and run the trampoline up to its first sigsetjmp. */
static Coroutine *coroutine_new(void)
{
    size_t page = getpagesize();
    Coroutine *co = g_new0(Coroutine, 1);
    ucontext_t old_uc, uc;
    sigjmp_buf old_env;
    uintptr_t p = (uintptr_t)co;

    co->map_size = COROUTINE_STACK_SIZE + page;
    co->map = mmap(NULL, co->map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (co->map == MAP_FAILED) {
        fprintf(stderr, "qemu_coroutine_create: cannot map stack: %s\n",
                strerror(errno));
        abort();
    }
    /* The stack grows down: the lowest page is the guard. */
    if (mprotect(co->map, page, PROT_NONE) < 0) {
        fprintf(stderr, "qemu_coroutine_create: cannot protect guard: %s\n",
                strerror(errno));
        abort();
    }
    co->stack = (char *)co->map + page;
    co->stack_size = COROUTINE_STACK_SIZE;
#ifdef CONFIG_VALGRIND_H
    co->valgrind_id = VALGRIND_STACK_REGISTER(co->stack,
                                              (char *)co->stack +
                                              co->stack_size);
#endif

    if (getcontext(&uc) < 0) {
        abort();
    }
    uc.uc_link = NULL;
    uc.uc_stack.ss_sp = co->stack;
    uc.uc_stack.ss_size = co->stack_size;
    uc.uc_stack.ss_flags = 0;
    makecontext(&uc, (void (*)(void))coroutine_trampoline, 2,
                (int)(uint32_t)p, (int)(uint32_t)(p >> 32));

    co_start_env = &old_env;
    if (!sigsetjmp(old_env, 0)) {
#ifdef CONFIG_ASAN
        void *fake_save = NULL;
        __sanitizer_start_switch_fiber(&fake_save, co->stack, co->stack_size);
        co->fake_stack = fake_save;
#endif
        swapcontext(&old_uc, &uc);
    }
#ifdef CONFIG_ASAN
    __sanitizer_finish_switch_fiber(co->fake_stack, NULL, NULL);
    co->fake_stack = NULL;
#endif
    co_start_env = NULL;
    return co;
}

/* Unmap a coroutine that will never run again. */
static void coroutine_delete(Coroutine *co)
{
#ifdef CONFIG_VALGRIND_H
    VALGRIND_STACK_DEREGISTER(co->valgrind_id);
#endif
    munmap(co->map, co->map_size);
    g_free(co);
}

/* Take a parked coroutine from the pool if any: no mmap, no makecontext. */
Coroutine *qemu_coroutine_create(CoroutineEntry *entry, void *opaque)
{
    Coroutine *co = co_pool;

    if (co) {
        co_pool = co->pool_next;
        co_pool_size--;
    } else {
        co = coroutine_new();
    }
    co->entry = entry;
    co->opaque = opaque;
    co->caller = NULL;
    co->pool_next = NULL;
    co->home = &co_leader;
    co->wake_next = NULL;
    g_atomic_int_set(&co->scheduled, 0);
    trace_qemu_coroutine_create(co, entry, opaque);
    return co;
}

/* Recycle a terminated coroutine into the pool, or free it. */
static void coroutine_release(Coroutine *co)
{
    co->entry = NULL;
    co->opaque = NULL;
    if (co_pool_size < COROUTINE_POOL_MAX) {
        co->pool_next = co_pool;
        co_pool = co;
        co_pool_size++;
    } else {
        coroutine_delete(co);
    }
}

/*
 * Run co on its stack until it yields or returns; we are its caller for
 * that time. Entering a running coroutine, or one with a pending
 * aio_co_wake, would run it twice: both abort loudly.
 */
void qemu_coroutine_enter(Coroutine *co)
{
    Coroutine *self = co_current ? co_current : &co_leader;
    CoroutineAction ret;

    if (co->caller) {
        fprintf(stderr, "Co-routine re-entered recursively\n");
        abort();
    }
    if (g_atomic_int_get(&co->scheduled)) {
        fprintf(stderr, "Co-routine entered while scheduled by aio_co_wake\n");
        abort();
    }
    g_assert(co->entry);

    trace_qemu_coroutine_enter(self, co, co->opaque);
    co->caller = self;
    co_current = co;
    ret = coroutine_switch(self, co, COROUTINE_ENTER);
    co_current = (self == &co_leader) ? NULL : self;

    if (ret == COROUTINE_TERMINATE) {
        co->caller = NULL;
        coroutine_release(co);
    }
}

/* For wakers that may race with another wake-up of the same coroutine. */
void qemu_coroutine_enter_if_inactive(Coroutine *co)
{
    if (!co->caller && !g_atomic_int_get(&co->scheduled)) {
        qemu_coroutine_enter(co);
    }
}

/*
 * Back to whoever entered us; we stay parked until entered again (directly
 * or through aio_co_wake). co_current is restored by the caller's enter.
 */
void coroutine_fn qemu_coroutine_yield(void)
{
    Coroutine *self = co_current;
    Coroutine *to;

    if (!self) {
        fprintf(stderr, "Co-routine is yielding to no one\n");
        abort();
    }
    to = self->caller;
    trace_qemu_coroutine_yield(self, to);
    self->caller = NULL;
    coroutine_switch(self, to, COROUTINE_YIELD);
}

Coroutine *qemu_coroutine_self(void)
{
    return co_current;
}

bool qemu_in_coroutine(void)
{
    return co_current != NULL;
}

bool qemu_coroutine_entered(Coroutine *co)
{
    return co->caller != NULL;
}

/* Bottom half scheduled by aio_co_wake: enter the coroutine. */
static void aio_co_wake_bh(void *opaque)
{
    Coroutine *co = opaque;

    g_atomic_int_set(&co->scheduled, 0);
    qemu_coroutine_enter(co);
}

/*
 * Defer entering co to the loop: on co's own thread via the plain wake
 * list, from any other thread via a thread-safe one-shot BH. The
 * scheduled flag catches double wake-ups, a sure sign of a lost-wakeup or
 * double-completion bug in the caller.
 */
void aio_co_wake(Coroutine *co)
{
    if (!g_atomic_int_compare_and_exchange(&co->scheduled, 0, 1)) {
        fprintf(stderr, "Co-routine was already scheduled by aio_co_wake\n");
        abort();
    }
    if (co->home == &co_leader) {
        trace_aio_co_wake_local(co);
        co->wake_next = NULL;
        if (co_wake_tail) {
            co_wake_tail->wake_next = co;
        } else {
            co_wake_head = co;
        }
        co_wake_tail = co;
        return;
    }
    trace_aio_co_wake(co);
    aio_bh_schedule_oneshot(aio_co_wake_bh, co);
}

bool qemu_coroutine_wakes_pending(void)
{
    return co_wake_head != NULL;
}

/*
 * Enter queued same-thread wake-ups in FIFO order, up to the budget.
 * Pops one at a time, so a nested aio_poll() from an entered coroutine's
 * callee sees (and may run) the rest of the list consistently.
 */
bool qemu_coroutine_run_wakes(void)
{
    unsigned budget = COROUTINE_WAKE_BUDGET;
    bool progress = false;

    while (co_wake_head && budget-- > 0) {
        Coroutine *co = co_wake_head;

        co_wake_head = co->wake_next;
        if (!co_wake_head) {
            co_wake_tail = NULL;
        }
        co->wake_next = NULL;
        aio_co_wake_bh(co);
        progress = true;
    }
    return progress;
}

/*
 * Synchronous wrapper for tools and tests. In coroutine context the entry
 * is simply called (no nested loop on a coroutine stack); otherwise the
 * loop runs on the thread stack until entry reports *done.
 */
void qemu_coroutine_run_sync(CoroutineEntry *entry, void *opaque,
                             bool *done)
{
    if (qemu_in_coroutine()) {
        entry(opaque);
        return;
    }
    qemu_coroutine_enter(qemu_coroutine_create(entry, opaque));
    while (!*done) {
        aio_poll(true);
    }
}

typedef struct CoroutineCallSync {
    CoroutineIntEntry *fn;
    void *opaque;
    int ret;
    bool done;
} CoroutineCallSync;

/* Run the caller's body and publish its result for the waiting loop. */
static void coroutine_fn coroutine_call_sync_entry(void *opaque)
{
    CoroutineCallSync *c = opaque;

    c->ret = c->fn(c->opaque);
    c->done = true;
}

int qemu_coroutine_call_sync(CoroutineIntEntry *fn, void *opaque)
{
    CoroutineCallSync c = { .fn = fn, .opaque = opaque };

    qemu_coroutine_run_sync(coroutine_call_sync_entry, &c, &c.done);
    return c.ret;
}

/* Timer callback of qemu_co_sleep_ns: wake the sleeper. */
static void co_sleep_timer_cb(void *opaque)
{
    aio_co_wake(opaque);
}

/*
 * Park on a one-shot timer. A direct enter before expiry just ends the
 * sleep early: the timer is freed, so no stale wake-up follows.
 */
void coroutine_fn qemu_co_sleep_ns(int64_t ns)
{
    Coroutine *self = qemu_coroutine_self();
    QEMUTimer *t;

    g_assert(self);
    t = timer_new_ns(co_sleep_timer_cb, self);
    timer_mod_ns(t, qemu_clock_get_ns() + MAX(ns, 0));
    qemu_coroutine_yield();
    timer_free(t);
}
