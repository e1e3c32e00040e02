/* SPDX-License-Identifier: Apache-2.0 */
/* log.c: one line per event on stderr; text, logfmt or JSON. */
#include "naftikod/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "naftikod/common.h"

static atomic_int g_format = NK_LOG_TEXT;
static atomic_int g_min = NK_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warning", "error"};

bool nk_log_parse_format(const char *s, enum nk_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = NK_LOG_TEXT;
    else if (strcmp(s, "logfmt") == 0)
        *out = NK_LOG_LOGFMT;
    else if (strcmp(s, "json") == 0)
        *out = NK_LOG_JSON;
    else
        return false;
    return true;
}

bool nk_log_parse_level(const char *s, enum nk_log_level *out)
{
    int i;

    for (i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum nk_log_level)i;
            return true;
        }
    return false;
}

void nk_log_configure(enum nk_log_format f, enum nk_log_level min)
{
    atomic_store(&g_format, (int)f);
    atomic_store(&g_min, (int)min);
}

enum nk_log_format nk_log_format(void)
{
    return (enum nk_log_format)atomic_load(&g_format);
}

bool nk_log_enabled(enum nk_log_level l)
{
    return (int)l >= atomic_load(&g_min);
}

/* A growing buffer; oom sticks. */
struct w {
    char *p;
    size_t n, cap;
    bool oom;
};

static void put(struct w *w, char c)
{
    char *np;

    if (w->oom)
        return;
    if (w->n + 2 > w->cap) {
        size_t nc = w->cap < 256 ? 256 : w->cap * 2;
        np = realloc(w->p, nc);
        if (np == NULL) {
            w->oom = true;
            return;
        }
        w->p = np;
        w->cap = nc;
    }
    w->p[w->n++] = c;
}

static void puts_(struct w *w, const char *s)
{
    while (*s != '\0')
        put(w, *s++);
}

/* A quoted JSON string: escapes, control characters as \u00XX, invalid UTF-8 as '?', cut at
 * NK_LOG_MAX_VALUE input bytes on a character boundary. */
static void json_str(struct w *w, const char *s)
{
    const unsigned char *u = (const unsigned char *)s, *start = u;
    char esc[8];
    size_t n, i;

    put(w, '"');
    while (*u != '\0') {
        n = nk_utf8_char_len(u, strnlen((const char *)u, 4));
        if ((size_t)(u - start) + (n == 0 ? 1 : n) > NK_LOG_MAX_VALUE)
            break;
        if (*u == '"' || *u == '\\') {
            put(w, '\\');
            put(w, (char)*u++);
        } else if (*u < 0x20 || *u == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", *u++);
            puts_(w, esc);
        } else if (n == 0) {
            put(w, '?');
            u++;
        } else {
            for (i = 0; i < n; i++)
                put(w, (char)*u++);
        }
    }
    put(w, '"');
}

/* logfmt value: bare when it is non-empty and has no space, '=', '"', '\\' or control byte;
 * otherwise quoted with \" \\ \n \t escapes (other control bytes as '?'). */
static void logfmt_val(struct w *w, const char *s)
{
    size_t i, n = strnlen(s, NK_LOG_MAX_VALUE);
    bool quote = n == 0;

    for (i = 0; i < n && !quote; i++)
        quote = s[i] == ' ' || s[i] == '=' || s[i] == '"' || s[i] == '\\' ||
                (unsigned char)s[i] < 0x20 || s[i] == 0x7f;
    if (!quote) {
        for (i = 0; i < n; i++)
            put(w, s[i]);
        return;
    }
    put(w, '"');
    for (i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\') {
            put(w, '\\');
            put(w, s[i]);
        } else if (s[i] == '\n') {
            puts_(w, "\\n");
        } else if (s[i] == '\t') {
            puts_(w, "\\t");
        } else if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            put(w, '?');
        } else {
            put(w, s[i]);
        }
    }
    put(w, '"');
}

/* Text format: the message as is, with control characters as '?'. */
static void text_str(struct w *w, const char *s)
{
    size_t i, n = strnlen(s, NK_LOG_MAX_VALUE);

    for (i = 0; i < n; i++)
        put(w, ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i]);
}

static void num(struct w *w, const struct nk_log_field *f)
{
    char nb[64];

    snprintf(nb, sizeof(nb), "%.*f", f->decimals, f->num);
    puts_(w, nb);
}

