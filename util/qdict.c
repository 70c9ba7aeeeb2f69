/*
 * Flat option dictionaries (see include/qemu/qdict.h).
 *
 * State: a refcounted GHashTable mapping owned key strings to owned value
 * strings. There is no nesting in memory: "file.filename" is one key.
 * Nesting only appears when serializing (qdict_to_json_nested), where
 * dotted keys are split back into objects.
 *
 * Values are always strings. The typed getters parse on every call and
 * report malformed values with QEMU's wording, naming the key, so callers
 * never format their own "bad value" errors.
 *
 * JSON serialization cannot know a value's intended type, so it uses one
 * fixed rule: a value that is the canonical decimal form of a 64-bit
 * signed integer ("0", "-12", not "007" or "+1") is written as a JSON
 * number, every other value (including "on"/"off") as a JSON string.
 * Keys are emitted in strcmp() order so the output is deterministic.
 *
 * Not thread-safe: a dict belongs to one thread (the main loop) at a time.
 */
#include "qemu/osdep.h"
#include "qemu/qdict.h"
#include "qemu/keyval.h"

struct QDict {
    int refcnt;
    GHashTable *table;      /* char *key -> char *value, both owned */
};

/* A new empty dict holding one reference. */
QDict *qdict_new(void)
{
    QDict *d = g_new0(QDict, 1);

    d->refcnt = 1;
    d->table = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    return d;
}

QDict *qdict_ref(QDict *d)
{
    g_assert(d->refcnt > 0);
    d->refcnt++;
    return d;
}

void qdict_unref(QDict *d)
{
    if (!d) {
        return;
    }
    g_assert(d->refcnt > 0);
    if (--d->refcnt == 0) {
        g_hash_table_destroy(d->table);
        g_free(d);
    }
}

/* A deep copy (strings are duplicated) with its own reference. */
QDict *qdict_clone(const QDict *d)
{
    QDict *copy = qdict_new();

    qdict_join(copy, d, true);
    return copy;
}

/* ---- Plain access */

/* All puts replace an existing value; key and value are copied. */
void qdict_put_str(QDict *d, const char *key, const char *value)
{
    g_hash_table_insert(d->table, g_strdup(key), g_strdup(value));
}

void qdict_put_int(QDict *d, const char *key, int64_t value)
{
    g_hash_table_insert(d->table, g_strdup(key),
                        g_strdup_printf("%" PRId64, value));
}

void qdict_put_bool(QDict *d, const char *key, bool value)
{
    qdict_put_str(d, key, value ? "on" : "off");
}

bool qdict_haskey(const QDict *d, const char *key)
{
    return g_hash_table_contains(d->table, key);
}

const char *qdict_get_try_str(const QDict *d, const char *key)
{
    return g_hash_table_lookup(d->table, key);
}

void qdict_del(QDict *d, const char *key)
{
    g_hash_table_remove(d->table, key);
}

size_t qdict_size(const QDict *d)
{
    return g_hash_table_size(d->table);
}

/* qsort() comparator over an array of C strings. */
static int qdict_key_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The array points into the table: valid until the dict changes. */
const char **qdict_keys(const QDict *d)
{
    guint n;
    const char **keys;

    keys = (const char **)g_hash_table_get_keys_as_array(d->table, &n);
    qsort(keys, n, sizeof(keys[0]), qdict_key_cmp);
    return keys;
}

/* ---- Typed getters */

bool qdict_get_bool(const QDict *d, const char *key, bool def, bool *out,
                    Error **errp)
{
    static const char *const yes[] = { "on", "yes", "true", "y" };
    static const char *const no[] = { "off", "no", "false", "n" };
    const char *v = qdict_get_try_str(d, key);
    size_t i;

    if (!v) {
        *out = def;
        return true;
    }
    /* QEMU's boolean parser: these spellings, lower case only. */
    for (i = 0; i < ARRAY_SIZE(yes); i++) {
        if (!strcmp(v, yes[i])) {
            *out = true;
            return true;
        }
        if (!strcmp(v, no[i])) {
            *out = false;
            return true;
        }
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
    return false;
}

/*
 * Integers as QEMU's option parser reads them (decimal, 0x hex, 0 octal,
 * leading blanks allowed). Unlike QEMU, a negative value is refused
 * rather than wrapped around.
 */
bool qdict_get_uint(const QDict *d, const char *key, uint64_t def,
                    uint64_t *out, Error **errp)
{
    const char *v = qdict_get_try_str(d, key);
    const char *p;
    char *end;
    uint64_t val;

    if (!v) {
        *out = def;
        return true;
    }
    /* strtoull() skips blanks and accepts a sign; a '-' is refused. */
    for (p = v; g_ascii_isspace(*p); p++) {
        /* skip */
    }
    if (*p == '-' || *p == '\0') {
        goto not_a_number;
    }
    errno = 0;
    val = strtoull(v, &end, 0);
    if (end == v || *end != '\0') {
        goto not_a_number;
    }
    if (errno == ERANGE) {
        error_setg(errp, "Value '%s' is too large for parameter '%s'", v, key);
        return false;
    }
    *out = val;
    return true;

not_a_number:
    error_setg(errp, "Parameter '%s' expects a number", key);
    return false;
}

/* Sizes use parse_size(); the two error texts follow QEMU 7.2. */
bool qdict_get_size(const QDict *d, const char *key, uint64_t def,
                    uint64_t *out, Error **errp)
{
    const char *v = qdict_get_try_str(d, key);
    int ret;

    if (!v) {
        *out = def;
        return true;
    }
    ret = parse_size(v, out);
    if (ret == -ERANGE) {
        error_setg(errp, "Value '%s' is out of range for parameter '%s'",
                   v, key);
        return false;
    }
    if (ret < 0) {
        error_setg(errp, "Parameter '%s' expects a non-negative number "
                   "below 2^64", key);
        error_append_hint(errp, "Optional suffix k, M, G, T, P or E means "
                          "kilo-, mega-, giga-, tera-, peta-\n"
                          "and exabytes, respectively.\n");
        return false;
    }
    return true;
}

/* ---- Whole-dict operations */

/* Removing through the iterator keeps the walk valid. */
QDict *qdict_extract_subqdict(QDict *src, const char *prefix)
{
    QDict *sub = qdict_new();
    size_t plen = strlen(prefix);
    GHashTableIter it;
    gpointer k, v;

    g_hash_table_iter_init(&it, src->table);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (!strncmp(k, prefix, plen)) {
            qdict_put_str(sub, (const char *)k + plen, v);
            g_hash_table_iter_remove(&it);
        }
    }
    return sub;
}

