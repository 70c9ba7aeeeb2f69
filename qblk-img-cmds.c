/*
 * qblk-img subcommands that inspect or create images: create, info,
 * check, map and compare.
 *
 * Each command parses its argv with img_getopt() using qemu-img 7.2's
 * option letters, opens images through img_open() (a root child per
 * image) and uses only the synchronous block-layer wrappers. No state
 * outlives a command: each returns its exit status and main() exits. Output texts
 * and exit codes are qemu-img's; commands that only read open their
 * images read-only, so they are safe on images in use when -U is given.
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"
#include "block/block.h"
#include "block/block_int.h"
#include "qblk-img.h"
#include "trace.h"

#define IMG_IO_BUF_SIZE (2 * MiB)
/* Shared long options of info, check and map, which inspect one image. */
#define IMG_LONG_INSPECT (IMG_LONG_FORMAT | IMG_LONG_OUTPUT | \
                          IMG_LONG_IMAGE_OPTS | IMG_LONG_FORCE_SHARE)

/* ------------------------------------------------------------------ */
/* create                                                              */
/*
 * Creation options travel as strings in a QDict to bdrv_create(); the
 * tool only checks their names against the driver's create_opts list and
 * canonicalises typed values, so "cluster_size=4k" reaches the driver
 * (and the Formatting line) as "4096". The tables below exist only for
 * output: descriptions for "-o help" and the order in which qemu-img
 * prints options, defaults included, on the Formatting line.
 */

typedef enum ImgOptType {
    IMG_OPT_STR,
    IMG_OPT_SIZE,
    IMG_OPT_BOOL,
    IMG_OPT_NUM,
} ImgOptType;

/* A creation option qblk-img knows how to describe and normalise. */
typedef struct ImgCreateOpt {
    const char *name;
    ImgOptType type;
    const char *help;
} ImgCreateOpt;

static const ImgCreateOpt img_create_opts[] = {
    { "backing_file", IMG_OPT_STR, "Name of the backing (base) image" },
    { "backing_fmt", IMG_OPT_STR, "Format of the backing image" },
    { "cluster_size", IMG_OPT_SIZE, "Cluster size in bytes" },
    { "compat", IMG_OPT_STR, "qcow2 version: v2 (0.10) or v3 (1.1)" },
    { "compression_type", IMG_OPT_STR, "Compression method (zlib)" },
    { "data_file", IMG_OPT_STR, "External data file name" },
    { "data_file_raw", IMG_OPT_BOOL, "Keep the data file a valid raw image" },
    { "extended_l2", IMG_OPT_BOOL, "Use extended L2 entries" },
    { "extent_size_hint", IMG_OPT_SIZE, "Extent size hint for the file" },
    { "lazy_refcounts", IMG_OPT_BOOL, "Delay refcount updates" },
    { "nocow", IMG_OPT_BOOL, "Disable copy-on-write (btrfs only)" },
    { "preallocation", IMG_OPT_STR,
      "Preallocation mode" },
    { "refcount_bits", IMG_OPT_NUM, "Bits per refcount entry" },
    { "size", IMG_OPT_SIZE, "Virtual disk size" },
};

/* Order (and defaults) of the "Formatting ..." line per format. */
typedef struct ImgFmtOrder {
    const char *name;
    const char *def;     /* printed when the user gave no value */
} ImgFmtOrder;

static const ImgFmtOrder img_qcow2_order[] = {
    { "cluster_size", "65536" }, { "extended_l2", "off" },
    { "preallocation", NULL }, { "compression_type", "zlib" },
    { "size", NULL }, { "compat", NULL }, { "backing_file", NULL },
    { "backing_fmt", NULL }, { "data_file", NULL },
    { "data_file_raw", NULL }, { "lazy_refcounts", "off" },
    { "refcount_bits", "16" }, { NULL, NULL }
};

static const ImgFmtOrder img_raw_order[] = {
    { "size", NULL }, { "preallocation", NULL },
    { "extent_size_hint", NULL }, { "nocow", NULL }, { NULL, NULL }
};

/* The description of creation option name, or NULL if unknown to us. */
static const ImgCreateOpt *img_find_create_opt(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(img_create_opts); i++) {
        if (!strcmp(img_create_opts[i].name, name)) {
            return &img_create_opts[i];
        }
    }
    return NULL;
}

/* True if drv lists name among its creation options (or lists none). */
static bool img_drv_has_opt(const BlockDriver *drv, const char *name)
{
    if (!drv->create_opts) {
        return true;
    }
    for (int i = 0; drv->create_opts[i]; i++) {
        if (!strcmp(drv->create_opts[i], name)) {
            return true;
        }
    }
    return false;
}

