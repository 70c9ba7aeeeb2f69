/*
 * HTTP(S) protocol driver (libcurl): read-only access to a remote image.
 *
 * State: one CURLM multi handle per node, driven by the main loop. libcurl
 * tells us which sockets to watch (curl_sock_cb -> aio_set_fd_handler) and
 * when to call it back (curl_timer_cb -> one QEMUTimer). Each read is a
 * coroutine that adds one easy handle fetching a byte Range and yields
 * until the loop sees that transfer finish, so several reads can be in
 * flight at once. The image size comes from a blocking HEAD request at
 * open time. A single readahead buffer (the last transfer, which fetched
 * `readahead` bytes past what was asked) serves small sequential reads.
 *
 * Safety: everything runs on the main loop thread; libcurl is only called
 * from there, and completions only set fields of the waiting request and
 * wake its coroutine (entered later from a bottom half, never nested).
 * The node is always read-only: writes are refused by the core.
 *
 * Replies are judged by block/curl-headers.c before any body byte is
 * used: a 206 whose Content-Range is not the asked range, or a 200 to a
 * partial Range request (the server ignored it), fails the read with -EIO
 * instead of returning wrong data. Every failed read notes the URL and
 * the HTTP status or curl's error text on the node (bdrv_note_io_error).
 *
 * Credentials (username, password-secret, proxy-*) are copied from the
 * secret registry (qemu/secret.h) at open, so deleting the secret object
 * later does not affect an open node; they never reach traces or errors.
 */
#include "qemu/osdep.h"
#include <curl/curl.h>
#include "block/block_int.h"
#include "qemu/aio.h"
#include "qemu/iov.h"
#include "qemu/qdict.h"
#include "qemu/secret.h"
#include "curl-headers.h"
#include "trace.h"

#define CURL_DEFAULT_READAHEAD (256 * 1024)
#define CURL_DEFAULT_TIMEOUT   5     /* seconds, as QEMU */
#define CURL_MAX_TIMEOUT       3600
/* Transfers worth keeping in flight on one multi handle (a hint to jobs). */
#define CURL_PARALLEL_REQUESTS 16
/* libcurl's receive buffer per transfer (its default is 16 KiB). */
#define CURL_RECV_BUFFER       (256L * 1024)

typedef struct BDRVCurlState {
    char *url;
    char *cookie;
    char *username;
    char *password;
    char *proxy_username;
    char *proxy_password;
    bool sslverify;
    int64_t readahead;
    long timeout;
    int64_t len;
    CURLM *multi;
    QEMUTimer *timer;
    /* Readahead cache: bytes [cache_off, cache_off + cache_len). */
    uint8_t *cache;
    int64_t cache_off;
    int64_t cache_len;
} BDRVCurlState;

/* One socket libcurl asked us to watch. */
typedef struct CurlSocket {
    BDRVCurlState *s;
    curl_socket_t fd;
} CurlSocket;

/* One Range transfer; lives on the stack of the reading coroutine. */
typedef struct CurlReq {
    BlockDriverState *bs;
    BDRVCurlState *s;
    CURL *easy;
    Coroutine *co;
    int64_t offset;
    int64_t bytes;
    /* The body's first head bytes go to qiov, the rest to tail. */
    QEMUIOVector *qiov;
    int64_t head;
    uint8_t *tail;
    int64_t got;
    bool done;
    CURLcode result;
    char errbuf[CURL_ERROR_SIZE];
    CurlHttpResponse resp;  /* the reply's headers, parsed as they come */
    bool checked;          /* resp judged (at the first body byte) */
    int check_ret;         /* its verdict: 0 or -errno with detail set */
    char *detail;
} CurlReq;

static int curl_global_ready;

/* Initialise libcurl once per process. Returns false with errp set. */
static bool curl_init_once(Error **errp)
{
    if (!curl_global_ready) {
        if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
            error_setg(errp, "curl: could not initialise libcurl");
            return false;
        }
        curl_global_ready = 1;
    }
    return true;
}

