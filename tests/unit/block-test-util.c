/*
 * Helpers shared by the block-layer unit tests: start-up and qemu-img as
 * the oracle of images the tests wrote.
 */
#include "qemu/osdep.h"
#include "qemu/aio.h"
#include "qemu/trace-control.h"
#include "block/block.h"
#include "block-test-util.h"

void block_test_init(int *argc, char ***argv)
{
    g_test_init(argc, argv, NULL);
    qemu_init_main_loop();
    bdrv_init();
    if (g_getenv("QBLK_TEST_TRACE")) {
        trace_enable_pattern(g_getenv("QBLK_TEST_TRACE"));
    }
}

void block_test_qemu_img_check(const char *path)
{
    g_autofree char *qemu_img = g_find_program_in_path("qemu-img");
    g_autofree char *out = NULL, *err = NULL;
    const char *argv[] = { "qemu-img", "check", "-f", "qcow2", path, NULL };
    int status = -1;

    if (!qemu_img) {
        g_test_message("qemu-img not installed: skipping check of %s", path);
        return;
    }
    argv[0] = qemu_img;
    g_assert_true(g_spawn_sync(NULL, (char **)argv, NULL, 0, NULL, NULL,
                               &out, &err, &status, NULL));
    if (!g_spawn_check_wait_status(status, NULL)) {
        g_error("qemu-img check %s failed:\n%s%s", path, out, err);
    }
}
