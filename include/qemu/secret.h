/*
 * Secret objects (util/secret.c): passwords and keys given once, by id,
 * with --object secret,id=ID,data=...|file=...[,format=raw|base64] or QMP
 * object-add, and referred to by that id from driver options
 * (password-secret=ID), so they never appear in a command line of
 * options or in query output.
 */
#ifndef QEMU_SECRET_H
#define QEMU_SECRET_H

#include "qemu/osdep.h"
#include "qapi/error.h"

/*
 * The secret id's value as a NUL-terminated UTF-8 string, owned by the
 * registry (valid until the object is deleted: copy it). NULL with errp
 * set ("No secret with id 'X'") if there is none or it is not UTF-8.
 */
const char *qblk_secret_lookup(const char *id, Error **errp);

/*
 * --object OPTSTR (keyval with qom-type implied, or a JSON object): the
 * same checks and effect as QMP object-add. False with errp set.
 */
bool qblk_object_add_from_opts(const char *optstr, Error **errp);

/* Drop every secret (wiping its bytes); at exit and in tests. */
void qblk_secret_clear_all(void);

#endif /* QEMU_SECRET_H */
