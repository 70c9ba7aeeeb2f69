/*
 * Unit tests of the QAPI generator and its runtime.
 *
 * tests/unit/qapi-schema-test.json is generated with --prefix test- into
 * this directory; the tests drive the generated visitors (JSON and
 * keyval input, output), free functions, marshallers, the command table,
 * event emitters and the introspection data, and check every error text
 * against QEMU 7.2's wording. Run under ASan, the round trips also prove
 * that deep structures are freed completely.
 */
#include "qemu/osdep.h"
#include "qapi/qmp-event.h"
#include "test-qapi-commands.h"
#include "test-qapi-events.h"
#include "test-qapi-introspect.h"
#include "test-qapi-visit.h"

/* Parse JSON text; aborts on syntax errors (test input is fixed). */
static JsonNode *parse(const char *text)
{
    g_autoptr(GError) gerr = NULL;
    JsonNode *node = json_from_string(text, &gerr);

    g_assert_no_error(gerr);
    return node;
}

/* Compact JSON text of node; node is consumed. */
static char *to_text(JsonNode *node)
{
    char *text = json_to_string(node, FALSE);

    json_node_unref(node);
    return text;
}

/* Assert *errp is a GenericError with message expected; free it. */
static void check_error(Error **errp, const char *expected)
{
    g_assert_nonnull(*errp);
    g_assert_cmpstr(error_get_pretty(*errp), ==, expected);
    g_assert_cmpint(error_get_class(*errp), ==, ERROR_CLASS_GENERIC_ERROR);
    error_free(*errp);
    *errp = NULL;
}

#define SCALARS_BASE "\"id\": \"x\", \"i\": 1, \"b\": true, \"s\": \"s\", " \
                     "\"color\": \"red\""

/* TestScalars from "{SCALARS_BASE, extra}": expect error text (or NULL). */
static TestScalars *scalars_with(const char *extra, const char *expected)
{
    g_autofree char *text = g_strdup_printf("{" SCALARS_BASE "%s%s}",
                                            *extra ? ", " : "", extra);
    JsonNode *node = parse(text);
    Error *err = NULL;
    TestScalars *obj = qapi_TestScalars_from_json(node, &err);

    json_node_unref(node);
    if (expected) {
        g_assert_null(obj);
        check_error(&err, expected);
    } else {
        g_assert_null(err);
        g_assert_nonnull(obj);
    }
    return obj;
}

static void test_enum_names(void)
{
    g_assert_cmpint(TEST_COLOR_RED, ==, 0);
    g_assert_cmpstr(TestColor_str(TEST_COLOR_LIGHT_BLUE), ==, "light-blue");
    g_assert_cmpint(TestColor_parse("int"), ==, TEST_COLOR_INT);
    g_assert_cmpint(TestColor_parse("green"), ==, -1);
    g_assert_cmpint(TestColor__MAX, ==, 3);
    g_assert_cmpstr(TestMode_str(TMODE_SLOW), ==, "slow");
    g_assert_null(TestMode_str(TestMode__MAX));
}

static void test_struct_round_trip(void)
{
    const char *text =
        "{\"id\":\"x\",\"i\":-5,\"i8\":-128,\"i16\":32767,\"i32\":7,"
        "\"u8\":255,\"u16\":65535,\"u32\":4294967295,\"u64\":42,"
        "\"sz\":1024,\"b\":true,\"n\":1.5,\"s\":\"str\","
        "\"color\":\"light-blue\",\"opt-int\":3,\"opt-str\":\"o\","
        "\"opt-color\":\"int\",\"opt-any\":{\"k\":[1,null]},"
        "\"default\":false}";
    JsonNode *node = parse(text);
    g_autoptr(TestScalars) obj = qapi_TestScalars_from_json(node,
                                                            &error_abort);
    g_autofree char *out = NULL;

    json_node_unref(node);
    g_assert_cmpstr(obj->id, ==, "x");
    g_assert_cmpint(obj->i, ==, -5);
    g_assert_true(obj->has_i8 && obj->i8 == -128);
    g_assert_true(obj->has_u32 && obj->u32 == UINT32_MAX);
    g_assert_true(obj->has_n && obj->n == 1.5);
    g_assert_cmpint(obj->color, ==, TEST_COLOR_LIGHT_BLUE);
    g_assert_true(obj->has_opt_color && obj->opt_color == TEST_COLOR_INT);
    g_assert_true(obj->has_q_default && !obj->q_default);
    g_assert_nonnull(obj->opt_any);
    out = to_text(qapi_TestScalars_to_json(obj));
    g_assert_cmpstr(out, ==, text);
}

