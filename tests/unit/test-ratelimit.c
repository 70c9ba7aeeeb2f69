/*
 * Unit tests of the slice rate limiter (util/ratelimit.c) on a simulated
 * clock: per-slice quotas, unlimited speed, and long-run accuracy of a
 * copy loop that sleeps exactly as told.
 */
#include "qemu/osdep.h"
#include "qemu/ratelimit.h"

#define SLICE_NS (100 * 1000 * 1000LL)
#define MIB (1024 * 1024)

static void test_unlimited(void)
{
    RateLimit rl = { 0 };

    ratelimit_set_speed(&rl, 0, SLICE_NS);
    for (int i = 0; i < 1000; i++) {
        g_assert_cmpint(ratelimit_calculate_delay(&rl, MIB, i), ==, 0);
    }
}

static void test_quota_per_slice(void)
{
    RateLimit rl = { 0 };
    int64_t now = 1000;

    /* 10 MiB/s: 1 MiB per 100 ms slice. */
    ratelimit_set_speed(&rl, 10 * MIB, SLICE_NS);
    g_assert_cmpuint(rl.slice_quota, ==, MIB);
    /* Three quarters of the quota go at once. */
    for (int i = 0; i < 3; i++) {
        g_assert_cmpint(ratelimit_calculate_delay(&rl, 256 * 1024, now),
                        ==, 0);
    }
    /* The fourth fills the slice: wait for its end. */
    g_assert_cmpint(ratelimit_calculate_delay(&rl, 256 * 1024, now), ==,
                    SLICE_NS);
    /* Overdrawing by half a slice extends the wait accordingly. */
    now += SLICE_NS;
    g_assert_cmpint(ratelimit_calculate_delay(&rl, MIB + MIB / 2, now), ==,
                    SLICE_NS + SLICE_NS / 2);
    /* After a long idle time the next slice starts afresh. */
    now += 10 * SLICE_NS;
    g_assert_cmpint(ratelimit_calculate_delay(&rl, 1000, now), ==, 0);
    g_assert_cmpint(rl.slice_start_ns, ==, now);
}

/*
 * Simulate a job copying chunk bytes per step (taking copy_ns each) and
 * sleeping as told for secs seconds; returns bytes per second.
 */
static double simulate(uint64_t speed, uint64_t chunk, int64_t copy_ns,
                       int secs)
{
    RateLimit rl = { 0 };
    int64_t now = 5 * SLICE_NS, end = now + secs * 1000000000LL;
    uint64_t bytes = 0;

    ratelimit_set_speed(&rl, speed, SLICE_NS);
    while (now < end) {
        now += copy_ns;
        bytes += chunk;
        /* Timers fire a little late. */
        now += ratelimit_calculate_delay(&rl, chunk, now) + 20000;
    }
    return bytes / (secs * 1.0);
}

static void test_accuracy(void)
{
    static const uint64_t speeds[] = { 16 * MIB, 64 * MIB };
    static const uint64_t chunks[] = { 64 * 1024, 512 * 1024, 4 * MIB };

    for (size_t i = 0; i < G_N_ELEMENTS(speeds); i++) {
        for (size_t j = 0; j < G_N_ELEMENTS(chunks); j++) {
            double rate = simulate(speeds[i], chunks[j], 200000, 4);
            double ratio = rate / speeds[i];

            if (g_test_verbose()) {
                g_test_message("speed %" PRIu64 " chunk %" PRIu64
                               ": ratio %.4f", speeds[i], chunks[j], ratio);
            }
            g_assert_cmpfloat(ratio, >=, 0.95);
            g_assert_cmpfloat(ratio, <=, 1.05);
        }
    }
}

static void test_speed_change(void)
{
    RateLimit rl = { 0 };
    int64_t now = SLICE_NS;

    ratelimit_set_speed(&rl, 1 * MIB, SLICE_NS);
    g_assert_cmpint(ratelimit_calculate_delay(&rl, MIB, now), >,
                    9 * SLICE_NS);
    /* Raised mid-wait: the debt is re-priced at the new speed. */
    ratelimit_set_speed(&rl, 100 * MIB, SLICE_NS);
    now += SLICE_NS / 2;
    g_assert_cmpint(ratelimit_calculate_delay(&rl, 1, now), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/ratelimit/unlimited", test_unlimited);
    g_test_add_func("/ratelimit/quota-per-slice", test_quota_per_slice);
    g_test_add_func("/ratelimit/accuracy-16-and-64-mib", test_accuracy);
    g_test_add_func("/ratelimit/speed-change", test_speed_change);
    return g_test_run();
}
