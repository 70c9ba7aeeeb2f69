/*
 * NBD server: the transmission phase.
 *
 * The client's reader coroutine parses requests (many per socket read,
 * thanks to the buffered nbd_co_recv), reads WRITE payloads, and starts
 * one coroutine per request, entering it at once so the request is
 * submitted to the block layer before the next one is parsed. Request
 * coroutines reply in any order; a reply (header and data in one
 * sendmsg) is sent whole under client->send_lock.
 *
 * Back-pressure: a client may have at most NBD_MAX_INFLIGHT requests
 * and NBD_MAX_INFLIGHT_BYTES of buffers in flight; at the cap the reader
 * parks until a request finishes. A request keeps its slot until its
 * reply is sent, so a client that never reads its replies ends up with
 * a full socket, blocked senders and a parked reader: memory stays
 * bounded and the loop does not spin.
 *
 * All I/O goes through the export's root BdrvChild (request tracking,
 * copy-on-read). The reader returns only after every request coroutine
 * has finished, so the client and export outlive them.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "nbd-internal.h"
#include "trace.h"

#define NBD_KEEP_BUF_MAX   (1 * MiB)   /* larger buffers are not recycled */
#define NBD_CACHE_CHUNK    (1 * MiB)

/*
 * The wire uses Linux errno numbers but only a handful of them; anything
 * unusual (EIO from a disk, ETIMEDOUT from a remote backing file...) is
 * reported as EIO, which every client treats as a failed request.
 */
uint32_t nbd_errno_to_wire(int err)
{
    switch (-err) {
    case 0:
        return 0;
    case EPERM:
    case EROFS:
        return NBD_EPERM;
    case ENOMEM:
        return NBD_ENOMEM;
    case EINVAL:
        return NBD_EINVAL;
    case ENOSPC:
    case EFBIG:
    case EDQUOT:
        return NBD_ENOSPC;
    case EOVERFLOW:
        return NBD_EOVERFLOW;
    case ENOTSUP:
#if EOPNOTSUPP != ENOTSUP
    case EOPNOTSUPP:
#endif
        return NBD_ENOTSUP;
    case ESHUTDOWN:
        return NBD_ESHUTDOWN;
    default:
        return NBD_EIO;
    }
}

/* ---- request structures ------------------------------------------- */

/*
 * A request struct from the client's free list (or a new one). Recycling
 * keeps the steady-state hot path free of malloc: a 4K read reuses both
 * the struct and its page-aligned buffer.
 */
static NBDRequest *nbd_request_get(NBDClient *client)
{
    NBDRequest *req = client->free_reqs;

    if (req) {
        client->free_reqs = req->next_free;
        client->nb_free_reqs--;
    } else {
        req = g_new0(NBDRequest, 1);
        req->client = client;
    }
    req->error = 0;
    req->next_free = NULL;
    return req;
}

/*
 * Make req->buf hold at least len bytes (page aligned, so O_DIRECT
 * images need no bounce buffer). false if out of memory.
 */
static bool nbd_request_buf(NBDRequest *req, size_t len)
{
    if (req->buf_size >= len) {
        return true;
    }
    qemu_vfree(req->buf);
    req->buf_size = 0;
    req->buf = qemu_try_memalign(4096, MAX(len, 4096));
    if (!req->buf) {
        return false;
    }
    req->buf_size = MAX(len, 4096);
    return true;
}

/* Return req to the free list (dropping a big buffer). */
static void nbd_request_put(NBDClient *client, NBDRequest *req)
{
    if (req->buf_size > NBD_KEEP_BUF_MAX ||
        client->nb_free_reqs >= NBD_MAX_INFLIGHT) {
        qemu_vfree(req->buf);
        req->buf = NULL;
        req->buf_size = 0;
    }
    if (client->nb_free_reqs >= NBD_MAX_INFLIGHT) {
        g_free(req);
        return;
    }
    req->next_free = client->free_reqs;
    client->free_reqs = req;
    client->nb_free_reqs++;
}

