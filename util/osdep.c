/*
 * Small OS helpers: aligned allocation and zero detection.
 */
#include "qemu/osdep.h"

void *qemu_try_memalign(size_t alignment, size_t size)
{
    void *ptr;

    if (alignment < sizeof(void *)) {
        alignment = sizeof(void *);
    }
    if (posix_memalign(&ptr, alignment, size ? size : alignment)) {
        return NULL;
    }
    return ptr;
}

void *qemu_memalign(size_t alignment, size_t size)
{
    void *ptr = qemu_try_memalign(alignment, size);

    if (!ptr) {
        fprintf(stderr, "qemu_memalign: failed to allocate %zu bytes\n", size);
        abort();
    }
    return ptr;
}

void *qemu_blockalign(size_t size)
{
    return qemu_memalign(4096, size);
}

void qemu_vfree(void *ptr)
{
    free(ptr);
}

bool buffer_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t head;

    /* Check bytes up to 8-byte alignment, then words, then the tail. */
    head = (8 - ((uintptr_t)p & 7)) & 7;
    for (; head && len; head--, len--, p++) {
        if (*p) {
            return false;
        }
    }
    for (; len >= 64; len -= 64, p += 64) {
        const uint64_t *w = (const uint64_t *)p;
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) {
            return false;
        }
    }
    for (; len; len--, p++) {
        if (*p) {
            return false;
        }
    }
    return true;
}
