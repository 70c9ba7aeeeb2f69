/*
 * Job progress as text (see include/qemu/job-progress.h). Stateless: the
 * callers hold the numbers, these functions only format them, so the
 * bytes that clients parse are written in exactly one place.
 */
#include "qemu/osdep.h"
#include "qemu/job-progress.h"

char *job_progress_hmp_line(const char *type, const char *id,
                            int64_t offset, int64_t len, int64_t speed)
{
    g_autofree char *who = NULL;

    /* QEMU names streams in words and every other type by its name. */
    if (!strcmp(type, "stream")) {
        who = g_strdup_printf("Streaming device %s", id);
    } else {
        who = g_strdup_printf("Type %s, device %s", type, id);
    }
    return g_strdup_printf("%s: Completed %" PRId64 " of %" PRId64
                           " bytes, speed limit %" PRId64 " bytes/s",
                           who, offset, len, speed);
}

char *job_progress_percent(uint64_t done, uint64_t total)
{
    double pct = total ? (double)MIN(done, total) * 100.0 / total : 100.0;

    return job_progress_percent_value(pct);
}

char *job_progress_percent_value(double percent)
{
    /* qemu-img's "%3.2f": the width never matters, "0.00" is 4 wide. */
    percent = MAX(0.0, MIN(percent, 100.0));
    return g_strdup_printf("(%3.2f/100%%)", percent);
}

char *job_progress_img_line(double percent)
{
    g_autofree char *pct = job_progress_percent_value(percent);

    return g_strdup_printf("    %s\r", pct);
}
