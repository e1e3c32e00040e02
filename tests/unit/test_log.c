/* SPDX-License-Identifier: Apache-2.0 */
/* test_log.c: log line rendering: JSON lines parse as JSON with the fields intact (quotes,
 * backslashes, control characters, invalid UTF-8, over-long values), logfmt quoting, the text
 * format, option parsing and level filtering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "naftikod/log.h"

static const struct nk_log_field fields[] = {
    {"method", "GET", 0, 0},
    {"path", "/a b/\"q\"\\x\n\x01\xff\xc3\xa9", 0, 0},
    {"status", NULL, 200, 0},
    {"duration_ms", NULL, 12.345, 1},
};

static void test_json_valid(void **state)
{
    char *line =
        nk_log_render(NK_LOG_JSON, "2026-01-01T00:00:00.000Z", "info", "access \"x\"", fields, 4);
    json_error_t e;
    json_t *j;

    (void)state;
    assert_non_null(line);
    assert_int_equal(line[strlen(line) - 1], '\n');
    j = json_loads(line, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "access \"x\"");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
    /* invalid UTF-8 (\xff) becomes '?', valid é stays */
    assert_string_equal(json_string_value(json_object_get(j, "path")),
                        "/a b/\"q\"\\x\n\x01?\xc3\xa9");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_true(json_real_value(json_object_get(j, "duration_ms")) > 12.2 &&
                json_real_value(json_object_get(j, "duration_ms")) < 12.4);
    json_decref(j);
    free(line);
}

static void test_json_long_value(void **state)
{
    char *big = malloc(3 * NK_LOG_MAX_VALUE), *line;
    json_t *j;

    (void)state;
    assert_non_null(big);
    memset(big, 'a', 3 * NK_LOG_MAX_VALUE - 3);
    memcpy(big + NK_LOG_MAX_VALUE - 1, "\xc3\xa9", 2); /* a character across the cut */
    big[3 * NK_LOG_MAX_VALUE - 3] = '\0';
    line = nk_log_render(NK_LOG_JSON, "t", "info", big, NULL, 0);
    assert_non_null(line);
    j = json_loads(line, 0, NULL);
    assert_non_null(j);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "msg"))), NK_LOG_MAX_VALUE - 1);
    json_decref(j);
    free(line);
    free(big);
}

static void test_logfmt(void **state)
{
    char *line =
        nk_log_render(NK_LOG_LOGFMT, "2026-01-01T00:00:00.000Z", "info", "access", fields, 4);

    (void)state;
    assert_non_null(line);
    assert_string_equal(line, "time=2026-01-01T00:00:00.000Z level=info msg=access method=GET "
                              "path=\"/a b/\\\"q\\\"\\\\x\\n?\xff\xc3\xa9\" status=200 "
                              "duration_ms=12.3\n");
    free(line);
    line = nk_log_render(NK_LOG_LOGFMT, "t", "warning", "", NULL, 0);
    assert_string_equal(line, "time=t level=warning msg=\"\"\n");
    free(line);
}

static void test_text(void **state)
{
    char *line = nk_log_render(NK_LOG_TEXT, "T", "access", "GET / 200 1.0ms\x01", NULL, 0);

    (void)state;
    assert_string_equal(line, "T access GET / 200 1.0ms?\n");
    free(line);
}

static void test_parse_and_levels(void **state)
{
    enum nk_log_format f;
    enum nk_log_level l;

    (void)state;
    assert_true(nk_log_parse_format("json", &f) && f == NK_LOG_JSON);
    assert_true(nk_log_parse_format("logfmt", &f) && f == NK_LOG_LOGFMT);
    assert_false(nk_log_parse_format("JSON", &f));
    assert_true(nk_log_parse_level("warning", &l) && l == NK_LOG_WARNING);
    assert_false(nk_log_parse_level("warn", &l));
    nk_log_configure(NK_LOG_TEXT, NK_LOG_WARNING);
    assert_false(nk_log_enabled(NK_LOG_INFO));
    assert_true(nk_log_enabled(NK_LOG_ERROR));
    nk_log_configure(NK_LOG_TEXT, NK_LOG_INFO);
    assert_true(nk_log_enabled(NK_LOG_INFO));
    assert_false(nk_log_enabled(NK_LOG_DEBUG));
}

/* Batching runs on a thread of its own (it is a per-thread mode); stderr goes to a file. */
struct batch_probe {
    FILE *f;
    long after_two_infos, after_warning, after_info, after_flush, after_many;
};

static long file_size(FILE *f)
{
    fflush(f);
    return (long)lseek(fileno(f), 0, SEEK_END);
}

static void *batch_thread(void *arg)
{
    struct batch_probe *p = arg;
    int i;

    nk_log_batch_begin();
    nk_log(NK_LOG_INFO, "one");
    nk_log(NK_LOG_INFO, "two");
    p->after_two_infos = file_size(p->f);
    nk_log(NK_LOG_WARNING, "three"); /* written at once, after the lines before it */
    p->after_warning = file_size(p->f);
    nk_log(NK_LOG_INFO, "four");
    p->after_info = file_size(p->f);
    nk_log_flush();
    p->after_flush = file_size(p->f);
    for (i = 0; i < 200; i++) /* ~20 KiB: several buffers' worth, written as they fill */
        nk_log(NK_LOG_INFO, "line %03d %080d", i, 0);
    p->after_many = file_size(p->f);
    nk_log_flush();
    return NULL;
}

static void test_batching(void **state)
{
    struct batch_probe p;
    pthread_t t;
    char *text, *at;
    long n;
    int saved, i;
    char want[16];

    (void)state;
    memset(&p, 0, sizeof(p));
    nk_log_configure(NK_LOG_TEXT, NK_LOG_INFO);
    p.f = tmpfile();
    assert_non_null(p.f);
    saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fileno(p.f), STDERR_FILENO), STDERR_FILENO);
    assert_int_equal(pthread_create(&t, NULL, batch_thread, &p), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);

    assert_int_equal(p.after_two_infos, 0); /* info lines wait */
    assert_true(p.after_warning > 0);       /* a warning flushes them and itself */
    assert_int_equal(p.after_info, p.after_warning);
    assert_true(p.after_flush > p.after_info); /* the flush writes the rest */
    assert_true(p.after_many > p.after_flush); /* a full buffer is written without a flush */
    n = file_size(p.f);
    assert_true(n - p.after_many <= 4096); /* at most one buffer was still waiting */
    text = calloc(1, (size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(pread(fileno(p.f), text, (size_t)n, 0), n);
    /* every line, whole and in order */
    at = strstr(text, "one");
    assert_non_null(at);
    at = strstr(at, "two");
    assert_non_null(at);
    at = strstr(at, "three");
    assert_non_null(at);
    at = strstr(at, "four");
    assert_non_null(at);
    for (i = 0; i < 200; i++) {
        snprintf(want, sizeof(want), "line %03d ", i);
        at = strstr(at, want);
        assert_non_null(at);
    }
    free(text);
    fclose(p.f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_valid),       cmocka_unit_test(test_json_long_value),
        cmocka_unit_test(test_logfmt),           cmocka_unit_test(test_text),
        cmocka_unit_test(test_parse_and_levels), cmocka_unit_test(test_batching),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
