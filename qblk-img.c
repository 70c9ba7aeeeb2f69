/*
 * qblk-img: offline image utility, a command-line compatible subset of
 * qemu-img 7.2 (create, info, check, map, compare, convert, rebase,
 * commit).
 *
 * This file holds main() and what the subcommands share: option parsing,
 * error exits with qemu-img's wording, opening images through
 * blockdev_open_image() and a root child, human-readable sizes, the
 * progress line, and a JSON printer that reproduces qemu-img's output
 * byte for byte.
 *
 * Option parsing: a subcommand describes what it accepts in an ImgOpts
 * (short option string, shared long options by bit, its own long
 * options) and loops over img_getopt(). Letters that mean the same in
 * every command (-f -t -T -p -q -U -o, --output, --image-opts) are
 * stored in the ImgOpts, --help/--trace and usage errors are handled
 * there too, and only the command's own options come back to it. The
 * merged long option table lives from the first img_getopt() call until
 * it returns -1. qemu-img prints JSON
 * from a QDict, a hash table of 512 buckets iterated in bucket order, so
 * member order is a function of the key names; img_json_print() sorts
 * members with the same function instead of keeping insertion order.
 *
 * The tool is single-threaded: every command runs on the main thread and
 * uses the synchronous bdrv_*() wrappers, except convert, which runs its
 * workers as coroutines on the main loop.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/keyval.h"
#include "qemu/trace-control.h"
#include "qemu/job-progress.h"
#include "qemu/secret.h"
#include "block/block.h"
#include "block/block_int.h"
#include "qblk-img.h"
#include "config-host.h"
#include "trace.h"
#include <signal.h>
#include <stdarg.h>

#include "sysemu/blockdev.h"

static const char *const img_help_text =
"usage: qblk-img [standard options] command [command options]\n"
"qblk disk image utility (qemu-img 7.2 compatible subset)\n"
"\n"
"    '-h', '--help'       display this help and exit\n"
"    '-V', '--version'    output version information and exit\n"
"    '-T', '--trace'      [[enable=]<pattern>][,file=<file>]\n"
"                         specify tracing options\n"
"\n"
"Command syntax:\n"
"  check [--image-opts] [-q] [-f fmt] [--output=ofmt] [-r [leaks | all]] "
"[-T src_cache] [-U] filename\n"
"  commit [--image-opts] [-q] [-f fmt] [-t cache] [-b base] [-d] [-p] "
"filename\n"
"  compare [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s] "
"[-U] filename1 filename2\n"
"  convert [--image-opts] [-U] [-p] [-q] [-n] [-f fmt] [-t cache] "
"[-T src_cache] [-O output_fmt] [-B backing_file [-F backing_fmt]] "
"[-o options] [-S sparse_size] [-m num_coroutines] [-W] "
"filename [filename2 [...]] output_filename\n"
"  create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] "
"[-o options] filename [size]\n"
"  info [--image-opts] [-f fmt] [--output=ofmt] [--backing-chain] [-U] "
"filename\n"
"  map [--image-opts] [-f fmt] [--start-offset=offset] [--max-length=len] "
"[--output=ofmt] [-U] filename\n"
"  rebase [--image-opts] [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p] "
"[-u] -b backing_file [-F backing_fmt] filename\n"
"\n"
"Every command also accepts --trace PATTERN, --backing-protocols LIST\n"
"(the protocols through which a backing file named in an image header may\n"
"be opened: file, host_device, nbd, http, https, json or all; default file)\n"
"and --object secret,id=ID,data=TEXT|file=PATH[,format=raw|base64] (a\n"
"secret for options such as password-secret=ID; may be repeated).\n"
"\n"
"Command parameters:\n"
"  'filename' is a disk image file name\n"
"  'fmt' is the image format (qcow2 or raw); probed when not given\n"
"  'cache' is the cache mode for writing: 'none', 'writeback' (default,\n"
"    except for convert), 'writethrough', 'directsync' or 'unsafe'\n"
"    (default for convert)\n"
"  'src_cache' is the cache mode for reading source images\n"
"  'size' is the virtual size in bytes; suffixes k/K, M, G, T, P and E\n"
"    (powers of 1024) are accepted, 'b' means bytes\n"
"  'options' is a comma separated list of name=value creation options;\n"
"    '-o help' lists those the format supports\n"
"  '-p' shows progress, '-q' suppresses output except errors\n"
"  '-u' (create) skips opening the backing file; (rebase) only rewrites\n"
"    the backing file name in the header\n"
"  '-S' bytes of zeroes needed before convert leaves a hole (default 4k);\n"
"    0 writes every byte\n"
"  '-m' convert coroutines in parallel (1..16, default 8); '-W' allows\n"
"    out-of-order writes\n"
"  '--output' is 'human' (default) or 'json'\n"
"  '-n' (convert) writes into an existing target instead of creating it\n"
"  '-r' (check) repairs 'leaks' only or 'all' inconsistencies\n"
"  '-s' (compare) strict mode: sizes must match too\n"
"\n"
"Supported formats:";

/* Subcommand table, searched by name (sorted like the help text). */
typedef struct ImgCommand {
    const char *name;
    int (*handler)(int argc, char **argv);
} ImgCommand;

