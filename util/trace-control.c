/*
 * Trace event control and the log backend.
 */
#include "qemu/osdep.h"
#include "qemu/trace-control.h"
#include "qapi/error.h"
#include "trace.h"
#include <fnmatch.h>
#include <sys/time.h>

static FILE *trace_file;

int trace_enable_pattern(const char *pattern)
{
    bool enable = true;
    int matched = 0;

    if (!strcmp(pattern, "help")) {
        for (int i = 0; trace_event_names[i]; i++) {
            printf("%s\n", trace_event_names[i]);
        }
        return 0;
    }
    if (pattern[0] == '-') {
        enable = false;
        pattern++;
    }
    for (int i = 0; trace_event_names[i]; i++) {
        if (fnmatch(pattern, trace_event_names[i], 0) == 0) {
            trace_event_enabled[i] = enable;
            matched++;
        }
    }
    return matched ? matched : -1;
}

bool trace_opt_parse(const char *optarg)
{
    g_auto(GStrv) parts = g_strsplit(optarg, ",", -1);

    for (int i = 0; parts[i]; i++) {
        const char *p = parts[i];
        if (!strcmp(p, "help") || !strcmp(p, "enable=help")) {
            /* As QEMU: list the events and leave. */
            trace_enable_pattern("help");
            exit(0);
        }
        if (g_str_has_prefix(p, "file=")) {
            FILE *f = fopen(p + 5, "w");
            if (!f) {
                error_report("cannot open trace file '%s': %s", p + 5,
                             g_strerror(errno));
                return false;
            }
            setvbuf(f, NULL, _IOLBF, 0);
            trace_file = f;
            continue;
        }
        if (g_str_has_prefix(p, "enable=")) {
            p += 7;
        }
        if (trace_enable_pattern(p) < 0) {
            warn_report("trace event '%s' does not exist", p);
        }
    }
    return true;
}

bool trace_event_is_pattern(const char *name)
{
    return strchr(name, '*') != NULL;
}

int trace_event_next_match(const char *glob, int start)
{
    for (int i = start; i < TRACE_EVENT_COUNT; i++) {
        if (fnmatch(glob, trace_event_names[i], 0) == 0) {
            return i;
        }
    }
    return -1;
}

bool trace_event_get_state_id(int id)
{
    g_assert(id >= 0 && id < TRACE_EVENT_COUNT);
    return trace_event_enabled[id];
}

void trace_event_set_state_id(int id, bool enable)
{
    g_assert(id >= 0 && id < TRACE_EVENT_COUNT);
    trace_event_enabled[id] = enable;
}

void trace_log_line(const char *name, const char *fmt, ...)
{
    struct timeval tv;
    va_list ap;
    FILE *out = trace_file ? trace_file : stderr;

    gettimeofday(&tv, NULL);
    flockfile(out);
    fprintf(out, "%d@%ld.%06ld:%s ", (int)getpid(), (long)tv.tv_sec,
            (long)tv.tv_usec, name);
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    funlockfile(out);
}
