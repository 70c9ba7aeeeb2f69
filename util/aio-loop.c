/*
 * The main loop: fd handlers, bottom halves and timers, dispatched by
 * aio_poll() on the main loop thread.
 *
 * State (one global loop):
 *  - fd handlers in a list; removal while a dispatch walks the list only
 *    marks the entry deleted, and the outermost walker frees it;
 *  - bottom halves: a FIFO of scheduled BHs. Dispatch pops one BH at a
 *    time (bounded by the queue length at entry) so that a nested
 *    aio_poll() from inside a callback still sees the remaining BHs;
 *  - one-shot BHs from any thread: a mutex-protected FIFO of (cb, opaque),
 *    also popped one at a time; aio_co_wake() is built on it;
 *  - timers: a list sorted by expiry on CLOCK_MONOTONIC;
 *  - an eventfd that aio_notify() writes to wake a blocked ppoll().
 *
 * Everything but the one-shot FIFO, the eventfd and the two notification
 * counters below is touched only by the loop thread, so it needs no lock.
 * A blocking aio_poll() with nothing else to wait for sleeps on the
 * eventfd until another thread notifies.
 *
 * Cheap notification: the eventfd is written only when the loop may be
 * asleep in ppoll. A blocking aio_poll() raises loop.notify_me *before*
 * it looks for runnable work and lowers it after ppoll returns; a
 * notifier publishes its work (and sets loop.notified) *before* it reads
 * notify_me. Both sides put a full barrier between their store and their
 * load, so at least one of them sees the other: either the loop finds
 * the work (or the notified flag) and does not block, or the notifier
 * sees notify_me and writes the eventfd. Callers on the loop thread
 * always see notify_me == 0 (callbacks run outside the ppoll window), so
 * they never make the system call.
 *
 * Same-thread coroutine wake-ups do not come through here as one-shots:
 * they sit on the coroutine layer's own list, which aio_poll() drains
 * after the dispatch phases (qemu_coroutine_run_wakes()).
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "trace.h"

#include <poll.h>
#include <time.h>
#include <pthread.h>
#include <sys/eventfd.h>

typedef struct AioHandler {
    int fd;
    IOHandler *io_read;
    IOHandler *io_write;
    void *opaque;
    bool deleted;
} AioHandler;

struct QEMUBH {
    QEMUBHFunc *cb;
    void *opaque;
    bool scheduled;   /* will run at the next dispatch */
    bool queued;      /* present in loop.bh_queue */
    bool deleted;     /* free when dequeued */
};

struct QEMUTimer {
    QEMUTimerCB *cb;
    void *opaque;
    int64_t expire_ns;
    bool pending;
};

typedef struct OneshotBH {
    QEMUBHFunc *cb;
    void *opaque;
} OneshotBH;

static struct {
    int notify_fd;
    GList *handlers;          /* of AioHandler * */
    int walking_handlers;     /* nesting depth of handler dispatch */
    GQueue bh_queue;          /* of QEMUBH * */
    GList *timers;            /* of QEMUTimer *, sorted by expire_ns */
    pthread_mutex_t oneshot_lock;
    GQueue oneshot_queue;     /* of OneshotBH *, under oneshot_lock */
    int notify_me;            /* atomic; > 0 while in the ppoll window */
    int notified;             /* atomic; aio_notify() since last poll */
} loop;

static pthread_once_t loop_once = PTHREAD_ONCE_INIT;

static void aio_loop_init_once(void)
{
    loop.notify_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop.notify_fd < 0) {
        fprintf(stderr, "qemu_init_main_loop: cannot create eventfd: %s\n",
                strerror(errno));
        abort();
    }
    g_queue_init(&loop.bh_queue);
    g_queue_init(&loop.oneshot_queue);
    pthread_mutex_init(&loop.oneshot_lock, NULL);
}

/* Idempotent and thread-safe; every entry point below calls it lazily. */
void qemu_init_main_loop(void)
{
    pthread_once(&loop_once, aio_loop_init_once);
}

/* CLOCK_MONOTONIC: immune to wall-clock jumps, shared by all timers. */
int64_t qemu_clock_get_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

/*
 * Make the next (or current) ppoll return at once. Safe from any thread.
 * Callers publish their work first; the flag makes a poll that has not
 * yet blocked skip blocking, and the eventfd (only written when the loop
 * is in its ppoll window, see top comment) wakes one that has.
 */
