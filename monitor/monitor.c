/*
 * What every monitor shares: the list of live monitors, output buffering
 * and flushing to the chardev, "the monitor whose command is running",
 * the QAPI event emitter, and --monitor option parsing.
 *
 * State: monitor_list holds every attached monitor (QMP and HMP) in
 * creation order; cur_mons maps a command's coroutine to its monitor.
 * Everything runs on the main loop thread, so no locking is needed.
 *
 * Output: monitor_puts() appends to the monitor's outbuf and flushes it
 * to the chardev at once; the socket chardev queues what the client does
 * not take yet, so a write never blocks the loop. A chardev without a
 * client drops the bytes, as QEMU does. Buffer monitors (no chardev)
 * keep everything in outbuf for their owner.
 *
 * Events are stamped and turned into one JSON line here, then handed to
 * every QMP monitor's emit_event, which writes it at once (only when the
 * session is negotiated and a client is connected). Because the write is
 * synchronous, an event raised by a command precedes that command's reply.
 */
#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/keyval.h"
#include "qemu/qjson.h"
#include "qapi/qmp-event.h"
#include "monitor/monitor-internal.h"
#include "trace.h"

/* Every attached monitor, creation order. */
static GList *monitor_list;
/* Coroutine -> Monitor whose command it runs (see monitor_cur()). */
static GHashTable *cur_mons;
static bool monitor_emitter_installed;

static void monitor_qapi_event_emit(const char *name, JsonObject *data);

/* ---- The common part */

void monitor_common_init(Monitor *mon, Chardev *chr, bool is_qmp)
{
    mon->chr = chr;
    mon->is_qmp = is_qmp;
    mon->is_hmp_crlf = !is_qmp;
    mon->outbuf = g_string_new(NULL);
}

void monitor_list_add(Monitor *mon)
{
    if (!monitor_emitter_installed) {
        qapi_event_set_emitter(monitor_qapi_event_emit);
        monitor_emitter_installed = true;
    }
    monitor_list = g_list_append(monitor_list, mon);
    trace_monitor_list_add(mon, mon->chr ? qemu_chr_get_id(mon->chr) : "",
                           mon->is_qmp);
}

void monitor_list_remove(Monitor *mon)
{
    monitor_list = g_list_remove(monitor_list, mon);
}

void monitor_common_finalize(Monitor *mon)
{
    if (mon->outbuf) {
        g_string_free(mon->outbuf, true);
        mon->outbuf = NULL;
    }
}

void monitor_flush(Monitor *mon)
{
    if (!mon->chr || !mon->outbuf->len) {
        return;
    }
    trace_monitor_flush(mon, (long long)mon->outbuf->len);
    qemu_chr_write(mon->chr, mon->outbuf->str, mon->outbuf->len);
    g_string_truncate(mon->outbuf, 0);
}

/*
 * Append str to the output (HMP: '\n' as "\r\n") and flush it. QMP
 * monitors use this for their own protocol lines only.
 */
void monitor_puts(Monitor *mon, const char *str)
{
    if (!mon || !mon->outbuf) {
        return;
    }
    for (const char *p = str; *p; p++) {
        if (*p == '\n' && mon->is_hmp_crlf) {
            g_string_append_c(mon->outbuf, '\r');
        }
        g_string_append_c(mon->outbuf, *p);
    }
    monitor_flush(mon);
}

/* Text output is for HMP: on a QMP monitor it would break the protocol. */
int monitor_printf(Monitor *mon, const char *fmt, ...)
{
    g_autofree char *buf = NULL;
    va_list ap;
    int len;

    if (!mon || mon->is_qmp) {
        return -1;
    }
    va_start(ap, fmt);
    buf = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    len = strlen(buf);
    monitor_puts(mon, buf);
    return len;
}

/* ---- The monitor of the running command */

Monitor *monitor_cur(void)
{
    Coroutine *co = qemu_coroutine_self();

    if (!co || !cur_mons) {
        return NULL;
    }
    return g_hash_table_lookup(cur_mons, co);
}

