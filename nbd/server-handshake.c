/*
 * NBD server: the fixed newstyle handshake (option haggling).
 *
 * Runs in the client's reader coroutine before transmission. State it
 * builds on the client: NO_ZEROES, structured replies, the selected
 * meta context (base:allocation, remembered with the export name it was
 * selected for) and finally the export. Every option's data is read
 * whole (bounded by NBD_MAX_OPTION_LEN; longer is treated as hostile and
 * the connection dropped) before it is parsed, so a malformed option can
 * always be answered with an error reply and the session continues, as
 * the protocol requires. Parsing goes through a bounds-checked cursor.
 */
#include "qemu/osdep.h"
#include "nbd-internal.h"
#include "trace.h"

#include <stdarg.h>

/*
 * Bounds-checked reader over an option's data. A read past the end sets
 * bad and yields zeroes, so parsers can read a whole structure and check
 * once at the end instead of after every field.
 */
typedef struct NBDCursor {
    const uint8_t *p;
    size_t left;
    bool bad;                   /* some read ran past the end */
} NBDCursor;

static uint32_t cur_u32(NBDCursor *c)
{
    uint32_t v;

    if (c->left < 4) {
        c->bad = true;
        c->left = 0;
        return 0;
    }
    v = ldbe32_p(c->p);
    c->p += 4;
    c->left -= 4;
    return v;
}

static uint16_t cur_u16(NBDCursor *c)
{
    uint16_t v;

    if (c->left < 2) {
        c->bad = true;
        c->left = 0;
        return 0;
    }
    v = ldbe16_p(c->p);
    c->p += 2;
    c->left -= 2;
    return v;
}

/* A length-prefixed string, newly allocated (NUL-free), or NULL if bad. */
static char *cur_string(NBDCursor *c)
{
    uint32_t len = cur_u32(c);
    char *s;

    if (c->bad || len > c->left || len > NBD_MAX_STRING ||
        memchr(c->p, '\0', len)) {
        c->bad = true;
        return NULL;
    }
    s = g_strndup((const char *)c->p, len);
    c->p += len;
    c->left -= len;
    return s;
}

/*
 * Send one option reply: header plus len bytes of data. During the
 * handshake the reader coroutine is the only sender, so no lock.
 */
static int coroutine_fn nbd_co_opt_reply(NBDClient *client, uint32_t opt,
                                         uint32_t type, const void *data,
                                         uint32_t len)
{
    uint8_t hdr[20];
    struct iovec iov[2] = {
        { .iov_base = hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)data, .iov_len = len },
    };

    stbe64_p(hdr, NBD_REP_MAGIC);
    stbe32_p(hdr + 8, opt);
    stbe32_p(hdr + 12, type);
    stbe32_p(hdr + 16, len);
    trace_nbd_opt_reply(client, opt, type, len);
    return nbd_co_sendv(client, iov, len ? 2 : 1);
}

/*
 * Send an error reply carrying a printf-style message (the protocol
 * allows a human-readable string as the data of any error reply).
 */
static int coroutine_fn G_GNUC_PRINTF(4, 5)
nbd_co_opt_error(NBDClient *client, uint32_t opt, uint32_t type,
                 const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    trace_nbd_opt_error(client, opt, msg);
    return nbd_co_opt_reply(client, opt, type, msg, strlen(msg));
}

/* An info reply: 16-bit info type followed by data. */
static int coroutine_fn nbd_co_send_info(NBDClient *client, uint32_t opt,
                                         uint16_t type, const void *data,
                                         size_t len)
{
    g_autofree uint8_t *buf = g_malloc(2 + len);

    stbe16_p(buf, type);
    memcpy(buf + 2, data, len);
    return nbd_co_opt_reply(client, opt, NBD_REP_INFO, buf, 2 + len);
}

/*
 * Meta contexts are negotiated for a named export; if the client then
 * goes to another export, the selection does not carry over.
 */
static void nbd_check_meta_export(NBDClient *client, NBDExport *exp)
{
    if (client->meta_base_alloc &&
        g_strcmp0(client->meta_export, exp->name) != 0) {
        client->meta_base_alloc = false;
    }
}

/* Enter transmission on exp: remember its size. 0 or -errno. */
static int nbd_client_start_export(NBDClient *client, NBDExport *exp)
{
    int64_t size = nbd_export_size(exp);

    if (size < 0) {
        return size;
    }
    client->exp_size = size;
    nbd_check_meta_export(client, exp);
    return nbd_client_attach_export(client, exp);
}

