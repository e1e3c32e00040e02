/* SPDX-License-Identifier: Apache-2.0 */
/* cmd_probe.c: naftikod probe [URL]: one HTTP/1.0 GET for a container HEALTHCHECK (no curl in
 * the image); exit 0 on a 2xx answer, 1 otherwise, 2 on a usage error. */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "naftikod/cmd.h"

#define PROBE_DEFAULT_URL "http://127.0.0.1:8091/healthz"
#define PROBE_TIMEOUT_S 5

static const char probe_usage[] =
    "Usage: naftikod probe [URL]\n"
    "\n"
    "Send one GET to URL (default " PROBE_DEFAULT_URL ", the ops listener's\n"
    "liveness endpoint) and exit 0 when the answer is 2xx, 1 when it is not or nothing\n"
    "answers within 5 seconds, 2 on a usage error. Only http:// URLs; for a container's\n"
    "HEALTHCHECK, where the image has no curl.\n";

struct probe_url {
    char host[256]; /* without the brackets of an IPv6 literal */
    char port[8];
    const char *path; /* borrowed from the argument; "/" when the URL has none */
};

/* Splits http://HOST[:PORT][/PATH]; false when it is not such a URL. */
static bool parse_url(const char *url, struct probe_url *u)
{
    const char *p, *host_end, *path;
    size_t n;

    if (strncmp(url, "http://", 7) != 0)
        return false;
    p = url + 7;
    path = strchr(p, '/');
    if (path == NULL)
        path = p + strlen(p);
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(path - p));
        if (host_end == NULL)
            return false;
        n = (size_t)(host_end - p - 1);
        if (n == 0 || n >= sizeof(u->host))
            return false;
        memcpy(u->host, p + 1, n);
        p = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(path - p));
        if (host_end == NULL)
            host_end = path;
        n = (size_t)(host_end - p);
        if (n == 0 || n >= sizeof(u->host))
            return false;
        memcpy(u->host, p, n);
        p = host_end;
    }
    u->host[n] = '\0';
    if (*p == ':') {
        n = (size_t)(path - p - 1);
        if (n == 0 || n >= sizeof(u->port) || strspn(p + 1, "0123456789") < n)
            return false;
        memcpy(u->port, p + 1, n);
        u->port[n] = '\0';
    } else if (p == path) {
        strcpy(u->port, "80");
    } else {
        return false;
    }
    u->path = *path == '\0' ? "/" : path;
    /* The path goes into the request line as is: no spaces or control characters. */
    for (p = u->path; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

/* Connects to the first address that accepts; -1 when none does. */
static int connect_to(const struct probe_url *u)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct timeval tv = {PROBE_TIMEOUT_S, 0};
    int fd = -1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "naftikod probe: %s: %s\n", u->host, gai_strerror(rc));
        goto out;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        /* On Linux SO_SNDTIMEO bounds connect() too, SO_RCVTIMEO each read. */
        if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
            connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            goto out;
        close(fd);
        fd = -1;
    }
    fprintf(stderr, "naftikod probe: cannot connect to %s port %s: %s\n", u->host, u->port,
            strerror(errno));
out:
    if (res != NULL)
        freeaddrinfo(res);
    return fd;
}

/* Sends the request and reads the status line; the status code, or -1. */
static int exchange(int fd, const struct probe_url *u)
{
    char req[1024], head[64];
    size_t have = 0, sent = 0, len;
    ssize_t n;
    int code = -1, w;

    w = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: naftikod-probe\r\n\r\n", u->path,
                 u->host);
    if (w < 0 || (size_t)w >= sizeof(req)) {
        fputs("naftikod probe: URL too long\n", stderr);
        return -1;
    }
    len = (size_t)w;
    while (sent < len) {
        n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "naftikod probe: send: %s\n", strerror(errno));
            return -1;
        }
        sent += (size_t)n;
    }
    /* "HTTP/1.x NNN" is all that is needed. */
    while (have < 12) {
        n = recv(fd, head + have, sizeof(head) - 1 - have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    head[have] = '\0';
    if (have >= 12 && strncmp(head, "HTTP/1.", 7) == 0 && head[8] == ' ' &&
        strspn(head + 9, "0123456789") >= 3)
        code = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    else
        fputs("naftikod probe: no HTTP answer\n", stderr);
    return code;
}

int nk_cmd_probe(int argc, char **argv)
{
    struct probe_url u;
    const char *url = PROBE_DEFAULT_URL;
    int fd, code;

    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(probe_usage, stdout);
        return 0;
    }
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fputs(probe_usage, stderr);
        return 2;
    }
    if (argc == 2)
        url = argv[1];
    memset(&u, 0, sizeof(u));
    if (!parse_url(url, &u)) {
        fprintf(stderr, "naftikod probe: not an http://HOST[:PORT][/PATH] URL: %s\n", url);
        return 2;
    }
    fd = connect_to(&u);
    if (fd < 0)
        return 1;
    code = exchange(fd, &u);
    close(fd);
    if (code >= 200 && code <= 299)
        return 0;
    if (code > 0)
        fprintf(stderr, "naftikod probe: %s answered %d\n", url, code);
    return 1;
}
