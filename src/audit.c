/* SPDX-License-Identifier: Apache-2.0 */
/* audit.c: the audit trail's sink (a file or the journal) and its JSON line. */
#include "naftikod/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "naftikod/authz.h"
#include "naftikod/log.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int fd = -1;
static bool journal;
static char *path; /* the file, for reopen; NULL for the journal */
static unsigned long failures;
static time_t last_warned;

static enum nk_rc open_file(const char *p, int *out, struct nk_error *err)
{
    int f = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);

    if (f < 0) {
        nk_error_set(err, "cannot open the audit log %s: %s", p, strerror(errno));
        return NK_ERR_IO;
    }
    *out = f;
    return NK_OK;
}

static enum nk_rc open_journal(int *out, struct nk_error *err)
{
    struct sockaddr_un sa;
    int f = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    if (f < 0) {
        nk_error_set(err, "cannot open a socket for the journal: %s", strerror(errno));
        return NK_ERR_IO;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", NK_AUDIT_JOURNAL_SOCKET);
    if (connect(f, (const struct sockaddr *)&sa, sizeof(sa)) != 0) {
        nk_error_set(err, "cannot reach the journal at %s: %s", NK_AUDIT_JOURNAL_SOCKET,
                     strerror(errno));
        close(f);
        return NK_ERR_IO;
    }
    *out = f;
    return NK_OK;
}

enum nk_rc nk_audit_open(const char *target, struct nk_error *err)
{
    int f = -1;
    char *p = NULL;
    bool j = strcmp(target, "journal") == 0;
    enum nk_rc rc = j ? open_journal(&f, err) : open_file(target, &f, err);

    if (rc != NK_OK)
        return rc;
    if (!j && (p = strdup(target)) == NULL) {
        close(f);
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    pthread_mutex_lock(&mu);
    if (fd >= 0)
        close(fd);
    free(path);
    fd = f;
    path = p;
    journal = j;
    pthread_mutex_unlock(&mu);
    return NK_OK;
}

enum nk_rc nk_audit_reopen(struct nk_error *err)
{
    char *p = NULL;
    int f = -1;
    enum nk_rc rc = NK_OK;

