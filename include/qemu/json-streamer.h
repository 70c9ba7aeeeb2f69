/*
 * Incremental JSON message splitter for QMP input.
 *
 * A JsonStreamer is fed arbitrary chunks of a byte stream (a QMP socket)
 * and calls back once per complete top-level JSON value found in it. It
 * accepts QEMU's extensions: single-quoted strings (with \' escapes) are
 * converted to standard JSON before json-glib parses the value.
 *
 * Errors (lexical errors such as control bytes or 0xFF, nesting deeper
 * than 1024, a token over 64 MiB, more than 2 million tokens in a value,
 * a parse error) drop the pending input and report exactly one error; the
 * streamer then resynchronises on the following input. Feeding the same
 * bytes in any chunking gives the same sequence of callbacks.
 *
 * Not thread-safe: one streamer belongs to one monitor/thread. The callback
 * may call json_streamer_reset() but must not free the streamer.
 */
#ifndef QEMU_JSON_STREAMER_H
#define QEMU_JSON_STREAMER_H

#include "qemu/osdep.h"
#include <json-glib/json-glib.h>
#include "qapi/error.h"

/* Limits, as in QEMU 7.2. */
#define JSON_STREAMER_MAX_NESTING   1024
#define JSON_STREAMER_MAX_TOKEN     (64ULL * 1024 * 1024)
#define JSON_STREAMER_MAX_TOKENS    (2 * 1024 * 1024)

typedef struct JsonStreamer JsonStreamer;

/*
 * Called once per complete value (value != NULL, err == NULL; the callee
 * owns value: json_node_unref) or once per error (value == NULL, err set;
 * the callee frees err).
 */
typedef void JsonStreamerFunc(void *opaque, JsonNode *value, Error *err);

JsonStreamer *json_streamer_new(JsonStreamerFunc *fn, void *opaque);
/* Consume len bytes; may call fn any number of times. */
void json_streamer_feed(JsonStreamer *s, const char *buf, size_t len);
/*
 * End of input: finish a pending scalar (a number needs a following byte
 * to end), and report an incomplete value as an error ("premature EOI").
 */
void json_streamer_flush(JsonStreamer *s);
/* Drop any partial value, as if the stream started anew. No callback. */
void json_streamer_reset(JsonStreamer *s);
/*
 * Free the streamer. A partial value still pending is dropped silently.
 * NULL-safe.
 */
void json_streamer_free(JsonStreamer *s);

/*
 * Lower the limits (tests only: a unit test cannot afford a 64 MiB value).
 * 0 keeps a limit unchanged.
 */
void json_streamer_set_limits(JsonStreamer *s, unsigned max_nesting,
                              size_t max_token_size, size_t max_tokens);

#endif /* QEMU_JSON_STREAMER_H */
