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

/* getopt values of the long options without a short letter. */
#define IMG_OPT_TRACE      0x1000   /* --trace, taken by every command */
#define IMG_OPT_OUTPUT     0x1001   /* --output */
#define IMG_OPT_IMAGE_OPTS 0x1002   /* --image-opts */
#define IMG_OPT_BACKING_PROTOCOLS 0x1003 /* --backing-protocols, every command */
#define IMG_OPT_OBJECT     0x1004   /* --object, every command */
/* First free long option value for subcommand-specific options. */
#define IMG_OPT_BASE       0x1010

typedef enum ImgOutputFormat {
    IMG_OUTPUT_HUMAN,
    IMG_OUTPUT_JSON,
} ImgOutputFormat;

/* Shared long options a command takes besides --help and --trace. */
enum {
    IMG_LONG_FORMAT = 1 << 0,       /* --format (as -f) */
    IMG_LONG_OUTPUT = 1 << 1,       /* --output */
    IMG_LONG_IMAGE_OPTS = 1 << 2,   /* --image-opts */
    IMG_LONG_FORCE_SHARE = 1 << 3,  /* --force-share (as -U) */
};

/*
 * Command-line state of one subcommand, for img_getopt(). The command
 * fills in the first group (what it accepts) and any defaults; every
 * option letter means the same in every command that takes it, so
 * img_getopt() stores those itself and returns only the rest.
 */
typedef struct ImgOpts {
    const char *shortopts;          /* getopt_long() option string */
    unsigned longopts;              /* IMG_LONG_* bits */
    const struct option *extra;     /* the command's own long options */
    bool own_help;                  /* -h/--help is returned, not handled */

    const char *fmt;                /* -f: image format */
    const char *cache;              /* -t: cache mode (default writeback) */
    const char *src_cache;          /* -T: source cache (default writeback) */
    ImgOutputFormat ofmt;           /* --output */
    bool image_opts;                /* --image-opts */
    bool force_share;               /* -U */
    bool quiet;                     /* -q; also turns -p off */
    bool progress;                  /* -p */
    GPtrArray *optstrs;             /* -o strings, when the command has -o */
    bool create_help;               /* -o help (or -o ?) was given */

    struct option *table;           /* private: merged long options */
} ImgOpts;

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

/*
 * getopt_long() for a subcommand: stores the shared options in o (see
 * ImgOpts), handles --trace, exits on an unknown option or a missing
 * argument, and returns the next command-specific option, or -1 at the
 * end of the options.
 */
int img_getopt(int argc, char **argv, ImgOpts *o);
/* argv[optind] if it is the last argument, else exit with the usage hint. */
const char *img_one_filename(int argc, char **argv);
/*
 * Add cache mode (-t, or -T when source) to *flags; false (reported as
 * "Invalid [source ]cache option: MODE") on an unknown mode.
 */
bool img_apply_cache(const char *mode, bool source, int *flags);

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

/* "-o help": print the creation options of drv. */
void img_create_help(const BlockDriver *drv, bool with_file);
/* "-o help" for format fmt; returns the exit status (1: unknown format). */
int img_create_help_for(const char *fmt, bool with_file);
/*
 * The creation options for drv: the -o strings in order, then backing
 * and backing_fmt when not NULL (they win over -o). Names are checked
 * against drv and values normalised; keys gets the names in the order
 * the user gave them. False with errp set on the first bad option.
 */
bool img_build_create_opts(const BlockDriver *drv, GPtrArray *optstrs,
                           const char *backing, const char *backing_fmt,
                           GPtrArray *keys, QDict *opts, Error **errp);

/* Size parsing with qemu-img's error texts; false (reported) on error. */
bool img_parse_size_arg(const char *str, int64_t *size);

#endif /* QBLK_IMG_H */
