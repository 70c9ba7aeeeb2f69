/*
 * qcow2 internal snapshots: read-only support.
 *
 * State: s->snapshots, parsed once at open from the snapshot table
 * (s->snapshots_offset, s->nb_snapshots). This driver never creates,
 * deletes or applies snapshots; it only lists them and keeps their
 * clusters intact. That is guaranteed elsewhere by the COPIED flag: a
 * cluster or L2 table shared with a snapshot (refcount > 1) is never
 * written in place, and freeing only decrements refcounts.
 *
 * Every field is range-checked against the file size and fixed limits
 * before use, so a hostile table cannot make us allocate or read wildly.
 */
#include "qemu/osdep.h"
#include "block/qcow2.h"

/* Fixed part of a snapshot table entry. */
#define SN_HEADER_SIZE 40

void qcow2_free_snapshots(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    for (uint32_t i = 0; s->snapshots && i < s->nb_snapshots; i++) {
        g_free(s->snapshots[i].id_str);
        g_free(s->snapshots[i].name);
    }
    g_free(s->snapshots);
    s->snapshots = NULL;
}

/* Decode the fixed header and extra data of one entry into sn. */
static void sn_decode(BDRVQcow2State *s, const uint8_t *h,
                      const uint8_t *extra, QCowSnapshot *sn)
{
    sn->l1_table_offset = ldbe64_p(h);
    sn->l1_size = ldbe32_p(h + 8);
    sn->date_sec = ldbe32_p(h + 16);
    sn->date_nsec = ldbe32_p(h + 20);
    sn->vm_clock_nsec = ldbe64_p(h + 24);
    sn->vm_state_size = ldbe32_p(h + 32);
    sn->extra_data_size = ldbe32_p(h + 36);
    sn->disk_size = s->bs->total_bytes;
    sn->icount = UINT64_MAX;
    if (sn->extra_data_size >= 8) {
        sn->vm_state_size = ldbe64_p(extra);
    }
    if (sn->extra_data_size >= 16) {
        sn->disk_size = ldbe64_p(extra + 8);
    }
    if (sn->extra_data_size >= 24) {
        sn->icount = ldbe64_p(extra + 16);
    }
}

/* Range-check a snapshot's L1 table against the file. */
static int sn_check_l1(BDRVQcow2State *s, const QCowSnapshot *sn,
                       uint64_t fsize, int i, Error **errp)
{
    if ((uint64_t)sn->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
        error_setg(errp, "Snapshot L1 table of snapshot %d is too large", i);
        return -EFBIG;
    }
    if (sn->l1_size && (qcow2_offset_into_cluster(s, sn->l1_table_offset) ||
        sn->l1_table_offset + (uint64_t)sn->l1_size * 8 > fsize ||
        sn->l1_table_offset + (uint64_t)sn->l1_size * 8 <
        sn->l1_table_offset)) {
        error_setg(errp, "Snapshot L1 table offset invalid for snapshot %d",
                   i);
        return -EINVAL;
    }
    return 0;
}

/* Read one entry at *pos (advanced past it) into sn. */
static int coroutine_fn sn_read_one(BlockDriverState *bs, uint64_t *pos,
                                    uint64_t fsize, int i, QCowSnapshot *sn,
                                    Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint8_t h[SN_HEADER_SIZE];
    uint8_t extra[QCOW2_MAX_SNAPSHOT_EXTRA_DATA];
    uint32_t extra_size;
    uint16_t id_size, name_size;
    uint64_t entry;
    int ret;

    if (*pos + SN_HEADER_SIZE > fsize) {
        error_setg(errp, "Snapshot table of '%s' is past the end of the file",
                   bs->filename);
        return -EINVAL;
    }
    ret = bdrv_co_pread(bs->file, *pos, SN_HEADER_SIZE, h, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read snapshot table");
        return ret;
    }
    id_size = ldbe16_p(h + 12);
    name_size = ldbe16_p(h + 14);
    extra_size = ldbe32_p(h + 36);
    if (extra_size > QCOW2_MAX_SNAPSHOT_EXTRA_DATA) {
        error_setg(errp, "Too much extra metadata in snapshot table entry %d",
                   i);
        return -EFBIG;
    }
    entry = SN_HEADER_SIZE + extra_size + id_size + name_size;
    /* The padding of the last entry need not be in the file. */
    if (*pos + entry > fsize ||
        *pos + entry - s->snapshots_offset > QCOW2_MAX_SNAPSHOT_TABLE_BYTES) {
        error_setg(errp, "Snapshot table of '%s' is too large or truncated",
                   bs->filename);
        return -EFBIG;
    }
    ret = bdrv_co_pread(bs->file, *pos + SN_HEADER_SIZE, extra_size, extra, 0);
    if (ret >= 0) {
        sn->id_str = g_malloc0(id_size + 1);
        sn->name = g_malloc0(name_size + 1);
        ret = bdrv_co_pread(bs->file, *pos + SN_HEADER_SIZE + extra_size,
                            id_size, sn->id_str, 0);
    }
    if (ret >= 0) {
        ret = bdrv_co_pread(bs->file,
                            *pos + SN_HEADER_SIZE + extra_size + id_size,
                            name_size, sn->name, 0);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read snapshot table");
        return ret;
    }
    sn_decode(s, h, extra, sn);
    *pos += QEMU_ALIGN_UP(entry, 8);
    return sn_check_l1(s, sn, fsize, i, errp);
}

int coroutine_fn qcow2_co_read_snapshots(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t fsize = qcow2_file_size(bs);
    uint64_t pos = s->snapshots_offset;
    int ret;

    s->snapshots = NULL;
    s->snapshots_size = 0;
    if (!s->nb_snapshots) {
        return 0;
    }
    if (fsize < 0) {
        error_setg_errno(errp, -fsize, "Could not get size of '%s'",
                         bs->filename);
        return fsize;
    }
    s->snapshots = g_new0(QCowSnapshot, s->nb_snapshots);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        ret = sn_read_one(bs, &pos, fsize, i, &s->snapshots[i], errp);
        if (ret < 0) {
            qcow2_free_snapshots(bs);
            return ret;
        }
    }
    s->snapshots_size = pos - s->snapshots_offset;
    return 0;
}

int qcow2_snapshot_list(BlockDriverState *bs, const QCowSnapshot **list)
{
    BDRVQcow2State *s = bs->opaque;

    *list = s->snapshots;
    return s->snapshots ? s->nb_snapshots : 0;
}