/* g_ptr_array_sort() comparator for arrays of C strings. */
static gint img_strcmp(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "-o help": list the options drv accepts, sorted by name. */
void img_create_help(const BlockDriver *drv, bool with_file)
{
    GPtrArray *names = g_ptr_array_new();

    for (size_t i = 0; i < ARRAY_SIZE(img_create_opts); i++) {
        if (drv->create_opts && img_drv_has_opt(drv, img_create_opts[i].name)) {
            g_ptr_array_add(names, (gpointer)img_create_opts[i].name);
        }
    }
    for (int i = 0; drv->create_opts && drv->create_opts[i]; i++) {
        if (!img_find_create_opt(drv->create_opts[i])) {
            g_ptr_array_add(names, (gpointer)drv->create_opts[i]);
        }
    }
    g_ptr_array_sort(names, img_strcmp);
    if (with_file) {
        printf("Supported options:\n");
    } else {
        printf("Supported %s options:\n", drv->format_name);
    }
    for (guint i = 0; i < names->len; i++) {
        static const char *const tnames[] = {
            "str", "size", "bool (on/off)", "num"
        };
        const ImgCreateOpt *o = img_find_create_opt(names->pdata[i]);
        char *lhs = g_strdup_printf("%s=<%s>", (char *)names->pdata[i],
                                    o ? tnames[o->type] : "str");
        printf("  %-22s - %s\n", lhs, o ? o->help : "");
        g_free(lhs);
    }
    if (!with_file) {
        printf("\nThe protocol level may support further options.\n"
               "Specify the target filename to include those options.\n");
    }
    g_ptr_array_free(names, TRUE);
}

/* Remember the order in which the user named options (once each). */
static void img_keys_add(GPtrArray *keys, const char *name)
{
    if (!g_ptr_array_find_with_equal_func(keys, name, g_str_equal, NULL)) {
        g_ptr_array_add(keys, g_strdup(name));
    }
}

/*
 * Split "a=1,b=2" (",," is a literal comma) into opts, keeping the last
 * value of repeated keys. Values are normalised by type. False with an
 * error naming the bad parameter.
 */
static bool img_parse_create_opts(const char *str, GPtrArray *keys,
                                  QDict *opts, Error **errp)
{
    GString *cur = g_string_new(NULL);
    const char *p = str;
    bool ok = true;

    while (ok) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p += 2;
            continue;
        }
        if (*p && *p != ',') {
            g_string_append_c(cur, *p++);
            continue;
        }
        if (cur->len) {
            char *eq = strchr(cur->str, '=');
            /* A bare "name" means "name=on", as in QEMU's option lists. */
            if (eq) {
                *eq = '\0';
            }
            img_keys_add(keys, cur->str);
            qdict_put_str(opts, cur->str, eq ? eq + 1 : "on");
            g_string_truncate(cur, 0);
        }
        if (!*p) {
            break;
        }
        p++;
    }
    g_string_free(cur, TRUE);
    return ok;
}

/* Rewrite sizes in bytes and validate booleans; errors name the key. */
static bool img_normalize_opts(QDict *opts, Error **errp)
{
    g_autofree const char **keys = qdict_keys(opts);

    for (int i = 0; keys[i]; i++) {
        const ImgCreateOpt *o = img_find_create_opt(keys[i]);
        const char *v = qdict_get_try_str(opts, keys[i]);
        uint64_t n;

        if (!o || !v) {
            continue;
        }
        if (o->type == IMG_OPT_SIZE) {
            if (parse_size(v, &n) < 0) {
                error_setg(errp, "Parameter '%s' expects a non-negative "
                           "number below 2^64", keys[i]);
                error_append_hint(errp, "Optional suffix k, M, G, T, P or E "
                                  "means kilo-, mega-, giga-, tera-, peta-\n"
                                  "and exabytes, respectively.\n");
                return false;
            }
            qdict_put_int(opts, keys[i], (int64_t)n);
        } else if (o->type == IMG_OPT_BOOL) {
            /* Validated only: qemu-img echoes booleans as written. */
            bool b;
            if (!qdict_get_bool(opts, keys[i], false, &b, errp)) {
                return false;
            }
        }
    }
    return true;
}

/* The format is looked up here so that "-o help" works without a file. */
int img_create_help_for(const char *fmt, bool with_file)
{
    const BlockDriver *drv = bdrv_find_format(fmt);

    if (!drv) {
        error_report("Unknown file format '%s'", fmt);
        return EXIT_FAILURE;
    }
    img_create_help(drv, with_file);
    return EXIT_SUCCESS;
}

/* Record name=value as given on the command line (-b, -F). */
static void img_put_create_opt(GPtrArray *keys, QDict *opts,
                               const char *name, const char *value)
{
    img_keys_add(keys, name);
    qdict_put_str(opts, name, value);
}

/*
 * Order matters for qemu-img compatible errors: every -o string is
 * parsed first, -b/-F are added, then the first unknown name is
 * reported, and only then are values checked.
 */
bool img_build_create_opts(const BlockDriver *drv, GPtrArray *optstrs,
                           const char *backing, const char *backing_fmt,
                           GPtrArray *keys, QDict *opts, Error **errp)
{
    for (guint i = 0; i < optstrs->len; i++) {
        if (!img_parse_create_opts(optstrs->pdata[i], keys, opts, errp)) {
            return false;
        }
    }
    if (backing) {
        img_put_create_opt(keys, opts, "backing_file", backing);
    }
    if (backing_fmt) {
        img_put_create_opt(keys, opts, "backing_fmt", backing_fmt);
    }
    for (guint i = 0; i < keys->len; i++) {
        if (!img_drv_has_opt(drv, keys->pdata[i])) {
            error_setg(errp, "Invalid parameter '%s'",
                       (char *)keys->pdata[i]);
            return false;
        }
    }
    return img_normalize_opts(opts, errp);
}

/* Print "Formatting 'F', fmt=X k=v ..." in qemu-img's option order. */
static void img_print_formatting(const char *filename, const char *fmt,
                                 QDict *opts, GPtrArray *keys)
{
    const ImgFmtOrder *order = NULL;

    if (!strcmp(fmt, "qcow2")) {
        order = img_qcow2_order;
    } else if (!strcmp(fmt, "raw")) {
        order = img_raw_order;
    }
    printf("Formatting '%s', fmt=%s", filename, fmt);
    for (int i = 0; order && order[i].name; i++) {
        const char *v = qdict_get_try_str(opts, order[i].name);
        v = v ? v : order[i].def;
        if (v) {
            printf(" %s=%s", order[i].name, v);
        }
    }
    for (guint i = 0; !order && i < keys->len; i++) {
        printf(" %s=%s", (char *)keys->pdata[i],
               qdict_get_try_str(opts, keys->pdata[i]));
    }
    printf("\n");
    fflush(stdout);
}

/*
 * Open the backing file named in opts (relative to filename) to verify
 * it, detect its format for the error hint and take its size when
 * *size is -1. Reports errors itself.
 */
