/*
 * qblk-img convert: copy one or more images (concatenated) into a new or
 * existing target, in any supported format.
 *
 * Engine: num_coroutines (-m, default 8) worker coroutines on the main
 * loop. A worker claims the next chunk under s->lock: the block status
 * of the source decides its kind (DATA: read and write; ZERO: write
 * zeroes unless the target already reads as zero; BACKING: with -B, the
 * range is left to the target's backing file). The claim is the only
 * shared step, so reads and writes of different chunks overlap freely.
 * Without -W, writes are issued in offset order: a worker waits on
 * s->order until every earlier chunk has been written. Errors stop new
 * claims and wake every waiter; the first error wins.
 *
 * Sparseness: inside DATA chunks, min_sparse-aligned blocks of zeroes
 * (-S, default 4 KiB) are not written as data. -S 0 disables both block
 * status and zero detection so the target is written in full.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/coroutine.h"
#include "qemu/keyval.h"
#include "block/block.h"
#include "block/block_int.h"
#include "qblk-img.h"
#include "trace.h"

#define IMG_CONVERT_CHUNK (2 * MiB)
#define IMG_CONVERT_MAX_CO 16

/* What a chunk of the source needs in the target. */
typedef enum ImgChunkKind {
    IMG_CHUNK_DATA,
    IMG_CHUNK_ZERO,
    IMG_CHUNK_BACKING,
} ImgChunkKind;

/* One source image and where its bytes land in the target. */
typedef struct ImgConvertSrc {
    BdrvChild *child;
    int64_t start;          /* offset of this source in the target */
    int64_t len;
} ImgConvertSrc;

/*
 * One conversion. The first group is set before the workers start and
 * only read afterwards; the claim state is guarded by lock; the rest is
 * touched by workers between yields (one thread, so no lock needed).
 */
typedef struct ImgConvert {
    ImgConvertSrc *src;     /* the sources, in target order */
    int nsrc;
    int64_t total;          /* sum of the source lengths */
    BdrvChild *target;
    bool target_has_backing;    /* -B: unallocated ranges stay unwritten */
    bool zero_init;         /* the target already reads as zeroes */
    bool in_order;          /* no -W: writes in offset order */
    int64_t min_sparse;     /* 0: copy everything as data */

    CoMutex lock;           /* protects the claim state below */
    int64_t next_off;       /* next byte to hand out */
    int cur_src;            /* index of the source holding next_off */
    int64_t status_end;     /* cached status valid up to here */
    ImgChunkKind status_kind;   /* the cached status */

    CoQueue order;          /* workers waiting for their turn to write */
    int64_t wr_offs;        /* in-order: all bytes before are written */
    int64_t done;           /* bytes finished, for the progress line */
    int running;            /* workers not yet returned */
    int ret;                /* first error, 0 while all goes well */
} ImgConvert;

/*
 * Query the kind of the source range at s->next_off and cache it up to
 * s->status_end. Caller holds s->lock; returns 0 or -errno (reported).
 */
static int coroutine_fn img_convert_status(ImgConvert *s)
{
    ImgConvertSrc *src = &s->src[s->cur_src];
    BlockDriverState *bs = bdrv_child_bs(src->child);
    BlockDriverState *base = s->target_has_backing ? bdrv_backing_bs(bs)
                                                   : NULL;
    int64_t off = s->next_off - src->start, pnum;
    int ret;

    if (!s->min_sparse) {
        s->status_kind = IMG_CHUNK_DATA;
        s->status_end = src->start + src->len;
        return 0;
    }
    ret = bdrv_co_block_status_above(bs, base, off, src->len - off, &pnum,
                                     NULL, NULL, NULL);
    if (ret < 0) {
        error_report("error while reading block status at offset %" PRId64
                     ": %s", off, g_strerror(-ret));
        return ret;
    }
    if (ret & BDRV_BLOCK_ZERO) {
        s->status_kind = IMG_CHUNK_ZERO;
    } else if (ret & BDRV_BLOCK_DATA) {
        s->status_kind = IMG_CHUNK_DATA;
    } else {
        s->status_kind = s->target_has_backing ? IMG_CHUNK_BACKING
                                               : IMG_CHUNK_ZERO;
    }
    s->status_end = s->next_off + pnum;
    return 0;
}

