/*
 * The HMP argument parser: turns the text after a command name into the
 * QDict its handler reads, following the command's args_type (the
 * language is described in hmp-internal.h).
 *
 * Stateless and free of I/O: errors are appended as complete lines to a
 * GString (QEMU's wording), so the monitor prints them and unit tests can
 * compare them. Nothing is left half-filled: on failure the QDict is
 * dropped.
 */
#include "qemu/osdep.h"
#include "monitor/hmp-internal.h"

/* One "key:type" item of an args_type string. */
typedef struct HMPArgSpec {
    char key[64];
    char type;          /* s S B F o i l b - */
    char flag;          /* for type '-': the flag letter */
    bool optional;
} HMPArgSpec;

/* The first non-space byte at or after p. */
static const char *skip_spaces(const char *p)
{
    while (g_ascii_isspace(*p)) {
        p++;
    }
    return p;
}

/*
 * Split the next item off *spec into a; false at the end of the string.
 * Malformed tables are a programming error (the .hx files are ours).
 */
static bool hmp_next_spec(const char **spec, HMPArgSpec *a)
{
    const char *s = *spec, *colon;
    size_t klen;

    if (!*s) {
        return false;
    }
    colon = strchr(s, ':');
    g_assert(colon && colon - s < (ptrdiff_t)sizeof(a->key));
    klen = colon - s;
    memcpy(a->key, s, klen);
    a->key[klen] = '\0';
    s = colon + 1;
    a->type = *s++;
    a->flag = 0;
    if (a->type == '-') {
        a->flag = *s++;
        g_assert(a->flag);
    }
    a->optional = *s == '?';
    if (a->optional) {
        s++;
    }
    g_assert(*s == ',' || *s == '\0');
    if (*s == ',') {
        s++;
    }
    *spec = s;
    return true;
}

/*
 * Read one word or one quoted string ("..." or '...', with \n \r \t \\
 * \' \" escapes) at *pp into a new string; NULL when the line is empty
 * there or a quote is unterminated (then "unterminated string" is added
 * to err).
 */
char *hmp_get_word(const char **pp, GString *err)
{
    const char *p = skip_spaces(*pp);
    GString *out;
    char quote;

    if (!*p) {
        *pp = p;
        return NULL;
    }
    out = g_string_new(NULL);
    if (*p != '"' && *p != '\'') {
        while (*p && !g_ascii_isspace(*p)) {
            g_string_append_c(out, *p++);
        }
        *pp = p;
        return g_string_free(out, false);
    }
    quote = *p++;
    while (*p && *p != quote) {
        char c = *p++;
        if (c == '\\' && *p) {
            c = *p++;
            c = c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
        }
        g_string_append_c(out, c);
    }
    if (*p != quote) {
        g_string_append(err, "unterminated string\n");
        g_string_free(out, true);
        *pp = p;
        return NULL;
    }
    *pp = p + 1;
    return g_string_free(out, false);
}

/*
 * A byte count: digits with an optional fraction and an optional unit
 * suffix (none = MiB as QEMU's HMP does; b/B = bytes). Fails on
 * anything else before the next space, and above INT64_MAX.
 */
bool hmp_parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "bkmgtpe";
    char *end;
    double val, mult = (double)MiB;
    const char *u;

    if (!g_ascii_isdigit(*s) && *s != '.') {
        return false;
    }
    val = g_ascii_strtod(s, &end);
    if (end == s) {
        return false;
    }
    if (*end && !g_ascii_isspace(*end)) {
        u = strchr(units, g_ascii_tolower(*end));
        if (!u) {
            return false;
        }
        mult = (double)(UINT64_C(1) << (10 * (u - units)));
        end++;
    }
    if (*end && !g_ascii_isspace(*end)) {
        return false;
    }
    val *= mult;
    if (val > (double)INT64_MAX || (mult == 1 && val != (uint64_t)val)) {
        return false;
    }
    *out = (uint64_t)val;
    return true;
}

/* Parse a flag group starting at spec a (and the '-' items after it). */
static bool hmp_parse_flags(const HMPCommand *cmd, const char **spec,
                            HMPArgSpec *a, const char **pp, QDict *qdict,
                            GString *err)
{
    /* Collect this contiguous group of flag items. */
    HMPArgSpec group[16];
    size_t n = 0;
    const char *s = *spec;
    HMPArgSpec next;

    group[n++] = *a;
    /* A flag group is the run of consecutive '-' items in args_type. */
    while (n < ARRAY_SIZE(group)) {
        const char *save = s;
        if (!hmp_next_spec(&s, &next) || next.type != '-') {
            s = save;
            break;
        }
        group[n++] = next;
    }
    *spec = s;

    /*
     * Consume "-x" words in any order; the first word that is not a flag
     * ends the group. A "-x" naming no flag of the group is an error.
     */
    for (;;) {
        const char *p = skip_spaces(*pp);
        size_t i;
        if (p[0] != '-' || !p[1] || (p[2] && !g_ascii_isspace(p[2]))) {
            return true;
        }
        for (i = 0; i < n && group[i].flag != p[1]; i++) {
        }
        if (i == n) {
            g_string_append_printf(err, "%s: unsupported option -%c\n",
                                   cmd->name, p[1]);
            return false;
        }
        qdict_put_bool(qdict, group[i].key, true);
        *pp = p + 2;
    }
}

