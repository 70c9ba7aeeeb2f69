/*
 * Unit tests for util/qjson.c: QEMU's compact and pretty formatting
 * (separators, member order, indentation of empty containers), pure-ASCII
 * string escaping, shortest round-trip doubles, and qjson_from_string's
 * one-value contract with its errors.
 */
#include "qemu/osdep.h"
#include "qemu/qjson.h"

/* Parse text (must succeed) and print it back. */
static char *reformat(const char *text, bool pretty)
{
    JsonNode *node = qjson_from_string(text, &error_abort);
    char *out = qjson_to_string(node, pretty);

    json_node_unref(node);
    return out;
}

static void assert_reformat(const char *text, bool pretty, const char *want)
{
    g_autofree char *got = reformat(text, pretty);

    g_assert_cmpstr(got, ==, want);
}

static void assert_parse_error(const char *text, const char *msg)
{
    Error *err = NULL;
    JsonNode *node = qjson_from_string(text, &err);

    g_assert_null(node);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

static void test_compact(void)
{
    assert_reformat("{\"return\":{},\"id\":1}", false,
                    "{\"return\": {}, \"id\": 1}");
    /* Member order is the input's, not sorted. */
    assert_reformat("{\"z\":1,\"a\":[true,false,null],\"m\":\"s\"}", false,
                    "{\"z\": 1, \"a\": [true, false, null], \"m\": \"s\"}");
    assert_reformat("[]", false, "[]");
    assert_reformat("-9223372036854775808", false, "-9223372036854775808");
}

static void test_builder_order(void)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autofree char *s = NULL;
    JsonNode *root;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "event");
    json_builder_add_string_value(b, "SHUTDOWN");
    json_builder_set_member_name(b, "data");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "guest");
    json_builder_add_boolean_value(b, false);
    json_builder_end_object(b);
    json_builder_set_member_name(b, "timestamp");
    json_builder_add_int_value(b, 1);
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    s = qjson_to_string(root, false);
    g_assert_cmpstr(s, ==, "{\"event\": \"SHUTDOWN\", \"data\": "
                    "{\"guest\": false}, \"timestamp\": 1}");
    json_node_unref(root);
    g_free(s);
    s = qjson_to_string(NULL, false);
    g_assert_cmpstr(s, ==, "null");
}

static void test_pretty(void)
{
    assert_reformat("{\"a\": [1, 2], \"b\": {}, \"c\": []}", true,
                    "{\n"
                    "    \"a\": [\n"
                    "        1,\n"
                    "        2\n"
                    "    ],\n"
                    "    \"b\": {\n"
                    "    },\n"
                    "    \"c\": [\n"
                    "    ]\n"
                    "}");
    assert_reformat("{}", true, "{\n}");
    assert_reformat("\"x\"", true, "\"x\"");
}

static void test_string_escapes(void)
{
    g_autoptr(JsonNode) node = json_node_new(JSON_NODE_VALUE);
    g_autofree char *s = NULL;
    g_autofree char *bad = NULL;

    json_node_set_string(node, "\"\\\b\f\n\r\t\x01\x1f\x7f/ \xc3\xa9 "
                         "\xe2\x82\xac \xf0\x9f\x98\x80");
    s = qjson_to_string(node, false);
    g_assert_cmpstr(s, ==, "\"\\\"\\\\\\b\\f\\n\\r\\t\\u0001\\u001F\\u007F/ "
                    "\\u00E9 \\u20AC \\uD83D\\uDE00\"");
    /* Invalid UTF-8 never reaches the client: U+FFFD instead. */
    json_node_set_string(node, "a\xff\xc3(b");
    bad = qjson_to_string(node, false);
    g_assert_cmpstr(bad, ==, "\"a\\uFFFD\\uFFFD(b\"");
}

static void test_doubles(void)
{
    assert_reformat("[0.1, 1.5, -2.25e-3, 1e300, 1500.0, 0.0]", false,
                    "[0.1, 1.5, -0.00225, 1e+300, 1500, 0]");
    assert_reformat("[3.141592653589793, 1e-7]", false,
                    "[3.141592653589793, 1e-07]");
}

static void test_from_string(void)
{
    assert_reformat("{'execute': 'quit'}", false,
                    "{\"execute\": \"quit\"}");
    assert_reformat("  42 ", false, "42");
    assert_reformat("42", false, "42");
    assert_parse_error("", "Expecting a JSON value");
    assert_parse_error("   ", "Expecting a JSON value");
    assert_parse_error("[1", "JSON parse error, premature EOI");
    assert_parse_error("1 2", "Expecting at most one JSON value");
    assert_parse_error("{\"a\" 1}", "JSON parse error, missing : in object pair");
    assert_parse_error("[1, \x02]", "JSON parse error, stray '\x02'");
}

static void test_roundtrip(void)
{
    static const char *const texts[] = {
        "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
        "\"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}",
        "[\"\\u00E9\\uD83D\\uDE00\", -1, 2.5, [[], {}], {\"k\": null}]",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(texts); i++) {
        g_autofree char *out = reformat(texts[i], false);
        g_autofree char *pretty = reformat(texts[i], true);
        g_autofree char *back = reformat(pretty, false);

        g_assert_cmpstr(out, ==, texts[i]);
        g_assert_cmpstr(back, ==, texts[i]);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qjson/print/compact", test_compact);
    g_test_add_func("/qjson/print/member-order", test_builder_order);
    g_test_add_func("/qjson/print/pretty", test_pretty);
    g_test_add_func("/qjson/print/string-escapes", test_string_escapes);
    g_test_add_func("/qjson/print/doubles-shortest", test_doubles);
    g_test_add_func("/qjson/parse/one-value", test_from_string);
    g_test_add_func("/qjson/roundtrip", test_roundtrip);
    return g_test_run();
}
