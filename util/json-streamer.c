/*
 * JSON streamer: splits a byte stream into top-level JSON values.
 *
 * Three layers run byte by byte, so any chunking of the input gives the
 * same callbacks:
 *
 *  - a lexer (LexState) that recognises tokens as QEMU 7.2's lexer does:
 *    structural characters, strings in double or single quotes (bytes
 *    0x20..0xFD only), numbers, [a-z]+ keywords. Any other byte is a
 *    lexical error ("stray"); the lexer then skips to the next structural
 *    character or control byte (QMP clients send 0xFF to force a reset).
 *  - a grammar checker (a stack of Frames) that follows each token as
 *    QEMU's recursive parser would, so that a malformed value reports the
 *    same first error text ("expecting value", "duplicate key", ...).
 *    Strings are validated here (escapes, UTF-8, code points).
 *  - the value boundary: as in QEMU, a value ends when the counts of
 *    open braces and brackets are both back to zero or one goes negative.
 *    Then the first grammar error is reported, or the normalised text is
 *    parsed by json-glib and the root handed to the callback.
 *
 * State: the pending value's normalised text lives in one GString (single
 * quoted strings are rewritten into standard JSON, whitespace dropped),
 * with the raw bytes of the token being lexed at its tail. Limits (token
 * bytes per value, tokens per value, nesting) are checked as bytes arrive,
 * so hostile input never holds more than one value's worth of memory; the
 * buffer is shrunk again after a big value.
 *
 * One streamer is used by one thread; the callback runs after the
 * streamer's state was reset, so it may call json_streamer_reset().
 *
 * Known differences from QEMU 7.2, both due to json-glib's JsonNode: an
 * integer above INT64_MAX (or below INT64_MIN) becomes a double, where
 * QEMU keeps a uint64_t exactly; "\u0000" in a string truncates it at the
 * NUL, where QEMU keeps the character. Error texts, limits and recovery
 * were checked byte for byte against qemu-storage-daemon 7.2.
 */
#include "qemu/osdep.h"
#include "qemu/json-streamer.h"
#include "qemu/unicode.h"
#include "trace.h"

typedef enum LexState {
    LEX_START,
    LEX_RECOVERY,
    LEX_DQ,
    LEX_DQ_ESC,
    LEX_SQ,
    LEX_SQ_ESC,
    LEX_SIGN,
    LEX_ZERO,
    LEX_DIGITS,
    LEX_MANT,
    LEX_MANT_DIGITS,
    LEX_EXP_E,
    LEX_EXP_SIGN,
    LEX_EXP_DIGITS,
    LEX_KEYWORD,
} LexState;

typedef enum TokType {
    TOK_LCURLY,
    TOK_RCURLY,
    TOK_LSQUARE,
    TOK_RSQUARE,
    TOK_COLON,
    TOK_COMMA,
    TOK_INTEGER,
    TOK_FLOAT,
    TOK_KEYWORD,
    TOK_STRING,
} TokType;

/* Where inside an array or object the grammar checker is. */
typedef enum FrameState {
    FR_ARRAY_FIRST,     /* after '[': value or ']' */
    FR_ARRAY_VALUE,     /* after a member: ',' or ']' */
    FR_ARRAY_COMMA,     /* after ',': value */
    FR_OBJ_FIRST,       /* after '{': key or '}' */
    FR_OBJ_KEY,         /* after a key: ':' */
    FR_OBJ_COLON,       /* after ':': value */
    FR_OBJ_VALUE,       /* after a member: ',' or '}' */
    FR_OBJ_COMMA,       /* after ',': key */
} FrameState;

typedef struct Frame {
    FrameState state;
    GHashTable *keys;   /* objects: decoded member names seen so far */
    char *key;          /* objects: member being parsed (decoded) */
} Frame;

/* Buffers bigger than this are freed, not kept, after a value. */
#define JSON_STREAMER_KEEP_BUF (64 * 1024)

struct JsonStreamer {
    JsonStreamerFunc *fn;
    void *opaque;
    unsigned max_nesting;
    size_t max_size;
    size_t max_tokens;

    LexState lex;
    GString *text;          /* normalised value text + raw current token */
    size_t tok_start;       /* offset of the current token in text */

    int brace_count;
    int bracket_count;
    size_t ntokens;         /* tokens in the pending value */
    size_t token_bytes;     /* raw bytes of those tokens */
    GArray *stack;          /* of Frame; empty at top level */
    Error *grammar_err;     /* first syntax error of the pending value */
};

