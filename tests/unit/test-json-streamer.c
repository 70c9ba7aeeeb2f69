/*
 * Unit tests for the JSON streamer (util/json-streamer.c): value
 * boundaries, QEMU's single-quote extension, QEMU 7.2's error texts,
 * resynchronisation after lexical errors, the three limits, and that any
 * chunking of the input gives the same callbacks.
 *
 * Each callback is recorded as one line: "V:<compact JSON>" or "E:<msg>".
 */
#include "qemu/osdep.h"
#include "qemu/json-streamer.h"
#include "qemu/qjson.h"

typedef struct Events {
    GPtrArray *lines;
} Events;

static void record_cb(void *opaque, JsonNode *value, Error *err)
{
    Events *ev = opaque;

    if (err) {
        g_assert_null(value);
        g_ptr_array_add(ev->lines,
                        g_strdup_printf("E:%s", error_get_pretty(err)));
        error_free(err);
    } else {
        g_autofree char *s = qjson_to_string(value, false);
        g_assert_nonnull(value);
        g_ptr_array_add(ev->lines, g_strdup_printf("V:%s", s));
        json_node_unref(value);
    }
}

/* Feed len bytes of in, chunk bytes at a time (0: all at once). */
static GPtrArray *run_chunked(const char *in, size_t len, size_t chunk)
{
    Events ev = { g_ptr_array_new_with_free_func(g_free) };
    JsonStreamer *s = json_streamer_new(record_cb, &ev);

    if (!chunk) {
        chunk = len ? len : 1;
    }
    for (size_t off = 0; off < len; off += chunk) {
        json_streamer_feed(s, in + off, MIN(chunk, len - off));
    }
    json_streamer_free(s);
    return ev.lines;
}

static GPtrArray *run(const char *in)
{
    return run_chunked(in, strlen(in), 0);
}

/* Assert the recorded lines equal the NULL-terminated list. */
static void assert_lines(GPtrArray *got, const char *const *want)
{
    guint i;

    for (i = 0; want[i]; i++) {
        g_assert_cmpuint(i, <, got->len);
        g_assert_cmpstr(g_ptr_array_index(got, i), ==, want[i]);
    }
    g_assert_cmpuint(got->len, ==, i);
    g_ptr_array_unref(got);
}

#define ASSERT_RUN(in, ...) \
    assert_lines(run(in), (const char *const[]){ __VA_ARGS__, NULL })

static void test_values(void)
{
    ASSERT_RUN("{\"execute\": \"x\", \"id\": 1}[1, 2]\"s\" 42 true null\n",
               "V:{\"execute\": \"x\", \"id\": 1}", "V:[1, 2]", "V:\"s\"",
               "V:42", "V:true", "V:null");
    ASSERT_RUN("  {\"a\": {\"b\": [[], {}]}, \"c\": -1.5e3}",
               "V:{\"a\": {\"b\": [[], {}]}, \"c\": -1500}");
    /* A number needs a following byte to end; a structural one will do. */
    ASSERT_RUN("12[0.5]", "V:12", "V:[0.5]");
}

static void test_incomplete_waits(void)
{
    assert_lines(run("{\"a\": [1, 2"), (const char *const[]){ NULL });
    assert_lines(run("42"), (const char *const[]){ NULL });
}

static void test_single_quotes(void)
{
    ASSERT_RUN("{'execute': 'it\\'s \"q\"', 'n': '\\u00e9'}",
               "V:{\"execute\": \"it's \\\"q\\\"\", \"n\": \"\\u00E9\"}");
    ASSERT_RUN("[\"a\\'b\", \"\\/\\b\\f\\n\\r\\t\"]",
               "V:[\"a'b\", \"/\\b\\f\\n\\r\\t\"]");
}

