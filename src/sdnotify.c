/* SPDX-License-Identifier: Apache-2.0 */
/* sdnotify.c: sd_notify(3)'s wire protocol, written from its documented behaviour: a datagram
 * with newline-separated KEY=VALUE assignments sent to the AF_UNIX socket in $NOTIFY_SOCKET. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "naftikod/sdnotify.h"

/* Fill sa from $NOTIFY_SOCKET; *len: the address length to pass to sendto. 0: unset; -1: bad. */
static int notify_address(struct sockaddr_un *sa, socklen_t *len)
{
    const char *e = getenv("NOTIFY_SOCKET");
    size_t n;

    if (e == NULL || e[0] == '\0')
        return 0;
    n = strlen(e);
    if ((e[0] != '/' && e[0] != '@') || n >= sizeof(sa->sun_path) || n < 2) {
        errno = EINVAL;
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, e, n);
    if (e[0] == '@') {
        sa->sun_path[0] = '\0'; /* abstract namespace: the name is not NUL-terminated */
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 1;
}

int nk_sd_notify(const char *state)
{
    struct sockaddr_un sa;
    socklen_t len = 0;
    ssize_t sent;
    int fd, r, saved;
    size_t n = strlen(state);

    r = notify_address(&sa, &len);
    if (r <= 0)
        return r;
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    do
        sent = sendto(fd, state, n, MSG_NOSIGNAL, (const struct sockaddr *)&sa, len);
    while (sent < 0 && errno == EINTR);
    saved = errno;
    close(fd);
    if (sent < 0 || (size_t)sent != n) {
        errno = sent < 0 ? saved : EMSGSIZE;
        return -1;
    }
    return 1;
}

int nk_sd_notify_reloading(void)
{
    struct timespec ts;
    char msg[96];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%" PRIu64,
             (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
    return nk_sd_notify(msg);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = (uint64_t)v;
    return true;
}

bool nk_sd_watchdog(uint64_t *usec)
{
    const char *pid = getenv("WATCHDOG_PID");
    uint64_t v, p;

    if (!parse_u64(getenv("WATCHDOG_USEC"), &v) || v == 0)
        return false;
    if (pid != NULL && pid[0] != '\0' && (!parse_u64(pid, &p) || p != (uint64_t)getpid()))
        return false;
    *usec = v;
    return true;
}
