/*
 * The QMP server: a JSON protocol for programs on a chardev.
 *
 * State per monitor (MonitorQMP): the JSON streamer splitting the input
 * into values, a queue of parsed requests, whether the session finished
 * capabilities negotiation, and a session number bumped at each
 * disconnect. Everything runs on the main loop thread.
 *
 * Life of a request: the chardev hands bytes to the streamer, which
 * queues one QMPRequest per complete value (or per parse error). A
 * bottom half starts the monitor's dispatcher coroutine, which takes the
 * requests in order and runs each to completion (a handler may yield)
 * before the next: commands of one monitor never overlap. While
 * QMP_REQ_QUEUE_MAX requests wait, the chardev stops reading (as QEMU
 * stops reading after 8), so a flooding client is bounded by its socket.
 *
 * A client that goes away: its queue is dropped, the streamer reset and
 * the session number bumped, so the reply of a command still running is
 * dropped when it completes; the next client gets a new greeting and
 * must negotiate again. A monitor destroyed while its dispatcher runs a
 * command is freed by the dispatcher once the command returns.
 *
 * Every line sent ends in "\r\n" (also inside pretty replies), as QEMU
 * writes them. qblk executes nothing out of band, so the greeting offers
 * no capability and "exec-oob" is an unexpected member, as in a QEMU
 * session that did not enable oob.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/coroutine.h"
#include "qemu/json-streamer.h"
#include "qemu/qjson.h"
#include "qapi/qmp-registry.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"
#include "monitor/monitor-internal.h"
#include "trace.h"

/* Requests waiting per monitor before the chardev stops reading. */
#define QMP_REQ_QUEUE_MAX 8

typedef struct QMPRequest {
    JsonNode *req;      /* the value read, or NULL when err is set */
    Error *err;         /* a JSON parse error to answer */
} QMPRequest;

typedef struct MonitorQMP {
    Monitor common;
    bool pretty;
    bool negotiated;        /* qmp_capabilities done in this session */
    bool input_paused;      /* the chardev stopped reading for us */
    bool busy;              /* the dispatcher coroutine is running */
    bool dead;              /* destroyed while busy: dispatcher frees */
    uint64_t session;       /* bumped at each disconnect */
    JsonStreamer *streamer;
    GQueue requests;        /* of QMPRequest *, oldest first */
    QEMUBH *kick_bh;        /* starts the dispatcher */
} MonitorQMP;

static void monitor_qmp_free(MonitorQMP *mon);

