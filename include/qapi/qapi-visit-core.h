/*
 * Runtime support for the code scripts/qapi-gen.py generates.
 *
 * Generated visitors stay small by calling these helpers for everything
 * that is the same for every type: JSON type checks, scalar conversion
 * with range checks, member bookkeeping (which members of an input object
 * were consumed, so leftovers are reported as unexpected), the full member
 * paths used in error messages ("addr.data.path", "bitmaps[0]") and the
 * string conversions of keyval input.
 *
 * Input comes in two modes sharing one code path: JSON (a QMP request,
 * strictly typed) and keyval (a flat dotted QDict of strings, turned into
 * a tree of string nodes by qapi_keyval_to_json(); scalars are then parsed
 * from their strings). Error texts follow QEMU 7.2: "missing",
 * "unexpected" and type errors name the full path; enum and range errors
 * name the bare member ('null' for a list element), as QEMU does.
 */
#ifndef QAPI_QAPI_VISIT_CORE_H
#define QAPI_QAPI_VISIT_CORE_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "qapi/error.h"
#include "qemu/qdict.h"

/* JSON type of an alternate's branch (QEMU's QType). */
typedef enum QType {
    QTYPE_NONE,
    QTYPE_QNULL,
    QTYPE_QNUM,
    QTYPE_QSTRING,
    QTYPE_QDICT,
    QTYPE_QLIST,
    QTYPE_QBOOL,
    QTYPE__MAX,
} QType;

/* How input is read: strictly typed JSON, or keyval strings. */
typedef struct QapiIn {
    bool keyval;
} QapiIn;

/* An input object being visited: members taken so far are remembered. */
typedef struct QapiObjIn {
    JsonObject *obj;
    const char *path;           /* full name of the object; NULL: top */
    GHashTable *used;
} QapiObjIn;

/* Paths: "a.b" for a member, "a[3]" for a list element (new strings). */
char *qapi_path_member(const char *path, const char *name);
char *qapi_path_index(const char *path, size_t index);

/* "Parameter 'PATH.NAME' is missing" */
void qapi_error_missing(const char *path, const char *name, Error **errp);
/* "Invalid parameter type for 'PATH', expected: EXPECTED" */
void qapi_error_type(const char *path, const char *expected, Error **errp);

/* Check that node is an object (resp. array); else set a type error. */
JsonObject *qapi_in_object(const QapiIn *in, JsonNode *node,
                           const char *path, Error **errp);
JsonArray *qapi_in_array(const QapiIn *in, JsonNode *node, const char *path,
                         Error **errp);

void qapi_obj_in_init(QapiObjIn *oi, JsonObject *obj, const char *path);
void qapi_obj_in_cleanup(QapiObjIn *oi);
/* The member called name (marked as consumed), or NULL when absent. */
JsonNode *qapi_obj_in_take(QapiObjIn *oi, const char *name);
/* Fail with "Parameter 'X' is unexpected" if a member was not consumed. */
bool qapi_obj_in_check_unexpected(QapiObjIn *oi, Error **errp);

/*
 * Which alternate branch a node selects. qtypes lists the QTypes the
 * alternate has (n of them). In keyval mode a string prefers a string
 * branch, then a boolean one if it reads as a boolean, then a number.
 * QTYPE_NONE: no branch fits.
 */
QType qapi_in_alternate_qtype(const QapiIn *in, JsonNode *node,
                              const QType *qtypes, size_t n);

/*
 * Scalar visitors: convert node to *out, or set errp and return false.
 * path is the member's full name, name its bare name (NULL for a list
 * element), both only used in error messages.
 */
#define QAPI_SCALAR_IN(cname, ctype) \
    bool qapi_in_type_##cname(const QapiIn *in, JsonNode *node, \
                              const char *path, const char *name, \
                              ctype *out, Error **errp)
QAPI_SCALAR_IN(str, char *);
QAPI_SCALAR_IN(int, int64_t);
QAPI_SCALAR_IN(int8, int8_t);
QAPI_SCALAR_IN(int16, int16_t);
QAPI_SCALAR_IN(int32, int32_t);
QAPI_SCALAR_IN(int64, int64_t);
QAPI_SCALAR_IN(uint8, uint8_t);
QAPI_SCALAR_IN(uint16, uint16_t);
QAPI_SCALAR_IN(uint32, uint32_t);
QAPI_SCALAR_IN(uint64, uint64_t);
QAPI_SCALAR_IN(size, uint64_t);
QAPI_SCALAR_IN(bool, bool);
QAPI_SCALAR_IN(number, double);
QAPI_SCALAR_IN(any, JsonNode *);
QAPI_SCALAR_IN(null, JsonNode *);

/* Enum input: *out = index in lookup (n entries). */
bool qapi_in_enum(const QapiIn *in, JsonNode *node, const char *path,
                  const char *name, const char *const *lookup, int n,
                  int *out, Error **errp);
/* Index of s in lookup, or -1. */
int qapi_enum_parse(const char *const *lookup, int n, const char *s);

/* Scalar output: new nodes. */
JsonNode *qapi_out_type_str(const char *value);
JsonNode *qapi_out_type_int(int64_t value);
JsonNode *qapi_out_type_uint(uint64_t value);
JsonNode *qapi_out_type_bool(bool value);
JsonNode *qapi_out_type_number(double value);
JsonNode *qapi_out_type_any(const JsonNode *value);
JsonNode *qapi_out_type_null(const JsonNode *value);
/* A new empty object node ({}, the reply of a command without returns). */
JsonNode *qapi_out_empty_object(void);
/* A new object node holding obj (obj gets its own reference). */
JsonNode *qapi_out_object(JsonObject *obj);

/*
 * The tree of a flat keyval dict: "a.b"="1" becomes {"a": {"b": "1"}};
 * an object whose keys are exactly 0..n-1 becomes an array. All leaves
 * are strings. NULL with errp set on conflicting keys ("a" and "a.b").
 */
JsonNode *qapi_keyval_to_json(const QDict *opts, Error **errp);

/* Free helpers that accept NULL. */
void qapi_free_any(JsonNode *node);

#endif /* QAPI_QAPI_VISIT_CORE_H */
