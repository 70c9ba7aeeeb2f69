/*
 * Runtime of the generated QAPI visitors (see include/qapi/qapi-visit-core.h).
 *
 * State: none global. A visit carries a QapiIn (the input mode) and, per
 * input object, a QapiObjIn that remembers which members were consumed;
 * the generated code frees everything it allocated on failure, so these
 * helpers only ever return new values on success.
 *
 * Error texts are QEMU 7.2's so that clients matching them keep working.
 */
#include "qemu/osdep.h"
#include "qapi/qapi-visit-core.h"
#include "qemu/keyval.h"

char *qapi_path_member(const char *path, const char *name)
{
    return path ? g_strdup_printf("%s.%s", path, name) : g_strdup(name);
}

char *qapi_path_index(const char *path, size_t index)
{
    return g_strdup_printf("%s[%zu]", path ? path : "", index);
}

void qapi_error_missing(const char *path, const char *name, Error **errp)
{
    g_autofree char *full = qapi_path_member(path, name);

    error_setg(errp, "Parameter '%s' is missing", full);
}

void qapi_error_type(const char *path, const char *expected, Error **errp)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s",
               path ? path : "null", expected);
}

/* QEMU's QERR_INVALID_PARAMETER_VALUE: bare name, 'null' for elements. */
static void qapi_error_value(const char *name, const char *expects,
                             Error **errp)
{
    error_setg(errp, "Parameter '%s' expects %s", name ? name : "null",
               expects);
}

JsonObject *qapi_in_object(const QapiIn *in, JsonNode *node,
                           const char *path, Error **errp)
{
    if (!node || !JSON_NODE_HOLDS_OBJECT(node)) {
        qapi_error_type(path, "object", errp);
        return NULL;
    }
    return json_node_get_object(node);
}

JsonArray *qapi_in_array(const QapiIn *in, JsonNode *node, const char *path,
                         Error **errp)
{
    if (!node || !JSON_NODE_HOLDS_ARRAY(node)) {
        qapi_error_type(path, "array", errp);
        return NULL;
    }
    return json_node_get_array(node);
}

void qapi_obj_in_init(QapiObjIn *oi, JsonObject *obj, const char *path)
{
    oi->obj = obj;
    oi->path = path;
    oi->used = g_hash_table_new(g_str_hash, g_str_equal);
}

void qapi_obj_in_cleanup(QapiObjIn *oi)
{
    g_clear_pointer(&oi->used, g_hash_table_destroy);
}

JsonNode *qapi_obj_in_take(QapiObjIn *oi, const char *name)
{
    JsonNode *node;

    if (!oi->obj) {
        return NULL;
    }
    node = json_object_get_member(oi->obj, name);
    if (node) {
        g_hash_table_add(oi->used, (gpointer)name);
    }
    return node;
}

bool qapi_obj_in_check_unexpected(QapiObjIn *oi, Error **errp)
{
    g_autoptr(GList) names = NULL;

    if (!oi->obj) {
        return true;
    }
    names = json_object_get_members(oi->obj);
    for (GList *l = names; l; l = l->next) {
        if (!g_hash_table_contains(oi->used, l->data)) {
            g_autofree char *full = qapi_path_member(oi->path, l->data);

            error_setg(errp, "Parameter '%s' is unexpected", full);
            return false;
        }
    }
    return true;
}

/* The string of a string value node, or NULL for any other node. */
static const char *qapi_node_str(JsonNode *node)
{
    if (node && JSON_NODE_HOLDS_VALUE(node) &&
        json_node_get_value_type(node) == G_TYPE_STRING) {
        return json_node_get_string(node);
    }
    return NULL;
}

static bool qapi_node_is(JsonNode *node, GType type)
{
    return node && JSON_NODE_HOLDS_VALUE(node) &&
           json_node_get_value_type(node) == type;
}

/* Keyval booleans: on/off, yes/no, true/false. -1 if none of these. */
static int qapi_keyval_bool(const char *s)
{
    if (!strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true")) {
        return 1;
    }
    if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false")) {
        return 0;
    }
    return -1;
}

static bool qapi_contains(const QType *qtypes, size_t n, QType q)
{
    for (size_t i = 0; i < n; i++) {
        if (qtypes[i] == q) {
            return true;
        }
    }
    return false;
}