char *nk_log_render(enum nk_log_format f, const char *time, const char *level, const char *msg,
                    const struct nk_log_field *fields, size_t n_fields)
{
    struct w w = {NULL, 0, 0, false};
    size_t i;

    if (f == NK_LOG_JSON) {
        puts_(&w, "{\"time\":");
        json_str(&w, time);
        puts_(&w, ",\"level\":");
        json_str(&w, level);
        puts_(&w, ",\"msg\":");
        json_str(&w, msg);
        for (i = 0; i < n_fields; i++) {
            put(&w, ',');
            json_str(&w, fields[i].key);
            put(&w, ':');
            if (fields[i].str != NULL)
                json_str(&w, fields[i].str);
            else
                num(&w, &fields[i]);
        }
        put(&w, '}');
    } else {
        if (f == NK_LOG_LOGFMT) {
            puts_(&w, "time=");
            logfmt_val(&w, time);
            puts_(&w, " level=");
            logfmt_val(&w, level);
            puts_(&w, " msg=");
            logfmt_val(&w, msg);
        } else {
            puts_(&w, time);
            put(&w, ' ');
            puts_(&w, level);
            put(&w, ' ');
            text_str(&w, msg);
        }
        for (i = 0; i < n_fields; i++) {
            put(&w, ' ');
            puts_(&w, fields[i].key);
            put(&w, '=');
            if (fields[i].str != NULL)
                logfmt_val(&w, fields[i].str);
            else
                num(&w, &fields[i]);
        }
    }
    put(&w, '\n');
    if (w.oom) {
        free(w.p);
        return NULL;
    }
    w.p[w.n] = '\0';
    return w.p;
}

/* RFC 3339 UTC time with milliseconds ("2026-12-06T20:38:01.123Z", 24 bytes and NUL; cap must
 * hold them). The part up to the seconds is formatted once a second per thread: a busy loop logs
 * thousands of lines a second. */
static void now_text(char *out, size_t cap)
{
    static _Thread_local time_t last_s = (time_t)-1;
    static _Thread_local char last[24];
    static _Thread_local size_t last_n;
    struct timespec ts;
    struct tm tm;
    long ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != last_s) {
        gmtime_r(&ts.tv_sec, &tm);
        last_n = strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
        last_s = ts.tv_sec;
    }
    if (cap < last_n + 6) {
        snprintf(out, cap, "%s", "");
        return;
    }
    ms = ts.tv_nsec / 1000000L;
    memcpy(out, last, last_n);
    out[last_n] = '.';
    out[last_n + 1] = (char)('0' + ms / 100);
    out[last_n + 2] = (char)('0' + ms / 10 % 10);
    out[last_n + 3] = (char)('0' + ms % 10);
    out[last_n + 4] = 'Z';
    out[last_n + 5] = '\0';
}

/* One write(2) per line when possible, so concurrent lines do not interleave (a pipe keeps writes
 * up to PIPE_BUF bytes whole). */
static void write_all(const char *p, size_t n)
{
    ssize_t r;

    while (n > 0) {
        r = write(STDERR_FILENO, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return;
        p += r;
        n -= (size_t)r;
    }
}

/* Batching (the event loop's thread): info and debug lines wait in a PIPE_BUF-sized buffer until
 * nk_log_flush(), so a busy loop writes many access lines per write(2); each write still holds
 * whole lines only, and never more than a pipe keeps whole. */
#define BATCH_CAP 4096U
static _Thread_local bool tl_batching;
static _Thread_local size_t tl_n;
static _Thread_local char tl_buf[BATCH_CAP];

void nk_log_batch_begin(void)
{
    tl_batching = true;
}

void nk_log_flush(void)
{
    if (tl_n > 0)
        write_all(tl_buf, tl_n);
    tl_n = 0;
}

void nk_log_event(enum nk_log_level l, const char *level_name, const char *msg,
                  const struct nk_log_field *fields, size_t n_fields)
{
    char t[40];
    char *line;
    size_t len;

    if (!nk_log_enabled(l))
        return;
    now_text(t, sizeof(t));
    line = nk_log_render((enum nk_log_format)atomic_load(&g_format), t,
                         level_name != NULL ? level_name : level_names[l], msg, fields, n_fields);
    if (line == NULL) {
        fputs("naftikod: out of memory while logging\n", stderr);
        return;
    }
    len = strlen(line);
    if (tl_batching && l <= NK_LOG_INFO && len <= BATCH_CAP) {
        if (tl_n + len > BATCH_CAP)
            nk_log_flush();
        memcpy(tl_buf + tl_n, line, len);
        tl_n += len;
    } else {
        nk_log_flush(); /* keep this thread's lines in order */
        write_all(line, len);
    }
    free(line);
}

void nk_logv(enum nk_log_level l, const char *fmt, va_list ap)
{
    char msg[NK_LOG_MAX_VALUE + 1];

    if (!nk_log_enabled(l))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    nk_log_event(l, NULL, msg, NULL, 0);
}

void nk_log(enum nk_log_level l, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    nk_logv(l, fmt, ap);
    va_end(ap);
}
