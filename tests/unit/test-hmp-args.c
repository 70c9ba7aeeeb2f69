/*
 * Unit tests for the human monitor's input side: the args_type parser
 * (monitor/hmp-args.c) with QEMU's error texts, and line editing
 * (monitor/readline.c) fed byte by byte, checking both the lines handed
 * over and the bytes echoed to the client.
 */
#include "qemu/osdep.h"
#include "monitor/hmp-internal.h"
#include "monitor/readline.h"

static const HMPCommand cmd_stream = {
    .name = "block_stream", .args_type = "device:B,speed:o?,base:s?",
};
static const HMPCommand cmd_cancel = {
    .name = "block_job_cancel", .args_type = "force:-f,device:B",
};
static const HMPCommand cmd_info_block = {
    .name = "block", .args_type = "nodes:-n,verbose:-v,device:B?",
};
static const HMPCommand cmd_misc = {
    .name = "misc", .args_type = "n:i,big:l?,on:b?",
};

/* Parse expecting success. */
static QDict *parse_ok(const HMPCommand *cmd, const char *args)
{
    g_autoptr(GString) err = g_string_new(NULL);
    QDict *d = hmp_parse_args(cmd, args, err);

    g_assert_cmpstr(err->str, ==, "");
    g_assert_nonnull(d);
    return d;
}

/* Parse expecting failure with exactly the lines msg. */
static void parse_err(const HMPCommand *cmd, const char *args,
                      const char *msg)
{
    g_autoptr(GString) err = g_string_new(NULL);

    g_assert_null(hmp_parse_args(cmd, args, err));
    g_assert_cmpstr(err->str, ==, msg);
}

static uint64_t get_uint(QDict *d, const char *key)
{
    uint64_t v = 0;

    g_assert_true(qdict_get_uint(d, key, 0, &v, &error_abort));
    return v;
}

static bool get_bool(QDict *d, const char *key)
{
    bool v = false;

    g_assert_true(qdict_get_bool(d, key, false, &v, &error_abort));
    return v;
}

static void test_args_positional(void)
{
    g_autoptr(QDict) d = parse_ok(&cmd_stream, "  drive0 2M  'my base' ");
    g_autoptr(QDict) d2 = parse_ok(&cmd_stream, "drive0");

    g_assert_cmpstr(qdict_get_try_str(d, "device"), ==, "drive0");
    g_assert_cmpuint(get_uint(d, "speed"), ==, 2 * MiB);
    g_assert_cmpstr(qdict_get_try_str(d, "base"), ==, "my base");
    g_assert_cmpuint(qdict_size(d2), ==, 1);
}

static void test_args_sizes(void)
{
    static const struct {
        const char *in;
        uint64_t out;
    } cases[] = {
        { "4096b", 4096 }, { "1k", KiB }, { "1K", KiB }, { "3m", 3 * MiB },
        { "1G", GiB }, { "2t", 2 * TiB }, { "1P", 1ULL << 50 },
        { "1e", 1ULL << 60 }, { "1.5k", 1536 }, { "2", 2 * MiB },
    };

    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        uint64_t v = 0;
        g_assert_true(hmp_parse_size(cases[i].in, &v));
        g_assert_cmpuint(v, ==, cases[i].out);
    }
    parse_err(&cmd_stream, "drive0 12x", "invalid size\n");
    parse_err(&cmd_stream, "drive0 -1", "invalid size\n");
    parse_err(&cmd_stream, "drive0 16E", "invalid size\n");
}

static void test_args_flags(void)
{
    g_autoptr(QDict) d = parse_ok(&cmd_info_block, "-v -n drive0");
    g_autoptr(QDict) d2 = parse_ok(&cmd_cancel, "-f job0");
    g_autoptr(QDict) d3 = parse_ok(&cmd_cancel, "job0");

    g_assert_true(get_bool(d, "nodes"));
    g_assert_true(get_bool(d, "verbose"));
    g_assert_cmpstr(qdict_get_try_str(d, "device"), ==, "drive0");
    g_assert_true(get_bool(d2, "force"));
    g_assert_false(qdict_haskey(d3, "force"));
    parse_err(&cmd_cancel, "-x job0",
              "block_job_cancel: unsupported option -x\n");
}

static void test_args_errors(void)
{
    parse_err(&cmd_stream, "", "block_stream: block device name expected\n");
    parse_err(&cmd_stream, "\"drive0",
              "unterminated string\n"
              "block_stream: block device name expected\n");
    parse_err(&cmd_stream, "drive0 1M base extra",
              "block_stream: extraneous characters at the end of line\n");
    parse_err(&cmd_misc, "", "unexpected end of expression\n");
    parse_err(&cmd_misc, "12z", "invalid char in expression\n");
    parse_err(&cmd_misc, "0x100000000",
              "'misc' has failed: integer is for 32-bit values\n");
    parse_err(&cmd_misc, "1 2 maybe", "Expected 'on' or 'off'\n");
}

static void test_args_ints_bools(void)
{
    g_autoptr(QDict) d = parse_ok(&cmd_misc, "0x10 -5 on");

    g_assert_cmpstr(qdict_get_try_str(d, "n"), ==, "16");
    g_assert_cmpstr(qdict_get_try_str(d, "big"), ==, "-5");
    g_assert_true(get_bool(d, "on"));
}

/* ---- readline */

typedef struct RLTest {
    GString *out;           /* echoed bytes */
    GPtrArray *lines;       /* completed lines */
} RLTest;

