/* SPDX-License-Identifier: Apache-2.0 */
/* test_sdnotify.c: the sd_notify datagrams, received on a socket of the test's own (a path and
 * an abstract name), MONOTONIC_USEC, the no-socket no-op, malformed names, and the watchdog
 * environment (WATCHDOG_USEC, WATCHDOG_PID). */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "naftikod/sdnotify.h"

struct listener {
    int fd;
    char path[108];
};

/* Bind a datagram socket: name starting with '@' is abstract, else a path in a temp dir. */
static void listen_on(struct listener *l, bool abstract)
{
    struct sockaddr_un sa;
    socklen_t len;
    char env[120];
    struct timeval tv = {5, 0};

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    l->fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    assert_true(l->fd >= 0);
    if (abstract) {
        snprintf(l->path, sizeof(l->path), "@nk-test-sdnotify-%ld", (long)getpid());
        memcpy(sa.sun_path, l->path, strlen(l->path));
        sa.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(l->path));
    } else {
        snprintf(l->path, sizeof(l->path), "/tmp/nk-test-sdnotify-%ld.sock", (long)getpid());
        unlink(l->path);
        memcpy(sa.sun_path, l->path, strlen(l->path) + 1);
        len = (socklen_t)sizeof(sa);
    }
    assert_int_equal(bind(l->fd, (struct sockaddr *)&sa, len), 0);
    /* Bounded: a datagram that never arrives fails the test after 5 s instead of hanging. */
    assert_int_equal(setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    snprintf(env, sizeof(env), "%s", l->path);
    assert_int_equal(setenv("NOTIFY_SOCKET", env, 1), 0);
}

static void close_listener(struct listener *l)
{
    close(l->fd);
    if (l->path[0] == '/')
        unlink(l->path);
    unsetenv("NOTIFY_SOCKET");
}

static void receive(struct listener *l, char *buf, size_t cap)
{
    ssize_t n = recv(l->fd, buf, cap - 1, 0);

    assert_true(n > 0);
    buf[n] = '\0';
}

static void test_path_socket(void **state)
{
    struct listener l;
    char buf[256];

    (void)state;
    listen_on(&l, false);
    assert_int_equal(nk_sd_notify("READY=1"), 1);
    receive(&l, buf, sizeof(buf));
    assert_string_equal(buf, "READY=1");
    assert_int_equal(nk_sd_notify("STOPPING=1"), 1);
    receive(&l, buf, sizeof(buf));
    assert_string_equal(buf, "STOPPING=1");
    close_listener(&l);
}

static void test_abstract_socket(void **state)
{
    struct listener l;
    char buf[256];

    (void)state;
    listen_on(&l, true);
    assert_int_equal(nk_sd_notify("WATCHDOG=1"), 1);
    receive(&l, buf, sizeof(buf));
    assert_string_equal(buf, "WATCHDOG=1");
    close_listener(&l);
}

static void test_reloading_has_monotonic_usec(void **state)
{
    struct listener l;
    char buf[256];
    struct timespec ts;
    uint64_t before, after, got;
    char *end = NULL;

    (void)state;
    listen_on(&l, false);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    before = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    assert_int_equal(nk_sd_notify_reloading(), 1);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    after = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    receive(&l, buf, sizeof(buf));
    assert_true(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0);
    got = strtoull(buf + 27, &end, 10);
    assert_true(*end == '\0');
    assert_true(got >= before && got <= after);
    close_listener(&l);
}

static void test_no_socket_is_a_noop(void **state)
{
    (void)state;
    unsetenv("NOTIFY_SOCKET");
    assert_int_equal(nk_sd_notify("READY=1"), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    assert_int_equal(nk_sd_notify("READY=1"), 0);
    unsetenv("NOTIFY_SOCKET");
}

static void test_bad_socket_names(void **state)
{
    (void)state;
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    errno = 0;
    assert_int_equal(nk_sd_notify("READY=1"), -1);
    assert_int_equal(errno, EINVAL);
    /* A path nobody listens on: the send fails, it is not silently "sent". */
    setenv("NOTIFY_SOCKET", "/nonexistent-dir-nk/notify.sock", 1);
    assert_int_equal(nk_sd_notify("READY=1"), -1);
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_env(void **state)
{
    uint64_t usec = 0;
    char pid[32];

    (void)state;
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    assert_false(nk_sd_watchdog(&usec));
    setenv("WATCHDOG_USEC", "3000000", 1);
    assert_true(nk_sd_watchdog(&usec));
    assert_int_equal(usec, 3000000);
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    assert_true(nk_sd_watchdog(&usec));
    snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    assert_false(nk_sd_watchdog(&usec)); /* meant for another process */
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "0", 1);
    assert_false(nk_sd_watchdog(&usec));
    setenv("WATCHDOG_USEC", "12x", 1);
    assert_false(nk_sd_watchdog(&usec));
    setenv("WATCHDOG_USEC", "-5", 1);
    assert_false(nk_sd_watchdog(&usec));
    unsetenv("WATCHDOG_USEC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_socket),
        cmocka_unit_test(test_abstract_socket),
        cmocka_unit_test(test_reloading_has_monotonic_usec),
        cmocka_unit_test(test_no_socket_is_a_noop),
        cmocka_unit_test(test_bad_socket_names),
        cmocka_unit_test(test_watchdog_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
