/*
 * qblk-img: internal interface between the tool's source files.
 *
 * qblk-img.c holds main(), option helpers, image opening, progress and
 * output formatting (human sizes, qemu-compatible JSON); the subcommands
 * live in qblk-img-cmds.c (create, info, check, map, compare, rebase,
 * commit) and qblk-img-convert.c (convert). Nothing here is used outside
 * the tool.
 */
#ifndef QBLK_IMG_H
#define QBLK_IMG_H

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "block/block.h"
#include <getopt.h>
#include <json-glib/json-glib.h>

/* Long option value shared by every subcommand for --trace. */
#define IMG_OPT_TRACE 0x1000
/* First free long option value for subcommand-specific options. */
#define IMG_OPT_BASE  0x1001

typedef enum ImgOutputFormat {
    IMG_OUTPUT_HUMAN,
    IMG_OUTPUT_JSON,
} ImgOutputFormat;

/* ---- Subcommands (return the process exit status). */
int img_create(int argc, char **argv);
int img_info(int argc, char **argv);
int img_check(int argc, char **argv);
int img_map(int argc, char **argv);
int img_compare(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_rebase(int argc, char **argv);
int img_commit(int argc, char **argv);

/* ---- Errors and argument handling */

/* Print the --help text (with the list of formats) and exit(0). */
void QEMU_NORETURN img_help(void);

/* Print "qblk-img: msg" plus the --help hint and exit(1). */
void QEMU_NORETURN img_error_exit(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
/* Report a getopt failure ('?' or ':') for argv[optind - 1] and exit. */
void QEMU_NORETURN img_bad_option(int c, char **argv);
/* Handle --trace PATTERN; exits on a bad pattern. */
void img_trace_option(const char *arg);
/* Parse "human"/"json" for --output; exits with qemu-img's message. */
ImgOutputFormat img_parse_output(const char *arg);
/* Report err prefixed with "prefix": "qblk-img: PREFIXmessage". */
void img_report_err(Error *err, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* printf to stdout unless quiet. */
void img_qprintf(bool quiet, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* ---- Opening images */

/*
 * Open filename (format fmt, or probed when NULL) with BDRV_O_* flags,
 * attach a root child for I/O and return it. On failure report
 * "Could not open 'FILE': reason" and return NULL.
 */
BdrvChild *img_open(const char *filename, const char *fmt, bool image_opts,
                    int flags, bool quiet);
/* Like img_open but returns the error instead of reporting it. */
BdrvChild *img_open_err(const char *filename, const char *fmt,
                        bool image_opts, int flags, Error **errp);
/* Attach a root child to bs; the caller's reference passes to it. */
BdrvChild *img_attach(BlockDriverState *bs, Error **errp);
/* Close what img_open returned (NULL is allowed). */
void img_close(BdrvChild *child);
/* Parse a -t/-T cache mode into BDRV_O_* flags; false on bad mode. */
bool img_parse_cache(const char *mode, int *flags, bool *writethrough);

/* ---- Output helpers */

/* "1 MiB", "0.977 MiB", "324 KiB", "0 B": qemu's size_to_str(). */
char *img_size_to_str(uint64_t val);
/*
 * Print node as JSON the way qemu-img does: 4-space indentation, object
 * members in QEMU's QDict iteration order, non-ASCII as \uXXXX.
 */
void img_json_print(JsonNode *node, GString *out, int indent);
/* Print obj (an object node) followed by a newline on stdout. */
void img_json_dump(JsonNode *node);
/* Human "Format specific information" lines for a JSON value. */
void img_dump_human_tree(JsonNode *node, int indent);

/* ---- Progress ("    (12.34/100%)\r"), enabled by -p */
void img_progress_init(bool enabled, float min_step);
void img_progress_print(float percent);
void img_progress_end(void);

/* ---- Creation options (-o), shared by create and convert */

/* True if drv lists name among its creation options (or lists none). */
bool img_drv_has_opt(const BlockDriver *drv, const char *name);
/* "-o help": print the creation options of drv. */
void img_create_help(const BlockDriver *drv, bool with_file);
/* Append name to keys unless present (keys remember the user's order). */
void img_keys_add(GPtrArray *keys, const char *name);
/* Parse "a=1,b=2" into opts (",," escapes a comma); error names the key. */
bool img_parse_create_opts(const char *str, GPtrArray *keys, QDict *opts,
                           Error **errp);
/* Canonicalise sizes in opts to bytes and validate booleans. */
bool img_normalize_opts(QDict *opts, Error **errp);

/* Size parsing with qemu-img's error texts; false (reported) on error. */
bool img_parse_size_arg(const char *str, int64_t *size);

#endif /* QBLK_IMG_H */
