/*
 * Unit tests of the progress formatter (util/job-progress.c): the exact
 * bytes of qemu-img -p's line and of HMP's "info block-jobs" lines, which
 * scripts and libvirt parse, so every character is asserted.
 */
#include "qemu/osdep.h"
#include "qemu/job-progress.h"

/* Assert that formatted (freed here) equals expected byte for byte. */
static void check_str(char *formatted, const char *expected)
{
    g_assert_cmpstr(formatted, ==, expected);
    g_free(formatted);
}

static void test_percent_of(void)
{
    check_str(job_progress_percent(0, 1000), "(0.00/100%)");
    check_str(job_progress_percent(455, 1000), "(45.50/100%)");
    check_str(job_progress_percent(1, 3), "(33.33/100%)");
    check_str(job_progress_percent(2, 3), "(66.67/100%)");
    check_str(job_progress_percent(1000, 1000), "(100.00/100%)");
    /* Overshoot is clamped; nothing to do counts as done. */
    check_str(job_progress_percent(2000, 1000), "(100.00/100%)");
    check_str(job_progress_percent(0, 0), "(100.00/100%)");
}

static void test_percent_value(void)
{
    check_str(job_progress_percent_value(0.0), "(0.00/100%)");
    check_str(job_progress_percent_value(7.125f), "(7.12/100%)");
    check_str(job_progress_percent_value(99.999), "(100.00/100%)");
    check_str(job_progress_percent_value(-1.0), "(0.00/100%)");
    check_str(job_progress_percent_value(150.0), "(100.00/100%)");
}

static void test_img_line(void)
{
    /* qemu-img convert -p writes exactly these bytes per update. */
    check_str(job_progress_img_line(0.0f), "    (0.00/100%)\r");
    check_str(job_progress_img_line(1.01f), "    (1.01/100%)\r");
    check_str(job_progress_img_line(100.0f), "    (100.00/100%)\r");
}

static void test_hmp_line(void)
{
    check_str(job_progress_hmp_line("stream", "drive0", 65536, 1048576, 0),
              "Streaming device drive0: Completed 65536 of 1048576 bytes, "
              "speed limit 0 bytes/s");
    check_str(job_progress_hmp_line("commit", "job1", 0, 0, 1024),
              "Type commit, device job1: Completed 0 of 0 bytes, "
              "speed limit 1024 bytes/s");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/job-progress/percent-of", test_percent_of);
    g_test_add_func("/job-progress/percent-value", test_percent_value);
    g_test_add_func("/job-progress/img-line", test_img_line);
    g_test_add_func("/job-progress/hmp-line", test_hmp_line);
    return g_test_run();
}