/*
 * Claim the next chunk (offset, length, kind, source). Returns 1 when a chunk
 * was claimed, 0 when all is handed out, -errno on error.
 */
static int coroutine_fn img_convert_claim(ImgConvert *s, int64_t *off,
                                          int64_t *bytes, ImgChunkKind *kind,
                                          ImgConvertSrc **src)
{
    int ret = 0;

    qemu_co_mutex_lock(&s->lock);
    if (s->ret < 0 || s->next_off >= s->total) {
        goto out;
    }
    while (s->next_off >= s->src[s->cur_src].start +
           s->src[s->cur_src].len) {
        s->cur_src++;               /* skips empty sources too */
    }
    if (s->next_off >= s->status_end) {
        ret = img_convert_status(s);
        if (ret < 0) {
            goto out;
        }
    }
    *src = &s->src[s->cur_src];
    *off = s->next_off;
    *kind = s->status_kind;
    *bytes = s->status_end - *off;
    if (*kind == IMG_CHUNK_DATA) {
        /* End data chunks on chunk-size boundaries: aligned writes. */
        *bytes = MIN(*bytes, QEMU_ALIGN_DOWN(*off + IMG_CONVERT_CHUNK,
                                             IMG_CONVERT_CHUNK) - *off);
    } else {
        *bytes = MIN(*bytes, GiB);
    }
    s->next_off += *bytes;
    ret = 1;
out:
    qemu_co_mutex_unlock(&s->lock);
    return ret;
}

/*
 * Write zeroes over [off, off + bytes) unless the target reads zero;
 * unmapping is allowed only without a backing file, where a hole would
 * show the backing data. Coroutine context; 0 or -errno.
 */
static int coroutine_fn img_convert_zero(ImgConvert *s, int64_t off,
                                         int64_t bytes)
{
    if (s->zero_init) {
        return 0;
    }
    trace_img_convert_write(qemu_coroutine_self(), off, bytes, 1);
    return bdrv_co_pwrite_zeroes(s->target, off, bytes,
                                 s->target_has_backing ? 0
                                                       : BDRV_REQ_MAY_UNMAP);
}

/* Is the min_sparse block of buf at [p, p + len) all zeroes? */
static bool img_convert_block_zero(ImgConvert *s, const uint8_t *p,
                                   int64_t len)
{
    return s->min_sparse && buffer_is_zero(p, len);
}

/*
 * Write a DATA chunk: runs of non-zero blocks as data, runs of zero
 * blocks as zeroes (skipped when the target reads as zero).
 */
static int coroutine_fn img_convert_write_data(ImgConvert *s, int64_t off,
                                               int64_t bytes, uint8_t *buf)
{
    int64_t grain = s->min_sparse ? s->min_sparse : bytes;
    int64_t pos = 0;

    while (pos < bytes) {
        int64_t run = 0;
        bool zero = false;
        int ret;

        /* Extend a run of blocks of the same kind, aligned to grain. */
        while (pos + run < bytes) {
            int64_t abs = off + pos + run;
            int64_t blk = MIN(QEMU_ALIGN_DOWN(abs, grain) + grain - abs,
                              bytes - pos - run);
            bool z = img_convert_block_zero(s, buf + pos + run, blk);
            if (run && z != zero) {
                break;
            }
            zero = z;
            run += blk;
        }
        if (zero) {
            ret = img_convert_zero(s, off + pos, run);
        } else {
            trace_img_convert_write(qemu_coroutine_self(), off + pos, run, 0);
            ret = bdrv_co_pwrite(s->target, off + pos, run, buf + pos, 0);
        }
        if (ret < 0) {
            return ret;
        }
        pos += run;
    }
    return 0;
}

