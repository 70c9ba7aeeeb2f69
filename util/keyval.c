/*
 * Option string parsers: keyval, JSON, sizes (see include/qemu/keyval.h).
 *
 * keyval: "key=val,key2.sub=v,,al" is split at single commas (",," is a
 * literal comma inside a value). Each key is a dotted path whose first
 * fragment is a name ([A-Za-z][A-Za-z0-9_-]*) and whose later fragments
 * are names or decimal array indexes. The result is a flat QDict, so the
 * tree QEMU builds exists only as constraints that are checked here:
 *  - a path is either a leaf or an inner node ("a=1,a.b=2" is an error);
 *  - an inner node's children are all names (an object) or all indexes
 *    (an array without gaps: "a.1" needs "a.0");
 *  - the last of several assignments to one leaf wins.
 * Error texts follow QEMU's keyval parser.
 *
 * Parsing happens on a copy of the target dict and is committed only on
 * success, so a failed keyval_parse_into() leaves the target unchanged.
 *
 * JSON: parsed with json-glib, then flattened into dotted keys with the
 * scalar conventions of qdict.h (booleans "on"/"off", numbers in decimal,
 * null as the empty string).
 *
 * Sizes: qemu-img's syntax. Decimal with an optional fraction, or hex
 * without one, then an optional binary suffix. A fraction needs a suffix
 * other than "b" and is rounded to the nearest byte.
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"
#include <json-glib/json-glib.h>

/* QEMU limits key fragments to 127 characters. */
#define KEYVAL_MAX_FRAGMENT 127

/* ---- keyval: key syntax */

/* Length of the name at s ([A-Za-z][A-Za-z0-9_-]*), 0 if none. */
static size_t keyval_name_len(const char *s, size_t max)
{
    size_t i = 0;

    if (max == 0 || !g_ascii_isalpha(s[0])) {
        return 0;
    }
    for (i = 1; i < max; i++) {
        if (!g_ascii_isalnum(s[i]) && s[i] != '-' && s[i] != '_') {
            break;
        }
    }
    return i;
}

/* Length of the run of decimal digits at s, at most max. */
static size_t keyval_index_len(const char *s, size_t max)
{
    size_t i;

    for (i = 0; i < max && g_ascii_isdigit(s[i]); i++) {
        /* count */
    }
    return i;
}

/* True if frag (not NUL-terminated, length len) is an array index. */
static bool keyval_is_index(const char *frag, size_t len)
{
    return len > 0 && keyval_index_len(frag, len) == len;
}

/* Check that key is a well-formed dotted path; set errp if not. */
static bool keyval_check_key(const char *key, Error **errp)
{
    size_t klen = strlen(key);
    const char *s = key;

    for (;;) {
        size_t rest = klen - (s - key);
        size_t len = keyval_name_len(s, rest);

        if (s != key) {
            len = MAX(len, keyval_index_len(s, rest));
        }
        if (len == 0 || (len < rest && s[len] != '.')) {
            error_setg(errp, "Invalid parameter '%s'", key);
            return false;
        }
        if (len > KEYVAL_MAX_FRAGMENT) {
            bool one = (s == key && len == klen);

            error_setg(errp, "Parameter%s '%.*s' is too long",
                       one ? "" : " fragment", (int)len, s);
            return false;
        }
        if (len == rest) {
            return true;
        }
        s += len + 1;
    }
}

/* ---- keyval: tree constraints on the flat dict */

/* Store key=value in d unless key clashes with a leaf/inner node. */
static bool keyval_put(QDict *d, const char *key, const char *value,
                       Error **errp)
{
    g_autofree char *prefix = g_strconcat(key, ".", NULL);
    const char *dot;

    /* key must not lie below an existing leaf ... */
    for (dot = strchr(key, '.'); dot; dot = strchr(dot + 1, '.')) {
        g_autofree char *parent = g_strndup(key, dot - key);

        if (qdict_haskey(d, parent)) {
            error_setg(errp, "Parameters '%s.*' used inconsistently", parent);
            return false;
        }
    }
    /* ... nor be an existing inner node. */
    if (qdict_has_prefixed_entries(d, prefix)) {
        error_setg(errp, "Parameters '%s.*' used inconsistently", key);
        return false;
    }
    qdict_put_str(d, key, value);
    return true;
}

/*
 * Add every inner node of key (each proper dotted prefix, with its
 * trailing '.') to the set parents.
 */
static void keyval_note_parents(GHashTable *parents, const char *key)
{
    const char *dot;

    for (dot = strchr(key, '.'); dot; dot = strchr(dot + 1, '.')) {
        g_hash_table_add(parents, g_strndup(key, dot - key + 1));
    }
}

/*
 * Check that the children of inner node parent ("a.b.") in d are all
 * names or all indexes 0..n-1.
 */