static void rl_test_write(void *opaque, const char *s)
{
    g_string_append(((RLTest *)opaque)->out, s);
}

static void rl_test_line(void *opaque, const char *line)
{
    g_ptr_array_add(((RLTest *)opaque)->lines, g_strdup(line));
}

static char **rl_test_complete(void *opaque, const char *prefix)
{
    static const char *const words[] = { "info", "quit", "quiet", NULL };
    const char *w = strrchr(prefix, ' ');
    GPtrArray *out = g_ptr_array_new();

    w = w ? w + 1 : prefix;
    for (int i = 0; words[i]; i++) {
        if (g_str_has_prefix(words[i], w)) {
            g_ptr_array_add(out, g_strdup(words[i]));
        }
    }
    g_ptr_array_add(out, NULL);
    return (char **)g_ptr_array_free(out, false);
}

static void feed(ReadLineState *rs, const char *s)
{
    for (; *s; s++) {
        readline_handle_byte(rs, (uint8_t)*s);
    }
}

static ReadLineState *rl_test_new(RLTest *t, bool echo)
{
    ReadLineState *rs;

    t->out = g_string_new(NULL);
    t->lines = g_ptr_array_new_with_free_func(g_free);
    rs = readline_new(rl_test_write, rl_test_complete, rl_test_line, t);
    readline_start(rs, "> ", echo);
    return rs;
}

static void rl_test_free(RLTest *t, ReadLineState *rs)
{
    readline_free(rs);
    g_string_free(t->out, true);
    g_ptr_array_unref(t->lines);
}

static void test_readline_editing(void)
{
    RLTest t;
    ReadLineState *rs = rl_test_new(&t, true);

    feed(rs, "abc\r");
    g_assert_cmpstr(t.out->str, ==, "abc\n");
    feed(rs, "ac\033[Db\033[C\033[Cd\r");           /* insert, move */
    feed(rs, "xyz\x08\x7f\x01w\x05!\n");            /* bs, ^A, ^E */
    feed(rs, "one two\x17three\r\n");               /* ^W, CR LF */
    feed(rs, "12345\033[D\033[D\x0b\x01\033[C\033[3~\r");  /* ^K, del */
    feed(rs, "junk\x15ok\033[15~\033OP\033[1;2P\r"); /* ^U, ignored keys */
    g_assert_cmpuint(t.lines->len, ==, 6);
    g_assert_cmpstr(t.lines->pdata[1], ==, "abcd");
    g_assert_cmpstr(t.lines->pdata[2], ==, "wx!");
    g_assert_cmpstr(t.lines->pdata[3], ==, "one three");
    g_assert_cmpstr(t.lines->pdata[4], ==, "13");
    g_assert_cmpstr(t.lines->pdata[5], ==, "ok");
    rl_test_free(&t, rs);
}

static void test_readline_history(void)
{
    RLTest t;
    ReadLineState *rs = rl_test_new(&t, true);

    feed(rs, "first\rsecond\rsecond\rnew");
    feed(rs, "\033[A\033[A\r");                     /* dedup: "first" */
    feed(rs, "draft\033[A\033[B\r");                /* back to draft */
    g_assert_cmpstr(t.lines->pdata[3], ==, "first");
    g_assert_cmpstr(t.lines->pdata[4], ==, "draft");
    g_assert_cmpstr(readline_get_history(rs, 0), ==, "draft");
    g_assert_cmpstr(readline_get_history(rs, 2), ==, "second");
    rl_test_free(&t, rs);
}

static void test_readline_completion(void)
{
    RLTest t;
    ReadLineState *rs = rl_test_new(&t, true);

    feed(rs, "in\t\r");
    g_assert_cmpstr(t.lines->pdata[0], ==, "info ");
    g_string_truncate(t.out, 0);
    feed(rs, "q\t");                    /* extends to the common "qui" */
    g_assert_cmpstr(t.out->str, ==, "qui");
    feed(rs, "\t");                     /* lists, then redraws */
    g_assert_nonnull(strstr(t.out->str, "\nquit   quiet  \n> qui"));
    feed(rs, "t\t\r");
    g_assert_cmpstr(t.lines->pdata[1], ==, "quit ");
    rl_test_free(&t, rs);
}

static void test_readline_plain(void)
{
    RLTest t;
    ReadLineState *rs = rl_test_new(&t, false);

    feed(rs, "info status\ninfo\tx\r\n\r");
    g_assert_cmpstr(t.out->str, ==, "");
    g_assert_cmpuint(t.lines->len, ==, 3);
    g_assert_cmpstr(t.lines->pdata[1], ==, "infox");
    g_assert_cmpstr(t.lines->pdata[2], ==, "");
    rl_test_free(&t, rs);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hmp/args/positional", test_args_positional);
    g_test_add_func("/hmp/args/sizes", test_args_sizes);
    g_test_add_func("/hmp/args/flags", test_args_flags);
    g_test_add_func("/hmp/args/errors", test_args_errors);
    g_test_add_func("/hmp/args/ints-and-bools", test_args_ints_bools);
    g_test_add_func("/hmp/readline/editing", test_readline_editing);
    g_test_add_func("/hmp/readline/history", test_readline_history);
    g_test_add_func("/hmp/readline/completion", test_readline_completion);
    g_test_add_func("/hmp/readline/plain-mode", test_readline_plain);
    return g_test_run();
}