static const ImgCommand img_commands[] = {
    { "check", img_check },
    { "commit", img_commit },
    { "compare", img_compare },
    { "convert", img_convert },
    { "create", img_create },
    { "info", img_info },
    { "map", img_map },
    { "rebase", img_rebase },
};

/* ------------------------------------------------------------------ */
/* Errors and options                                                  */

void img_error_exit(const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_report("%s", msg);
    g_free(msg);
    fprintf(stderr, "Try 'qblk-img --help' for more information\n");
    exit(EXIT_FAILURE);
}

void img_bad_option(int c, char **argv)
{
    if (c == ':') {
        img_error_exit("missing argument for option '%s'", argv[optind - 1]);
    }
    img_error_exit("unrecognized option '%s'", argv[optind - 1]);
}

void img_trace_option(const char *arg)
{
    if (!trace_opt_parse(arg)) {
        exit(EXIT_FAILURE);
    }
}

ImgOutputFormat img_parse_output(const char *arg)
{
    if (!strcmp(arg, "json")) {
        return IMG_OUTPUT_JSON;
    }
    if (!strcmp(arg, "human")) {
        return IMG_OUTPUT_HUMAN;
    }
    error_report("--output must be used with human or json as argument.");
    exit(EXIT_FAILURE);
}

void img_report_err(Error *err, const char *fmt, ...)
{
    va_list ap;
    char *prefix;

    va_start(ap, fmt);
    prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_prepend(&err, "%s", prefix);
    g_free(prefix);
    error_report_err(err);
}

