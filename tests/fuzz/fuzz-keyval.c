/*
 * libFuzzer target: the option parsers of the command line and of json:
 * filenames, followed by the schema checks the daemon applies to them.
 * The first byte of an input picks which option it is, the rest (up to
 * the first NUL) is the option string:
 *
 *   0  --blockdev KEYVAL       keyval_parse(implied "driver") and
 *                              qapi_BlockdevOptions_from_keyval
 *   1  --blockdev '{JSON}'     qdict_from_json (what --blockdev and json:
 *                              names use) and qjson_from_string +
 *                              qapi_BlockdevOptions_from_json
 *   2  --nbd-server KEYVAL     keyval_parse + NbdServerOptions
 *   3  --export KEYVAL         keyval_parse(implied "type") +
 *                              BlockExportOptions
 *   4  -drive / --image-opts   keyval_parse(no implied key), serialised
 *   5  size suffixes           parse_size / qemu_strtosz
 *
 * Invariants checked beyond "no crash, no leak": a BlockdevOptions the
 * visitor accepted serialises to JSON that the JSON visitor accepts
 * again and that serialises to the same text; a parsed QDict serialises
 * (flat and nested) without failing. Nothing is opened: no node, socket
 * or file is created.
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"
#include "qemu/qjson.h"
#include "qapi/qapi-visit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* obj accepted once must round-trip through JSON unchanged. */
static void fuzz_roundtrip_blockdev(BlockdevOptions *obj)
{
    JsonNode *node = qapi_BlockdevOptions_to_json(obj);
    g_autofree char *text = qjson_to_string(node, false);
    g_autofree char *text2 = NULL;
    Error *err = NULL;
    BlockdevOptions *again = qapi_BlockdevOptions_from_json(node, &err);

    if (!again) {
        fprintf(stderr, "fuzz-keyval: %s rejected on re-read: %s\n", text,
                error_get_pretty(err));
        abort();
    }
    json_node_unref(node);
    node = qapi_BlockdevOptions_to_json(again);
    text2 = qjson_to_string(node, false);
    if (strcmp(text, text2)) {
        fprintf(stderr, "fuzz-keyval: round trip changed\n%s\n%s\n",
                text, text2);
        abort();
    }
    json_node_unref(node);
    qapi_free_BlockdevOptions(again);
}

/* Serialise d both ways; the strings must be non-NULL JSON objects. */
static void fuzz_serialise(QDict *d)
{
    g_autofree char *flat = qdict_to_json_flat(d);
    g_autofree char *nested = qdict_to_json_nested(d);

    if (!flat || flat[0] != '{' || !nested || nested[0] != '{') {
        abort();
    }
}

/* --blockdev driver=...: parse, then the generated visitor. */
static void fuzz_blockdev_keyval(const char *s)
{
    g_autoptr(QDict) d = keyval_parse(s, "driver", NULL);
    BlockdevOptions *obj;

    if (!d) {
        return;
    }
    fuzz_serialise(d);
    obj = qapi_BlockdevOptions_from_keyval(d, NULL);
    if (obj) {
        fuzz_roundtrip_blockdev(obj);
        qapi_free_BlockdevOptions(obj);
    }
}

/* --blockdev {...} and json:{...}: both JSON readers. */
static void fuzz_blockdev_json(const char *s)
{
    g_autoptr(QDict) d = qdict_from_json(s, NULL);
    JsonNode *node;
    BlockdevOptions *obj;

    if (d) {
        fuzz_serialise(d);
        obj = qapi_BlockdevOptions_from_keyval(d, NULL);
        qapi_free_BlockdevOptions(obj);
    }
    node = qjson_from_string(s, NULL);
    if (!node) {
        return;
    }
    obj = qapi_BlockdevOptions_from_json(node, NULL);
    json_node_unref(node);
    if (obj) {
        fuzz_roundtrip_blockdev(obj);
        qapi_free_BlockdevOptions(obj);
    }
}

/* --nbd-server and --export: keyval plus their schema types. */
static void fuzz_server_export(const char *s, bool export)
{
    g_autoptr(QDict) d = keyval_parse(s, export ? "type" : NULL, NULL);

    if (!d) {
        return;
    }
    fuzz_serialise(d);
    if (export) {
        qapi_free_BlockExportOptions(
            qapi_BlockExportOptions_from_keyval(d, NULL));
    } else {
        qapi_free_NbdServerOptions(qapi_NbdServerOptions_from_keyval(d,
                                                                     NULL));
    }
}

/* -drive / --image-opts strings: keyval without an implied key. */
static void fuzz_drive(const char *s)
{
    g_autoptr(QDict) d = keyval_parse(s, NULL, NULL);
    g_autoptr(QDict) d2 = qdict_new();

    if (!d) {
        return;
    }
    fuzz_serialise(d);
    /* Merging the same string again must succeed (later keys win). */
    if (!keyval_parse_into(d2, s, NULL, NULL)) {
        abort();
    }
    if (qdict_size(d2) != qdict_size(d)) {
        abort();
    }
}

/* Size strings (cluster_size=64k, size=1G): both entry points agree. */
static void fuzz_size(const char *s)
{
    uint64_t a = 0, b = 0;
    const char *end = NULL;
    int ra = parse_size(s, &a);
    int rb = qemu_strtosz(s, &end, &b);

    if (ra == 0 && (rb != 0 || a != b || *end)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *s = NULL;

    if (size < 1) {
        return 0;
    }
    s = g_strndup((const char *)data + 1, size - 1);
    switch (data[0] % 6) {
    case 0:
        fuzz_blockdev_keyval(s);
        break;
    case 1:
        fuzz_blockdev_json(s);
        break;
    case 2:
        fuzz_server_export(s, false);
        break;
    case 3:
        fuzz_server_export(s, true);
        break;
    case 4:
        fuzz_drive(s);
        break;
    default:
        fuzz_size(s);
        break;
    }
    return 0;
}
