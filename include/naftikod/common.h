/* SPDX-License-Identifier: Apache-2.0 */
/* common.h: return codes, error detail and diagnostics shared by every module. */
#ifndef NAFTIKOD_COMMON_H
#define NAFTIKOD_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define NK_VERSION "0.1.0"

/* Every fallible function returns one of these; NK_OK is zero. */
enum nk_rc {
    NK_OK = 0,
    NK_ERR_NOMEM,       /* allocation failed */
    NK_ERR_INVALID,     /* bad input (document, argument, request) */
    NK_ERR_IO,          /* file or socket I/O failed */
    NK_ERR_NOTFOUND,    /* looked-up thing does not exist */
    NK_ERR_UNSUPPORTED, /* valid, but naftikod does not run it (yet) */
    NK_ERR_UPSTREAM,    /* upstream unreachable / transport failure */
    NK_ERR_TIMEOUT,     /* upstream or client timed out */
    NK_ERR_TOO_LARGE,   /* a size limit was exceeded */
    NK_ERR_INTERNAL,    /* a bug or an impossible state */
    NK_ERR_FORBIDDEN    /* the caller may not do this (a permission rule refused it) */
};

/* Human-readable name of a return code; static storage. */
const char *nk_rc_str(enum nk_rc rc);
/* The value of one hexadecimal digit (either case), or -1. */
int nk_hex_digit(int c);
/* Split a listen value "ADDR:PORT", "[V6ADDR]:PORT" or ":PORT": *host and *host_len the address
 * (not NUL-terminated, brackets removed, may be empty), *port the text after the colon (not
 * checked). false without a port separator, or for an IPv6 address without brackets. */
bool nk_split_listen(const char *v, const char **host, size_t *host_len, const char **port);

/* Copy len bytes of src into dst (cap > 0 bytes, NUL-terminated) as valid UTF-8: a byte that
 * does not start a well-formed character becomes U+FFFD, and the copy stops before a character
 * that would not fit whole. Returns the bytes written (without the NUL). dst and src must not
 * overlap. Every message that carries caller or upstream text goes through this (or
 * nk_utf8_fix): JSON encoders refuse invalid UTF-8, and a refused message used to become an
 * empty 500. */
size_t nk_utf8_copy(char *dst, size_t cap, const char *src, size_t len);
/* Length of the well-formed UTF-8 character at s (n > 0 bytes available), 0 when s does not
 * start one (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t nk_utf8_char_len(const unsigned char *s, size_t n);
/* Repair the NUL-terminated text in buf (cap bytes, at most 4096) in place the same way: after
 * snprintf cut it mid-character, or when it holds bytes that are not UTF-8. */
void nk_utf8_fix(char *buf, size_t cap);

/* Optional caller-owned detail for a failed call. line/column are 1-based, 0 when unknown. */
struct nk_error {
    unsigned line;
    unsigned column;
    char msg[512];
};

/* Set e (if not NULL) to the formatted message with no position. */
void nk_error_set(struct nk_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with a position. */
void nk_error_setpos(struct nk_error *e, unsigned line, unsigned column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

enum nk_severity { NK_SEV_ERROR, NK_SEV_WARNING };

/* One compiler-style diagnostic: FILE:LINE:COLUMN: error|warning: message. */
struct nk_diag {
    enum nk_severity sev;
    char *file; /* owned */
    unsigned line;
    unsigned column;
    char *msg; /* owned */
};

/* A growing list of diagnostics; caller storage, nk_diags_init / nk_diags_cleanup. */
struct nk_diags {
    struct nk_diag *v;
    size_t n;
    size_t cap;
    size_t n_errors;
    size_t n_warnings;
    int oom; /* an allocation failed while adding; list is incomplete */
};

void nk_diags_init(struct nk_diags *d);
void nk_diags_cleanup(struct nk_diags *d);
/* Append a diagnostic. file may be NULL ("<input>"). Never fails loudly: on OOM sets d->oom. */
void nk_diags_add(struct nk_diags *d, enum nk_severity sev, const char *file, unsigned line,
                  unsigned column, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void nk_diags_vadd(struct nk_diags *d, enum nk_severity sev, const char *file, unsigned line,
                   unsigned column, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
/* Stable sort by file, line, column (insertion order kept for ties); an exact repeat (same place,
 * severity and message) is dropped. */
void nk_diags_sort(struct nk_diags *d);
/* Print every diagnostic, one a line, to out. */
void nk_diags_print(const struct nk_diags *d, FILE *out);

#endif
