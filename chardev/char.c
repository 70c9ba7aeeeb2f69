/*
 * Character devices: the registry of --chardev instances, their option
 * parsing, and the front-end side of the API (include/chardev/char.h).
 *
 * State: every chardev is on chardevs, in creation order, until
 * qemu_chr_cleanup_all(). Each has one backend (chosen by the first
 * keyval element, "socket,...") holding the transport, and at most one
 * front end (a monitor) receiving its events. Everything runs on the main
 * loop thread, so no locking is needed; backends call the front end only
 * from fd handlers, never from inside a front end's own call into them,
 * except for connected() during qemu_chr_attach_frontend().
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"
#include "chardev/chardev-internal.h"
#include "trace.h"

/* Creation order; main loop thread only. */
static GList *chardevs;

static const ChardevBackend *const chardev_backends[] = {
    &chardev_backend_socket,
    &chardev_backend_stdio,
};

/* The backend called name ("socket"), or NULL. */
static const ChardevBackend *qemu_chr_find_backend(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(chardev_backends); i++) {
        if (!strcmp(chardev_backends[i]->name, name)) {
            return chardev_backends[i];
        }
    }
    return NULL;
}

Chardev *qemu_chr_find(const char *id)
{
    for (GList *l = chardevs; l; l = l->next) {
        Chardev *chr = l->data;

        if (!strcmp(chr->id, id)) {
            return chr;
        }
    }
    return NULL;
}

const char *qemu_chr_get_id(const Chardev *chr)
{
    return chr->id;
}

/*
 * Check the generic options (backend, id) in QEMU's words; on success
 * remove them from opts and return the backend.
 */
static const ChardevBackend *qemu_chr_take_generic(QDict *opts, char **id,
                                                   Error **errp)
{
    const char *name = qdict_get_try_str(opts, "backend");
    const ChardevBackend *be;

    if (!name) {
        error_setg(errp, "chardev: \"backend\" not specified");
        return NULL;
    }
    be = qemu_chr_find_backend(name);
    if (!be) {
        error_setg(errp, "'%s' is not a valid char driver name", name);
        return NULL;
    }
    if (!qdict_get_try_str(opts, "id")) {
        error_setg(errp, "chardev: no id specified");
        return NULL;
    }
    if (qemu_chr_find(qdict_get_try_str(opts, "id"))) {
        error_setg(errp, "Duplicate chardev ID '%s'",
                   qdict_get_try_str(opts, "id"));
        return NULL;
    }
    *id = g_strdup(qdict_get_try_str(opts, "id"));
    qdict_del(opts, "backend");
    qdict_del(opts, "id");
    return be;
}

bool qemu_chr_check_no_leftover(QDict *opts, Error **errp)
{
    g_autofree const char **keys = NULL;

    if (qdict_size(opts) == 0) {
        return true;
    }
    keys = qdict_keys(opts);
    error_setg(errp, "Invalid parameter '%s'", keys[0]);
    return false;
}

/*
 * The chardev is registered only once its backend is fully set up (a
 * server socket listening), so a failed --chardev leaves nothing behind.
 */
Chardev *qemu_chr_new(const char *optstr, Error **errp)
{
    g_autoptr(QDict) opts = keyval_parse(optstr, "backend", errp);
    const ChardevBackend *be;
    Chardev *chr;
    char *id = NULL;

    if (!opts) {
        return NULL;
    }
    be = qemu_chr_take_generic(opts, &id, errp);
    if (!be) {
        return NULL;
    }
    chr = g_new0(Chardev, 1);
    chr->id = id;
    chr->backend = be;
    if (!be->open(chr, opts, errp)) {
        g_free(chr->id);
        g_free(chr);
        return NULL;
    }
    if (!qemu_chr_check_no_leftover(opts, errp)) {
        be->close(chr);
        g_free(chr->id);
        g_free(chr);
        return NULL;
    }
    chardevs = g_list_append(chardevs, chr);
    trace_chr_new(chr, chr->id, be->name);
    return chr;
}

/*
 * If a client is already connected (wait=on), the front end's connected()
 * is called before this returns, so it never misses the connection.
 */
bool qemu_chr_attach_frontend(Chardev *chr, const CharFrontendOps *ops,
                              void *opaque, Error **errp)
{
    if (chr->fe_ops) {
        error_setg(errp, "Device '%s' is in use", chr->id);
        return false;
    }
    chr->fe_ops = ops;
    chr->fe_opaque = opaque;
    chr->backend->frontend_attached(chr);
    return true;
}

void qemu_chr_detach_frontend(Chardev *chr)
{
    chr->fe_ops = NULL;
    chr->fe_opaque = NULL;
}

void qemu_chr_set_input_paused(Chardev *chr, bool paused)
{
    if (chr->backend->set_input_paused) {
        chr->backend->set_input_paused(chr, paused);
    }
}