void img_qprintf(bool quiet, const char *fmt, ...)
{
    va_list ap;

    if (quiet) {
        return;
    }
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* The shared long options; bit 0 rows are taken by every command. */
static const struct {
    unsigned bit;
    struct option opt;
} img_shared_longopts[] = {
    { 0, { "help", no_argument, NULL, 'h' } },
    { IMG_LONG_FORMAT, { "format", required_argument, NULL, 'f' } },
    { IMG_LONG_OUTPUT, { "output", required_argument, NULL,
                         IMG_OPT_OUTPUT } },
    { IMG_LONG_IMAGE_OPTS, { "image-opts", no_argument, NULL,
                             IMG_OPT_IMAGE_OPTS } },
    { IMG_LONG_FORCE_SHARE, { "force-share", no_argument, NULL, 'U' } },
    { 0, { "trace", required_argument, NULL, IMG_OPT_TRACE } },
    { 0, { "backing-protocols", required_argument, NULL,
           IMG_OPT_BACKING_PROTOCOLS } },
    { 0, { "object", required_argument, NULL, IMG_OPT_OBJECT } },
};

/*
 * The long option table of o: the shared rows it selects, then its own,
 * then the terminating row. Also applies the cache defaults.
 */
static struct option *img_build_longopts(ImgOpts *o)
{
    GArray *t = g_array_new(FALSE, TRUE, sizeof(struct option));
    struct option end = { NULL, 0, NULL, 0 };

    for (size_t i = 0; i < ARRAY_SIZE(img_shared_longopts); i++) {
        unsigned bit = img_shared_longopts[i].bit;
        if (!bit || (o->longopts & bit)) {
            g_array_append_val(t, img_shared_longopts[i].opt);
        }
    }
    for (int i = 0; o->extra && o->extra[i].name; i++) {
        g_array_append_val(t, o->extra[i]);
    }
    g_array_append_val(t, end);
    o->cache = o->cache ? o->cache : "writeback";
    o->src_cache = o->src_cache ? o->src_cache : "writeback";
    return (struct option *)g_array_free(t, FALSE);
}

/* Store shared option c in o; false if c is the command's to handle. */
static bool img_shared_option(int c, char **argv, ImgOpts *o)
{
    switch (c) {
    case 'h':
        if (o->own_help) {
            return false;
        }
        img_help();
    case 'f':
        o->fmt = optarg;
        return true;
    case 't':
        o->cache = optarg;
        return true;
    case 'T':
        o->src_cache = optarg;
        return true;
    case 'q':
        o->quiet = true;
        return true;
    case 'p':
        o->progress = true;
        return true;
    case 'U':
        o->force_share = true;
        return true;
    case 'o':
        if (!strcmp(optarg, "help") || !strcmp(optarg, "?")) {
            o->create_help = true;
        } else {
            g_ptr_array_add(o->optstrs, optarg);
        }
        return true;
    case IMG_OPT_OUTPUT:
        o->ofmt = img_parse_output(optarg);
        return true;
    case IMG_OPT_IMAGE_OPTS:
        o->image_opts = true;
        return true;
    case IMG_OPT_TRACE:
        img_trace_option(optarg);
        return true;
    case IMG_OPT_BACKING_PROTOCOLS:
        bdrv_set_backing_protocols(optarg, &error_fatal);
        return true;
    case IMG_OPT_OBJECT:
        qblk_object_add_from_opts(optarg, &error_fatal);
        return true;
    case '?':
    case ':':
        img_bad_option(c, argv);
    default:
        return false;
    }
}

int img_getopt(int argc, char **argv, ImgOpts *o)
{
    int c;

    /* getopt_long() needs the same table on every call of one parse. */
    if (!o->table) {
        o->table = img_build_longopts(o);
    }
    while ((c = getopt_long(argc, argv, o->shortopts, o->table,
                            NULL)) != -1) {
        if (!img_shared_option(c, argv, o)) {
            return c;
        }
    }
    g_free(o->table);
    o->table = NULL;
    /* qemu-img: -q silences the progress line as well. */
    if (o->quiet) {
        o->progress = false;
    }
    return -1;
}

const char *img_one_filename(int argc, char **argv)
{
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    return argv[optind];
}

bool img_apply_cache(const char *mode, bool source, int *flags)
{
    bool writethrough;

    if (blockdev_parse_cache_mode(mode, flags, &writethrough) < 0) {
        error_report("Invalid %scache option: %s", source ? "source " : "",
                     mode);
        return false;
    }
    return true;
}

bool img_parse_size_arg(const char *str, int64_t *size)
{
    uint64_t val;
    int ret = parse_size(str, &val);

    if (ret == -ERANGE || (ret == 0 && val > INT64_MAX)) {
        error_report("Invalid image size specified. Must be between 0 and "
                     "%" PRId64 ".", INT64_MAX);
        return false;
    }
    if (ret < 0) {
        error_report("Invalid image size specified. You may use k, M, G, T, "
                     "P or E suffixes for");
        error_report("kilobytes, megabytes, gigabytes, terabytes, "
                     "petabytes and exabytes.");
        return false;
    }
    *size = val;
    return true;
}

/* ------------------------------------------------------------------ */
/* Opening images                                                      */
/*
 * Every image is used through a root BdrvChild named "qblk-img", which
 * holds the only reference to its node: img_close() drops the child and
 * with it the node (and its backing chain).
 */

BdrvChild *img_attach(BlockDriverState *bs, Error **errp)
{
    BdrvChild *child = bdrv_root_attach(bs, "qblk-img", errp);

    /* The child holds its own reference; it becomes the only one. */
    bdrv_unref(bs);
    return child;
}

BdrvChild *img_open_err(const char *filename, const char *fmt,
                        bool image_opts, int flags, Error **errp)
{
    BlockDriverState *bs;

    trace_img_open(filename, fmt ? fmt : "(probe)", flags);
    bs = blockdev_open_image(filename, fmt, image_opts, flags, errp);
    if (!bs) {
        return NULL;
    }
    return img_attach(bs, errp);
}

BdrvChild *img_open(const char *filename, const char *fmt, bool image_opts,
                    int flags, bool quiet)
{
    Error *err = NULL;
    BdrvChild *child = img_open_err(filename, fmt, image_opts, flags, &err);

    if (!child) {
        img_report_err(err, "Could not open '%s': ", filename);
    }
    return child;
}

void img_close(BdrvChild *child)
{
    if (child) {
        bdrv_root_unref_child(child);
    }
}

/* ------------------------------------------------------------------ */
/* Human sizes and progress                                            */

/*
 * Binary units with three significant digits; the next unit is used as
 * soon as the figure would reach 1000, so 1023999 bytes is "0.977 MiB".
 */
char *img_size_to_str(uint64_t val)
{
    static const char *const units[] = {
        "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
    };
    int i = 0;
    double d = val;

    /* Switch to the next unit once the figure would reach 1000. */
    while (i < (int)ARRAY_SIZE(units) - 1 && d >= 1000.0) {
        d /= 1024.0;
        i++;
    }
    return g_strdup_printf("%0.3g %s", d, units[i]);
}

/*
 * Progress state. One command runs per process, so one global suffices;
 * a new line is printed only when the value moved by min_step percent.
 */
static struct {
    bool enabled;
    float min_step;
    float last;             /* last printed value */
} img_progress;

void img_progress_init(bool enabled, float min_step)
{
    img_progress.enabled = enabled;
    img_progress.min_step = min_step;
    img_progress.last = -100.0f;
    img_progress_print(0.0f);
}

void img_progress_print(float percent)
{
    g_autofree char *line = NULL;

    if (!img_progress.enabled) {
        return;
    }
    if (percent < 100.0f &&
        percent - img_progress.last < img_progress.min_step) {
        return;
    }
    img_progress.last = percent;
    /* The bytes come from the formatter HMP's job lines share. */
    line = job_progress_img_line(percent);
    fputs(line, stdout);
    fflush(stdout);
}

void img_progress_end(void)
{
    if (img_progress.enabled) {
        /* Like qemu-img: no final 100%, the caller prints it on success. */
        printf("\n");
        fflush(stdout);
        img_progress.enabled = false;
    }
}

/* ------------------------------------------------------------------ */
/* JSON output in qemu-img's layout                                    */
/*
 * Commands build their output as json-glib trees and print them here:
 * img_json_print() for --output=json, img_dump_human_tree() for the
 * "Format specific information" part of the human output. Both order
 * object members as QEMU's QDict iterates them (see the top comment).
 */

/* Bucket of key in QEMU's 512-bucket QDict: decides member order. */
static unsigned img_qdict_bucket(const char *key)
{
    size_t len = strlen(key);
    uint32_t v = 0x238F13AFu * (uint32_t)len;

    for (size_t i = 0; i < len; i++) {
        v += (uint32_t)(unsigned char)key[i] << (i * 5 % 24);
    }
    return (1103515243u * v + 12345u) % 512;
}

/* An object member with its sort key (QDict bucket, insertion index). */
typedef struct ImgMember {
    const char *name;
    unsigned bucket;
    int index;
} ImgMember;

/* Same bucket: the member added last comes first, as in a QDict. */
static gint img_member_cmp(gconstpointer a, gconstpointer b)
{
    const ImgMember *ma = a, *mb = b;

    if (ma->bucket != mb->bucket) {
        return ma->bucket < mb->bucket ? -1 : 1;
    }
    return mb->index - ma->index;
}

/* Append s as a JSON string literal, escaping like QEMU does. */
static void img_json_string(GString *out, const char *s)
{
    const char *p = s;

    g_string_append_c(out, '"');
    while (*p) {
        gunichar c = g_utf8_get_char_validated(p, -1);
        if (c == (gunichar)-1 || c == (gunichar)-2) {
            c = 0xFFFD;
            p++;
        } else {
            p = g_utf8_next_char(p);
        }
        switch (c) {
        case '"':  g_string_append(out, "\\\""); break;
        case '\\': g_string_append(out, "\\\\"); break;
        case '\b': g_string_append(out, "\\b"); break;
        case '\f': g_string_append(out, "\\f"); break;
        case '\n': g_string_append(out, "\\n"); break;
        case '\r': g_string_append(out, "\\r"); break;
        case '\t': g_string_append(out, "\\t"); break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                g_string_append_c(out, (char)c);
            } else if (c > 0xFFFF) {
                c -= 0x10000;
                g_string_append_printf(out, "\\u%04X\\u%04X",
                                       0xD800 | (c >> 10),
                                       0xDC00 | (c & 0x3FF));
            } else {
                g_string_append_printf(out, "\\u%04X", c);
            }
        }
    }
    g_string_append_c(out, '"');
}