/* Free what a frame owns (not the frame: it lives in the stack array). */
static void frame_clear(Frame *f)
{
    if (f->keys) {
        g_hash_table_destroy(f->keys);
    }
    g_free(f->key);
}

/* Forget the pending value (text, counts, grammar state). */
static void streamer_drop_value(JsonStreamer *s)
{
    while (s->stack->len) {
        frame_clear(&g_array_index(s->stack, Frame, s->stack->len - 1));
        g_array_set_size(s->stack, s->stack->len - 1);
    }
    if (s->text->allocated_len > JSON_STREAMER_KEEP_BUF) {
        g_string_free(s->text, true);
        s->text = g_string_sized_new(256);
    } else {
        g_string_truncate(s->text, 0);
    }
    s->tok_start = 0;
    s->brace_count = 0;
    s->bracket_count = 0;
    s->ntokens = 0;
    s->token_bytes = 0;
    if (s->grammar_err) {
        error_free(s->grammar_err);
        s->grammar_err = NULL;
    }
}

/* Report err for the pending value: drop it, then call back. */
static void streamer_fail(JsonStreamer *s, Error *err)
{
    trace_json_streamer_error(s, error_get_pretty(err));
    streamer_drop_value(s);
    s->fn(s->opaque, NULL, err);
}

static void G_GNUC_PRINTF(2, 3) streamer_failf(JsonStreamer *s,
                                               const char *fmt, ...)
{
    Error *err = NULL;
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(&err, "%s", msg);
    g_free(msg);
    streamer_fail(s, err);
}

/* Record the first syntax error; it is reported when the value ends. */
static void G_GNUC_PRINTF(2, 3) grammar_error(JsonStreamer *s,
                                              const char *fmt, ...)
{
    va_list ap;
    char *msg;

    if (s->grammar_err) {
        return;
    }
    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(&s->grammar_err, "JSON parse error, %s", msg);
    g_free(msg);
    /* Nothing more is parsed: free what the checker holds. */
    while (s->stack->len) {
        frame_clear(&g_array_index(s->stack, Frame, s->stack->len - 1));
        g_array_set_size(s->stack, s->stack->len - 1);
    }
}

/* ---- strings ---- */

static bool codepoint_valid(long cp)
{
    if (cp < 0 || cp > 0x10FFFF) {
        return false;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) {
        return false;               /* surrogate */
    }
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
        return false;               /* noncharacter */
    }
    return true;
}

/* Four hex digits at p (bounded by end), or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    long v = 0;

    if (end - p < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        int d = g_ascii_xdigit_value(p[i]);
        if (d < 0) {
            return -1;
        }
        v = (v << 4) | d;
    }
    return v;
}

/* The next code point of [*pp, end), or -1 (also for noncharacters). */
static long utf8_next(const unsigned char **pp, const unsigned char *end)
{
    long cp = utf8_decode_next(pp, end);

    return codepoint_valid(cp) ? cp : -1;
}

/*
 * Walk the string token raw[0..len) (quotes included). Appends the decoded
 * UTF-8 to out when out != NULL; *rewrite is set when the raw form is not
 * something json-glib reads as is (escapes, C0 80). Returns false with a
 * grammar error recorded.
 */
static bool string_decode(JsonStreamer *s, const char *raw, size_t len,
                          GString *out, bool *rewrite)
{
    const unsigned char *p = (const unsigned char *)raw + 1;
    const unsigned char *end = (const unsigned char *)raw + len - 1;

    *rewrite = raw[0] == '\'';
    while (p < end) {
        const unsigned char *beg = p;
        long cp;

        if (*p != '\\') {
            cp = utf8_next(&p, end);
            if (cp < 0) {
                grammar_error(s, "invalid UTF-8 sequence in string");
                return false;
            }
            if (cp == 0) {
                *rewrite = true;
            }
            if (out) {
                g_string_append_unichar(out, cp);
            }
            continue;
        }
        *rewrite = true;
        p++;
        switch (*p++) {
        case '"': cp = '"'; break;
        case '\'': cp = '\''; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            cp = hex4(p, end);
            p = MIN(p + 4, end);
            if (cp >= 0xD800 && cp <= 0xDBFF && end - p >= 2 &&
                p[0] == '\\' && p[1] == 'u') {
                long lo = hex4(p + 2, end);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp & 0x3FF) << 10) + (lo & 0x3FF);
                    p += 6;
                } else {
                    cp = -1;
                }
            }
            if (!codepoint_valid(cp)) {
                grammar_error(s, "%.*s is not a valid Unicode character",
                              (int)(p - beg), (const char *)beg);
                return false;
            }
            break;
        default:
            grammar_error(s, "invalid escape sequence in string");
            return false;
        }
        if (out) {
            g_string_append_unichar(out, cp);
        }
    }
    return true;
}

