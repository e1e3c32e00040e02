/* SPDX-License-Identifier: Apache-2.0 */
/* fake_http.c: recording HTTP/1.1 test server on raw sockets. */
#define _GNU_SOURCE /* memmem */
#include "fake_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    struct conn *next;
    struct fake_http *srv;
    int fd;
    unsigned id;
    pthread_t thread;
};

struct fake_http {
    int lfd;
    int stop_pipe[2];    /* written on stop: wakes every poll */
    int release_pipe[2]; /* written on release: wakes every stalled request */
    unsigned short port;
    char base[64];
    fake_handler_fn handler;
    void *ud;
    pthread_t accept_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn *conns;
    unsigned n_conns;
    struct fake_req **reqs;
    size_t n_reqs, cap_reqs;
    bool released;
};

static void die(const char *what)
{
    fprintf(stderr, "fake_http: %s: %s\n", what, strerror(errno));
    abort();
}

void fake_req_free(struct fake_req *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->n_headers; i++) {
        free(r->names[i]);
        free(r->values[i]);
    }
    free(r->names);
    free(r->values);
    free(r->target);
    free(r->body);
    free(r);
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p == NULL)
        die("malloc");
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static struct fake_req *req_copy(const struct fake_req *r)
{
    struct fake_req *c = calloc(1, sizeof(*c));
    size_t i;

    if (c == NULL)
        die("calloc");
    memcpy(c->method, r->method, sizeof(c->method));
    c->target = dupn(r->target, strlen(r->target));
    c->body = dupn(r->body, r->body_len);
    c->body_len = r->body_len;
    c->conn = r->conn;
    c->n_headers = r->n_headers;
    c->names = calloc(r->n_headers + 1, sizeof(char *));
    c->values = calloc(r->n_headers + 1, sizeof(char *));
    if (c->names == NULL || c->values == NULL)
        die("calloc");
    for (i = 0; i < r->n_headers; i++) {
        c->names[i] = dupn(r->names[i], strlen(r->names[i]));
        c->values[i] = dupn(r->values[i], strlen(r->values[i]));
    }
    return c;
}

const char *fake_req_header(const struct fake_req *r, const char *name, size_t *n)
{
    const char *first = NULL;
    size_t i, count = 0;

    for (i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->names[i], name) == 0) {
            if (first == NULL)
                first = r->values[i];
            count++;
        }
    }
    if (n != NULL)
        *n = count;
    return first;
}

