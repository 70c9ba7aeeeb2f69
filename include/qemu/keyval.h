/*
 * Parsers that turn user-supplied option strings into flat QDicts.
 *
 * keyval: QEMU's dotted key=value syntax, "driver=qcow2,file.filename=a,,b"
 * (",," is a literal comma). An implied key names the value of a first
 * element given without "=" (e.g. implied "driver" turns "qcow2,..." into
 * driver=qcow2). Keys are [A-Za-z][A-Za-z0-9_-]* separated by dots.
 *
 * json: a JSON object, as in the "json:{...}" pseudo-filename, flattened
 * into dotted keys (see qdict.h). Arrays are flattened as "key.0", ...
 */
#ifndef QEMU_KEYVAL_H
#define QEMU_KEYVAL_H

#include "qemu/qdict.h"

QDict *keyval_parse(const char *params, const char *implied_key,
                    Error **errp);
/* Merge the parsed params into an existing dict (later keys win). */
bool keyval_parse_into(QDict *d, const char *params, const char *implied_key,
                       Error **errp);
QDict *qdict_from_json(const char *json, Error **errp);

/*
 * Parse a size with an optional suffix (k, M, G, T, P, E; case
 * insensitive; "b" for bytes). A number without suffix is bytes, as in
 * qemu-img. Returns 0 or -EINVAL / -ERANGE.
 */
int qemu_strtosz(const char *str, const char **end, uint64_t *result);
/* As qemu_strtosz, rejecting trailing garbage. */
int parse_size(const char *str, uint64_t *result);

#endif /* QEMU_KEYVAL_H */