/* Four spaces per nesting level, as QEMU's pretty printer uses. */
static void img_json_indent(GString *out, int indent)
{
    for (int i = 0; i < indent; i++) {
        g_string_append(out, "    ");
    }
}

/* The members of obj in QDict iteration order; g_free() the array. */
static ImgMember *img_json_members(JsonObject *obj, int *count)
{
    GList *names = json_object_get_members(obj);
    int n = g_list_length(names);
    ImgMember *m = g_new(ImgMember, MAX(n, 1));
    int i = 0;

    for (GList *l = names; l; l = l->next, i++) {
        m[i].name = l->data;
        m[i].bucket = img_qdict_bucket(l->data);
        m[i].index = i;
    }
    g_list_free(names);
    qsort(m, n, sizeof(*m), (int (*)(const void *, const void *))
          img_member_cmp);
    *count = n;
    return m;
}

/* Print the members of obj in QDict order. */
static void img_json_object(JsonObject *obj, GString *out, int indent)
{
    int n, i;
    ImgMember *m = img_json_members(obj, &n);

    g_string_append(out, "{");
    for (i = 0; i < n; i++) {
        g_string_append(out, i ? ",\n" : "\n");
        img_json_indent(out, indent + 1);
        img_json_string(out, m[i].name);
        g_string_append(out, ": ");
        img_json_print(json_object_get_member(obj, m[i].name), out,
                       indent + 1);
    }
    g_string_append_c(out, '\n');
    img_json_indent(out, indent);
    g_string_append_c(out, '}');
    g_free(m);
}

