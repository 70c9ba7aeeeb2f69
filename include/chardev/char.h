/*
 * Character devices: the transports monitors are attached to
 * (--chardev socket,id=ID,path=P,server=on,wait=off or host=,port=).
 *
 * A socket chardev in server mode listens and accepts one client at a
 * time (as QEMU does); the front end attached to it (a monitor) is told
 * about each connection and receives its bytes. The chardev owns the
 * sockets; the front end reads and writes through the functions below.
 */
#ifndef CHARDEV_CHAR_H
#define CHARDEV_CHAR_H

#include "qemu/osdep.h"
#include "qapi/error.h"

typedef struct Chardev Chardev;

/* Front-end callbacks; all run on the main loop. */
typedef struct CharFrontendOps {
    /* A client connected. */
    void (*connected)(void *opaque);
    /* Bytes arrived from the client. */
    void (*receive)(void *opaque, const uint8_t *buf, size_t len);
    /* The client went away (EOF or error); the chardev listens again. */
    void (*disconnected)(void *opaque);
} CharFrontendOps;

/* Create a chardev from --chardev OPTS (keyval: backend first). */
Chardev *qemu_chr_new(const char *optstr, Error **errp);
Chardev *qemu_chr_find(const char *id);
const char *qemu_chr_get_id(const Chardev *chr);
/* Attach a front end; fails if the chardev already has one. */
bool qemu_chr_attach_frontend(Chardev *chr, const CharFrontendOps *ops,
                              void *opaque, Error **errp);
/* Queue bytes for the connected client (dropped if none). */
void qemu_chr_write(Chardev *chr, const void *buf, size_t len);
/* Close the current client connection (the listener stays). */
void qemu_chr_disconnect(Chardev *chr);
bool qemu_chr_is_connected(const Chardev *chr);
/* Close every chardev (shutdown). */
void qemu_chr_cleanup_all(void);

#endif /* CHARDEV_CHAR_H */