static void test_struct_absent_optionals(void)
{
    g_autoptr(TestScalars) obj = scalars_with("", NULL);
    g_autofree char *out = to_text(qapi_TestScalars_to_json(obj));

    g_assert_false(obj->has_i8);
    g_assert_null(obj->opt_str);
    g_assert_cmpstr(out, ==, "{\"id\":\"x\",\"i\":1,\"b\":true,\"s\":\"s\","
                    "\"color\":\"red\"}");
}

static void test_errors_members(void)
{
    JsonNode *node = parse("{\"i\": 1}");
    Error *err = NULL;

    g_assert_null(qapi_TestScalars_from_json(node, &err));
    check_error(&err, "Parameter 'id' is missing");
    json_node_unref(node);
    scalars_with("\"bogus\": 1", "Parameter 'bogus' is unexpected");
    node = parse("[1]");
    g_assert_null(qapi_TestScalars_from_json(node, &err));
    check_error(&err, "Invalid parameter type for 'null', expected: object");
    json_node_unref(node);
}

static void test_errors_types(void)
{
    g_autoptr(TestScalars) neg = NULL;

    scalars_with("\"i8\": \"x\"", "Invalid parameter type for 'i8', "
                 "expected: integer");
    scalars_with("\"sz\": 1.5", "Invalid parameter type for 'sz', "
                 "expected: integer");
    scalars_with("\"opt-str\": 1", "Invalid parameter type for 'opt-str', "
                 "expected: string");
    scalars_with("\"default\": 1", "Invalid parameter type for 'default', "
                 "expected: boolean");
    scalars_with("\"n\": \"1\"", "Invalid parameter type for 'n', "
                 "expected: number");
    scalars_with("\"opt-color\": \"green\"",
                 "Parameter 'opt-color' does not accept value 'green'");
    /* QEMU accepts negative values for uint64 (they wrap) */
    neg = scalars_with("\"u64\": -1", NULL);
    g_assert_true(neg->u64 == UINT64_MAX);
}

static void test_errors_ranges(void)
{
    scalars_with("\"i8\": 128", "Parameter 'i8' expects int8_t");
    scalars_with("\"i8\": -129", "Parameter 'i8' expects int8_t");
    scalars_with("\"i16\": 40000", "Parameter 'i16' expects int16_t");
    scalars_with("\"i32\": 2147483648", "Parameter 'i32' expects int32_t");
    scalars_with("\"u8\": 256", "Parameter 'u8' expects uint8_t");
    scalars_with("\"u16\": -1", "Parameter 'u16' expects uint16_t");
    scalars_with("\"u32\": 4294967296", "Parameter 'u32' expects uint32_t");
}

/* TestNested from text: expect error text (or success when NULL). */
static void nested_expect(const char *text, const char *expected)
{
    JsonNode *node = parse(text);
    Error *err = NULL;
    g_autoptr(TestNested) obj = qapi_TestNested_from_json(node, &err);

    json_node_unref(node);
    if (expected) {
        g_assert_null(obj);
        check_error(&err, expected);
    } else {
        g_assert_nonnull(obj);
    }
}

static void test_nested_paths(void)
{
    nested_expect("{\"inner\": 1}", "Invalid parameter type for 'inner', "
                  "expected: object");
    nested_expect("{\"inner\": {}}", "Parameter 'inner.id' is missing");
    nested_expect("{\"inner\": {\"id\": \"a\", \"x\": 1}}",
                  "Parameter 'inner.x' is unexpected");
    nested_expect("{\"inner\": {\"id\": \"a\"}, \"names\": \"x\"}",
                  "Invalid parameter type for 'names', expected: array");
    nested_expect("{\"inner\": {\"id\": \"a\"}, \"names\": [\"x\", 2]}",
                  "Invalid parameter type for 'names[1]', expected: string");
    nested_expect("{\"inner\": {\"id\": \"a\"}, \"items\": [{\"id\": \"a\","
                  "\"i\": 1, \"b\": 1, \"s\": \"\", \"color\": \"red\"}]}",
                  "Invalid parameter type for 'items[0].b', "
                  "expected: boolean");
    nested_expect("{\"inner\": {\"id\": \"a\"}, \"colors\": [\"red\", \"x\"]}",
                  "Parameter 'null' does not accept value 'x'");
    nested_expect("{\"inner\": {\"id\": \"a\"}, \"nums\": [1, 2.5]}",
                  "Invalid parameter type for 'nums[1]', expected: integer");
}

