/*
 * The block layer's public interface: open nodes, do I/O on them, ask
 * about their allocation, create images.
 *
 * Users above the block layer (tools, blockdev.c, later the NBD server and
 * jobs) include this header only; block_int.h is for drivers and the core.
 *
 * Two flavours of every I/O call:
 *  - bdrv_co_*(): coroutine_fn, the real implementation in block/io.c;
 *  - bdrv_*():    synchronous wrappers for code outside coroutines (tools,
 *                 tests); they run the coroutine version and drive the main
 *                 loop until it completes (block/block-gen.c).
 * Both return 0 (or a byte count where stated) on success, -errno on error.
 */
#ifndef BLOCK_BLOCK_H
#define BLOCK_BLOCK_H

#include "qemu/osdep.h"
#include "qemu/iov.h"
#include "qemu/qdict.h"
#include "qapi/error.h"

typedef struct BlockDriver BlockDriver;
typedef struct BlockDriverState BlockDriverState;
typedef struct BdrvChild BdrvChild;

/* ---- Open flags (BDRV_O_*) */
#define BDRV_O_RDWR        0x0002   /* open read-write (default read-only) */
#define BDRV_O_NOCACHE     0x0020   /* O_DIRECT: cache.direct=on */
#define BDRV_O_NO_FLUSH    0x0200   /* cache.no-flush=on: flush is a no-op */
#define BDRV_O_NO_BACKING  0x0100   /* do not open the backing chain */
#define BDRV_O_UNMAP       0x4000   /* discard=unmap: pass discards down */
#define BDRV_O_NO_IO       0x10000  /* metadata only; no data I/O will follow */
#define BDRV_O_CHECK       0x1000   /* opened for check: tolerate some damage */
#define BDRV_O_INACTIVE    0x0800   /* do not mark the image dirty */
#define BDRV_O_FORCE_SHARE 0x80000  /* -U: do not take locks */

/* ---- Request flags (BdrvRequestFlags) */
typedef enum {
    BDRV_REQ_NONE          = 0x0,
    BDRV_REQ_COPY_ON_READ  = 0x1,   /* populate the top image (issue 3) */
    BDRV_REQ_ZERO_WRITE    = 0x2,   /* write zeroes; qiov is NULL */
    BDRV_REQ_MAY_UNMAP     = 0x4,   /* zeroes may be written by unmapping */
    BDRV_REQ_FUA           = 0x10,  /* force unit access for this write */
    BDRV_REQ_NO_FALLBACK   = 0x100, /* fail with -ENOTSUP instead of writing
                                       explicit zero buffers */
    BDRV_REQ_PREFETCH      = 0x200, /* copy-on-read without returning data */
    /*
     * With COPY_ON_READ: ranges that read as zeroes must hide the backing
     * chain in the node even where the format cannot record a zero
     * cluster (then zero data is written). block-stream to a base needs
     * it: the backing link changes afterwards.
     */
    BDRV_REQ_COR_HIDE_BACKING = 0x400,
} BdrvRequestFlags;

/* ---- Block status flags (as QEMU's BDRV_BLOCK_*) */
#define BDRV_BLOCK_DATA         0x01  /* reads come from stored data */
#define BDRV_BLOCK_ZERO         0x02  /* reads return zeroes */
#define BDRV_BLOCK_OFFSET_VALID 0x04  /* *map is the offset in *file */
#define BDRV_BLOCK_RAW          0x08  /* (driver only) ask *file instead */
#define BDRV_BLOCK_ALLOCATED    0x10  /* this layer decides the content */
#define BDRV_BLOCK_EOF          0x20  /* the range reaches the end of file */
#define BDRV_BLOCK_RECURSE      0x40  /* (driver only) refine via *file */

typedef enum PreallocMode {
    PREALLOC_MODE_OFF,
    PREALLOC_MODE_METADATA,
    PREALLOC_MODE_FALLOC,
    PREALLOC_MODE_FULL,
} PreallocMode;

