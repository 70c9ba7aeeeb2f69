/*
 * Looking up QMP commands in the generated command table.
 *
 * State: qmp_command_table (generated qapi-commands.c) is a constant
 * array sorted by name (strcmp order, with a NULL-named sentinel after
 * the last row), so lookup is a binary search and needs no locking.
 */
#include "qemu/osdep.h"
#include "qapi/qmp-registry.h"

/* bsearch comparator: key is the command name, elt a table row. */
static int qmp_command_cmp(const void *key, const void *elt)
{
    const QmpCommand *cmd = elt;

    return strcmp(key, cmd->name);
}

const QmpCommand *qmp_find_command(const char *name)
{
    if (!name) {
        return NULL;
    }
    return bsearch(name, qmp_command_table, qmp_command_count,
                   sizeof(QmpCommand), qmp_command_cmp);
}