QType qapi_in_alternate_qtype(const QapiIn *in, JsonNode *node,
                              const QType *qtypes, size_t n)
{
    QType q = QTYPE_NONE;
    const char *s = qapi_node_str(node);

    if (in->keyval && s) {
        if (qapi_contains(qtypes, n, QTYPE_QSTRING)) {
            return QTYPE_QSTRING;
        }
        if (qapi_contains(qtypes, n, QTYPE_QBOOL) && qapi_keyval_bool(s) >= 0) {
            return QTYPE_QBOOL;
        }
        return qapi_contains(qtypes, n, QTYPE_QNUM) ? QTYPE_QNUM : QTYPE_NONE;
    }
    if (JSON_NODE_HOLDS_OBJECT(node)) {
        q = QTYPE_QDICT;
    } else if (JSON_NODE_HOLDS_ARRAY(node)) {
        q = QTYPE_QLIST;
    } else if (JSON_NODE_HOLDS_NULL(node)) {
        q = QTYPE_QNULL;
    } else if (s) {
        q = QTYPE_QSTRING;
    } else if (qapi_node_is(node, G_TYPE_BOOLEAN)) {
        q = QTYPE_QBOOL;
    } else {
        q = QTYPE_QNUM;
    }
    return qapi_contains(qtypes, n, q) ? q : QTYPE_NONE;
}

/* ---- scalar input ------------------------------------------------- */

QAPI_SCALAR_IN(str, char *)
{
    const char *s = qapi_node_str(node);

    if (!s) {
        qapi_error_type(path, "string", errp);
        return false;
    }
    *out = g_strdup(s);
    return true;
}

/* A keyval string as a signed/unsigned integer (base 0, no trailing junk). */
static bool qapi_keyval_int(const char *s, bool is_unsigned, int64_t *out)
{
    char *end;

    errno = 0;
    if (is_unsigned) {
        if (s[0] == '-') {
            *out = strtoll(s, &end, 0);
        } else {
            *out = (int64_t)strtoull(s, &end, 0);
        }
    } else {
        *out = strtoll(s, &end, 0);
    }
    return *s && !*end && errno == 0;
}

/*
 * An integer node as 64 bits (bit pattern; is_unsigned allows values
 * above INT64_MAX, which JSON parsing delivers as doubles).
 */
static bool qapi_in_int_raw(const QapiIn *in, JsonNode *node,
                            const char *path, bool is_unsigned,
                            int64_t *out, Error **errp)
{
    const char *s = qapi_node_str(node);

    if (in->keyval && s) {
        if (!qapi_keyval_int(s, is_unsigned, out)) {
            error_setg(errp, "Parameter '%s' expects integer",
                       path ? path : "null");
            return false;
        }
        return true;
    }
    if (qapi_node_is(node, G_TYPE_INT64)) {
        *out = json_node_get_int(node);
        return true;
    }
    if (is_unsigned && qapi_node_is(node, G_TYPE_DOUBLE)) {
        double d = json_node_get_double(node);

        if (d >= 0 && d < 18446744073709551616.0 && d == (uint64_t)d) {
            *out = (int64_t)(uint64_t)d;
            return true;
        }
    }
    qapi_error_type(path, "integer", errp);
    return false;
}

/* Signed range-checked input; the error names ctype ("int8_t"). */
static bool qapi_in_intN(const QapiIn *in, JsonNode *node, const char *path,
                         const char *name, int64_t min, int64_t max,
                         const char *ctype, int64_t *out, Error **errp)
{
    if (!qapi_in_int_raw(in, node, path, false, out, errp)) {
        return false;
    }
    if (*out < min || *out > max) {
        qapi_error_value(name, ctype, errp);
        return false;
    }
    return true;
}

static bool qapi_in_uintN(const QapiIn *in, JsonNode *node, const char *path,
                          const char *name, uint64_t max, const char *ctype,
                          uint64_t *out, Error **errp)
{
    int64_t v;

    if (!qapi_in_int_raw(in, node, path, true, &v, errp)) {
        return false;
    }
    *out = (uint64_t)v;
    if (*out > max) {
        qapi_error_value(name, ctype, errp);
        return false;
    }
    return true;
}

#define QAPI_INT_IN(cname, ctype, min, max)                                  \
    QAPI_SCALAR_IN(cname, ctype)                                             \
    {                                                                        \
        int64_t v;                                                           \
        if (!qapi_in_intN(in, node, path, name, min, max, #ctype, &v,        \
                          errp)) {                                           \
            return false;                                                    \
        }                                                                    \
        *out = v;                                                            \
        return true;                                                         \
    }
