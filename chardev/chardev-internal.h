/*
 * Between the generic chardev code (char.c: registry, option parsing,
 * front ends) and the backends (char-socket.c). Not for users of
 * chardevs: they include chardev/char.h only.
 */
#ifndef CHARDEV_INTERNAL_H
#define CHARDEV_INTERNAL_H

#include "chardev/char.h"
#include "qemu/qdict.h"

/* One backend type ("socket"); all callbacks run on the main loop. */
typedef struct ChardevBackend {
    const char *name;
    /*
     * Set up chr from opts (the --chardev options minus "backend" and
     * "id"), deleting every key it understood; chr->opaque is its state.
     * Leftover keys are reported by the caller.
     */
    bool (*open)(Chardev *chr, QDict *opts, Error **errp);
    /* A front end was attached: start delivering events and bytes. */
    void (*frontend_attached)(Chardev *chr);
    void (*write)(Chardev *chr, const void *buf, size_t len);
    void (*disconnect)(Chardev *chr);
    bool (*is_connected)(const Chardev *chr);
    /* Release everything (sockets, files); chr itself is freed by char.c. */
    void (*close)(Chardev *chr);
    /* Optional: stop/restart reading from the client. */
    void (*set_input_paused)(Chardev *chr, bool paused);
    /* Optional: terminal echo/cooked mode on (true) or raw (false). */
    void (*set_echo)(Chardev *chr, bool echo);
    /* Optional: the client is a terminal (default: false). */
    bool (*is_terminal)(const Chardev *chr);
} ChardevBackend;

struct Chardev {
    char *id;
    const ChardevBackend *backend;
    void *opaque;                   /* backend state */
    const CharFrontendOps *fe_ops;  /* NULL until a front end attaches */
    void *fe_opaque;
};

/* Backends report to the front end (no-ops while none is attached). */
void qemu_chr_be_connected(Chardev *chr);
void qemu_chr_be_receive(Chardev *chr, const uint8_t *buf, size_t len);
void qemu_chr_be_disconnected(Chardev *chr);

/*
 * For backends, once they have taken their keys out of opts and before
 * they acquire resources: fail (QEMU's "Invalid parameter 'x'") if any
 * key is left.
 */
bool qemu_chr_check_no_leftover(QDict *opts, Error **errp);

extern const ChardevBackend chardev_backend_socket;
extern const ChardevBackend chardev_backend_stdio;

#endif /* CHARDEV_INTERNAL_H */