void nbd_client_free_requests(NBDClient *client)
{
    while (client->free_reqs) {
        NBDRequest *req = client->free_reqs;
        client->free_reqs = req->next_free;
        qemu_vfree(req->buf);
        g_free(req);
    }
    client->nb_free_reqs = 0;
}

/* ---- replies ------------------------------------------------------- */

/*
 * Send a whole reply under the send lock, so chunks of different replies
 * never interleave mid-message. A failed send means the connection is
 * broken: close the client (the reader then winds down).
 */
static int coroutine_fn nbd_co_send_locked(NBDClient *client,
                                           struct iovec *iov, int niov)
{
    int ret;

    qemu_co_mutex_lock(&client->send_lock);
    ret = nbd_co_sendv(client, iov, niov);
    qemu_co_mutex_unlock(&client->send_lock);
    if (ret < 0) {
        nbd_client_kick(client);
    }
    return ret;
}

/* Simple reply: error code, and data (if any) after the header. */
static int coroutine_fn nbd_co_simple_reply(NBDRequest *req, uint32_t error,
                                            void *data, size_t len)
{
    uint8_t hdr[NBD_SIMPLE_REPLY_SIZE];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = data, .iov_len = len },
    };

    stbe32_p(hdr, NBD_SIMPLE_REPLY_MAGIC);
    stbe32_p(hdr + 4, error);
    stbe64_p(hdr + 8, req->cookie);
    trace_nbd_reply_simple(req->client, req->cookie, error, len);
    return nbd_co_send_locked(req->client, iov, len ? 2 : 1);
}

/*
 * Structured reply chunk: header, then up to two payload pieces (a small
 * fixed part, then data).
 */
static int coroutine_fn nbd_co_chunk(NBDRequest *req, uint16_t flags,
                                     uint16_t type, void *p1, size_t l1,
                                     void *p2, size_t l2)
{
    uint8_t hdr[NBD_CHUNK_HEADER_SIZE];
    struct iovec iov[3] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = p1, .iov_len = l1 },
        { .iov_base = p2, .iov_len = l2 },
    };

    stbe32_p(hdr, NBD_STRUCTURED_REPLY_MAGIC);
    stbe16_p(hdr + 4, flags);
    stbe16_p(hdr + 6, type);
    stbe64_p(hdr + 8, req->cookie);
    stbe32_p(hdr + 16, l1 + l2);
    trace_nbd_reply_chunk(req->client, req->cookie, type, flags,
                          (unsigned long long)(l1 + l2));
    return nbd_co_send_locked(req->client, iov, l2 ? 3 : (l1 ? 2 : 1));
}

/* Error chunk (final): ERROR, or ERROR_OFFSET when offset >= 0. */
static int coroutine_fn nbd_co_error_chunk(NBDRequest *req, uint32_t error,
                                           const char *msg, int64_t offset)
{
    size_t mlen = MIN(strlen(msg), NBD_MAX_STRING);
    uint8_t head[6], tail[8];

    stbe32_p(head, error);
    stbe16_p(head + 4, mlen);
    if (offset < 0) {
        return nbd_co_chunk(req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_ERROR,
                            head, sizeof(head), (void *)msg, mlen);
    }
    /* Three payload pieces: put the message and offset in one buffer. */
    g_autofree uint8_t *rest = g_malloc(mlen + 8);
    memcpy(rest, msg, mlen);
    stbe64_p(tail, offset);
    memcpy(rest + mlen, tail, 8);
    return nbd_co_chunk(req, NBD_REPLY_FLAG_DONE,
                        NBD_REPLY_TYPE_ERROR_OFFSET, head, sizeof(head),
                        rest, mlen + 8);
}

/*
 * Reply to a request that carries no data: a simple reply, or with
 * structured replies a NONE chunk (success) or an ERROR chunk with a
 * message naming the operation.
 */