static void test_nested_round_trip(void)
{
    const char *text =
        "{\"inner\":{\"id\":\"a\"},\"items\":[{\"id\":\"b\",\"i\":1,"
        "\"b\":false,\"s\":\"\",\"color\":\"red\"},{\"id\":\"c\",\"i\":2,"
        "\"b\":true,\"s\":\"t\",\"color\":\"int\",\"opt-any\":null}],"
        "\"names\":[\"x\",\"y\"],\"colors\":[\"int\",\"red\"],"
        "\"nums\":[1,-2]}";
    JsonNode *node = parse(text);
    g_autoptr(TestNested) obj = qapi_TestNested_from_json(node, &error_abort);
    g_autofree char *out = NULL;

    json_node_unref(node);
    g_assert_cmpstr(obj->items->next->value->id, ==, "c");
    g_assert_cmpstr(obj->names->next->value, ==, "y");
    g_assert_cmpint(obj->colors->value, ==, TEST_COLOR_INT);
    g_assert_cmpint(obj->nums->next->value, ==, -2);
    g_assert_null(obj->nums->next->next);
    out = to_text(qapi_TestNested_to_json(obj));
    g_assert_cmpstr(out, ==, text);
}

/* TestHolder from text: expect error text, or NULL for success. */
static TestHolder *holder_expect(const char *text, const char *expected)
{
    JsonNode *node = parse(text);
    Error *err = NULL;
    TestHolder *obj = qapi_TestHolder_from_json(node, &err);

    json_node_unref(node);
    if (expected) {
        g_assert_null(obj);
        check_error(&err, expected);
        return NULL;
    }
    g_assert_null(err);
    return obj;
}

static void test_union(void)
{
    g_autoptr(TestHolder) h = holder_expect(
        "{\"alt\": 1, \"u\": {\"type\": \"socket\", \"host\": \"h\", "
        "\"port\": 10809, \"node-name\": \"n\"}}", NULL);
    g_autofree char *out = to_text(qapi_TestHolder_to_json(h));

    g_assert_cmpint(h->u->type, ==, TEST_KIND_SOCKET);
    g_assert_cmpstr(h->u->u.socket.host, ==, "h");
    g_assert_cmpint(h->u->u.socket.port, ==, 10809);
    g_assert_cmpstr(out, ==, "{\"alt\":1,\"u\":{\"type\":\"socket\","
                    "\"node-name\":\"n\",\"host\":\"h\",\"port\":10809}}");
    holder_expect("{\"alt\": 1, \"u\": {\"path\": \"p\"}}",
                  "Parameter 'u.type' is missing");
    holder_expect("{\"alt\": 1, \"u\": {\"type\": \"pipe\"}}",
                  "Parameter 'type' does not accept value 'pipe'");
    holder_expect("{\"alt\": 1, \"u\": {\"type\": \"file\"}}",
                  "Parameter 'u.path' is missing");
    holder_expect("{\"alt\": 1, \"u\": {\"type\": \"file\", \"path\": \"p\","
                  " \"port\": 1}}", "Parameter 'u.port' is unexpected");
    holder_expect("{\"alt\": 1, \"u\": {\"type\": \"none\", \"path\": \"p\"}}",
                  "Parameter 'u.path' is unexpected");
    holder_expect("{\"alt\": 1, \"us\": [{\"type\": \"none\"}, "
                  "{\"type\": \"socket\", \"host\": \"h\"}]}",
                  "Parameter 'us[1].port' is missing");
    holder_expect("{\"alt\": 1, \"us\": [{\"type\": \"socket\", \"host\": "
                  "\"h\", \"port\": 65536}]}",
                  "Parameter 'port' expects uint16_t");
}

