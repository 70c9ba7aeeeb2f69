/*
 * The QMP command table.
 *
 * scripts/qapi-gen.py turns every 'command' of the qapi/ schema modules
 * into a row of qmp_command_table (generated qapi-commands.c): the
 * command's name, its marshal function (parse the arguments into typed C
 * values, call the qmp_* handler, turn its result into JSON) and its
 * options. The monitor (monitor/qmp.c) looks commands up here;
 * query-commands lists the table.
 */
#ifndef QAPI_QMP_REGISTRY_H
#define QAPI_QMP_REGISTRY_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "qapi/error.h"

/*
 * args: the request's "arguments" object, or NULL when it had none.
 * On success *ret receives the reply value (a new node; {} when the
 * command returns nothing); on failure errp is set and *ret untouched.
 * Always called in coroutine context (the monitor's dispatcher), so a
 * handler may wait (drain, flush) without blocking the main loop.
 */
typedef void QmpCommandFunc(JsonObject *args, JsonNode **ret, Error **errp);

typedef enum QmpCommandOptions {
    QCO_NO_OPTIONS    = 0,
    QCO_ALLOW_OOB     = 1 << 0,     /* 'allow-oob': true */
    QCO_COROUTINE     = 1 << 1,     /* 'coroutine': true */
} QmpCommandOptions;

typedef struct QmpCommand {
    const char *name;               /* "block-stream" */
    QmpCommandFunc *fn;
    unsigned options;               /* QmpCommandOptions */
} QmpCommand;

/* Generated (qapi-commands.c): every command, sorted by name. */
extern const QmpCommand qmp_command_table[];
extern const size_t qmp_command_count;

/* The command called name, or NULL. */
const QmpCommand *qmp_find_command(const char *name);

#endif /* QAPI_QMP_REGISTRY_H */