/* Wait until fd is readable or the server stops. Returns 1 readable, 0 stop. */
static int wait_readable(struct fake_http *s, int fd)
{
    struct pollfd p[2];

    for (;;) {
        p[0].fd = fd;
        p[0].events = POLLIN;
        p[1].fd = s->stop_pipe[0];
        p[1].events = POLLIN;
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (p[1].revents != 0)
            return 0;
        if (p[0].revents != 0)
            return 1;
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    ssize_t w;

    while (n > 0) {
        w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Stall: wait until released, stopped, or the client closes. Returns 1 when released. */
static int stall(struct fake_http *s, int fd)
{
    struct pollfd p[3];
    char c;

    for (;;) {
        p[0].fd = fd;
        p[0].events = POLLIN;
        p[1].fd = s->stop_pipe[0];
        p[1].events = POLLIN;
        p[2].fd = s->release_pipe[0];
        p[2].events = POLLIN;
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll");
        }
        if (p[1].revents != 0)
            return 0;
        if (p[2].revents != 0)
            return 1;
        if (p[0].revents != 0 && recv(fd, &c, 1, MSG_PEEK) <= 0)
            return 0;
    }
}

static void record(struct fake_http *s, const struct fake_req *r)
{
    struct fake_req **nr;

    pthread_mutex_lock(&s->mu);
    if (s->n_reqs == s->cap_reqs) {
        s->cap_reqs = s->cap_reqs ? s->cap_reqs * 2 : 16;
        nr = realloc(s->reqs, s->cap_reqs * sizeof(*nr));
        if (nr == NULL)
            die("realloc");
        s->reqs = nr;
    }
    s->reqs[s->n_reqs++] = req_copy(r);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 302:
        return "Found";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 500:
        return "Internal Server Error";
    default:
        return "Status";
    }
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct fake_http *s = c->srv;
    char *buf = NULL, *hend, *line, *next, *colon, *v;
    size_t len = 0, cap = 0, hlen, clen, i;
    ssize_t n;
    struct fake_req r;
    struct fake_resp resp;
    char head[1024];
    int keep;

    for (;;) {
        /* Read one request head. */
        while ((hend = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL) == NULL) {
            if (len + 4096 > cap) {
                cap = cap ? cap * 2 : 8192;
                buf = realloc(buf, cap);
                if (buf == NULL)
                    die("realloc");
            }
            if (!wait_readable(s, c->fd))
                goto out;
            n = recv(c->fd, buf + len, cap - len, 0);
            if (n <= 0)
                goto out;
            len += (size_t)n;
        }
        hlen = (size_t)(hend - buf) + 4;
        memset(&r, 0, sizeof(r));
        r.conn = c->id;
        r.names = calloc(64, sizeof(char *));
        r.values = calloc(64, sizeof(char *));
        if (r.names == NULL || r.values == NULL)
            die("calloc");
        line = buf;
        next = memmem(line, hlen, "\r\n", 2);
        *next = '\0';
        if (sscanf(line, "%15s", r.method) != 1)
            goto out;
        v = strchr(line, ' ');
        v = v ? v + 1 : line;
        r.target = dupn(v, strcspn(v, " "));
        clen = 0;
        line = next + 2;
        while (line < hend && r.n_headers < 64) {
            next = memmem(line, (size_t)(hend + 2 - line), "\r\n", 2);
            *next = '\0';
            colon = strchr(line, ':');
            if (colon != NULL) {
                v = colon + 1;
                while (*v == ' ' || *v == '\t')
                    v++;
                r.names[r.n_headers] = dupn(line, (size_t)(colon - line));
                r.values[r.n_headers] = dupn(v, strlen(v));
                if (strcasecmp(r.names[r.n_headers], "Content-Length") == 0)
                    clen = strtoul(v, NULL, 10);
                r.n_headers++;
            }
            line = next + 2;
        }
        /* Read the body. */
        while (len < hlen + clen) {
            if (hlen + clen > cap) {
                cap = hlen + clen;
                buf = realloc(buf, cap);
                if (buf == NULL)
                    die("realloc");
            }
            if (!wait_readable(s, c->fd))
                goto free_r;
            n = recv(c->fd, buf + len, cap - len, 0);
            if (n <= 0)
                goto free_r;
            len += (size_t)n;
        }
        r.body = dupn(buf + hlen, clen);
        r.body_len = clen;
        memmove(buf, buf + hlen + clen, len - hlen - clen);
        len -= hlen + clen;
        record(s, &r);

        memset(&resp, 0, sizeof(resp));
        resp.status = 200;
        resp.content_type = "application/json";
        if (s->handler != NULL)
            s->handler(s->ud, &r, &resp);
        if (resp.body == NULL) {
            resp.body = dupn("{\"ok\":true}", 11);
            resp.body_len = 11;
        }
        for (i = 0; i < r.n_headers; i++) {
            free(r.names[i]);
            free(r.values[i]);
        }
        free(r.names);
        free(r.values);
        free(r.target);
        free(r.body);
        if (resp.stall && !stall(s, c->fd)) {
            free(resp.body);
            goto out;
        }
        keep = !resp.no_length;
        snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s%s%s", resp.status, reason(resp.status),
                 resp.content_type ? "Content-Type: " : "",
                 resp.content_type ? resp.content_type : "", resp.content_type ? "\r\n" : "",
                 resp.extra_headers ? resp.extra_headers : "");
        if (keep)
            snprintf(head + strlen(head), sizeof(head) - strlen(head),
                     "Content-Length: %zu\r\n\r\n", resp.body_len);
        else
            snprintf(head + strlen(head), sizeof(head) - strlen(head), "Connection: close\r\n\r\n");
        if (write_all(c->fd, head, strlen(head)) != 0 ||
            write_all(c->fd, resp.body, resp.body_len) != 0 || !keep) {
            free(resp.body);
            goto out;
        }
        free(resp.body);
        continue;
    free_r:
        for (i = 0; i < r.n_headers; i++) {
            free(r.names[i]);
            free(r.values[i]);
        }
        free(r.names);
        free(r.values);
        free(r.target);
        goto out;
    }
out:
    free(buf);
    shutdown(c->fd, SHUT_RDWR);
    return NULL;
}

