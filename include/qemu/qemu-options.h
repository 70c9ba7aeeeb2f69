/*
 * Command-line options shared by all qblk programs, from qemu-options.hx.
 */
#ifndef QEMU_QEMU_OPTIONS_H
#define QEMU_QEMU_OPTIONS_H

#include "qemu/osdep.h"

#define HAS_ARG 1

typedef struct QblkOptionDef {
    const char *name;       /* long name without "--" */
    int flags;              /* HAS_ARG */
    const char *help;       /* help text, already formatted */
} QblkOptionDef;

/* NULL-terminated table generated from qemu-options.hx. */
extern const QblkOptionDef qblk_common_options[];

/* Print the help text of every shared option. */
void qblk_print_common_options_help(FILE *out);

#endif /* QEMU_QEMU_OPTIONS_H */