/*
 * Record a failure (first one wins) and wake every waiting worker, so
 * that all of them see s->ret and stop claiming.
 */
static void img_convert_fail(ImgConvert *s, int ret)
{
    if (s->ret == 0) {
        s->ret = ret;
    }
    qemu_co_queue_restart_all(&s->order);
}

/* Handle one claimed chunk: read (DATA), wait for turn, write. */
static int coroutine_fn img_convert_chunk(ImgConvert *s, ImgConvertSrc *src,
                                          int64_t off, int64_t bytes,
                                          ImgChunkKind kind, uint8_t *buf)
{
    int ret = 0;

    trace_img_convert_chunk(qemu_coroutine_self(), off, bytes, kind);
    if (kind == IMG_CHUNK_DATA) {
        ret = bdrv_co_pread(src->child, off - src->start, bytes, buf, 0);
        if (ret < 0) {
            error_report("error while reading at byte %" PRId64 ": %s",
                         off - src->start, g_strerror(-ret));
            return ret;
        }
    }
    while (s->in_order && s->wr_offs != off && s->ret == 0) {
        qemu_co_queue_wait(&s->order, NULL);
    }
    if (s->ret < 0) {
        return s->ret;
    }
    if (kind == IMG_CHUNK_DATA) {
        ret = img_convert_write_data(s, off, bytes, buf);
    } else if (kind == IMG_CHUNK_ZERO) {
        ret = img_convert_zero(s, off, bytes);
    }
    if (ret < 0) {
        error_report("error while writing at byte %" PRId64 ": %s", off,
                     g_strerror(-ret));
        return ret;
    }
    if (s->in_order) {
        s->wr_offs = off + bytes;
        qemu_co_queue_restart_all(&s->order);
    }
    return 0;
}

/* Worker coroutine: claim and copy chunks until done or failed. */
static void coroutine_fn img_convert_co(void *opaque)
{
    ImgConvert *s = opaque;
    uint8_t *buf = qemu_blockalign(IMG_CONVERT_CHUNK);
    int64_t off, bytes;
    ImgChunkKind kind;
    ImgConvertSrc *src;
    int ret;

    while ((ret = img_convert_claim(s, &off, &bytes, &kind, &src)) > 0) {
        ret = img_convert_chunk(s, src, off, bytes, kind, buf);
        if (ret < 0) {
            break;
        }
        s->done += bytes;
        img_progress_print(100.0f * s->done / MAX(s->total, 1));
    }
    if (ret < 0) {
        img_convert_fail(s, ret);
    }
    qemu_vfree(buf);
    s->running--;
    aio_notify();
}

/*
 * Run the copy with num_co workers, driving the main loop until the last
 * one returns, then flush the target. Returns 0 or the first -errno.
 */
static int img_convert_run(ImgConvert *s, int num_co)
{
    qemu_co_mutex_init(&s->lock);
    qemu_co_queue_init(&s->order);
    s->running = num_co;
    for (int i = 0; i < num_co; i++) {
        qemu_coroutine_enter(qemu_coroutine_create(img_convert_co, s));
    }
    AIO_WAIT_WHILE(s->running > 0);
    if (s->ret == 0) {
        s->ret = bdrv_flush(bdrv_child_bs(s->target));
        if (s->ret < 0) {
            error_report("error while flushing the target: %s",
                         g_strerror(-s->ret));
        }
    }
    return s->ret;
}

/* Command-line settings of convert, before anything is opened. */
typedef struct ImgConvertArgs {
    ImgOpts o;              /* -f -t -T -p -q -U -o --image-opts */
    const char *out_fmt, *out_base, *out_base_fmt;
    bool no_create, target_is_zero, in_order;
    int64_t min_sparse;
    int num_co;
} ImgConvertArgs;

