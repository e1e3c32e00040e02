/* SPDX-License-Identifier: Apache-2.0 */
/* log.h: the daemon's log: one line per event on stderr, in one of three formats (text, logfmt,
 * JSON), filtered by level. Each line is written with one call, so lines from different threads
 * never interleave. Never pass a credential. */
#ifndef NAFTIKOD_LOG_H
#define NAFTIKOD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum nk_log_level { NK_LOG_DEBUG, NK_LOG_INFO, NK_LOG_WARNING, NK_LOG_ERROR };
enum nk_log_format { NK_LOG_TEXT, NK_LOG_LOGFMT, NK_LOG_JSON };

/* "text", "logfmt", "json" / "debug", "info", "warning", "error"; false for anything else. */
bool nk_log_parse_format(const char *s, enum nk_log_format *out);
bool nk_log_parse_level(const char *s, enum nk_log_level *out);
/* Set the format and the least severe level written (process-wide; thread-safe). Defaults:
 * text, info. */
void nk_log_configure(enum nk_log_format f, enum nk_log_level min);
bool nk_log_enabled(enum nk_log_level l);
/* The format in force (thread-safe). */
enum nk_log_format nk_log_format(void);

/* One field of a structured event. */
struct nk_log_field {
    const char *key;
    const char *str; /* string value, or NULL for num */
    double num;
    int decimals; /* digits after the point for num */
};

/* Render one event as a line ending in '\n' (malloc'd, NUL-terminated; NULL on OOM). time is the
 * timestamp text, level its name; in the text format the fields follow msg as key=value. Each
 * string value is cut at NK_LOG_MAX_VALUE bytes. JSON lines are always valid JSON (invalid UTF-8
 * shown as '?'). Exposed for tests. */
#define NK_LOG_MAX_VALUE 2048
char *nk_log_render(enum nk_log_format f, const char *time, const char *level, const char *msg,
                    const struct nk_log_field *fields, size_t n_fields);

/* Log msg (printf format) at level l. */
void nk_log(enum nk_log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void nk_logv(enum nk_log_level l, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Log an event: msg plus fields, at level l shown as level_name (e.g. "access" for access
 * lines, which count as info). */
void nk_log_event(enum nk_log_level l, const char *level_name, const char *msg,
                  const struct nk_log_field *fields, size_t n_fields);

/* From now on, this thread's info and debug lines are buffered (at most 4 KiB, written whole)
 * until nk_log_flush(), a full buffer, or a warning or error line. For an event loop, which
 * flushes before it waits (and at least every 50 ms). */
void nk_log_batch_begin(void);
/* Write this thread's buffered lines now. */
void nk_log_flush(void);

#endif