/* Parse "off|metadata|falloc|full"; -EINVAL if unknown. */
int prealloc_mode_parse(const char *str, PreallocMode *mode);
const char *prealloc_mode_str(PreallocMode mode);

/* What bdrv_get_info() returns (all optional; 0 means unknown). */
typedef struct BlockDriverInfo {
    int cluster_size;
    int64_t vm_state_offset;
    bool is_dirty;
} BlockDriverInfo;

/* ---- Consistency check (qemu-img check semantics). */
typedef enum BdrvCheckMode {
    BDRV_FIX_LEAKS  = 1,
    BDRV_FIX_ERRORS = 2,
} BdrvCheckMode;

typedef struct BlockFragInfo {
    uint64_t allocated_clusters;
    uint64_t total_clusters;
    uint64_t fragmented_clusters;
    uint64_t compressed_clusters;
} BlockFragInfo;

typedef struct BdrvCheckResult {
    int corruptions;
    int leaks;
    int check_errors;
    int corruptions_fixed;
    int leaks_fixed;
    int64_t image_end_offset;
    BlockFragInfo bfi;
} BdrvCheckResult;

/* ---- Driver registry */
/* Find a format or protocol driver by name ("qcow2", "raw", "file"). */
const BlockDriver *bdrv_find_format(const char *format_name);
/* Name of drv (its format_name). */
const char *bdrv_get_format_name(const BlockDriverState *bs);
/* Call f for every registered driver, for help texts. */
void bdrv_iterate_format(void (*f)(void *opaque, const char *name),
                         void *opaque);

/* ---- Opening and closing nodes */

/*
 * Open a node.
 *  filename: a plain file name or "json:{...}", or NULL if options say it
 *  options:  flat dict (consumed: the node takes ownership). "driver"
 *            selects the driver; missing driver means probe the format of
 *            the top image only (raw or qcow2), never of a backing file.
 *  flags:    BDRV_O_*.
 * The backing chain is opened as the header names it (unless
 * BDRV_O_NO_BACKING or "backing": null/"" in options), each backing file
 * with its recorded format; an unknown backing format is an error.
 * Options no driver consumed are an error ("Block format 'qcow2' does not
 * support the option 'foo'").
 */
BlockDriverState *bdrv_open(const char *filename, QDict *options, int flags,
                            Error **errp);
/* Open the backing chain of bs (no-op if bs has no backing file). */
int bdrv_open_backing_file(BlockDriverState *bs, QDict *backing_options,
                           Error **errp);
/* The node called node_name (user-given or "#blockN"), or NULL. */
BlockDriverState *bdrv_find_node(const char *node_name);
void bdrv_ref(BlockDriverState *bs);
/* Drop a reference; the last one flushes, closes and frees the node. */
void bdrv_unref(BlockDriverState *bs);

/* The node below bs in the chain (its backing image), or NULL. */
BlockDriverState *bdrv_backing_bs(const BlockDriverState *bs);
/* The node holding bs's data (its "file" child), or NULL. */
BlockDriverState *bdrv_file_bs(const BlockDriverState *bs);
/* The image node that bs filters (bs itself if it is no filter). */
BlockDriverState *bdrv_skip_filters(BlockDriverState *bs);
/* Depth of bs's backing chain including bs (1 for no backing file). */
int bdrv_chain_length(const BlockDriverState *bs);
/* Find a node named name (file name as opened or node name) in chain. */
BlockDriverState *bdrv_find_backing_image(BlockDriverState *bs,
                                          const char *name);
/*
 * Walking a chain through filters as well: the next node down from bs is
 * its backing node, or for a filter node (blkdebug, copy-on-read, ...)
 * the node it filters; NULL at the bottom.
 */
BlockDriverState *bdrv_chain_next(const BlockDriverState *bs);
/*
 * The largest BlockLimits.parallel_requests of bs and every node below
 * it (children and backing chain): how many requests a job or prefetch
 * reading through bs should keep in flight; 0 if no node asks for more.
 */
