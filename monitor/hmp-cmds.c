/*
 * The HMP command handlers: each reads its already-parsed arguments from
 * the QDict, calls the QMP handler that does the work, and prints the
 * result in QEMU's human form ("Error: <desc>" on failure). No block
 * layer logic lives here; HMP can therefore never do something QMP
 * cannot, and both report the same errors.
 *
 * Handlers run in coroutine context on the main loop (hmp.c), like QMP
 * commands, so the QMP handlers they call may wait.
 */
#include "qemu/osdep.h"
#include "monitor/hmp-internal.h"
#include <json-glib/json-glib.h>
#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"
#include "qemu/job-progress.h"
#include "block/commit.h"
#include "sysemu/blockdev.h"

/* Human-readable size with three significant digits ("64 MiB"). */
static char *hmp_size_to_str(uint64_t val)
{
    static const char *const units[] = {
        "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"
    };
    double d = val;
    size_t i = 0;

    while (i < ARRAY_SIZE(units) - 1 && d >= 1000.0) {
        d /= 1024.0;
        i++;
    }
    return g_strdup_printf("%0.3g %s", d, units[i]);
}

/* ------------------------------------------------------------------ */
/* info version, info status, quit                                     */

/* info version: query-version as "MAJOR.MINOR.MICRO (PACKAGE)". */
void hmp_info_version(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;
    g_autoptr(VersionInfo) info = qmp_query_version(&err);

    if (!info) {
        hmp_handle_error(mon, err);
        return;
    }
    /* "7.2.0 (qblk 0.1.0)": the interface level, then who serves it. */
    monitor_printf(mon, "%" PRId64 ".%" PRId64 ".%" PRId64 "%s%s%s\n",
                   info->qemu->major, info->qemu->minor, info->qemu->micro,
                   *info->package ? " (" : "", info->package,
                   *info->package ? ")" : "");
}

/* info status: query-status as "VM status: STATE". */
void hmp_info_status(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;
    g_autoptr(StatusInfo) info = qmp_query_status(&err);

    if (!info) {
        hmp_handle_error(mon, err);
        return;
    }
    monitor_printf(mon, "VM status: %s%s\n",
                   info->running ? "running" : RunState_str(info->status),
                   info->singlestep ? " (single step mode)" : "");
}

/*
 * quit: the QMP quit request (SHUTDOWN event, then the main loop stops);
 * prints nothing, like QEMU.
 */
void hmp_quit(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;

    qmp_quit(&err);
    hmp_handle_error(mon, err);
}

/* ------------------------------------------------------------------ */
/* snapshot_blkdev                                                     */

/*
 * snapshot_blkdev [-n] device [file] [format]: blockdev-snapshot-sync on
 * the drive; -n reuses an existing file (mode existing), the format
 * defaults to qcow2.
 */
void hmp_snapshot_blkdev(Monitor *mon, const QDict *qdict)
{
    const char *device = qdict_get_try_str(qdict, "device");
    const char *file = qdict_get_try_str(qdict, "snapshot-file");
    const char *format = qdict_get_try_str(qdict, "format");
    bool reuse = false;
    Error *err = NULL;

    qdict_get_bool(qdict, "reuse", false, &reuse, NULL);
    if (!file) {
        /* QEMU reserves the one-argument form for internal snapshots. */
        error_setg(&err, "Parameter 'snapshot-file' is missing");
        hmp_handle_error(mon, err);
        return;
    }
    qmp_blockdev_snapshot_sync(device, NULL, file, NULL,
                               format ? format : "qcow2", true,
                               reuse ? NEW_IMAGE_MODE_EXISTING
                                     : NEW_IMAGE_MODE_ABSOLUTE_PATHS,
                               &err);
    hmp_handle_error(mon, err);
}

/* ------------------------------------------------------------------ */
/* info block                                                          */

