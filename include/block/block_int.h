/*
 * Block layer internals: the BlockDriver interface and the node.
 *
 * For drivers (block/<driver>.c) and the core (block/block.c, block/io.c).
 *
 * A driver is one const BlockDriver listed in block/block.c's driver
 * table. The core (block/io.c) is the only caller of the bdrv_co_*
 * callbacks, and guarantees for every data call:
 *  - offset and bytes are multiples of bs->bl.request_alignment;
 *  - offset + bytes <= the node's length (except for truncate);
 *  - bytes <= bs->bl.max_transfer when that is non-zero;
 *  - writes only reach nodes opened read-write;
 *  - flags contain only bits the driver advertises in
 *    supported_write_flags / supported_zero_flags (others are emulated).
 * Callbacks marked optional may be NULL; the core then emulates them or
 * returns -ENOTSUP.
 */
#ifndef BLOCK_BLOCK_INT_H
#define BLOCK_BLOCK_INT_H

#include "block/block.h"
#include "qemu/coroutine.h"

typedef struct BdrvTrackedRequest BdrvTrackedRequest;

/* Sequential readers tracked per node by copy-on-read prefetch. */
#define BDRV_COR_STREAMS 4

/* One sequential reader seen by copy-on-read (block/io-cor-prefetch.c). */
typedef struct BdrvCorStream {
    bool live;          /* a reader was seen; next is meaningful */
    int64_t next;       /* where its next read would start */
    int64_t window;     /* bytes prefetched ahead of it; 0: none yet */
    int64_t pf_end;     /* prefetched (or in flight) up to here */
} BdrvCorStream;

/* Limits a node advertises to the core (filled by bdrv_refresh_limits). */
typedef struct BlockLimits {
    uint32_t request_alignment;   /* bytes; 1 for byte-granular drivers */
    int64_t max_transfer;         /* bytes per request; 0 = unlimited */
    int64_t opt_transfer;         /* preferred request size; 0 = none */
    uint32_t min_mem_alignment;   /* buffer alignment needed (O_DIRECT) */
    uint32_t opt_mem_alignment;
    int64_t pwrite_zeroes_alignment; /* 0 = request_alignment */
    int64_t max_pwrite_zeroes;    /* 0 = unlimited */
    int64_t pdiscard_alignment;   /* 0 = request_alignment */
    int64_t max_pdiscard;         /* 0 = unlimited */
    /*
     * Requests in flight this node serves well at once: protocol drivers
     * of remote servers (NBD, HTTP) set it so that jobs and prefetch
     * keep enough data in flight to hide the round trip; 0 = no
     * preference (local storage). Read with bdrv_chain_parallel_hint().
     */
    uint32_t parallel_requests;
} BlockLimits;

/* The role a child plays for its parent. */
typedef enum BdrvChildRole {
    BDRV_CHILD_FILE    = 0x1,   /* holds the parent's data and metadata */
    BDRV_CHILD_BACKING = 0x2,   /* the backing image (COW source) */
    BDRV_CHILD_FILTERED = 0x4,  /* filter child: I/O passes through */
    BDRV_CHILD_ROOT    = 0x8,   /* a user that is not a node (tool, export) */
} BdrvChildRole;

struct BdrvChild {
    BlockDriverState *bs;      /* the child node */
    BlockDriverState *parent;  /* NULL for a root child */
    char *name;                /* "file", "backing", or the root's name */
    unsigned role;             /* BdrvChildRole bits */
    /*
     * Stays on its node when bdrv_replace_node() moves the node's parents
     * elsewhere: the monitor's ownership reference of a --blockdev /
     * blockdev-add node names that node, not "whatever sits on top".
     */
    bool pinned;
};

struct BlockDriver {
    /* Driver name as users write it ("qcow2", "raw", "file"). */
    const char *format_name;
    /* Bytes of per-node state allocated as bs->opaque before open. */
    int instance_size;
    /* True for protocol drivers (they take a filename, not a file child). */
    bool protocol;
    /* True for filter drivers (copy-on-read, blkdebug): one child, pass-through. */
    bool is_filter;
    /* True when the format records a backing file in its metadata. */
    bool supports_backing;

    /*
     * Score how likely buf (the first buf_size bytes, at least 512 unless
     * the file is shorter) is this format; 0 = not. Format drivers only.
     */
    int (*bdrv_probe)(const uint8_t *buf, int buf_size, const char *filename);