bool qdict_has_prefixed_entries(const QDict *d, const char *prefix)
{
    size_t plen = strlen(prefix);
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, d->table);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        if (!strncmp(k, prefix, plen)) {
            return true;
        }
    }
    return false;
}

void qdict_join(QDict *dst, const QDict *src, bool overwrite)
{
    GHashTableIter it;
    gpointer k, v;

    g_assert(dst != src);
    g_hash_table_iter_init(&it, src->table);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        if (overwrite || !qdict_haskey(dst, k)) {
            qdict_put_str(dst, k, v);
        }
    }
}

/* ---- JSON output */

/* Append s as a JSON string literal (quoted, escaped; UTF-8 kept). */
static void json_append_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (; *s; s++) {
        unsigned char c = *s;

        switch (c) {
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                g_string_append_printf(out, "\\u%04x", c);
            } else {
                g_string_append_c(out, c);
            }
        }
    }
    g_string_append_c(out, '"');
}

/* True if v is the canonical decimal spelling of an int64_t. */
static bool json_value_is_integer(const char *v)
{
    const char *p = v + (*v == '-');
    char *end;

    if (!g_ascii_isdigit(*p) || (*p == '0' && p[1] != '\0')) {
        return false;
    }
    if (*v == '-' && !strcmp(p, "0")) {
        return false;           /* "-0" would not round-trip */
    }
    errno = 0;
    (void)g_ascii_strtoll(v, &end, 10);
    return *end == '\0' && errno == 0;
}

/* Append a value with the number-or-string rule of the file comment. */
static void json_append_value(GString *out, const char *v)
{
    if (json_value_is_integer(v)) {
        g_string_append(out, v);
    } else {
        json_append_string(out, v);
    }
}

/* {"k": v, ...} with ", " and ": " separators, as QEMU prints. */
char *qdict_to_json_flat(const QDict *d)
{
    g_autofree const char **keys = qdict_keys(d);
    GString *out = g_string_new("{");
    size_t i;

    for (i = 0; keys[i]; i++) {
        if (i) {
            g_string_append(out, ", ");
        }
        json_append_string(out, keys[i]);
        g_string_append(out, ": ");
        json_append_value(out, qdict_get_try_str(d, keys[i]));
    }
    g_string_append_c(out, '}');
    return g_string_free(out, FALSE);
}

/*
 * Emit keys[*pos...] that share the prefix `prefix` (length plen, ending
 * in '.' or empty for the root) as one JSON object; advances *pos past
 * them. keys is sorted, so all keys under one prefix are contiguous. When
 * both "a" and "a.b" exist, "a" is written as a scalar and "a.b" stays a
 * literal dotted key at this level, so no value is lost.
 */
static void json_append_nested(GString *out, const QDict *d,
                               const char *const *keys, size_t *pos,
                               const char *prefix, size_t plen)
{
    bool first = true;

    g_string_append_c(out, '{');
    while (keys[*pos] && !strncmp(keys[*pos], prefix, plen)) {
        const char *rest = keys[*pos] + plen;
        const char *dot = strchr(rest, '.');
        size_t flen = dot ? (size_t)(dot - rest) : strlen(rest);
        g_autofree char *head = g_strndup(keys[*pos], plen + flen);

        if (!first) {
            g_string_append(out, ", ");
        }
        first = false;
        if (!dot || qdict_haskey(d, head)) {
            /* A scalar, or a key clashing with a scalar: write as is. */
            json_append_string(out, rest);
            g_string_append(out, ": ");
            json_append_value(out, qdict_get_try_str(d, keys[*pos]));
            (*pos)++;
        } else {
            g_autofree char *sub = g_strconcat(head, ".", NULL);

            json_append_string(out, head + plen);
            g_string_append(out, ": ");
            json_append_nested(out, d, keys, pos, sub, plen + flen + 1);
        }
    }
    g_string_append_c(out, '}');
}

char *qdict_to_json_nested(const QDict *d)
{
    g_autofree const char **keys = qdict_keys(d);
    GString *out = g_string_new("");
    size_t pos = 0;

    json_append_nested(out, d, keys, &pos, "", 0);
    g_assert(keys[pos] == NULL);
    return g_string_free(out, FALSE);
}