static int coroutine_fn nbd_co_generic_reply(NBDRequest *req, int ret,
                                             const char *what)
{
    uint32_t error = nbd_errno_to_wire(ret);

    if (ret < 0) {
        trace_nbd_request_failed(req->client, req->cookie, req->type, ret);
    }
    if (!req->client->structured) {
        return nbd_co_simple_reply(req, error, NULL, 0);
    }
    if (ret < 0) {
        g_autofree char *msg = g_strdup_printf("%s failed: %s", what,
                                               strerror(-ret));
        return nbd_co_error_chunk(req, error, msg, -1);
    }
    return nbd_co_chunk(req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_NONE,
                        NULL, 0, NULL, 0);
}

/* Reply to a request refused while parsing (req->error is set). */
static int coroutine_fn nbd_co_refuse(NBDRequest *req, const char *msg)
{
    trace_nbd_request_refused(req->client, req->cookie, req->type,
                              req->error, msg);
    if (!req->client->structured) {
        return nbd_co_simple_reply(req, req->error, NULL, 0);
    }
    return nbd_co_error_chunk(req, req->error, msg, -1);
}

/* ---- commands ------------------------------------------------------ */

/*
 * Read [off, off + len) of the export into buf through the root child:
 * the block layer tracks the request and applies copy-on-read.
 */
static int coroutine_fn nbd_co_read_range(NBDClient *client, uint64_t off,
                                          uint32_t len, void *buf)
{
    QEMUIOVector qiov;
    int ret;

    qemu_iovec_init_buf(&qiov, buf, len);
    ret = bdrv_co_preadv(client->exp->root, off, len, &qiov, 0);
    qemu_iovec_destroy(&qiov);
    return ret;
}

/*
 * Status of [pos, end): sets *zero and returns the length of the first
 * extent (the whole rest, as data, when the status is unknown).
 */
static int64_t coroutine_fn nbd_co_zero_extent(BlockDriverState *bs,
                                               uint64_t pos, uint64_t end,
                                               bool *zero)
{
    int64_t pnum = 0;
    int ret = bdrv_co_block_status_above(bs, NULL, pos, end - pos, &pnum,
                                         NULL, NULL, NULL);

    if (ret < 0 || pnum <= 0) {
        *zero = false;
        return end - pos;
    }
    *zero = ret & BDRV_BLOCK_ZERO;
    return MIN((uint64_t)pnum, end - pos);
}

/*
 * Send one content chunk: a hole, or data read from the export. 1 when a
 * read failed and the reply was ended with an error chunk.
 */
static int coroutine_fn nbd_co_sparse_chunk(NBDRequest *req, uint64_t pos,
                                            uint64_t len, bool zero,
                                            bool last)
{
    uint16_t done = last ? NBD_REPLY_FLAG_DONE : 0;
    uint8_t head[12];
    uint8_t *data;
    int ret;

    stbe64_p(head, pos);
    if (zero) {
        stbe32_p(head + 8, len);
        return nbd_co_chunk(req, done, NBD_REPLY_TYPE_OFFSET_HOLE, head, 12,
                            NULL, 0);
    }
    data = req->buf + (pos - req->offset);
    ret = nbd_co_read_range(req->client, pos, len, data);
    if (ret < 0) {
        trace_nbd_request_failed(req->client, req->cookie, req->type, ret);
        ret = nbd_co_error_chunk(req, nbd_errno_to_wire(ret), "read failed",
                                 pos);
        return ret < 0 ? ret : 1;
    }
    return nbd_co_chunk(req, done, NBD_REPLY_TYPE_OFFSET_DATA, head, 8, data,
                        len);
}

/*
 * Structured read with holes: runs of zero extents become OFFSET_HOLE
 * chunks, runs of data extents are read with one request each.
 */
