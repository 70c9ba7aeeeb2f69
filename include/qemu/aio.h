/*
 * The main loop: file descriptor handlers, bottom halves and timers, all
 * dispatched on the one main loop thread.
 *
 * There is a single loop per process (the "main AioContext"); functions
 * here act on it. aio_poll() runs one iteration; programs loop on it.
 * Only aio_bh_schedule_threadsafe() and aio_notify() may be called from
 * another thread.
 */
#ifndef QEMU_AIO_H
#define QEMU_AIO_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"

typedef void IOHandler(void *opaque);
typedef void QEMUBHFunc(void *opaque);
typedef struct QEMUBH QEMUBH;
typedef struct QEMUTimer QEMUTimer;
typedef void QEMUTimerCB(void *opaque);

/* Call once at start-up (idempotent). Aborts if it cannot set up. */
void qemu_init_main_loop(void);

/*
 * Watch fd: io_read/io_write are called when it is readable/writable.
 * Passing NULL for both removes the handler.
 */
void aio_set_fd_handler(int fd, IOHandler *io_read, IOHandler *io_write,
                        void *opaque);

/* Bottom halves: callbacks run at the next loop iteration. */
QEMUBH *qemu_bh_new(QEMUBHFunc *cb, void *opaque);
void qemu_bh_schedule(QEMUBH *bh);
void qemu_bh_cancel(QEMUBH *bh);
void qemu_bh_delete(QEMUBH *bh);
/* Run cb(opaque) once on the loop thread; callable from any thread. */
void aio_bh_schedule_oneshot(QEMUBHFunc *cb, void *opaque);

/* Monotonic clock in nanoseconds. */
int64_t qemu_clock_get_ns(void);

/* One-shot timers on the monotonic clock. */
QEMUTimer *timer_new_ns(QEMUTimerCB *cb, void *opaque);
void timer_mod_ns(QEMUTimer *t, int64_t expire_ns);
void timer_del(QEMUTimer *t);
void timer_free(QEMUTimer *t);
bool timer_pending(QEMUTimer *t);

/*
 * Wake co from the loop: it is entered at the next iteration (from a
 * bottom half), never recursively from the caller's stack. Safe from any
 * thread.
 */
void aio_co_wake(Coroutine *co);

/* Wake a blocked aio_poll(); safe from any thread. */
void aio_notify(void);

/*
 * Run one loop iteration: dispatch ready bottom halves, expired timers
 * and ready fds. If blocking, wait until at least one of them happens.
 * Returns true if some progress was made.
 */
bool aio_poll(bool blocking);

/* Run aio_poll(true) until cond becomes true. */
#define AIO_WAIT_WHILE(cond) \
    do { \
        while ((cond)) { \
            aio_poll(true); \
        } \
    } while (0)

#endif /* QEMU_AIO_H */
