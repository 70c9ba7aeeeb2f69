/*
 * qblk-img subcommands that change a backing chain offline: rebase and
 * commit.
 *
 * rebase (safe mode) copies into the image every range it does not
 * allocate itself and where the old and the new backing chain read
 * differently, then rewrites the backing reference in the header. The
 * data is written before the header changes, so a crash leaves the image
 * on its old backing file with some redundant, identical data: the guest
 * view never changes. -u only rewrites the header.
 *
 * commit copies every range allocated above the base into the base
 * (with block/commit.c's copy step, shared with the block-commit job:
 * zero ranges become zero writes), flushes the base, and only then empties the top image (unless -d or
 * -b). The base is opened a second time read-write and swapped into the
 * chain in place of its read-only node, so reads through the top always
 * see the chain as it was before the commit.
 */
#include "qemu/osdep.h"
#include "block/block.h"
#include "block/block_int.h"
#include "qemu/qdict.h"
#include "block/commit.h"
#include "qemu/coroutine.h"
#include "qblk-img.h"
#include "trace.h"

#define IMG_CHAIN_BUF_SIZE (2 * MiB)
/* Granularity at which rebase decides whether to copy. */
#define IMG_REBASE_GRAIN (64 * KiB)

/* ------------------------------------------------------------------ */
/* rebase                                                              */

/* State of a safe-mode rebase: the image and both backing views. */
typedef struct ImgRebase {
    BdrvChild *img;         /* the image, opened read-write */
    BdrvChild *old_b;       /* NULL: old chain reads as zeroes */
    BdrvChild *new_b;       /* NULL: new chain reads as zeroes */
    int64_t old_len, new_len;   /* past these the chains read as zeroes */
    uint8_t *buf_old, *buf_new; /* IMG_CHAIN_BUF_SIZE bytes each */
} ImgRebase;

/*
 * Fill buf with bytes [off, off + n) as backing child c reads them, zero
 * past its end (len). Returns 0 or -errno.
 */
static int img_rebase_read(BdrvChild *c, int64_t len, int64_t off,
                           int64_t n, uint8_t *buf)
{
    int64_t avail = c ? MAX(0, MIN(n, len - off)) : 0;
    int ret = 0;

    if (avail > 0) {
        ret = bdrv_pread(c, off, avail, buf, 0);
    }
    memset(buf + avail, 0, n - avail);
    return ret < 0 ? ret : 0;
}

/* True if [off, off + n) of backing child c is known to read as zero. */
static bool img_rebase_is_zero(BdrvChild *c, int64_t len, int64_t off,
                               int64_t n)
{
    int64_t pnum;
    int st;

    if (!c || off >= len) {
        return true;
    }
    st = bdrv_block_status_above(bdrv_child_bs(c), NULL, off, n, &pnum,
                                 NULL, NULL, NULL);
    return st >= 0 && (st & BDRV_BLOCK_ZERO) && pnum >= n;
}

/*
 * Copy [off, off + n) of the old chain into the image, one
 * IMG_REBASE_GRAIN at a time, where it differs from the new chain.
 * The range is one the image does not allocate. 0 or -errno (reported).
 */
static int img_rebase_range(ImgRebase *s, int64_t off, int64_t n)
{
    int ret;

    if (img_rebase_is_zero(s->old_b, s->old_len, off, n) &&
        img_rebase_is_zero(s->new_b, s->new_len, off, n)) {
        return 0;
    }
    ret = img_rebase_read(s->old_b, s->old_len, off, n, s->buf_old);
    if (ret < 0) {
        error_report("error while reading from old backing file");
        return ret;
    }
    ret = img_rebase_read(s->new_b, s->new_len, off, n, s->buf_new);
    if (ret < 0) {
        error_report("error while reading from new backing file");
        return ret;
    }
    for (int64_t i = 0; i < n; i += IMG_REBASE_GRAIN) {
        int64_t len = MIN(IMG_REBASE_GRAIN, n - i);
        if (!memcmp(s->buf_old + i, s->buf_new + i, len)) {
            continue;
        }
        trace_img_rebase_copy(off + i, len);
        ret = bdrv_pwrite(s->img, off + i, len, s->buf_old + i, 0);
        if (ret < 0) {
            error_report("Error while writing to COW image: %s",
                         g_strerror(-ret));
            return ret;
        }
    }
    return 0;
}