static int coroutine_fn nbd_co_read_sparse(NBDRequest *req)
{
    BlockDriverState *bs = bdrv_child_bs(req->client->exp->root);
    uint64_t pos = req->offset, end = req->offset + req->len;
    bool zero, next_zero = false;
    int64_t next_len = 0;
    int ret;

    while (pos < end) {
        uint64_t run;

        if (next_len) {
            zero = next_zero;
            run = next_len;
            next_len = 0;
        } else {
            run = nbd_co_zero_extent(bs, pos, end, &zero);
        }
        /* Extend the run over following extents of the same kind. */
        while (pos + run < end) {
            next_len = nbd_co_zero_extent(bs, pos + run, end, &next_zero);
            if (next_zero != zero) {
                break;
            }
            run += next_len;
            next_len = 0;
        }
        ret = nbd_co_sparse_chunk(req, pos, run, zero, pos + run == end);
        if (ret) {
            return ret < 0 ? ret : 0;
        }
        pos += run;
    }
    return 0;
}

/*
 * READ. Small reads (and DF reads) are one data chunk: probing block
 * status would cost more than sending a few zero bytes. Simple replies
 * carry the data right after the header, or nothing on error.
 */
static int coroutine_fn nbd_co_cmd_read(NBDRequest *req)
{
    NBDClient *client = req->client;
    uint8_t head[8];
    int ret;

    if (client->structured && req->len >= NBD_SPARSE_READ_MIN &&
        !(req->flags & NBD_CMD_FLAG_DF)) {
        return nbd_co_read_sparse(req);
    }
    ret = req->len ? nbd_co_read_range(client, req->offset, req->len,
                                       req->buf) : 0;
    if (!client->structured) {
        return nbd_co_simple_reply(req, nbd_errno_to_wire(ret),
                                   ret < 0 ? NULL : req->buf,
                                   ret < 0 ? 0 : req->len);
    }
    if (ret < 0) {
        trace_nbd_request_failed(client, req->cookie, req->type, ret);
        return nbd_co_error_chunk(req, nbd_errno_to_wire(ret), "read failed",
                                  req->offset);
    }
    if (!req->len) {
        return nbd_co_generic_reply(req, 0, "read");
    }
    stbe64_p(head, req->offset);
    return nbd_co_chunk(req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_OFFSET_DATA,
                        head, 8, req->buf, req->len);
}

/* Whether a write-side request must be durable before its reply. */
static bool nbd_req_fua(NBDRequest *req)
{
    return (req->flags & NBD_CMD_FLAG_FUA) || req->client->exp->writethrough;
}

/* WRITE: the payload was read by the reader; FUA maps to BDRV_REQ_FUA. */
static int coroutine_fn nbd_co_cmd_write(NBDRequest *req)
{
    BdrvRequestFlags flags = nbd_req_fua(req) ? BDRV_REQ_FUA : 0;
    QEMUIOVector qiov;
    int ret = 0;

    if (req->len) {
        qemu_iovec_init_buf(&qiov, req->buf, req->len);
        ret = bdrv_co_pwritev(req->client->exp->root, req->offset, req->len,
                              &qiov, flags);
        qemu_iovec_destroy(&qiov);
    }
    return nbd_co_generic_reply(req, ret, "write");
}

/*
 * WRITE_ZEROES: without NO_HOLE the range may be deallocated; FAST_ZERO
 * must fail (ENOTSUP) rather than fall back to writing zero buffers.
 */
static int coroutine_fn nbd_co_cmd_write_zeroes(NBDRequest *req)
{
    BdrvRequestFlags flags = 0;
    int ret = 0;

    if (nbd_req_fua(req)) {
        flags |= BDRV_REQ_FUA;
    }
    if (!(req->flags & NBD_CMD_FLAG_NO_HOLE)) {
        flags |= BDRV_REQ_MAY_UNMAP;
    }
    if (req->flags & NBD_CMD_FLAG_FAST_ZERO) {
        flags |= BDRV_REQ_NO_FALLBACK;
    }
    if (req->len) {
        ret = bdrv_co_pwrite_zeroes(req->client->exp->root, req->offset,
                                    req->len, flags);
    }
    return nbd_co_generic_reply(req, ret, "write zeroes");
}