/* Print a format-specific JSON tree as "key: value" lines, indented. */
static void hmp_dump_tree(Monitor *mon, JsonNode *node, int indent)
{
    JsonObject *obj;
    g_autoptr(GList) members = NULL;

    if (!JSON_NODE_HOLDS_OBJECT(node)) {
        return;
    }
    obj = json_node_get_object(node);
    members = json_object_get_members(obj);
    for (GList *l = members; l; l = l->next) {
        JsonNode *v = json_object_get_member(obj, l->data);
        g_autofree char *key = g_strdelimit(g_strdup(l->data), "-", ' ');

        /* Nested objects become indented blocks under "key:". */
        if (JSON_NODE_HOLDS_OBJECT(v)) {
            monitor_printf(mon, "%*s%s:\n", indent * 4, "", key);
            hmp_dump_tree(mon, v, indent + 1);
        } else if (JSON_NODE_HOLDS_VALUE(v)) {
            GType t = json_node_get_value_type(v);
            g_autofree char *s =
                t == G_TYPE_STRING ? g_strdup(json_node_get_string(v)) :
                t == G_TYPE_BOOLEAN ?
                    g_strdup(json_node_get_boolean(v) ? "true" : "false") :
                t == G_TYPE_INT64 ?
                    g_strdup_printf("%" PRId64, json_node_get_int(v)) :
                    g_strdup_printf("%g", json_node_get_double(v));
            monitor_printf(mon, "%*s%s: %s\n", indent * 4, "", key, s);
        }
    }
}

/* One image's description, in the style of qemu-img info. */
static void hmp_dump_image(Monitor *mon, const ImageInfo *img)
{
    g_autofree char *vsize = hmp_size_to_str(img->virtual_size);

    monitor_printf(mon, "image: %s\nfile format: %s\n"
                   "virtual size: %s (%" PRId64 " bytes)\n",
                   img->filename, img->format, vsize, img->virtual_size);
    if (img->has_actual_size) {
        g_autofree char *dsize = hmp_size_to_str(img->actual_size);
        monitor_printf(mon, "disk size: %s\n", dsize);
    } else {
        monitor_printf(mon, "disk size: unavailable\n");
    }
    if (img->has_cluster_size) {
        monitor_printf(mon, "cluster_size: %" PRId64 "\n", img->cluster_size);
    }
    if (img->backing_filename) {
        monitor_printf(mon, "backing file: %s", img->backing_filename);
        if (img->full_backing_filename &&
            strcmp(img->backing_filename, img->full_backing_filename)) {
            monitor_printf(mon, " (actual path: %s)",
                           img->full_backing_filename);
        }
        monitor_printf(mon, "\n");
    }
    if (img->backing_filename_format) {
        monitor_printf(mon, "backing file format: %s\n",
                       img->backing_filename_format);
    }
    if (img->has_dirty_flag && img->dirty_flag) {
        monitor_printf(mon, "cleanly shut down: no\n");
    }
    if (img->format_specific && img->format_specific->data) {
        JsonNode *spec =
            qapi_ImageInfoSpecificQCow2_to_json(img->format_specific->data);
        monitor_printf(mon, "Format specific information:\n");
        hmp_dump_tree(mon, spec, 1);
        json_node_unref(spec);
    }
}

/*
 * One drive (info != NULL) or one node (info == NULL) in QEMU's
 * "info block" form; verbose adds the image chain.
 */
