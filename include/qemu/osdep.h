/*
 * Common definitions every qblk source file includes first.
 *
 * Keeps the system headers, the small arithmetic helpers and the
 * annotations (coroutine_fn) in one place so that no file re-invents them.
 */
#ifndef QEMU_OSDEP_H
#define QEMU_OSDEP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <glib.h>

/*
 * Marks a function that may yield: it must be called from coroutine
 * context only. Purely documentary (the compiler does not check it).
 */
#define coroutine_fn

#ifndef MIN
#define MIN(a, b) (((a) < (b)) ? (a) : (b))
#endif
#ifndef MAX
#define MAX(a, b) (((a) > (b)) ? (a) : (b))
#endif

/* Round down/up to a multiple of m (m need not be a power of two). */
#define QEMU_ALIGN_DOWN(n, m) ((n) / (m) * (m))
#define QEMU_ALIGN_UP(n, m) QEMU_ALIGN_DOWN((n) + (m) - 1, (m))
#define QEMU_IS_ALIGNED(n, m) (((n) % (m)) == 0)
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))

/* Power-of-two variants, cheaper for hot paths. */
#define ROUND_DOWN_POW2(n, m) ((n) & -(0 ? (n) : (m)))
#define ROUND_UP_POW2(n, m) ROUND_DOWN_POW2((n) + (m) - 1, (m))

#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))

#ifndef container_of
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define QEMU_UNUSED __attribute__((unused))
#define QEMU_PACKED __attribute__((packed))
#define QEMU_NORETURN __attribute__((noreturn))
#define G_GNUC_WARN_UNUSED_RESULT_QBLK __attribute__((warn_unused_result))

#define KiB (INT64_C(1) << 10)
#define MiB (INT64_C(1) << 20)
#define GiB (INT64_C(1) << 30)
#define TiB (INT64_C(1) << 40)

#define BDRV_SECTOR_BITS 9
#define BDRV_SECTOR_SIZE (1ULL << BDRV_SECTOR_BITS)

static inline bool is_power_of_2(uint64_t v)
{
    return v && !(v & (v - 1));
}

/* Base-2 logarithm of a power of two. */
static inline int ctz64(uint64_t v)
{
    return v ? __builtin_ctzll(v) : 64;
}

static inline int clz64(uint64_t v)
{
    return v ? __builtin_clzll(v) : 64;
}

/* Big-endian helpers used by on-disk formats. */
static inline uint16_t be16_to_cpu(uint16_t v) { return GUINT16_FROM_BE(v); }
static inline uint32_t be32_to_cpu(uint32_t v) { return GUINT32_FROM_BE(v); }
static inline uint64_t be64_to_cpu(uint64_t v) { return GUINT64_FROM_BE(v); }
static inline uint16_t cpu_to_be16(uint16_t v) { return GUINT16_TO_BE(v); }
static inline uint32_t cpu_to_be32(uint32_t v) { return GUINT32_TO_BE(v); }
static inline uint64_t cpu_to_be64(uint64_t v) { return GUINT64_TO_BE(v); }

static inline uint16_t ldbe16_p(const void *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return be16_to_cpu(v);
}

static inline uint32_t ldbe32_p(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return be32_to_cpu(v);
}

static inline uint64_t ldbe64_p(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return be64_to_cpu(v);
}

static inline void stbe16_p(void *p, uint16_t v)
{
    v = cpu_to_be16(v);
    memcpy(p, &v, sizeof(v));
}

static inline void stbe32_p(void *p, uint32_t v)
{
    v = cpu_to_be32(v);
    memcpy(p, &v, sizeof(v));
}

static inline void stbe64_p(void *p, uint64_t v)
{
    v = cpu_to_be64(v);
    memcpy(p, &v, sizeof(v));
}

/* Memory aligned for O_DIRECT; free with qemu_vfree(). Aborts on OOM. */
void *qemu_memalign(size_t alignment, size_t size);
void *qemu_try_memalign(size_t alignment, size_t size);
void *qemu_blockalign(size_t size);
void qemu_vfree(void *ptr);

/* True when all of buf[0..len) is zero. */
bool buffer_is_zero(const void *buf, size_t len);

#endif /* QEMU_OSDEP_H */