/* TRIM: a hint; a node that cannot discard still reports success. */
static int coroutine_fn nbd_co_cmd_trim(NBDRequest *req)
{
    NBDClient *client = req->client;
    int ret = 0;

    if (req->len) {
        ret = bdrv_co_pdiscard(client->exp->root, req->offset, req->len);
    }
    if (ret == -ENOTSUP) {
        ret = 0;   /* trim is advisory */
    }
    if (ret == 0 && nbd_req_fua(req)) {
        ret = bdrv_co_flush(bdrv_child_bs(client->exp->root));
    }
    return nbd_co_generic_reply(req, ret, "trim");
}

/* CACHE: read through the block layer (populating copy-on-read). */
static int coroutine_fn nbd_co_cmd_cache(NBDRequest *req)
{
    uint64_t pos = req->offset, end = req->offset + req->len;
    size_t chunk = MIN(req->len, NBD_CACHE_CHUNK);
    void *buf = chunk ? qemu_try_memalign(4096, chunk) : NULL;
    int ret = 0;

    if (chunk && !buf) {
        return nbd_co_generic_reply(req, -ENOMEM, "cache");
    }
    while (pos < end && ret >= 0) {
        uint32_t n = MIN(end - pos, chunk);
        ret = nbd_co_read_range(req->client, pos, n, buf);
        pos += n;
    }
    qemu_vfree(buf);
    return nbd_co_generic_reply(req, ret < 0 ? ret : 0, "cache");
}

/* Translate block status into base:allocation flags (as QEMU's server). */
static uint32_t nbd_alloc_flags(int status)
{
    return (status & BDRV_BLOCK_DATA ? 0 : NBD_STATE_HOLE) |
           (status & BDRV_BLOCK_ZERO ? NBD_STATE_ZERO : 0);
}

/*
 * BLOCK_STATUS for base:allocation over the whole chain. Adjacent extents
 * with equal flags are merged; REQ_ONE stops after the first (merged)
 * extent; at most NBD_MAX_EXTENTS descriptors are sent, which the
 * protocol allows (the client asks again for the rest).
 */
static int coroutine_fn nbd_co_cmd_block_status(NBDRequest *req)
{
    BlockDriverState *bs = bdrv_child_bs(req->client->exp->root);
    bool one = req->flags & NBD_CMD_FLAG_REQ_ONE;
    uint64_t pos = req->offset, end = req->offset + req->len;
    g_autofree uint8_t *ext = g_malloc(8 * NBD_MAX_EXTENTS);
    uint8_t ctx[4];
    uint32_t n = 0, last = 0, run = 0;

    while (pos < end) {
        int64_t pnum = 0;
        int ret = bdrv_co_block_status_above(bs, NULL, pos, end - pos, &pnum,
                                             NULL, NULL, NULL);
        uint32_t fl;

        if (ret < 0) {
            return nbd_co_generic_reply(req, ret, "block status");
        }
        if (pnum <= 0) {
            break;
        }
        pnum = MIN((uint64_t)pnum, end - pos);
        fl = nbd_alloc_flags(ret);
        if (n && fl == last) {
            run += pnum;
        } else {
            if (n) {
                stbe32_p(ext + 8 * (n - 1), run);
                stbe32_p(ext + 8 * (n - 1) + 4, last);
            }
            if (n == NBD_MAX_EXTENTS || (one && n == 1)) {
                break;
            }
            n++;
            last = fl;
            run = pnum;
        }
        pos += pnum;
    }
    if (!n) {
        return nbd_co_generic_reply(req, -EIO, "block status");
    }
    stbe32_p(ext + 8 * (n - 1), run);
    stbe32_p(ext + 8 * (n - 1) + 4, last);
    trace_nbd_block_status(req->client, (unsigned long long)req->offset,
                           req->len, n);
    stbe32_p(ctx, NBD_META_CONTEXT_ID);
    return nbd_co_chunk(req, NBD_REPLY_FLAG_DONE, NBD_REPLY_TYPE_BLOCK_STATUS,
                        ctx, 4, ext, 8 * n);
}

/*
 * Run one command and send its reply. The command waits out a drained
 * section first: flush and block status look up the export's node
 * directly, and a drain must not keep seeing new requests arrive.
 */
