/*
 * Line editing for the human monitor.
 *
 * State: the line being edited (buf/len/pos), a copy of what the client's
 * screen shows after the prompt (shown/shown_len/shown_pos), a small
 * escape-sequence decoder, and a ring of past lines. Every key edits buf;
 * rl_refresh() then sends the client the smallest VT100 update that turns
 * "shown" into buf (typing at the end of the line sends just the typed
 * character, so an echoed line reads back verbatim). In plain mode
 * (echo off: stdio that is not a terminal) nothing is written back.
 *
 * Ends of line: CR, LF and CR LF each end exactly one line (a LF right
 * after a CR is swallowed). Unknown escape sequences (ESC [ params final,
 * ESC O x) are consumed and ignored, so stray function keys never end up
 * as text in a command.
 *
 * Runs on the main loop only; no locking. Owned by one monitor.
 */
#include "qemu/osdep.h"
#include "monitor/readline.h"
#include "trace.h"

typedef enum ReadLineEscState {
    RL_NORMAL,
    RL_ESC,         /* after ESC */
    RL_CSI,         /* after ESC [ : parameters, then a final byte */
    RL_SS3,         /* after ESC O : one final byte */
} ReadLineEscState;

struct ReadLineState {
    ReadLineWriteFunc *write;
    ReadLineCompletionFunc *complete;
    ReadLineFunc *line_done;
    void *opaque;

    char *prompt;
    bool echo;

    char buf[READLINE_MAX_LINE];
    size_t len;
    size_t pos;

    char shown[READLINE_MAX_LINE];  /* client's view of the line */
    size_t shown_len;
    size_t shown_pos;

    ReadLineEscState esc;
    char esc_param[16];
    size_t esc_plen;
    bool last_was_cr;

    char *history[READLINE_MAX_HISTORY];    /* oldest first */
    unsigned hist_count;
    int hist_index;         /* -1: the new line; else entries back */
    char *saved_line;       /* the new line while browsing history */
};

/* ------------------------------------------------------------------ */
/* Creation and output                                                 */

ReadLineState *readline_new(ReadLineWriteFunc *write,
                            ReadLineCompletionFunc *complete,
                            ReadLineFunc *line_done, void *opaque)
{
    ReadLineState *rs = g_new0(ReadLineState, 1);

    rs->write = write;
    rs->complete = complete;
    rs->line_done = line_done;
    rs->opaque = opaque;
    rs->prompt = g_strdup("");
    rs->hist_index = -1;
    return rs;
}

void readline_free(ReadLineState *rs)
{
    if (!rs) {
        return;
    }
    for (unsigned i = 0; i < rs->hist_count; i++) {
        g_free(rs->history[i]);
    }
    g_free(rs->saved_line);
    g_free(rs->prompt);
    g_free(rs);
}

/* Write a string to the client, only in editing mode. */
static void rl_out(ReadLineState *rs, const char *s)
{
    if (rs->echo && *s) {
        rs->write(rs->opaque, s);
    }
}

/* Write n bytes of s to the client (editing mode only). */
static void rl_out_n(ReadLineState *rs, const char *s, size_t n)
{
    g_autofree char *tmp = NULL;

    if (n == 0) {
        return;
    }
    tmp = g_strndup(s, n);
    rl_out(rs, tmp);
}

/* Move the client's cursor by delta columns (negative = left). */
static void rl_move_cursor(ReadLineState *rs, long delta)
{
    char seq[32];

    if (delta < 0) {
        snprintf(seq, sizeof(seq), "\033[%ldD", -delta);
        rl_out(rs, seq);
    } else if (delta > 0) {
        snprintf(seq, sizeof(seq), "\033[%ldC", delta);
        rl_out(rs, seq);
    }
}

/*
 * Bring the client's screen from "shown" to buf with the cursor at pos:
 * rewrite from the first differing byte, clear what is left over, move
 * the cursor. A no-op in plain mode.
 */