/* Append str (len bytes, valid UTF-8) as a standard JSON string. */
static void string_encode(GString *buf, const char *str, size_t len)
{
    g_string_append_c(buf, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = str[i];
        if (c == '"' || c == '\\') {
            g_string_append_c(buf, '\\');
            g_string_append_c(buf, c);
        } else if (c < 0x20) {
            g_string_append_printf(buf, "\\u%04x", c);
        } else {
            g_string_append_c(buf, c);
        }
    }
    g_string_append_c(buf, '"');
}

/*
 * The current token is a string in a value or key position: validate it,
 * rewrite it into standard JSON if needed, and return its decoded text in
 * *key when key != NULL. Returns false on a (recorded) grammar error.
 */
static bool string_finish(JsonStreamer *s, char **key)
{
    const char *raw = s->text->str + s->tok_start;
    size_t len = s->text->len - s->tok_start;
    g_autoptr(GString) dec = NULL;
    bool rewrite;

    if (!string_decode(s, raw, len, NULL, &rewrite)) {
        return false;
    }
    if (rewrite || key) {
        dec = g_string_sized_new(len);
        string_decode(s, raw, len, dec, &rewrite);
    }
    if (rewrite) {
        g_string_truncate(s->text, s->tok_start);
        string_encode(s->text, dec->str, dec->len);
    }
    if (key) {
        *key = g_strndup(dec->str, dec->len);
    }
    return true;
}

/* ---- grammar ---- */

/* The innermost open container, or NULL at top level. */
static Frame *grammar_top(JsonStreamer *s)
{
    if (!s->stack->len) {
        return NULL;
    }
    return &g_array_index(s->stack, Frame, s->stack->len - 1);
}

/* Open a container; depth is bounded by the nesting limit. */
static void grammar_push(JsonStreamer *s, FrameState st)
{
    Frame f = { .state = st };

    g_array_append_val(s->stack, f);
}

/* A value (is_string: a string, decoded as key) ended in the top frame. */
static void grammar_value_done(JsonStreamer *s, bool is_string, char *key)
{
    Frame *f = grammar_top(s);

    if (!f) {
        g_free(key);
        return;
    }
    switch (f->state) {
    case FR_ARRAY_FIRST:
    case FR_ARRAY_COMMA:
        f->state = FR_ARRAY_VALUE;
        break;
    case FR_OBJ_FIRST:
    case FR_OBJ_COMMA:
        if (!is_string) {
            grammar_error(s, "key is not a string in object");
            break;
        }
        f->key = key;
        key = NULL;
        f->state = FR_OBJ_KEY;
        break;
    case FR_OBJ_COLON:
        if (!f->keys) {
            f->keys = g_hash_table_new_full(g_str_hash, g_str_equal,
                                            g_free, NULL);
        }
        if (g_hash_table_contains(f->keys, f->key)) {
            grammar_error(s, "duplicate key");
            break;
        }
        g_hash_table_add(f->keys, f->key);
        f->key = NULL;
        f->state = FR_OBJ_VALUE;
        break;
    default:
        g_assert_not_reached();
    }
    g_free(key);
}

/* Close the top container; its parent sees one more value. */
static void grammar_pop(JsonStreamer *s)
{
    frame_clear(grammar_top(s));
    g_array_set_size(s->stack, s->stack->len - 1);
    grammar_value_done(s, false, NULL);
}

/* Token t where a value (or, in an object, a key) is expected. */
static void grammar_value(JsonStreamer *s, TokType t, bool key_pos)
{
    const char *tok = s->text->str + s->tok_start;
    char *key = NULL;

    switch (t) {
    case TOK_LCURLY:
        grammar_push(s, FR_OBJ_FIRST);
        break;
    case TOK_LSQUARE:
        grammar_push(s, FR_ARRAY_FIRST);
        break;
    case TOK_STRING:
        if (string_finish(s, key_pos ? &key : NULL)) {
            grammar_value_done(s, true, key);
        }
        break;
    case TOK_INTEGER:
    case TOK_FLOAT:
        grammar_value_done(s, false, NULL);
        break;
    case TOK_KEYWORD:
        if (strcmp(tok, "true") && strcmp(tok, "false") &&
            strcmp(tok, "null")) {
            grammar_error(s, "invalid keyword '%s'", tok);
        } else {
            grammar_value_done(s, false, NULL);
        }
        break;
    default:
        grammar_error(s, "expecting value");
    }
}