static void *accept_main(void *arg)
{
    struct fake_http *s = arg;
    struct conn *c;
    int fd;

    for (;;) {
        if (!wait_readable(s, s->lfd))
            return NULL;
        fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED)
                continue;
            die("accept");
        }
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            die("calloc");
        c->srv = s;
        c->fd = fd;
        pthread_mutex_lock(&s->mu);
        c->id = ++s->n_conns;
        c->next = s->conns;
        s->conns = c;
        pthread_mutex_unlock(&s->mu);
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0)
            die("pthread_create");
    }
}

struct fake_http *fake_http_start(fake_handler_fn handler, void *ud)
{
    struct fake_http *s = calloc(1, sizeof(*s));
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int one = 1;

    if (s == NULL)
        die("calloc");
    s->handler = handler;
    s->ud = ud;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pipe(s->stop_pipe) != 0 || pipe(s->release_pipe) != 0)
        die("pipe");
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->lfd < 0)
        die("socket");
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s->lfd, 64) != 0)
        die("bind/listen");
    if (getsockname(s->lfd, (struct sockaddr *)&a, &alen) != 0)
        die("getsockname");
    s->port = ntohs(a.sin_port);
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%u", (unsigned)s->port);
    if (pthread_create(&s->accept_thread, NULL, accept_main, s) != 0)
        die("pthread_create");
    return s;
}

unsigned short fake_http_port(const struct fake_http *s)
{
    return s->port;
}

const char *fake_http_base(const struct fake_http *s)
{
    return s->base;
}

void fake_http_release(struct fake_http *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->released && write(s->release_pipe[1], "x", 1) != 1)
        die("write");
    s->released = true;
    pthread_mutex_unlock(&s->mu);
}

void fake_http_stop(struct fake_http *s)
{
    struct conn *c, *next;
    size_t i;

    if (s == NULL)
        return;
    if (write(s->stop_pipe[1], "x", 1) != 1)
        die("write");
    pthread_join(s->accept_thread, NULL);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        pthread_join(c->thread, NULL);
        close(c->fd);
        free(c);
    }
    close(s->lfd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    close(s->release_pipe[0]);
    close(s->release_pipe[1]);
    for (i = 0; i < s->n_reqs; i++)
        fake_req_free(s->reqs[i]);
    free(s->reqs);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

void fake_http_wait_requests(struct fake_http *s, size_t n)
{
    struct timespec until;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&s->mu);
    while (s->n_reqs < n && rc == 0)
        rc = pthread_cond_timedwait(&s->cv, &s->mu, &until);
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        fprintf(stderr, "fake_http: timed out waiting for %zu requests\n", n);
        abort();
    }
}

size_t fake_http_n_requests(struct fake_http *s)
{
    size_t n;

    pthread_mutex_lock(&s->mu);
    n = s->n_reqs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

struct fake_req *fake_http_request(struct fake_http *s, size_t i)
{
    struct fake_req *r = NULL;

    pthread_mutex_lock(&s->mu);
    if (i < s->n_reqs)
        r = req_copy(s->reqs[i]);
    pthread_mutex_unlock(&s->mu);
    return r;
}

unsigned fake_http_n_connections(struct fake_http *s)
{
    unsigned n;

    pthread_mutex_lock(&s->mu);
    n = s->n_conns;
    pthread_mutex_unlock(&s->mu);
    return n;
}

unsigned short fake_unused_port(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        die("socket");
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0)
        die("bind");
    close(fd);
    return ntohs(a.sin_port);
}
