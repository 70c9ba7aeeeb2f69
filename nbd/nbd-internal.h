/*
 * NBD server internals shared by nbd/server.c (server, exports, client
 * life cycle and socket I/O), nbd/server-handshake.c (option haggling)
 * and nbd/server-requests.c (transmission phase).
 *
 * Protocol constants follow the NBD protocol document (doc/proto.md of
 * the NetworkBlockDevice project). Everything runs on the main loop
 * thread; a client's state is touched by its reader coroutine, its
 * request coroutines (one per request) and the fd handler that wakes
 * them, never concurrently.
 */
#ifndef NBD_INTERNAL_H
#define NBD_INTERNAL_H

#include "qemu/osdep.h"
#include "qemu/coroutine.h"
#include "qemu/iov.h"
#include "nbd/nbd.h"

/* ---- Handshake */
#define NBD_INIT_MAGIC          0x4e42444d41474943ULL  /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC          0x49484156454F5054ULL  /* "IHAVEOPT" */
#define NBD_REP_MAGIC           0x0003e889045565a9ULL

#define NBD_FLAG_FIXED_NEWSTYLE   (1 << 0)
#define NBD_FLAG_NO_ZEROES        (1 << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1 << 0)
#define NBD_FLAG_C_NO_ZEROES      (1 << 1)

#define NBD_OPT_EXPORT_NAME       1
#define NBD_OPT_ABORT             2
#define NBD_OPT_LIST              3
#define NBD_OPT_STARTTLS          5
#define NBD_OPT_INFO              6
#define NBD_OPT_GO                7
#define NBD_OPT_STRUCTURED_REPLY  8
#define NBD_OPT_LIST_META_CONTEXT 9
#define NBD_OPT_SET_META_CONTEXT  10

#define NBD_REP_ACK               1
#define NBD_REP_SERVER            2
#define NBD_REP_INFO              3
#define NBD_REP_META_CONTEXT      4
#define NBD_REP_ERR(n)            ((1U << 31) | (n))
#define NBD_REP_ERR_UNSUP         NBD_REP_ERR(1)
#define NBD_REP_ERR_POLICY        NBD_REP_ERR(2)
#define NBD_REP_ERR_INVALID       NBD_REP_ERR(3)
#define NBD_REP_ERR_PLATFORM      NBD_REP_ERR(4)
#define NBD_REP_ERR_TLS_REQD      NBD_REP_ERR(5)
#define NBD_REP_ERR_UNKNOWN       NBD_REP_ERR(6)
#define NBD_REP_ERR_SHUTDOWN      NBD_REP_ERR(7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD NBD_REP_ERR(8)
#define NBD_REP_ERR_TOO_BIG       NBD_REP_ERR(9)

#define NBD_INFO_EXPORT           0
#define NBD_INFO_NAME             1
#define NBD_INFO_DESCRIPTION      2
#define NBD_INFO_BLOCK_SIZE       3

/* ---- Transmission flags (16 bits, sent with the export size) */
#define NBD_FLAG_HAS_FLAGS         (1 << 0)
#define NBD_FLAG_READ_ONLY         (1 << 1)
#define NBD_FLAG_SEND_FLUSH        (1 << 2)
#define NBD_FLAG_SEND_FUA          (1 << 3)
#define NBD_FLAG_ROTATIONAL        (1 << 4)
#define NBD_FLAG_SEND_TRIM         (1 << 5)
#define NBD_FLAG_SEND_WRITE_ZEROES (1 << 6)
#define NBD_FLAG_SEND_DF           (1 << 7)
#define NBD_FLAG_CAN_MULTI_CONN    (1 << 8)
#define NBD_FLAG_SEND_CACHE        (1 << 10)
#define NBD_FLAG_SEND_FAST_ZERO    (1 << 11)