static void rl_refresh(ReadLineState *rs)
{
    size_t common = 0;

    if (!rs->echo) {
        return;
    }
    if (rs->len == rs->shown_len && !memcmp(rs->buf, rs->shown, rs->len)) {
        rl_move_cursor(rs, (long)rs->pos - (long)rs->shown_pos);
        rs->shown_pos = rs->pos;
        return;
    }
    while (common < rs->len && common < rs->shown_len &&
           rs->buf[common] == rs->shown[common]) {
        common++;
    }
    rl_move_cursor(rs, (long)common - (long)rs->shown_pos);
    rl_out_n(rs, rs->buf + common, rs->len - common);
    if (rs->shown_len > rs->len) {
        rl_out(rs, "\033[K");
    }
    rl_move_cursor(rs, (long)rs->pos - (long)rs->len);
    memcpy(rs->shown, rs->buf, rs->len);
    rs->shown_len = rs->len;
    rs->shown_pos = rs->pos;
}

/* ------------------------------------------------------------------ */
/* Editing the line buffer (the screen follows in rl_refresh)          */

/* Replace the whole line with s, cursor at its end. */
static void rl_set_line(ReadLineState *rs, const char *s)
{
    size_t n = MIN(strlen(s), READLINE_MAX_LINE - 1);

    memcpy(rs->buf, s, n);
    rs->len = n;
    rs->pos = n;
}

/* Insert n bytes at the cursor (truncated at the line limit). */
static void rl_insert(ReadLineState *rs, const char *s, size_t n)
{
    n = MIN(n, READLINE_MAX_LINE - 1 - rs->len);
    if (n == 0) {
        return;
    }
    memmove(rs->buf + rs->pos + n, rs->buf + rs->pos, rs->len - rs->pos);
    memcpy(rs->buf + rs->pos, s, n);
    rs->len += n;
    rs->pos += n;
}

/* Delete the bytes [from, to) of the line; the cursor goes to from. */
static void rl_delete_range(ReadLineState *rs, size_t from, size_t to)
{
    if (from >= to || to > rs->len) {
        return;
    }
    memmove(rs->buf + from, rs->buf + to, rs->len - to);
    rs->len -= to - from;
    rs->pos = from;
}

/* ------------------------------------------------------------------ */
/* History and completion                                              */

/* Remember line, unless empty or equal to the newest entry. */
static void rl_history_add(ReadLineState *rs, const char *line)
{
    if (!*line) {
        return;
    }
    if (rs->hist_count &&
        !strcmp(rs->history[rs->hist_count - 1], line)) {
        return;
    }
    if (rs->hist_count == READLINE_MAX_HISTORY) {
        g_free(rs->history[0]);
        memmove(rs->history, rs->history + 1,
                (READLINE_MAX_HISTORY - 1) * sizeof(rs->history[0]));
        rs->hist_count--;
    }
    rs->history[rs->hist_count++] = g_strdup(line);
}

const char *readline_get_history(ReadLineState *rs, unsigned n)
{
    if (n >= rs->hist_count) {
        return NULL;
    }
    return rs->history[rs->hist_count - 1 - n];
}

/* Step through history: dir +1 = older (up), -1 = newer (down). */
static void rl_history_step(ReadLineState *rs, int dir)
{
    int next = rs->hist_index + dir;

    if (next >= (int)rs->hist_count || next < -1) {
        return;
    }
    if (rs->hist_index == -1) {
        g_free(rs->saved_line);
        rs->saved_line = g_strndup(rs->buf, rs->len);
    }
    rs->hist_index = next;
    if (next == -1) {
        rl_set_line(rs, rs->saved_line ? rs->saved_line : "");
    } else {
        rl_set_line(rs, readline_get_history(rs, next));
    }
}

/* Print candidates in columns, then redraw prompt and line. */
static void rl_list_candidates(ReadLineState *rs, char **cands)
{
    size_t width = 0, col = 0;
    GString *out = g_string_new("\n");

    for (char **c = cands; *c; c++) {
        width = MAX(width, strlen(*c));
    }
    width += 2;
    for (char **c = cands; *c; c++) {
        if (col + width > 80 && col > 0) {
            g_string_append_c(out, '\n');
            col = 0;
        }
        g_string_append_printf(out, "%-*s", (int)width, *c);
        col += width;
    }
    g_string_append_c(out, '\n');
    rl_out(rs, out->str);
    g_string_free(out, true);
    readline_show_prompt(rs);
}