static bool img_create_check_backing(const char *filename, QDict *opts,
                                     bool unsafe, int64_t *size)
{
    const char *backing = qdict_get_try_str(opts, "backing_file");
    const char *bfmt = qdict_get_try_str(opts, "backing_fmt");
    g_autofree char *path = NULL;
    Error *err = NULL;
    BdrvChild *child;
    const char *detected;
    int64_t len;

    if (!backing) {
        return true;
    }
    if (unsafe) {
        if (!bfmt) {
            error_report("%s: Backing file specified without backing format",
                         filename);
            return false;
        }
        return true;
    }
    path = bdrv_path_combine(filename, backing);
    child = img_open_err(path, bfmt, false,
                         BDRV_O_NO_BACKING | BDRV_O_NO_IO, &err);
    if (!child) {
        error_append_hint(&err, "Could not open backing image.\n");
        img_report_err(err, "%s: ", filename);
        return false;
    }
    detected = bdrv_get_format_name(bdrv_child_bs(child));
    if (!bfmt) {
        error_report("%s: Backing file specified without backing format",
                     filename);
        fprintf(stderr, "Detected format of %s.", detected);
        img_close(child);
        return false;
    }
    len = bdrv_getlength(bdrv_child_bs(child));
    img_close(child);
    if (*size == -1) {
        if (len < 0) {
            error_report("%s: Could not get size of backing file '%s': %s",
                         filename, backing, g_strerror(-len));
            return false;
        }
        *size = len;
    }
    return true;
}

/*
 * create [-q] [-f fmt] [-b backing [-F backing_fmt]] [-u] [-o opts] file [size]
 *
 * Order of checks follows qemu-img 7.2 so that the first error reported
 * is the same: format lookup, option syntax, option names, values, then
 * the backing file (opened unless -u, its size used when none is given),
 * and only then the "Formatting ..." line and the driver's create. The
 * size comes from the argument, else -o size=, else the backing file.
 */
int img_create(int argc, char **argv)
{
    ImgOpts o = {
        .shortopts = ":F:b:f:ho:qu", .own_help = true, .fmt = "raw",
        .optstrs = g_ptr_array_new(),
    };
    const char *filename, *base = NULL, *base_fmt = NULL;
    GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(QDict) opts = qdict_new();
    const BlockDriver *drv;
    bool unsafe = false;
    int64_t size = -1;
    Error *err = NULL;
    int c, ret = EXIT_FAILURE;

    while ((c = img_getopt(argc, argv, &o)) != -1) {
        switch (c) {
        case 'h':
            o.create_help = true;
            break;
        case 'F':
            base_fmt = optarg;
            break;
        case 'b':
            base = optarg;
            break;
        case 'u':
            unsafe = true;
            break;
        }
    }
    /* "-o help" needs only the format; a file name is optional. */
    if (o.create_help) {
        ret = img_create_help_for(o.fmt, optind < argc);
        goto out;
    }
    if (optind >= argc) {
        img_error_exit("Expecting image file name");
    }
    filename = argv[optind++];
    if (optind < argc) {
        if (!img_parse_size_arg(argv[optind++], &size)) {
            goto out;
        }
    }
    if (optind != argc) {
        img_error_exit("Unexpected argument: %s", argv[optind]);
    }
    drv = bdrv_find_format(o.fmt);
    if (!drv) {
        error_report("%s: Unknown file format '%s'", filename, o.fmt);
        goto out;
    }
    /* Unknown names fail before anything is printed, as in qemu-img. */
    if (!img_build_create_opts(drv, o.optstrs, base, base_fmt, keys, opts,
                               &err)) {
        img_report_err(err, "%s: ", filename);
        goto out;
    }
    if (size == -1 && qdict_haskey(opts, "size")) {
        uint64_t sz;
        if (!qdict_get_size(opts, "size", 0, &sz, &err)) {
            img_report_err(err, "%s: ", filename);
            goto out;
        }
        size = sz;
    }
    if (!img_create_check_backing(filename, opts, unsafe, &size)) {
        goto out;
    }
    if (size == -1) {
        error_report("%s: Image creation needs a size parameter", filename);
        goto out;
    }
    img_keys_add(keys, "size");
    qdict_put_int(opts, "size", size);
    /* The size always goes to the driver in bytes. */
    trace_img_create(filename, o.fmt, size);
    if (!o.quiet) {
        img_print_formatting(filename, o.fmt, opts, keys);
    }
    if (bdrv_create(drv, filename, opts, &err) < 0) {
        img_report_err(err, "%s: ", filename);
        goto out;
    }
    ret = EXIT_SUCCESS;
out:
    g_ptr_array_free(o.optstrs, TRUE);
    g_ptr_array_free(keys, TRUE);
    return ret;
}

/* ------------------------------------------------------------------ */
/* info                                                                */
/*
 * Information is gathered into a JSON object first (the shape of QEMU's
 * ImageInfo) and printed from there, so human and JSON output cannot
 * disagree.
 */

/* Build qemu-img's ImageInfo object for bs (fields in QAPI order). */
static JsonNode *img_collect_info(BlockDriverState *bs, Error **errp)
{
    JsonObject *o = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);
    /* bdrv_get_info() is optional: raw has no cluster size. */
    BlockDriverInfo bdi = { 0 };
    const char *backing = bdrv_get_backing_filename(bs);
    const char *bfmt = bdrv_get_backing_format(bs);
    char *spec;
    int64_t len = bdrv_getlength(bs), used;
    bool have_bdi = bdrv_get_info(bs, &bdi) >= 0;

    json_node_take_object(node, o);
    if (len < 0) {
        error_setg_errno(errp, -len, "Can't get image size '%s'",
                         bdrv_get_filename(bs));
        json_node_unref(node);
        return NULL;
    }
    json_object_set_string_member(o, "filename", bdrv_get_filename(bs));
    json_object_set_string_member(o, "format", bdrv_get_format_name(bs));
    json_object_set_boolean_member(o, "dirty-flag", have_bdi && bdi.is_dirty);
    used = bdrv_get_allocated_file_size(bs);
    if (used >= 0) {
        json_object_set_int_member(o, "actual-size", used);
    }
    json_object_set_int_member(o, "virtual-size", len);
    if (have_bdi && bdi.cluster_size) {
        json_object_set_int_member(o, "cluster-size", bdi.cluster_size);
    }
    if (backing && *backing) {
        char *full = bdrv_get_full_backing_filename(bs, NULL);
        json_object_set_string_member(o, "backing-filename", backing);
        if (full) {
            json_object_set_string_member(o, "full-backing-filename", full);
            g_free(full);
        }
        if (bfmt && *bfmt) {
            json_object_set_string_member(o, "backing-filename-format", bfmt);
        }
    }
    /* The driver's {"type": ..., "data": {...}} goes in unchanged. */
    spec = bdrv_get_specific_info_json(bs, NULL);
    if (spec) {
        JsonNode *sn = json_from_string(spec, NULL);
        if (sn && json_node_get_node_type(sn) == JSON_NODE_OBJECT) {
            json_object_set_member(o, "format-specific", sn);
        } else if (sn) {
            json_node_unref(sn);
        }
        g_free(spec);
    }
    return node;
}