/* Parse convert's argv into a; exits on usage errors. */
static void img_convert_parse(int argc, char **argv, ImgConvertArgs *a)
{
    enum { OPT_TARGET_ZERO = IMG_OPT_BASE, OPT_UNSUPP };
    static const struct option convert_opts[] = {
        { "target-is-zero", no_argument, NULL, OPT_TARGET_ZERO },
        { "target-image-opts", no_argument, NULL, OPT_UNSUPP },
        { "salvage", no_argument, NULL, OPT_UNSUPP },
        { "bitmaps", no_argument, NULL, OPT_UNSUPP },
        { NULL, 0, NULL, 0 }
    };
    uint64_t v;
    int c;

    a->o.shortopts = ":hf:O:B:CcF:o:l:S:pt:T:qnm:WUr:";
    a->o.longopts = IMG_LONG_IMAGE_OPTS | IMG_LONG_FORCE_SHARE;
    a->o.extra = convert_opts;
    while ((c = img_getopt(argc, argv, &a->o)) != -1) {
        switch (c) {
        case 'O': a->out_fmt = optarg; break;
        case 'B': a->out_base = optarg; break;
        case 'F': a->out_base_fmt = optarg; break;
        case 'n': a->no_create = true; break;
        case 'W': a->in_order = false; break;
        case 'r': break;        /* rate limit: ignored offline */
        case 'C': break;        /* copy offloading: plain copy is used */
        case OPT_TARGET_ZERO: a->target_is_zero = true; break;
        case 'c':
            error_report("Compression is not supported by qblk-img convert");
            exit(EXIT_FAILURE);
        case 'l':
        case OPT_UNSUPP:
            error_report("option '%s' is not supported by qblk-img",
                         argv[optind - 1]);
            exit(EXIT_FAILURE);
        case 'S':
            if (parse_size(optarg, &v) < 0 || v > IMG_CONVERT_CHUNK ||
                v % BDRV_SECTOR_SIZE) {
                error_report("Invalid buffer size for sparse output "
                             "specified. Valid sizes are multiples of 512 "
                             "up to %lld.", (long long)IMG_CONVERT_CHUNK);
                exit(EXIT_FAILURE);
            }
            a->min_sparse = v;
            break;
        case 'm':
            a->num_co = atoi(optarg);
            if (a->num_co < 1 || a->num_co > IMG_CONVERT_MAX_CO) {
                error_report("Invalid number of coroutines. Allowed number "
                             "of coroutines is between 1 and %d",
                             IMG_CONVERT_MAX_CO);
                exit(EXIT_FAILURE);
            }
            break;
        }
    }
}

/* Create the target image with -o options, size and -B/-F; reports. */
static bool img_convert_create(const ImgConvertArgs *a, const char *out,
                               const BlockDriver *drv, int64_t total)
{
    g_autoptr(QDict) opts = qdict_new();
    GPtrArray *keys = g_ptr_array_new_with_free_func(g_free);
    Error *err = NULL;
    bool ok;

    /* -F alone is ignored; -B without -F was refused by the caller. */
    ok = img_build_create_opts(drv, a->o.optstrs, a->out_base,
                               a->out_base ? a->out_base_fmt : NULL, keys,
                               opts, &err);
    if (ok) {
        qdict_put_int(opts, "size", total);
        ok = bdrv_create(drv, out, opts, &err) >= 0;
    }
    if (!ok) {
        img_report_err(err, "%s: error while converting %s: ", out,
                       drv->format_name);
    }
    g_ptr_array_free(keys, TRUE);
    return ok;
}

/* Open all sources; fills s->src and s->total. Reports errors. */
static bool img_convert_open_sources(ImgConvert *s, const ImgConvertArgs *a,
                                     int nsrc, char **names)
{
    int flags = a->o.force_share ? BDRV_O_FORCE_SHARE : 0;

    if (!img_apply_cache(a->o.src_cache, true, &flags)) {
        return false;
    }
    s->src = g_new0(ImgConvertSrc, nsrc);
    s->nsrc = nsrc;
    for (int i = 0; i < nsrc; i++) {
        s->src[i].child = img_open(names[i], a->o.fmt, a->o.image_opts,
                                   flags, a->o.quiet);
        if (!s->src[i].child) {
            return false;
        }
        s->src[i].len = bdrv_getlength(bdrv_child_bs(s->src[i].child));
        if (s->src[i].len < 0) {
            error_report("Could not get size of %s: %s", names[i],
                         g_strerror(-s->src[i].len));
            return false;
        }
        s->src[i].start = s->total;
        s->total += s->src[i].len;
    }
    return true;
}

