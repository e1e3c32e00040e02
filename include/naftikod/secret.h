/* SPDX-License-Identifier: Apache-2.0 */
/* secret.h: the one reader of secrets: credential variables (NAME, NAME_FILE,
 * $CREDENTIALS_DIRECTORY/NAME) and secret files (bounded, wiped, never echoed). */
#ifndef NAFTIKOD_SECRET_H
#define NAFTIKOD_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"

/* The largest secret file read (credentials, bind files, the MCP session key). */
#define NK_SECRET_MAX (64 * 1024)

/* Read a whole file of at most NK_SECRET_MAX bytes into *buf (NK_SECRET_MAX + 1 bytes,
 * NUL-terminated after *n bytes; free it with nk_secret_free_wiped()). label names the file in
 * why, e.g. "'/run/key'" (never its content). NK_OK; NK_ERR_IO (cannot open or read);
 * NK_ERR_TOO_LARGE; NK_ERR_NOMEM. */
enum nk_rc nk_secret_read_small(const char *path, const char *label, char **buf, size_t *n,
                                char *why, size_t why_n);
/* Wipe then free a buffer of nk_secret_read_small(). NULL is a no-op. */
void nk_secret_free_wiped(char *buf);

/* Read a secret file: NK_SECRET_MAX bytes at most, not empty. Text (raw false): one trailing
 * newline removed, no NUL byte. Raw: every byte kept (a binary key). *out is NUL-terminated
 * after *len bytes either way; the caller wipes and frees it. via names where the path came
 * from ("NAME_FILE"). NK_OK; NK_ERR_IO, NK_ERR_TOO_LARGE, NK_ERR_INVALID (empty, NUL byte in
 * text), NK_ERR_NOMEM, each with why set (the path and the reason, never the content). len may
 * be NULL. */
enum nk_rc nk_secret_file(const char *path, const char *via, bool raw, char **out, size_t *len,
                          char *why, size_t why_n);

/* The value of credential variable name, from (in this order) the environment variable NAME,
 * the file named by NAME_FILE, or $CREDENTIALS_DIRECTORY/NAME (systemd LoadCredential=), files
 * read as text. NAME and NAME_FILE both set is an error. *out: caller wipes and frees.
 * NK_ERR_NOTFOUND when none is there; every error explained in why. */
enum nk_rc nk_secret_value(const char *name, char **out, char *why, size_t why_n);

#endif