/*
 * Tab: complete the word before the cursor from the candidates the
 * monitor offers; one candidate is completed with a trailing space,
 * several are extended to their common prefix or else listed.
 */
static void rl_complete(ReadLineState *rs)
{
    g_autofree char *prefix = g_strndup(rs->buf, rs->pos);
    char **cands;
    const char *word = strrchr(prefix, ' ');
    size_t wlen, common;
    unsigned n;

    if (!rs->complete || !rs->echo) {
        return;
    }
    word = word ? word + 1 : prefix;
    wlen = strlen(word);
    cands = rs->complete(rs->opaque, prefix);
    n = cands ? g_strv_length(cands) : 0;
    if (n == 0) {
        g_strfreev(cands);
        return;
    }
    common = strlen(cands[0]);
    for (unsigned i = 1; i < n; i++) {
        size_t k = 0;
        while (k < common && cands[i][k] == cands[0][k]) {
            k++;
        }
        common = k;
    }
    if (common > wlen) {
        rl_insert(rs, cands[0] + wlen, common - wlen);
    }
    if (n == 1) {
        rl_insert(rs, " ", 1);
    } else if (common <= wlen) {
        rl_list_candidates(rs, cands);
    }
    g_strfreev(cands);
}

/* The line is complete: echo the end of line, record it, hand it over. */
static void rl_finish_line(ReadLineState *rs)
{
    g_autofree char *line = g_strndup(rs->buf, rs->len);

    rl_out(rs, "\n");
    rl_history_add(rs, line);
    rs->hist_index = -1;
    g_clear_pointer(&rs->saved_line, g_free);
    rs->len = rs->pos = 0;
    rs->shown_len = rs->shown_pos = 0;
    trace_readline_line(rs, (int)strlen(line));
    rs->line_done(rs->opaque, line);
}

/* ------------------------------------------------------------------ */
/* Keys                                                                */

/* Act on the final byte of ESC [ params final / ESC O final. */
static void rl_handle_sequence(ReadLineState *rs, char final)
{
    int param = rs->esc_plen ? atoi(rs->esc_param) : 0;

    switch (final) {
    case 'A':
        rl_history_step(rs, 1);
        break;
    case 'B':
        rl_history_step(rs, -1);
        break;
    case 'C':
        rs->pos = MIN(rs->pos + 1, rs->len);
        break;
    case 'D':
        rs->pos = rs->pos ? rs->pos - 1 : 0;
        break;
    case 'H':
        rs->pos = 0;
        break;
    case 'F':
        rs->pos = rs->len;
        break;
    case '~':
        if (param == 1 || param == 7) {
            rs->pos = 0;
        } else if (param == 4 || param == 8) {
            rs->pos = rs->len;
        } else if (param == 3) {
            rl_delete_range(rs, rs->pos, rs->pos + 1);
        }
        break;
    default:
        trace_readline_unknown_sequence(rs, final);
        break;
    }
}

/* Feed a byte while inside an escape sequence. */
static void rl_handle_escape(ReadLineState *rs, uint8_t ch)
{
    switch (rs->esc) {
    case RL_ESC:
        if (ch == '[') {
            rs->esc = RL_CSI;
            rs->esc_plen = 0;
        } else if (ch == 'O') {
            rs->esc = RL_SS3;
        } else {
            rs->esc = RL_NORMAL;    /* ESC x (Alt-x): ignored */
        }
        return;
    case RL_CSI:
        if (ch >= 0x30 && ch <= 0x3f) {
            if (rs->esc_plen < sizeof(rs->esc_param) - 1) {
                rs->esc_param[rs->esc_plen++] = ch;
                rs->esc_param[rs->esc_plen] = '\0';
            }
            return;
        }
        if (ch >= 0x20 && ch <= 0x2f) {
            return;                 /* intermediate bytes: ignored */
        }
        rs->esc = RL_NORMAL;
        if (ch >= 0x40 && ch <= 0x7e) {
            rl_handle_sequence(rs, ch);
        }
        return;
    case RL_SS3:
        rs->esc = RL_NORMAL;
        rs->esc_plen = 0;
        rl_handle_sequence(rs, ch);
        return;
    case RL_NORMAL:
        break;
    }
}