/* ---- Requests */
#define NBD_REQUEST_MAGIC         0x25609513U
#define NBD_SIMPLE_REPLY_MAGIC    0x67446698U
#define NBD_STRUCTURED_REPLY_MAGIC 0x668e33efU
#define NBD_REQUEST_SIZE          28
#define NBD_SIMPLE_REPLY_SIZE     16
#define NBD_CHUNK_HEADER_SIZE     20

#define NBD_CMD_FLAG_FUA          (1 << 0)
#define NBD_CMD_FLAG_NO_HOLE      (1 << 1)
#define NBD_CMD_FLAG_DF           (1 << 2)
#define NBD_CMD_FLAG_REQ_ONE      (1 << 3)
#define NBD_CMD_FLAG_FAST_ZERO    (1 << 4)

#define NBD_CMD_READ              0
#define NBD_CMD_WRITE             1
#define NBD_CMD_DISC              2
#define NBD_CMD_FLUSH             3
#define NBD_CMD_TRIM              4
#define NBD_CMD_CACHE             5
#define NBD_CMD_WRITE_ZEROES      6
#define NBD_CMD_BLOCK_STATUS      7

#define NBD_REPLY_FLAG_DONE       (1 << 0)
#define NBD_REPLY_TYPE_NONE       0
#define NBD_REPLY_TYPE_OFFSET_DATA 1
#define NBD_REPLY_TYPE_OFFSET_HOLE 2
#define NBD_REPLY_TYPE_BLOCK_STATUS 5
#define NBD_REPLY_TYPE_ERROR      ((1 << 15) + 1)
#define NBD_REPLY_TYPE_ERROR_OFFSET ((1 << 15) + 2)

#define NBD_STATE_HOLE            (1 << 0)
#define NBD_STATE_ZERO            (1 << 1)

/* Wire error numbers (not the host's errno values). */
#define NBD_EPERM      1
#define NBD_EIO        5
#define NBD_ENOMEM     12
#define NBD_EINVAL     22
#define NBD_ENOSPC     28
#define NBD_EOVERFLOW  75
#define NBD_ENOTSUP    95
#define NBD_ESHUTDOWN  108

/* ---- Limits */
#define NBD_MAX_STRING          4096         /* names, queries */
#define NBD_MAX_OPTION_LEN      (64 * KiB)   /* longer: disconnect */
#define NBD_MAX_PAYLOAD         (32 * MiB)   /* largest READ/WRITE */
#define NBD_MAX_SKIP_PAYLOAD    (256 * MiB)  /* oversized WRITE we discard */
#define NBD_MAX_INFLIGHT        32           /* requests per client */
#define NBD_MAX_INFLIGHT_BYTES  (64 * MiB)   /* buffered payload per client */
#define NBD_RECV_BUF_SIZE       (128 * KiB)
#define NBD_META_CONTEXT_ID     0            /* id of base:allocation */
#define NBD_MAX_EXTENTS         16384        /* per BLOCK_STATUS reply */
#define NBD_SPARSE_READ_MIN     (64 * KiB)   /* smaller reads: no holes */

typedef struct NBDClient NBDClient;

/*
 * A named export: a block node served to clients. The NBD state of a
 * BlockExport (common->opaque points back here); it lives until the
 * registry deletes common, i.e. after the last client has gone.
 */
typedef struct NBDExport {
    BlockExport *common;
    char *name;
    char *description;          /* may be NULL */
    BdrvChild *root;            /* common->root, owned by the registry */
    bool writable;
    bool writethrough;          /* every write is treated as FUA */
    bool removing;              /* no new clients; being torn down */
    GList *clients;             /* NBDClient * in transmission on it */
} NBDExport;

/* One request being served: header fields plus its data buffer. */
typedef struct NBDRequest {
    NBDClient *client;
    uint64_t cookie;
    uint64_t offset;
    uint32_t len;
    uint16_t flags;
    uint16_t type;
    int error;                  /* NBD_E*, set when parsing refused it */
    uint8_t *buf;               /* payload / read data, buf_size bytes */
    size_t buf_size;
    struct NBDRequest *next_free;
} NBDRequest;