uint32_t bdrv_chain_parallel_hint(BlockDriverState *bs);
/* True if node is bs or below it in bs's chain. */
bool bdrv_chain_contains(const BlockDriverState *bs,
                         const BlockDriverState *node);
/* The lowest node of bs's chain (bs itself without a next node). */
BlockDriverState *bdrv_chain_bottom(BlockDriverState *bs);
/*
 * The node of bs's chain whose next node is node, or NULL if there is
 * none (node NULL: the bottom of the chain).
 */
BlockDriverState *bdrv_chain_above(BlockDriverState *bs,
                                   const BlockDriverState *node);

bool bdrv_is_read_only(const BlockDriverState *bs);
const char *bdrv_get_node_name(const BlockDriverState *bs);
/* The file name bs was opened from ("json:{...}" when there is none). */
const char *bdrv_get_filename(const BlockDriverState *bs);
/* The backing file name stored in bs's header ("" if none). */
const char *bdrv_get_backing_filename(const BlockDriverState *bs);
const char *bdrv_get_backing_format(const BlockDriverState *bs);
/*
 * The recorded format of bs's backing file, for opening it. Backing
 * formats are never probed: when the header records none, set errp
 * (saying how to record one) and return NULL.
 */
const char *bdrv_require_backing_format(BlockDriverState *bs, Error **errp);
/*
 * The backing file name resolved relative to bs's directory, as QEMU
 * does; NULL (with errp set) when it cannot be resolved.
 */
char *bdrv_get_full_backing_filename(BlockDriverState *bs, Error **errp);
/* Resolve a backing reference relative to the directory of base_path. */
char *bdrv_path_combine(const char *base_path, const char *filename);

/* Guest-visible size in bytes, or -errno. */
int64_t bdrv_getlength(BlockDriverState *bs);
/*
 * bdrv_getlength for control paths: -errno also sets errp ("Could not
 * get the length of 'node'").
 */
int64_t bdrv_getlength_err(BlockDriverState *bs, Error **errp);
/* Bytes the node occupies on the host (summing its file child), or -errno. */
int64_t bdrv_get_allocated_file_size(BlockDriverState *bs);
int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi);

/*
 * Driver-specific information for "info" (qemu-img's "format-specific"):
 * returns a JSON object text {"type": "qcow2", "data": {...}} or NULL when
 * the driver has none. g_free() the result.
 */
char *bdrv_get_specific_info_json(BlockDriverState *bs, Error **errp);

