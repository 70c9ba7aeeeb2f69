/*
 * The QMP protocol's own commands (qapi/control.json, run-state.json,
 * introspect.json): qmp_capabilities, query-version, query-commands,
 * query-qmp-schema, query-status and quit.
 *
 * No state of their own: negotiation state lives in the monitor
 * (monitor/qmp.c), the run state in runstate.c, the command table and
 * the introspection data are generated from the schema. qblk reports
 * QEMU 7.2.0 as its interface version, the release whose QMP behaviour
 * it follows.
 */
#include "qemu/osdep.h"
#include "config-host.h"
#include "qemu/qjson.h"
#include "qapi/qmp-registry.h"
#include "qapi/qapi-commands.h"
#include "monitor/monitor-internal.h"
#include "sysemu/runstate.h"
#include "qemu/job.h"
#include "trace.h"

#if __has_include("qapi/qapi-introspect.h")
#include "qapi/qapi-introspect.h"
#define QMP_HAVE_INTROSPECTION 1
#endif

/* The QEMU release whose QMP interface qblk implements. */
#define QMP_QEMU_MAJOR 7
#define QMP_QEMU_MINOR 2
#define QMP_QEMU_MICRO 0

/*
 * Leave negotiation mode on the calling monitor. qblk offers no
 * capability, so any requested one is refused and the session stays in
 * negotiation mode, as QEMU does for a capability it did not offer.
 */
void qmp_qmp_capabilities(QMPCapabilityList *enable, Error **errp)
{
    Monitor *mon = monitor_cur();

    if (!mon || !mon->is_qmp) {
        error_setg(errp, "qmp_capabilities is only valid on a QMP monitor");
        return;
    }
    if (monitor_qmp_is_negotiated(mon)) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command "
                  "ignored");
        return;
    }
    if (enable) {
        error_setg(errp, "Capability '%s' not available",
                   QMPCapability_str(enable->value));
        return;
    }
    monitor_qmp_set_negotiated(mon);
}

VersionInfo *qmp_query_version(Error **errp)
{
    VersionInfo *info = g_new0(VersionInfo, 1);

    info->qemu = g_new0(VersionTriple, 1);
    info->qemu->major = QMP_QEMU_MAJOR;
    info->qemu->minor = QMP_QEMU_MINOR;
    info->qemu->micro = QMP_QEMU_MICRO;
    info->package = g_strdup("qblk " QBLK_VERSION);
    return info;
}

/* Every row of the generated command table, in table order. */
CommandInfoList *qmp_query_commands(Error **errp)
{
    CommandInfoList *head = NULL, **tail = &head;

    for (size_t i = 0; i < qmp_command_count; i++) {
        CommandInfoList *elem = g_new0(CommandInfoList, 1);

        elem->value = g_new0(CommandInfo, 1);
        elem->value->name = g_strdup(qmp_command_table[i].name);
        *tail = elem;
        tail = &elem->next;
    }
    return head;
}

StatusInfo *qmp_query_status(Error **errp)
{
    StatusInfo *info = g_new0(StatusInfo, 1);

    info->status = runstate_get();
    info->running = info->status == RUN_STATE_RUNNING;
    info->singlestep = false;
    return info;
}

/*
 * The SHUTDOWN event goes out from inside the request, before this
 * command's reply; qblk.c's main loop then stops and shuts down.
 */
/*
 * QEMU 7.2's order: SHUTDOWN, then every job force-cancelled (their
 * events), then the reply. Commands run in a coroutine, so waiting for
 * the jobs keeps the main loop running.
 */
void qmp_quit(Error **errp)
{
    qemu_system_shutdown_request(SHUTDOWN_CAUSE_HOST_QMP_QUIT);
    job_co_cancel_all();
}

/*
 * query-qmp-schema ('gen': false): the generated introspection text,
 * parsed once and copied for each caller. It has no arguments.
 */
void qmp_marshal_query_qmp_schema(JsonObject *args, JsonNode **ret,
                                  Error **errp)
{
#ifdef QMP_HAVE_INTROSPECTION
    static JsonNode *schema;
#endif

    if (args && json_object_get_size(args)) {
        g_autoptr(GList) keys = json_object_get_members(args);

        error_setg(errp, "Parameter '%s' is unexpected",
                   (const char *)keys->data);
        return;
    }
#ifdef QMP_HAVE_INTROSPECTION
    if (!schema) {
        schema = qjson_from_string(qmp_schema_json, &error_abort);
    }
    *ret = json_node_copy(schema);
#else
    error_setg(errp, "query-qmp-schema is not supported by this build "
               "(no introspection data)");
#endif
}