static const char *const qmp_error_class_names[] = {
    [ERROR_CLASS_GENERIC_ERROR] = "GenericError",
    [ERROR_CLASS_COMMAND_NOT_FOUND] = "CommandNotFound",
    [ERROR_CLASS_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [ERROR_CLASS_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [ERROR_CLASS_KVM_MISSING_CAP] = "KVMMissingCap",
};

static MonitorQMP *monitor_qmp(Monitor *mon)
{
    g_assert(mon->is_qmp);
    return container_of(mon, MonitorQMP, common);
}

bool monitor_qmp_is_negotiated(Monitor *mon)
{
    return monitor_qmp(mon)->negotiated;
}

void monitor_qmp_set_negotiated(Monitor *mon)
{
    monitor_qmp(mon)->negotiated = true;
}

/* ---- Output */

/* Whether output now reaches a client (buffer monitors always "have" one). */
static bool monitor_qmp_has_client(MonitorQMP *mon)
{
    return !mon->common.chr || qemu_chr_is_connected(mon->common.chr);
}

/* Send one already formatted message; every '\n' in it becomes "\r\n". */
static void monitor_qmp_send_text(MonitorQMP *mon, const char *text)
{
    GString *out = g_string_sized_new(strlen(text) + 2);

    for (const char *p = text; *p; p++) {
        if (*p == '\n') {
            g_string_append_c(out, '\r');
        }
        g_string_append_c(out, *p);
    }
    g_string_append(out, "\r\n");
    monitor_puts(&mon->common, out->str);
    g_string_free(out, true);
}

/* Print obj (consumed) in the monitor's style and send it. */
static void monitor_qmp_send(MonitorQMP *mon, JsonObject *obj)
{
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_OBJECT);
    g_autofree char *text = NULL;

    json_node_take_object(node, obj);
    text = qjson_to_string(node, mon->pretty);
    monitor_qmp_send_text(mon, text);
}

/* emit_event: an event line for a negotiated session's client only. */
static void monitor_qmp_emit_event(Monitor *common, const char *line)
{
    MonitorQMP *mon = monitor_qmp(common);
    g_autoptr(JsonNode) node = NULL;
    g_autofree char *text = NULL;

    if (mon->dead || !mon->negotiated || !monitor_qmp_has_client(mon)) {
        return;
    }
    if (!mon->pretty) {
        monitor_qmp_send_text(mon, line);
        return;
    }
    node = qjson_from_string(line, &error_abort);
    text = qjson_to_string(node, true);
    monitor_qmp_send_text(mon, text);
}

/* The greeting: {"QMP": {"version": <query-version>, "capabilities": []}}. */
static void monitor_qmp_send_greeting(MonitorQMP *mon)
{
    g_autoptr(VersionInfo) info = qmp_query_version(&error_abort);
    JsonObject *qmp = json_object_new();
    JsonObject *greeting = json_object_new();

    json_object_set_member(qmp, "version", qapi_VersionInfo_to_json(info));
    json_object_set_array_member(qmp, "capabilities", json_array_new());
    json_object_set_object_member(greeting, "QMP", qmp);
    monitor_qmp_send(mon, greeting);
}

/*
 * Build and send a reply. id (borrowed, may be NULL) is echoed verbatim;
 * an error reply lists it first, a success reply last (7.2's order).
 */
static void monitor_qmp_respond(MonitorQMP *mon, JsonNode *id, JsonNode *ret,
                                Error *err)
{
    JsonObject *rsp = json_object_new();

    if (err) {
        JsonObject *e = json_object_new();

        if (id) {
            json_object_set_member(rsp, "id", json_node_copy(id));
        }
        json_object_set_string_member(e, "class",
            qmp_error_class_names[error_get_class(err)]);
        json_object_set_string_member(e, "desc", error_get_pretty(err));
        json_object_set_object_member(rsp, "error", e);
        trace_monitor_qmp_err(mon, error_get_pretty(err));
    } else {
        json_object_set_member(rsp, "return", ret);
        if (id) {
            json_object_set_member(rsp, "id", json_node_copy(id));
        }
    }
    monitor_qmp_send(mon, rsp);
}

/* ---- Request checking and dispatch */

/*
 * Check the request object's members in their order, as QEMU does:
 * "execute" a string, "arguments" an object, "id" anything, nothing
 * else. Returns the command name or NULL with errp set.
 */
static const char *monitor_qmp_check_request(JsonObject *req, Error **errp)
{
    g_autoptr(GList) members = json_object_get_members(req);
    const char *name = NULL;

    for (GList *l = members; l; l = l->next) {
        const char *key = l->data;
        JsonNode *val = json_object_get_member(req, key);

        if (!strcmp(key, "execute")) {
            if (!JSON_NODE_HOLDS_VALUE(val) ||
                json_node_get_value_type(val) != G_TYPE_STRING) {
                error_setg(errp, "QMP input member 'execute' must be a "
                           "string");
                return NULL;
            }
            name = json_node_get_string(val);
        } else if (!strcmp(key, "arguments")) {
            if (!JSON_NODE_HOLDS_OBJECT(val)) {
                error_setg(errp, "QMP input member 'arguments' must be an "
                           "object");
                return NULL;
            }
        } else if (strcmp(key, "id")) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return NULL;
        }
    }
    if (!name) {
        error_setg(errp, "QMP input lacks member 'execute'");
    }
    return name;
}

/*
 * Find the command, honouring negotiation mode: until qmp_capabilities
 * succeeded, every other name (known or not) is refused.
 */
static const QmpCommand *monitor_qmp_find(MonitorQMP *mon, const char *name,
                                          Error **errp)
{
    const QmpCommand *cmd = qmp_find_command(name);

    if (!mon->negotiated && strcmp(name, "qmp_capabilities")) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Expecting capabilities negotiation with "
                  "'qmp_capabilities'");
        return NULL;
    }
    if (!cmd) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", name);
    }
    return cmd;
}