/* Options every easy handle of this node shares. */
static void curl_setup_easy(BDRVCurlState *s, CURL *easy, char *errbuf)
{
    curl_easy_setopt(easy, CURLOPT_URL, s->url);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT, s->timeout);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, s->sslverify ? 1L : 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, s->sslverify ? 2L : 0L);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "qblk");
    /* Larger receive chunks: fewer recv() calls and callbacks per MiB. */
    curl_easy_setopt(easy, CURLOPT_BUFFERSIZE, CURL_RECV_BUFFER);
    if (s->cookie) {
        curl_easy_setopt(easy, CURLOPT_COOKIE, s->cookie);
    }
    if (s->username) {
        curl_easy_setopt(easy, CURLOPT_USERNAME, s->username);
    }
    if (s->password) {
        curl_easy_setopt(easy, CURLOPT_PASSWORD, s->password);
    }
    if (s->proxy_username) {
        curl_easy_setopt(easy, CURLOPT_PROXYUSERNAME, s->proxy_username);
    }
    if (s->proxy_password) {
        curl_easy_setopt(easy, CURLOPT_PROXYPASSWORD, s->proxy_password);
    }
    errbuf[0] = '\0';
}

/* Human-readable reason for a failed transfer. */
static const char *curl_reason(CURLcode code, const char *errbuf)
{
    return errbuf[0] ? errbuf : curl_easy_strerror(code);
}

/* ---- Main loop glue */

static void curl_check_done(BDRVCurlState *s);

/* fd became readable/writable: let libcurl make progress on it. */
static void curl_sock_action(CurlSocket *cs, int what)
{
    BDRVCurlState *s = cs->s;   /* cs may be freed by the action */
    int running;

    curl_multi_socket_action(s->multi, cs->fd, what, &running);
    curl_check_done(s);
}

/* aio fd handlers: forward readiness to libcurl. */
static void curl_sock_read(void *opaque)
{
    curl_sock_action(opaque, CURL_CSELECT_IN);
}

static void curl_sock_write(void *opaque)
{
    curl_sock_action(opaque, CURL_CSELECT_OUT);
}

/* CURLMOPT_SOCKETFUNCTION: (un)register fd with the main loop. */
static int curl_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
                        void *socketp)
{
    BDRVCurlState *s = userp;
    CurlSocket *cs = socketp;

    trace_curl_sock_cb(s, fd, what);
    if (what == CURL_POLL_REMOVE) {
        aio_set_fd_handler(fd, NULL, NULL, NULL);
        g_free(cs);
        curl_multi_assign(s->multi, fd, NULL);
        return 0;
    }
    if (!cs) {
        cs = g_new0(CurlSocket, 1);
        cs->s = s;
        cs->fd = fd;
        curl_multi_assign(s->multi, fd, cs);
    }
    aio_set_fd_handler(fd,
                       (what & CURL_POLL_IN) ? curl_sock_read : NULL,
                       (what & CURL_POLL_OUT) ? curl_sock_write : NULL, cs);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: arm or cancel our one timer. */
static int curl_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    BDRVCurlState *s = userp;

    if (timeout_ms < 0) {
        timer_del(s->timer);
    } else {
        timer_mod_ns(s->timer,
                     qemu_clock_get_ns() + (int64_t)timeout_ms * 1000000);
    }
    return 0;
}

/* The timer fired: let libcurl handle its timeouts. */
static void curl_timer_fire(void *opaque)
{
    BDRVCurlState *s = opaque;
    int running;

    curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    curl_check_done(s);
}

/* Collect finished transfers and wake their coroutines. */
static void curl_check_done(BDRVCurlState *s)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(s->multi, &left))) {
        CurlReq *req = NULL;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
        req->result = msg->data.result;
        curl_multi_remove_handle(s->multi, req->easy);
        req->done = true;
        aio_co_wake(req->co);
    }
}

/* ---- Data path */