void aio_notify(void)
{
    uint64_t one = 1;
    ssize_t ret;

    qemu_init_main_loop();
    g_atomic_int_set(&loop.notified, 1);
    /* Order our work and the flag before reading notify_me (Dekker). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!g_atomic_int_get(&loop.notify_me)) {
        return;   /* the loop will look for work before it blocks */
    }
    trace_aio_notify_write();
    do {
        ret = write(loop.notify_fd, &one, sizeof(one));
    } while (ret < 0 && errno == EINTR);
    /* EAGAIN means the counter is saturated: already notified. */
}

/* Drain the eventfd after ppoll reported it readable. */
static void aio_notify_clear(void)
{
    uint64_t val;
    ssize_t ret;

    do {
        ret = read(loop.notify_fd, &val, sizeof(val));
    } while (ret < 0 && errno == EINTR);
}

/* ---- fd handlers ---- */

static AioHandler *aio_find_handler(int fd)
{
    GList *l;

    for (l = loop.handlers; l; l = l->next) {
        AioHandler *h = l->data;
        if (h->fd == fd && !h->deleted) {
            return h;
        }
    }
    return NULL;
}

/*
 * One handler per fd: setting again replaces the callbacks, NULL/NULL
 * removes it. Removal during dispatch is deferred (see top comment) so a
 * callback may remove its own or any other handler.
 */
void aio_set_fd_handler(int fd, IOHandler *io_read, IOHandler *io_write,
                        void *opaque)
{
    AioHandler *h;

    qemu_init_main_loop();
    h = aio_find_handler(fd);
    if (!io_read && !io_write) {
        if (!h) {
            return;
        }
        if (loop.walking_handlers) {
            h->deleted = true;
        } else {
            loop.handlers = g_list_remove(loop.handlers, h);
            g_free(h);
        }
        return;
    }
    if (!h) {
        h = g_new0(AioHandler, 1);
        h->fd = fd;
        loop.handlers = g_list_append(loop.handlers, h);
    }
    h->io_read = io_read;
    h->io_write = io_write;
    h->opaque = opaque;
}

/* Free handlers marked deleted; only when no dispatch is walking. */
static void aio_reap_handlers(void)
{
    GList *l = loop.handlers;

    while (l) {
        GList *next = l->next;
        AioHandler *h = l->data;

        if (h->deleted) {
            loop.handlers = g_list_delete_link(loop.handlers, l);
            g_free(h);
        }
        l = next;
    }
}

/*
 * Build the pollfd array: slot 0 is the notifier, then one per handler
 * (hs[i] is the handler for pfd[i + 1]). Returns the number of slots.
 */
static int aio_fill_pollfds(struct pollfd **pfdp, AioHandler ***hsp)
{
    int n = g_list_length(loop.handlers);
    struct pollfd *pfd = g_new0(struct pollfd, n + 1);
    AioHandler **hs = g_new0(AioHandler *, n + 1);
    GList *l;
    int i = 1;

    pfd[0].fd = loop.notify_fd;
    pfd[0].events = POLLIN;
    for (l = loop.handlers; l; l = l->next) {
        AioHandler *h = l->data;

        if (h->deleted) {
            continue;
        }
        pfd[i].fd = h->fd;
        pfd[i].events = (h->io_read ? POLLIN : 0) | (h->io_write ? POLLOUT : 0);
        hs[i - 1] = h;
        i++;
    }
    *pfdp = pfd;
    *hsp = hs;
    return i;
}

/* Call the handlers whose fds ppoll reported ready. */
static bool aio_dispatch_handlers(struct pollfd *pfd, AioHandler **hs, int n)
{
    bool progress = false;
    int i;

    loop.walking_handlers++;
    for (i = 1; i < n; i++) {
        AioHandler *h = hs[i - 1];
        short rev = pfd[i].revents;

        if (!rev || h->deleted) {
            continue;
        }
        if (rev & POLLNVAL) {
            /* Closed without removing its handler: drop it, don't spin. */
            fprintf(stderr, "aio_poll: fd %d is not open; removing its "
                    "handler\n", h->fd);
            h->deleted = true;
            continue;
        }
        if ((rev & (POLLIN | POLLHUP | POLLERR)) && h->io_read) {
            h->io_read(h->opaque);
            progress = true;
        }
        if ((rev & (POLLOUT | POLLHUP | POLLERR)) && h->io_write &&
            !h->deleted) {
            h->io_write(h->opaque);
            progress = true;
        }
    }
    loop.walking_handlers--;
    if (!loop.walking_handlers) {
        aio_reap_handlers();
    }
    return progress;
}