static void hmp_print_block_info(Monitor *mon, const BlockInfo *info,
                                 const BlockDeviceInfo *ins, bool verbose)
{
    /* "<drive> (<node>)" for a drive, just "<node>" for a node. */
    if (info) {
        monitor_puts(mon, info->device);
        if (ins && ins->node_name) {
            monitor_printf(mon, " (%s)", ins->node_name);
        }
    } else {
        monitor_puts(mon, ins->node_name ? ins->node_name : "<anonymous>");
    }
    if (!ins) {
        monitor_printf(mon, ": [not inserted]\n");
    } else {
        monitor_printf(mon, ": %s (%s%s%s)\n", ins->file, ins->drv,
                       ins->ro ? ", read-only" : "",
                       ins->encrypted ? ", encrypted" : "");
    }
    /* qblk's drives are never removable, so this line stays silent. */
    if (info && info->removable) {
        monitor_printf(mon, "    Removable device: %slocked, tray closed\n",
                       info->locked ? "" : "not ");
    }
    if (!ins) {
        return;
    }
    monitor_printf(mon, "    Cache mode:       %s%s%s\n",
                   ins->cache->writeback ? "writeback" : "writethrough",
                   ins->cache->direct ? ", direct" : "",
                   ins->cache->no_flush ? ", ignore flushes" : "");
    if (ins->backing_file) {
        monitor_printf(mon, "    Backing file:     %s (chain depth: %" PRId64
                       ")\n", ins->backing_file, ins->backing_file_depth);
    }
    if (ins->detect_zeroes != BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF) {
        monitor_printf(mon, "    Detect zeroes:    %s\n",
                       BlockdevDetectZeroesOptions_str(ins->detect_zeroes));
    }
    /* -v: the top image, then each backing image down the chain. */
    if (verbose) {
        monitor_printf(mon, "\nImages:\n");
        for (const ImageInfo *img = ins->image; img;
             img = img->backing_image) {
            hmp_dump_image(mon, img);
        }
    }
}

/* info block -n: every named node, optionally only the one called device. */
static void hmp_info_block_nodes(Monitor *mon, const char *device,
                                 bool verbose)
{
    Error *err = NULL;
    BlockDeviceInfoList *list, *l;
    bool first = true;

    list = qmp_query_named_block_nodes(true, !verbose, &err);
    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    for (l = list; l; l = l->next) {
        if (device && g_strcmp0(device, l->value->node_name)) {
            continue;
        }
        if (!first) {
            monitor_printf(mon, "\n");
        }
        first = false;
        hmp_print_block_info(mon, NULL, l->value, verbose);
    }
    qapi_free_BlockDeviceInfoList(list);
}

/*
 * info block [-n] [-v] [device]: the drives from query-block (or with -n
 * the nodes from query-named-block-nodes), separated by blank lines.
 */
void hmp_info_block(Monitor *mon, const QDict *qdict)
{
    const char *device = qdict_get_try_str(qdict, "device");
    bool nodes = false, verbose = false, first = true;
    Error *err = NULL;
    BlockInfoList *list, *l;

    qdict_get_bool(qdict, "nodes", false, &nodes, NULL);
    qdict_get_bool(qdict, "verbose", false, &verbose, NULL);
    if (nodes) {
        hmp_info_block_nodes(mon, device, verbose);
        return;
    }
    list = qmp_query_block(&err);
    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    for (l = list; l; l = l->next) {
        if (device && strcmp(device, l->value->device)) {
            continue;
        }
        if (!first) {
            monitor_printf(mon, "\n");
        }
        first = false;
        hmp_print_block_info(mon, l->value, l->value->inserted, verbose);
    }
    qapi_free_BlockInfoList(list);
}

/* ------------------------------------------------------------------ */
/* Block jobs                                                          */

/* An 'o' (size) argument as a QMP speed; absent counts as 0. */
static int64_t hmp_get_speed(const QDict *qdict, const char *key)
{
    uint64_t speed = 0;

    qdict_get_uint(qdict, key, 0, &speed, NULL);
    return (int64_t)speed;
}

/*
 * block_stream device [speed [base]]: block-stream with the job named
 * after the device, base given as a file name, on-error report.
 */
void hmp_block_stream(Monitor *mon, const QDict *qdict)
{
    BlockStreamArgs args = {
        .job_id = (char *)qdict_get_try_str(qdict, "device"),
        .device = (char *)qdict_get_try_str(qdict, "device"),
        .base = (char *)qdict_get_try_str(qdict, "base"),
        .has_speed = qdict_haskey(qdict, "speed"),
        .speed = hmp_get_speed(qdict, "speed"),
        .has_on_error = true,
        .on_error = BLOCKDEV_ON_ERROR_REPORT,
    };
    Error *err = NULL;

    qmp_block_stream(&args, &err);
    hmp_handle_error(mon, err);
}

