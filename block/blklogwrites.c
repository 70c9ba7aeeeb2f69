/* PLACEHOLDER: being written (issue 8). */
#include "qemu/osdep.h"
#include "block/block_int.h"

const BlockDriver bdrv_blklogwrites = {
    .format_name = "blklogwrites",
};