/* CURLOPT_HEADERFUNCTION for Range transfers: parse each header line. */
static size_t curl_range_header(char *ptr, size_t size, size_t nmemb,
                                void *opaque)
{
    CurlReq *req = opaque;
    size_t n = size * nmemb;

    curl_http_parse_line(&req->resp, ptr, n);
    return n;
}

/* Judge the reply's headers once; false (detail set) if unusable. */
static bool curl_range_check(CurlReq *req)
{
    if (!req->checked) {
        req->checked = true;
        req->check_ret = curl_http_check_range_reply(&req->resp, req->offset,
                                                     req->bytes, req->s->len,
                                                     &req->detail);
    }
    return req->check_ret == 0;
}

/*
 * CURLOPT_WRITEFUNCTION for Range transfers: fill the caller's qiov, then
 * the readahead tail, no further (no bounce copy of the asked bytes).
 * The headers are complete by the first body byte: a reply that is not
 * the asked range aborts the transfer before anything is stored.
 */
static size_t curl_range_write(char *ptr, size_t size, size_t nmemb,
                               void *opaque)
{
    CurlReq *req = opaque;
    size_t n = size * nmemb;
    size_t room = req->bytes - req->got;

    if (!curl_range_check(req)) {
        return 0;
    }
    if (n > room) {
        req->check_ret = -EIO;
        req->detail = g_strdup_printf("the server sent more than the %lld "
                                      "bytes asked at offset %lld",
                                      (long long)req->bytes,
                                      (long long)req->offset);
        return 0;
    }
    if (req->got < req->head) {
        size_t k = MIN(n, req->head - req->got);

        qemu_iovec_from_buf(req->qiov, req->got, ptr, k);
        req->got += k;
        ptr += k;
        n -= k;
    }
    if (n) {
        memcpy(req->tail + (req->got - req->head), ptr, n);
        req->got += n;
    }
    return size * nmemb;
}

/* -errno for a failed transfer (curl's own error, not an HTTP status). */
static int curl_code_errno(CURLcode code)
{
    switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
        return -ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return -ENOMEM;
    case CURLE_LOGIN_DENIED:
        return -EACCES;
    default:
        return -EIO;
    }
}

/*
 * The verdict on a finished transfer: 0, or -errno with the reason in
 * req->detail (curl error text, HTTP status, range mismatch, short body).
 */
static int curl_fetch_verdict(CurlReq *req)
{
    if (req->check_ret < 0) {
        return req->check_ret;      /* judged while the body came in */
    }
    if (req->result != CURLE_OK) {
        req->detail = g_strdup(curl_reason(req->result, req->errbuf));
        return curl_code_errno(req->result);
    }
    if (!curl_range_check(req)) {
        return req->check_ret;      /* e.g. an error status with no body */
    }
    if (req->got != req->bytes) {
        req->detail = g_strdup_printf("short response (%lld of %lld bytes "
                                      "at offset %lld)",
                                      (long long)req->got,
                                      (long long)req->bytes,
                                      (long long)req->offset);
        return -EIO;
    }
    return 0;
}

/*
 * Fetch [offset, offset + bytes) through the multi handle, yielding until
 * done: the first qiov->size bytes into qiov, the rest into tail.
 * Returns 0 or -errno, noting the URL and reason on the node.
 */
