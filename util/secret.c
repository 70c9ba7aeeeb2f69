/*
 * Secret objects: a registry of id -> bytes filled by --object secret
 * and QMP object-add, emptied by object-del (include/qemu/secret.h).
 *
 * State: one hash table, created on first use, on the main loop thread
 * only (QMP handlers and option parsing run there). Values are copied in
 * at creation (a file is read once) and wiped before they are freed.
 * Users such as the curl driver copy a value when they open, so deleting
 * a secret that an open node named is allowed and does not affect it.
 * Values are never traced or put in error messages; only ids are.
 */
#include "qemu/osdep.h"
#include "qemu/id.h"
#include "qemu/keyval.h"
#include "qemu/qjson.h"
#include "qemu/secret.h"
#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"
#include "trace.h"

typedef struct QblkSecret {
    char *bytes;    /* len bytes plus a NUL, so UTF-8 users get a string */
    size_t len;
} QblkSecret;

static GHashTable *qblk_secrets;

/* Wipe and free one secret (hash table value destructor). */
static void qblk_secret_free(gpointer p)
{
    QblkSecret *sec = p;

    memset(sec->bytes, 0, sec->len);
    g_free(sec->bytes);
    g_free(sec);
}

/* The registry, created on first use. */
static GHashTable *qblk_secret_table(void)
{
    if (!qblk_secrets) {
        qblk_secrets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                             qblk_secret_free);
    }
    return qblk_secrets;
}

/* Base64 text (surrounding white space allowed) -> bytes; NULL + errp. */
static char *qblk_secret_base64(const char *text, size_t *len, Error **errp)
{
    g_autofree char *t = g_strstrip(g_strdup(text));
    size_t n = strlen(t);
    guchar *out;

    if (n % 4 || strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
                           "wxyz0123456789+/=") != n ||
        (strchr(t, '=') && strspn(strchr(t, '='), "=") !=
                           strlen(strchr(t, '=')))) {
        error_setg(errp, "Base64 data contains invalid characters");
        return NULL;
    }
    out = g_base64_decode(t, len);
    /* keep a terminating NUL after the bytes */
    out = g_realloc(out, *len + 1);
    out[*len] = '\0';
    return (char *)out;
}

/* The raw value of p (data, or the contents of file); NULL + errp. */
static char *qblk_secret_load(const char *id, SecretProperties *p,
                              size_t *len, Error **errp)
{
    g_autoptr(GError) gerr = NULL;
    char *raw;
    char *dec;

    if (p->data && p->file) {
        error_setg(errp, "'data' and 'file' are mutually exclusive");
        return NULL;
    }
    if (!p->data && !p->file) {
        error_setg(errp, "Either 'file' or 'data' must be provided");
        return NULL;
    }
    if (p->file) {
        if (!g_file_get_contents(p->file, &raw, len, &gerr)) {
            error_setg(errp, "Unable to read %s: %s", p->file,
                       gerr->message);
            return NULL;
        }
    } else {
        raw = g_strdup(p->data);
        *len = strlen(raw);
    }
    if (!p->has_format || p->format == QCRYPTO_SECRET_FORMAT_RAW) {
        return raw;
    }
    dec = qblk_secret_base64(raw, len, errp);
    memset(raw, 0, strlen(raw));
    g_free(raw);
    return dec;
}

/*
 * QMP object-add (and --object): check the id (well-formed, unused),
 * load the value, then register it. Errors are QEMU's texts and name
 * the id or file, never the value.
 */
void qmp_object_add(ObjectOptions *arg, Error **errp)
{
    GHashTable *t = qblk_secret_table();
    QblkSecret *sec;

    if (!id_wellformed(arg->id)) {
        error_setg(errp, "Parameter 'id' expects an identifier");
        return;
    }
    if (g_hash_table_contains(t, arg->id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", arg->id);
        return;
    }
    sec = g_new0(QblkSecret, 1);
    sec->bytes = qblk_secret_load(arg->id, &arg->u.secret, &sec->len, errp);
    if (!sec->bytes) {
        g_free(sec);
        return;
    }
    g_hash_table_insert(t, g_strdup(arg->id), sec);
    trace_qblk_secret_add(arg->id);
}

/*
 * QMP object-del: forget (and wipe) a secret. Nodes that named it keep
 * the copy they took at open, so a secret in use may be deleted.
 */
void qmp_object_del(const char *id, Error **errp)
{
    if (!g_hash_table_remove(qblk_secret_table(), id)) {
        error_setg(errp, "object '%s' not found", id);
        return;
    }
    trace_qblk_secret_del(id);
}

/* The value as a C string: refused if it holds a NUL or is not UTF-8. */
const char *qblk_secret_lookup(const char *id, Error **errp)
{
    QblkSecret *sec = g_hash_table_lookup(qblk_secret_table(), id);

    if (!sec) {
        error_setg(errp, "No secret with id '%s'", id);
        return NULL;
    }
    if (memchr(sec->bytes, '\0', sec->len) ||
        !g_utf8_validate(sec->bytes, sec->len, NULL)) {
        error_setg(errp, "Data from secret %s is not valid UTF-8", id);
        return NULL;
    }
    return sec->bytes;
}

/*
 * --object: a JSON object, or keyval with qom-type implied
 * ("secret,id=s0,data=x"); both go through the generated visitor, so
 * the argument errors match object-add's.
 */
bool qblk_object_add_from_opts(const char *optstr, Error **errp)
{
    g_autoptr(ObjectOptions) opts = NULL;
    Error *err = NULL;

    while (g_ascii_isspace(*optstr)) {
        optstr++;
    }
    if (*optstr == '{') {
        JsonNode *node = qjson_from_string(optstr, errp);

        if (!node) {
            return false;
        }
        opts = qapi_ObjectOptions_from_json(node, errp);
        json_node_unref(node);
    } else {
        g_autoptr(QDict) dict = keyval_parse(optstr, "qom-type", errp);

        if (!dict) {
            return false;
        }
        opts = qapi_ObjectOptions_from_keyval(dict, errp);
    }
    if (!opts) {
        return false;
    }
    qmp_object_add(opts, &err);
    if (err) {
        error_propagate(errp, err);
        return false;
    }
    return true;
}

/* Wipe every secret (values are wiped by the table's destructor). */
void qblk_secret_clear_all(void)
{
    if (qblk_secrets) {
        g_hash_table_destroy(qblk_secrets);
        qblk_secrets = NULL;
    }
}