/* ---- Data path (coroutine versions) */
int coroutine_fn bdrv_co_preadv(BdrvChild *child, int64_t offset,
                                int64_t bytes, QEMUIOVector *qiov,
                                BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwritev(BdrvChild *child, int64_t offset,
                                 int64_t bytes, QEMUIOVector *qiov,
                                 BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite_zeroes(BdrvChild *child, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pdiscard(BdrvChild *child, int64_t offset,
                                  int64_t bytes);
int coroutine_fn bdrv_co_flush(BlockDriverState *bs);
int coroutine_fn bdrv_co_pread(BdrvChild *child, int64_t offset,
                               int64_t bytes, void *buf,
                               BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite(BdrvChild *child, int64_t offset,
                                int64_t bytes, const void *buf,
                                BdrvRequestFlags flags);
/* Write, and for full-range sync writes also flush. */
int coroutine_fn bdrv_co_pwrite_sync(BdrvChild *child, int64_t offset,
                                     int64_t bytes, const void *buf,
                                     BdrvRequestFlags flags);
int coroutine_fn bdrv_co_truncate(BdrvChild *child, int64_t offset,
                                  bool exact, PreallocMode prealloc,
                                  BdrvRequestFlags flags, Error **errp);
/*
 * Grow child's node to len bytes if it is shorter (never shrink; no
 * preallocation). 0 or -errno with errp set.
 */
int coroutine_fn bdrv_co_grow(BdrvChild *child, int64_t len, Error **errp);

/*
 * Allocation status of [offset, offset + bytes) of bs alone.
 * Returns BDRV_BLOCK_* flags (or -errno) for the first *pnum bytes
 * (*pnum > 0 unless offset is at or past the end). *map and *file (may be
 * NULL) receive the host offset and the node holding it when
 * BDRV_BLOCK_OFFSET_VALID is set. Extents are as large as the driver can
 * tell in one call; callers loop.
 */
int coroutine_fn bdrv_co_block_status(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum,
                                      int64_t *map, BlockDriverState **file);
/*
 * Status across the chain from bs down to (not including) base, where
 * base may be NULL for the whole chain. The result describes the first
 * layer that allocates the first byte ("ALLOCATED" set then). When no
 * layer does, the walk stops at the first layer known to read as zeroes
 * (no backing file, or the range lies beyond its backing file's end: ZERO
 * set, ALLOCATED clear) or at the last layer above base, and returns that
 * layer's status. *depth (may be NULL) gets the index of the layer whose
 * status is returned (0 = bs), as qemu-img map reports it.
 * *pnum is the longest prefix with the same answer from the same layer.
 */
int coroutine_fn bdrv_co_block_status_above(BlockDriverState *bs,
                                            BlockDriverState *base,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum, int64_t *map,
                                            BlockDriverState **file,
                                            int *depth);
/*
 * Like bdrv_is_allocated() of QEMU: 1 if the first *pnum bytes are
 * allocated in bs itself, 0 if not, -errno on error.
 */
int coroutine_fn bdrv_co_is_allocated(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum);
/* 1 if allocated in any layer from top down to (excluding) base. */
int coroutine_fn bdrv_co_is_allocated_above(BlockDriverState *top,
                                            BlockDriverState *base,
                                            bool include_base,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum);

/* ---- Copy-on-read and quiescing */

/*
 * Copy-on-read: while enabled (the count is nested), every read of bs
 * that the top image does not hold is fetched from the backing chain
 * into a bounce buffer, written into bs, then copied to the caller.
 * Equivalent to passing BDRV_REQ_COPY_ON_READ on every read.
 */
void bdrv_enable_copy_on_read(BlockDriverState *bs);
void bdrv_disable_copy_on_read(BlockDriverState *bs);

/*
 * Wait (running the main loop, or yielding in a coroutine) until bs, its
 * parents' requests on it and its children have no request in flight.
 * New requests are not blocked; callers that need quiescence across a
 * graph change use bdrv_drained_begin/end.
 */
void bdrv_drain(BlockDriverState *bs);
/* Drain, then keep new external requests on bs queued until _end. */
void bdrv_drained_begin(BlockDriverState *bs);
void bdrv_drained_end(BlockDriverState *bs);
/*
 * Park a request from a root child (a device, an export, a job) while a
 * drained section covers its node or a node below it; returns at once
 * when nothing is drained. Data requests do this themselves; a user that
 * looks up child's node first (flush, block status) calls it before.
 */
void coroutine_fn bdrv_co_wait_unquiesced(BdrvChild *child);
/* Drain every node. */
void bdrv_drain_all(void);

/* ---- Synchronous wrappers (outside coroutine context only) */
int bdrv_preadv(BdrvChild *child, int64_t offset, int64_t bytes,
                QEMUIOVector *qiov, BdrvRequestFlags flags);
int bdrv_pwritev(BdrvChild *child, int64_t offset, int64_t bytes,
                 QEMUIOVector *qiov, BdrvRequestFlags flags);
int bdrv_pread(BdrvChild *child, int64_t offset, int64_t bytes, void *buf,
               BdrvRequestFlags flags);
int bdrv_pwrite(BdrvChild *child, int64_t offset, int64_t bytes,
                const void *buf, BdrvRequestFlags flags);
int bdrv_pwrite_zeroes(BdrvChild *child, int64_t offset, int64_t bytes,
                       BdrvRequestFlags flags);
int bdrv_pdiscard(BdrvChild *child, int64_t offset, int64_t bytes);
int bdrv_flush(BlockDriverState *bs);
int bdrv_truncate(BdrvChild *child, int64_t offset, bool exact,
                  PreallocMode prealloc, BdrvRequestFlags flags, Error **errp);
int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file);
int bdrv_block_status_above(BlockDriverState *bs, BlockDriverState *base,
                            int64_t offset, int64_t bytes, int64_t *pnum,
                            int64_t *map, BlockDriverState **file,
                            int *depth);
int bdrv_is_allocated_above(BlockDriverState *top, BlockDriverState *base,
                            bool include_base, int64_t offset, int64_t bytes,
                            int64_t *pnum);

/*
 * The "root" child handle of a node, for users that are not a node
 * themselves (tools, the NBD server): I/O is issued through a BdrvChild so
 * the core knows who asks. Created by bdrv_root_attach, freed by
 * bdrv_root_unref_child (which also drops the node reference).
 * bdrv_root_attach takes its own reference to bs: the caller still owns the
 * reference it had (e.g. from bdrv_open) and drops it with bdrv_unref().
 */
BdrvChild *bdrv_root_attach(BlockDriverState *bs, const char *name,
                            Error **errp);
void bdrv_root_unref_child(BdrvChild *child);
BlockDriverState *bdrv_child_bs(BdrvChild *child);

/* ---- Image maintenance */

/* Check (and with fix, repair) the image. -ENOTSUP if unsupported. */
int bdrv_check(BlockDriverState *bs, BdrvCheckResult *res, BdrvCheckMode fix);
/* Make bs read as its backing file (drop all allocations). */
int bdrv_make_empty(BlockDriverState *bs, Error **errp);
/*
 * Rewrite the backing file name/format in bs's header (crash-safely).
 * NULL backing_file removes the backing file reference.
 */
int bdrv_change_backing_file(BlockDriverState *bs, const char *backing_file,
                             const char *backing_fmt, Error **errp);
/*
 * Switch bs between read-only and read-write, atomically: the protocol
 * node below is reopened with the new mode first (e.g. the file opened
 * O_RDWR), then the format driver adapts (qcow2: flush caches before
 * becoming read-only, repair/mark dirty rules as on open); if any step
 * fails everything is back as it was and errp says why ("Could not
 * reopen 'FILE': Permission denied"). No-op when already in that mode.
 * Callers drain bs around it.
 */
int bdrv_reopen_set_read_only(BlockDriverState *bs, bool read_only,
                              Error **errp);
/* Make new_backing the backing node of bs in the graph (no header change). */
int bdrv_set_backing_hd(BlockDriverState *bs,
                        BlockDriverState *new_backing, Error **errp);

/*
 * Graph changes (main loop thread; callers in coroutine context yield
 * while draining). Both check everything first and leave the graph as it
 * was when they fail.
 *
 * bdrv_replace_node: every parent of from (nodes and root users such as
 * drives and exports) is moved onto to, except to's own backing child
 * and pinned children (monitor ownership). Fails, changing nothing, when
 * a move would make a node its own descendant.
 *
 * bdrv_append: bs becomes overlay's backing node, then every former
 * parent of bs points at overlay (a live snapshot). overlay must have no
 * backing node and a driver that supports one. Both nodes are in a
 * drained section across the switch, so no request sees half of it.
 */
int bdrv_replace_node(BlockDriverState *from, BlockDriverState *to,
                      Error **errp);
int bdrv_append(BlockDriverState *overlay, BlockDriverState *bs,
                Error **errp);
/*
 * Parents of bs other than pinned ones: node parents (bs is a child of
 * another node) and root users (drives, exports, jobs). Either pointer
 * may be NULL.
 */
void bdrv_count_parents(BlockDriverState *bs, int *node_parents,
                        int *root_parents);
/*
 * A node that is some node's backing image is busy for operations that
 * would change or remove it (snapshot, blockdev-del): false with errp
 * set to QEMU's "Node 'X' is busy: node is used as backing hd of 'Y'".
 */
bool bdrv_check_not_backing(BlockDriverState *bs, Error **errp);

/*
 * Op blockers: while a block job holds a node it registers a reason
 * ("block device is in use by block job: stream"); conflicting
 * operations (another job, blockdev-del, snapshots) ask
 * bdrv_op_is_blocked, which sets errp to QEMU's "Node 'X' is busy:
 * REASON" (newest reason) and returns true. reason stays owned by the
 * caller and must outlive the block.
 */
void bdrv_op_block_all(BlockDriverState *bs, Error *reason);
void bdrv_op_unblock_all(BlockDriverState *bs, Error *reason);
bool bdrv_op_is_blocked(BlockDriverState *bs, Error **errp);
/*
 * The name users know bs by: its drive (device) name if it is a drive's
 * node, else its node name. The daemon's drive lookup is installed with
 * bdrv_set_device_name_fn (NULL result or no hook: the node name).
 */
const char *bdrv_get_device_or_node_name(BlockDriverState *bs);
void bdrv_set_device_name_fn(const char *(*fn)(BlockDriverState *bs));

/*
 * Create an image file with driver drv ("qcow2", "raw", "file").
 * opts holds the creation options as strings: "size" (bytes, suffixes
 * allowed), "backing_file", "backing_fmt", "cluster_size", "compat",
 * "lazy_refcounts", "preallocation", "refcount_bits", ... exactly as
 * qemu-img's -o names them. Unknown options are an error.
 */
int bdrv_create(const BlockDriver *drv, const char *filename, QDict *opts,
                Error **errp);
/* Create a protocol-level file (the "file" driver). */
int bdrv_create_file(const char *filename, QDict *opts, Error **errp);

/*
 * Probe the format of an image from its first bytes ("qcow2" or "raw").
 * Only ever used for the top image named by a user; never for a backing
 * file.
 */
const char *bdrv_probe_format(const char *filename, Error **errp);

/* Registered drivers are listed here once (block/block.c). */
void bdrv_init(void);

/*
 * I/O error details (block/io-error.c). Data-path callers only see
 * -errno; a driver that knows more (the URL or server that failed, the
 * HTTP status) notes it on its node, and whoever reports the failure to
 * a user (a block job's error, a tool) adds it to the errno text, so a
 * user never sees a bare "Input/output error".
 */
/* Record fmt... as bs's latest I/O failure detail (replaces the old). */
void bdrv_note_io_error(BlockDriverState *bs, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);
/* The sequence number the next note will exceed (take it at a start). */
uint64_t bdrv_io_error_seq(void);
/*
 * The most recent detail noted after seq on bs or any node below it
 * (children, backing chain), or NULL. Valid until the next note or
 * until that node goes away.
 */
const char *bdrv_find_io_error_detail(BlockDriverState *bs, uint64_t seq);
/*
 * A user-facing message for failure ret: g_strerror(-ret), followed by
 * " (detail)" when bs's subtree noted one after seq. g_free() it.
 */
char *bdrv_io_error_message(BlockDriverState *bs, int ret, uint64_t seq);

/*
 * The protocols through which a backing name found in an image header
 * may be opened (block/backing-policy.c): a comma-separated list of
 * protocol driver names ("file", "host_device", "nbd", "http", "https")
 * and "json" (json:{...} names), or "all". The default is "file".
 * Backing files the user names in options are not subject to it.
 */
bool bdrv_set_backing_protocols(const char *list, Error **errp);
/* The current list, as "file,nbd" (for messages and help). */
const char *bdrv_get_backing_protocols(void);

#endif /* BLOCK_BLOCK_H */