/* Human form of one ImageInfo object, as qemu-img info prints it. */
static void img_dump_human_info(JsonObject *o)
{
    int64_t vsize = json_object_get_int_member(o, "virtual-size");
    char *s = img_size_to_str(vsize);

    printf("image: %s\nfile format: %s\nvirtual size: %s (%" PRId64
           " bytes)\n", json_object_get_string_member(o, "filename"),
           json_object_get_string_member(o, "format"), s, vsize);
    g_free(s);
    if (json_object_has_member(o, "actual-size")) {
        s = img_size_to_str(json_object_get_int_member(o, "actual-size"));
        printf("disk size: %s\n", s);
        g_free(s);
    } else {
        printf("disk size: unavailable\n");
    }
    if (json_object_has_member(o, "cluster-size")) {
        printf("cluster_size: %" PRId64 "\n",
               json_object_get_int_member(o, "cluster-size"));
    }
    if (json_object_has_member(o, "backing-filename")) {
        const char *b = json_object_get_string_member(o, "backing-filename");
        const char *full = json_object_has_member(o, "full-backing-filename")
            ? json_object_get_string_member(o, "full-backing-filename") : b;
        printf("backing file: %s", b);
        if (strcmp(b, full)) {
            printf(" (actual path: %s)", full);
        }
        printf("\n");
    }
    if (json_object_has_member(o, "backing-filename-format")) {
        printf("backing file format: %s\n",
               json_object_get_string_member(o, "backing-filename-format"));
    }
    if (json_object_get_boolean_member(o, "dirty-flag")) {
        printf("cleanly shut down: no\n");
    }
    if (json_object_has_member(o, "format-specific")) {
        JsonObject *fs = json_object_get_object_member(o, "format-specific");
        if (json_object_has_member(fs, "data")) {
            printf("Format specific information:\n");
            img_dump_human_tree(json_object_get_member(fs, "data"), 1);
        }
    }
}

/*
 * Collect ImageInfo for filename and, with chain, every backing file
 * below it (each opened on its own, without its backing). Appends to
 * list; false (reported) on error.
 */
static bool img_collect_chain(const char *filename, const char *fmt,
                              bool image_opts, int flags, bool chain,
                              JsonArray *list)
{
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal,
                                             g_free, NULL);
    char *name = g_strdup(filename);
    char *cur_fmt = g_strdup(fmt);
    bool ok = false;

    while (name) {
        Error *err = NULL;
        BdrvChild *child;
        BlockDriverState *bs;
        JsonNode *info;
        char *next = NULL;

        if (g_hash_table_contains(seen, name)) {
            error_report("Backing file '%s' creates an infinite loop.", name);
            goto out;
        }
        g_hash_table_add(seen, g_strdup(name));
        child = img_open(name, cur_fmt, image_opts, flags, false);
        if (!child) {
            goto out;
        }
        bs = bdrv_child_bs(child);
        info = img_collect_info(bs, &err);
        if (!info) {
            error_report_err(err);
            img_close(child);
            goto out;
        }
        json_array_add_element(list, info);
        if (chain && *bdrv_get_backing_filename(bs)) {
            next = bdrv_get_full_backing_filename(bs, &err);
            if (!next) {
                error_report_err(err);
                img_close(child);
                goto out;
            }
            g_free(cur_fmt);
            cur_fmt = g_strdup(bdrv_require_backing_format(bs, &err));
            if (!cur_fmt) {
                error_report_err(err);
                g_free(next);
                img_close(child);
                goto out;
            }
        }
        img_close(child);
        g_free(name);
        name = next;
        image_opts = false;
    }
    ok = true;
out:
    g_free(name);
    g_free(cur_fmt);
    g_hash_table_destroy(seen);
    return ok;
}

/*
 * info [--image-opts] [-f fmt] [--output=human|json] [--backing-chain] [-U]
 *      file
 *
 * Images are opened metadata-only and without their backing files, so a
 * missing backing file does not stop "info" (qemu-img behaves alike).
 * With --backing-chain every image of the chain is listed, opened in
 * turn with the format its parent records. JSON output is one object, or
 * an array of them for --backing-chain.
 */
