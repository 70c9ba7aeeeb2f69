/*
 * JSON text <-> json-glib nodes, formatted as QEMU's monitor formats them.
 *
 * Printing walks the JsonNode tree recursively (no state besides the
 * output buffer and the depth), so it is re-entrant. Output is pure
 * ASCII: every character outside printable ASCII is written as \uXXXX
 * (upper-case hex, a surrogate pair above U+FFFF) and a byte sequence that
 * is not UTF-8 becomes U+FFFD, so a client can never receive bytes that
 * break its decoder. Pretty mode follows QEMU's writer: a newline and 4
 * spaces per level before every member and before the closing bracket.
 *
 * Parsing reuses the JSON streamer (same lexer, limits and error texts as
 * the QMP input path) over one string and insists on exactly one value.
 */
#include "qemu/osdep.h"
#include "qemu/qjson.h"
#include "qemu/unicode.h"
#include "qemu/json-streamer.h"
#include "trace.h"

static void qjson_write(GString *buf, JsonNode *node, bool pretty, int depth);

/* printf formats "%.Ng" for N = 0..17 (index = precision). */
static const char *const qjson_double_fmt[] = {
    "%.0g", "%.1g", "%.2g", "%.3g", "%.4g", "%.5g", "%.6g", "%.7g", "%.8g",
    "%.9g", "%.10g", "%.11g", "%.12g", "%.13g", "%.14g", "%.15g", "%.16g",
    "%.17g",
};

/* Newline and indentation for depth (pretty mode only). */
static void qjson_newline(GString *buf, bool pretty, int depth)
{
    if (pretty) {
        g_string_append_c(buf, '\n');
        for (int i = 0; i < depth; i++) {
            g_string_append(buf, "    ");
        }
    }
}

/* Append str as a quoted, escaped, pure-ASCII JSON string. */
static void qjson_write_string(GString *buf, const char *str)
{
    const unsigned char *p = (const unsigned char *)(str ? str : "");
    const unsigned char *end = p + strlen((const char *)p);

    g_string_append_c(buf, '"');
    while (*p) {
        long cp = utf8_decode_next(&p, end);

        switch (cp) {
        case '"': g_string_append(buf, "\\\""); break;
        case '\\': g_string_append(buf, "\\\\"); break;
        case '\b': g_string_append(buf, "\\b"); break;
        case '\f': g_string_append(buf, "\\f"); break;
        case '\n': g_string_append(buf, "\\n"); break;
        case '\r': g_string_append(buf, "\\r"); break;
        case '\t': g_string_append(buf, "\\t"); break;
        default:
            if (cp < 0) {
                cp = 0xFFFD;
            }
            if (cp > 0xFFFF) {
                g_string_append_printf(buf, "\\u%04lX\\u%04lX",
                                       0xD800 + ((cp - 0x10000) >> 10),
                                       0xDC00 + ((cp - 0x10000) & 0x3FF));
            } else if (cp < 0x20 || cp >= 0x7F) {
                g_string_append_printf(buf, "\\u%04lX", cp);
            } else {
                g_string_append_c(buf, (char)cp);
            }
        }
    }
    g_string_append_c(buf, '"');
}

/*
 * Shortest decimal form of d that reads back as the same double. Values
 * below 1e17 print without exponent, as QEMU's %.17g prints them.
 */
static void qjson_write_double(GString *buf, double d)
{
    char tmp[G_ASCII_DTOSTR_BUF_SIZE];
    const char *e;
    int prec;

    for (prec = 1; prec < 17; prec++) {
        g_ascii_formatd(tmp, sizeof(tmp), qjson_double_fmt[prec], d);
        if (g_ascii_strtod(tmp, NULL) == d) {
            break;
        }
    }
    g_ascii_formatd(tmp, sizeof(tmp), qjson_double_fmt[prec], d);
    e = strchr(tmp, 'e');
    if (e) {
        long exp = strtol(e + 1, NULL, 10);
        if (exp >= prec && exp < 17) {
            g_ascii_formatd(tmp, sizeof(tmp), qjson_double_fmt[exp + 1], d);
        }
    }
    g_string_append(buf, tmp);
}