/* Print the elements of arr, one per line, in order. */
static void img_json_array(JsonArray *arr, GString *out, int indent)
{
    guint n = json_array_get_length(arr);

    g_string_append(out, "[");
    for (guint i = 0; i < n; i++) {
        g_string_append(out, i ? ",\n" : "\n");
        img_json_indent(out, indent + 1);
        img_json_print(json_array_get_element(arr, i), out, indent + 1);
    }
    g_string_append_c(out, '\n');
    img_json_indent(out, indent);
    g_string_append_c(out, ']');
}

/*
 * Scalars: booleans and integers as JSON literals, strings escaped; the
 * drivers' JSON never holds doubles, but print them losslessly anyway.
 */
void img_json_print(JsonNode *node, GString *out, int indent)
{
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        img_json_object(json_node_get_object(node), out, indent);
        return;
    case JSON_NODE_ARRAY:
        img_json_array(json_node_get_array(node), out, indent);
        return;
    case JSON_NODE_NULL:
        g_string_append(out, "null");
        return;
    case JSON_NODE_VALUE:
        break;
    }
    switch (json_node_get_value_type(node)) {
    case G_TYPE_BOOLEAN:
        g_string_append(out, json_node_get_boolean(node) ? "true" : "false");
        break;
    case G_TYPE_DOUBLE:
        g_string_append_printf(out, "%.17g", json_node_get_double(node));
        break;
    case G_TYPE_STRING:
        img_json_string(out, json_node_get_string(node));
        break;
    default:
        g_string_append_printf(out, "%" PRId64, json_node_get_int(node));
        break;
    }
}

void img_json_dump(JsonNode *node)
{
    GString *out = g_string_new(NULL);

    img_json_print(node, out, 0);
    printf("%s\n", out->str);
    g_string_free(out, TRUE);
}

/* One scalar as qemu-img's human dump prints it. */
static char *img_human_scalar(JsonNode *node)
{
    switch (json_node_get_value_type(node)) {
    case G_TYPE_BOOLEAN:
        return g_strdup(json_node_get_boolean(node) ? "true" : "false");
    case G_TYPE_STRING:
        return g_strdup(json_node_get_string(node));
    case G_TYPE_DOUBLE:
        return g_strdup_printf("%g", json_node_get_double(node));
    default:
        return g_strdup_printf("%" PRId64, json_node_get_int(node));
    }
}