static int coroutine_fn curl_co_fetch(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, QEMUIOVector *qiov,
                                      uint8_t *tail)
{
    BDRVCurlState *s = bs->opaque;
    CurlReq req = { .bs = bs, .s = s, .offset = offset, .bytes = bytes,
                    .qiov = qiov, .head = qiov->size, .tail = tail };
    char range[64];
    int ret;

    curl_http_response_init(&req.resp);
    req.easy = curl_easy_init();
    if (!req.easy) {
        bdrv_note_io_error(bs, "%s: could not create a transfer", s->url);
        return -ENOMEM;
    }
    req.co = qemu_coroutine_self();
    curl_setup_easy(s, req.easy, req.errbuf);
    snprintf(range, sizeof(range), "%lld-%lld", (long long)offset,
             (long long)(offset + bytes - 1));
    curl_easy_setopt(req.easy, CURLOPT_RANGE, range);
    curl_easy_setopt(req.easy, CURLOPT_HEADERFUNCTION, curl_range_header);
    curl_easy_setopt(req.easy, CURLOPT_HEADERDATA, &req);
    curl_easy_setopt(req.easy, CURLOPT_WRITEFUNCTION, curl_range_write);
    curl_easy_setopt(req.easy, CURLOPT_WRITEDATA, &req);
    curl_easy_setopt(req.easy, CURLOPT_PRIVATE, (char *)&req);
    trace_curl_fetch(s, offset, bytes);
    curl_multi_add_handle(s->multi, req.easy);
    while (!req.done) {
        qemu_coroutine_yield();
    }
    ret = curl_fetch_verdict(&req);
    trace_curl_fetch_done(s, offset, req.resp.status, ret);
    if (ret < 0) {
        trace_curl_fetch_error(s, offset, req.detail);
        bdrv_note_io_error(bs, "%s: %s", s->url, req.detail);
    }
    g_free(req.detail);
    curl_easy_cleanup(req.easy);
    return ret;
}

/*
 * Read from the readahead buffer when it covers the request, else fetch
 * the request straight into qiov. A request smaller than `readahead` also
 * fetches `readahead` bytes past it (clipped at the end of the image),
 * kept as the new buffer for the small sequential reads that follow;
 * larger requests come from jobs and prefetch, which keep several in
 * flight and would only throw such a tail away.
 */
static int coroutine_fn curl_co_preadv(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, QEMUIOVector *qiov,
                                       BdrvRequestFlags flags)
{
    BDRVCurlState *s = bs->opaque;
    QEMUIOVector head;
    int64_t want;
    uint8_t *buf;
    int ret;

    trace_curl_co_preadv(bs, offset, bytes);
    if (s->cache && offset >= s->cache_off &&
        offset + bytes <= s->cache_off + s->cache_len) {
        qemu_iovec_from_buf(qiov, 0, s->cache + (offset - s->cache_off),
                            bytes);
        return 0;
    }
    trace_curl_cache_miss(bs, offset, bytes);
    want = bytes;
    if (bytes < s->readahead) {
        want = MIN(bytes + s->readahead, s->len - offset);
    }
    buf = want > bytes ? g_malloc(want - bytes) : NULL;
    qemu_iovec_init_slice(&head, qiov, 0, bytes);
    ret = curl_co_fetch(bs, offset, want, &head, buf);
    qemu_iovec_destroy(&head);
    if (ret < 0 || !buf) {
        g_free(buf);
        return ret;
    }
    /* Keep the tail as the readahead buffer. */
    g_free(s->cache);
    s->cache = buf;
    s->cache_off = offset + bytes;
    s->cache_len = want - bytes;
    return 0;
}

/* ---- Open: HEAD for the size and range support */

/* CURLOPT_HEADERFUNCTION for HEAD: parse into the CurlHttpResponse. */
static size_t curl_head_header(char *ptr, size_t size, size_t nmemb,
                               void *opaque)
{
    size_t n = size * nmemb;

    curl_http_parse_line(opaque, ptr, n);
    return n;
}

/* Blocking HEAD request: sets s->len. Returns 0 or -errno with errp set. */
static int curl_probe_size(BDRVCurlState *s, Error **errp)
{
    CURL *easy = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE];
    CurlHttpResponse head;
    CURLcode code;
    int ret = 0;

    if (!easy) {
        error_setg(errp, "curl initialisation failed");
        return -ENOMEM;
    }
    curl_http_response_init(&head);
    curl_setup_easy(s, easy, errbuf);
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, curl_head_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, &head);
    code = curl_easy_perform(easy);
    trace_curl_head(s, s->url, head.status, (long long)head.content_length);
    if (code != CURLE_OK) {
        error_setg(errp, "%s", curl_reason(code, errbuf));
        ret = curl_code_errno(code);
    } else if (head.status >= 400 || head.status < 200) {
        error_setg(errp, "HTTP %d", head.status);
        ret = head.status >= 400 ? curl_http_status_errno(head.status) : -EIO;
    } else if (head.content_length < 0) {
        error_setg(errp, "the server did not report the size "
                   "(no Content-Length)");
        ret = -EIO;
    } else if (!head.accept_ranges) {
        error_setg(errp, "the server does not support byte ranges "
                   "(no 'Accept-Ranges: bytes')");
        ret = -ENOTSUP;
    } else {
        s->len = head.content_length;
    }
    curl_easy_cleanup(easy);
    return ret;
}