/* Handle a control character (< 32 or DEL) other than CR and LF. */
static void rl_handle_control(ReadLineState *rs, uint8_t ch)
{
    switch (ch) {
    case 1:                         /* ^A */
        rs->pos = 0;
        break;
    case 2:                         /* ^B */
        rs->pos = rs->pos ? rs->pos - 1 : 0;
        break;
    case 4:                         /* ^D: delete under the cursor */
        rl_delete_range(rs, rs->pos, rs->pos + 1);
        break;
    case 5:                         /* ^E */
        rs->pos = rs->len;
        break;
    case 6:                         /* ^F */
        rs->pos = MIN(rs->pos + 1, rs->len);
        break;
    case 8:
    case 127:                       /* backspace */
        if (rs->pos) {
            rl_delete_range(rs, rs->pos - 1, rs->pos);
        }
        break;
    case 9:
        rl_complete(rs);
        break;
    case 11:                        /* ^K: kill to end of line */
        rs->len = rs->pos;
        break;
    case 14:                        /* ^N */
        rl_history_step(rs, -1);
        break;
    case 16:                        /* ^P */
        rl_history_step(rs, 1);
        break;
    case 21:                        /* ^U: kill to start of line */
        rl_delete_range(rs, 0, rs->pos);
        break;
    case 23: {                      /* ^W: kill the word before */
        size_t from = rs->pos;
        while (from && rs->buf[from - 1] == ' ') {
            from--;
        }
        while (from && rs->buf[from - 1] != ' ') {
            from--;
        }
        rl_delete_range(rs, from, rs->pos);
        break;
    }
    case 27:
        rs->esc = RL_ESC;
        break;
    default:
        break;                      /* other control bytes: ignored */
    }
}

/*
 * One typed byte: escape sequences first (a CR, LF or ESC inside one
 * abandons it), then ends of line, control keys, and printable bytes
 * (UTF-8 bytes too) inserted at the cursor.
 */
void readline_handle_byte(ReadLineState *rs, uint8_t ch)
{
    bool after_cr = rs->last_was_cr;

    rs->last_was_cr = false;
    if (rs->esc != RL_NORMAL) {
        if (ch == 27 || ch == '\r' || ch == '\n') {
            rs->esc = RL_NORMAL;    /* a broken sequence: start over */
        } else {
            rl_handle_escape(rs, ch);
            rl_refresh(rs);
            return;
        }
    }
    if (ch == '\r' || ch == '\n') {
        if (ch == '\n' && after_cr) {
            return;                 /* the LF of a CR LF */
        }
        rs->last_was_cr = ch == '\r';
        rl_finish_line(rs);
        return;
    }
    if (ch < 32 || ch == 127) {
        rl_handle_control(rs, ch);
    } else {
        char c = ch;
        rl_insert(rs, &c, 1);
    }
    rl_refresh(rs);
}

void readline_start(ReadLineState *rs, const char *prompt, bool echo)
{
    g_free(rs->prompt);
    rs->prompt = g_strdup(prompt);
    rs->echo = echo;
    rs->len = rs->pos = 0;
    rs->shown_len = rs->shown_pos = 0;
    rs->hist_index = -1;
}

void readline_show_prompt(ReadLineState *rs)
{
    rs->write(rs->opaque, rs->prompt);
    rs->shown_len = rs->shown_pos = 0;
    rl_refresh(rs);
}

void readline_reset(ReadLineState *rs)
{
    rs->len = rs->pos = 0;
    rs->shown_len = rs->shown_pos = 0;
    rs->esc = RL_NORMAL;
    rs->esc_plen = 0;
    rs->last_was_cr = false;
    rs->hist_index = -1;
    g_clear_pointer(&rs->saved_line, g_free);
}
