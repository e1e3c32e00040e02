/* SPDX-License-Identifier: Apache-2.0 */
/* test_spec.c: the YAML node tree, and the data-driven document suite:
 * tests/data/spec/valid/ (must load without errors) and tests/data/spec/invalid/ (each X.yaml
 * has X.expected: every diagnostic as `LINE:COLUMN: error|warning: message`, exactly). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/optable.h"
#include "naftikod/spec.h"

#define MAX_FILES 512

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted *.yaml names in dir; returns the count. */
static size_t list_yaml(const char *dir, char **names)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL && n < MAX_FILES) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".yaml") == 0)
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    return n;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)len + 1);
    assert_non_null(buf);
    if (len > 0)
        assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return buf;
}

/* The diagnostics as "LINE:COL: error: MSG" lines, with "DIR/" removed from the messages (a
 * message that names another place names it FILE:LINE:COL). */
static char *render(const struct nk_diags *d, const char *dir)
{
    size_t i, cap = 1, len = 0, dl = strlen(dir);
    char *out, *p;

    for (i = 0; i < d->n; i++)
        cap += strlen(d->v[i].msg) + 64;
    out = calloc(1, cap);
    assert_non_null(out);
    for (i = 0; i < d->n; i++)
        len +=
            (size_t)snprintf(out + len, cap - len, "%u:%u: %s: %s\n", d->v[i].line, d->v[i].column,
                             d->v[i].sev == NK_SEV_ERROR ? "error" : "warning", d->v[i].msg);
    while ((p = strstr(out, dir)) != NULL && p[dl] == '/')
        memmove(p, p + dl + 1, strlen(p + dl + 1) + 1);
    return out;
}

/* Every X.yaml of dir loads with exactly the diagnostics of X.expected; strict selects
 * --strict; must_fail requires at least one error. */
static size_t run_expected(const char *dir, bool strict, bool must_fail)
{
    char *names[MAX_FILES];
    size_t n, i, failures = 0;
    struct nk_load_options opts = {.strict = strict};

    n = list_yaml(dir, names);
    for (i = 0; i < n; i++) {
        char path[1024], epath[1024];
        const char *files[1];
        struct nk_diags d;
        struct nk_optable *t = NULL;
        char *want, *got;
        enum nk_rc rc;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(epath, sizeof(epath), "%.*s.expected", (int)(strlen(path) - 5), path);
        files[0] = path;
        nk_diags_init(&d);
        rc = nk_optable_load(files, 1, &opts, &d, &t);
        if (rc == NK_OK) { /* listeners and their conflicts, as `naftikod check` judges them */
            rc = nk_optable_group(t, NULL, &d);
            if (rc != NK_OK) {
                nk_optable_unref(t);
                t = NULL;
            }
        }
        got = render(&d, dir);
        want = slurp(epath);
        if (want == NULL) {
            print_error("%s: missing %s; got:\n%s", names[i], epath, got);
            failures++;
        } else if ((must_fail && (rc == NK_OK || t != NULL || d.n_errors == 0)) ||
                   strcmp(want, got) != 0) {
            print_error("%s: rc %d\n--- expected\n%s--- got\n%s", names[i], (int)rc, want, got);
            failures++;
        }
        nk_optable_unref(t);
        nk_diags_cleanup(&d);
        free(want);
        free(got);
        free(names[i]);
    }
    assert_int_equal(failures, 0);
    return n;
}

static void test_invalid_documents(void **state)
{
    (void)state;
    assert_true(run_expected(NK_TEST_DATA "/spec/invalid", false, true) >= 35);
}

static void test_strict_documents(void **state)
{
    (void)state;
    assert_true(run_expected(NK_TEST_DATA "/spec/strict", true, false) >= 2);
}

static void test_valid_documents(void **state)
{
    char *names[MAX_FILES];
    size_t n, i, failures = 0;

    (void)state;
    n = list_yaml(NK_TEST_DATA "/spec/valid", names);
    assert_true(n >= 1);
    for (i = 0; i < n; i++) {
        char path[1024];
        const char *files[1];
        struct nk_diags d;
        struct nk_optable *t = NULL;

        snprintf(path, sizeof(path), NK_TEST_DATA "/spec/valid/%s", names[i]);
        files[0] = path;
        nk_diags_init(&d);
        if (nk_optable_load(files, 1, NULL, &d, &t) != NK_OK || d.n_errors != 0) {
            char *got = render(&d, NK_TEST_DATA "/spec/valid");
            print_error("%s should load:\n%s", names[i], got);
            free(got);
            failures++;
        }
        nk_optable_unref(t);
        nk_diags_cleanup(&d);
        free(names[i]);
    }
    assert_int_equal(failures, 0);
}

