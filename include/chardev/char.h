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
/*
 * Create a chardev from QEMU's legacy -qmp/-monitor syntax, named id:
 * "stdio", "unix:PATH[,server=on][,wait=off]" or
 * "tcp:HOST:PORT[,server=on][,wait=off]". Only server sockets exist in
 * qblk, so a socket without server=on is refused.
 */
Chardev *qemu_chr_new_legacy(const char *id, const char *spec, Error **errp);
/* The front end leaves: no more callbacks (the client stays connected). */
void qemu_chr_detach_frontend(Chardev *chr);
/*
 * Stop (paused) or restart reading from the client: its bytes wait in
 * the kernel, so a front end that cannot keep up bounds its own queue.
 */
void qemu_chr_set_input_paused(Chardev *chr, bool paused);
/*
 * Terminal echo and line editing: stdio on a tty starts in raw mode (no
 * echo, bytes as typed, for HMP's own line editing); a QMP monitor asks
 * for echo=true, which restores the terminal's cooked mode. No-op for
 * other chardevs.
 */
void qemu_chr_set_echo(Chardev *chr, bool echo);
/* True if the chardev's client is a terminal (stdio on a tty). */
bool qemu_chr_is_terminal(const Chardev *chr);
/* Close every chardev (shutdown). */
void qemu_chr_cleanup_all(void);

#endif /* CHARDEV_CHAR_H */