/* ---- bottom halves ---- */

/* A reusable BH, idle until scheduled. Loop thread only. */
QEMUBH *qemu_bh_new(QEMUBHFunc *cb, void *opaque)
{
    QEMUBH *bh = g_new0(QEMUBH, 1);

    qemu_init_main_loop();
    bh->cb = cb;
    bh->opaque = opaque;
    return bh;
}

/* Run cb once at the next dispatch; scheduling twice runs it once. */
void qemu_bh_schedule(QEMUBH *bh)
{
    g_assert(!bh->deleted);
    bh->scheduled = true;
    if (!bh->queued) {
        bh->queued = true;
        g_queue_push_tail(&loop.bh_queue, bh);
    }
}

/* Unschedule; the BH stays queued but is skipped. */
void qemu_bh_cancel(QEMUBH *bh)
{
    bh->scheduled = false;
}

/* Cancel and free; a queued BH is freed by the dispatcher that pops it. */
void qemu_bh_delete(QEMUBH *bh)
{
    bh->scheduled = false;
    if (bh->queued) {
        bh->deleted = true;   /* the dispatcher frees it */
    } else {
        g_free(bh);
    }
}

/* Any thread: queue (cb, opaque) under the lock, then wake the loop. */
void aio_bh_schedule_oneshot(QEMUBHFunc *cb, void *opaque)
{
    OneshotBH *o = g_new(OneshotBH, 1);

    qemu_init_main_loop();
    o->cb = cb;
    o->opaque = opaque;
    pthread_mutex_lock(&loop.oneshot_lock);
    g_queue_push_tail(&loop.oneshot_queue, o);
    pthread_mutex_unlock(&loop.oneshot_lock);
    aio_notify();
}

/* True if some BH, one-shot callback or coroutine wake-up is waiting. */
static bool aio_bh_pending(void)
{
    bool pending;
    GList *l;

    if (qemu_coroutine_wakes_pending()) {
        return true;
    }
    for (l = loop.bh_queue.head; l; l = l->next) {
        if (((QEMUBH *)l->data)->scheduled) {
            return true;
        }
    }
    pthread_mutex_lock(&loop.oneshot_lock);
    pending = !g_queue_is_empty(&loop.oneshot_queue);
    pthread_mutex_unlock(&loop.oneshot_lock);
    return pending;
}

/* Run the BHs queued at entry, one pop at a time (nested polls safe). */
static bool aio_dispatch_bhs(void)
{
    guint n = loop.bh_queue.length;
    bool progress = false;

    while (n-- > 0) {
        QEMUBH *bh = g_queue_pop_head(&loop.bh_queue);

        if (!bh) {
            break;
        }
        bh->queued = false;
        if (bh->deleted) {
            g_free(bh);
        } else if (bh->scheduled) {
            bh->scheduled = false;
            bh->cb(bh->opaque);
            progress = true;
        }
    }
    return progress;
}

/* Run the one-shot callbacks queued at entry. */
static bool aio_dispatch_oneshots(void)
{
    guint n;
    bool progress = false;

    pthread_mutex_lock(&loop.oneshot_lock);
    n = loop.oneshot_queue.length;
    pthread_mutex_unlock(&loop.oneshot_lock);

    while (n-- > 0) {
        OneshotBH *o;

        pthread_mutex_lock(&loop.oneshot_lock);
        o = g_queue_pop_head(&loop.oneshot_queue);
        pthread_mutex_unlock(&loop.oneshot_lock);
        if (!o) {
            break;
        }
        o->cb(o->opaque);
        g_free(o);
        progress = true;
    }
    return progress;
}

/* ---- timers ---- */

/* An unarmed timer; arm with timer_mod_ns. Loop thread only. */
QEMUTimer *timer_new_ns(QEMUTimerCB *cb, void *opaque)
{
    QEMUTimer *t = g_new0(QEMUTimer, 1);

    qemu_init_main_loop();
    t->cb = cb;
    t->opaque = opaque;
    return t;
}

