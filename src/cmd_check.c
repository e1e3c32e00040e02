/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_check.c: `naftikod check [--strict] FILE|DIR...`: load every file, print every diagnostic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "naftikod/authz.h"
#include "naftikod/cmd.h"
#include "naftikod/common.h"
#include "naftikod/optable.h"

static const char check_usage[] =
    "Usage: naftikod check [--strict] [--permissions FILE] FILE|DIR...\n"
    "\n"
    "Load, validate and compile capability documents (naftiko: 1.0.0-alpha2) together, as\n"
    "'serve' would, and print every problem as FILE:LINE:COLUMN: error|warning: message.\n"
    "A DIR stands for its *.yaml and *.yml files (sorted, not recursive). Adapters of one\n"
    "type on one port share a listener: their routes and tool names must not clash.\n"
    "\n"
    "Options:\n"
    "  --strict    also warn at every departure from the pure 1.0.0-alpha2 schema\n"
    "  --permissions FILE\n"
    "              also compile this permissions file (as 'serve --permissions' does) and\n"
    "              warn about tool, route and call names in it that match nothing served\n"
    "  -h, --help  show this help and exit\n"
    "\n"
    "Exit status: 0 no errors (warnings allowed), 1 errors found, 2 usage error.\n";

static void lint_warning(void *ud, const char *file, unsigned line, const char *msg)
{
    (void)ud;
    printf("%s:%u:1: warning: %s\n", file, line, msg);
}

/* The permissions file against table t: its error as FILE:LINE:COLUMN: error: ..., or its
 * names that match nothing as warnings. Returns false on an error. */
static bool check_permissions(const char *path, const struct nk_optable *t)
{
    struct nk_authz *az = NULL;
    struct nk_error err;
    int skip;

    memset(&err, 0, sizeof(err));
    if (nk_authz_load(path, &az, &err) != NK_OK) {
        /* the message starts with "FILE:LINE:COL: " when it has a position */
        skip = err.line > 0 ? snprintf(NULL, 0, "%s:%u:%u: ", path, err.line, err.column) : 0;
        if (skip > 0 && strncmp(err.msg, path, strlen(path)) == 0 &&
            (size_t)skip <= strlen(err.msg))
            printf("%s:%u:%u: error: %s\n", path, err.line, err.column, err.msg + skip);
        else
            printf("%s: error: %s\n", path, err.msg);
        return false;
    }
    (void)nk_authz_lint(az, t, lint_warning, NULL);
    nk_authz_free(az);
    return true;
}

int nk_cmd_check(int argc, char **argv)
{
    struct nk_load_options opts;
    struct nk_diags diags;
    struct nk_optable *t = NULL;
    const char **files = NULL;
    const char *permissions = NULL;
    size_t n = 0;
    int i, status = 0;
    bool no_more_opts = false;
    enum nk_rc rc;

    memset(&opts, 0, sizeof(opts));
    nk_diags_init(&diags);
    files = calloc((size_t)argc + 1, sizeof(*files));
    if (files == NULL) {
        fputs("naftikod check: out of memory\n", stderr);
        return 1;
    }
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!no_more_opts && strcmp(a, "--") == 0) {
            no_more_opts = true;
        } else if (!no_more_opts && (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)) {
            fputs(check_usage, stdout);
            goto out;
        } else if (!no_more_opts && strcmp(a, "--strict") == 0) {
            opts.strict = true;
        } else if (!no_more_opts && strcmp(a, "--permissions") == 0 && i + 1 < argc) {
            permissions = argv[++i];
        } else if (!no_more_opts && strncmp(a, "--permissions=", 14) == 0) {
            permissions = a + 14;
        } else if (!no_more_opts && a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "naftikod check: unknown option '%s'\nTry 'naftikod check --help'.\n",
                    a);
            status = 2;
            goto out;
        } else {
            files[n++] = a;
        }
    }
    if (n == 0) {
        fprintf(stderr, "naftikod check: no capability file given\n%s", check_usage);
        status = 2;
        goto out;
    }
    rc = nk_optable_load(files, n, &opts, &diags, &t);
    if (rc == NK_OK) /* listeners as `serve` makes them without port options */
        rc = nk_optable_group(t, NULL, &diags);
    nk_diags_print(&diags, stdout);
    if (rc == NK_ERR_NOMEM) {
        fputs("naftikod check: out of memory\n", stderr);
        status = 1;
    } else if (rc != NK_OK || diags.n_errors > 0) {
        status = 1;
    } else if (permissions != NULL && !check_permissions(permissions, t)) {
        status = 1;
    }
out:
    nk_optable_unref(t);
    nk_diags_cleanup(&diags);
    free(files);
    return status;
}