/* Safe-mode copy loop over the whole image. Returns 0 or -errno. */
static int img_rebase_copy(ImgRebase *s)
{
    BlockDriverState *bs = bdrv_child_bs(s->img);
    BlockDriverState *backing = bdrv_backing_bs(bs);
    int64_t size = bdrv_getlength(bs);

    if (size < 0) {
        error_report("Could not get size of '%s': %s", bdrv_get_filename(bs),
                     g_strerror(-size));
        return size;
    }
    for (int64_t off = 0; off < size;) {
        int64_t n = MIN(size - off, IMG_CHAIN_BUF_SIZE), pnum = n;
        int ret = 0;

        if (backing) {
            ret = bdrv_is_allocated_above(bs, backing, false, off, n, &pnum);
        }
        if (ret < 0) {
            error_report("error while reading image metadata: %s",
                         g_strerror(-ret));
            return ret;
        }
        if (!ret) {
            ret = img_rebase_range(s, off, pnum);
            if (ret < 0) {
                return ret;
            }
        }
        off += pnum;
        img_progress_print(100.0f * off / size);
    }
    return 0;
}

/*
 * Attach the old backing node (already open below the image) and open
 * the new backing file relative to filename, read-only with src_flags;
 * records both lengths. False (reported) on failure.
 */
static bool img_rebase_open_backings(ImgRebase *s, const char *filename,
                                     const char *new_name,
                                     const char *new_fmt, int src_flags)
{
    BlockDriverState *old = bdrv_backing_bs(bdrv_child_bs(s->img));
    Error *err = NULL;

    if (old) {
        s->old_b = bdrv_root_attach(old, "qblk-img-old-backing", &err);
        if (!s->old_b) {
            img_report_err(err, "Could not open old backing file '%s': ",
                           bdrv_get_backing_filename(bdrv_child_bs(s->img)));
            return false;
        }
        s->old_len = bdrv_getlength(old);
    }
    if (new_name) {
        g_autofree char *path = bdrv_path_combine(filename, new_name);
        s->new_b = img_open_err(path, new_fmt, false, src_flags, &err);
        if (!s->new_b) {
            img_report_err(err, "Could not open new backing file '%s': ",
                           new_name);
            return false;
        }
        s->new_len = bdrv_getlength(bdrv_child_bs(s->new_b));
    }
    if (s->old_len < 0 || s->new_len < 0) {
        error_report("Could not get the size of a backing file");
        return false;
    }
    return true;
}

/*
 * rebase [--image-opts] [-U] [-q] [-f fmt] [-t cache] [-T src_cache] [-p]
 *        [-u] -b backing [-F backing_fmt] file
 *
 * -b "" removes the backing file; -u without -b does the same. The new
 * backing name is stored as given and resolved relative to the image's
 * directory, like any backing reference. A new backing file needs -F.
 */