/* ---- Options */

/* "http://..." / "https://...": the whole name is the URL. */
static void curl_parse_filename(const char *filename, QDict *options,
                                Error **errp)
{
    qdict_put_str(options, "url", filename);
}

/*
 * Copy the secret named by option key (if given) into *dst.
 * Returns false with errp set when no such secret exists.
 */
static bool curl_take_secret(QDict *options, const char *key, char **dst,
                             Error **errp)
{
    const char *id = qdict_get_try_str(options, key);
    const char *val;

    if (!id) {
        return true;
    }
    val = qblk_secret_lookup(id, errp);
    if (!val) {
        return false;
    }
    *dst = g_strdup(val);
    qdict_del(options, key);
    return true;
}

/* username, password-secret and their proxy- twins into s. */
static bool curl_take_credentials(BDRVCurlState *s, QDict *options,
                                  Error **errp)
{
    if (!curl_take_secret(options, "password-secret", &s->password, errp) ||
        !curl_take_secret(options, "proxy-password-secret",
                          &s->proxy_password, errp)) {
        return false;
    }
    s->username = g_strdup(qdict_get_try_str(options, "username"));
    s->proxy_username = g_strdup(qdict_get_try_str(options,
                                                   "proxy-username"));
    qdict_del(options, "username");
    qdict_del(options, "proxy-username");
    return true;
}

/* Free a string that may hold a secret, wiping it first. */
static void curl_free_secret(char **p)
{
    if (*p) {
        memset(*p, 0, strlen(*p));
        g_free(*p);
        *p = NULL;
    }
}

/* Consume the driver's options into s. Returns false with errp set. */
static bool curl_take_options(BlockDriverState *bs, BDRVCurlState *s,
                              QDict *options, Error **errp)
{
    bool https = !strcmp(bs->drv->format_name, "https");
    const char *url = qdict_get_try_str(options, "url");
    const char *cookie = qdict_get_try_str(options, "cookie");
    uint64_t readahead, timeout;

    if (!url) {
        url = qdict_get_try_str(options, "filename");
    }
    if (!url) {
        error_setg(errp, "The '%s' block driver requires a 'url' option",
                   bs->drv->format_name);
        return false;
    }
    if (!g_str_has_prefix(url, https ? "https://" : "http://")) {
        error_setg(errp, "Invalid URL '%s' for the %s driver", url,
                   bs->drv->format_name);
        return false;
    }
    if (!qdict_get_size(options, "readahead", CURL_DEFAULT_READAHEAD,
                        &readahead, errp) ||
        !qdict_get_uint(options, "timeout", CURL_DEFAULT_TIMEOUT, &timeout,
                        errp) ||
        !qdict_get_bool(options, "sslverify", true, &s->sslverify, errp)) {
        return false;
    }
    if (https == false && qdict_haskey(options, "sslverify")) {
        error_setg(errp, "Option 'sslverify' is only valid for https");
        return false;
    }
    if (readahead % 512 || readahead > INT32_MAX) {
        error_setg(errp, "HTTP readahead size must be a multiple of 512 "
                   "bytes and at most 2 GiB");
        return false;
    }
    if (timeout == 0 || timeout > CURL_MAX_TIMEOUT) {
        error_setg(errp, "timeout must be between 1 and %d seconds",
                   CURL_MAX_TIMEOUT);
        return false;
    }
    if (!curl_take_credentials(s, options, errp)) {
        return false;
    }
    s->url = g_strdup(url);
    s->cookie = g_strdup(cookie);
    s->readahead = readahead;
    s->timeout = timeout;
    qdict_del(options, "url");
    qdict_del(options, "filename");
    qdict_del(options, "cookie");
    qdict_del(options, "readahead");
    qdict_del(options, "timeout");
    qdict_del(options, "sslverify");
    return true;
}