/* Append a scalar (int, double, bool or string) node. */
static void qjson_write_value(GString *buf, JsonNode *node)
{
    GType t = json_node_get_value_type(node);

    if (t == G_TYPE_INT64) {
        g_string_append_printf(buf, "%lld",
                               (long long)json_node_get_int(node));
    } else if (t == G_TYPE_DOUBLE) {
        qjson_write_double(buf, json_node_get_double(node));
    } else if (t == G_TYPE_BOOLEAN) {
        g_string_append(buf, json_node_get_boolean(node) ? "true" : "false");
    } else {
        qjson_write_string(buf, json_node_get_string(node));
    }
}

/*
 * Members in insertion order (the order a handler built them in), each on
 * its own line at depth + 1 when pretty; the closing brace at depth.
 */
static void qjson_write_object(GString *buf, JsonObject *obj, bool pretty,
                               int depth)
{
    JsonObjectIter it;
    const char *name;
    JsonNode *member;
    bool first = true;

    g_string_append_c(buf, '{');
    json_object_iter_init_ordered(&it, obj);
    while (json_object_iter_next_ordered(&it, &name, &member)) {
        if (!first) {
            g_string_append_c(buf, ',');
            if (!pretty) {
                g_string_append_c(buf, ' ');
            }
        }
        first = false;
        qjson_newline(buf, pretty, depth + 1);
        qjson_write_string(buf, name);
        g_string_append(buf, ": ");
        qjson_write(buf, member, pretty, depth + 1);
    }
    qjson_newline(buf, pretty, depth);
    g_string_append_c(buf, '}');
}

/* Elements laid out as object members are (see above). */
static void qjson_write_array(GString *buf, JsonArray *arr, bool pretty,
                              int depth)
{
    guint n = json_array_get_length(arr);

    g_string_append_c(buf, '[');
    for (guint i = 0; i < n; i++) {
        if (i) {
            g_string_append_c(buf, ',');
            if (!pretty) {
                g_string_append_c(buf, ' ');
            }
        }
        qjson_newline(buf, pretty, depth + 1);
        qjson_write(buf, json_array_get_element(arr, i), pretty, depth + 1);
    }
    qjson_newline(buf, pretty, depth);
    g_string_append_c(buf, ']');
}

/* Append node at nesting depth (the depth its first line starts at). */
static void qjson_write(GString *buf, JsonNode *node, bool pretty, int depth)
{
    if (!node) {
        g_string_append(buf, "null");
        return;
    }
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        qjson_write_object(buf, json_node_get_object(node), pretty, depth);
        break;
    case JSON_NODE_ARRAY:
        qjson_write_array(buf, json_node_get_array(node), pretty, depth);
        break;
    case JSON_NODE_VALUE:
        qjson_write_value(buf, node);
        break;
    case JSON_NODE_NULL:
        g_string_append(buf, "null");
        break;
    }
}

/* Public entry points: the whole tree from depth 0. */
void qjson_append(GString *buf, JsonNode *node, bool pretty)
{
    qjson_write(buf, node, pretty, 0);
}

char *qjson_to_string(JsonNode *node, bool pretty)
{
    GString *buf = g_string_new(NULL);

    qjson_write(buf, node, pretty, 0);
    return g_string_free(buf, false);
}

/* What qjson_from_string collects from the streamer. */
typedef struct QjsonParseState {
    JsonNode *value;
    Error *err;
    int nvalues;
} QjsonParseState;

/* Keep the first value and the first error; a second value is an error. */
static void qjson_parse_cb(void *opaque, JsonNode *value, Error *err)
{
    QjsonParseState *st = opaque;

    st->nvalues++;
    if (err) {
        if (!st->err) {
            st->err = err;
        } else {
            error_free(err);
        }
        return;
    }
    if (st->nvalues > 1 && !st->err) {
        error_setg(&st->err, "Expecting at most one JSON value");
    }
    if (!st->value) {
        st->value = value;
    } else {
        json_node_unref(value);
    }
}

/*
 * The flush makes a trailing scalar ("42") complete and an unfinished
 * value an error, which a stream would rather wait out.
 */
JsonNode *qjson_from_string(const char *text, Error **errp)
{
    QjsonParseState st = { 0 };
    JsonStreamer *s = json_streamer_new(qjson_parse_cb, &st);

    json_streamer_feed(s, text, strlen(text));
    json_streamer_flush(s);
    json_streamer_free(s);
    if (!st.err && !st.value) {
        error_setg(&st.err, "Expecting a JSON value");
    }
    if (st.err) {
        trace_qjson_from_string_error(error_get_pretty(st.err));
        if (st.value) {
            json_node_unref(st.value);
        }
        error_propagate(errp, st.err);
        return NULL;
    }
    return st.value;
}