int img_rebase(int argc, char **argv)
{
    ImgOpts o = {
        .shortopts = ":hf:F:b:upt:T:qU",
        .longopts = IMG_LONG_IMAGE_OPTS | IMG_LONG_FORCE_SHARE,
    };
    const char *new_name = NULL, *new_fmt = NULL, *filename;
    bool unsafe = false, have_b = false;
    int flags = BDRV_O_RDWR, src_flags, c, ret = EXIT_FAILURE;
    ImgRebase s = { 0 };
    Error *err = NULL;

    while ((c = img_getopt(argc, argv, &o)) != -1) {
        switch (c) {
        case 'F':
            new_fmt = optarg;
            break;
        case 'b':
            new_name = optarg;
            have_b = true;
            break;
        case 'u':
            unsafe = true;
            break;
        }
    }
    filename = img_one_filename(argc, argv);
    if (!unsafe && !have_b) {
        img_error_exit("Must specify backing file (-b) or use unsafe mode "
                       "(-u)");
    }
    if (new_name && !*new_name) {
        new_name = NULL;        /* -b "": remove the backing file */
    }
    if (new_name && !new_fmt) {
        error_report("Could not change the backing file to '%s': backing "
                     "format must be specified", new_name);
        return EXIT_FAILURE;
    }
    /* -U applies to the backing files only: the image is written. */
    src_flags = o.force_share ? BDRV_O_FORCE_SHARE : 0;
    if (!img_apply_cache(o.cache, false, &flags) ||
        !img_apply_cache(o.src_cache, true, &src_flags)) {
        return EXIT_FAILURE;
    }
    flags |= unsafe ? BDRV_O_NO_BACKING : 0;
    s.img = img_open(filename, o.fmt, o.image_opts, flags, o.quiet);
    if (!s.img) {
        return EXIT_FAILURE;
    }
    img_progress_init(o.progress, 2.0f);
    if (!unsafe) {
        if (!img_rebase_open_backings(&s, filename, new_name, new_fmt,
                                      src_flags)) {
            goto out;
        }
        s.buf_old = qemu_blockalign(IMG_CHAIN_BUF_SIZE);
        s.buf_new = qemu_blockalign(IMG_CHAIN_BUF_SIZE);
        if (img_rebase_copy(&s) < 0) {
            goto out;
        }
    }
    if (bdrv_change_backing_file(bdrv_child_bs(s.img), new_name, new_fmt,
                                 &err) < 0) {
        error_report_err(err);
        goto out;
    }
    img_progress_print(100.0f);
    ret = EXIT_SUCCESS;
out:
    img_progress_end();
    img_close(s.old_b);
    img_close(s.new_b);
    img_close(s.img);
    qemu_vfree(s.buf_old);
    qemu_vfree(s.buf_new);
    return ret;
}

/* ------------------------------------------------------------------ */
/* commit                                                              */

/* The node whose backing child is base, searching down from top. */
static BlockDriverState *img_node_above(BlockDriverState *top,
                                        BlockDriverState *base)
{
    for (BlockDriverState *p = top; p; p = bdrv_backing_bs(p)) {
        if (bdrv_backing_bs(p) == base) {
            return p;
        }
    }
    return NULL;
}

/*
 * Replace the read-only base node below top by a read-write node of the
 * same image; returns its root child or NULL (reported).
 */
static BdrvChild *img_commit_open_base(BlockDriverState *top,
                                       BlockDriverState *base, int flags)
{
    g_autofree char *name = g_strdup(bdrv_get_filename(base));
    g_autofree char *fmt = g_strdup(bdrv_get_format_name(base));
    BlockDriverState *above = img_node_above(top, base);
    Error *err = NULL;
    BdrvChild *child;

    if (base->explicit_options &&
        qdict_has_prefixed_entries(base->explicit_options, "file.")) {
        /* Built from --image-opts backing.*: keep its nodes (filters). */
        QDict *opts = qdict_clone(base->explicit_options);
        BlockDriverState *bs;

        if (!qdict_haskey(opts, "driver")) {
            qdict_put_str(opts, "driver", fmt);
        }
        bs = bdrv_open(NULL, opts, flags | BDRV_O_RDWR, &err);
        child = bs ? img_attach(bs, &err) : NULL;
    } else {
        child = img_open_err(name, fmt, false, flags | BDRV_O_RDWR, &err);
    }

    if (!child) {
        img_report_err(err, "Could not open '%s' read-write: ", name);
        return NULL;
    }
    if (bdrv_set_backing_hd(above, bdrv_child_bs(child), &err) < 0) {
        error_report_err(err);
        img_close(child);
        return NULL;
    }
    return child;
}

/* What the commit coroutine works on. */
typedef struct ImgCommit {
    BdrvChild *top;
    BdrvChild *base;
} ImgCommit;

