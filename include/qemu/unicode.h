/*
 * UTF-8 decoding shared by the JSON reader (util/json-streamer.c) and
 * writer (util/qjson.c).
 */
#ifndef QEMU_UNICODE_H
#define QEMU_UNICODE_H

#include "qemu/osdep.h"

/*
 * Decode the UTF-8 sequence at *pp (before end) and advance *pp past it.
 * Modified UTF-8 is accepted (C0 80 is U+0000). Returns the code point,
 * or -1 for a truncated, overlong or impossible sequence, a surrogate or
 * a value above U+10FFFF; *pp then points past the bytes consumed.
 */
long utf8_decode_next(const unsigned char **pp, const unsigned char *end);

#endif /* QEMU_UNICODE_H */