static bool keyval_check_node(const QDict *d, const char *const *keys,
                              const char *parent, Error **errp)
{
    size_t plen = strlen(parent);
    g_autoptr(GHashTable) indexes = g_hash_table_new(NULL, NULL);
    bool has_name = false;
    unsigned long max_index = 0;
    unsigned long i;
    size_t k;

    for (k = 0; keys[k]; k++) {
        const char *frag;
        size_t flen;

        if (strncmp(keys[k], parent, plen)) {
            continue;
        }
        frag = keys[k] + plen;
        flen = strcspn(frag, ".");
        if (!keyval_is_index(frag, flen)) {
            has_name = true;
            continue;
        }
        i = strtoul(frag, NULL, 10);
        i = MIN(i, (unsigned long)INT_MAX);
        g_hash_table_add(indexes, GUINT_TO_POINTER(i + 1));
        max_index = MAX(max_index, i + 1);
    }
    if (has_name && g_hash_table_size(indexes)) {
        error_setg(errp, "Parameters '%s*' used inconsistently", parent);
        return false;
    }
    for (i = 1; i <= max_index; i++) {
        if (!g_hash_table_contains(indexes, GUINT_TO_POINTER(i))) {
            error_setg(errp, "Parameter '%s%lu' missing", parent, i - 1);
            return false;
        }
    }
    return true;
}

/* Check every inner node named in parents (see keyval_check_node). */
static bool keyval_check_arrays(const QDict *d, GHashTable *parents,
                                Error **errp)
{
    g_autofree const char **keys = qdict_keys(d);
    g_autofree const char **nodes = NULL;
    guint n, i;

    nodes = (const char **)g_hash_table_get_keys_as_array(parents, &n);
    for (i = 0; i < n; i++) {
        if (!keyval_check_node(d, keys, nodes[i], errp)) {
            return false;
        }
    }
    return true;
}

/* ---- keyval: the parser */

/*
 * Parse one "key=value" (or implied-key value) starting at s into d.
 * Returns the start of the next element (or the terminating NUL), or
 * NULL with errp set.
 */
static const char *keyval_parse_one(QDict *d, GHashTable *parents,
                                    const char *s, const char *implied_key,
                                    Error **errp)
{
    size_t len = strcspn(s, "=,");
    g_autofree char *key = NULL;
    g_autoptr(GString) value = g_string_new("");

    if (implied_key && len && s[len] != '=') {
        key = g_strdup(implied_key);
    } else {
        key = g_strndup(s, len);
        if (!keyval_check_key(key, errp)) {
            return NULL;
        }
        if (s[len] != '=') {
            error_setg(errp, "Expected '=' after parameter '%s'", key);
            return NULL;
        }
        s += len + 1;
    }

    /* The value runs to the first single comma; ",," is a comma. */
    while (*s) {
        if (*s == ',') {
            if (s[1] != ',') {
                s++;
                break;
            }
            s++;
        }
        g_string_append_c(value, *s++);
    }

    if (!keyval_put(d, key, value->str, errp)) {
        return NULL;
    }
    keyval_note_parents(parents, key);
    return s;
}

bool keyval_parse_into(QDict *d, const char *params, const char *implied_key,
                       Error **errp)
{
    g_autoptr(QDict) work = qdict_clone(d);
    g_autoptr(GHashTable) parents =
        g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    const char *s = params;

    while (*s) {
        s = keyval_parse_one(work, parents, s, implied_key, errp);
        if (!s) {
            return false;
        }
        implied_key = NULL;     /* only the first element may omit it */
    }
    if (!keyval_check_arrays(work, parents, errp)) {
        return false;
    }
    /* work is d plus the new entries: commit by copying it back. */
    qdict_join(d, work, true);
    return true;
}

QDict *keyval_parse(const char *params, const char *implied_key,
                    Error **errp)
{
    QDict *d = qdict_new();

    if (!keyval_parse_into(d, params, implied_key, errp)) {
        qdict_unref(d);
        return NULL;
    }
    return d;
}

/* ---- JSON */

static void json_flatten(QDict *d, const char *key, JsonNode *node);

/* Flatten each member of obj as "prefix.member" (or "member" at root). */
static void json_flatten_object(QDict *d, const char *prefix, JsonObject *obj)
{
    g_autoptr(GList) members = json_object_get_members(obj);
    GList *m;

    for (m = members; m; m = m->next) {
        const char *name = m->data;
        g_autofree char *key = prefix ? g_strdup_printf("%s.%s", prefix, name)
                                      : g_strdup(name);

        json_flatten(d, key, json_object_get_member(obj, name));
    }
}

/* Store a scalar JSON value as its qdict string form. */
static void json_flatten_value(QDict *d, const char *key, JsonNode *node)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    switch (json_node_get_value_type(node)) {
    case G_TYPE_BOOLEAN:
        qdict_put_bool(d, key, json_node_get_boolean(node));
        break;
    case G_TYPE_INT64:
        qdict_put_int(d, key, json_node_get_int(node));
        break;
    case G_TYPE_DOUBLE:
        qdict_put_str(d, key, g_ascii_dtostr(buf, sizeof(buf),
                                             json_node_get_double(node)));
        break;
    default:
        qdict_put_str(d, key, json_node_get_string(node));
        break;
    }
}