int img_info(int argc, char **argv)
{
    enum { OPT_CHAIN = IMG_OPT_BASE };
    static const struct option info_opts[] = {
        { "backing-chain", no_argument, NULL, OPT_CHAIN },
        { NULL, 0, NULL, 0 }
    };
    ImgOpts o = {
        .shortopts = ":f:hU", .extra = info_opts,
        .longopts = IMG_LONG_INSPECT,
    };
    bool chain = false;
    int flags = BDRV_O_NO_BACKING | BDRV_O_NO_IO;
    const char *filename;
    JsonNode *root;
    JsonArray *list;

    /* --backing-chain is the only option of its own. */
    while (img_getopt(argc, argv, &o) != -1) {
        chain = true;
    }
    filename = img_one_filename(argc, argv);
    flags |= o.force_share ? BDRV_O_FORCE_SHARE : 0;
    list = json_array_new();
    root = json_node_new(JSON_NODE_ARRAY);
    json_node_take_array(root, list);
    if (!img_collect_chain(filename, o.fmt, o.image_opts, flags, chain,
                           list)) {
        json_node_unref(root);
        return EXIT_FAILURE;
    }
    if (o.ofmt == IMG_OUTPUT_JSON) {
        img_json_dump(chain ? root : json_array_get_element(list, 0));
    } else {
        for (guint i = 0; i < json_array_get_length(list); i++) {
            if (i) {
                printf("\n");
            }
            img_dump_human_info(json_array_get_object_element(list, i));
        }
    }
    json_node_unref(root);
    return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------ */
/* check                                                               */
/*
 * The driver does the work (and prints per-cluster ERROR/Leaked lines on
 * stderr itself); the tool turns BdrvCheckResult into qemu-img's report
 * and exit code.
 */

/* qemu-img's ImageCheck object: zero-valued optional fields omitted. */
static JsonNode *img_check_json(const char *filename, const char *fmt,
                                const BdrvCheckResult *r, int leaks_fixed,
                                int corruptions_fixed)
{
    JsonObject *o = json_object_new();
    JsonNode *node = json_node_new(JSON_NODE_OBJECT);

    json_node_take_object(node, o);
    json_object_set_string_member(o, "filename", filename);
    json_object_set_string_member(o, "format", fmt);
    json_object_set_int_member(o, "check-errors", r->check_errors);
#define IMG_CHECK_OPT(name, val) \
    if (val) { \
        json_object_set_int_member(o, name, val); \
    }
    IMG_CHECK_OPT("image-end-offset", r->image_end_offset);
    IMG_CHECK_OPT("corruptions", r->corruptions);
    IMG_CHECK_OPT("leaks", r->leaks);
    IMG_CHECK_OPT("corruptions-fixed", corruptions_fixed);
    IMG_CHECK_OPT("leaks-fixed", leaks_fixed);
    IMG_CHECK_OPT("total-clusters", r->bfi.total_clusters);
    IMG_CHECK_OPT("allocated-clusters", r->bfi.allocated_clusters);
    IMG_CHECK_OPT("fragmented-clusters", r->bfi.fragmented_clusters);
    IMG_CHECK_OPT("compressed-clusters", r->bfi.compressed_clusters);
#undef IMG_CHECK_OPT
    return node;
}

/*
 * The human report of qemu-img check: verdict, then the allocation
 * summary (when the driver counts clusters) and the image end offset.
 */
static void img_check_human(const BdrvCheckResult *r, bool quiet)
{
    const BlockFragInfo *b = &r->bfi;

    if (!r->corruptions && !r->leaks && !r->check_errors) {
        img_qprintf(quiet, "No errors were found on the image.\n");
    } else {
        if (r->corruptions) {
            img_qprintf(quiet, "\n%d errors were found on the image.\n"
                        "Data may be corrupted, or further writes to the "
                        "image may corrupt it.\n", r->corruptions);
        }
        if (r->leaks) {
            img_qprintf(quiet, "\n%d leaked clusters were found on the "
                        "image.\nThis means waste of disk space, but no "
                        "harm to data.\n", r->leaks);
        }
        if (r->check_errors) {
            img_qprintf(quiet, "\n%d internal errors have occurred during "
                        "the check.\n", r->check_errors);
        }
    }
    if (b->total_clusters && b->allocated_clusters) {
        img_qprintf(quiet, "%" PRIu64 "/%" PRIu64 " = %0.2f%% allocated, "
                    "%0.2f%% fragmented, %0.2f%% compressed clusters\n",
                    b->allocated_clusters, b->total_clusters,
                    b->allocated_clusters * 100.0 / b->total_clusters,
                    b->fragmented_clusters * 100.0 / b->allocated_clusters,
                    b->compressed_clusters * 100.0 / b->allocated_clusters);
    }
    if (r->image_end_offset) {
        img_qprintf(quiet, "Image end offset: %" PRId64 "\n",
                    r->image_end_offset);
    }
}

/*
 * Run the driver's check (repairing what fix asks for) into *r. Returns
 * -1 when the check completed, whatever it found, so that the caller
 * reports *r; otherwise the exit code of a check that could not run
 * (63: not supported, 1: failed), already reported.
 */
static int img_run_check(BlockDriverState *bs, BdrvCheckResult *r,
                         BdrvCheckMode fix)
{
    int ret;

    memset(r, 0, sizeof(*r));
    ret = bdrv_check(bs, r, fix);
    trace_img_check_result(bdrv_get_filename(bs), ret, r->corruptions,
                           r->leaks, r->check_errors);
    if (ret == -ENOTSUP) {
        error_report("This image format does not support checks");
        return 63;
    }
    if (ret < 0 || r->check_errors) {
        if (ret < 0) {
            error_report("Check failed: %s", g_strerror(-ret));
        } else {
            error_report("Check failed");
        }
        return 1;
    }
    return -1;
}

/*
 * check [--image-opts] [-q] [-f fmt] [--output=human|json] [-r leaks|all]
 *       [-T src_cache] [-U] file
 *
 * Exit codes: 0 clean, 1 check failed or could not run, 2 corruptions,
 * 3 leaks only, 63 format without a check. A repair (-r) is followed by
 * a second, read-only check whose result is what gets printed; the
 * repaired counts of the first pass are kept for the report.
 */
int img_check(int argc, char **argv)
{
    static const struct option check_opts[] = {
        { "repair", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 }
    };
    ImgOpts o = {
        .shortopts = ":hf:r:T:qU", .extra = check_opts,
        .longopts = IMG_LONG_INSPECT,
    };
    const char *filename;
    bool quiet;
    int flags = BDRV_O_CHECK, fix = 0, ret;
    int leaks_fixed = 0, corruptions_fixed = 0;
    BdrvCheckResult r;
    BdrvChild *child;

    /* The only option of its own is -r/--repair. */
    while (img_getopt(argc, argv, &o) != -1) {
        flags |= BDRV_O_RDWR;
        if (!strcmp(optarg, "leaks")) {
            fix = BDRV_FIX_LEAKS;
        } else if (!strcmp(optarg, "all")) {
            fix = BDRV_FIX_LEAKS | BDRV_FIX_ERRORS;
        } else {
            img_error_exit("Unknown option value for -r "
                           "(expecting 'leaks' or 'all'): %s", optarg);
        }
    }
    filename = img_one_filename(argc, argv);
    quiet = o.quiet;
    if (o.force_share && fix) {
        error_report("--force-share/-U is not allowed with -r");
        return EXIT_FAILURE;
    }
    if (!img_apply_cache(o.src_cache, true, &flags)) {
        return EXIT_FAILURE;
    }
    flags |= o.force_share ? BDRV_O_FORCE_SHARE : 0;
    child = img_open(filename, o.fmt, o.image_opts, flags, quiet);
    if (!child) {
        return EXIT_FAILURE;
    }
    ret = img_run_check(bdrv_child_bs(child), &r, fix);
    /* ret < 0 here means "check completed": go on to report it. */
    if (ret < 0 && (r.leaks_fixed || r.corruptions_fixed)) {
        leaks_fixed = r.leaks_fixed;
        corruptions_fixed = r.corruptions_fixed;
        if (o.ofmt == IMG_OUTPUT_HUMAN) {
            img_qprintf(quiet, "The following inconsistencies were found "
                        "and repaired:\n\n    %d leaked clusters\n    %d "
                        "corruptions\n\nDouble checking the fixed image "
                        "now...\n", leaks_fixed, corruptions_fixed);
            fflush(stdout);
        }
        ret = img_run_check(bdrv_child_bs(child), &r, 0);
    }
    if (ret < 0) {
        if (o.ofmt == IMG_OUTPUT_HUMAN) {
            img_check_human(&r, quiet);
        } else {
            JsonNode *n = img_check_json(
                filename, bdrv_get_format_name(bdrv_child_bs(child)), &r,
                leaks_fixed, corruptions_fixed);
            img_json_dump(n);
            json_node_unref(n);
        }
        ret = r.corruptions ? 2 : r.leaks ? 3 : 0;
    }
    img_close(child);
    return ret;
}

/* ------------------------------------------------------------------ */
/* map                                                                 */
/*
 * Extents come from bdrv_block_status_above() over the whole chain, in
 * requests of at most 1 GiB; equal neighbours are merged before printing
 * so the output does not depend on how the driver splits its answers.
 */

/* One line of map output: a range and how the chain provides it. */
typedef struct ImgMapEntry {
    int64_t start;
    int64_t length;
    int depth;                /* layer that answered, 0 = the image */
    bool present, zero, data, has_offset;
    int64_t offset;           /* host offset in filename, if has_offset */
    const char *filename;     /* valid while the image is open */
} ImgMapEntry;

/* qemu-img's rule for merging consecutive map entries. */
static bool img_map_mergeable(const ImgMapEntry *a, const ImgMapEntry *b)
{
    if (!a->length || a->zero != b->zero || a->data != b->data ||
        a->depth != b->depth || a->present != b->present ||
        a->has_offset != b->has_offset || !a->filename != !b->filename) {
        return false;
    }
    if (a->filename && strcmp(a->filename, b->filename)) {
        return false;
    }
    return !a->has_offset || a->offset + a->length == b->offset;
}

/* Print one entry; -1 (reported) when a data extent has no offset. */
static int img_map_dump(ImgOutputFormat ofmt, const ImgMapEntry *e,
                        bool first, bool last)
{
    if (ofmt == IMG_OUTPUT_JSON) {
        printf("%s{ \"start\": %" PRId64 ", \"length\": %" PRId64
               ", \"depth\": %d, \"present\": %s, \"zero\": %s, "
               "\"data\": %s", first ? "[" : "", e->start, e->length,
               e->depth, e->present ? "true" : "false",
               e->zero ? "true" : "false", e->data ? "true" : "false");
        if (e->has_offset) {
            printf(", \"offset\": %" PRId64, e->offset);
        }
        printf("}%s\n", last ? "]" : ",");
        return 0;
    }
    if (e->data && !e->has_offset) {
        error_report("File contains external, encrypted or compressed "
                     "clusters.");
        return -1;
    }
    if (e->data && !e->zero) {
        printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n",
               e->start, e->length, e->offset, e->filename);
    }
    return 0;
}