static void test_alternate(void)
{
    static const struct {
        const char *alt;
        QType type;
    } cases[] = {
        { "7", QTYPE_QNUM }, { "\"slow\"", QTYPE_QSTRING },
        { "true", QTYPE_QBOOL }, { "null", QTYPE_QNULL },
        { "{\"type\": \"file\", \"path\": \"p\"}", QTYPE_QDICT },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *text = g_strdup_printf("{\"alt\": %s}",
                                                cases[i].alt);
        g_autoptr(TestHolder) h = holder_expect(text, NULL);
        g_autofree char *out = to_text(qapi_TestHolder_to_json(h));
        g_autoptr(JsonNode) want = parse(text);
        g_autofree char *want_text = json_to_string(want, FALSE);

        g_assert_cmpint(h->alt->type, ==, cases[i].type);
        g_assert_cmpstr(out, ==, want_text);
    }
    holder_expect("{\"alt\": [1]}",
                  "Invalid parameter type for 'alt', expected: TestAlt");
    holder_expect("{\"alt\": 1.5}",
                  "Invalid parameter type for 'alt', expected: integer");
    holder_expect("{\"alt\": {\"type\": \"x\"}}",
                  "Parameter 'type' does not accept value 'x'");
    holder_expect("{\"alt\": 1, \"alt2\": true}",
                  "Invalid parameter type for 'alt2', expected: TestAltEnum");
    holder_expect("{\"alt\": 1, \"alt2\": \"green\"}",
                  "Parameter 'alt2' does not accept value 'green'");
}

static void test_alternate_enum_number(void)
{
    g_autoptr(TestHolder) a = holder_expect("{\"alt\": 1, \"alt2\": \"int\"}",
                                            NULL);
    g_autoptr(TestHolder) b = holder_expect("{\"alt\": 1, \"alt2\": 3}",
                                            NULL);

    g_assert_cmpint(a->alt2->type, ==, QTYPE_QSTRING);
    g_assert_cmpint(a->alt2->u.c, ==, TEST_COLOR_INT);
    g_assert_cmpint(b->alt2->type, ==, QTYPE_QNUM);
    g_assert_true(b->alt2->u.n == 3.0);
}

/* A QDict from "k=v" pairs (NULL-terminated). */
static QDict *kv(const char *first, ...)
{
    QDict *d = qdict_new();
    va_list ap;

    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        g_auto(GStrv) kvp = g_strsplit(s, "=", 2);

        qdict_put_str(d, kvp[0], kvp[1]);
    }
    va_end(ap);
    return d;
}

/* TestScalars from keyval with the mandatory members plus extra. */
static TestScalars *scalars_kv(const char *extra, const char *expected)
{
    g_autoptr(QDict) d = kv("id=x", "i=0x10", "b=on", "s=str", "color=red",
                            extra, NULL);
    Error *err = NULL;
    TestScalars *obj = qapi_TestScalars_from_keyval(d, &err);

    if (expected) {
        g_assert_null(obj);
        check_error(&err, expected);
    } else {
        g_assert_null(err);
    }
    return obj;
}

static void test_keyval_scalars(void)
{
    g_autoptr(TestScalars) a = scalars_kv("sz=1M", NULL);
    g_autoptr(TestScalars) b = scalars_kv("n=2.5", NULL);
    g_autoptr(TestScalars) c = scalars_kv("default=off", NULL);
    g_autoptr(TestScalars) d = scalars_kv("opt-any=text", NULL);

    g_assert_cmpint(a->i, ==, 16);
    g_assert_true(a->b);
    g_assert_true(a->has_sz && a->sz == 1024 * 1024);
    g_assert_true(b->has_n && b->n == 2.5);
    g_assert_true(c->has_q_default && !c->q_default);
    g_assert_cmpstr(json_node_get_string(d->opt_any), ==, "text");
    scalars_kv("i8=abc", "Parameter 'i8' expects integer");
    scalars_kv("i8=300", "Parameter 'i8' expects int8_t");
    scalars_kv("default=maybe", "Parameter 'default' expects 'on' or 'off'");
    scalars_kv("sz=1Q", "Parameter 'sz' expects size");
    scalars_kv("n=x", "Parameter 'n' expects number");
    scalars_kv("opt-color=green",
               "Parameter 'opt-color' does not accept value 'green'");
    scalars_kv("bogus=1", "Parameter 'bogus' is unexpected");
}