#define QAPI_UINT_IN(cname, ctype, max)                                      \
    QAPI_SCALAR_IN(cname, ctype)                                             \
    {                                                                        \
        uint64_t v;                                                          \
        if (!qapi_in_uintN(in, node, path, name, max, #ctype, &v, errp)) {   \
            return false;                                                    \
        }                                                                    \
        *out = v;                                                            \
        return true;                                                         \
    }

QAPI_INT_IN(int, int64_t, INT64_MIN, INT64_MAX)
QAPI_INT_IN(int8, int8_t, INT8_MIN, INT8_MAX)
QAPI_INT_IN(int16, int16_t, INT16_MIN, INT16_MAX)
QAPI_INT_IN(int32, int32_t, INT32_MIN, INT32_MAX)
QAPI_INT_IN(int64, int64_t, INT64_MIN, INT64_MAX)
QAPI_UINT_IN(uint8, uint8_t, UINT8_MAX)
QAPI_UINT_IN(uint16, uint16_t, UINT16_MAX)
QAPI_UINT_IN(uint32, uint32_t, UINT32_MAX)
QAPI_UINT_IN(uint64, uint64_t, UINT64_MAX)

QAPI_SCALAR_IN(size, uint64_t)
{
    const char *s = qapi_node_str(node);

    if (in->keyval && s) {
        if (parse_size(s, out) < 0) {
            error_setg(errp, "Parameter '%s' expects size",
                       path ? path : "null");
            return false;
        }
        return true;
    }
    return qapi_in_uintN(in, node, path, name, UINT64_MAX, "uint64_t", out,
                         errp);
}

QAPI_SCALAR_IN(bool, bool)
{
    const char *s = qapi_node_str(node);

    if (in->keyval && s) {
        int b = qapi_keyval_bool(s);

        if (b < 0) {
            error_setg(errp, "Parameter '%s' expects 'on' or 'off'",
                       path ? path : "null");
            return false;
        }
        *out = b;
        return true;
    }
    if (!qapi_node_is(node, G_TYPE_BOOLEAN)) {
        qapi_error_type(path, "boolean", errp);
        return false;
    }
    *out = json_node_get_boolean(node);
    return true;
}

QAPI_SCALAR_IN(number, double)
{
    const char *s = qapi_node_str(node);

    if (in->keyval && s) {
        char *end;

        errno = 0;
        *out = strtod(s, &end);
        if (!*s || *end || errno) {
            error_setg(errp, "Parameter '%s' expects number",
                       path ? path : "null");
            return false;
        }
        return true;
    }
    if (qapi_node_is(node, G_TYPE_DOUBLE)) {
        *out = json_node_get_double(node);
        return true;
    }
    if (qapi_node_is(node, G_TYPE_INT64)) {
        *out = json_node_get_int(node);
        return true;
    }
    qapi_error_type(path, "number", errp);
    return false;
}

QAPI_SCALAR_IN(any, JsonNode *)
{
    *out = json_node_copy(node);
    return true;
}

QAPI_SCALAR_IN(null, JsonNode *)
{
    if (!JSON_NODE_HOLDS_NULL(node)) {
        qapi_error_type(path, "null", errp);
        return false;
    }
    *out = json_node_new(JSON_NODE_NULL);
    return true;
}

int qapi_enum_parse(const char *const *lookup, int n, const char *s)
{
    for (int i = 0; s && i < n; i++) {
        if (!strcmp(lookup[i], s)) {
            return i;
        }
    }
    return -1;
}

bool qapi_in_enum(const QapiIn *in, JsonNode *node, const char *path,
                  const char *name, const char *const *lookup, int n,
                  int *out, Error **errp)
{
    const char *s = qapi_node_str(node);

    if (!s) {
        qapi_error_type(path, "string", errp);
        return false;
    }
    *out = qapi_enum_parse(lookup, n, s);
    if (*out < 0) {
        error_setg(errp, "Parameter '%s' does not accept value '%s'",
                   name ? name : "null", s);
        return false;
    }
    return true;
}

/* ---- scalar output ------------------------------------------------ */

JsonNode *qapi_out_type_str(const char *value)
{
    return json_node_init_string(json_node_alloc(), value ? value : "");
}

JsonNode *qapi_out_type_int(int64_t value)
{
    return json_node_init_int(json_node_alloc(), value);
}

/* Values above INT64_MAX cannot be held by json-glib's int64 nodes. */
JsonNode *qapi_out_type_uint(uint64_t value)
{
    if (value > INT64_MAX) {
        return json_node_init_double(json_node_alloc(), (double)value);
    }
    return json_node_init_int(json_node_alloc(), (int64_t)value);
}

JsonNode *qapi_out_type_bool(bool value)
{
    return json_node_init_boolean(json_node_alloc(), value);
}

JsonNode *qapi_out_type_number(double value)
{
    return json_node_init_double(json_node_alloc(), value);
}

JsonNode *qapi_out_type_any(const JsonNode *value)
{
    return value ? json_node_copy((JsonNode *)value)
                 : json_node_new(JSON_NODE_NULL);
}

JsonNode *qapi_out_type_null(const JsonNode *value)
{
    return json_node_new(JSON_NODE_NULL);
}

JsonNode *qapi_out_object(JsonObject *obj)
{
    return json_node_init_object(json_node_alloc(), obj);
}

JsonNode *qapi_out_empty_object(void)
{
    JsonObject *obj = json_object_new();
    JsonNode *node = qapi_out_object(obj);

    json_object_unref(obj);
    return node;
}

void qapi_free_any(JsonNode *node)
{
    if (node) {
        json_node_unref(node);
    }
}

/* ---- keyval -> JSON tree ------------------------------------------ */

/* True if obj's keys are exactly "0".."n-1" (n > 0). */
static bool qapi_keyval_is_list(JsonObject *obj)
{
    guint n = json_object_get_size(obj);

    for (guint i = 0; i < n; i++) {
        g_autofree char *key = g_strdup_printf("%u", i);

        if (!json_object_has_member(obj, key)) {
            return false;
        }
    }
    return n > 0;
}

static JsonNode *qapi_keyval_listify(JsonNode *node);

/* Listify every member of obj (in place). */
static void qapi_keyval_listify_members(JsonObject *obj)
{
    g_autoptr(GList) keys = json_object_get_members(obj);

    for (GList *l = keys; l; l = l->next) {
        JsonNode *child = json_object_dup_member(obj, l->data);

        json_object_set_member(obj, l->data, qapi_keyval_listify(child));
    }
}

/* Turn objects that are really lists into arrays, recursively. */
static JsonNode *qapi_keyval_listify(JsonNode *node)
{
    JsonObject *obj;
    JsonArray *arr;
    guint n;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        return node;
    }
    obj = json_node_get_object(node);
    qapi_keyval_listify_members(obj);
    if (!qapi_keyval_is_list(obj)) {
        return node;
    }
    n = json_object_get_size(obj);
    arr = json_array_sized_new(n);
    for (guint i = 0; i < n; i++) {
        g_autofree char *key = g_strdup_printf("%u", i);

        json_array_add_element(arr, json_object_dup_member(obj, key));
    }
    json_node_unref(node);
    return json_node_init_array(json_node_alloc(), arr);
}

