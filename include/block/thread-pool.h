/*
 * A pool of worker threads for blocking system calls.
 *
 * The main loop never blocks; work that must (fallocate, fsync without
 * io_uring, preadv on a kernel without io_uring) runs on a worker thread
 * while the submitting coroutine yields. Workers are created on demand up
 * to a small maximum and exit after being idle for a while.
 */
#ifndef BLOCK_THREAD_POOL_H
#define BLOCK_THREAD_POOL_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"

/* Runs on a worker thread; returns 0/positive or -errno. */
typedef int ThreadPoolFunc(void *opaque);

/*
 * Run func(opaque) on a worker thread and yield until it has finished.
 * Returns func's return value. Must be called in coroutine context.
 */
int coroutine_fn thread_pool_submit_co(ThreadPoolFunc *func, void *opaque);

#endif /* BLOCK_THREAD_POOL_H */