/* block_job_set_speed device speed: block-job-set-speed. */
void hmp_block_job_set_speed(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;

    qmp_block_job_set_speed(qdict_get_try_str(qdict, "device"),
                            hmp_get_speed(qdict, "speed"), &err);
    hmp_handle_error(mon, err);
}

/* block_job_cancel [-f] device: block-job-cancel, force with -f. */
void hmp_block_job_cancel(Monitor *mon, const QDict *qdict)
{
    bool force = false;
    Error *err = NULL;

    qdict_get_bool(qdict, "force", false, &force, NULL);
    qmp_block_job_cancel(qdict_get_try_str(qdict, "device"), true, force,
                         &err);
    hmp_handle_error(mon, err);
}

/* block_job_pause device: block-job-pause. */
void hmp_block_job_pause(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;

    qmp_block_job_pause(qdict_get_try_str(qdict, "device"), &err);
    hmp_handle_error(mon, err);
}

/* block_job_resume device: block-job-resume. */
void hmp_block_job_resume(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;

    qmp_block_job_resume(qdict_get_try_str(qdict, "device"), &err);
    hmp_handle_error(mon, err);
}

/* block_job_complete device: block-job-complete. */
void hmp_block_job_complete(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;

    qmp_block_job_complete(qdict_get_try_str(qdict, "device"), &err);
    hmp_handle_error(mon, err);
}

/*
 * info block-jobs: one line per job from query-block-jobs (concluded
 * jobs not yet dismissed included), or "No active jobs".
 */
void hmp_info_block_jobs(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;
    g_autoptr(BlockJobInfoList) list = qmp_query_block_jobs(&err);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    if (!list) {
        monitor_printf(mon, "No active jobs\n");
        return;
    }
    for (BlockJobInfoList *l = list; l; l = l->next) {
        g_autofree char *line =
            job_progress_hmp_line(l->value->type, l->value->device,
                                  l->value->offset, l->value->len,
                                  l->value->speed);
        monitor_printf(mon, "%s\n", line);
    }
}

/* ------------------------------------------------------------------ */
/* commit (helper "commit", issue 6)                                   */

/* The drives (id, top node) for commit, in creation order. */
typedef struct HmpCommitDrives {
    GPtrArray *ids;
    GPtrArray *nodes;
} HmpCommitDrives;

static void hmp_commit_drive_cb(const char *id, BlockDriverState *bs,
                                void *opaque)
{
    HmpCommitDrives *d = opaque;

    g_ptr_array_add(d->ids, g_strdup(id));
    g_ptr_array_add(d->nodes, bs);
}

/*
 * commit device|all: QEMU's synchronous commit (no QMP equivalent, so
 * the work is block/commit.c's commit_sync). A device is a drive id or
 * a node name; "all" is every drive with a backing file, stopping at the
 * first failure. QEMU's texts, without an "Error: " prefix.
 */
void hmp_commit(Monitor *mon, const QDict *qdict)
{
    const char *device = qdict_get_try_str(qdict, "device");
    HmpCommitDrives d = {
        g_ptr_array_new_with_free_func(g_free), g_ptr_array_new(),
    };
    BlockDriverState *bs = NULL;
    int ret = 0;

    blockdev_foreach_drive(hmp_commit_drive_cb, &d);
    if (!strcmp(device, "all")) {
        for (guint i = 0; i < d.nodes->len && ret == 0; i++) {
            bs = d.nodes->pdata[i];
            if (bdrv_backing_bs(bs)) {
                ret = commit_sync(bs);
            }
        }
    } else {
        for (guint i = 0; i < d.ids->len && !bs; i++) {
            if (!strcmp(d.ids->pdata[i], device)) {
                bs = d.nodes->pdata[i];
            }
        }
        bs = bs ? bs : blockdev_find_bs(device);
        if (!bs) {
            monitor_printf(mon, "Device '%s' not found\n", device);
        } else {
            ret = commit_sync(bs);
        }
    }
    if (ret < 0) {
        monitor_printf(mon, "'commit' error for '%s': %s\n", device,
                       g_strerror(-ret));
    }
    g_ptr_array_free(d.ids, true);
    g_ptr_array_free(d.nodes, true);
}
