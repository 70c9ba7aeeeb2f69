/*
 * libFuzzer target: the whole QMP input path. Each input is one client
 * session on a fresh buffered QMP monitor (no chardev): the bytes are fed
 * as the client would send them (negotiation included, if the input does
 * it), in chunks whose sizes come from the input itself, then the main
 * loop runs until idle so every queued command finishes. The replies
 * accumulate in the monitor's buffer and are checked to be CRLF-ended
 * JSON lines; the JSON streamer is also cross-checked on its own (one
 * feed versus byte-by-byte must give the same callbacks).
 *
 * Safety: commands with effects outside the process must be unreachable.
 * The input is pre-parsed with the same streamer the monitor uses; an
 * input naming a known command that is not on the allowlist below (for
 * instance blockdev-add, nbd-server-start, blockdev-snapshot-sync, an HMP
 * line other than info/help) is skipped whole. quit only sets the
 * shutdown flag. The process runs in an empty temporary directory.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/json-streamer.h"
#include "qemu/qjson.h"
#include "block/block.h"
#include "qapi/qmp-registry.h"
#include "monitor/monitor-internal.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Known commands the fuzzer may run: read-only or local to the process. */
static const char *const fuzz_allowed[] = {
    "qmp_capabilities", "query-version", "query-commands",
    "query-qmp-schema", "query-status", "query-block",
    "query-named-block-nodes", "query-block-exports", "quit",
    "blockdev-del", "nbd-server-remove", "nbd-server-stop",
    "block-export-del", "trace-event-get-state",
    "human-monitor-command",
};

static char fuzz_cwd[] = "/tmp/qblk-fuzz-qmp-cwd-XXXXXX";

static void fuzz_remove_cwd(void)
{
    rmdir(fuzz_cwd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Relative file names in any command resolve inside an empty dir. */
    if (!mkdtemp(fuzz_cwd) || chdir(fuzz_cwd) < 0) {
        abort();
    }
    atexit(fuzz_remove_cwd);
    qemu_init_main_loop();
    bdrv_init();
    return 0;
}

/* Is an HMP line harmless (info and help only)? */
static bool fuzz_hmp_allowed(JsonObject *req)
{
    JsonNode *args = json_object_get_member(req, "arguments");
    JsonNode *line;
    const char *s;

    if (!args || !JSON_NODE_HOLDS_OBJECT(args)) {
        return true;                /* rejected by argument checking */
    }
    line = json_object_get_member(json_node_get_object(args),
                                  "command-line");
    if (!line || !JSON_NODE_HOLDS_VALUE(line) ||
        json_node_get_value_type(line) != G_TYPE_STRING) {
        return true;
    }
    s = json_node_get_string(line);
    s += strspn(s, " \t");
    if (strpbrk(s, "\r\n")) {
        return false;               /* one command line only */
    }
    return !strcmp(s, "info") || g_str_has_prefix(s, "info ") ||
           !strcmp(s, "help") || g_str_has_prefix(s, "help ");
}

/* Would the monitor run a command we must not reach for this request? */
static bool fuzz_request_allowed(JsonNode *value)
{
    static const char *const keys[] = { "execute", "exec-oob" };
    JsonObject *req;

    if (!JSON_NODE_HOLDS_OBJECT(value)) {
        return true;
    }
    req = json_node_get_object(value);
    for (size_t k = 0; k < G_N_ELEMENTS(keys); k++) {
        JsonNode *n = json_object_get_member(req, keys[k]);
        const char *name;
        bool ok = false;

        if (!n || !JSON_NODE_HOLDS_VALUE(n) ||
            json_node_get_value_type(n) != G_TYPE_STRING) {
            continue;
        }
        name = json_node_get_string(n);
        if (!qmp_find_command(name)) {
            continue;               /* CommandNotFound */
        }
        for (size_t i = 0; i < G_N_ELEMENTS(fuzz_allowed); i++) {
            ok = ok || !strcmp(name, fuzz_allowed[i]);
        }
        if (!ok || (!strcmp(name, "human-monitor-command") &&
                    !fuzz_hmp_allowed(req))) {
            return false;
        }
    }
    return true;
}

/* What a streamer produced: one line per value or error. */
typedef struct FuzzScan {
    GString *log;
    bool allowed;
} FuzzScan;

static void fuzz_scan_cb(void *opaque, JsonNode *value, Error *err)
{
    FuzzScan *scan = opaque;

    if (err) {
        g_string_append_printf(scan->log, "E:%s\n", error_get_pretty(err));
        error_free(err);
        return;
    }
    if (!fuzz_request_allowed(value)) {
        scan->allowed = false;
    }
    g_string_append(scan->log, "V:");
    qjson_append(scan->log, value, false);
    g_string_append_c(scan->log, '\n');
    json_node_unref(value);
}

/* Run the streamer over data, chunk bytes per feed (0: one feed). */
static FuzzScan fuzz_scan(const uint8_t *data, size_t size, size_t chunk)
{
    FuzzScan scan = { g_string_new(NULL), true };
    JsonStreamer *s = json_streamer_new(fuzz_scan_cb, &scan);

    if (!chunk) {
        chunk = size ? size : 1;
    }
    for (size_t off = 0; off < size; off += chunk) {
        json_streamer_feed(s, (const char *)data + off,
                           MIN(chunk, size - off));
    }
    json_streamer_free(s);
    return scan;
}

/*
 * The greeting comes first, and every reply/event line is CRLF-terminated
 * pure-ASCII JSON object text.
 */
static void fuzz_check_output(GString *out)
{
    char **lines = g_strsplit(out->str, "\n", -1);

    if (!g_str_has_prefix(out->str, "{\"QMP\": ")) {
        abort();
    }

    for (char **l = lines; *l && **l; l++) {
        size_t len = strlen(*l);
        if (len < 2 || (*l)[len - 1] != '\r' || (*l)[0] != '{') {
            abort();
        }
        for (size_t i = 0; i < len - 1; i++) {
            if ((unsigned char)(*l)[i] >= 0x80) {
                abort();            /* output must be pure ASCII */
            }
        }
    }
    g_strfreev(lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FuzzScan whole, bytewise;
    Monitor *mon;
    size_t chunk, off;

    whole = fuzz_scan(data, size, 0);
    if (size <= 4096) {
        bytewise = fuzz_scan(data, size, 1);
        if (strcmp(whole.log->str, bytewise.log->str)) {
            abort();                /* chunking changed the result */
        }
        g_string_free(bytewise.log, true);
    }
    g_string_free(whole.log, true);
    if (!whole.allowed) {
        return 0;
    }

    /* The first byte picks the feed chunk size (1..256). */
    chunk = size ? data[0] + 1 : 1;
    mon = monitor_qmp_new_buffered();
    for (off = 0; off < size; off += chunk) {
        monitor_qmp_feed(mon, data + off, MIN(chunk, size - off));
        while (aio_poll(false)) {
            /* run queued commands */
        }
    }
    while (aio_poll(false)) {
        /* until idle */
    }
    fuzz_check_output(mon->outbuf);
    mon->destroy(mon);
    while (aio_poll(false)) {
        /* let a freed monitor's bottom halves go */
    }
    return 0;
}