struct NBDClient {
    int fd;
    Coroutine *co;              /* reader: handshake, then request loop */
    NBDExport *exp;             /* set once transmission starts */
    uint64_t exp_size;          /* export size when transmission started */

    /* Receive buffer: bytes [rpos, rend) are read but not yet consumed. */
    uint8_t *rbuf;
    size_t rpos, rend;
    bool recv_waiting;          /* co waits for the fd to be readable */

    /* Sending: one reply at a time under send_lock. */
    CoMutex send_lock;
    Coroutine *send_waiter;     /* holder of send_lock waiting on POLLOUT */

    /* Negotiated state. */
    bool no_zeroes;
    bool structured;
    bool meta_base_alloc;       /* base:allocation selected */
    char *meta_export;          /* export name given with SET_META_CONTEXT */

    /* In-flight requests and back-pressure on the reader. */
    int inflight;
    size_t inflight_bytes;
    bool reader_waits;          /* co parked until inflight drops */
    NBDRequest *free_reqs;      /* recycled request structs with buffers */
    int nb_free_reqs;

    bool closing;               /* no new requests; replies may fail */
};

/* ---- nbd/server.c: socket I/O and export lookup */

/*
 * Read exactly len bytes (buffered). 0 on success, -ECONNRESET on EOF,
 * -ESHUTDOWN when the client is being closed, -errno on socket error.
 */
int coroutine_fn nbd_co_recv(NBDClient *client, void *buf, size_t len);
/* Discard exactly len bytes of input; as nbd_co_recv. */
int coroutine_fn nbd_co_skip(NBDClient *client, uint64_t len);
/*
 * Send the whole vector; the caller holds client->send_lock (or is the
 * only sender, as during the handshake). 0 or -errno.
 */
int coroutine_fn nbd_co_sendv(NBDClient *client, struct iovec *iov,
                              int niov);
int coroutine_fn nbd_co_send(NBDClient *client, const void *buf, size_t len);
/* The export called name, or NULL (also NULL while it is being removed). */
NBDExport *nbd_export_find(const char *name);
/* Every export, for NBD_OPT_LIST. */
GList *nbd_export_list(void);
/* Size of exp in bytes (>= 0), or -errno. */
int64_t nbd_export_size(NBDExport *exp);
/*
 * Attach client to exp for the transmission phase; the client holds a
 * reference on the export until it is freed. -ESHUTDOWN if exp is
 * being removed (it may have been while the handshake yielded).
 */
int nbd_client_attach_export(NBDClient *client, NBDExport *exp);
/*
 * Pin exp across a yield of the handshake (it stays allocated even if
 * removed meanwhile); nbd_export_put() releases it.
 */
void nbd_export_get(NBDExport *exp);
void nbd_export_put(NBDExport *exp);
/* Close a client from outside: its socket is shut down, it exits itself. */
void nbd_client_kick(NBDClient *client);
/* Transmission flags for exp as seen by client. */
uint16_t nbd_export_tx_flags(NBDClient *client, NBDExport *exp);
/* True while the server shuts down (options then get ERR_SHUTDOWN). */
bool nbd_server_shutting_down(void);

/* ---- nbd/server-handshake.c */

/*
 * Run the fixed newstyle handshake. Returns 1 when the client entered
 * transmission on an export (client->exp set), 0 when it ended the
 * session cleanly (NBD_OPT_ABORT), -errno on error or protocol
 * violation (the caller closes the connection).
 */
int coroutine_fn nbd_co_handshake(NBDClient *client);

/* ---- nbd/server-requests.c */

/* Serve requests until the client disconnects or is closed. */
void coroutine_fn nbd_co_transmission(NBDClient *client);
/* Free the client's recycled request structures. */
void nbd_client_free_requests(NBDClient *client);
/* Map a negative errno to an NBD wire error. */
uint32_t nbd_errno_to_wire(int err);

#endif /* NBD_INTERNAL_H */