void monitor_set_cur(Coroutine *co, Monitor *mon)
{
    if (!mon && !cur_mons) {
        return;
    }
    if (!cur_mons) {
        cur_mons = g_hash_table_new(g_direct_hash, g_direct_equal);
    }
    if (mon) {
        g_hash_table_insert(cur_mons, co, mon);
    } else {
        g_hash_table_remove(cur_mons, co);
    }
}

/* ---- Events */

/*
 * The emitter installed with the first monitor: build the event line
 * {"timestamp": {...}, "event": NAME, "data": {...}} once, in compact
 * form, and give it to every QMP monitor (each decides whether its
 * client gets it).
 */
static void monitor_qapi_event_emit(const char *name, JsonObject *data)
{
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
    JsonObject *ev = json_object_new();
    JsonObject *ts = json_object_new();
    gint64 now = g_get_real_time();
    g_autofree char *line = NULL;

    json_object_set_int_member(ts, "seconds", now / G_USEC_PER_SEC);
    json_object_set_int_member(ts, "microseconds", now % G_USEC_PER_SEC);
    json_object_set_object_member(ev, "timestamp", ts);
    json_object_set_string_member(ev, "event", name);
    if (data) {
        json_object_set_object_member(ev, "data", json_object_ref(data));
    }
    json_node_take_object(node, ev);
    line = qjson_to_string(node, false);
    trace_monitor_event(name, line);
    for (GList *l = monitor_list; l; l = l->next) {
        Monitor *mon = l->data;

        if (mon->is_qmp && mon->emit_event) {
            mon->emit_event(mon, line);
        }
    }
}

/* ---- --monitor and shutdown */

/* Refuse keys of opts that --monitor does not have, in QEMU's words. */
static bool monitor_check_keys(QDict *opts, Error **errp)
{
    static const char *const allowed[] = { "id", "chardev", "mode",
                                           "pretty", NULL };
    g_autofree const char **keys = qdict_keys(opts);

    for (size_t i = 0; keys[i]; i++) {
        if (!g_strv_contains(allowed, keys[i])) {
            error_setg(errp, "Parameter '%s' is unexpected", keys[i]);
            return false;
        }
    }
    return true;
}

bool monitor_new_from_opts(const char *optstr, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(optstr, "chardev", errp);
    const char *name, *mode;
    Chardev *chr;
    bool pretty;

    if (!opts || !monitor_check_keys(opts, errp)) {
        return false;
    }
    name = qdict_get_try_str(opts, "chardev");
    mode = qdict_get_try_str(opts, "mode");
    if (!name) {
        error_setg(errp, "Parameter 'chardev' is missing");
        return false;
    }
    if (mode && strcmp(mode, "control") && strcmp(mode, "readline")) {
        error_setg(errp, "Parameter 'mode' does not accept value '%s'", mode);
        return false;
    }
    if (!qdict_get_bool(opts, "pretty", false, &pretty, errp)) {
        return false;
    }
    chr = qemu_chr_find(name);
    if (!chr) {
        error_setg(errp, "chardev \"%s\" not found", name);
        return false;
    }
    if (mode && !strcmp(mode, "readline")) {
        if (pretty) {
            warn_report("'pretty' is deprecated for HMP monitors, it has no "
                        "effect and will be removed in future versions");
        }
        return monitor_init_hmp(chr, errp);
    }
    return monitor_init_qmp(chr, pretty, errp);
}

/*
 * Flush, detach and free every monitor. A monitor whose command is still
 * running is freed by its dispatcher when the command returns (qmp.c).
 */
void monitor_cleanup_all(void)
{
    while (monitor_list) {
        Monitor *mon = monitor_list->data;

        monitor_flush(mon);
        monitor_list_remove(mon);
        mon->destroy(mon);
    }
    qapi_event_set_emitter(NULL);
    monitor_emitter_installed = false;
    if (cur_mons) {
        g_hash_table_destroy(cur_mons);
        cur_mons = NULL;
    }
}
