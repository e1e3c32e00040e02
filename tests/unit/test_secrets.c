/* SPDX-License-Identifier: Apache-2.0 */
/* test_secrets.c: where a bound credential comes from (nk_context_new): the environment variable
 * NAME, the file named by NAME_FILE, $CREDENTIALS_DIRECTORY/NAME; the order between them, NAME
 * and NAME_FILE both set, unreadable and empty files, and that no message carries the value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "naftikod/invoke.h"
#include "naftikod/optable.h"
#include "naftikod/secret.h"

#define SEED NK_SOURCE_DIR "/capabilities/stackrox-apitokenservice.yaml"
#define KEY "Bearer test-key-not-a-secret"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/nk-test-secrets-%ld", (long)getpid());
    mkdir(dir, 0700);
    unsetenv("STACKROX_API_KEY");
    unsetenv("STACKROX_API_KEY_FILE");
    unsetenv("CREDENTIALS_DIRECTORY");
    setenv("CENTRAL_HOST", "central.example:8443", 1);
    return 0;
}

static int teardown(void **state)
{
    char p[128];

    (void)state;
    snprintf(p, sizeof(p), "%s/STACKROX_API_KEY", dir);
    unlink(p);
    snprintf(p, sizeof(p), "%s/key", dir);
    unlink(p);
    rmdir(dir);
    unsetenv("STACKROX_API_KEY");
    unsetenv("STACKROX_API_KEY_FILE");
    unsetenv("CREDENTIALS_DIRECTORY");
    return 0;
}

static void write_file(const char *name, const char *content, mode_t mode)
{
    char p[128];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", dir, name);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    chmod(p, mode);
}

/* Resolve the seed capability; returns the rc, the bound value in value (or ""), the first
 * diagnostic in msg (or ""). */
static enum nk_rc resolve(char *value, size_t vcap, char *msg, size_t mcap)
{
    const char *files[] = {SEED};
    struct nk_optable *t = NULL;
    struct nk_context *c = NULL;
    struct nk_diags d;
    struct nk_upstream_request r;
    struct nk_error err;
    enum nk_rc rc;
    size_t i, j;

    value[0] = msg[0] = '\0';
    nk_diags_init(&d);
    assert_int_equal(nk_optable_load(files, 1, NULL, &d, &t), NK_OK);
    nk_diags_cleanup(&d);
    nk_diags_init(&d);
    rc = nk_context_new(t, NULL, 0, &d, &c);
    if (d.n_errors > 0)
        snprintf(msg, mcap, "%s", d.v[0].msg);
    nk_diags_cleanup(&d);
    if (rc == NK_OK) {
        const struct nk_exposed *op = NULL;
        json_t *args = json_object();
        for (i = 0; i < t->n_adapters && op == NULL; i++)
            for (j = 0; j < t->adapters[i].n_ops && op == NULL; j++)
                if (strcmp(t->adapters[i].ops[j].name, "getapitokens") == 0)
                    op = &t->adapters[i].ops[j];
        assert_non_null(op);
        assert_int_equal(nk_invoke_build(c, op, args, NK_ARGS_STRINGS, NULL, &r, &err), NK_OK);
        for (i = 0; i < r.n_headers; i++)
            if (strncmp(r.headers[i], "Authorization: ", 15) == 0)
                snprintf(value, vcap, "%s", r.headers[i] + 15);
        nk_upstream_request_cleanup(&r);
        json_decref(args);
        nk_context_unref(c);
    }
    nk_optable_unref(t);
    return rc;
}

static void test_env(void **state)
{
    char v[256], m[512];

    (void)state;
    setenv("STACKROX_API_KEY", KEY, 1);
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_OK);
    assert_string_equal(v, KEY);
}

static void test_file_env(void **state)
{
    char v[256], m[512], p[128];

    (void)state;
    write_file("key", KEY "\n", 0600); /* one trailing newline stripped */
    snprintf(p, sizeof(p), "%s/key", dir);
    setenv("STACKROX_API_KEY_FILE", p, 1);
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_OK);
    assert_string_equal(v, KEY);
    write_file("key", KEY, 0600); /* no newline: taken as is */
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_OK);
    assert_string_equal(v, KEY);
}

static void test_credentials_directory(void **state)
{
    char v[256], m[512];

    (void)state;
    write_file("STACKROX_API_KEY", KEY "\n", 0600);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_OK);
    assert_string_equal(v, KEY);
    /* the environment variable comes first */
    setenv("STACKROX_API_KEY", "Bearer other-test-key", 1);
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_OK);
    assert_string_equal(v, "Bearer other-test-key");
}