static void test_keyval_nested(void)
{
    g_autoptr(QDict) d = kv("inner.id=a", "names.0=x", "names.1=y",
                            "items.0.id=i", "items.0.i=1", "items.0.b=yes",
                            "items.0.s=s", "items.0.color=int", NULL);
    g_autoptr(QDict) u = kv("alt=5", "u.type=socket", "u.host=h",
                            "u.port=10809", "alt2=2", NULL);
    g_autoptr(QDict) bad = kv("inner.id=a", "inner.x=1", NULL);
    g_autoptr(TestNested) n = qapi_TestNested_from_keyval(d, &error_abort);
    g_autoptr(TestHolder) h = qapi_TestHolder_from_keyval(u, &error_abort);
    Error *err = NULL;

    g_assert_cmpstr(n->inner->id, ==, "a");
    g_assert_cmpstr(n->names->next->value, ==, "y");
    g_assert_cmpint(n->items->value->color, ==, TEST_COLOR_INT);
    g_assert_true(n->items->value->b);
    /* a keyval string that is no enum value reads as a number */
    g_assert_cmpint(h->alt->type, ==, QTYPE_QNUM);
    g_assert_cmpint(h->alt->u.i, ==, 5);
    g_assert_cmpint(h->alt2->type, ==, QTYPE_QNUM);
    g_assert_cmpint(h->u->u.socket.port, ==, 10809);
    g_assert_null(qapi_TestNested_from_keyval(bad, &err));
    check_error(&err, "Parameter 'inner.x' is unexpected");
}

/* ---- commands ----------------------------------------------------- */

static int handler_calls;

TestScalars *qmp_test_echo(const char *id, int64_t count, const char *name,
                           bool has_limit, uint32_t limit, bool has_color,
                           TestColor color, strList *tags, Error **errp)
{
    TestScalars *ret;

    handler_calls++;
    if (count < 0) {
        error_setg(errp, "count must not be negative");
        return NULL;
    }
    ret = g_new0(TestScalars, 1);
    ret->id = g_strdup(id);
    ret->i = count;
    ret->s = g_strdup("");
    ret->opt_str = g_strdup(name);
    ret->has_u32 = has_limit;
    ret->u32 = limit;
    ret->color = has_color ? color : TEST_COLOR_RED;
    if (tags) {
        ret->has_i8 = true;
        for (strList *l = tags; l; l = l->next) {
            ret->i8++;
        }
    }
    return ret;
}

JsonNode *qmp_test_boxed(TestUnion *arg, Error **errp)
{
    handler_calls++;
    if (arg->type == TEST_KIND_NONE) {
        error_set(errp, ERROR_CLASS_DEVICE_NOT_FOUND, "Device 'x' not found");
        return NULL;
    }
    return qapi_TestUnion_to_json(arg);
}

void qmp_test_noargs(Error **errp)
{
    handler_calls++;
}

strList *qmp_test_list(int8_t n, Error **errp)
{
    strList *head = NULL;

    for (int i = n - 1; i >= 0; i--) {
        strList *l = g_new0(strList, 1);

        l->value = g_strdup_printf("%d", i);
        l->next = head;
        head = l;
    }
    return head;
}

char *qmp_test_str(Error **errp)
{
    return g_strdup("hello");
}

void qmp_marshal_test_handwritten(JsonObject *args, JsonNode **ret,
                                  Error **errp)
{
    *ret = json_node_init_int(json_node_alloc(), 42);
}

/* The table row of the test schema's command name, or NULL. */
static const QmpCommand *find_test_command(const char *name)
{
    for (size_t i = 0; i < test_qmp_command_count; i++) {
        if (!strcmp(test_qmp_command_table[i].name, name)) {
            return &test_qmp_command_table[i];
        }
    }
    return NULL;
}

/*
 * Run command name with args (JSON text or NULL). Returns the reply as
 * text, or NULL with *err set.
 */
static char *run(const char *name, const char *args, Error **err)
{
    const QmpCommand *cmd = find_test_command(name);
    g_autoptr(JsonNode) node = args ? parse(args) : NULL;
    JsonNode *ret = NULL;

    g_assert_nonnull(cmd);
    cmd->fn(node ? json_node_get_object(node) : NULL, &ret, err);
    if (*err) {
        g_assert_null(ret);
        return NULL;
    }
    return to_text(ret);
}

/* Run and expect a GenericError with text expected, and no handler call. */
static void run_fails(const char *name, const char *args, const char *expected)
{
    Error *err = NULL;
    int calls = handler_calls;

    g_assert_null(run(name, args, &err));
    check_error(&err, expected);
    g_assert_cmpint(handler_calls, ==, calls);
}

