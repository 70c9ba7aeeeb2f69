/*
 * User-chosen identifiers (job ids, export ids): QEMU's rule is a letter
 * first, then letters, digits, '-', '.' and '_' (util/id.c).
 */
#ifndef QEMU_ID_H
#define QEMU_ID_H

#include "qemu/osdep.h"

bool id_wellformed(const char *id);

#endif /* QEMU_ID_H */
