/*
 * Worker threads for blocking calls, completed back into coroutines.
 *
 * State: one global pool (job FIFO, thread counts) under pool.lock; idle
 * workers sleep on pool.cond. A job lives on the submitting coroutine's
 * stack: the coroutine queues it, yields, and is re-entered by the main
 * loop once the worker has stored the result and called aio_co_wake().
 * The worker never touches the job after waking the coroutine (the stack
 * frame may be gone by then), so the wake is the hand-over point.
 *
 * Workers are spawned on demand when no thread is idle, up to
 * THREAD_POOL_MAX, and exit after THREAD_POOL_IDLE_SEC without work.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "block/thread-pool.h"
#include "trace.h"

#include <pthread.h>
#include <time.h>

#define THREAD_POOL_MAX 64
#define THREAD_POOL_IDLE_SEC 10

typedef struct ThreadPoolJob {
    ThreadPoolFunc *func;
    void *opaque;
    Coroutine *co;
    int ret;
    int done;             /* atomic; set before the wake */
} ThreadPoolJob;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;  /* on CLOCK_MONOTONIC */
    GQueue jobs;          /* of ThreadPoolJob *, FIFO */
    int nthreads;         /* live workers */
    int idle;             /* workers waiting on cond */
    int pending_wakeups;  /* signals sent to idle workers not yet taken */
} pool;

static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* Initialise the pool once (first submission). */
static void thread_pool_init_once(void)
{
    pthread_condattr_t attr;

    pthread_mutex_init(&pool.lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool.cond, &attr);
    pthread_condattr_destroy(&attr);
    g_queue_init(&pool.jobs);
}

/* Take the next job, waiting up to the idle limit; NULL means retire. */
static ThreadPoolJob *thread_pool_next_job(void)
{
    ThreadPoolJob *job;

    pthread_mutex_lock(&pool.lock);
    while (g_queue_is_empty(&pool.jobs)) {
        struct timespec deadline;
        int err;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += THREAD_POOL_IDLE_SEC;
        pool.idle++;
        err = pthread_cond_timedwait(&pool.cond, &pool.lock, &deadline);
        pool.idle--;
        if (pool.pending_wakeups > 0) {
            pool.pending_wakeups--;
        }
        if (err == ETIMEDOUT && g_queue_is_empty(&pool.jobs)) {
            pool.nthreads--;
            pthread_mutex_unlock(&pool.lock);
            return NULL;
        }
    }
    job = g_queue_pop_head(&pool.jobs);
    pthread_mutex_unlock(&pool.lock);
    return job;
}

/* Worker body: run jobs until idle for THREAD_POOL_IDLE_SEC. */
static void *thread_pool_worker(void *opaque)
{
    ThreadPoolJob *job;

    while ((job = thread_pool_next_job())) {
        Coroutine *co = job->co;
        int ret = job->func(job->opaque);

        trace_thread_pool_complete(job, ret);
        job->ret = ret;
        g_atomic_int_set(&job->done, 1);
        /* The job may vanish from here on: only co is used. */
        aio_co_wake(co);
    }
    return NULL;
}

/* Called with pool.lock held: start a worker if none is free to take job. */
static void thread_pool_maybe_spawn(void)
{
    pthread_attr_t attr;
    pthread_t t;
    int err;

    if (pool.idle > pool.pending_wakeups || pool.nthreads >= THREAD_POOL_MAX) {
        return;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&t, &attr, thread_pool_worker, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        /* Existing workers will get to the job eventually. */
        if (pool.nthreads == 0) {
            fprintf(stderr, "thread pool: cannot create worker thread: %s\n",
                    strerror(err));
            abort();
        }
        return;
    }
    pool.nthreads++;
    trace_thread_pool_spawn(pool.nthreads);
}

/*
 * Queue the job, make sure some worker will take it (signal an idle one
 * or spawn one), and yield. pending_wakeups counts signalled-but-not-yet
 * running idle workers, so a burst of submissions spawns enough threads
 * instead of signalling the same idle worker repeatedly.
 */
int coroutine_fn thread_pool_submit_co(ThreadPoolFunc *func, void *opaque)
{
    ThreadPoolJob job = {
        .func = func,
        .opaque = opaque,
        .co = qemu_coroutine_self(),
    };

    g_assert(job.co);
    pthread_once(&pool_once, thread_pool_init_once);
    trace_thread_pool_submit(&job, func, opaque);

    pthread_mutex_lock(&pool.lock);
    g_queue_push_tail(&pool.jobs, &job);
    thread_pool_maybe_spawn();
    if (pool.idle > pool.pending_wakeups) {
        pool.pending_wakeups++;
    }
    pthread_cond_signal(&pool.cond);
    pthread_mutex_unlock(&pool.lock);

    qemu_coroutine_yield();
    g_assert(g_atomic_int_get(&job.done));
    return job.ret;
}