static void test_command_table(void)
{
    g_assert_cmpint(test_qmp_command_count, ==, 6);
    for (size_t i = 1; i < test_qmp_command_count; i++) {
        g_assert_cmpint(strcmp(test_qmp_command_table[i - 1].name,
                               test_qmp_command_table[i].name), <, 0);
    }
    g_assert_null(test_qmp_command_table[test_qmp_command_count].name);
    g_assert_true(find_test_command("test-noargs")->options & QCO_ALLOW_OOB);
    g_assert_false(find_test_command("test-echo")->options & QCO_ALLOW_OOB);
    g_assert_true(find_test_command("test-handwritten")->fn ==
                  qmp_marshal_test_handwritten);
}

static void test_command_marshal(void)
{
    Error *err = NULL;
    g_autofree char *echo = run("test-echo", "{\"id\": \"a\", \"count\": 3, "
                                "\"limit\": 9, \"tags\": [\"p\", \"q\"]}",
                                &err);
    g_autofree char *noargs = run("test-noargs", NULL, &err);
    g_autofree char *list = run("test-list", "{\"n\": 2}", &err);
    g_autofree char *str = run("test-str", "{}", &err);
    g_autofree char *boxed = run("test-boxed", "{\"type\": \"file\", "
                                 "\"path\": \"/p\"}", &err);
    g_autofree char *hand = run("test-handwritten", NULL, &err);

    g_assert_cmpstr(echo, ==, "{\"id\":\"a\",\"i\":3,\"i8\":2,"
                    "\"u32\":9,\"b\":false,\"s\":\"\",\"color\":\"red\"}");
    g_assert_cmpstr(noargs, ==, "{}");
    g_assert_cmpstr(list, ==, "[\"0\",\"1\"]");
    g_assert_cmpstr(str, ==, "\"hello\"");
    g_assert_cmpstr(boxed, ==, "{\"type\":\"file\",\"path\":\"/p\"}");
    g_assert_cmpstr(hand, ==, "42");
}

static void test_command_errors(void)
{
    Error *err = NULL;
    int calls = handler_calls;

    run_fails("test-echo", "{\"count\": 1}", "Parameter 'id' is missing");
    run_fails("test-echo", NULL, "Parameter 'id' is missing");
    run_fails("test-echo", "{\"id\": \"a\", \"count\": 1, \"x\": 1}",
              "Parameter 'x' is unexpected");
    run_fails("test-echo", "{\"id\": \"a\", \"count\": \"1\"}",
              "Invalid parameter type for 'count', expected: integer");
    run_fails("test-echo", "{\"id\": \"a\", \"count\": 1, \"limit\": -1}",
              "Parameter 'limit' expects uint32_t");
    run_fails("test-echo", "{\"id\": \"a\", \"count\": 1, \"tags\": [1]}",
              "Invalid parameter type for 'tags[0]', expected: string");
    run_fails("test-noargs", "{\"x\": null}", "Parameter 'x' is unexpected");
    run_fails("test-boxed", "{\"type\": \"file\"}",
              "Parameter 'path' is missing");
    run_fails("test-list", "{\"n\": 1000}", "Parameter 'n' expects int8_t");
    /* handler errors pass through with their class */
    g_assert_null(run("test-echo", "{\"id\": \"a\", \"count\": -1}", &err));
    check_error(&err, "count must not be negative");
    g_assert_null(run("test-boxed", "{\"type\": \"none\"}", &err));
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_DEVICE_NOT_FOUND);
    error_free(err);
    err = NULL;
    g_assert_cmpint(handler_calls, ==, calls + 2);
}

/* ---- events ------------------------------------------------------- */

static GPtrArray *events;

/* Test emitter: records "NAME DATA-JSON" (or just "NAME"). */
static void record_event(const char *name, JsonObject *data)
{
    g_autofree char *text = NULL;

    if (data) {
        JsonNode *node = json_node_init_object(json_node_alloc(), data);

        text = to_text(node);
    }
    g_ptr_array_add(events, text ? g_strdup_printf("%s %s", name, text)
                                 : g_strdup(name));
}