/*
 * NBD_OPT_EXPORT_NAME: the old way to pick an export. Its data is the
 * bare name and its reply has no header, so there is no way to report an
 * error: an unknown export ends the session, as the protocol says.
 */
static int coroutine_fn nbd_co_opt_export_name(NBDClient *client,
                                               const uint8_t *data,
                                               uint32_t len)
{
    g_autofree char *name = NULL;
    uint8_t reply[10 + 124] = { 0 };
    NBDExport *exp;
    int ret;

    if (len > NBD_MAX_STRING || memchr(data, '\0', len)) {
        return -EINVAL;
    }
    name = g_strndup((const char *)data, len);
    exp = nbd_export_find(name);
    if (!exp) {
        trace_nbd_opt_unknown_export(client, name);
        return -ENOENT;
    }
    ret = nbd_client_start_export(client, exp);
    if (ret < 0) {
        return ret;
    }
    stbe64_p(reply, client->exp_size);
    stbe16_p(reply + 8, nbd_export_tx_flags(client, exp));
    ret = nbd_co_send(client, reply, client->no_zeroes ? 10 : sizeof(reply));
    return ret < 0 ? ret : 1;
}

/*
 * Send the INFO replies for exp: NBD_INFO_EXPORT always, NAME and
 * DESCRIPTION when asked, BLOCK_SIZE always (the constraints hold
 * whether or not the client asked; minimum 1 because the block layer
 * does read-modify-write for unaligned requests itself).
 */
static int coroutine_fn nbd_co_send_export_info(NBDClient *client,
                                                uint32_t opt, NBDExport *exp,
                                                int64_t size, bool want_name,
                                                bool want_desc)
{
    uint8_t info[12];
    int ret;

    stbe64_p(info, size);
    stbe16_p(info + 8, nbd_export_tx_flags(client, exp));
    ret = nbd_co_send_info(client, opt, NBD_INFO_EXPORT, info, 10);
    if (ret == 0 && want_name) {
        ret = nbd_co_send_info(client, opt, NBD_INFO_NAME, exp->name,
                               strlen(exp->name));
    }
    if (ret == 0 && want_desc && exp->description) {
        ret = nbd_co_send_info(client, opt, NBD_INFO_DESCRIPTION,
                               exp->description, strlen(exp->description));
    }
    if (ret == 0) {
        /* Any byte offset works (the block layer aligns); 4K preferred. */
        stbe32_p(info, 1);
        stbe32_p(info + 4, 4096);
        stbe32_p(info + 8, NBD_MAX_PAYLOAD);
        ret = nbd_co_send_info(client, opt, NBD_INFO_BLOCK_SIZE, info, 12);
    }
    return ret;
}

/*
 * NBD_OPT_INFO and NBD_OPT_GO: data is the export name, then a count and
 * list of 16-bit info types wanted. Returns 1 when GO entered
 * transmission, 0 after a reply, -errno if the socket failed.
 */
static int coroutine_fn nbd_co_opt_info(NBDClient *client, uint32_t opt,
                                        const uint8_t *data, uint32_t len)
{
    NBDCursor c = { .p = data, .left = len };
    g_autofree char *name = cur_string(&c);
    uint16_t nr = cur_u16(&c);
    bool want_name = false, want_desc = false;
    NBDExport *exp;
    int64_t size;
    int ret;

    if (c.bad || c.left != (size_t)nr * 2) {
        return nbd_co_opt_error(client, opt, NBD_REP_ERR_INVALID,
                                "Invalid length of option data");
    }
    while (nr--) {
        uint16_t type = cur_u16(&c);
        want_name |= type == NBD_INFO_NAME;
        want_desc |= type == NBD_INFO_DESCRIPTION;
    }
    exp = nbd_export_find(name);
    if (!exp) {
        trace_nbd_opt_unknown_export(client, name);
        return nbd_co_opt_error(client, opt, NBD_REP_ERR_UNKNOWN,
                                "export '%s' not present", name);
    }
    size = nbd_export_size(exp);
    if (size < 0) {
        return nbd_co_opt_error(client, opt, NBD_REP_ERR_PLATFORM,
                                "export '%s': cannot get size: %s", name,
                                strerror(-size));
    }
    /* The replies may yield, and exp be removed meanwhile: pin it. */
    nbd_export_get(exp);
    ret = nbd_co_send_export_info(client, opt, exp, size, want_name,
                                  want_desc);
    if (ret == 0) {
        ret = nbd_co_opt_reply(client, opt, NBD_REP_ACK, NULL, 0);
    }
    if (ret == 0 && opt == NBD_OPT_GO) {
        ret = nbd_client_start_export(client, exp);
        ret = ret < 0 ? ret : 1;
    }
    nbd_export_put(exp);
    return ret;
}

