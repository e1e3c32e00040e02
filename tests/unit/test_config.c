/* SPDX-License-Identifier: Apache-2.0 */
/* test_config.c: the option table (config module): defaults < file < environment < flags, each
 * value type, bad values and their messages, FILE:LINE:COLUMN errors of the configuration file,
 * options of one command refused or ignored by the other, --help and --options-markdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "naftikod/config.h"

#define SERVE NK_CONFIG_SERVE
#define STDIO NK_CONFIG_MCP_STDIO

static char file[64];   /* the configuration file of a test */
static char out[16384]; /* what a call printed on stderr (or stdout) */

static const char *const envs[] = {
    "NAFTIKOD_CONFIG",    "NAFTIKOD_TIMEOUT_MS",  "NAFTIKOD_READ_ONLY",
    "NAFTIKOD_REST_PORT", "NAFTIKOD_LOG_FORMAT",  "NAFTIKOD_MCP_ALLOWED_HOSTS",
    "CENTRAL_HOST",       "NAFTIKOD_REST_LISTEN",
};

static int setup(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(envs) / sizeof(envs[0]); i++)
        unsetenv(envs[i]);
    snprintf(file, sizeof(file), "/tmp/nk-test-config-%ld.yaml", (long)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(file);
    return 0;
}

static void write_file(const char *text)
{
    FILE *f = fopen(file, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* nk_config_read with argv (NULL-terminated), what it printed on fd (stderr or stdout) in out. */
static int read_args(struct nk_config *c, unsigned cmd, int fd, const char *const *argv)
{
    FILE *tmp = tmpfile();
    int argc = 0, saved, r;
    size_t n;

    while (argv[argc] != NULL)
        argc++;
    assert_non_null(tmp);
    fflush(fd == STDOUT_FILENO ? stdout : stderr);
    saved = dup(fd);
    assert_int_equal(dup2(fileno(tmp), fd), fd);
    r = nk_config_read(c, cmd, false, argc, (char **)(uintptr_t)argv);
    fflush(fd == STDOUT_FILENO ? stdout : stderr);
    assert_int_equal(dup2(saved, fd), fd);
    close(saved);
    rewind(tmp);
    n = fread(out, 1, sizeof(out) - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
    return r;
}

#define READ(c, cmd, ...) read_args(c, cmd, STDERR_FILENO, (const char *const[]){__VA_ARGS__, NULL})

static void want_error(unsigned cmd, int want_rc, const char *want_msg, const char *const *argv)
{
    struct nk_config c;
    int r = read_args(&c, cmd, STDERR_FILENO, argv);

    if (r != want_rc || strstr(out, want_msg) == NULL)
        fail_msg("got %d and '%s', want %d and '%s'", r, out, want_rc, want_msg);
    nk_config_free(&c);
}

#define WANT_ERROR(cmd, rc, msg, ...)                                                              \
    want_error(cmd, rc, msg, (const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void **state)
{
    struct nk_config c;

    (void)state;
    assert_int_equal(READ(&c, SERVE, "serve", "cap.yaml"), 0);
    assert_string_equal(c.listen, "127.0.0.1");
    assert_false(c.listen_given);
    assert_int_equal(c.rest_port, -1);
    assert_int_equal(c.mcp_port, -1);
    assert_int_equal(c.timeout_ms, 0); /* the upstream client's default */
    assert_int_equal(c.drain_ms, 10000);
    assert_int_equal(c.max_connections, 1024);
    assert_int_equal(c.max_header_bytes, 16384);
    assert_int_equal(c.mcp_max_batch, 64);
    assert_string_equal(c.log_format, "text");
    assert_string_equal(c.log_level, "info");
    assert_string_equal(c.rest_auth, "none");
    assert_null(c.ops_listen);
    assert_null(c.mcp_session_key_file);
    assert_false(c.read_only);
    assert_int_equal(c.n_files, 1);
    assert_string_equal(c.files[0], "cap.yaml");
    assert_true(c.files_from_args);
    nk_config_free(&c);
}

/* defaults < file < environment < flags, option by option. */
static void test_precedence(void **state)
{
    struct nk_config c;

    (void)state;
    write_file(
        "timeout: 100\nmax-body: 7\nvar:\n  central-host: from-file\ncapabilities: [a.yaml]\n");
    assert_int_equal(READ(&c, SERVE, "serve", "--config", file), 0);
    assert_int_equal(c.timeout_ms, 100);
    assert_int_equal(c.max_body, 7);
    assert_int_equal(c.n_vars, 1);
    assert_string_equal(c.vars[0].value, "from-file");
    assert_int_equal(c.n_files, 1);
    assert_non_null(strstr(c.files[0], "/tmp/a.yaml")); /* relative to the file */
    assert_false(c.files_from_args);
    nk_config_free(&c);

    setenv("NAFTIKOD_TIMEOUT_MS", "200", 1);
    setenv("CENTRAL_HOST", "from-env", 1);
    assert_int_equal(READ(&c, SERVE, "serve", "--config", file), 0);
    assert_int_equal(c.timeout_ms, 200);
    assert_int_equal(c.max_body, 7);
    assert_int_equal(c.n_vars, 0); /* the environment's value wins: nk_context_new reads it */
    nk_config_free(&c);

    assert_int_equal(READ(&c, SERVE, "serve", "--timeout=300", "--var", "central-host=flag",
                          "--config", file, "b.yaml"),
                     0);
    assert_int_equal(c.timeout_ms, 300);
    assert_int_equal(c.n_vars, 1);
    assert_string_equal(c.vars[0].value, "flag");
    assert_int_equal(c.n_files, 1); /* arguments replace the file's list */
    assert_string_equal(c.files[0], "b.yaml");
    nk_config_free(&c);

    /* NAFTIKOD_CONFIG names the file when --config does not. */
    setenv("NAFTIKOD_CONFIG", file, 1);
    unsetenv("NAFTIKOD_TIMEOUT_MS");
    assert_int_equal(READ(&c, SERVE, "serve"), 0);
    assert_int_equal(c.timeout_ms, 100);
    nk_config_free(&c);
}

static void test_types(void **state)
{
    struct nk_config c;

    (void)state;
    setenv("NAFTIKOD_READ_ONLY", "yes", 1);
    assert_int_equal(READ(&c, SERVE, "serve", "--max-body=5", "--log-format", "json",
                          "--rest-listen", "[::1]:8080", "--mcp-listen=:0", "--listen", "0.0.0.0",
                          "--insecure-skip-verify", "--allow-remote=false", "--var", "a=b=c",
                          "--mcp-allowed-hosts", "a.example, b.example", "x.yaml"),
                     0);
    assert_int_equal(c.max_body, 5);
    assert_string_equal(c.log_format, "json");
    assert_true(c.rest_listen.given);
    assert_string_equal(c.rest_listen.addr, "::1");
    assert_int_equal(c.rest_listen.port, 8080);
    assert_true(c.mcp_listen.given);
    assert_string_equal(c.mcp_listen.addr, "");
    assert_int_equal(c.mcp_listen.port, 0);
    assert_string_equal(c.listen, "0.0.0.0");
    assert_true(c.listen_given);
    assert_true(c.insecure);
    assert_false(c.allow_remote);
    assert_true(c.read_only);
    assert_int_equal(c.n_vars, 1);
    assert_string_equal(c.vars[0].name, "a");
    assert_string_equal(c.vars[0].value, "b=c");
    assert_string_equal(c.mcp_allowed_hosts, "a.example, b.example");
    nk_config_free(&c);
    unsetenv("NAFTIKOD_READ_ONLY");

    /* Booleans in the file: YAML true/false and the command line's words. */
    write_file("read-only: true\ninsecure-skip-verify: no\nmcp-session-key-file: /run/k\n");
    assert_int_equal(READ(&c, SERVE, "serve", "--config", file, "x.yaml"), 0);
    assert_true(c.read_only);
    assert_false(c.insecure);
    assert_string_equal(c.mcp_session_key_file, "/run/k");
    nk_config_free(&c);
}

static void test_bad_values(void **state)
{
    (void)state;
    WANT_ERROR(SERVE, 2, "naftikod serve: --timeout: '3x' is not a non-negative integer", "serve",
               "--timeout", "3x", "x.yaml");
    WANT_ERROR(SERVE, 2, "--timeout: '-1' is not a non-negative integer", "serve", "--timeout=-1",
               "x.yaml");
    WANT_ERROR(SERVE, 2, "--rest-port: port 70000 is out of range", "serve", "--rest-port", "70000",
               "x.yaml");
    WANT_ERROR(SERVE, 2, "--read-only: 'maybe' is not a boolean", "serve", "--read-only=maybe",
               "x.yaml");
    WANT_ERROR(SERVE, 2, "--log-format: expected one of text|logfmt|json, got 'xml'", "serve",
               "--log-format", "xml", "x.yaml");
    WANT_ERROR(SERVE, 2, "--rest-listen: expected ADDR:PORT, [IPV6]:PORT or :PORT, got 'nope'",
               "serve", "--rest-listen", "nope", "x.yaml");
    WANT_ERROR(SERVE, 2, "--var: expected NAME=VALUE, got '=b'", "serve", "--var", "=b", "x.yaml");
    WANT_ERROR(SERVE, 2, "naftikod serve: unknown option '--bogus'\nTry 'naftikod serve --help'.",
               "serve", "--bogus", "x.yaml");
    WANT_ERROR(SERVE, 2, "naftikod serve: --timeout needs a value", "serve", "x.yaml", "--timeout");
    WANT_ERROR(SERVE, 2, "naftikod serve: no capability file given", "serve");
    setenv("NAFTIKOD_TIMEOUT_MS", "soon", 1);
    WANT_ERROR(SERVE, 2, "NAFTIKOD_TIMEOUT_MS: 'soon' is not a non-negative integer", "serve",
               "x.yaml");
    unsetenv("NAFTIKOD_TIMEOUT_MS");
}

static void test_file_errors(void **state)
{
    char want[256];

    (void)state;
    write_file("listen: 127.0.0.1\ntimeout: 3x\n");
    snprintf(want, sizeof(want),
             "naftikod serve: %s:2:10: timeout: '3x' is not a non-negative "
             "integer",
             file);
    WANT_ERROR(SERVE, 1, want, "serve", "--config", file, "x.yaml");

    write_file("timeout: 1\nbogus: 1\n");
    snprintf(want, sizeof(want),
             "%s:2:1: bogus: unknown key (expected an option name without "
             "'--', var or capabilities; see naftikod serve --help)",
             file);
    WANT_ERROR(SERVE, 1, want, "serve", "--config", file, "x.yaml");

    write_file("timeout: [1, 2]\n");
    snprintf(want, sizeof(want), "%s:1:1: timeout: expected a single value", file);
    WANT_ERROR(SERVE, 1, want, "serve", "--config", file, "x.yaml");

    write_file("timeout: 1\ntimeout: 2\n");
    snprintf(want, sizeof(want), "%s:2:1: ", file);
    WANT_ERROR(SERVE, 1, want, "serve", "--config", file, "x.yaml");

    write_file("var: [a]\n");
    snprintf(want, sizeof(want), "%s:1:6: var: expected a mapping of NAME: VALUE", file);
    WANT_ERROR(SERVE, 1, want, "serve", "--config", file, "x.yaml");

    write_file("capabilities: a.yaml\n");
    snprintf(want, sizeof(want), "%s:1:15: capabilities: expected a list of capability file paths",
             file);
    WANT_ERROR(SERVE, 1, want, "serve", "--config", file);

    write_file("timeout: 'unterminated\n");
    snprintf(want, sizeof(want), "naftikod serve: %s:", file);
    WANT_ERROR(SERVE, 1, want, "serve", "--config", file, "x.yaml");

    WANT_ERROR(SERVE, 1, "cannot read the config file /nonexistent/naftikod.yaml", "serve",
               "--config", "/nonexistent/naftikod.yaml", "x.yaml");
}

/* mcp-stdio: its own options, serve's refused as flags, ignored in the environment and file. */
static void test_commands(void **state)
{
    struct nk_config c;

    (void)state;
    WANT_ERROR(STDIO, 2,
               "naftikod mcp-stdio: --rest-port is an option of 'naftikod serve' only (it has no "
               "effect here)\nTry 'naftikod mcp-stdio --help'.",
               "mcp-stdio", "--rest-port", "1", "x.yaml");
    WANT_ERROR(SERVE, 2, "naftikod serve: --adapter is an option of 'naftikod mcp-stdio' only",
               "serve", "--adapter", "ns", "x.yaml");
    WANT_ERROR(STDIO, 2, "naftikod mcp-stdio: --timeout: '3x' is not a non-negative integer",
               "mcp-stdio", "--timeout", "3x", "x.yaml");

    setenv("NAFTIKOD_REST_PORT", "not-a-port", 1);
    write_file("rest-port: 8080\nmcp-auth: token\ntimeout: 9\nadapter: ns\n");
    assert_int_equal(READ(&c, STDIO, "mcp-stdio", "--config", file, "--read-only", "x.yaml"), 0);
    assert_int_equal(c.rest_port, -1);
    assert_string_equal(c.mcp_auth, "none");
    assert_int_equal(c.timeout_ms, 9);
    assert_string_equal(c.adapter, "ns");
    assert_true(c.read_only);
    nk_config_free(&c);
    /* serve reads the same file: adapter: is mcp-stdio's, and ignored here. */
    assert_int_equal(READ(&c, SERVE, "serve", "--config", file, "x.yaml"), 2);
    assert_non_null(strstr(out, "NAFTIKOD_REST_PORT: 'not-a-port' is not a non-negative integer"));
    nk_config_free(&c);
    unsetenv("NAFTIKOD_REST_PORT");
    assert_int_equal(READ(&c, SERVE, "serve", "--config", file, "x.yaml"), 0);
    assert_int_equal(c.rest_port, 8080);
    assert_null(c.adapter);
    nk_config_free(&c);
}

static void test_help(void **state)
{
    struct nk_config c;
    const char *const serve_help[] = {"serve", "--help", NULL};
    const char *const stdio_help[] = {"mcp-stdio", "-h", NULL};

    (void)state;
    assert_int_equal(read_args(&c, SERVE, STDOUT_FILENO, serve_help), -1);
    nk_config_free(&c);
    assert_non_null(strstr(out, "Usage: naftikod serve"));
    assert_non_null(strstr(out, "--rest-listen ADDR:PORT"));
    assert_non_null(strstr(out, "--mcp-session-key-file FILE"));
    assert_null(strstr(out, "--adapter"));
    assert_int_equal(read_args(&c, STDIO, STDOUT_FILENO, stdio_help), -1);
    nk_config_free(&c);
    assert_non_null(strstr(out, "Usage: naftikod mcp-stdio"));
    assert_non_null(strstr(out, "--adapter NS"));
    assert_non_null(strstr(out, "--ca-file FILE"));
    assert_null(strstr(out, "--rest-listen"));
    assert_null(strstr(out, "--mcp-session-key-file"));
}

/* Print cmd's Markdown table into buf. */
static void markdown(unsigned cmd, char *buf, size_t cap)
{
    FILE *f = fmemopen(buf, cap, "w");

    assert_non_null(f);
    nk_config_markdown(cmd, f);
    assert_int_equal(fclose(f), 0);
}

/* The table is the same on every call, one row an option with five cells, the serve table as
 * docs/configuration.md holds it. */
static void test_markdown(void **state)
{
    static char a[16384], b[16384], doc[65536];
    const char *p, *line;
    FILE *f;
    size_t n, rows = 0;

    (void)state;
    markdown(SERVE, a, sizeof(a));
    markdown(SERVE, b, sizeof(b));
    assert_string_equal(a, b);
    assert_true(strncmp(a, "| flag | environment | config key | default | meaning |\n", 55) == 0);
    for (line = a; *line != '\0'; line = strchr(line, '\n') + 1) {
        size_t cells = 0;

        for (p = line; *p != '\n'; p++)
            cells += *p == '|' && (p == line || p[-1] != '\\');
        assert_int_equal(cells, 6);
        rows++;
    }
    assert_true(rows > 30);
    assert_non_null(strstr(a, "| `--timeout MS` | `NAFTIKOD_TIMEOUT_MS` | `timeout:` | 30000 |"));
    assert_non_null(strstr(a, "| `--log-format text\\|logfmt\\|json` |"));
    assert_non_null(strstr(a, "| `--var NAME=VALUE` | NAME upper-cased | `var:` (mapping"));
    assert_non_null(
        strstr(a, "| `--mcp-session-key-file FILE` | `NAFTIKOD_MCP_SESSION_KEY_FILE` | "));
    assert_null(strstr(a, "--adapter"));
    f = fopen(NK_SOURCE_DIR "/docs/configuration.md", "r");
    assert_non_null(f);
    n = fread(doc, 1, sizeof(doc) - 1, f);
    doc[n] = '\0';
    fclose(f);
    assert_non_null(strstr(doc, a));

    markdown(STDIO, b, sizeof(b));
    assert_non_null(strstr(b, "| `--adapter NS` | - | `adapter:` | the first MCP adapter |"));
    assert_null(strstr(b, "--rest-port"));
    assert_non_null(strstr(doc, b));
}

static void test_split_list(void **state)
{
    const char *words[3];
    char *copy = NULL;
    size_t n = 0;

    (void)state;
    assert_int_equal(nk_config_split_list(" a.example, b.example,,c ", &copy, words, 3, &n), NK_OK);
    assert_int_equal(n, 3);
    assert_string_equal(words[0], "a.example");
    assert_string_equal(words[2], "c");
    free(copy);
    assert_int_equal(nk_config_split_list("a,b,c,d", &copy, words, 3, &n), NK_ERR_TOO_LARGE);
    free(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_markdown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