/*
 * Status of [offset, offset + bytes) across the chain as a map entry
 * (its length may be shorter). Unallocated ranges get the depth of the
 * bottom layer, as in qemu-img. 0 or -errno.
 */
static int img_map_status(BlockDriverState *bs, int chain_len, int64_t offset,
                          int64_t bytes, ImgMapEntry *e)
{
    BlockDriverState *file = NULL;
    int64_t pnum = 0, map = 0;
    int depth = 0;
    int ret = bdrv_block_status_above(bs, NULL, offset, bytes, &pnum, &map,
                                      &file, &depth);

    if (ret < 0) {
        return ret;
    }
    trace_img_map_extent(offset, pnum, depth, ret);
    *e = (ImgMapEntry) {
        .start = offset,
        .length = pnum,
        .depth = MIN(depth, chain_len - 1),
        .present = !!(ret & BDRV_BLOCK_ALLOCATED),
        .zero = !!(ret & BDRV_BLOCK_ZERO),
        .data = !!(ret & BDRV_BLOCK_DATA),
        .has_offset = !!(ret & BDRV_BLOCK_OFFSET_VALID),
        .offset = map,
        .filename = (ret & BDRV_BLOCK_OFFSET_VALID) && file
                    ? bdrv_get_filename(file) : NULL,
    };
    return 0;
}