/* NBD_OPT_LIST: one SERVER reply (name, description) per export, ACK. */
static int coroutine_fn nbd_co_opt_list(NBDClient *client, uint32_t len)
{
    GList *l;
    int ret;

    if (len) {
        return nbd_co_opt_error(client, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
                                "NBD_OPT_LIST must not have data");
    }
    for (l = nbd_export_list(); l; l = l->next) {
        NBDExport *exp = l->data;
        size_t nlen = strlen(exp->name);
        size_t dlen = exp->description ? strlen(exp->description) : 0;
        g_autofree uint8_t *buf = g_malloc(4 + nlen + dlen);

        if (exp->removing) {
            continue;
        }
        stbe32_p(buf, nlen);
        memcpy(buf + 4, exp->name, nlen);
        memcpy(buf + 4 + nlen, exp->description ? exp->description : "",
               dlen);
        ret = nbd_co_opt_reply(client, NBD_OPT_LIST, NBD_REP_SERVER, buf,
                               4 + nlen + dlen);
        if (ret < 0) {
            return ret;
        }
    }
    return nbd_co_opt_reply(client, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/* Send one META_CONTEXT reply naming base:allocation. */
static int coroutine_fn nbd_co_send_meta_base(NBDClient *client, uint32_t opt)
{
    static const char ctx[] = "base:allocation";
    uint8_t buf[4 + sizeof(ctx) - 1];

    stbe32_p(buf, NBD_META_CONTEXT_ID);
    memcpy(buf + 4, ctx, sizeof(ctx) - 1);
    return nbd_co_opt_reply(client, opt, NBD_REP_META_CONTEXT, buf,
                            sizeof(buf));
}

/*
 * Does query select base:allocation? For LIST, a bare "base:" namespace
 * lists everything in it; SET needs the exact name.
 */
static bool nbd_meta_query_matches(const char *query, bool list)
{
    return strcmp(query, "base:allocation") == 0 ||
           (list && strcmp(query, "base:") == 0);
}

/*
 * NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT. Data: export
 * name, query count, queries. We know one context, base:allocation.
 * LIST with no query lists everything; SET replaces the selection (an
 * empty selection is not an error, BLOCK_STATUS is then refused).
 */
static int coroutine_fn nbd_co_opt_meta(NBDClient *client, uint32_t opt,
                                        const uint8_t *data, uint32_t len)
{
    NBDCursor c = { .p = data, .left = len };
    bool list = opt == NBD_OPT_LIST_META_CONTEXT;
    g_autofree char *name = NULL;
    bool match = false;
    uint32_t nr;
    int ret;

    if (!client->structured) {
        return nbd_co_opt_error(client, opt, NBD_REP_ERR_INVALID,
                                "request structured replies first");
    }
    name = cur_string(&c);
    nr = cur_u32(&c);
    match = list && nr == 0;
    for (uint32_t i = 0; i < nr && !c.bad; i++) {
        g_autofree char *query = cur_string(&c);
        if (query) {
            match |= nbd_meta_query_matches(query, list);
        }
    }
    if (c.bad || c.left) {
        return nbd_co_opt_error(client, opt, NBD_REP_ERR_INVALID,
                                "Invalid meta context option data");
    }
    if (!nbd_export_find(name)) {
        return nbd_co_opt_error(client, opt, NBD_REP_ERR_UNKNOWN,
                                "export '%s' not present", name);
    }
    if (!list) {
        client->meta_base_alloc = match;
        g_free(client->meta_export);
        client->meta_export = g_strdup(name);
    }
    trace_nbd_opt_meta(client, list, name, match);
    if (match) {
        ret = nbd_co_send_meta_base(client, opt);
        if (ret < 0) {
            return ret;
        }
    }
    return nbd_co_opt_reply(client, opt, NBD_REP_ACK, NULL, 0);
}

/*
 * NBD_OPT_STRUCTURED_REPLY: from now on replies are chunked; it changes
 * the transmission flags (DF) and enables meta context negotiation.
 */
static int coroutine_fn nbd_co_opt_structured(NBDClient *client,
                                              uint32_t len)
{
    uint32_t opt = NBD_OPT_STRUCTURED_REPLY;

    if (len) {
        return nbd_co_opt_error(client, opt, NBD_REP_ERR_INVALID,
                                "NBD_OPT_STRUCTURED_REPLY must not have data");
    }
    if (client->structured) {
        return nbd_co_opt_error(client, opt, NBD_REP_ERR_INVALID,
                                "structured reply already negotiated");
    }
    client->structured = true;
    return nbd_co_opt_reply(client, opt, NBD_REP_ACK, NULL, 0);
}

/*
 * Handle one option. Returns 2 to keep haggling, 1 on entering
 * transmission, 0 on a clean abort, -errno to drop the connection.
 */
static int coroutine_fn nbd_co_handle_option(NBDClient *client, bool fixed,
                                             uint32_t opt,
                                             const uint8_t *data,
                                             uint32_t len)
{
    int ret;

    trace_nbd_opt_receive(client, opt, len);
    if (opt == NBD_OPT_EXPORT_NAME) {
        return nbd_co_opt_export_name(client, data, len);
    }
    if (!fixed) {
        /* Plain newstyle clients only know EXPORT_NAME. */
        return -EINVAL;
    }
    if (opt == NBD_OPT_ABORT) {
        nbd_co_opt_reply(client, opt, NBD_REP_ACK, NULL, 0);
        return 0;
    }
    if (nbd_server_shutting_down()) {
        ret = nbd_co_opt_error(client, opt, NBD_REP_ERR_SHUTDOWN,
                               "server is shutting down");
        return ret < 0 ? ret : 2;
    }
    switch (opt) {
    case NBD_OPT_LIST:
        ret = nbd_co_opt_list(client, len);
        break;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        ret = nbd_co_opt_info(client, opt, data, len);
        break;
    case NBD_OPT_STRUCTURED_REPLY:
        ret = nbd_co_opt_structured(client, len);
        break;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        ret = nbd_co_opt_meta(client, opt, data, len);
        break;
    case NBD_OPT_STARTTLS:
        ret = nbd_co_opt_error(client, opt, NBD_REP_ERR_POLICY,
                               "TLS not configured");
        break;
    default:
        ret = nbd_co_opt_error(client, opt, NBD_REP_ERR_UNSUP,
                               "Unsupported option %u", opt);
        break;
    }
    if (ret < 0 || ret == 1) {
        return ret;
    }
    return 2;
}

/*
 * Send the greeting and read the client flags. 0 or -errno. Unknown
 * client flags mean a client we cannot understand: the protocol says
 * the server must then close the connection.
 */
static int coroutine_fn nbd_co_greet(NBDClient *client, bool *fixed)
{
    uint8_t hello[18];
    uint32_t cflags;
    int ret;

    stbe64_p(hello, NBD_INIT_MAGIC);
    stbe64_p(hello + 8, NBD_OPTS_MAGIC);
    stbe16_p(hello + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    ret = nbd_co_send(client, hello, sizeof(hello));
    if (ret < 0) {
        return ret;
    }
    ret = nbd_co_recv(client, &cflags, sizeof(cflags));
    if (ret < 0) {
        return ret;
    }
    cflags = be32_to_cpu(cflags);
    trace_nbd_handshake_client_flags(client, cflags);
    if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
        return -EINVAL;
    }
    client->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;
    *fixed = cflags & NBD_FLAG_C_FIXED_NEWSTYLE;
    return 0;
}

/*
 * The option loop. A bad option magic or an absurd length cannot be
 * answered (the stream is out of sync or hostile), so those drop the
 * connection; everything else gets a reply and the loop goes on.
 */
int coroutine_fn nbd_co_handshake(NBDClient *client)
{
    bool fixed = false;
    int ret = nbd_co_greet(client, &fixed);

    while (ret == 0) {
        uint8_t hdr[16];
        g_autofree uint8_t *data = NULL;
        uint32_t opt, len;

        ret = nbd_co_recv(client, hdr, sizeof(hdr));
        if (ret < 0) {
            break;
        }
        opt = ldbe32_p(hdr + 8);
        len = ldbe32_p(hdr + 12);
        if (ldbe64_p(hdr) != NBD_OPTS_MAGIC || len > NBD_MAX_OPTION_LEN) {
            trace_nbd_handshake_bad_option(client, ldbe64_p(hdr), len);
            ret = -EINVAL;
            break;
        }
        data = g_malloc(len + 1);
        ret = nbd_co_recv(client, data, len);
        if (ret < 0) {
            break;
        }
        ret = nbd_co_handle_option(client, fixed, opt, data, len);
        if (ret == 2) {
            ret = 0;
        } else if (ret == 0) {
            return 0;
        }
    }
    return ret;
}