/*
 * Copy everything allocated above base's node into it with the commit
 * job's copy step (growing the base to the top's size first), then
 * flush the base. 0 or -errno; the caller reports it.
 */
static int coroutine_fn img_commit_co_copy(void *opaque)
{
    ImgCommit *c = opaque;
    BlockDriverState *base_bs = bdrv_child_bs(c->base);
    int64_t len = bdrv_getlength(bdrv_child_bs(c->top));
    int64_t base_len = bdrv_getlength(base_bs);
    Error *err = NULL;

    if (len < 0 || base_len < 0) {
        return len < 0 ? len : base_len;
    }
    if (base_len < len &&
        bdrv_co_truncate(c->base, len, false, PREALLOC_MODE_OFF, 0,
                         &err) < 0) {
        error_report_err(err);
        return -EIO;
    }
    for (int64_t off = 0; off < len;) {
        int64_t n;
        int ret = commit_copy_range(c->top, c->base, base_bs, off,
                                    MIN(len - off, IMG_CHAIN_BUF_SIZE), &n,
                                    NULL, NULL);
        if (ret < 0) {
            return ret;
        }
        if (n <= 0) {
            break;
        }
        off += n;
        img_progress_print(100.0f * off / len);
    }
    return bdrv_co_flush(base_bs);
}

/*
 * commit [--image-opts] [-q] [-f fmt] [-t cache] [-b base] [-d] [-p] file
 *
 * Without -b the data goes into the immediate backing file and the image
 * is emptied afterwards (unless -d). With -b, images between the top and
 * base are left alone and the top is not emptied (-b implies -d).
 */
int img_commit(int argc, char **argv)
{
    ImgOpts o = {
        .shortopts = ":f:ht:b:dpqr:", .longopts = IMG_LONG_IMAGE_OPTS,
    };
    const char *base_name = NULL, *filename;
    bool drop = false;
    int flags = BDRV_O_RDWR, c, ret = EXIT_FAILURE;
    BdrvChild *top, *base = NULL;
    BlockDriverState *base_bs;
    Error *err = NULL;

    while ((c = img_getopt(argc, argv, &o)) != -1) {
        switch (c) {
        case 'b':
            base_name = optarg;
            drop = true;        /* -b implies -d, as in qemu-img */
            break;
        case 'd':
            drop = true;
            break;
        case 'r':
            break;              /* rate limit: meaningless offline */
        }
    }
    filename = img_one_filename(argc, argv);
    if (!img_apply_cache(o.cache, false, &flags)) {
        return EXIT_FAILURE;
    }
    top = img_open(filename, o.fmt, o.image_opts, flags, o.quiet);
    if (!top) {
        return EXIT_FAILURE;
    }
    if (base_name) {
        base_bs = bdrv_find_backing_image(bdrv_child_bs(top), base_name);
        if (!base_bs) {
            error_report("Did not find '%s' in the backing chain of '%s'",
                         base_name, filename);
            goto out;
        }
    } else {
        base_bs = bdrv_backing_bs(bdrv_child_bs(top));
        if (!base_bs) {
            error_report("Image does not have a backing file");
            goto out;
        }
    }
    base = img_commit_open_base(bdrv_child_bs(top), base_bs,
                                flags & ~BDRV_O_RDWR);
    if (!base) {
        goto out;
    }
    img_progress_init(o.progress, 1.0f);
    ret = qemu_coroutine_call_sync(img_commit_co_copy,
                                   &(ImgCommit) { top, base });
    if (ret < 0) {
        error_report("Block job failed: %s", g_strerror(-ret));
        ret = EXIT_FAILURE;
        goto out;
    }
    if (!drop && bdrv_make_empty(bdrv_child_bs(top), &err) < 0) {
        error_report_err(err);
        ret = EXIT_FAILURE;
        goto out;
    }
    img_progress_end();
    img_qprintf(o.quiet, "Image committed.\n");
    ret = EXIT_SUCCESS;
out:
    img_progress_end();
    img_close(base);
    img_close(top);
    return ret;
}
