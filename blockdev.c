/*
 * blockdev: from user-facing image descriptions to open nodes.
 *
 * For now this holds what the tools need: opening one image from a
 * command-line argument (plain name, json: name or --image-opts string)
 * and parsing cache modes. It keeps no state of its own; every node it
 * returns is owned by the caller. The -drive / --blockdev options and the
 * QMP/HMP block command handlers will live here too.
 */
#include "qemu/osdep.h"
#include "qemu/keyval.h"
#include "sysemu/blockdev.h"
#include "trace.h"

BlockDriverState *blockdev_open_image(const char *filename, const char *fmt,
                                      bool image_opts, int flags,
                                      Error **errp)
{
    QDict *options;

    trace_blockdev_open_image(filename, fmt ? fmt : "", image_opts, flags);
    if (image_opts) {
        if (fmt) {
            error_setg(errp,
                       "--image-opts and --format are mutually exclusive");
            return NULL;
        }
        options = keyval_parse(filename, NULL, errp);
        if (!options) {
            return NULL;
        }
        /* bdrv_open() takes ownership of options, also on failure. */
        return bdrv_open(NULL, options, flags, errp);
    }

    options = qdict_new();
    if (fmt) {
        qdict_put_str(options, "driver", fmt);
    }
    return bdrv_open(filename, options, flags, errp);
}

/* One row of the cache mode table: which flags the mode sets. */
typedef struct CacheMode {
    const char *name;
    int flags;              /* subset of BDRV_O_NOCACHE | BDRV_O_NO_FLUSH */
    bool writethrough;
} CacheMode;

static const CacheMode cache_modes[] = {
    { "none",         BDRV_O_NOCACHE,  false },
    { "off",          BDRV_O_NOCACHE,  false },
    { "writeback",    0,               false },
    { "writethrough", 0,               true  },
    { "directsync",   BDRV_O_NOCACHE,  true  },
    { "unsafe",       BDRV_O_NO_FLUSH, false },
};

int blockdev_parse_cache_mode(const char *mode, int *flags,
                              bool *writethrough)
{
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cache_modes); i++) {
        if (!strcmp(mode, cache_modes[i].name)) {
            *flags &= ~(BDRV_O_NOCACHE | BDRV_O_NO_FLUSH);
            *flags |= cache_modes[i].flags;
            *writethrough = cache_modes[i].writethrough;
            return 0;
        }
    }
    return -EINVAL;
}