static void test_unicode(void)
{
    ASSERT_RUN("[\"\\ud83d\\ude00\", \"\xc3\xa9\", \"\xf0\x9f\x98\x80\"]",
               "V:[\"\\uD83D\\uDE00\", \"\\u00E9\", \"\\uD83D\\uDE00\"]");
    ASSERT_RUN("\"\\ud800\"",
               "E:JSON parse error, \\ud800 is not a valid Unicode character");
    ASSERT_RUN("\"\\udc00x\"",
               "E:JSON parse error, \\udc00 is not a valid Unicode character");
    ASSERT_RUN("\"\\u12g4\"",
               "E:JSON parse error, \\u12g4 is not a valid Unicode character");
    ASSERT_RUN("\"a\xc3(\"", "E:JSON parse error, invalid UTF-8 sequence in string");
    ASSERT_RUN("\"\xc0\xaf\"", "E:JSON parse error, invalid UTF-8 sequence in string");
    ASSERT_RUN("\"\xed\xa0\x80\"", "E:JSON parse error, invalid UTF-8 sequence in string");
    ASSERT_RUN("\"\\x\"", "E:JSON parse error, invalid escape sequence in string");
}

static void test_parse_errors(void)
{
    ASSERT_RUN("}", "E:JSON parse error, expecting value");
    ASSERT_RUN("]:,", "E:JSON parse error, expecting value",
               "E:JSON parse error, expecting value",
               "E:JSON parse error, expecting value");
    ASSERT_RUN("[1 2]", "E:JSON parse error, expected separator in list");
    ASSERT_RUN("{\"a\":1 \"b\":2}",
               "E:JSON parse error, expected separator in dict");
    ASSERT_RUN("{\"a\" 1}", "E:JSON parse error, missing : in object pair");
    ASSERT_RUN("{1: 2}", "E:JSON parse error, key is not a string in object");
    ASSERT_RUN("{[1 2]: 2}", "E:JSON parse error, expected separator in list");
    ASSERT_RUN("{\"a\": 1, 'a': 2}", "E:JSON parse error, duplicate key");
    ASSERT_RUN("[1,]", "E:JSON parse error, expecting value");
    ASSERT_RUN("{\"a\":}", "E:JSON parse error, expecting value");
    ASSERT_RUN("[tru]", "E:JSON parse error, invalid keyword 'tru'");
    /* Mismatched brackets end the value at once (a count goes negative). */
    ASSERT_RUN("[}{\"a\":1}", "E:JSON parse error, expecting value",
               "V:{\"a\": 1}");
    /* The error is reported when the value ends, then parsing goes on. */
    ASSERT_RUN("{\"a\" 1, \"b\": [2]} {\"ok\": true}",
               "E:JSON parse error, missing : in object pair",
               "V:{\"ok\": true}");
}

static void test_lexical_errors(void)
{
    ASSERT_RUN("\x01{\"a\": 1}", "E:JSON parse error, stray '\x01'",
               "V:{\"a\": 1}");
    /* 0xFF drops the pending value; the next structural byte resyncs. */
    ASSERT_RUN("{\"execute\": \xff{\"a\": 2}",
               "E:JSON parse error, stray '\xff'", "V:{\"a\": 2}");
    ASSERT_RUN("\xfe\xff[1]", "E:JSON parse error, stray '\xfe'",
               "E:JSON parse error, stray '\xff'", "V:[1]");
    /* Raw control bytes are not allowed in strings either. */
    ASSERT_RUN("[\"x\ty\"]\n[2]", "E:JSON parse error, stray '\"x\t'",
               "E:JSON parse error, expecting value", "V:[2]");
    ASSERT_RUN("-x [3]", "E:JSON parse error, stray '-x'", "V:[3]");
    ASSERT_RUN("01 [4]", "E:JSON parse error, stray '01'", "V:[4]");
    ASSERT_RUN("True [5]", "E:JSON parse error, stray 'T'", "V:[5]");
    /* Recovery skips garbage up to the next resync point. */
    ASSERT_RUN("@garbage \"and more\"\n{\"b\": 1}",
               "E:JSON parse error, stray '@'", "V:{\"b\": 1}");
}

static const char *const chunk_inputs[] = {
    "{'execute': 'qmp_capabilities'}{\"execute\": \"query-version\", "
    "\"id\": [1, {\"x\": null}]}",
    "12 -3.25e-2 0 \"a\\\"b\\\\\" 'c\\'' true false null [[[]]]\n",
    "}]\x01{\"a\" 1}\xff{\"b\": \"\\ud83d\\ude00\xc3\xa9\"}[1 2]{\"c\":3}",
    "[\"x\ty\"] tru [1,] {\"k\": 1, \"k\": 2} \"\\q\" {\"end\": 1}",
};

