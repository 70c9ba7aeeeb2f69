/*
 * Coroutines: cooperative threads that run on the main loop thread.
 *
 * All request processing runs in coroutines. A coroutine runs until it
 * yields (qemu_coroutine_yield) or returns; someone else must then wake
 * it (qemu_coroutine_enter from outside, or aio_co_wake from a completion
 * callback). Switching never makes a system call (sigsetjmp/siglongjmp
 * on stacks made once with makecontext and pooled).
 *
 * Locks here are for coroutines only: CoMutex and CoQueue park the
 * waiting coroutine instead of blocking the thread.
 */
#ifndef QEMU_COROUTINE_H
#define QEMU_COROUTINE_H

#include "qemu/osdep.h"

typedef struct Coroutine Coroutine;
typedef void coroutine_fn CoroutineEntry(void *opaque);

/* Create a coroutine that will run entry(opaque) when first entered. */
Coroutine *qemu_coroutine_create(CoroutineEntry *entry, void *opaque);
/*
 * Transfer control to co until it yields or terminates. A terminated
 * coroutine is freed (returned to the pool) automatically.
 */
void qemu_coroutine_enter(Coroutine *co);
/* Enter co only if it is not currently running or scheduled. */
void qemu_coroutine_enter_if_inactive(Coroutine *co);
/* Give control back to whoever entered us. */
void coroutine_fn qemu_coroutine_yield(void);
/* The running coroutine, or NULL outside coroutine context. */
Coroutine *qemu_coroutine_self(void);
bool qemu_in_coroutine(void);
/* True while co has entered and not yet yielded or terminated. */
bool qemu_coroutine_entered(Coroutine *co);

/* ---- Coroutine queue: a list of coroutines waiting for a condition. */
typedef struct CoQueue {
    GQueue waiters;   /* of Coroutine * */
} CoQueue;

typedef struct CoMutex CoMutex;

void qemu_co_queue_init(CoQueue *queue);
/*
 * Park the calling coroutine on queue until woken. If mutex is non-NULL
 * it is released while waiting and re-taken before returning.
 */
void coroutine_fn qemu_co_queue_wait(CoQueue *queue, CoMutex *mutex);
/* Wake the first / all waiters (they run from the main loop). */
bool qemu_co_queue_next(CoQueue *queue);
void qemu_co_queue_restart_all(CoQueue *queue);
bool qemu_co_queue_empty(CoQueue *queue);

/* ---- Mutex held across yields. Fair: FIFO hand-over. */
struct CoMutex {
    bool locked;
    Coroutine *holder;
    CoQueue queue;
};

void qemu_co_mutex_init(CoMutex *mutex);
void coroutine_fn qemu_co_mutex_lock(CoMutex *mutex);
void coroutine_fn qemu_co_mutex_unlock(CoMutex *mutex);

/* ---- Reader/writer lock for coroutines. */
typedef struct CoRwlock {
    int readers;
    bool writer;
    CoQueue queue;
} CoRwlock;

void qemu_co_rwlock_init(CoRwlock *lock);
void coroutine_fn qemu_co_rwlock_rdlock(CoRwlock *lock);
void coroutine_fn qemu_co_rwlock_wrlock(CoRwlock *lock);
void coroutine_fn qemu_co_rwlock_unlock(CoRwlock *lock);

/*
 * Run entry(opaque) in a new coroutine and drive the main loop until
 * *done becomes true. For synchronous callers outside coroutine
 * context (tools, tests). When already in a coroutine, calls entry
 * directly.
 */
void qemu_coroutine_run_sync(CoroutineEntry *entry, void *opaque,
                             bool *done);

/* A coroutine body that returns a result (0/positive or -errno). */
typedef int coroutine_fn CoroutineIntEntry(void *opaque);

/*
 * Run fn(opaque) in coroutine context as qemu_coroutine_run_sync does
 * and return its result: the one synchronous wrapper for driver
 * callbacks and tools that need coroutine code.
 */
int qemu_coroutine_call_sync(CoroutineIntEntry *fn, void *opaque);

/* Sleep the calling coroutine for ns nanoseconds of monotonic time. */
void coroutine_fn qemu_co_sleep_ns(int64_t ns);

/*
 * Runtime internals, for util/aio-loop.c only. aio_co_wake() called on
 * the coroutine's own thread queues it on a per-thread list (no lock, no
 * allocation, no notification); aio_poll() asks whether that list is
 * non-empty before blocking and runs it after its dispatch phases.
 * qemu_coroutine_run_wakes() returns true if it entered any coroutine.
 */
bool qemu_coroutine_wakes_pending(void);
bool qemu_coroutine_run_wakes(void);

#endif /* QEMU_COROUTINE_H */
