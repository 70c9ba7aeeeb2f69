/*
 * Coroutine synchronisation: CoQueue, CoMutex, CoRwlock.
 *
 * All three park the calling coroutine in a FIFO and let the loop thread
 * run other work; nothing here blocks the thread or takes a host lock.
 * They are used from the main loop thread only, so plain fields suffice.
 *
 * Waiters are always resumed through aio_co_wake(), i.e. from the main
 * loop, never on the waker's stack: a coroutine that releases a lock
 * keeps running until it yields, and the woken one runs afterwards.
 * These are same-thread wakes, so they cost no lock, allocation or system
 * call: the woken coroutine runs at the end of the current aio_poll()
 * iteration (see aio_co_wake() in coroutine-ucontext.c).
 *
 * Ownership is handed over rather than re-contested: unlocking a CoMutex
 * with waiters makes the first waiter the holder before waking it, and a
 * CoRwlock grants the lock to the head of its queue (one writer, or every
 * reader up to the next writer). So no waiter can be overtaken by a
 * coroutine arriving later (fair, FIFO).
 */
#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/aio.h"

/* ---- CoQueue ---- */

void qemu_co_queue_init(CoQueue *queue)
{
    g_queue_init(&queue->waiters);
}

/*
 * Queue first, then release the mutex: a waker that takes the mutex after
 * us is guaranteed to find us on the queue (no lost wake-up).
 */
void coroutine_fn qemu_co_queue_wait(CoQueue *queue, CoMutex *mutex)
{
    Coroutine *self = qemu_coroutine_self();

    g_assert(self);
    g_queue_push_tail(&queue->waiters, self);
    if (mutex) {
        qemu_co_mutex_unlock(mutex);
    }
    qemu_coroutine_yield();
    if (mutex) {
        qemu_co_mutex_lock(mutex);
    }
}

/* Schedule the oldest waiter; returns false if there was none. */
bool qemu_co_queue_next(CoQueue *queue)
{
    Coroutine *co = g_queue_pop_head(&queue->waiters);

    if (!co) {
        return false;
    }
    aio_co_wake(co);
    return true;
}

void qemu_co_queue_restart_all(CoQueue *queue)
{
    while (qemu_co_queue_next(queue)) {
        /* wake them all, in FIFO order */
    }
}

bool qemu_co_queue_empty(CoQueue *queue)
{
    return g_queue_is_empty(&queue->waiters);
}

/* ---- CoMutex ---- */

void qemu_co_mutex_init(CoMutex *mutex)
{
    mutex->locked = false;
    mutex->holder = NULL;
    qemu_co_queue_init(&mutex->queue);
}

/* Take the mutex now if free, else wait to be handed it. Not recursive. */
void coroutine_fn qemu_co_mutex_lock(CoMutex *mutex)
{
    Coroutine *self = qemu_coroutine_self();

    g_assert(self);
    if (!mutex->locked) {
        mutex->locked = true;
        mutex->holder = self;
        return;
    }
    if (mutex->holder == self) {
        fprintf(stderr, "qemu_co_mutex_lock: recursive locking\n");
        abort();
    }
    /* Unlock hands the mutex to us before waking us. */
    g_queue_push_tail(&mutex->queue.waiters, self);
    qemu_coroutine_yield();
    g_assert(mutex->locked && mutex->holder == self);
}

/* Only the holder may unlock; hands over to the oldest waiter if any. */
void coroutine_fn qemu_co_mutex_unlock(CoMutex *mutex)
{
    Coroutine *next;

    g_assert(mutex->locked);
    g_assert(mutex->holder == qemu_coroutine_self());
    next = g_queue_pop_head(&mutex->queue.waiters);
    if (next) {
        mutex->holder = next;
        aio_co_wake(next);
    } else {
        mutex->locked = false;
        mutex->holder = NULL;
    }
}

/* ---- CoRwlock ---- */

/*
 * A CoRwlock's queue holds CoRwWaiter * (not bare Coroutine *): the lock
 * needs to know whether each waiter wants to read or write. Only this
 * file touches that queue, so the CoQueue functions are never used on it.
 */
typedef struct CoRwWaiter {
    Coroutine *co;
    bool writer;
} CoRwWaiter;

void qemu_co_rwlock_init(CoRwlock *lock)
{
    lock->readers = 0;
    lock->writer = false;
    qemu_co_queue_init(&lock->queue);
}

/* Queue the caller and sleep until an unlock grants it the lock. */
static void coroutine_fn co_rwlock_wait(CoRwlock *lock, bool writer)
{
    CoRwWaiter w = { .co = qemu_coroutine_self(), .writer = writer };

    g_assert(w.co);
    g_queue_push_tail(&lock->queue.waiters, &w);
    qemu_coroutine_yield();
}

void coroutine_fn qemu_co_rwlock_rdlock(CoRwlock *lock)
{
    /* Queued writers go first: readers never starve a writer. */
    if (!lock->writer && g_queue_is_empty(&lock->queue.waiters)) {
        lock->readers++;
        return;
    }
    co_rwlock_wait(lock, false);
    g_assert(!lock->writer && lock->readers > 0);
}

void coroutine_fn qemu_co_rwlock_wrlock(CoRwlock *lock)
{
    if (!lock->writer && lock->readers == 0 &&
        g_queue_is_empty(&lock->queue.waiters)) {
        lock->writer = true;
        return;
    }
    co_rwlock_wait(lock, true);
    g_assert(lock->writer && lock->readers == 0);
}

/* Lock is free: grant it to the head writer or to the leading readers. */
static void co_rwlock_grant(CoRwlock *lock)
{
    CoRwWaiter *w = g_queue_peek_head(&lock->queue.waiters);

    if (!w) {
        return;
    }
    if (w->writer) {
        g_queue_pop_head(&lock->queue.waiters);
        lock->writer = true;
        aio_co_wake(w->co);
        return;
    }
    while ((w = g_queue_peek_head(&lock->queue.waiters)) && !w->writer) {
        g_queue_pop_head(&lock->queue.waiters);
        lock->readers++;
        aio_co_wake(w->co);
    }
}

/* Release a read or write hold; the last one out grants the next holder. */
void coroutine_fn qemu_co_rwlock_unlock(CoRwlock *lock)
{
    if (lock->writer) {
        lock->writer = false;
    } else {
        g_assert(lock->readers > 0);
        lock->readers--;
    }
    if (!lock->writer && lock->readers == 0) {
        co_rwlock_grant(lock);
    }
}
