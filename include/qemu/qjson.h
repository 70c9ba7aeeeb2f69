/*
 * JSON text <-> json-glib nodes, with QEMU's formatting.
 *
 * qjson_to_string() prints what QEMU's monitor prints: ", " and ": "
 * separators, member order preserved, pure ASCII output (every non-ASCII
 * character as \uXXXX, surrogate pairs above U+FFFF), integers as %lld,
 * doubles in shortest round-trip form. pretty=true indents by 4 spaces.
 */
#ifndef QEMU_QJSON_H
#define QEMU_QJSON_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "qapi/error.h"

/* Serialise node (NULL prints "null"); returns a new string (g_free). */
char *qjson_to_string(JsonNode *node, bool pretty);

/*
 * Parse exactly one complete JSON value (QEMU's single-quoted strings
 * accepted). Returns a new node (json_node_unref) or NULL with *errp set.
 */
JsonNode *qjson_from_string(const char *text, Error **errp);

/* Append the serialisation of node to buf (for building bigger output). */
void qjson_append(GString *buf, JsonNode *node, bool pretty);

#endif /* QEMU_QJSON_H */
