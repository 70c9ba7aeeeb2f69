/*
 * Flat option dictionaries: dotted keys mapped to string values.
 *
 * Every way of naming a node (a plain filename, `json:{...}`, the keyval
 * string `driver=qcow2,file.filename=x`, --image-opts) is turned into one
 * of these, flattened: nested objects become dotted keys ("file.filename")
 * and scalars become strings (numbers in decimal, booleans as "on"/"off").
 * A driver takes its own options out (qdict_del) and passes the
 * "child." subset to the child it opens, so options left over after open
 * are unknown and reported as errors, as QEMU does.
 */
#ifndef QEMU_QDICT_H
#define QEMU_QDICT_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct QDict QDict;

QDict *qdict_new(void);
QDict *qdict_ref(QDict *d);
void qdict_unref(QDict *d);
QDict *qdict_clone(const QDict *d);

void qdict_put_str(QDict *d, const char *key, const char *value);
void qdict_put_int(QDict *d, const char *key, int64_t value);
void qdict_put_bool(QDict *d, const char *key, bool value);
bool qdict_haskey(const QDict *d, const char *key);
/* The value, or NULL when absent. */
const char *qdict_get_try_str(const QDict *d, const char *key);
void qdict_del(QDict *d, const char *key);
size_t qdict_size(const QDict *d);
/* Keys in sorted order, NULL-terminated; g_free() the array, not the keys. */
const char **qdict_keys(const QDict *d);

/*
 * Typed getters. When the key is absent, store def and return true.
 * When present but malformed, set errp (naming the key, QEMU's wording:
 * "Parameter 'KEY' expects ...") and return false.
 */
bool qdict_get_bool(const QDict *d, const char *key, bool def, bool *out,
                    Error **errp);
bool qdict_get_uint(const QDict *d, const char *key, uint64_t def,
                    uint64_t *out, Error **errp);
/* Accepts size suffixes k/K, M, G, T, P, E (powers of 1024). */
bool qdict_get_size(const QDict *d, const char *key, uint64_t def,
                    uint64_t *out, Error **errp);

/*
 * Move every "prefix..." entry of src into a new dict with the prefix
 * removed ("file.filename" -> "filename" for prefix "file.").
 */
QDict *qdict_extract_subqdict(QDict *src, const char *prefix);
/* True if some key starts with prefix. */
bool qdict_has_prefixed_entries(const QDict *d, const char *prefix);
/* Copy entries of src absent from dst into dst. */
void qdict_join(QDict *dst, const QDict *src, bool overwrite);

/* Serialize as a flat JSON object {"a.b": "v", ...} with sorted keys. */
char *qdict_to_json_flat(const QDict *d);
/* Serialize as a nested JSON object (dotted keys unflattened). */
char *qdict_to_json_nested(const QDict *d);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(QDict, qdict_unref)

#endif /* QEMU_QDICT_H */
