/*
 * libFuzzer target: feed an arbitrary byte string to the curl driver's
 * HTTP header parser (block/curl-headers.c) as one header block, then
 * judge the result as the reply to a few Range requests. The parser has
 * no I/O and no libcurl, so every input is handled in memory; the
 * invariants checked are that a reply accepted for a range names exactly
 * that range (or is a whole-resource 200) and that parsing never reads
 * past the input (ASan).
 */
#include "qemu/osdep.h"
#include "block/curl-headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Requests the fuzzed reply is checked against: (offset, bytes, size). */
static const int64_t fuzz_http_requests[][3] = {
    { 0, 4096, 4096 }, { 0, 512, 4194304 }, { 512, 512, 4096 },
    { 10, 10, 100 },
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CurlHttpResponse r;

    curl_http_response_init(&r);
    curl_http_parse_block(&r, (const char *)data, size);
    if (r.has_range) {
        g_assert(r.range_start <= r.range_end);
        g_assert(r.range_total < 0 || r.range_end < r.range_total);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(fuzz_http_requests); i++) {
        const int64_t *q = fuzz_http_requests[i];
        char *detail = NULL;
        int ret = curl_http_check_range_reply(&r, q[0], q[1], q[2], &detail);

        g_assert((ret == 0) == (detail == NULL));
        if (ret == 0 && r.status == 206) {
            g_assert(r.range_start == q[0] && r.range_end == q[0] + q[1] - 1);
        } else if (ret == 0) {
            g_assert(r.status == 200 && q[0] == 0 && q[1] == q[2]);
        }
        g_free(detail);
    }
    return 0;
}