    pthread_mutex_lock(&mu);
    if (path != NULL)
        p = strdup(path);
    pthread_mutex_unlock(&mu);
    if (p == NULL)
        return NK_OK; /* the journal, or no sink */
    rc = open_file(p, &f, err);
    if (rc == NK_OK) {
        pthread_mutex_lock(&mu);
        if (fd >= 0)
            close(fd);
        fd = f;
        pthread_mutex_unlock(&mu);
    }
    free(p);
    return rc;
}

void nk_audit_close(void)
{
    pthread_mutex_lock(&mu);
    if (fd >= 0)
        close(fd);
    fd = -1;
    free(path);
    path = NULL;
    journal = false;
    pthread_mutex_unlock(&mu);
}

bool nk_audit_enabled(void)
{
    bool on;

    pthread_mutex_lock(&mu);
    on = fd >= 0;
    pthread_mutex_unlock(&mu);
    return on;
}

/* A string field; text from callers may be any bytes: made valid UTF-8 first. */
static int set_text(json_t *o, const char *key, const char *v)
{
    char buf[1024];

    if (v == NULL)
        return 0;
    nk_utf8_copy(buf, sizeof(buf), v, strlen(v));
    return json_object_set_new(o, key, json_string(buf));
}

char *nk_audit_format(const struct nk_audit_record *r)
{
    json_t *o = json_object(), *who = NULL;
    struct timespec ts;
    struct tm tm;
    char when[40];
    char *line = NULL;
    size_t n;
    int bad = 0;

    if (o == NULL)
        return NULL;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(when, sizeof(when) - 6, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03dZ", (int)(ts.tv_nsec / 1000000L) % 1000);
    bad |= set_text(o, "time", when);
    bad |= set_text(o, "request_id", r->request_id);
    if (r->caller != NULL) {
        who = json_object();
        if (who == NULL)
            goto out;
        bad |= set_text(who, "kind", nk_principal_kind_name(r->caller->kind));
        if (r->caller->name[0] != '\0')
            bad |= set_text(who, "name", r->caller->name);
        if (r->caller->client_id[0] != '\0')
            bad |= set_text(who, "client_id", r->caller->client_id);
        bad |= json_object_set_new(o, "caller", who);
    }
    bad |= set_text(o, "adapter", r->adapter);
    bad |= set_text(o, "kind", r->kind);
    bad |= set_text(o, "operation", r->operation);
    bad |= set_text(o, "decision", r->allowed ? "allow" : "deny");
    bad |= set_text(o, "rule", r->rule);
    bad |= set_text(o, "reason", r->reason);
    if (r->args != NULL)
        bad |= json_object_set_new(o, "args", json_deep_copy(r->args));
    bad |= set_text(o, "outcome", r->outcome);
    if (r->upstream_status > 0)
        bad |= json_object_set_new(o, "upstream_status", json_integer(r->upstream_status));
    bad |= json_object_set_new(o, "latency_ms",
                               json_real((double)(long long)(r->latency_ms * 10 + 0.5) / 10));
    if (bad == 0)
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
out:
    json_decref(o);
    return line;
}

void nk_audit_write(const struct nk_audit_record *r)
{
    static const char jprefix[] = "SYSLOG_IDENTIFIER=naftikod\nNAFTIKOD_AUDIT=1\nPRIORITY=5\n"
                                  "MESSAGE=";
    char *line = NULL, *msg = NULL;
    size_t n, off = 0;
    ssize_t w;
    bool failed = false;
    time_t now;

    if (!nk_audit_enabled())
        return;
    line = nk_audit_format(r);
    if (line == NULL) {
        failed = true;
        goto out;
    }
    n = strlen(line);
    msg = malloc(sizeof(jprefix) + n + 2);
    if (msg == NULL) {
        failed = true;
        goto out;
    }
    pthread_mutex_lock(&mu);
    if (journal) {
        memcpy(msg, jprefix, sizeof(jprefix) - 1);
        off = sizeof(jprefix) - 1;
    }
    memcpy(msg + off, line, n);
    msg[off + n] = '\n';
    /* One write on an O_APPEND descriptor (or one datagram): a line is never interleaved with
     * another loop's line, and never split by a rotation. A journal that cannot keep up loses
     * the record (counted, logged) rather than stalling the event loop. */
    w = fd >= 0 ? (journal ? send(fd, msg, off + n + 1, MSG_NOSIGNAL | MSG_DONTWAIT)
                           : write(fd, msg, off + n + 1))
                : -1;
    failed = fd >= 0 && w != (ssize_t)(off + n + 1);
    if (failed) {
        failures++;
        now = time(NULL);
        if (now - last_warned >= 60) {
            last_warned = now;
            nk_log(NK_LOG_ERROR, "audit: cannot write a record (%lu lost so far): %s", failures,
                   w < 0 ? strerror(errno) : "short write");
        }
    }
    pthread_mutex_unlock(&mu);
    failed = false;
out:
    if (failed)
        nk_log(NK_LOG_ERROR, "audit: out of memory writing a record");
    free(line);
    free(msg);
}

const char *nk_audit_outcome(enum nk_result_kind k)
{
    switch (k) {
    case NK_RES_OK:
        return "ok";
    case NK_RES_UPSTREAM_ERROR:
        return "upstream_error";
    case NK_RES_UNREACHABLE:
        return "unreachable";
    case NK_RES_TIMEOUT:
        return "timeout";
    case NK_RES_BAD_UPSTREAM:
        return "bad_upstream";
    case NK_RES_INTERNAL:
    default:
        return "internal";
    }
}