/* Store value at the dotted key inside root; false on a conflict. */
static bool qapi_keyval_put(JsonObject *root, const char *key,
                            const char *value)
{
    g_auto(GStrv) parts = g_strsplit(key, ".", -1);
    JsonObject *obj = root;
    int i;

    for (i = 0; parts[i + 1]; i++) {
        JsonNode *child = json_object_get_member(obj, parts[i]);

        if (!child) {
            json_object_set_object_member(obj, parts[i], json_object_new());
            child = json_object_get_member(obj, parts[i]);
        } else if (!JSON_NODE_HOLDS_OBJECT(child)) {
            return false;
        }
        obj = json_node_get_object(child);
    }
    if (json_object_has_member(obj, parts[i])) {
        return false;
    }
    json_object_set_string_member(obj, parts[i], value);
    return true;
}

JsonNode *qapi_keyval_to_json(const QDict *opts, Error **errp)
{
    g_autofree const char **keys = qdict_keys(opts);
    JsonObject *root = json_object_new();
    JsonNode *node = json_node_init_object(json_node_alloc(), root);

    json_object_unref(root);
    for (size_t i = 0; keys[i]; i++) {
        if (!qapi_keyval_put(root, keys[i],
                             qdict_get_try_str(opts, keys[i]))) {
            error_setg(errp, "Parameter '%s' conflicts with another "
                       "parameter", keys[i]);
            json_node_unref(node);
            return NULL;
        }
    }
    qapi_keyval_listify_members(root);
    return node;
}
