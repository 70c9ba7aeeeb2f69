/*
 * HTTP response headers as the curl driver needs them, parsed and judged
 * without libcurl (block/curl-headers.c), so that unit tests and the
 * fuzzer (tests/fuzz/fuzz-http.c) reach the same code as real transfers.
 */
#ifndef BLOCK_CURL_HEADERS_H
#define BLOCK_CURL_HEADERS_H

#include "qemu/osdep.h"

/* What one response's header block said; fed one line at a time. */
typedef struct CurlHttpResponse {
    int status;             /* the last status line's code; 0: none yet */
    int64_t content_length; /* -1: absent */
    bool accept_ranges;     /* "Accept-Ranges: bytes" */
    bool has_range;         /* a well-formed "Content-Range: bytes a-b/n" */
    int64_t range_start;    /* first byte of the range (inclusive) */
    int64_t range_end;      /* last byte of the range (inclusive) */
    int64_t range_total;    /* the resource's size; -1 for "*" */
    bool malformed;         /* a header we rely on could not be parsed */
} CurlHttpResponse;

/* Reset r to "nothing seen yet". */
void curl_http_response_init(CurlHttpResponse *r);

/*
 * Take one header line (len bytes, not NUL-terminated, trailing CR/LF
 * allowed). A status line ("HTTP/1.1 206 Partial Content") starts a new
 * response (redirects and "100 Continue" come first), forgetting the
 * headers before it. Returns false when the line is a status line or one
 * of the headers we use (Content-Length, Accept-Ranges, Content-Range)
 * and it is malformed; unknown headers are ignored.
 */
bool curl_http_parse_line(CurlHttpResponse *r, const char *line,
                          size_t len);

/*
 * Parse a whole header block (lines ending in LF or CRLF). Returns false
 * when any line was rejected (the response is still filled as far as
 * possible).
 */
bool curl_http_parse_block(CurlHttpResponse *r, const char *buf,
                           size_t len);

/* -errno for an HTTP error status (>= 400), 0 for anything else. */
int curl_http_status_errno(int status);

/*
 * Judge r as the answer to "Range: bytes=offset-(offset+bytes-1)" on a
 * resource of image_len bytes. Returns 0 when the body will be exactly
 * the asked bytes (206 with a matching Content-Range, or 200 for the
 * whole resource asked from offset 0), else -errno with *detail set to a
 * new string such as "HTTP 503" or "server sent bytes 0-99 for 100-199".
 */
int curl_http_check_range_reply(const CurlHttpResponse *r, int64_t offset,
                                int64_t bytes, int64_t image_len,
                                char **detail);

#endif /* BLOCK_CURL_HEADERS_H */