static void test_file_before_credentials_directory(void **state)
{
    char v[256], m[512], p[128];

    (void)state;
    write_file("STACKROX_API_KEY", "Bearer from-credentials-dir\n", 0600);
    write_file("key", KEY, 0600);
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    snprintf(p, sizeof(p), "%s/key", dir);
    setenv("STACKROX_API_KEY_FILE", p, 1);
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_OK);
    assert_string_equal(v, KEY);
}

static void test_both_set(void **state)
{
    char v[256], m[512], p[128];

    (void)state;
    write_file("key", KEY, 0600);
    snprintf(p, sizeof(p), "%s/key", dir);
    setenv("STACKROX_API_KEY_FILE", p, 1);
    setenv("STACKROX_API_KEY", KEY, 1);
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_ERR_INVALID);
    assert_non_null(strstr(m, "STACKROX_API_KEY and STACKROX_API_KEY_FILE"));
    assert_null(strstr(m, "test-key-not-a-secret"));
}

static void test_unreadable_and_empty(void **state)
{
    char v[256], m[512], p[128];

    (void)state;
    snprintf(p, sizeof(p), "%s/missing", dir);
    setenv("STACKROX_API_KEY_FILE", p, 1);
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_ERR_INVALID);
    assert_non_null(strstr(m, p));
    assert_non_null(strstr(m, "STACKROX_API_KEY_FILE"));
    write_file("key", "\n", 0600);
    snprintf(p, sizeof(p), "%s/key", dir);
    setenv("STACKROX_API_KEY_FILE", p, 1);
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_ERR_INVALID);
    assert_non_null(strstr(m, "is empty"));
    if (geteuid() != 0) { /* root reads anything */
        write_file("key", KEY, 0000);
        assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_ERR_INVALID);
        assert_non_null(strstr(m, p));
        assert_null(strstr(m, "test-key-not-a-secret"));
    }
}

static void test_none(void **state)
{
    char v[256], m[512];

    (void)state;
    assert_int_equal(resolve(v, sizeof(v), m, sizeof(m)), NK_ERR_INVALID);
    assert_non_null(strstr(m, "STACKROX_API_KEY is not set"));
    assert_non_null(strstr(m, "STACKROX_API_KEY_FILE"));
    assert_non_null(strstr(m, "CREDENTIALS_DIRECTORY"));
}

/* nk_secret_file: text drops one trailing newline and refuses a NUL byte; raw keeps every byte
 * (a binary key, as --mcp-session-key-file reads it); both refuse an empty or oversized file
 * and name the file, never its content. */
static void test_secret_file(void **state)
{
    char path[128], why[600], *v = NULL, *big;
    size_t len = 0;
    FILE *f;

    (void)state;
    snprintf(path, sizeof(path), "%s/key", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("k1\0k2\n", 1, 6, f);
    fclose(f);
    assert_int_equal(nk_secret_file(path, "TEST", true, &v, &len, why, sizeof(why)), NK_OK);
    assert_int_equal(len, 6);
    assert_memory_equal(v, "k1\0k2\n", 6);
    free(v);
    assert_int_equal(nk_secret_file(path, "TEST", false, &v, &len, why, sizeof(why)),
                     NK_ERR_INVALID);
    assert_non_null(strstr(why, "contains a NUL byte"));
    assert_null(strstr(why, "k1"));
    f = fopen(path, "wb");
    fputs("value\n", f);
    fclose(f);
    assert_int_equal(nk_secret_file(path, "TEST", false, &v, &len, why, sizeof(why)), NK_OK);
    assert_int_equal(len, 5);
    assert_string_equal(v, "value");
    free(v);
    f = fopen(path, "wb");
    fclose(f);
    assert_int_equal(nk_secret_file(path, "TEST", true, &v, &len, why, sizeof(why)),
                     NK_ERR_INVALID);
    assert_non_null(strstr(why, "(TEST) is empty"));
    big = malloc(NK_SECRET_MAX + 1);
    assert_non_null(big);
    memset(big, 'k', NK_SECRET_MAX + 1);
    f = fopen(path, "wb");
    fwrite(big, 1, NK_SECRET_MAX, f);
    fclose(f);
    assert_int_equal(nk_secret_file(path, "TEST", true, &v, &len, why, sizeof(why)), NK_OK);
    assert_int_equal(len, NK_SECRET_MAX); /* the whole bound, no shorter cut */
    free(v);
    f = fopen(path, "wb");
    fwrite(big, 1, NK_SECRET_MAX + 1, f);
    fclose(f);
    free(big);
    assert_int_equal(nk_secret_file(path, "TEST", true, &v, &len, why, sizeof(why)),
                     NK_ERR_TOO_LARGE);
    assert_non_null(strstr(why, "is larger than 65536 bytes"));
    assert_null(strstr(why, "kkkk"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_credentials_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_before_credentials_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_both_set, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_and_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
