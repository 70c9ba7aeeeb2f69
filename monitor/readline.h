/*
 * Line editing for the human monitor (monitor/readline.c).
 *
 * A ReadLineState turns the bytes a client types into complete command
 * lines. In editing mode it understands the usual terminal keys (cursor
 * movement, deletion, history, tab completion) and echoes what changes
 * on the client's screen with VT100 sequences; in plain mode (a pipe or
 * a script on stdio) it only collects bytes up to an end of line.
 *
 * Everything runs on the main loop; the state has no locking and belongs
 * to one monitor.
 */
#ifndef MONITOR_READLINE_H
#define MONITOR_READLINE_H

#include "qemu/osdep.h"

typedef struct ReadLineState ReadLineState;

/* Write str (NUL-terminated, may hold escape sequences) to the client. */
typedef void ReadLineWriteFunc(void *opaque, const char *str);
/* A complete line was entered (without its end-of-line bytes). */
typedef void ReadLineFunc(void *opaque, const char *line);
/*
 * Completion candidates for the word ending at the end of line_prefix
 * (the text before the cursor): a NULL-terminated g_strv of whole words,
 * or NULL when there are none. The caller frees it with g_strfreev().
 */
typedef char **ReadLineCompletionFunc(void *opaque, const char *line_prefix);

#define READLINE_MAX_LINE    4096
#define READLINE_MAX_HISTORY 64

ReadLineState *readline_new(ReadLineWriteFunc *write,
                            ReadLineCompletionFunc *complete,
                            ReadLineFunc *line_done, void *opaque);
void readline_free(ReadLineState *rs);

/*
 * Begin reading a new line after prompt; echo selects editing mode
 * (echo, keys, redraw) or plain mode. Does not print the prompt.
 */
void readline_start(ReadLineState *rs, const char *prompt, bool echo);
/* Print the prompt and the current line (a fresh screen line). */
void readline_show_prompt(ReadLineState *rs);
/* Forget the partial line and any half-read escape sequence. */
void readline_reset(ReadLineState *rs);
/* Feed one byte typed by the client. */
void readline_handle_byte(ReadLineState *rs, uint8_t ch);

/* The n-th most recent history entry (0 = newest), or NULL. */
const char *readline_get_history(ReadLineState *rs, unsigned n);

#endif /* MONITOR_READLINE_H */