static struct nk_node *parse_ok(const char *text)
{
    struct nk_node *root = NULL;
    struct nk_error err;

    memset(&err, 0, sizeof(err));
    assert_int_equal(nk_spec_parse(text, strlen(text), &root, &err), NK_OK);
    return root;
}

static enum nk_rc parse_err(const char *text, size_t len, struct nk_error *err)
{
    struct nk_node *root = NULL;
    enum nk_rc rc;

    memset(err, 0, sizeof(*err));
    rc = nk_spec_parse(text, len, &root, err);
    assert_null(root);
    return rc;
}

static void test_tree(void **state)
{
    struct nk_node *r = parse_ok("a: 'true'\nb: true\nc: [1, x]\nd: |\n  text\ne: 2.5e3\nf: ~\n");
    const struct nk_node *v;
    bool b;
    long long i;

    (void)state;
    assert_int_equal(r->kind, NK_NODE_MAPPING);
    assert_int_equal(r->n, 6);
    v = nk_node_get(r, "a");
    assert_true(nk_node_is_string(v));
    assert_false(nk_node_bool(v, &b));
    assert_int_equal(v->line, 1);
    assert_int_equal(v->column, 4);
    v = nk_node_get(r, "b");
    assert_true(nk_node_bool(v, &b));
    assert_true(b);
    assert_false(nk_node_is_string(v));
    v = nk_node_get(r, "c");
    assert_int_equal(v->kind, NK_NODE_SEQUENCE);
    assert_true(nk_node_int(v->items[0], &i));
    assert_int_equal(i, 1);
    assert_int_equal(v->items[1]->line, 3);
    assert_int_equal(v->items[1]->column, 8);
    v = nk_node_get(r, "d");
    assert_int_equal(v->style, NK_SCALAR_BLOCK);
    assert_string_equal(v->str, "text\n");
    assert_true(nk_node_is_number(nk_node_get(r, "e")));
    assert_true(nk_node_is_null(nk_node_get(r, "f")));
    assert_null(nk_node_get(r, "zz"));
    assert_null(nk_node_get(v, "a"));
    nk_node_free(r);
    nk_node_free(NULL);
}

static void test_limits(void **state)
{
    struct nk_error err;
    char *deep;
    size_t i;

    (void)state;
    /* 65 nested flow sequences */
    deep = calloc(1, 200);
    assert_non_null(deep);
    for (i = 0; i < 65; i++)
        deep[i] = '[';
    assert_int_equal(parse_err(deep, strlen(deep), &err), NK_ERR_TOO_LARGE);
    assert_string_equal(err.msg, "nesting deeper than 64 levels");
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 65);
    free(deep);

    assert_int_equal(parse_err("", 0, &err), NK_ERR_INVALID);
    assert_string_equal(err.msg, "empty document");
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 1);

    assert_int_equal(parse_err("a: &x 1\nb: *x\n", 14, &err), NK_ERR_INVALID);
    assert_string_equal(err.msg, "YAML aliases are not supported (alias '*x')");
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 4);

    assert_int_equal(parse_err("a: 1\n---\nb: 2\n", 14, &err), NK_ERR_INVALID);
    assert_int_equal(err.line, 2);

    assert_int_equal(parse_err("a: 1\nb: \xff\n", 9, &err), NK_ERR_INVALID);
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, 4);

    assert_int_equal(parse_err("x", NK_SPEC_MAX_BYTES + 1, &err), NK_ERR_TOO_LARGE);
}

static void test_dup_keys_many(void **state)
{
    /* the sorted path (more than 16 keys) reports the first repeat in document order */
    char buf[512];
    size_t len = 0;
    struct nk_error err;
    int i;

    (void)state;
    for (i = 0; i < 20; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "k%d: 1\n", i);
    len += (size_t)snprintf(buf + len, sizeof(buf) - len, "k3: 2\nk1: 2\n");
    assert_int_equal(parse_err(buf, len, &err), NK_ERR_INVALID);
    assert_string_equal(err.msg, "duplicate key 'k3' (first at line 4)");
    assert_int_equal(err.line, 21);
    assert_int_equal(err.column, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_dup_keys_many),
        cmocka_unit_test(test_valid_documents),
        cmocka_unit_test(test_invalid_documents),
        cmocka_unit_test(test_strict_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