    /*
     * Parse a protocol filename ("nbd://...") into options. Optional;
     * without it a plain name becomes option "filename".
     */
    void (*bdrv_parse_filename)(const char *filename, QDict *options,
                                Error **errp);

    /*
     * Open the node. The driver removes every option it uses from
     * options; a format driver opens its "file" child with
     * bdrv_open_child(bs, options, "file", ...). bs->opaque is zeroed.
     * Must fill bs->backing_file / bs->backing_format from the header
     * when the image names a backing file (the core opens it later).
     * Returns 0 or -errno with errp set.
     */
    int (*bdrv_open)(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp);
    /* Release driver state; children are dropped by the core afterwards. */
    void (*bdrv_close)(BlockDriverState *bs);
    /* Fill bs->bl. Optional: the core merges children's limits first. */
    void (*bdrv_refresh_limits)(BlockDriverState *bs, Error **errp);

    /* Data path; see the guarantees in the header comment. */
    int coroutine_fn (*bdrv_co_preadv)(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags);
    int coroutine_fn (*bdrv_co_pwritev)(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, QEMUIOVector *qiov,
                                        BdrvRequestFlags flags);
    /* Optional: without it the core writes a zeroed buffer. */
    int coroutine_fn (*bdrv_co_pwrite_zeroes)(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              BdrvRequestFlags flags);
    /* Optional: without it discard is a successful no-op. */
    int coroutine_fn (*bdrv_co_pdiscard)(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes);
    /*
     * Flush this node's own caches/metadata down to its children
     * (format drivers), or to stable storage (protocol drivers: fdatasync).
     * The core flushes children after bdrv_co_flush_to_os.
     */
    int coroutine_fn (*bdrv_co_flush_to_os)(BlockDriverState *bs);
    int coroutine_fn (*bdrv_co_flush_to_disk)(BlockDriverState *bs);
    /*
     * Allocation status of [offset, offset + bytes) (both aligned); see
     * bdrv_co_block_status(). May return BDRV_BLOCK_RAW/RECURSE with
     * *file = child node and *map = offset there to delegate/refine.
     * want_zero: the caller wants zero detection precisely, not just
     * allocation.
     */
    int coroutine_fn (*bdrv_co_block_status)(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file);
    int coroutine_fn (*bdrv_co_truncate)(BlockDriverState *bs, int64_t offset,
                                         bool exact, PreallocMode prealloc,
                                         BdrvRequestFlags flags, Error **errp);
    /* Guest-visible length; optional for formats that set total_bytes. */
    int64_t (*bdrv_getlength)(BlockDriverState *bs);
    /* Host bytes used; optional (the core sums the file child). */
    int64_t (*bdrv_get_allocated_file_size)(BlockDriverState *bs);
    int (*bdrv_get_info)(BlockDriverState *bs, BlockDriverInfo *bdi);
    /* JSON {"type": NAME, "data": {...}} for qemu-img info; optional. */
    char *(*bdrv_get_specific_info_json)(BlockDriverState *bs, Error **errp);
    int (*bdrv_check)(BlockDriverState *bs, BdrvCheckResult *result,
                      BdrvCheckMode fix);
    int (*bdrv_make_empty)(BlockDriverState *bs);
    /* Rewrite backing file name/format in the header, crash-safely. */
    int (*bdrv_change_backing_file)(BlockDriverState *bs,
                                    const char *backing_file,
                                    const char *backing_fmt);

    /*
     * Create an image at filename from string options (see
     * bdrv_create()). The driver consumes the options it knows; leftover
     * options are reported by the core. Formats create their file with
     * bdrv_create_file() and then open it to write metadata.
     */
    int (*bdrv_create)(const char *filename, QDict *opts, Error **errp);
    /* Names of the creation options, for help text ("size", ...). */
    const char *const *create_opts;

