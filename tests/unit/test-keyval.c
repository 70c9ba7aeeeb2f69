/*
 * Unit tests for the option parsers (util/keyval.c) and flat dicts
 * (util/qdict.c): keyval syntax and its errors, JSON flattening, size
 * parsing, and the typed getters' QEMU-worded errors.
 *
 * Expected error texts are the ones QEMU 7.2 prints for the same input.
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"
#include "qemu/qdict.h"

/* Assert that d maps key to value. */
static void assert_entry(QDict *d, const char *key, const char *value)
{
    g_assert_cmpstr(qdict_get_try_str(d, key), ==, value);
}

/* Parse params expecting failure with exactly the message msg. */
static void assert_keyval_error(const char *params, const char *implied,
                                const char *msg)
{
    Error *err = NULL;
    QDict *d = keyval_parse(params, implied, &err);

    g_assert_null(d);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

/* ---- keyval */

static void test_keyval_simple(void)
{
    g_autoptr(QDict) d = keyval_parse("driver=qcow2,size=1M,", NULL,
                                      &error_abort);

    g_assert_cmpuint(qdict_size(d), ==, 2);
    assert_entry(d, "driver", "qcow2");
    assert_entry(d, "size", "1M");

    /* Empty input is an empty dict; empty values are allowed. */
    g_autoptr(QDict) e = keyval_parse("", NULL, &error_abort);
    g_assert_cmpuint(qdict_size(e), ==, 0);
    g_autoptr(QDict) f = keyval_parse("a=,b=x=y", NULL, &error_abort);
    assert_entry(f, "a", "");
    assert_entry(f, "b", "x=y");

    /* The last assignment to a key wins. */
    g_autoptr(QDict) g = keyval_parse("a=1,a=2", NULL, &error_abort);
    assert_entry(g, "a", "2");
}

static void test_keyval_escaped_comma(void)
{
    g_autoptr(QDict) d = keyval_parse("filename=a,,b,,,c=1,,", NULL,
                                      &error_abort);

    assert_entry(d, "filename", "a,b,");
    assert_entry(d, "c", "1,");
    g_assert_cmpuint(qdict_size(d), ==, 2);
}

static void test_keyval_implied_key(void)
{
    g_autoptr(QDict) d = keyval_parse("qcow2,file.filename=x", "driver",
                                      &error_abort);

    assert_entry(d, "driver", "qcow2");
    assert_entry(d, "file.filename", "x");

    /* An explicit first key is not replaced by the implied one. */
    g_autoptr(QDict) e = keyval_parse("driver=raw", "driver", &error_abort);
    assert_entry(e, "driver", "raw");

    /* Only the first element may omit its key. */
    assert_keyval_error("qcow2,raw", "driver",
                        "Expected '=' after parameter 'raw'");
}

static void test_keyval_dotted_keys(void)
{
    g_autoptr(QDict) d = keyval_parse(
        "driver=qcow2,file.driver=file,file.filename=a.qcow2,"
        "backing.file.aio=io_uring,list.1=b,list.0=a,cache.no-flush=on",
        NULL, &error_abort);

    assert_entry(d, "file.driver", "file");
    assert_entry(d, "file.filename", "a.qcow2");
    assert_entry(d, "backing.file.aio", "io_uring");
    assert_entry(d, "list.0", "a");
    assert_entry(d, "list.1", "b");
    assert_entry(d, "cache.no-flush", "on");

    /* keyval_parse_into merges, later keys winning. */
    g_autoptr(QDict) m = qdict_new();
    qdict_put_str(m, "driver", "raw");
    qdict_put_str(m, "keep", "1");
    g_assert_true(keyval_parse_into(m, "driver=qcow2", NULL, &error_abort));
    assert_entry(m, "driver", "qcow2");
    assert_entry(m, "keep", "1");
}

static void test_keyval_errors(void)
{
    g_autofree char *longkey = g_strnfill(128, 'k');
    g_autofree char *longparam = g_strdup_printf("%s=1", longkey);
    g_autofree char *longfrag = g_strdup_printf("a.%s=1", longkey);
    g_autoptr(QDict) m = qdict_new();
    Error *err = NULL;

    assert_keyval_error("x.=1", NULL, "Invalid parameter 'x.'");
    assert_keyval_error("x.", NULL, "Invalid parameter 'x.'");
    assert_keyval_error(",a=1", NULL, "Invalid parameter ''");
    assert_keyval_error("1a=1", NULL, "Invalid parameter '1a'");
    assert_keyval_error("a.b c=1", NULL, "Invalid parameter 'a.b c'");
    assert_keyval_error("0=1", NULL, "Invalid parameter '0'");
    assert_keyval_error("foo", NULL, "Expected '=' after parameter 'foo'");
    assert_keyval_error("a=1,foo", NULL,
                        "Expected '=' after parameter 'foo'");
    assert_keyval_error("a=1,a.b=2", NULL,
                        "Parameters 'a.*' used inconsistently");
    assert_keyval_error("a.b=2,a=1", NULL,
                        "Parameters 'a.*' used inconsistently");
    assert_keyval_error("a.0=x,a.b=y", NULL,
                        "Parameters 'a.*' used inconsistently");
    assert_keyval_error("a.1=x", NULL, "Parameter 'a.0' missing");
    assert_keyval_error("a.b.0=x,a.b.2=y", NULL, "Parameter 'a.b.1' missing");
    assert_keyval_error(longparam, NULL, "Parameter '" "kkkkkkkkkkkkkkkk"
                        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                        "kkkkkkkk' is too long");
    assert_keyval_error(longfrag, NULL, "Parameter fragment '"
                        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
                        "kkkkkkkkkkkkkkkkkkkkkkkk' is too long");

    /* A failed merge leaves the target untouched. */
    qdict_put_str(m, "a", "1");
    g_assert_false(keyval_parse_into(m, "b=2,a.c=3", NULL, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Parameters 'a.*' used inconsistently");
    error_free(err);
    g_assert_cmpuint(qdict_size(m), ==, 1);
}

/* ---- JSON */

static void test_json_nested_flatten(void)
{
    g_autoptr(QDict) d = qdict_from_json(
        "{\"driver\": \"qcow2\", \"file\": {\"driver\": \"file\", "
        "\"filename\": \"a.qcow2\", \"x\": {\"y\": 1}}, "
        "\"lazy-refcounts\": true, \"discard\": false, \"n\": -5, "
        "\"f\": 1.5, \"nul\": null, \"arr\": [\"a\", {\"b\": 2}]}",
        &error_abort);

    assert_entry(d, "driver", "qcow2");
    assert_entry(d, "file.driver", "file");
    assert_entry(d, "file.filename", "a.qcow2");
    assert_entry(d, "file.x.y", "1");
    assert_entry(d, "lazy-refcounts", "on");
    assert_entry(d, "discard", "off");
    assert_entry(d, "n", "-5");
    assert_entry(d, "f", "1.5");
    assert_entry(d, "nul", "");
    assert_entry(d, "arr.0", "a");
    assert_entry(d, "arr.1.b", "2");
    g_assert_cmpuint(qdict_size(d), ==, 11);
}

static void test_json_not_object(void)
{
    static const char *const inputs[] = { "[1]", "\"x\"", "42", "null" };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(inputs); i++) {
        Error *err = NULL;

        g_assert_null(qdict_from_json(inputs[i], &err));
        g_assert_cmpstr(error_get_pretty(err), ==,
                        "Invalid JSON object given");
        error_free(err);
    }
}

static void test_json_malformed(void)
{
    static const char *const inputs[] = {
        "{\"driver\": \"qcow2\"", "", "{driver: 1}", "{\"a\": }",
    };
    size_t i;

    for (i = 0; i < ARRAY_SIZE(inputs); i++) {
        Error *err = NULL;

        g_assert_null(qdict_from_json(inputs[i], &err));
        g_assert_nonnull(err);
        g_assert_true(g_str_has_prefix(error_get_pretty(err),
                                       "Could not parse the JSON options: "));
        error_free(err);
    }
}

/* ---- Sizes */

/* Assert that str parses to want. */
static void assert_size(const char *str, uint64_t want)
{
    uint64_t v = 0;

    g_assert_cmpint(parse_size(str, &v), ==, 0);
    g_assert_cmpuint(v, ==, want);
}

/* Assert that str fails with -err. */
static void assert_size_error(const char *str, int err)
{
    uint64_t v = 12345;

    g_assert_cmpint(parse_size(str, &v), ==, -err);
    g_assert_cmpuint(v, ==, 12345);
}

static void test_size_suffixes(void)
{
    const char *end;
    uint64_t v;

    /* Values checked against qemu-img create / qemu-io 7.2. */
    assert_size("0", 0);
    assert_size("1", 1);
    assert_size("00012", 12);
    assert_size("10b", 10);
    assert_size("1B", 1);
    assert_size("1k", 1024);
    assert_size("1K", 1024);
    assert_size(" 1k", 1024);
    assert_size("+1k", 1024);
    assert_size("2m", 2 * MiB);
    assert_size("1.5G", 3 * GiB / 2);
    assert_size("1t", TiB);
    assert_size("1P", 1ULL << 50);
    assert_size("1e", 1ULL << 60);
    assert_size("1.3k", 1331);
    assert_size("1.7k", 1741);
    assert_size("0.999k", 1023);
    assert_size("5.", 5);
    assert_size("1.0", 1);
    assert_size("5.k", 5120);
    assert_size("0x10", 16);
    assert_size("0X10k", 16384);
    assert_size("15E", 15ULL << 60);

    assert_size_error("", EINVAL);
    assert_size_error("k", EINVAL);
    assert_size_error("-1", EINVAL);
    assert_size_error("1.5", EINVAL);
    assert_size_error("1.5b", EINVAL);
    assert_size_error(".5k", EINVAL);
    assert_size_error("1 k", EINVAL);
    assert_size_error("1kB", EINVAL);
    assert_size_error("1KiB", EINVAL);
    assert_size_error("1k5", EINVAL);
    assert_size_error("1e3", EINVAL);
    assert_size_error("0x", EINVAL);
    assert_size_error("0x1.8k", EINVAL);
    assert_size_error("inf", EINVAL);
    assert_size_error("nan", EINVAL);

    /* With an end pointer, trailing text is left to the caller. */
    g_assert_cmpint(qemu_strtosz("64k,rest", &end, &v), ==, 0);
    g_assert_cmpuint(v, ==, 64 * KiB);
    g_assert_cmpstr(end, ==, ",rest");
    g_assert_cmpint(qemu_strtosz("x", &end, &v), ==, -EINVAL);
}

static void test_size_overflow(void)
{
    assert_size("18446744073709551615", UINT64_MAX);
    assert_size("0xffffffffffffffff", UINT64_MAX);
    assert_size_error("18446744073709551616", ERANGE);
    assert_size_error("0x10000000000000000", ERANGE);
    assert_size_error("16E", ERANGE);
    assert_size_error("18E", ERANGE);
    assert_size_error("17179869184G", ERANGE);
    assert_size_error("15.99999999999999999999E", ERANGE);
}

/* ---- QDict */

static void test_qdict_extract_subqdict(void)
{
    g_autoptr(QDict) d = keyval_parse(
        "driver=qcow2,file.driver=file,file.filename=a,filex=1,"
        "backing.file.filename=b", NULL, &error_abort);
    g_autoptr(QDict) file = qdict_extract_subqdict(d, "file.");
    g_autoptr(QDict) none = qdict_extract_subqdict(d, "nothing.");

    g_assert_cmpuint(qdict_size(file), ==, 2);
    assert_entry(file, "driver", "file");
    assert_entry(file, "filename", "a");
    g_assert_cmpuint(qdict_size(none), ==, 0);

    /* The extracted entries are gone from the source, others stay. */
    g_assert_cmpuint(qdict_size(d), ==, 3);
    g_assert_false(qdict_has_prefixed_entries(d, "file."));
    g_assert_true(qdict_has_prefixed_entries(d, "backing."));
    assert_entry(d, "filex", "1");
}

/* Run a getter expecting failure with message msg. */
#define ASSERT_GETTER_ERROR(call, msg) do {                     \
        Error *err_ = NULL;                                     \
        g_assert_false(call);                                   \
        g_assert_cmpstr(error_get_pretty(err_), ==, (msg));     \
        error_free(err_);                                       \
    } while (0)

static void test_qdict_typed_getters(void)
{
    g_autoptr(QDict) d = qdict_new();
    uint64_t u;
    bool b;

    qdict_put_bool(d, "t", true);
    qdict_put_str(d, "y", "yes");
    qdict_put_str(d, "f", "false");
    qdict_put_str(d, "bad", "ON");
    qdict_put_int(d, "n", 42);
    qdict_put_str(d, "hex", "0x10");
    qdict_put_str(d, "neg", "-1");
    qdict_put_str(d, "big", "99999999999999999999999");
    qdict_put_str(d, "sz", "1.5k");
    qdict_put_str(d, "sz18", "18E");
    qdict_put_str(d, "junk", "5x");

    g_assert_true(qdict_get_bool(d, "t", false, &b, &error_abort) && b);
    g_assert_true(qdict_get_bool(d, "y", false, &b, &error_abort) && b);
    g_assert_true(qdict_get_bool(d, "f", true, &b, &error_abort) && !b);
    g_assert_true(qdict_get_bool(d, "absent", true, &b, &error_abort) && b);
    ASSERT_GETTER_ERROR(qdict_get_bool(d, "bad", false, &b, &err_),
                        "Parameter 'bad' expects 'on' or 'off'");

    g_assert_true(qdict_get_uint(d, "n", 0, &u, &error_abort));
    g_assert_cmpuint(u, ==, 42);
    g_assert_true(qdict_get_uint(d, "hex", 0, &u, &error_abort));
    g_assert_cmpuint(u, ==, 16);
    g_assert_true(qdict_get_uint(d, "absent", 7, &u, &error_abort));
    g_assert_cmpuint(u, ==, 7);
    ASSERT_GETTER_ERROR(qdict_get_uint(d, "junk", 0, &u, &err_),
                        "Parameter 'junk' expects a number");
    ASSERT_GETTER_ERROR(qdict_get_uint(d, "neg", 0, &u, &err_),
                        "Parameter 'neg' expects a number");
    ASSERT_GETTER_ERROR(qdict_get_uint(d, "big", 0, &u, &err_),
                        "Value '99999999999999999999999' is too large "
                        "for parameter 'big'");

    g_assert_true(qdict_get_size(d, "sz", 0, &u, &error_abort));
    g_assert_cmpuint(u, ==, 1536);
    g_assert_true(qdict_get_size(d, "absent", 9, &u, &error_abort));
    g_assert_cmpuint(u, ==, 9);
    ASSERT_GETTER_ERROR(qdict_get_size(d, "junk", 0, &u, &err_),
                        "Parameter 'junk' expects a non-negative number "
                        "below 2^64");
    ASSERT_GETTER_ERROR(qdict_get_size(d, "sz18", 0, &u, &err_),
                        "Value '18E' is out of range for parameter 'sz18'");
}

static void test_qdict_to_json_nested(void)
{
    g_autoptr(QDict) d = keyval_parse(
        "file.filename=a.qcow2,driver=qcow2,file.driver=file", NULL,
        &error_abort);
    g_autofree char *nested = qdict_to_json_nested(d);
    g_autofree char *flat = qdict_to_json_flat(d);
    g_autoptr(QDict) e = qdict_new();
    g_autofree char *odd = NULL;
    g_autoptr(QDict) back = NULL;
    g_autofree char *empty = NULL;

    g_assert_cmpstr(nested, ==, "{\"driver\": \"qcow2\", \"file\": "
                    "{\"driver\": \"file\", \"filename\": \"a.qcow2\"}}");
    g_assert_cmpstr(flat, ==, "{\"driver\": \"qcow2\", \"file.driver\": "
                    "\"file\", \"file.filename\": \"a.qcow2\"}");

    /* Integers become numbers, everything else strings, with escaping. */
    qdict_put_int(e, "n", -7);
    qdict_put_str(e, "z", "007");
    qdict_put_bool(e, "b", true);
    qdict_put_str(e, "s", "a\"b\\c\n");
    /* A leaf and an inner node with one name: nothing may be lost. */
    qdict_put_str(e, "a", "x");
    qdict_put_str(e, "a.b", "y");
    qdict_put_str(e, "a-c.d", "1");
    odd = qdict_to_json_nested(e);
    g_assert_cmpstr(odd, ==, "{\"a\": \"x\", \"a-c\": {\"d\": 1}, "
                    "\"a.b\": \"y\", \"b\": \"on\", \"n\": -7, "
                    "\"s\": \"a\\\"b\\\\c\\n\", \"z\": \"007\"}");

    /* The nested form reads back as the same flat dict. */
    back = qdict_from_json(nested, &error_abort);
    g_assert_cmpuint(qdict_size(back), ==, 3);
    assert_entry(back, "file.filename", "a.qcow2");

    qdict_unref(back);
    back = qdict_new();
    empty = qdict_to_json_nested(back);
    g_assert_cmpstr(empty, ==, "{}");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/keyval/simple", test_keyval_simple);
    g_test_add_func("/keyval/escaped-comma", test_keyval_escaped_comma);
    g_test_add_func("/keyval/implied-key", test_keyval_implied_key);
    g_test_add_func("/keyval/dotted-keys", test_keyval_dotted_keys);
    g_test_add_func("/keyval/errors", test_keyval_errors);
    g_test_add_func("/json/nested-flatten", test_json_nested_flatten);
    g_test_add_func("/json/not-object", test_json_not_object);
    g_test_add_func("/json/malformed", test_json_malformed);
    g_test_add_func("/size/suffixes", test_size_suffixes);
    g_test_add_func("/size/overflow", test_size_overflow);
    g_test_add_func("/qdict/extract-subqdict", test_qdict_extract_subqdict);
    g_test_add_func("/qdict/typed-getters", test_qdict_typed_getters);
    g_test_add_func("/qdict/to-json-nested", test_qdict_to_json_nested);
    return g_test_run();
}