/*
 * Run one request to completion (may yield in the handler) and answer
 * it, unless the client that sent it has gone meanwhile.
 */
static void coroutine_fn monitor_qmp_co_handle(MonitorQMP *mon,
                                               QMPRequest *r)
{
    uint64_t session = mon->session;
    JsonObject *req = NULL;
    JsonNode *id = NULL, *ret = NULL;
    const QmpCommand *cmd;
    const char *name;
    Error *err = NULL;

    if (r->err) {
        err = r->err;
        r->err = NULL;
        goto reply;
    }
    if (!JSON_NODE_HOLDS_OBJECT(r->req)) {
        error_setg(&err, "QMP input must be a JSON object");
        goto reply;
    }
    req = json_node_get_object(r->req);
    id = json_object_get_member(req, "id");
    name = monitor_qmp_check_request(req, &err);
    if (!name) {
        goto reply;
    }
    cmd = monitor_qmp_find(mon, name, &err);
    if (!cmd) {
        goto reply;
    }
    trace_monitor_qmp_cmd(mon, name);
    monitor_set_cur(qemu_coroutine_self(), &mon->common);
    cmd->fn(json_object_has_member(req, "arguments")
            ? json_object_get_object_member(req, "arguments") : NULL,
            &ret, &err);
    monitor_set_cur(qemu_coroutine_self(), NULL);

reply:
    if (mon->dead || session != mon->session) {
        trace_monitor_qmp_reply_dropped(mon);
        if (ret) {
            json_node_unref(ret);
        }
    } else {
        monitor_qmp_respond(mon, id, ret, err);
    }
    if (err) {
        error_free(err);
    }
}

static void qmp_request_free(QMPRequest *r)
{
    if (r->req) {
        json_node_unref(r->req);
    }
    if (r->err) {
        error_free(r->err);
    }
    g_free(r);
}

/* Let the chardev read again once the queue has room. */
static void monitor_qmp_resume_input(MonitorQMP *mon)
{
    if (mon->input_paused && !mon->dead &&
        g_queue_get_length(&mon->requests) < QMP_REQ_QUEUE_MAX) {
        mon->input_paused = false;
        qemu_chr_set_input_paused(mon->common.chr, false);
    }
}

/* The dispatcher: answer queued requests in order until none is left. */
static void coroutine_fn monitor_qmp_co_dispatcher(void *opaque)
{
    MonitorQMP *mon = opaque;
    QMPRequest *r;

    while (!mon->dead && (r = g_queue_pop_head(&mon->requests))) {
        monitor_qmp_resume_input(mon);
        monitor_qmp_co_handle(mon, r);
        qmp_request_free(r);
    }
    mon->busy = false;
    if (mon->dead) {
        monitor_qmp_free(mon);
    }
}

/* Bottom half: start the dispatcher if there is work and none runs. */
static void monitor_qmp_kick(void *opaque)
{
    MonitorQMP *mon = opaque;

    if (mon->busy || g_queue_is_empty(&mon->requests)) {
        return;
    }
    mon->busy = true;
    qemu_coroutine_enter(qemu_coroutine_create(monitor_qmp_co_dispatcher,
                                               mon));
}

/* Streamer callback: queue a value or a parse error for the dispatcher. */
static void monitor_qmp_streamer_cb(void *opaque, JsonNode *value,
                                    Error *err)
{
    MonitorQMP *mon = opaque;
    QMPRequest *r = g_new0(QMPRequest, 1);

    r->req = value;
    r->err = err;
    g_queue_push_tail(&mon->requests, r);
    trace_monitor_qmp_request(mon, err ? error_get_pretty(err) : "",
                              g_queue_get_length(&mon->requests));
    qemu_bh_schedule(mon->kick_bh);
}

/* Feed input; stop the chardev reading when the queue is full. */
static void monitor_qmp_input(MonitorQMP *mon, const uint8_t *buf,
                              size_t len)
{
    json_streamer_feed(mon->streamer, (const char *)buf, len);
    if (mon->common.chr && !mon->input_paused &&
        g_queue_get_length(&mon->requests) >= QMP_REQ_QUEUE_MAX) {
        mon->input_paused = true;
        qemu_chr_set_input_paused(mon->common.chr, true);
    }
}