static int coroutine_fn nbd_co_dispatch(NBDRequest *req)
{
    NBDClient *client = req->client;

    bdrv_co_wait_unquiesced(client->exp->root);
    switch (req->type) {
    case NBD_CMD_READ:
        return nbd_co_cmd_read(req);
    case NBD_CMD_WRITE:
        return nbd_co_cmd_write(req);
    case NBD_CMD_WRITE_ZEROES:
        return nbd_co_cmd_write_zeroes(req);
    case NBD_CMD_TRIM:
        return nbd_co_cmd_trim(req);
    case NBD_CMD_FLUSH:
        return nbd_co_generic_reply(req,
            bdrv_co_flush(bdrv_child_bs(client->exp->root)), "flush");
    case NBD_CMD_CACHE:
        return nbd_co_cmd_cache(req);
    case NBD_CMD_BLOCK_STATUS:
        return nbd_co_cmd_block_status(req);
    default:
        req->error = NBD_EINVAL;
        return nbd_co_refuse(req, "unknown command");
    }
}

/* Release a finished request and let a parked reader continue. */
static void nbd_request_finish(NBDRequest *req)
{
    NBDClient *client = req->client;

    client->inflight--;
    client->inflight_bytes -= req->type == NBD_CMD_READ ||
                              req->type == NBD_CMD_WRITE ? req->len : 0;
    nbd_request_put(client, req);
    if (client->reader_waits &&
        (client->inflight == 0 ||
         (client->inflight < NBD_MAX_INFLIGHT &&
          client->inflight_bytes < NBD_MAX_INFLIGHT_BYTES))) {
        client->reader_waits = false;
        aio_co_wake(client->co);
    }
}

/* Entry of a request coroutine. */
static void coroutine_fn nbd_request_co_entry(void *opaque)
{
    NBDRequest *req = opaque;
    int ret;

    if (req->error) {
        ret = nbd_co_refuse(req, req->error == NBD_EPERM ?
                            "export is read-only" :
                            req->error == NBD_EOVERFLOW ?
                            "request too large" : "invalid request");
    } else {
        ret = nbd_co_dispatch(req);
    }
    trace_nbd_request_done(req->client, req->cookie, ret);
    nbd_request_finish(req);
}

/* ---- receiving ----------------------------------------------------- */

/* Flags each command accepts (FUA is accepted everywhere, per spec). */
static uint16_t nbd_cmd_valid_flags(NBDClient *client, uint16_t type)
{
    switch (type) {
    case NBD_CMD_READ:
        return NBD_CMD_FLAG_FUA | (client->structured ? NBD_CMD_FLAG_DF : 0);
    case NBD_CMD_WRITE_ZEROES:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
               NBD_CMD_FLAG_FAST_ZERO;
    case NBD_CMD_BLOCK_STATUS:
        return NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_REQ_ONE;
    default:
        return NBD_CMD_FLAG_FUA;
    }
}

/*
 * Decide whether a parsed request is acceptable; sets req->error. The
 * order follows the protocol's priorities: malformed first, then
 * permission (EPERM on a read-only export), then range.
 */
static void nbd_check_request(NBDClient *client, NBDRequest *req)
{
    bool writes = req->type == NBD_CMD_WRITE || req->type == NBD_CMD_TRIM ||
                  req->type == NBD_CMD_WRITE_ZEROES;

    if (req->type > NBD_CMD_BLOCK_STATUS) {
        req->error = NBD_EINVAL;
    } else if (req->flags & ~nbd_cmd_valid_flags(client, req->type)) {
        req->error = NBD_EINVAL;
    } else if (writes && !client->exp->writable) {
        req->error = NBD_EPERM;
    } else if (req->type == NBD_CMD_READ && req->len > NBD_MAX_PAYLOAD) {
        req->error = NBD_EINVAL;
    } else if (req->type == NBD_CMD_BLOCK_STATUS &&
               (!client->meta_base_alloc || req->len == 0)) {
        req->error = NBD_EINVAL;
    } else if (req->type != NBD_CMD_FLUSH && req->type != NBD_CMD_DISC &&
               (req->offset > client->exp_size ||
                req->len > client->exp_size - req->offset)) {
        /* Past the end: writes get ENOSPC as the protocol suggests. */
        req->error = req->type == NBD_CMD_WRITE ||
                     req->type == NBD_CMD_WRITE_ZEROES ?
                     NBD_ENOSPC : NBD_EINVAL;
    }
}

