/*
 * Helpers shared by the block-layer unit tests (tests/unit/block-test-util.c).
 */
#ifndef TESTS_UNIT_BLOCK_TEST_UTIL_H
#define TESTS_UNIT_BLOCK_TEST_UTIL_H

#include "qemu/osdep.h"

/*
 * GTest, the main loop and the driver table; QBLK_TEST_TRACE=PATTERN
 * enables trace points (e.g. 'bdrv_co_copy_on_read*') to debug a test.
 */
void block_test_init(int *argc, char ***argv);
/* Judge a qcow2 image with qemu-img check (skipped when not installed). */
void block_test_qemu_img_check(const char *path);

#endif /* TESTS_UNIT_BLOCK_TEST_UTIL_H */