/* Parse one integer argument of type 'i' or 'l'. */
static bool hmp_parse_int(const HMPCommand *cmd, const HMPArgSpec *a,
                          const char **pp, QDict *qdict, GString *err)
{
    const char *p = skip_spaces(*pp);
    char *end;
    long long val;

    /* QEMU evaluates an expression here; qblk takes one C literal. */
    if (!*p) {
        g_string_append(err, "unexpected end of expression\n");
        return false;
    }
    errno = 0;
    val = strtoll(p, &end, 0);
    if (end == p || errno || (*end && !g_ascii_isspace(*end))) {
        g_string_append(err, "invalid char in expression\n");
        return false;
    }
    if (a->type == 'i' && (val > UINT32_MAX || val < INT32_MIN)) {
        g_string_append_printf(err, "'%s' has failed: integer is for "
                               "32-bit values\n", cmd->name);
        return false;
    }
    qdict_put_int(qdict, a->key, val);
    *pp = end;
    return true;
}

/* Parse one positional argument per spec a; false with err on error. */
static bool hmp_parse_one(const HMPCommand *cmd, const HMPArgSpec *a,
                          const char **pp, QDict *qdict, GString *err)
{
    const char *p = skip_spaces(*pp);
    g_autofree char *word = NULL;
    uint64_t size;

    /* An optional argument ends the parse as soon as the line does. */
    if (a->optional && !*p) {
        *pp = p;
        return true;
    }
    switch (a->type) {
    case 'S':               /* the rest of the line, trailing spaces cut */
        if (*p) {
            g_autofree char *rest = g_strchomp(g_strdup(p));
            qdict_put_str(qdict, a->key, rest);
        } else {
            g_string_append_printf(err, "%s: string expected\n", cmd->name);
            return false;
        }
        *pp = p + strlen(p);
        return true;
    case 's':
    case 'B':
    case 'F':
        word = hmp_get_word(&p, err);
        if (!word) {
            g_string_append_printf(err, "%s: %s expected\n", cmd->name,
                                   a->type == 'B' ? "block device name" :
                                   a->type == 'F' ? "filename" : "string");
            return false;
        }
        qdict_put_str(qdict, a->key, word);
        break;
    case 'o':               /* stored as a decimal byte count */
        word = hmp_get_word(&p, err);
        if (!word || !hmp_parse_size(word, &size)) {
            g_string_append(err, "invalid size\n");
            return false;
        }
        qdict_put_int(qdict, a->key, (int64_t)size);
        break;
    case 'i':
    case 'l':
        return hmp_parse_int(cmd, a, pp, qdict, err);
    case 'b':
        word = hmp_get_word(&p, err);
        if (!word || (strcmp(word, "on") && strcmp(word, "off"))) {
            g_string_append(err, "Expected 'on' or 'off'\n");
            return false;
        }
        qdict_put_bool(qdict, a->key, !strcmp(word, "on"));
        break;
    default:
        g_assert_not_reached();
    }
    *pp = p;
    return true;
}

/*
 * Walk args_type item by item, each consuming its part of the line;
 * whatever is left at the end is an error, as in QEMU.
 */
QDict *hmp_parse_args(const HMPCommand *cmd, const char *args, GString *err)
{
    QDict *qdict = qdict_new();
    const char *spec = cmd->args_type ? cmd->args_type : "";
    const char *p = args;
    HMPArgSpec a;

    while (hmp_next_spec(&spec, &a)) {
        bool ok = a.type == '-'
            ? hmp_parse_flags(cmd, &spec, &a, &p, qdict, err)
            : hmp_parse_one(cmd, &a, &p, qdict, err);
        if (!ok) {
            qdict_unref(qdict);
            return NULL;
        }
    }
    p = skip_spaces(p);
    if (*p) {
        g_string_append_printf(err, "%s: extraneous characters at the end "
                               "of line\n", cmd->name);
        qdict_unref(qdict);
        return NULL;
    }
    return qdict;
}