/* Walk [start, end) printing merged entries; returns exit status. */
static int img_map_walk(BlockDriverState *bs, ImgOutputFormat ofmt,
                        int64_t start, int64_t end)
{
    ImgMapEntry curr = { .start = start }, next;
    int chain_len = bdrv_chain_length(bs);
    bool first = true;

    if (ofmt == IMG_OUTPUT_HUMAN) {
        printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to",
               "File");
    }
    /*
     * curr accumulates mergeable extents; it is printed when an extent
     * that cannot be merged arrives, and once more at the end (possibly
     * empty, which is how qemu-img reports a start beyond the end).
     */
    while (curr.start + curr.length < end) {
        int64_t off = curr.start + curr.length;
        int ret = img_map_status(bs, chain_len, off, MIN(GiB, end - off),
                                 &next);
        if (ret < 0) {
            error_report("Could not read file metadata: %s",
                         g_strerror(-ret));
            return EXIT_FAILURE;
        }
        if (img_map_mergeable(&curr, &next)) {
            curr.length += next.length;
            continue;
        }
        if (curr.length > 0) {
            if (img_map_dump(ofmt, &curr, first, false) < 0) {
                return EXIT_FAILURE;
            }
            first = false;
        }
        curr = next;
    }
    return img_map_dump(ofmt, &curr, first, true) < 0 ? EXIT_FAILURE
                                                      : EXIT_SUCCESS;
}

/*
 * Parse --start-offset or --max-length (what names it in the message)
 * into *out; false (reported in qemu-img's words) when it is not a size.
 */
static bool img_map_parse_offset(const char *arg, const char *what,
                                 int64_t *out)
{
    uint64_t v;

    if (parse_size(arg, &v) < 0 || v > INT64_MAX) {
        error_report("Invalid %s specified! You may use "
                     "k, M, G, T, P or E suffixes for ", what);
        error_report("kilobytes, megabytes, gigabytes, terabytes, "
                     "petabytes and exabytes.");
        return false;
    }
    *out = v;
    return true;
}

/*
 * map [--image-opts] [-f fmt] [--start-offset=N] [--max-length=N]
 *     [--output=human|json] [-U] file
 *
 * The image is opened with its whole backing chain: block status is
 * asked across the chain, and "depth" tells which layer answered.
 */
int img_map(int argc, char **argv)
{
    enum { OPT_START = IMG_OPT_BASE, OPT_MAX };
    static const struct option map_opts[] = {
        { "start-offset", required_argument, NULL, OPT_START },
        { "max-length", required_argument, NULL, OPT_MAX },
        { NULL, 0, NULL, 0 }
    };
    ImgOpts o = {
        .shortopts = ":f:hU", .extra = map_opts,
        .longopts = IMG_LONG_INSPECT,
    };
    const char *filename;
    int flags, c, ret;
    int64_t start = 0, max_len = -1, len;
    BdrvChild *child;

    while ((c = img_getopt(argc, argv, &o)) != -1) {
        bool is_start = c == OPT_START;
        if (!img_map_parse_offset(optarg, is_start ? "start offset"
                                                   : "max length",
                                  is_start ? &start : &max_len)) {
            return EXIT_FAILURE;
        }
    }
    filename = img_one_filename(argc, argv);
    flags = o.force_share ? BDRV_O_FORCE_SHARE : 0;
    child = img_open(filename, o.fmt, o.image_opts, flags, false);
    if (!child) {
        return EXIT_FAILURE;
    }
    len = bdrv_getlength(bdrv_child_bs(child));
    if (len < 0) {
        error_report("Failed to get size for '%s'", filename);
        img_close(child);
        return EXIT_FAILURE;
    }
    /* A start past the end prints one empty entry, like qemu-img. */
    if (max_len != -1) {
        len = MIN(len, start + max_len);
    }
    ret = img_map_walk(bdrv_child_bs(child), o.ofmt, start, len);
    img_close(child);
    return ret;
}

/* ------------------------------------------------------------------ */
/* compare                                                             */
/*
 * The common prefix is walked in chunks where both images give a stable
 * block status; chunks reading as zero in both are skipped, others are
 * read and compared byte-wise, and a difference is reported at its
 * 512-byte sector, as qemu-img does. The tail of the longer image must
 * read as zeroes.
 */

/* The two images being compared and one I/O buffer for each. */
typedef struct ImgCompare {
    BdrvChild *c[2];
    const char *name[2];    /* as given on the command line */
    bool quiet;
    uint8_t *buf[2];        /* IMG_IO_BUF_SIZE bytes each */
} ImgCompare;

/* Read bytes at offset of image i into its buffer; reports errors. */
static int img_compare_read(ImgCompare *s, int i, int64_t offset,
                            int64_t bytes)
{
    int ret = bdrv_pread(s->c[i], offset, bytes, s->buf[i], 0);

    if (ret < 0) {
        trace_img_io_error("read", s->name[i], offset, ret);
        error_report("Error while reading offset %" PRId64 " of %s: %s",
                     offset, s->name[i], g_strerror(-ret));
        return -1;
    }
    return 0;
}

/* Sector-aligned offset (relative to buf) of the first difference. */
static int64_t img_first_diff(const uint8_t *a, const uint8_t *b,
                              int64_t bytes)
{
    for (int64_t i = 0; i < bytes; i++) {
        if (a[i] != b[i]) {
            return QEMU_ALIGN_DOWN(i, BDRV_SECTOR_SIZE);
        }
    }
    return -1;
}

/* First non-zero sector offset in buf, or -1. */
static int64_t img_first_nonzero(const uint8_t *buf, int64_t bytes)
{
    for (int64_t i = 0; i < bytes; i += BDRV_SECTOR_SIZE) {
        if (!buffer_is_zero(buf + i, MIN(BDRV_SECTOR_SIZE, bytes - i))) {
            return i;
        }
    }
    return -1;
}

/*
 * Compare one chunk at offset; *pnum gets its length. Returns 0 equal,
 * 1 different (message printed), 2 error.
 */