/* Objects and arrays are printed on their own lines, nested deeper. */
static bool img_node_is_composite(JsonNode *node)
{
    JsonNodeType t = json_node_get_node_type(node);

    return t == JSON_NODE_OBJECT || t == JSON_NODE_ARRAY;
}

/*
 * "label: value", or "label:" followed by the nested lines of an object
 * or array one level deeper.
 */
static void img_dump_human_labelled(const char *label, JsonNode *val,
                                    int indent)
{
    if (img_node_is_composite(val)) {
        printf("%*s%s:\n", indent * 4, "", label);
        img_dump_human_tree(val, indent + 1);
    } else {
        char *s = img_human_scalar(val);
        printf("%*s%s: %s\n", indent * 4, "", label, s);
        g_free(s);
    }
}

/* Object members are labelled by key ('-' printed as ' '), in QDict order. */
static void img_dump_human_object(JsonObject *obj, int indent)
{
    int n;
    ImgMember *m = img_json_members(obj, &n);

    for (int i = 0; i < n; i++) {
        char *label = g_strdelimit(g_strdup(m[i].name), "-", ' ');
        img_dump_human_labelled(label, json_object_get_member(obj, m[i].name),
                                indent);
        g_free(label);
    }
    g_free(m);
}

/* Array elements are labelled by their index, "[0]", "[1]", ... */
static void img_dump_human_array(JsonArray *arr, int indent)
{
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        char *label = g_strdup_printf("[%u]", i);
        img_dump_human_labelled(label, json_array_get_element(arr, i),
                                indent);
        g_free(label);
    }
}

void img_dump_human_tree(JsonNode *node, int indent)
{
    switch (json_node_get_node_type(node)) {
    case JSON_NODE_OBJECT:
        img_dump_human_object(json_node_get_object(node), indent);
        break;
    case JSON_NODE_ARRAY:
        img_dump_human_array(json_node_get_array(node), indent);
        break;
    case JSON_NODE_VALUE: {
        char *s = img_human_scalar(node);
        printf("%*s%s\n", indent * 4, "", s);
        g_free(s);
        break;
    }
    case JSON_NODE_NULL:
        break;
    }
}

/* ------------------------------------------------------------------ */
/* main                                                                */

/* bdrv_iterate_format() callback: one name of the "Supported formats" list. */
static void img_print_format(void *opaque, const char *name)
{
    printf(" %s", name);
}

void img_help(void)
{
    printf("%s", img_help_text);
    bdrv_iterate_format(img_print_format, NULL);
    printf("\n");
    exit(EXIT_SUCCESS);
}

/* --version: our version and the syntax we follow. */
static void img_version(void)
{
    printf("qblk-img version %s (qblk)\n", QBLK_VERSION);
    printf("Command-line compatible with qemu-img 7.2 "
           "(create, info, check, map, compare, convert, rebase, commit)\n");
}

/*
 * Global options come before the command name (getopt stops at the
 * first non-option thanks to the leading '+'); the command then parses
 * its own options from its argv, where argv[0] is the command name.
 */
int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "trace", required_argument, NULL, 'T' },
        { NULL, 0, NULL, 0 }
    };
    const char *cmd;
    int c;

    error_set_progname("qblk-img");
    signal(SIGPIPE, SIG_IGN);
    qemu_init_main_loop();
    bdrv_init();

    /* Global options stop at the first non-option word (the command). */
    while ((c = getopt_long(argc, argv, "+:hVT:", long_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            img_help();
        case 'V':
            img_version();
            return EXIT_SUCCESS;
        case 'T':
            img_trace_option(optarg);
            break;
        default:
            img_bad_option(c, argv);
        }
    }
    if (optind >= argc) {
        img_error_exit("Not enough arguments");
    }
    cmd = argv[optind];
    /* Each command re-parses its own argv with getopt from index 1. */
    argc -= optind;
    argv += optind;
    optind = 0;
    for (size_t i = 0; i < ARRAY_SIZE(img_commands); i++) {
        if (!strcmp(cmd, img_commands[i].name)) {
            return img_commands[i].handler(argc, argv);
        }
    }
    img_error_exit("Command not found: %s", cmd);
}