/*
 * Read one request and its payload. 0 when req is ready (perhaps with
 * req->error set), -errno when the connection must be dropped.
 */
static int coroutine_fn nbd_co_receive_request(NBDClient *client,
                                               NBDRequest *req)
{
    uint8_t hdr[NBD_REQUEST_SIZE];
    int ret = nbd_co_recv(client, hdr, sizeof(hdr));

    if (ret < 0) {
        return ret;
    }
    if (ldbe32_p(hdr) != NBD_REQUEST_MAGIC) {
        trace_nbd_request_bad_magic(client, ldbe32_p(hdr));
        return -EINVAL;
    }
    req->flags = ldbe16_p(hdr + 4);
    req->type = ldbe16_p(hdr + 6);
    req->cookie = ldbe64_p(hdr + 8);
    req->offset = ldbe64_p(hdr + 16);
    req->len = ldbe32_p(hdr + 24);
    trace_nbd_request_receive(client, req->cookie, req->type, req->flags,
                              (unsigned long long)req->offset, req->len);
    if (req->type == NBD_CMD_DISC) {
        return 0;
    }
    if (req->type == NBD_CMD_WRITE && req->len > NBD_MAX_PAYLOAD) {
        if (req->len > NBD_MAX_SKIP_PAYLOAD) {
            return -EOVERFLOW;
        }
        req->error = NBD_EOVERFLOW;
        return nbd_co_skip(client, req->len);
    }
    nbd_check_request(client, req);
    if (!req->error && (req->type == NBD_CMD_READ ||
                        req->type == NBD_CMD_WRITE) &&
        !nbd_request_buf(req, req->len)) {
        req->error = NBD_ENOMEM;
    }
    if (req->type != NBD_CMD_WRITE) {
        return 0;
    }
    if (req->error) {
        return nbd_co_skip(client, req->len);
    }
    return nbd_co_recv(client, req->buf, req->len);
}

/* Park the reader until fewer requests are in flight (or none if drain). */
static void coroutine_fn nbd_co_wait_inflight(NBDClient *client, bool drain)
{
    while (drain ? client->inflight > 0 :
           (client->inflight >= NBD_MAX_INFLIGHT ||
            client->inflight_bytes >= NBD_MAX_INFLIGHT_BYTES)) {
        client->reader_waits = true;
        qemu_coroutine_yield();
    }
}

/*
 * The reader loop. Each request coroutine is entered at once: it runs
 * until its I/O is submitted and yields back here, so requests of one
 * burst are all in flight before the reader waits for the socket again.
 */
void coroutine_fn nbd_co_transmission(NBDClient *client)
{
    int ret = 0;

    while (!client->closing) {
        NBDRequest *req;

        nbd_co_wait_inflight(client, false);
        if (client->closing) {
            break;
        }
        req = nbd_request_get(client);
        ret = nbd_co_receive_request(client, req);
        if (ret < 0 || req->type == NBD_CMD_DISC) {
            nbd_request_put(client, req);
            break;
        }
        client->inflight++;
        if (req->type == NBD_CMD_READ || req->type == NBD_CMD_WRITE) {
            client->inflight_bytes += req->len;
        }
        qemu_coroutine_enter(qemu_coroutine_create(nbd_request_co_entry,
                                                   req));
    }
    trace_nbd_transmission_end(client, ret, client->inflight);
    if (ret < 0) {
        /* Broken or hostile peer: make pending replies fail fast. */
        nbd_client_kick(client);
    }
    /* On NBD_CMD_DISC, in-flight requests still get their replies. */
    nbd_co_wait_inflight(client, true);
}