/* Advance the grammar checker over the token just lexed. */
static void grammar_step(JsonStreamer *s, TokType t)
{
    Frame *f = grammar_top(s);

    if (!f) {
        grammar_value(s, t, false);
        return;
    }
    switch (f->state) {
    case FR_ARRAY_FIRST:
    case FR_OBJ_FIRST:
        if (t == (f->state == FR_ARRAY_FIRST ? TOK_RSQUARE : TOK_RCURLY)) {
            grammar_pop(s);
        } else {
            grammar_value(s, t, f->state == FR_OBJ_FIRST);
        }
        break;
    case FR_ARRAY_COMMA:
    case FR_OBJ_COLON:
        grammar_value(s, t, false);
        break;
    case FR_OBJ_COMMA:
        grammar_value(s, t, true);
        break;
    case FR_ARRAY_VALUE:
    case FR_OBJ_VALUE: {
        bool arr = f->state == FR_ARRAY_VALUE;
        if (t == TOK_COMMA) {
            f->state = arr ? FR_ARRAY_COMMA : FR_OBJ_COMMA;
        } else if (t == (arr ? TOK_RSQUARE : TOK_RCURLY)) {
            grammar_pop(s);
        } else {
            grammar_error(s, arr ? "expected separator in list"
                                 : "expected separator in dict");
        }
        break;
    }
    case FR_OBJ_KEY:
        if (t == TOK_COLON) {
            f->state = FR_OBJ_COLON;
        } else {
            grammar_error(s, "missing : in object pair");
        }
        break;
    }
}

/* ---- value boundary ---- */

/* The pending value is complete: report its error or parse it. */
static void streamer_emit(JsonStreamer *s)
{
    g_autoptr(JsonParser) parser = NULL;
    GError *gerr = NULL;
    Error *err = NULL;
    JsonNode *root;

    if (s->grammar_err) {
        err = s->grammar_err;
        s->grammar_err = NULL;
        streamer_fail(s, err);
        return;
    }
    trace_json_streamer_value(s, s->text->len, s->ntokens);
    parser = json_parser_new_immutable();
    if (!json_parser_load_from_data(parser, s->text->str, s->text->len,
                                    &gerr)) {
        error_setg(&err, "JSON parse error, %s", gerr->message);
        g_error_free(gerr);
        streamer_fail(s, err);
        return;
    }
    root = json_parser_steal_root(parser);
    streamer_drop_value(s);
    s->fn(s->opaque, root, NULL);
}

/*
 * An integer json-glib cannot hold in gint64 (it would wrap) becomes a
 * float, as QEMU turns it into a double when it fits no 64-bit type.
 */
static void number_normalise(JsonStreamer *s)
{
    const char *tok = s->text->str + s->tok_start;
    gint64 v;

    if (!g_ascii_string_to_signed(tok, 10, G_MININT64, G_MAXINT64, &v,
                                  NULL)) {
        g_string_append(s->text, ".0");
    }
}

/* Token t (its raw bytes at the tail of text) is complete. */
static void streamer_token(JsonStreamer *s, TokType t)
{
    size_t len = s->text->len - s->tok_start;

    switch (t) {
    case TOK_LCURLY: s->brace_count++; break;
    case TOK_RCURLY: s->brace_count--; break;
    case TOK_LSQUARE: s->bracket_count++; break;
    case TOK_RSQUARE: s->bracket_count--; break;
    default: break;
    }
    if (s->ntokens + 1 > s->max_tokens) {
        streamer_failf(s, "JSON token count limit exceeded");
        return;
    }
    if (s->brace_count + s->bracket_count > (int)s->max_nesting) {
        streamer_failf(s, "JSON nesting depth limit exceeded");
        return;
    }
    s->ntokens++;
    s->token_bytes += len;
    if (!s->grammar_err) {
        if (t == TOK_INTEGER) {
            number_normalise(s);
        }
        grammar_step(s, t);
    }
    if (s->grammar_err) {
        /* The text is dead weight now; keep only the counts. */
        g_string_truncate(s->text, 0);
    }
    s->tok_start = s->text->len;
    if ((s->brace_count > 0 || s->bracket_count > 0) &&
        s->brace_count >= 0 && s->bracket_count >= 0) {
        return;
    }
    streamer_emit(s);
}

