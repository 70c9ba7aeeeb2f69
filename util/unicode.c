/*
 * UTF-8 decoding (see include/qemu/unicode.h). Stateless; no allocation.
 */
#include "qemu/osdep.h"
#include "qemu/unicode.h"

long utf8_decode_next(const unsigned char **pp, const unsigned char *end)
{
    /* The smallest code point each sequence length may encode. */
    static const long min_cp[] = { 0, 0, 0x80, 0x800, 0x10000 };
    const unsigned char *p = *pp;
    int len;
    long cp;

    if (*p < 0x80) {
        *pp = p + 1;
        return *p;
    }
    if (*p >= 0xC0 && *p < 0xE0) {
        len = 2;
    } else if (*p >= 0xE0 && *p < 0xF0) {
        len = 3;
    } else if (*p >= 0xF0 && *p < 0xF8) {
        len = 4;
    } else {
        *pp = p + 1;                /* continuation or impossible byte */
        return -1;
    }
    cp = *p & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if (p + i >= end || (p[i] & 0xC0) != 0x80) {
            *pp = p + i;
            return -1;
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    *pp = p + len;
    if ((cp < min_cp[len] && !(cp == 0 && len == 2)) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return -1;                  /* overlong, too big or a surrogate */
    }
    return cp;
}