/* ---- Chardev front end */

static void monitor_qmp_chr_connected(void *opaque)
{
    MonitorQMP *mon = opaque;

    trace_monitor_qmp_connected(mon);
    mon->negotiated = false;
    json_streamer_reset(mon->streamer);
    monitor_qmp_send_greeting(mon);
}

static void monitor_qmp_chr_receive(void *opaque, const uint8_t *buf,
                                    size_t len)
{
    monitor_qmp_input(opaque, buf, len);
}

/* Forget the session: queued requests, partial input, negotiation. */
static void monitor_qmp_chr_disconnected(void *opaque)
{
    MonitorQMP *mon = opaque;
    QMPRequest *r;

    trace_monitor_qmp_disconnected(mon, g_queue_get_length(&mon->requests));
    mon->session++;
    mon->negotiated = false;
    while ((r = g_queue_pop_head(&mon->requests))) {
        qmp_request_free(r);
    }
    json_streamer_reset(mon->streamer);
    if (mon->input_paused) {
        mon->input_paused = false;
        qemu_chr_set_input_paused(mon->common.chr, false);
    }
}

static const CharFrontendOps monitor_qmp_chr_ops = {
    .connected = monitor_qmp_chr_connected,
    .receive = monitor_qmp_chr_receive,
    .disconnected = monitor_qmp_chr_disconnected,
};

/* ---- Creation and teardown */

static void monitor_qmp_free(MonitorQMP *mon)
{
    QMPRequest *r;

    while ((r = g_queue_pop_head(&mon->requests))) {
        qmp_request_free(r);
    }
    json_streamer_free(mon->streamer);
    qemu_bh_delete(mon->kick_bh);
    monitor_common_finalize(&mon->common);
    g_free(mon);
}

/* destroy: detach from the chardev; free now or when the command ends. */
static void monitor_qmp_destroy(Monitor *common)
{
    MonitorQMP *mon = monitor_qmp(common);

    trace_monitor_qmp_destroy(mon, mon->busy);
    monitor_list_remove(common);
    if (common->chr) {
        if (mon->input_paused) {
            qemu_chr_set_input_paused(common->chr, false);
        }
        qemu_chr_detach_frontend(common->chr);
        common->chr = NULL;
    }
    if (mon->busy) {
        mon->dead = true;
    } else {
        monitor_qmp_free(mon);
    }
}

/* A monitor with everything but the chardev attachment. */
static MonitorQMP *monitor_qmp_new(Chardev *chr, bool pretty)
{
    MonitorQMP *mon = g_new0(MonitorQMP, 1);

    monitor_common_init(&mon->common, chr, true);
    mon->common.emit_event = monitor_qmp_emit_event;
    mon->common.destroy = monitor_qmp_destroy;
    mon->pretty = pretty;
    mon->streamer = json_streamer_new(monitor_qmp_streamer_cb, mon);
    g_queue_init(&mon->requests);
    mon->kick_bh = qemu_bh_new(monitor_qmp_kick, mon);
    return mon;
}

bool monitor_init_qmp(Chardev *chr, bool pretty, Error **errp)
{
    MonitorQMP *mon = monitor_qmp_new(chr, pretty);

    /* QMP clients on a terminal type whole lines: cooked mode with echo */
    qemu_chr_set_echo(chr, true);
    if (!qemu_chr_attach_frontend(chr, &monitor_qmp_chr_ops, mon, errp)) {
        monitor_qmp_free(mon);
        return false;
    }
    monitor_list_add(&mon->common);
    trace_monitor_qmp_new(mon, qemu_chr_get_id(chr), pretty);
    return true;
}

Monitor *monitor_qmp_new_buffered(void)
{
    MonitorQMP *mon = monitor_qmp_new(NULL, false);

    monitor_list_add(&mon->common);
    monitor_qmp_send_greeting(mon);
    return &mon->common;
}

void monitor_qmp_feed(Monitor *mon, const uint8_t *buf, size_t len)
{
    monitor_qmp_input(monitor_qmp(mon), buf, len);
}