/* ---- lexer ---- */

/* Append c to the current token; false if the size limit was hit. */
static bool lex_append(JsonStreamer *s, unsigned char c)
{
    size_t len = s->text->len - s->tok_start;

    if (s->token_bytes + len + 1 + 1 > s->max_size) {
        streamer_failf(s, "JSON token size limit exceeded");
        s->lex = LEX_RECOVERY;
        return false;
    }
    g_string_append_c(s->text, c);
    return true;
}

/* Lexical error at c: report the token so far plus c, then resync. */
static void lex_error(JsonStreamer *s, unsigned char c)
{
    g_autofree char *stray = NULL;
    size_t len = s->text->len - s->tok_start;

    stray = g_malloc(len + 2);
    memcpy(stray, s->text->str + s->tok_start, len);
    stray[len] = c;
    stray[len + 1] = 0;
    s->lex = LEX_RECOVERY;
    streamer_failf(s, "JSON parse error, stray '%s'", stray);
}

/* A resynchronisation point after an error. */
static bool lex_is_resync(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c >= 0xFE || strchr("[]{}:,", c);
}

/* First byte of a token (or whitespace) in LEX_START. */
static void lex_start(JsonStreamer *s, unsigned char c)
{
    static const char structural[] = "{}[]:,";
    static const TokType structural_tok[] = {
        TOK_LCURLY, TOK_RCURLY, TOK_LSQUARE, TOK_RSQUARE, TOK_COLON,
        TOK_COMMA,
    };
    const char *st;

    s->tok_start = s->text->len;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        return;
    }
    if (c && (st = strchr(structural, c))) {
        if (lex_append(s, c)) {
            streamer_token(s, structural_tok[st - structural]);
        }
        return;
    }
    if (c == '"') {
        s->lex = LEX_DQ;
    } else if (c == '\'') {
        s->lex = LEX_SQ;
    } else if (c == '0') {
        s->lex = LEX_ZERO;
    } else if (c >= '1' && c <= '9') {
        s->lex = LEX_DIGITS;
    } else if (c == '-') {
        s->lex = LEX_SIGN;
    } else if (c >= 'a' && c <= 'z') {
        s->lex = LEX_KEYWORD;
    } else {
        lex_error(s, c);
        return;
    }
    lex_append(s, c);
}

/* A byte inside a string (or after a backslash in one). */
static void lex_string(JsonStreamer *s, unsigned char c)
{
    bool dq = s->lex == LEX_DQ || s->lex == LEX_DQ_ESC;

    if (c < 0x20 || c > 0xFD) {
        lex_error(s, c);
        return;
    }
    if (!lex_append(s, c)) {
        return;
    }
    if (s->lex == LEX_DQ_ESC || s->lex == LEX_SQ_ESC) {
        s->lex = dq ? LEX_DQ : LEX_SQ;
    } else if (c == '\\') {
        s->lex = dq ? LEX_DQ_ESC : LEX_SQ_ESC;
    } else if (c == (dq ? '"' : '\'')) {
        s->lex = LEX_START;
        streamer_token(s, TOK_STRING);
    }
}

/*
 * Next state of a number or keyword for byte c: a state to continue in,
 * -1 for a lexical error, or -2 when the token ended before c.
 */
static int lex_number_next(LexState st, unsigned char c)
{
    bool digit = c >= '0' && c <= '9';
    bool exp = c == 'e' || c == 'E';

    switch (st) {
    case LEX_SIGN:
        return c == '0' ? LEX_ZERO : digit ? LEX_DIGITS : -1;
    case LEX_ZERO:
        return digit ? -1 : c == '.' ? LEX_MANT : -2;
    case LEX_DIGITS:
        return digit ? LEX_DIGITS : exp ? LEX_EXP_E
               : c == '.' ? LEX_MANT : -2;
    case LEX_MANT:
        return digit ? LEX_MANT_DIGITS : -1;
    case LEX_MANT_DIGITS:
        return digit ? LEX_MANT_DIGITS : exp ? LEX_EXP_E : -2;
    case LEX_EXP_E:
        return digit ? LEX_EXP_DIGITS
               : (c == '+' || c == '-') ? LEX_EXP_SIGN : -1;
    case LEX_EXP_SIGN:
        return digit ? LEX_EXP_DIGITS : -1;
    case LEX_EXP_DIGITS:
        return digit ? LEX_EXP_DIGITS : -2;
    case LEX_KEYWORD:
        return (c >= 'a' && c <= 'z') ? LEX_KEYWORD : -2;
    default:
        g_assert_not_reached();
    }
}

