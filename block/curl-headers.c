/*
 * HTTP response header parsing for the curl driver (block/curl-headers.h).
 *
 * State: none beyond the caller's CurlHttpResponse. Every function is
 * pure (no I/O, no libcurl, no globals), takes explicit lengths and never
 * reads past them, so arbitrary server bytes are safe to feed in; this is
 * what tests/fuzz/fuzz-http.c exercises. Numbers are parsed strictly
 * (decimal digits, overflow refused) because a wrong Content-Range would
 * otherwise put the server's bytes at the wrong image offset.
 */
#include "qemu/osdep.h"
#include "curl-headers.h"

/* Nothing seen: no status, no length, no range (totals unknown). */
void curl_http_response_init(CurlHttpResponse *r)
{
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
    r->range_total = -1;
}

/*
 * Parse a non-negative decimal at [*p, end) into *val, advancing *p.
 * False if there is no digit or the value overflows int64_t.
 */
static bool curl_http_parse_num(const char **p, const char *end,
                                int64_t *val)
{
    const char *s = *p;
    int64_t v = 0;

    if (s == end || !g_ascii_isdigit(*s)) {
        return false;
    }
    while (s < end && g_ascii_isdigit(*s)) {
        int d = *s - '0';

        if (v > (INT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *val = v;
    return true;
}

/* Skip spaces and tabs at *p (not past end). */
static void curl_http_skip_ws(const char **p, const char *end)
{
    while (*p < end && (**p == ' ' || **p == '\t')) {
        (*p)++;
    }
}

/* "HTTP/1.1 206 ..." or "HTTP/2 200": start a new response. */
static bool curl_http_parse_status(CurlHttpResponse *r, const char *p,
                                   const char *end)
{
    int64_t code;

    curl_http_response_init(r);
    p += strlen("HTTP/");
    while (p < end && (g_ascii_isdigit(*p) || *p == '.')) {
        p++;
    }
    if (p == end || *p != ' ') {
        r->malformed = true;
        return false;
    }
    curl_http_skip_ws(&p, end);
    if (end - p < 3 || !curl_http_parse_num(&p, end, &code) ||
        code < 100 || code > 999 || (p < end && *p != ' ')) {
        r->malformed = true;
        return false;
    }
    r->status = code;
    return true;
}

/* Content-Length: digits only. */
static bool curl_http_parse_length(CurlHttpResponse *r, const char *p,
                                   const char *end)
{
    int64_t v;

    if (!curl_http_parse_num(&p, end, &v) || p != end) {
        r->malformed = true;
        return false;
    }
    r->content_length = v;
    return true;
}

/* Accept-Ranges: a comma-separated token list; we want "bytes". */
static bool curl_http_parse_accept(CurlHttpResponse *r, const char *p,
                                   const char *end)
{
    while (p < end) {
        const char *tok;

        curl_http_skip_ws(&p, end);
        tok = p;
        while (p < end && *p != ',' && *p != ' ' && *p != '\t') {
            p++;
        }
        if (p - tok == 5 && !g_ascii_strncasecmp(tok, "bytes", 5)) {
            r->accept_ranges = true;
        }
        curl_http_skip_ws(&p, end);
        if (p < end && *p == ',') {
            p++;
        }
    }
    return true;
}

/* Content-Range: "bytes A-B/N", "bytes A-B/(star)" or "bytes (star)/N" (416). */
static bool curl_http_parse_content_range(CurlHttpResponse *r,
                                          const char *p, const char *end)
{
    int64_t a = -1, b = -1, n = -1;

    r->has_range = false;
    if (end - p < 6 || g_ascii_strncasecmp(p, "bytes", 5) ||
        (p[5] != ' ' && p[5] != '\t')) {
        goto bad;
    }
    p += 5;
    curl_http_skip_ws(&p, end);
    if (p < end && *p == '*') {
        p++;
    } else if (!curl_http_parse_num(&p, end, &a) || p == end || *p++ != '-' ||
               !curl_http_parse_num(&p, end, &b) || b < a) {
        goto bad;
    }
    if (p == end || *p++ != '/') {
        goto bad;
    }
    if (p < end && *p == '*') {
        p++;
    } else if (!curl_http_parse_num(&p, end, &n)) {
        goto bad;
    }
    if (p != end || (a < 0 && n < 0) || (n >= 0 && b >= n)) {
        goto bad;
    }
    r->range_total = n;
    if (a >= 0) {
        r->has_range = true;
        r->range_start = a;
        r->range_end = b;
    }
    return true;

bad:
    r->malformed = true;
    return false;
}

/*
 * One line: a status line restarts the response; "Name: value" lines are
 * matched case-insensitively on the name, with the value trimmed of
 * spaces and tabs; anything else (the blank end line, obs-fold
 * continuations, junk) is ignored.
 */
bool curl_http_parse_line(CurlHttpResponse *r, const char *line, size_t len)
{
    const char *p = line, *end = line + len, *colon, *name_end;
    size_t nlen;

    while (end > p && (end[-1] == '\n' || end[-1] == '\r')) {
        end--;
    }
    if (end - p >= 5 && !memcmp(p, "HTTP/", 5)) {
        return curl_http_parse_status(r, p, end);
    }
    colon = memchr(p, ':', end - p);
    if (!colon) {
        return true;            /* blank line or junk we do not use */
    }
    name_end = colon;
    while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t')) {
        name_end--;
    }
    nlen = name_end - p;
    p = colon + 1;
    curl_http_skip_ws(&p, end);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    if (nlen == 14 && !g_ascii_strncasecmp(line, "content-length", nlen)) {
        return curl_http_parse_length(r, p, end);
    }
    if (nlen == 13 && !g_ascii_strncasecmp(line, "accept-ranges", nlen)) {
        return curl_http_parse_accept(r, p, end);
    }
    if (nlen == 13 && !g_ascii_strncasecmp(line, "content-range", nlen)) {
        return curl_http_parse_content_range(r, p, end);
    }
    return true;
}

/* Split at LF (the last line may lack one) and parse each line. */
bool curl_http_parse_block(CurlHttpResponse *r, const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len;
    bool ok = true;

    while (p < end) {
        const char *nl = memchr(p, '\n', end - p);
        const char *next = nl ? nl + 1 : end;

        if (!curl_http_parse_line(r, p, next - p)) {
            ok = false;
        }
        p = next;
    }
    return ok;
}

/*
 * Authorisation failures are EACCES, gone resources ENOENT, timeouts
 * ETIMEDOUT; any other error status (5xx above all) stays EIO.
 */
int curl_http_status_errno(int status)
{
    switch (status) {
    case 401:
    case 403:
    case 407:
        return -EACCES;
    case 404:
    case 410:
        return -ENOENT;
    case 408:
    case 504:
        return -ETIMEDOUT;
    case 416:
        return -EINVAL;
    default:
        return status >= 400 ? -EIO : 0;
    }
}

/*
 * Only two replies carry exactly the asked bytes: 206 with the asked
 * Content-Range (and the size we know, if it says one), and 200 when the
 * whole resource was asked for. Anything else would place the server's
 * bytes at the wrong offset, so it fails with a detail.
 */
int curl_http_check_range_reply(const CurlHttpResponse *r, int64_t offset,
                                int64_t bytes, int64_t image_len,
                                char **detail)
{
    int64_t last = offset + bytes - 1;

    if (r->status >= 400 || r->status == 0) {
        *detail = g_strdup_printf("HTTP %d", r->status);
        return r->status ? curl_http_status_errno(r->status) : -EIO;
    }
    if (r->status == 200) {
        if (offset == 0 && bytes == image_len &&
            (r->content_length < 0 || r->content_length == bytes)) {
            return 0;
        }
        *detail = g_strdup_printf("HTTP 200: the server ignored the range "
                                  "%lld-%lld", (long long)offset,
                                  (long long)last);
        return -EIO;
    }
    if (r->status != 206) {
        *detail = g_strdup_printf("unexpected HTTP %d", r->status);
        return -EIO;
    }
    if (!r->has_range) {
        *detail = g_strdup_printf("HTTP 206 without a valid Content-Range "
                                  "for %lld-%lld", (long long)offset,
                                  (long long)last);
        return -EIO;
    }
    if (r->range_start != offset || r->range_end != last ||
        (r->range_total >= 0 && r->range_total != image_len)) {
        *detail = g_strdup_printf("the server sent bytes %lld-%lld/%lld "
                                  "for %lld-%lld/%lld",
                                  (long long)r->range_start,
                                  (long long)r->range_end,
                                  (long long)r->range_total,
                                  (long long)offset, (long long)last,
                                  (long long)image_len);
        return -EIO;
    }
    return 0;
}