static void test_events(void)
{
    TestUnion u = { .type = TEST_KIND_FILE };

    u.u.file.path = (char *)"p";
    events = g_ptr_array_new_with_free_func(g_free);
    qapi_event_send_test_event("a", false, 0, NULL);
    qapi_event_set_emitter(record_event);
    qapi_event_send_test_event("b", true, 5, &u);
    qapi_event_send_test_empty_event();
    qapi_event_set_emitter(NULL);
    g_assert_cmpint(events->len, ==, 2);
    g_assert_cmpstr(events->pdata[0], ==, "TEST_EVENT {\"id\":\"b\","
                    "\"count\":5,\"u\":{\"type\":\"file\",\"path\":\"p\"}}");
    g_assert_cmpstr(events->pdata[1], ==, "TEST_EMPTY_EVENT");
    g_ptr_array_unref(events);
}

/* ---- introspection ------------------------------------------------ */

/* The SchemaInfo object called name in the array, or NULL. */
static JsonObject *schema_find(JsonArray *arr, const char *name)
{
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        JsonObject *o = json_array_get_object_element(arr, i);

        if (!strcmp(json_object_get_string_member(o, "name"), name)) {
            return o;
        }
    }
    return NULL;
}

static void test_introspection(void)
{
    g_autoptr(JsonNode) root = parse(test_qmp_schema_json);
    JsonArray *arr = json_node_get_array(root);
    JsonObject *echo = schema_find(arr, "test-echo");
    JsonObject *noargs = schema_find(arr, "test-noargs");
    JsonObject *args, *empty, *member;
    JsonArray *members;

    g_assert_nonnull(echo);
    g_assert_cmpstr(json_object_get_string_member(echo, "meta-type"), ==,
                    "command");
    g_assert_true(json_object_get_boolean_member(noargs, "allow-oob"));
    g_assert_false(json_object_has_member(echo, "allow-oob"));
    g_assert_cmpstr(json_object_get_string_member(noargs, "arg-type"), ==,
                    "0");
    empty = schema_find(arr, "0");
    g_assert_cmpint(json_array_get_length(
                        json_object_get_array_member(empty, "members")), ==, 0);
    args = schema_find(arr, json_object_get_string_member(echo, "arg-type"));
    members = json_object_get_array_member(args, "members");
    g_assert_cmpint(json_array_get_length(members), ==, 6);
    member = json_array_get_object_element(members, 2);
    g_assert_cmpstr(json_object_get_string_member(member, "name"), ==,
                    "name");
    g_assert_true(json_object_has_member(member, "default"));
    member = json_array_get_object_element(members, 3);
    g_assert_cmpstr(json_object_get_string_member(member, "type"), ==, "int");
    member = json_array_get_object_element(members, 5);
    g_assert_cmpstr(json_object_get_string_member(member, "type"), ==,
                    "[str]");
    g_assert_nonnull(schema_find(arr, "TEST_EMPTY_EVENT"));
    g_assert_null(schema_find(arr, "TestScalars"));
    g_assert_null(schema_find(arr, "int8"));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qapi/enum/names", test_enum_names);
    g_test_add_func("/qapi/struct/round-trip", test_struct_round_trip);
    g_test_add_func("/qapi/struct/absent-optionals-omitted",
                    test_struct_absent_optionals);
    g_test_add_func("/qapi/errors/missing-unexpected", test_errors_members);
    g_test_add_func("/qapi/errors/types", test_errors_types);
    g_test_add_func("/qapi/errors/int-ranges", test_errors_ranges);
    g_test_add_func("/qapi/nested/error-paths", test_nested_paths);
    g_test_add_func("/qapi/nested/round-trip", test_nested_round_trip);
    g_test_add_func("/qapi/union/branches-and-errors", test_union);
    g_test_add_func("/qapi/alternate/by-json-type", test_alternate);
    g_test_add_func("/qapi/alternate/enum-or-number",
                    test_alternate_enum_number);
    g_test_add_func("/qapi/keyval/scalars", test_keyval_scalars);
    g_test_add_func("/qapi/keyval/nested-lists-unions", test_keyval_nested);
    g_test_add_func("/qapi/commands/table-sorted", test_command_table);
    g_test_add_func("/qapi/commands/marshal-replies", test_command_marshal);
    g_test_add_func("/qapi/commands/errors-before-handler",
                    test_command_errors);
    g_test_add_func("/qapi/events/emit", test_events);
    g_test_add_func("/qapi/introspection/schema-info", test_introspection);
    return g_test_run();
}
