/* SPDX-License-Identifier: Apache-2.0 */
/* secret.c: credential variables and secret files, read whole, bounded, wiped after use. */
#include "naftikod/secret.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void nk_secret_free_wiped(char *buf)
{
    if (buf != NULL) {
        explicit_bzero(buf, NK_SECRET_MAX + 1);
        free(buf);
    }
}

enum nk_rc nk_secret_read_small(const char *path, const char *label, char **buf, size_t *n,
                                char *why, size_t why_n)
{
    enum nk_rc rc = NK_OK;
    FILE *f;
    size_t r;

    *buf = NULL;
    *n = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, why_n, "cannot read %s: %s", label, strerror(errno));
        return NK_ERR_IO;
    }
    *buf = malloc(NK_SECRET_MAX + 1);
    if (*buf == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    while (*n <= NK_SECRET_MAX && (r = fread(*buf + *n, 1, NK_SECRET_MAX + 1 - *n, f)) > 0)
        *n += r;
    if (ferror(f)) {
        snprintf(why, why_n, "cannot read %s", label);
        rc = NK_ERR_IO;
    } else if (*n > NK_SECRET_MAX) {
        snprintf(why, why_n, "%s is larger than %d bytes", label, NK_SECRET_MAX);
        rc = NK_ERR_TOO_LARGE;
    } else {
        (*buf)[*n] = '\0';
    }
out:
    fclose(f);
    if (rc != NK_OK) {
        nk_secret_free_wiped(*buf);
        *buf = NULL;
    }
    return rc;
}

enum nk_rc nk_secret_file(const char *path, const char *via, bool raw, char **out, size_t *len,
                          char *why, size_t why_n)
{
    enum nk_rc rc;
    char *buf = NULL, label[4400];
    size_t n = 0;

    *out = NULL;
    if (len != NULL)
        *len = 0;
    snprintf(label, sizeof(label), "'%s' (%s)", path, via);
    rc = nk_secret_read_small(path, label, &buf, &n, why, why_n);
    if (rc != NK_OK)
        return rc;
    if (!raw && n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    if (!raw && strlen(buf) != n) {
        snprintf(why, why_n, "'%s' (%s) contains a NUL byte", path, via);
        rc = NK_ERR_INVALID;
    } else if (n == 0) {
        snprintf(why, why_n, "'%s' (%s) is empty", path, via);
        rc = NK_ERR_INVALID;
    } else {
        *out = malloc(n + 1);
        if (*out == NULL) {
            rc = NK_ERR_NOMEM;
        } else {
            memcpy(*out, buf, n + 1);
            if (len != NULL)
                *len = n;
        }
    }
    nk_secret_free_wiped(buf);
    return rc;
}

enum nk_rc nk_secret_value(const char *name, char **out, char *why, size_t why_n)
{
    char var[300], path[4200];
    const char *env = getenv(name), *file, *dir;

    *out = NULL;
    snprintf(var, sizeof(var), "%s_FILE", name);
    file = getenv(var);
    if (env != NULL && env[0] != '\0' && file != NULL && file[0] != '\0') {
        snprintf(why, why_n, "both environment variables %s and %s are set: set only one", name,
                 var);
        return NK_ERR_INVALID;
    }
    if (env != NULL && env[0] != '\0') {
        *out = strdup(env);
        return *out != NULL ? NK_OK : NK_ERR_NOMEM;
    }
    if (file != NULL && file[0] != '\0')
        return nk_secret_file(file, var, false, out, NULL, why, why_n);
    dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir != NULL && dir[0] != '\0') {
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (access(path, F_OK) == 0)
            return nk_secret_file(path, "$CREDENTIALS_DIRECTORY", false, out, NULL, why, why_n);
    }
    snprintf(why, why_n,
             "environment variable %s is %s (nor is %s set, nor is there a file %s in "
             "$CREDENTIALS_DIRECTORY)",
             name, env == NULL ? "not set" : "empty", var, name);
    return NK_ERR_NOTFOUND;
}
