/*
 * Unit tests for the curl driver's HTTP header parsing and range reply
 * checks (block/curl-headers.c): real header blocks from nginx and
 * Apache, malformed ones, and replies that do not match the request.
 */
#include "qemu/osdep.h"
#include "block/curl-headers.h"

/* Parse a NUL-terminated block into a fresh response. */
static bool parse(CurlHttpResponse *r, const char *block)
{
    curl_http_response_init(r);
    return curl_http_parse_block(r, block, strlen(block));
}

static void test_head_nginx(void)
{
    CurlHttpResponse r;

    g_assert_true(parse(&r, "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
                            "Content-Length: 4194304\r\n"
                            "Accept-Ranges: bytes\r\n\r\n"));
    g_assert_cmpint(r.status, ==, 200);
    g_assert_cmpint(r.content_length, ==, 4194304);
    g_assert_true(r.accept_ranges);
    g_assert_false(r.has_range);
}

static void test_accept_ranges_none(void)
{
    CurlHttpResponse r;

    g_assert_true(parse(&r, "HTTP/1.1 200 OK\nAccept-Ranges: none\n"));
    g_assert_false(r.accept_ranges);
    g_assert_true(parse(&r, "HTTP/2 200\naccept-ranges:  foo, BYTES\n"));
    g_assert_true(r.accept_ranges);
    g_assert_cmpint(r.status, ==, 200);
}

static void test_redirect_resets(void)
{
    CurlHttpResponse r;

    g_assert_true(parse(&r, "HTTP/1.1 301 Moved\r\nContent-Length: 5\r\n"
                            "Location: /x\r\n\r\n"
                            "HTTP/1.1 206 Partial Content\r\n"
                            "Content-Range: bytes 10-19/100\r\n\r\n"));
    g_assert_cmpint(r.status, ==, 206);
    g_assert_cmpint(r.content_length, ==, -1);
    g_assert_true(r.has_range);
    g_assert_cmpint(r.range_start, ==, 10);
    g_assert_cmpint(r.range_end, ==, 19);
    g_assert_cmpint(r.range_total, ==, 100);
}

static void test_malformed(void)
{
    static const char *const bad[] = {
        "HTTP/1.1 2x6 Partial\n",
        "HTTP/1.1\n",
        "HTTP/1.1 206\nContent-Length: 12a\n",
        "HTTP/1.1 206\nContent-Length: 99999999999999999999999\n",
        "HTTP/1.1 206\nContent-Range: bytes 20-10/100\n",
        "HTTP/1.1 206\nContent-Range: bytes 0-100/100\n",
        "HTTP/1.1 206\nContent-Range: items 0-1/100\n",
        "HTTP/1.1 206\nContent-Range: bytes 0-1\n",
        "HTTP/1.1 206\nContent-Range: bytes */*\n",
        "HTTP/1.1 206\nContent-Range: bytes -1-5/100\n",
    };
    CurlHttpResponse r;

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_assert_false(parse(&r, bad[i]));
        g_assert_true(r.malformed);
        g_assert_false(r.has_range);
    }
    g_assert_true(parse(&r, "HTTP/1.1 416 Range Not Satisfiable\n"
                            "Content-Range: bytes */100\n"));
    g_assert_cmpint(r.range_total, ==, 100);
    g_assert_false(r.has_range);
}

static void test_range_ok(void)
{
    CurlHttpResponse r;
    char *detail = NULL;

    parse(&r, "HTTP/1.1 206 Partial Content\r\n"
              "Content-Range: bytes 512-1023/4096\r\n");
    g_assert_cmpint(curl_http_check_range_reply(&r, 512, 512, 4096, &detail),
                    ==, 0);
    g_assert_null(detail);
    /* unknown total is accepted */
    parse(&r, "HTTP/1.1 206 OK\nContent-Range: bytes 512-1023/*\n");
    g_assert_cmpint(curl_http_check_range_reply(&r, 512, 512, 4096, &detail),
                    ==, 0);
}

static void test_range_mismatch(void)
{
    CurlHttpResponse r;
    char *detail = NULL;

    parse(&r, "HTTP/1.1 206 Partial Content\r\n"
              "Content-Range: bytes 0-511/4096\r\n");
    g_assert_cmpint(curl_http_check_range_reply(&r, 512, 512, 4096, &detail),
                    ==, -EIO);
    g_assert_nonnull(strstr(detail, "0-511/4096 for 512-1023/4096"));
    g_free(detail);
    detail = NULL;
    /* the resource changed size under us */
    parse(&r, "HTTP/1.1 206 OK\nContent-Range: bytes 512-1023/8192\n");
    g_assert_cmpint(curl_http_check_range_reply(&r, 512, 512, 4096, &detail),
                    ==, -EIO);
    g_free(detail);
    detail = NULL;
    parse(&r, "HTTP/1.1 206 OK\n");
    g_assert_cmpint(curl_http_check_range_reply(&r, 512, 512, 4096, &detail),
                    ==, -EIO);
    g_assert_nonnull(strstr(detail, "without a valid Content-Range"));
    g_free(detail);
}

static void test_200_ignored_range(void)
{
    CurlHttpResponse r;
    char *detail = NULL;

    parse(&r, "HTTP/1.1 200 OK\nContent-Length: 4096\n");
    g_assert_cmpint(curl_http_check_range_reply(&r, 0, 4096, 4096, &detail),
                    ==, 0);
    g_assert_cmpint(curl_http_check_range_reply(&r, 0, 512, 4096, &detail),
                    ==, -EIO);
    g_assert_nonnull(strstr(detail, "ignored the range"));
    g_free(detail);
}

static void test_status_errno(void)
{
    CurlHttpResponse r;
    char *detail = NULL;

    g_assert_cmpint(curl_http_status_errno(401), ==, -EACCES);
    g_assert_cmpint(curl_http_status_errno(403), ==, -EACCES);
    g_assert_cmpint(curl_http_status_errno(404), ==, -ENOENT);
    g_assert_cmpint(curl_http_status_errno(503), ==, -EIO);
    g_assert_cmpint(curl_http_status_errno(206), ==, 0);
    parse(&r, "HTTP/1.1 503 Service Unavailable\n");
    g_assert_cmpint(curl_http_check_range_reply(&r, 0, 1, 10, &detail),
                    ==, -EIO);
    g_assert_cmpstr(detail, ==, "HTTP 503");
    g_free(detail);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/curl-headers/head/nginx", test_head_nginx);
    g_test_add_func("/curl-headers/head/accept-ranges", test_accept_ranges_none);
    g_test_add_func("/curl-headers/parse/redirect-resets", test_redirect_resets);
    g_test_add_func("/curl-headers/parse/malformed", test_malformed);
    g_test_add_func("/curl-headers/range/match", test_range_ok);
    g_test_add_func("/curl-headers/range/mismatch-fails", test_range_mismatch);
    g_test_add_func("/curl-headers/range/200-ignored-range",
                    test_200_ignored_range);
    g_test_add_func("/curl-headers/status/errno", test_status_errno);
    return g_test_run();
}