void qemu_chr_set_echo(Chardev *chr, bool echo)
{
    if (chr->backend->set_echo) {
        chr->backend->set_echo(chr, echo);
    }
}

bool qemu_chr_is_terminal(const Chardev *chr)
{
    return chr->backend->is_terminal && chr->backend->is_terminal(chr);
}

void qemu_chr_write(Chardev *chr, const void *buf, size_t len)
{
    if (len) {
        chr->backend->write(chr, buf, len);
    }
}

void qemu_chr_disconnect(Chardev *chr)
{
    chr->backend->disconnect(chr);
}

bool qemu_chr_is_connected(const Chardev *chr)
{
    return chr->backend->is_connected(chr);
}

/* ---- QEMU's legacy -qmp/-monitor syntax */

/*
 * Append the legacy flags (",server=on,wait=off"; also the short forms
 * "server", "nowait" that QEMU 7.2 still accepts with a warning) to kv.
 */
static bool qemu_chr_legacy_flags(GString *kv, const char *flags,
                                  Error **errp)
{
    g_auto(GStrv) parts = g_strsplit(flags, ",", -1);

    for (size_t i = 0; parts[i]; i++) {
        const char *p = parts[i];

        if (!*p) {
            continue;
        }
        if (!strcmp(p, "server") || !strcmp(p, "wait") ||
            !strcmp(p, "nowait")) {
            warn_report("short-form boolean option '%s' deprecated", p);
            g_string_append_printf(kv, ",%s", !strcmp(p, "nowait")
                                   ? "wait=off" : !strcmp(p, "wait")
                                   ? "wait=on" : "server=on");
            continue;
        }
        if (!strchr(p, '=')) {
            error_setg(errp, "Invalid parameter '%s'", p);
            return false;
        }
        g_string_append_printf(kv, ",%s", p);
    }
    return true;
}

/*
 * Translate "unix:P,..." / "tcp:H:PORT,..." / "stdio" into --chardev
 * keyval form; commas inside the address are not supported (a path with
 * a comma must use --chardev).
 */
static char *qemu_chr_legacy_to_keyval(const char *id, const char *spec,
                                       Error **errp)
{
    g_autoptr(GString) kv = g_string_new(NULL);
    const char *comma = strchr(spec, ',');
    g_autofree char *addr = g_strndup(spec, comma ? comma - spec
                                                  : (long)strlen(spec));
    const char *colon;

    if (!strcmp(addr, "stdio")) {
        g_string_printf(kv, "stdio,id=%s", id);
    } else if (g_str_has_prefix(addr, "unix:")) {
        g_string_printf(kv, "socket,id=%s,path=%s", id, addr + 5);
    } else if (g_str_has_prefix(addr, "tcp:") &&
               (colon = strrchr(addr + 4, ':'))) {
        g_autofree char *host = g_strndup(addr + 4, colon - (addr + 4));

        g_string_printf(kv, "socket,id=%s,host=%s,port=%s", id, host,
                        colon + 1);
    } else {
        error_setg(errp, "'%s' is not a supported chardev (use stdio, "
                   "unix:PATH,server=on or tcp:HOST:PORT,server=on)", spec);
        return NULL;
    }
    if (comma && !qemu_chr_legacy_flags(kv, comma + 1, errp)) {
        return NULL;
    }
    return g_string_free(g_steal_pointer(&kv), false);
}

Chardev *qemu_chr_new_legacy(const char *id, const char *spec, Error **errp)
{
    g_autofree char *kv = qemu_chr_legacy_to_keyval(id, spec, errp);

    if (!kv) {
        return NULL;
    }
    trace_chr_new_legacy(id, spec, kv);
    return qemu_chr_new(kv, errp);
}

/* Shutdown: closes clients and listeners, removes unix socket files. */
void qemu_chr_cleanup_all(void)
{
    for (GList *l = chardevs; l; l = l->next) {
        Chardev *chr = l->data;

        /* The front end is going away too: tell it nothing more. */
        chr->fe_ops = NULL;
        chr->backend->close(chr);
        g_free(chr->id);
        g_free(chr);
    }
    g_list_free(chardevs);
    chardevs = NULL;
}

/* ---- Backend to front end */

void qemu_chr_be_connected(Chardev *chr)
{
    if (chr->fe_ops && chr->fe_ops->connected) {
        chr->fe_ops->connected(chr->fe_opaque);
    }
}

void qemu_chr_be_receive(Chardev *chr, const uint8_t *buf, size_t len)
{
    if (chr->fe_ops && chr->fe_ops->receive) {
        chr->fe_ops->receive(chr->fe_opaque, buf, len);
    }
}

void qemu_chr_be_disconnected(Chardev *chr)
{
    if (chr->fe_ops && chr->fe_ops->disconnected) {
        chr->fe_ops->disconnected(chr->fe_opaque);
    }
}