static void test_chunking(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(chunk_inputs); i++) {
        const char *in = chunk_inputs[i];
        size_t len = strlen(in);
        GPtrArray *whole = run_chunked(in, len, 0);

        g_assert_cmpuint(whole->len, >, 0);
        for (size_t chunk = 1; chunk <= 7; chunk++) {
            GPtrArray *part = run_chunked(in, len, chunk);
            g_assert_cmpuint(part->len, ==, whole->len);
            for (guint j = 0; j < whole->len; j++) {
                g_assert_cmpstr(g_ptr_array_index(part, j), ==,
                                g_ptr_array_index(whole, j));
            }
            g_ptr_array_unref(part);
        }
        g_ptr_array_unref(whole);
    }
}

static void test_nesting_limit(void)
{
    GString *in = g_string_new(NULL);
    GPtrArray *got;

    /* 1024 levels are fine. */
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(in, '[');
    }
    for (int i = 0; i < 1024; i++) {
        g_string_append_c(in, ']');
    }
    got = run(in->str);
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_true(g_str_has_prefix(g_ptr_array_index(got, 0), "V:[[[["));
    g_ptr_array_unref(got);

    /*
     * 1025: the error comes at the 1025th opening; as in QEMU 7.2 the
     * closers then are stray, one error each, and the stream recovers.
     */
    g_string_truncate(in, 0);
    for (int i = 0; i < 1025; i++) {
        g_string_append_c(in, '{');
        g_string_append(in, i < 1024 ? "\"a\":" : "");
    }
    for (int i = 0; i < 1025; i++) {
        g_string_append_c(in, '}');
    }
    g_string_append(in, "{\"ok\": 1}");
    got = run(in->str);
    g_assert_cmpuint(got->len, ==, 1 + 1025 + 1);
    g_assert_cmpstr(g_ptr_array_index(got, 0), ==,
                    "E:JSON nesting depth limit exceeded");
    g_assert_cmpstr(g_ptr_array_index(got, 1), ==,
                    "E:JSON parse error, expecting value");
    g_assert_cmpstr(g_ptr_array_index(got, got->len - 1), ==,
                    "V:{\"ok\": 1}");
    g_ptr_array_unref(got);
    g_string_free(in, true);
}

/* Peak resident set size of this process in kB. */
static long peak_rss_kb(void)
{
    g_autofree char *status = NULL;
    const char *p;

    if (!g_file_get_contents("/proc/self/status", &status, NULL, NULL)) {
        return 0;
    }
    p = strstr(status, "VmHWM:");
    return p ? strtol(p + 6, NULL, 10) : 0;
}

static void test_token_size_limit(void)
{
    const size_t chunk_len = 1 << 20;
    g_autofree char *chunk = g_malloc(chunk_len);
    Events ev = { g_ptr_array_new_with_free_func(g_free) };
    JsonStreamer *s = json_streamer_new(record_cb, &ev);
    long before = peak_rss_kb();

    /* A string just over the real 64 MiB limit, fed 1 MiB at a time. */
    memset(chunk, 'a', chunk_len);
    json_streamer_feed(s, "\"", 1);
    for (size_t done = 0; done <= JSON_STREAMER_MAX_TOKEN; done += chunk_len) {
        json_streamer_feed(s, chunk, chunk_len);
    }
    json_streamer_feed(s, "\"\n{\"after\": 1}", 14);
    json_streamer_free(s);
    assert_lines(ev.lines, (const char *const[]){
        "E:JSON token size limit exceeded", "V:{\"after\": 1}", NULL });
    /*
     * One copy of the token at most (64 MiB), never two. (ASan's realloc
     * always copies, so the bound only holds without it.)
     */
#ifndef __SANITIZE_ADDRESS__
    g_assert_cmpint(peak_rss_kb() - before, <, 70 * 1024);
#else
    (void)before;
#endif
}

static void test_token_size_lowered(void)
{
    Events ev = { g_ptr_array_new_with_free_func(g_free) };
    JsonStreamer *s = json_streamer_new(record_cb, &ev);
    GString *in = g_string_new("[\"");

    /* The limit counts all the tokens of a value, not one token. */
    json_streamer_set_limits(s, 0, 100, 0);
    for (int i = 0; i < 60; i++) {
        g_string_append_c(in, 'a');
    }
    g_string_append(in, "\", \"");
    for (int i = 0; i < 60; i++) {
        g_string_append_c(in, 'b');
    }
    g_string_append(in, "\"]\n[\"small\"]");
    json_streamer_feed(s, in->str, in->len);
    json_streamer_free(s);
    assert_lines(ev.lines, (const char *const[]){
        "E:JSON token size limit exceeded",
        "E:JSON parse error, expecting value", "V:[\"small\"]", NULL });
    g_string_free(in, true);
}