/* Flatten node into d under key (see the file comment for the rules). */
static void json_flatten(QDict *d, const char *key, JsonNode *node)
{
    JsonArray *arr;
    guint i;

    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        json_flatten_object(d, key, json_node_get_object(node));
        break;
    case JSON_NODE_ARRAY:
        arr = json_node_get_array(node);
        for (i = 0; i < json_array_get_length(arr); i++) {
            g_autofree char *sub = g_strdup_printf("%s.%u", key, i);

            json_flatten(d, sub, json_array_get_element(arr, i));
        }
        break;
    case JSON_NODE_VALUE:
        json_flatten_value(d, key, node);
        break;
    case JSON_NODE_NULL:
        qdict_put_str(d, key, "");
        break;
    }
}

QDict *qdict_from_json(const char *json, Error **errp)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) gerr = NULL;
    JsonNode *root;
    QDict *d;

    if (!json_parser_load_from_data(parser, json, -1, &gerr)) {
        /* json-glib says "<data>:LINE:COL: ..."; keep LINE:COL only. */
        const char *msg = gerr->message;

        if (g_str_has_prefix(msg, "<data>:")) {
            msg += strlen("<data>:");
        }
        error_setg(errp, "Could not parse the JSON options: %s", msg);
        return NULL;
    }
    root = json_parser_get_root(parser);
    if (!root) {
        error_setg(errp, "Could not parse the JSON options: "
                   "Expecting a JSON value");
        return NULL;
    }
    if (json_node_get_node_type(root) != JSON_NODE_OBJECT) {
        error_setg(errp, "Invalid JSON object given");
        return NULL;
    }
    d = qdict_new();
    json_flatten_object(d, NULL, json_node_get_object(root));
    return d;
}

/* ---- Sizes */

/* Multiplier for a size suffix character, 0 if c is not one. */
static uint64_t size_suffix_mult(char c)
{
    switch (g_ascii_tolower(c)) {
    case 'b':
        return 1;
    case 'k':
        return 1ULL << 10;
    case 'm':
        return 1ULL << 20;
    case 'g':
        return 1ULL << 30;
    case 't':
        return 1ULL << 40;
    case 'p':
        return 1ULL << 50;
    case 'e':
        return 1ULL << 60;
    default:
        return 0;
    }
}

/*
 * Parse the unsigned integer at *p in base 10 or 16 (digits required),
 * advancing *p. Returns 0, -EINVAL or -ERANGE.
 */
static int size_parse_digits(const char **p, int base, uint64_t *val)
{
    const char *s = *p;
    uint64_t v = 0;

    if (!g_ascii_isxdigit(*s) || (base == 10 && !g_ascii_isdigit(*s))) {
        return -EINVAL;
    }
    for (; base == 16 ? g_ascii_isxdigit(*s) : g_ascii_isdigit(*s); s++) {
        unsigned d = g_ascii_xdigit_value(*s);

        if (v > (UINT64_MAX - d) / base) {
            return -ERANGE;
        }
        v = v * base + d;
    }
    *p = s;
    *val = v;
    return 0;
}

/* Parse the number part of a size: sets *val, *frac (0 <= frac < 1). */
static int size_parse_number(const char **p, uint64_t *val, double *frac,
                             bool *has_frac)
{
    const char *s = *p;
    int ret;

    *frac = 0;
    *has_frac = false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        ret = size_parse_digits(&s, 16, val);
    } else {
        ret = size_parse_digits(&s, 10, val);
        if (ret == 0 && *s == '.') {
            const char *f = s;

            for (s++; g_ascii_isdigit(*s); s++) {
                /* skip */
            }
            *frac = g_ascii_strtod(f, NULL);
            *has_frac = true;
        }
    }
    *p = s;
    return ret;
}

/* The parse proper; *end is set only on success. */
static int size_parse(const char *str, const char **end, uint64_t *result)
{
    const char *s = str;
    uint64_t val, mult, extra;
    double frac;
    bool has_frac;
    int ret;

    while (g_ascii_isspace(*s)) {
        s++;
    }
    if (*s == '+') {
        s++;
    }
    ret = size_parse_number(&s, &val, &frac, &has_frac);
    if (ret < 0) {
        return ret;
    }
    mult = size_suffix_mult(*s);
    if (mult) {
        s++;
    } else {
        mult = 1;
    }
    if (has_frac && frac != 0 && mult == 1) {
        return -EINVAL;         /* no fractional bytes */
    }
    if (val > UINT64_MAX / mult) {
        return -ERANGE;
    }
    val *= mult;
    extra = (uint64_t)(frac * (double)mult + 0.5);
    if (val > UINT64_MAX - extra) {
        return -ERANGE;
    }
    *result = val + extra;
    *end = s;
    return 0;
}

int qemu_strtosz(const char *str, const char **end, uint64_t *result)
{
    const char *e = str;
    uint64_t val = 0;
    int ret = size_parse(str, &e, &val);

    if (ret == 0 && !end && *e != '\0') {
        ret = -EINVAL;
    }
    if (end) {
        *end = ret == 0 ? e : str;
    }
    if (ret == 0) {
        *result = val;
    }
    return ret;
}

int parse_size(const char *str, uint64_t *result)
{
    return qemu_strtosz(str, NULL, result);
}