    /*
     * Switching between read-only and read-write (block/reopen.c).
     * Optional: a node without them switches by its flags alone (raw
     * format, filters); a protocol node without them cannot be reopened.
     * prepare stages the switch and may fail (errp set, nothing changed);
     * then exactly one of commit (make it so, cannot fail) or abort
     * (forget the staged state) follows. Staged state lives in
     * bs->opaque. The node is drained; prepare may do I/O on children:
     * when becoming read-write its children are already read-write,
     * when becoming read-only they still are read-write.
     */
    int (*bdrv_reopen_prepare)(BlockDriverState *bs, bool read_only,
                               Error **errp);
    void (*bdrv_reopen_commit)(BlockDriverState *bs);
    void (*bdrv_reopen_abort)(BlockDriverState *bs);

    /* Request flags the driver implements natively. */
    BdrvRequestFlags supported_write_flags;
    BdrvRequestFlags supported_zero_flags;
};

/* Maximum length of a stored backing file name (qcow2 allows 1023). */
#define BDRV_BACKING_NAME_MAX 1024

struct BlockDriverState {
    const BlockDriver *drv;
    void *opaque;               /* driver state, drv->instance_size bytes */
    char node_name[32];         /* unique; auto-generated if not given */
    char filename[PATH_MAX];    /* as opened (protocol: the path) */
    /* Backing reference as stored in this image's header. */
    char backing_file[BDRV_BACKING_NAME_MAX];
    char backing_format[16];
    /* The backing name resolved for opening (relative to filename). */
    char *full_backing_filename;

    int open_flags;             /* BDRV_O_* */
    bool read_only;
    int64_t total_bytes;        /* guest-visible size, kept by the driver */

    BdrvChild *file;            /* data child of a format/filter; or NULL */
    BdrvChild *backing;         /* backing image; or NULL */
    GSList *parents;            /* BdrvChild * whose bs is this node */

    QDict *options;             /* the options this node was opened with */
    QDict *explicit_options;
    BlockLimits bl;
    int refcnt;

    /* Request tracking (issue 3 fills this in; counted already). */
    unsigned int in_flight;
    uint64_t write_gen;         /* bumped per write, for flush skipping */
    uint64_t flushed_gen;

    /* Every child of this node (BdrvChild *), file and backing included. */
    GSList *children;
    /*
     * A filter a job inserted by itself (active commit's commit-top):
     * users see through it (query-block reports the node below), as
     * QEMU hides its implicit filter nodes.
     */
    bool implicit;
    /* The format was probed, not named by the user (raw warns on write). */
    bool probed;
    /*
     * The driver's words for its latest I/O failure (bdrv_note_io_error,
     * block/io-error.c), e.g. which server refused what; NULL if none.
     * io_error_seq orders notes of all nodes (larger = later).
     */
    char *io_error_detail;
    uint64_t io_error_seq;

    /*
     * Request tracking (block/io.c); all zero on a new node. Requests are
     * listed oldest first; serialising_in_flight counts the serialising
     * ones so that the common case skips the overlap scan.
     */
    BdrvTrackedRequest *tracked_head;
    BdrvTrackedRequest *tracked_tail;
    unsigned int serialising_in_flight;
    /* Overlap grain: cluster size, else request_alignment; 0 = unknown. */
    int64_t tracking_align;
    /* bdrv_enable_copy_on_read() nesting count. */
    int copy_on_read;
    /*
     * Copy-on-read sequential prefetch (block/io-cor-prefetch.c): the
     * readers seen lately and the prefetches running. Plain values, all
     * zero on a new node; a prefetch counts in in_flight, so drain waits
     * for it and the node outlives it.
     */
    BdrvCorStream cor_streams[BDRV_COR_STREAMS];
    int cor_stream_victim;
    int cor_prefetch_in_flight;
    /* bdrv_drained_begin() nesting count: external requests park. */
    int quiesce_counter;
    /* Op blockers: Error * reasons, newest first (bdrv_op_block_all). */
    GSList *op_blockers;
    /*
     * Dirty bitmaps of this node (BdrvDirtyBitmap *, creation order;
     * block/dirty-bitmap.c). NULL when there are none: the request path
     * tests only this before calling bdrv_set_dirty().
     */
    GSList *dirty_bitmaps;
};

/*
 * One request in flight on a node (block/io.c), from entry to completion.
 * Lives on the stack of the coroutine that issued the request; linked
 * into bs->tracked_head in arrival order.
 */