/* Free everything curl_open set up; safe on a half-opened node. */
static void curl_close(BlockDriverState *bs)
{
    BDRVCurlState *s = bs->opaque;

    if (s->multi) {
        curl_multi_cleanup(s->multi);
    }
    if (s->timer) {
        timer_del(s->timer);
        timer_free(s->timer);
    }
    g_free(s->cache);
    g_free(s->url);
    g_free(s->cookie);
    g_free(s->username);
    g_free(s->proxy_username);
    curl_free_secret(&s->password);
    curl_free_secret(&s->proxy_password);
}

/*
 * Take the options, HEAD the URL for size and range support, then set up
 * the multi handle the reads share. The node is always read-only.
 */
static int curl_open(BlockDriverState *bs, QDict *options, int flags,
                     Error **errp)
{
    BDRVCurlState *s = bs->opaque;
    int ret;

    if (!curl_init_once(errp) || !curl_take_options(bs, s, options, errp)) {
        curl_close(bs);     /* frees a password already copied */
        return -EINVAL;
    }
    g_strlcpy(bs->filename, s->url, sizeof(bs->filename));
    trace_curl_open(bs, s->url, (long long)s->readahead, (int)s->timeout);
    ret = curl_probe_size(s, errp);
    if (ret < 0) {
        /* as file-posix: name what failed (blockdev-add adds nothing) */
        error_prepend(errp, "Could not open '%s': ", s->url);
        curl_close(bs);
        return ret;
    }
    /* HTTP is read-only: behave like auto-read-only, writes get EPERM. */
    bs->read_only = true;
    bs->total_bytes = s->len;
    s->timer = timer_new_ns(curl_timer_fire, s);
    s->multi = curl_multi_init();
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, curl_sock_cb);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, curl_timer_cb);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
    return 0;
}

/* The size the HEAD request reported at open. */
static int64_t curl_getlength(BlockDriverState *bs)
{
    BDRVCurlState *s = bs->opaque;

    return s->len;
}

/*
 * Byte-granular; cap a transfer (plus readahead) at 64 MiB; many
 * transfers may be in flight (each has its own round trip).
 */
static void curl_refresh_limits(BlockDriverState *bs, Error **errp)
{
    bs->bl.request_alignment = 1;
    bs->bl.max_transfer = 64 * 1024 * 1024;
    bs->bl.parallel_requests = CURL_PARALLEL_REQUESTS;
}

/* Everything is data (no sparseness information over HTTP). */
static int coroutine_fn curl_co_block_status(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file)
{
    *pnum = bytes;
    *map = offset;
    *file = bs;
    return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
}

/* Nothing to flush: the node never holds dirty data. */
static int coroutine_fn curl_co_flush(BlockDriverState *bs)
{
    return 0;
}

/* http and https differ only in their name (and https's sslverify). */
#define CURL_DRIVER(name)                                   \
    {                                                       \
        .format_name = (name),                              \
        .instance_size = sizeof(BDRVCurlState),             \
        .protocol = true,                                   \
        .bdrv_parse_filename = curl_parse_filename,         \
        .bdrv_open = curl_open,                             \
        .bdrv_close = curl_close,                           \
        .bdrv_refresh_limits = curl_refresh_limits,         \
        .bdrv_co_preadv = curl_co_preadv,                   \
        .bdrv_co_flush_to_disk = curl_co_flush,             \
        .bdrv_co_block_status = curl_co_block_status,       \
        .bdrv_getlength = curl_getlength,                   \
    }

const BlockDriver bdrv_http = CURL_DRIVER("http");
const BlockDriver bdrv_https = CURL_DRIVER("https");