/* Create (unless -n) and open the target. Reports errors. */
static bool img_convert_open_target(ImgConvert *s, const ImgConvertArgs *a,
                                    const char *out)
{
    const BlockDriver *drv = bdrv_find_format(a->out_fmt);
    /* Zeroes may be written by unmapping, as qemu-img convert does. */
    int flags = BDRV_O_RDWR | BDRV_O_UNMAP;
    int64_t len;

    if (!drv) {
        error_report("Unknown file format '%s'", a->out_fmt);
        return false;
    }
    if (!img_apply_cache(a->o.cache, false, &flags)) {
        return false;
    }
    if (!a->no_create && !img_convert_create(a, out, drv, s->total)) {
        return false;
    }
    s->target = img_open(out, a->out_fmt, false, flags, a->o.quiet);
    if (!s->target) {
        return false;
    }
    len = bdrv_getlength(bdrv_child_bs(s->target));
    if (a->no_create && len >= 0 && len < s->total) {
        error_report("Output image is too small (%" PRId64 " < %" PRId64
                     " bytes)", len, s->total);
        return false;
    }
    s->target_has_backing = a->out_base != NULL;
    s->zero_init = a->no_create ? a->target_is_zero : !a->out_base;
    return true;
}

/*
 * convert [...] file [file2 ...] output: see docs/qblk-img.rst. Sources
 * are opened first (their total size sizes the target), then the target
 * is created unless -n and opened read-write with BDRV_O_UNMAP so that
 * zero ranges may be unmapped. Exit status 0 or 1.
 */
int img_convert(int argc, char **argv)
{
    ImgConvertArgs a = {
        .o = { .cache = "unsafe", .optstrs = g_ptr_array_new() },
        .out_fmt = "raw", .in_order = true, .min_sparse = 4 * KiB,
        .num_co = 8,
    };
    ImgConvert s = { .ret = 0 };
    int ret = EXIT_FAILURE, nsrc;

    img_convert_parse(argc, argv, &a);
    if (a.o.create_help) {
        ret = img_create_help_for(a.out_fmt, optind < argc);
        goto out;
    }
    nsrc = argc - optind - 1;
    if (nsrc < 1) {
        error_report("Must specify image file name");
        goto out;
    }
    if (a.out_base && bdrv_find_format(a.out_fmt) &&
        !bdrv_find_format(a.out_fmt)->supports_backing) {
        error_report("Backing file not supported for file format '%s'",
                     a.out_fmt);
        goto out;
    }
    if (a.out_base && !a.out_base_fmt) {
        error_report("Use of backing file requires explicit backing format");
        goto out;
    }
    if (a.out_base && a.no_create) {
        error_report("-B cannot be used together with -n in qblk-img");
        goto out;
    }
    s.in_order = a.in_order;
    s.min_sparse = a.min_sparse;
    if (!img_convert_open_sources(&s, &a, nsrc, argv + optind) ||
        !img_convert_open_target(&s, &a, argv[argc - 1])) {
        goto out;
    }
    img_progress_init(a.o.progress, 1.0f);
    if (img_convert_run(&s, a.num_co) == 0) {
        ret = EXIT_SUCCESS;
    }
    img_progress_end();
out:
    img_close(s.target);
    for (int i = 0; i < s.nsrc; i++) {
        img_close(s.src[i].child);
    }
    g_free(s.src);
    g_ptr_array_free(a.o.optstrs, TRUE);
    return ret;
}