/* Token type a number/keyword state ends as. */
static TokType lex_terminal_type(LexState st)
{
    switch (st) {
    case LEX_ZERO:
    case LEX_DIGITS:
        return TOK_INTEGER;
    case LEX_KEYWORD:
        return TOK_KEYWORD;
    default:
        return TOK_FLOAT;
    }
}

/*
 * Run one input byte through the lexer. A number or keyword ends only when
 * a byte that cannot continue it arrives; that byte is then looked at
 * again from LEX_START (the loop), exactly once.
 */
static void streamer_feed_byte(JsonStreamer *s, unsigned char c)
{
    for (;;) {
        int next;

        switch (s->lex) {
        case LEX_START:
            lex_start(s, c);
            return;
        case LEX_RECOVERY:
            if (lex_is_resync(c)) {
                s->lex = LEX_START;
                continue;
            }
            return;
        case LEX_DQ:
        case LEX_DQ_ESC:
        case LEX_SQ:
        case LEX_SQ_ESC:
            lex_string(s, c);
            return;
        default:
            next = lex_number_next(s->lex, c);
            if (next >= 0) {
                if (lex_append(s, c)) {
                    s->lex = next;
                }
                return;
            }
            if (next == -1) {
                lex_error(s, c);
                return;
            }
            /* The token ended before c: finish it, then look at c again. */
            {
                TokType t = lex_terminal_type(s->lex);
                s->lex = LEX_START;
                streamer_token(s, t);
            }
            continue;
        }
    }
}

/*
 * ---- public API ----
 *
 * Callbacks are made from inside json_streamer_feed()/flush() only, each
 * after the streamer dropped the value it reports, so the callee sees a
 * streamer that is ready for new input.
 */

JsonStreamer *json_streamer_new(JsonStreamerFunc *fn, void *opaque)
{
    JsonStreamer *s = g_new0(JsonStreamer, 1);

    s->fn = fn;
    s->opaque = opaque;
    s->max_nesting = JSON_STREAMER_MAX_NESTING;
    s->max_size = JSON_STREAMER_MAX_TOKEN;
    s->max_tokens = JSON_STREAMER_MAX_TOKENS;
    s->lex = LEX_START;
    s->text = g_string_sized_new(256);
    s->stack = g_array_new(false, false, sizeof(Frame));
    return s;
}

void json_streamer_set_limits(JsonStreamer *s, unsigned max_nesting,
                              size_t max_token_size, size_t max_tokens)
{
    if (max_nesting) {
        s->max_nesting = max_nesting;
    }
    if (max_token_size) {
        s->max_size = max_token_size;
    }
    if (max_tokens) {
        s->max_tokens = max_tokens;
    }
}

/* Byte by byte: any split of the input gives the same callbacks. */
void json_streamer_feed(JsonStreamer *s, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        streamer_feed_byte(s, (unsigned char)buf[i]);
    }
}

/* Unlike an error, a reset reports nothing and does not enter recovery. */
void json_streamer_reset(JsonStreamer *s)
{
    trace_json_streamer_reset(s, s->text->len);
    streamer_drop_value(s);
    s->lex = LEX_START;
}

void json_streamer_free(JsonStreamer *s)
{
    if (!s) {
        return;
    }
    streamer_drop_value(s);
    g_array_free(s->stack, true);
    g_string_free(s->text, true);
    g_free(s);
}

/*
 * QEMU's end-of-input: a pending number or keyword is complete, a string
 * or a number missing its digits is a stray token, an open value is a
 * "premature EOI" (unless a syntax error was already found in it).
 */
void json_streamer_flush(JsonStreamer *s)
{
    switch (s->lex) {
    case LEX_START:
    case LEX_RECOVERY:
        break;
    case LEX_ZERO:
    case LEX_DIGITS:
    case LEX_MANT_DIGITS:
    case LEX_EXP_DIGITS:
    case LEX_KEYWORD:
        streamer_feed_byte(s, ' ');
        break;
    default: {
        /* Inside a string or an unfinished number: a lexical error. */
        g_autofree char *stray = g_strdup(s->text->str + s->tok_start);
        s->lex = LEX_START;
        streamer_failf(s, "JSON parse error, stray '%s'", stray);
        return;
    }
    }
    s->lex = LEX_START;
    if (s->ntokens) {
        if (!s->grammar_err) {
            grammar_error(s, "premature EOI");
        }
        streamer_emit(s);
    }
}