static void test_token_count_limit(void)
{
    GString *in = g_string_sized_new(5 << 20);
    GPtrArray *got;

    /* '[' + 2^20 * "1," is 2^21 + 1 tokens: one too many. */
    g_string_append_c(in, '[');
    for (int i = 0; i < (1 << 20); i++) {
        g_string_append(in, "1,");
    }
    g_string_append(in, "1]");
    got = run(in->str);
    g_assert_cmpuint(got->len, >=, 1);
    g_assert_cmpstr(g_ptr_array_index(got, 0), ==,
                    "E:JSON token count limit exceeded");
    g_ptr_array_unref(got);

    /* 2^21 - 1 tokens parse. */
    g_string_truncate(in, 0);
    g_string_append_c(in, '[');
    for (int i = 0; i < (1 << 20) - 2; i++) {
        g_string_append(in, "1,");
    }
    g_string_append(in, "1]");
    got = run(in->str);
    g_assert_cmpuint(got->len, ==, 1);
    g_assert_true(g_str_has_prefix(g_ptr_array_index(got, 0), "V:[1, 1"));
    g_ptr_array_unref(got);
    g_string_free(in, true);
}

static void test_reset(void)
{
    Events ev = { g_ptr_array_new_with_free_func(g_free) };
    JsonStreamer *s = json_streamer_new(record_cb, &ev);

    json_streamer_feed(s, "{\"a\": [1, \"unterminated", 23);
    json_streamer_reset(s);
    json_streamer_feed(s, "{\"b\": 1}", 8);
    json_streamer_free(s);
    assert_lines(ev.lines, (const char *const[]){ "V:{\"b\": 1}", NULL });
}

static void test_flush(void)
{
    Events ev = { g_ptr_array_new_with_free_func(g_free) };
    JsonStreamer *s = json_streamer_new(record_cb, &ev);

    json_streamer_feed(s, "42", 2);
    json_streamer_flush(s);
    json_streamer_feed(s, "[1, 2", 5);
    json_streamer_flush(s);
    json_streamer_feed(s, "\"abc", 4);
    json_streamer_flush(s);
    json_streamer_feed(s, "true", 4);
    json_streamer_flush(s);
    json_streamer_free(s);
    assert_lines(ev.lines, (const char *const[]){
        "V:42", "E:JSON parse error, premature EOI",
        "E:JSON parse error, stray '\"abc'", "V:true", NULL });
}

static void test_big_integers(void)
{
    ASSERT_RUN("[9223372036854775807, -9223372036854775808, "
               "18446744073709551615, -9223372036854775809]",
               "V:[9223372036854775807, -9223372036854775808, "
               "1.8446744073709552e+19, -9.223372036854776e+18]");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/json-streamer/values", test_values);
    g_test_add_func("/json-streamer/incomplete-waits", test_incomplete_waits);
    g_test_add_func("/json-streamer/single-quotes", test_single_quotes);
    g_test_add_func("/json-streamer/unicode", test_unicode);
    g_test_add_func("/json-streamer/parse-errors", test_parse_errors);
    g_test_add_func("/json-streamer/lexical-errors-resync",
                    test_lexical_errors);
    g_test_add_func("/json-streamer/chunking-invariant", test_chunking);
    g_test_add_func("/json-streamer/limit/nesting", test_nesting_limit);
    g_test_add_func("/json-streamer/limit/token-size", test_token_size_limit);
    g_test_add_func("/json-streamer/limit/token-size-lowered",
                    test_token_size_lowered);
    g_test_add_func("/json-streamer/limit/token-count",
                    test_token_count_limit);
    g_test_add_func("/json-streamer/reset", test_reset);
    g_test_add_func("/json-streamer/flush", test_flush);
    g_test_add_func("/json-streamer/big-integers", test_big_integers);
    return g_test_run();
}
