/*
 * The table of shared command-line options, generated from
 * qemu-options.hx so that --help texts and docs/qemu-options.rst cannot
 * drift apart.
 */
#include "qemu/osdep.h"
#include "qemu/qemu-options.h"

const QblkOptionDef qblk_common_options[] = {
#define DEF(name, flags, enum_name, help) { name, flags, help },
#include "qemu-options.def"
#undef DEF
    { NULL, 0, NULL },
};

void qblk_print_common_options_help(FILE *out)
{
    for (const QblkOptionDef *o = qblk_common_options; o->name; o++) {
        fputs(o->help, out);
    }
}