struct BdrvTrackedRequest {
    BlockDriverState *bs;
    int64_t offset;            /* the range as requested */
    int64_t bytes;
    int64_t overlap_offset;    /* the range widened to the tracking grain */
    int64_t overlap_bytes;
    bool serialising;          /* waits for / holds off every overlap */
    bool is_write;             /* modifies the node (write, zero, discard) */
    Coroutine *co;             /* the coroutine running the request */
    BdrvTrackedRequest *waiting_for;  /* request we are parked on, or NULL */
    CoQueue wait_queue;        /* requests parked until we complete */
    BdrvTrackedRequest *next;  /* arrival-order list links */
    BdrvTrackedRequest *prev;
};

/* Trivial accessors usable by drivers. */
static inline BlockDriverState *child_bs(BdrvChild *c)
{
    return c ? c->bs : NULL;
}

/*
 * Open a child of parent named child_name ("file", "backing") from the
 * "child_name." sub-options of options (moved out of options), or from
 * filename when given. role: BdrvChildRole bits. Returns NULL with errp
 * set on failure (allow_none: no error when neither options nor a
 * filename name a child, returns NULL with errp untouched).
 */
BdrvChild *bdrv_open_child(const char *filename, QDict *options,
                           const char *child_name, BlockDriverState *parent,
                           unsigned role, bool allow_none, Error **errp);
/* Attach an existing node (takes a reference) as child of parent. */
BdrvChild *bdrv_attach_child(BlockDriverState *parent,
                             BlockDriverState *child_bs,
                             const char *child_name, unsigned role,
                             Error **errp);
/* Detach and drop the child's reference. */
void bdrv_unref_child(BlockDriverState *parent, BdrvChild *child);

/*
 * Create a node driven by drv without going through the driver table (for
 * unit tests' mock drivers): allocates bs->opaque, calls drv->bdrv_open with
 * options (may be NULL; leftovers are an error), refreshes limits and
 * total_bytes. Returns a node with one reference, or NULL with errp set.
 */
BlockDriverState *bdrv_new_open_driver(const BlockDriver *drv,
                                       const char *node_name, QDict *options,
                                       int flags, Error **errp);

/* Memory alignment for I/O buffers on bs (O_DIRECT needs it). */
size_t bdrv_opt_mem_align(BlockDriverState *bs);
void *qemu_try_blockalign(BlockDriverState *bs, size_t size);
/*
 * A bounce buffer of at least size bytes suitable for I/O on bs, from a
 * small pool of recycled buffers when possible (block/io-copy-on-read.c);
 * *cap gets its real size, to pass back to bdrv_bounce_put(). NULL when
 * out of memory. Main loop thread only.
 */
void *bdrv_bounce_get(BlockDriverState *bs, int64_t size, int64_t *cap);
void bdrv_bounce_put(BlockDriverState *bs, void *buf, int64_t cap);
void *qemu_blockalign_bs(BlockDriverState *bs, size_t size);

/* Recompute bs->bl from its children and driver. */
void bdrv_refresh_limits(BlockDriverState *bs, Error **errp);

/*
 * Iterate over every open node: NULL gives the first, then each call
 * returns the node after bs, NULL after the last.
 */
BlockDriverState *bdrv_next_node(BlockDriverState *bs);

/* Drivers known to the core (defined in their own files). */
extern const BlockDriver bdrv_file;
extern const BlockDriver bdrv_host_device;
extern const BlockDriver bdrv_raw;
extern const BlockDriver bdrv_qcow2;
extern const BlockDriver bdrv_copy_on_read;
extern const BlockDriver bdrv_blkdebug;
extern const BlockDriver bdrv_http;
extern const BlockDriver bdrv_https;
extern const BlockDriver bdrv_nbd;
extern const BlockDriver bdrv_blklogwrites;

/*
 * The protocol driver a filename names: its "proto:" prefix ("nbd+unix:"
 * is nbd), else host_device for a block device and file otherwise.
 * "Unknown protocol 'x'" for a prefix no protocol driver has.
 */
const BlockDriver *bdrv_default_protocol(const char *filename, Error **errp);

/*
 * Backing names read from image headers are untrusted input
 * (block/backing-policy.c): a header may only make qblk open a backing
 * file through the protocols the user allowed. True if bs's backing
 * name may be followed; otherwise an error naming the image and the
 * backing string.
 */
bool bdrv_backing_name_allowed(const BlockDriverState *bs, const char *name,
                               Error **errp);

#endif /* BLOCK_BLOCK_INT_H */