/* Disarm; harmless if not armed. */
void timer_del(QEMUTimer *t)
{
    if (t->pending) {
        loop.timers = g_list_remove(loop.timers, t);
        t->pending = false;
    }
}

/* (Re-)arm for an absolute qemu_clock_get_ns() deadline. */
void timer_mod_ns(QEMUTimer *t, int64_t expire_ns)
{
    GList *l;

    timer_del(t);
    t->expire_ns = expire_ns;
    t->pending = true;
    /* Insert after every timer due no later: equal deadlines keep FIFO. */
    for (l = loop.timers; l; l = l->next) {
        if (((QEMUTimer *)l->data)->expire_ns > expire_ns) {
            break;
        }
    }
    loop.timers = g_list_insert_before(loop.timers, l, t);
}

void timer_free(QEMUTimer *t)
{
    if (t) {
        timer_del(t);
        g_free(t);
    }
}

bool timer_pending(QEMUTimer *t)
{
    return t->pending;
}

/* Nanoseconds until the first timer expires; -1 if none is armed. */
static int64_t aio_timer_timeout(void)
{
    QEMUTimer *t;
    int64_t delta;

    if (!loop.timers) {
        return -1;
    }
    t = loop.timers->data;
    delta = t->expire_ns - qemu_clock_get_ns();
    return MAX(delta, 0);
}

/* Fire timers that were due at entry, earliest first. */
static bool aio_dispatch_timers(void)
{
    int64_t now = qemu_clock_get_ns();
    guint n = g_list_length(loop.timers);
    bool progress = false;

    while (n-- > 0 && loop.timers) {
        QEMUTimer *t = loop.timers->data;

        if (t->expire_ns > now) {
            break;
        }
        loop.timers = g_list_delete_link(loop.timers, loop.timers);
        t->pending = false;
        t->cb(t->opaque);
        progress = true;
    }
    return progress;
}

/* ---- the loop ---- */

/* ppoll with a nanosecond timeout (-1: forever), retrying on EINTR. */
static int aio_ppoll(struct pollfd *pfd, int n, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    int ret;

    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    do {
        ret = ppoll(pfd, n, tsp, NULL);
    } while (ret < 0 && errno == EINTR);
    return ret;
}

/*
 * Open the ppoll window of a blocking poll and pick its timeout: 0 if
 * anything is runnable or a notification came in, else until the first
 * timer. notify_me is raised before looking (see top comment).
 */
static int64_t aio_poll_begin_wait(void)
{
    g_atomic_int_inc(&loop.notify_me);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (g_atomic_int_get(&loop.notified) || aio_bh_pending()) {
        return 0;
    }
    return aio_timer_timeout();
}

/*
 * One iteration: wait (only if blocking and nothing is runnable) until
 * an fd is ready, the first timer is due or the loop is notified, then
 * dispatch fds, due timers, one-shots (cross-thread wake-ups), BHs and
 * same-thread coroutine wake-ups. Returns true if any callback ran; a
 * bare notification is not progress.
 */
bool aio_poll(bool blocking)
{
    struct pollfd *pfd;
    AioHandler **hs;
    int64_t timeout = 0;
    bool progress = false;
    int n, ret;

    qemu_init_main_loop();
    n = aio_fill_pollfds(&pfd, &hs);
    if (blocking) {
        timeout = aio_poll_begin_wait();
    }
    ret = aio_ppoll(pfd, n, timeout);
    if (blocking) {
        g_atomic_int_add(&loop.notify_me, -1);
    }
    /*
     * Any notification so far is answered by this poll returning. The
     * exchange pairs with the notifier's store, so whatever it published
     * is visible to our caller; a later one leaves the flag set.
     */
    __atomic_exchange_n(&loop.notified, 0, __ATOMIC_SEQ_CST);
    if (ret < 0) {
        fprintf(stderr, "aio_poll: ppoll failed: %s\n", strerror(errno));
        abort();
    }
    if (pfd[0].revents & POLLIN) {
        aio_notify_clear();
    }
    if (ret > 0) {
        progress |= aio_dispatch_handlers(pfd, hs, n);
    }
    g_free(pfd);
    g_free(hs);

    progress |= aio_dispatch_timers();
    progress |= aio_dispatch_oneshots();
    progress |= aio_dispatch_bhs();
    progress |= qemu_coroutine_run_wakes();
    return progress;
}