static int img_compare_chunk(ImgCompare *s, int64_t offset, int64_t end,
                             bool strict, int64_t *pnum)
{
    int64_t n[2], bytes, diff;
    int st[2];

    for (int i = 0; i < 2; i++) {
        st[i] = bdrv_block_status_above(bdrv_child_bs(s->c[i]), NULL, offset,
                                        end - offset, &n[i], NULL, NULL,
                                        NULL);
        if (st[i] < 0) {
            error_report("Sector allocation test failed for %s", s->name[i]);
            return 2;
        }
    }
    /* The chunk where both answers hold, capped by the buffer size. */
    bytes = MIN(MIN(n[0], n[1]), IMG_IO_BUF_SIZE);
    *pnum = bytes;
    trace_img_compare_chunk(offset, bytes, st[0], st[1]);
    if (strict && (st[0] & ~BDRV_BLOCK_EOF) != (st[1] & ~BDRV_BLOCK_EOF)) {
        img_qprintf(s->quiet, "Strict mode: Offset %" PRId64
                    " block status mismatch!\n", offset);
        return 1;
    }
    /* Both read as zeroes: equal without reading a byte. */
    if ((st[0] & BDRV_BLOCK_ZERO) && (st[1] & BDRV_BLOCK_ZERO)) {
        return 0;
    }
    if (img_compare_read(s, 0, offset, bytes) < 0 ||
        img_compare_read(s, 1, offset, bytes) < 0) {
        return 2;
    }
    diff = img_first_diff(s->buf[0], s->buf[1], bytes);
    if (diff >= 0) {
        img_qprintf(s->quiet, "Content mismatch at offset %" PRId64 "!\n",
                    offset + diff);
        return 1;
    }
    return 0;
}

/* The tail [from, end) of the longer image i must read as zero. */
static int img_compare_tail(ImgCompare *s, int i, int64_t from, int64_t end)
{
    BlockDriverState *bs = bdrv_child_bs(s->c[i]);

    for (int64_t off = from; off < end;) {
        int64_t n, nz;
        int st = bdrv_block_status_above(bs, NULL, off, end - off, &n, NULL,
                                         NULL, NULL);
        if (st < 0) {
            error_report("Sector allocation test failed for %s", s->name[i]);
            return 2;
        }
        n = MIN(n, IMG_IO_BUF_SIZE);
        if (!(st & BDRV_BLOCK_ZERO)) {
            if (img_compare_read(s, i, off, n) < 0) {
                return 2;
            }
            nz = img_first_nonzero(s->buf[i], n);
            if (nz >= 0) {
                img_qprintf(s->quiet, "Content mismatch at offset %" PRId64
                            "!\n", off + nz);
                return 1;
            }
        }
        off += n;
        img_progress_print(100.0f * off / end);
    }
    return 0;
}

/* Compare the opened images; returns qemu-img compare's exit code. */
static int img_compare_run(ImgCompare *s, bool strict)
{
    int64_t len[2], min_len, off = 0, n = 0;
    int ret = 0;

    for (int i = 0; i < 2; i++) {
        len[i] = bdrv_getlength(bdrv_child_bs(s->c[i]));
        if (len[i] < 0) {
            error_report("Can't get size of %s: %s", s->name[i],
                         g_strerror(-len[i]));
            return 2;
        }
    }
    if (len[0] != len[1] && strict) {
        img_qprintf(s->quiet, "Strict mode: Image size mismatch!\n");
        return 1;
    }
    min_len = MIN(len[0], len[1]);
    while (off < min_len && ret == 0) {
        ret = img_compare_chunk(s, off, min_len, strict, &n);
        off += n;
        if (ret == 0) {
            img_progress_print(100.0f * off / MAX(len[0], len[1]));
        }
    }
    if (ret == 0 && len[0] != len[1]) {
        img_qprintf(s->quiet, "Warning: Image size mismatch!\n");
        ret = img_compare_tail(s, len[0] > len[1] ? 0 : 1, min_len,
                               MAX(len[0], len[1]));
    }
    if (ret == 0) {
        img_qprintf(s->quiet, "Images are identical.\n");
    }
    return ret;
}

/*
 * compare [--image-opts] [-f fmt] [-F fmt] [-T src_cache] [-p] [-q] [-s]
 *         [-U] file1 file2
 *
 * Exit codes: 0 identical, 1 different, 2 error (including failure to
 * open either image).
 */
int img_compare(int argc, char **argv)
{
    ImgOpts o = {
        .shortopts = ":hf:F:T:pqsU",
        .longopts = IMG_LONG_IMAGE_OPTS | IMG_LONG_FORCE_SHARE,
    };
    ImgCompare s = { .quiet = false };
    const char *fmt2 = NULL;
    bool strict = false;
    int flags, c, ret = 2;

    while ((c = img_getopt(argc, argv, &o)) != -1) {
        if (c == 'F') {
            fmt2 = optarg;
        } else {
            strict = true;      /* -s */
        }
    }
    s.quiet = o.quiet;
    if (optind != argc - 2) {
        img_error_exit("Expecting two image file names");
    }
    flags = o.force_share ? BDRV_O_FORCE_SHARE : 0;
    if (!img_apply_cache(o.src_cache, true, &flags)) {
        return 2;
    }
    s.name[0] = argv[optind];
    s.name[1] = argv[optind + 1];
    img_progress_init(o.progress, 2.0f);
    for (int i = 0; i < 2; i++) {
        s.c[i] = img_open(s.name[i], i ? fmt2 : o.fmt, o.image_opts, flags,
                          s.quiet);
        if (!s.c[i]) {
            goto out;
        }
        s.buf[i] = qemu_blockalign(IMG_IO_BUF_SIZE);
    }
    ret = img_compare_run(&s, strict);
out:
    for (int i = 0; i < 2; i++) {
        img_close(s.c[i]);
        qemu_vfree(s.buf[i]);
    }
    img_progress_end();
    return ret;
}
