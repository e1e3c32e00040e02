/* SPDX-License-Identifier: Apache-2.0 */
/* demo_central.c: naftikod-demo-central, a stand-in for StackRox Central (demo and test double). */

/*
 * What it mimics is Central's REST face: grpc-gateway routing in front of the gRPC service, so
 * routing errors (404/501) and query/body decoding errors (400) come before authentication, and
 * authentication/authorisation errors (401/403) come before the service's own checks. Every
 * message below is Central's text where it is known; docs/central-double.md lists the few that
 * are educated guesses. The double also records each request so tests can assert exactly what
 * reached "Central", and can inject faults. See docs/central-double.md.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#define DOUBLE_NAME "naftikod-demo-central"
#define RING_CAP 1000
#define MAX_BODY (4u * 1024u * 1024u) /* gRPC's default receive limit */
#define HUGE_SIZE (64u * 1024u * 1024u)
#define TOKEN_LIFETIME (365L * 24L * 3600L)
#define MAX_SEGMENTS 16
#define CONNECTION_LIMIT 10000u
#define THREAD_STACK (512u * 1024u)

/* gRPC status codes used here. */
enum grpc_code {
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_NOT_FOUND = 5,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAUTHENTICATED = 16
};

enum access { ACCESS_NONE = 0, ACCESS_READ = 1, ACCESS_RW = 2 };

enum fault_mode {
    FAULT_NONE = 0,
    FAULT_STALL,
    FAULT_RESET,
    FAULT_HUGE,
    FAULT_INVALID_JSON,
    FAULT_HTML_ERROR,
    FAULT_BIG,
    FAULT_STATUS,
    FAULT_DRIP
};

static const char *const fault_names[] = {"none",       "stall", "reset",  "huge", "invalid-json",
                                          "html-error", "big",   "status", "drip"};

#define BIG_MAX (256u * 1024u * 1024u)

static const char *const default_roles[] = {
    "Admin", "Analyst",        "Continuous Integration",
    "None",  "Sensor Creator", "Vulnerability Report Creator"};

/* A credential given on the command line or in the environment. */
struct cred {
    char *value; /* owned */
    bool readonly;
};

/* One issued API token. */
struct token {
    char id[37];
    char *name;   /* owned */
    char *secret; /* owned; the string handed out by generate, usable as a credential */
    char **roles; /* owned, nroles owned strings */
    size_t nroles;
    time_t issued;
    time_t expires;
    bool revoked;
};

struct fault {
    enum fault_mode mode;
    unsigned seconds;  /* stall length */
    unsigned ms;       /* stall length in milliseconds (from seconds, or "ms") */
    long remaining;    /* requests the mode still applies to; -1 = until changed */
    double fail_ratio; /* 0..1 of API calls answered 500 */
    unsigned long long calls;
    unsigned long long failed;
    size_t bytes;       /* big, drip: size of the array to answer */
    size_t piece;       /* drip: bytes per piece */
    bool hold;          /* drip: hold the rest after the first piece until released */
    unsigned status;    /* status: the status to answer */
    char ctype[128];    /* status: its Content-Type */
    char location[512]; /* status: its Location, or "" */
    char body[4096];    /* status: its body */
};

struct server {
    pthread_mutex_t lock; /* guards tokens, fault */
    struct token **tokens;
    size_t ntokens;
    size_t captokens;
    struct fault fault;

    pthread_mutex_t ring_lock; /* guards the request ring */
    json_t *ring[RING_CAP];
    size_t ring_head;
    size_t ring_len;
    unsigned long long seq;

    pthread_mutex_t stop_lock; /* guards stopping; stop_cond wakes stalled requests */
    pthread_cond_t stop_cond;
    bool stopping;
    /* the last drip answer (under stop_lock; stop_cond also wakes a held drip) */
    struct {
        size_t sent;   /* bytes handed to the connection */
        bool released; /* POST /__double/faults/release came */
        bool done;     /* the whole body went out */
        bool aborted;  /* the connection ended before the whole body went out */
    } drip;

    /* Read-only after start-up. */
    struct cred *creds;
    size_t ncreds;
    char **roles;
    size_t nroles;
    bool log_requests;
    bool split_encoded_slash;
};

/* Per-request state, created by the URI log callback, freed by the completion callback. */
struct request {
    char *uri; /* owned; the request-target exactly as received */
    char *body;
    size_t body_len;
    size_t body_cap;
    size_t body_total; /* bytes received, including any beyond MAX_BODY */
    bool seen;         /* the access handler ran once (headers complete) */
    unsigned status;   /* for the log line */
};

/* The caller as authenticated from its Authorization header. */
struct identity {
    enum access integration; /* resource "Integration" (API tokens) */
    enum access access;      /* resource "Access" (roles) */
};

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void format_time(time_t t, char out[32])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "1970-01-01T00:00:00Z");
}

/* A JSON string from arbitrary bytes: invalid UTF-8 becomes U+FFFD. New reference or NULL. */
static json_t *json_str_lossy(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    char *buf = NULL;
    size_t i = 0, o = 0;
    if (j || !s)
        return j;
    buf = malloc(n * 3 + 1);
    if (!buf)
        return NULL;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        json_t *probe = NULL;
        if (c != 0 && len > 0 && i + len <= n)
            probe = json_stringn(s + i, len);
        if (probe) {
            json_decref(probe);
            memcpy(buf + o, s + i, len);
            o += len;
            i += len;
        } else {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

/* Go's strconv.Quote, close enough for error messages. Caller frees. */
static char *go_quote(const char *s)
{
    size_t n = strlen(s), o = 0;
    char *out = malloc(n * 4 + 3);
    if (!out)
        return NULL;
    out[o++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            memcpy(out + o, "\\n", 2);
            o += 2;
        } else if (c == '\t') {
            memcpy(out + o, "\\t", 2);
            o += 2;
        } else if (c == '\r') {
            memcpy(out + o, "\\r", 2);
            o += 2;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)sprintf(out + o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum decode_rc { DECODE_OK = 0, DECODE_BAD_ESCAPE, DECODE_NUL, DECODE_NOMEM };

/*
 * Percent-decode s[0..n) like Go's url.PathUnescape (plus_space false) or QueryUnescape
 * (plus_space true). On DECODE_BAD_ESCAPE, bad (>= 4 bytes) receives the offending escape as Go
 * reports it. *out is a new string the caller frees.
 */
static enum decode_rc percent_decode(const char *s, size_t n, bool plus_space, char **out,
                                     char bad[4])
{
    char *p = malloc(n + 1);
    size_t i, o = 0;
    if (!p)
        return DECODE_NOMEM;
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                size_t k = n - i < 3 ? n - i : 3;
                memcpy(bad, s + i, k);
                bad[k] = '\0';
                free(p);
                return DECODE_BAD_ESCAPE;
            }
            if (hi == 0 && lo == 0) {
                free(p);
                return DECODE_NUL;
            }
            p[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus_space && s[i] == '+') {
            p[o++] = ' ';
        } else {
            p[o++] = s[i];
        }
    }
    p[o] = '\0';
    *out = p;
    return DECODE_OK;
}

static bool fill_random(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool make_uuid(char out[37])
{
    unsigned char b[16];
    char hex[33];
    if (!fill_random(b, sizeof b))
        return false;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    hex_encode(b, sizeof b, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return true;
}

static bool is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool digits(const char *s, int n, int *v)
{
    int i, acc = 0;
    for (i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        acc = acc * 10 + (s[i] - '0');
    }
    *v = acc;
    return true;
}

/* RFC 3339 (as protojson accepts google.protobuf.Timestamp); sub-seconds are dropped. */
static bool parse_rfc3339(const char *s, time_t *out)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0, dim;
    const char *p = s + 19;
    struct tm tm;
    time_t t;
    if (strlen(s) < 20 || !digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) ||
        s[7] != '-' || !digits(s + 8, 2, &D) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &m) || s[16] != ':' || !digits(s + 17, 2, &sec))
        return false;
    if (*p == '.') {
        int nd = 0;
        for (p++; isdigit((unsigned char)*p); p++)
            nd++;
        if (nd == 0 || nd > 9)
            return false;
    }
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        p += 6;
    } else {
        return false;
    }
    if (*p != '\0' || Y < 1 || M < 1 || M > 12 || h > 23 || m > 59 || sec > 59)
        return false;
    dim = mdays[M - 1] + (M == 2 && is_leap(Y) ? 1 : 0);
    if (D < 1 || D > dim)
        return false;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    t = timegm(&tm);
    *out = t - (time_t)sign * (oh * 3600 + om * 60);
    return true;
}

/* Go's strconv.ParseBool spellings. Returns false when s is not one of them. */
static bool parse_go_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const no[] = {"0", "f", "F", "FALSE", "false", "False"};
    size_t i;
    for (i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(s, yes[i]) == 0) {
            *v = true;
            return true;
        }
        if (strcmp(s, no[i]) == 0) {
            *v = false;
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Responses */

static unsigned http_status_for(int code)
{
    /* grpc-gateway's HTTPStatusFromCode. */
    switch (code) {
    case 0:
        return 200;
    case 1:
        return 499;
    case 3:
    case 9:
    case 11:
        return 400;
    case 4:
        return 504;
    case 5:
        return 404;
    case 6:
    case 10:
        return 409;
    case 7:
        return 403;
    case 8:
        return 429;
    case 12:
        return 501;
    case 14:
        return 503;
    case 16:
        return 401;
    default:
        return 500;
    }
}

static void log_line(const struct server *srv, const char *method, const struct request *rq)
{
    if (srv->log_requests)
        fprintf(stderr, "%s: %s %s -> %u\n", DOUBLE_NAME, method, rq->uri ? rq->uri : "?",
                rq->status);
}

/* Queue body (steals it, malloc'd) with the given status and content type. */
static enum MHD_Result send_body(struct MHD_Connection *c, struct request *rq, unsigned status,
                                 const char *ctype, char *body, size_t len, const char *www_auth,
                                 bool close)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (www_auth)
        MHD_add_response_header(resp, "WWW-Authenticate", www_auth);
    if (close)
        MHD_add_response_header(resp, "Connection", "close");
    rq->status = status;
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Queue j (steals the reference) as compact JSON. */
static enum MHD_Result send_json(struct MHD_Connection *c, struct request *rq, unsigned status,
                                 json_t *j, const char *www_auth)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    if (!text) {
        text = strdup("{\"code\":13,\"message\":\"out of memory\",\"details\":[],"
                      "\"error\":\"out of memory\"}");
        if (!text)
            return MHD_NO;
        status = 500;
    }
    return send_body(c, rq, status, "application/json", text, strlen(text), www_auth, false);
}

/* Central's error body: {"code","message","details","error"}; 401s carry WWW-Authenticate. */
static enum MHD_Result send_error(struct MHD_Connection *c, struct request *rq, int code,
                                  const char *msg)
{
    json_t *j = json_object();
    json_t *m = json_str_lossy(msg, strlen(msg));
    if (j && m) {
        json_object_set_new(j, "code", json_integer(code));
        json_object_set(j, "message", m);
        json_object_set_new(j, "details", json_array());
        json_object_set(j, "error", m);
    }
    json_decref(m);
    /* grpc-gateway puts the status message into WWW-Authenticate for Unauthenticated. */
    return send_json(c, rq, http_status_for(code), j, code == GRPC_UNAUTHENTICATED ? msg : NULL);
}

static enum MHD_Result send_errorf(struct MHD_Connection *c, struct request *rq, int code,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum MHD_Result send_errorf(struct MHD_Connection *c, struct request *rq, int code,
                                   const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return send_error(c, rq, code, buf);
}

/* ---------------------------------------------------------------------------------------- */
/* Token state (call with srv->lock held) */

static void token_free(struct token *t)
{
    size_t i;
    if (!t)
        return;
    free(t->name);
    free(t->secret);
    for (i = 0; i < t->nroles; i++)
        free(t->roles[i]);
    free(t->roles);
    free(t);
}

static struct token *find_token_by_id(struct server *srv, const char *id)
{
    size_t i;
    for (i = 0; i < srv->ntokens; i++)
        if (strcmp(srv->tokens[i]->id, id) == 0)
            return srv->tokens[i];
    return NULL;
}

static struct token *find_token_by_secret(struct server *srv, const char *secret)
{
    size_t i;
    for (i = 0; i < srv->ntokens; i++)
        if (strcmp(srv->tokens[i]->secret, secret) == 0)
            return srv->tokens[i];
    return NULL;
}

/* storage.TokenMetadata in proto field order, zero values included. New reference. */
static json_t *token_json(const struct token *t)
{
    char issued[32], expires[32];
    json_t *j = json_object(), *roles = json_array();
    size_t i;
    if (!j || !roles) {
        json_decref(j);
        json_decref(roles);
        return NULL;
    }
    format_time(t->issued, issued);
    format_time(t->expires, expires);
    for (i = 0; i < t->nroles; i++)
        json_array_append_new(roles, json_string(t->roles[i]));
    json_object_set_new(j, "id", json_string(t->id));
    json_object_set_new(j, "name", json_string(t->name));
    json_object_set_new(j, "roles", roles);
    json_object_set_new(j, "issuedAt", json_string(issued));
    json_object_set_new(j, "expiration", json_string(expires));
    json_object_set_new(j, "revoked", json_boolean(t->revoked));
    json_object_set_new(j, "role", json_string(t->nroles == 1 ? t->roles[0] : ""));
    return j;
}

/* ---------------------------------------------------------------------------------------- */
/* Request recording */

struct header_walk {
    json_t *headers;
    json_t *auth;
};

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct header_walk *w = cls;
    json_t *pair = json_array();
    (void)kind;
    if (!pair)
        return MHD_NO;
    json_array_append_new(pair, json_str_lossy(key, strlen(key)));
    json_array_append_new(pair, json_str_lossy(value ? value : "", value ? strlen(value) : 0));
    json_array_append_new(w->headers, pair);
    if (strcasecmp(key, "Authorization") == 0)
        json_array_append_new(w->auth,
                              json_str_lossy(value ? value : "", value ? strlen(value) : 0));
    return MHD_YES;
}

static void record_request(struct server *srv, struct MHD_Connection *c, const char *method,
                           const char *version, const struct request *rq, const char *path,
                           size_t path_len, const char *query)
{
    json_t *e = json_object();
    struct header_walk w = {json_array(), json_array()};
    if (!e || !w.headers || !w.auth) {
        json_decref(e);
        json_decref(w.headers);
        json_decref(w.auth);
        return;
    }
    MHD_get_connection_values(c, MHD_HEADER_KIND, collect_header, &w);
    json_object_set_new(e, "seq", json_integer(0));
    json_object_set_new(e, "method", json_string(method));
    json_object_set_new(e, "uri", json_str_lossy(rq->uri, strlen(rq->uri)));
    json_object_set_new(e, "path", json_str_lossy(path, path_len));
    json_object_set_new(e, "query", query ? json_str_lossy(query, strlen(query)) : json_null());
    json_object_set_new(e, "version", json_string(version ? version : ""));
    json_object_set_new(e, "headers", w.headers);
    json_object_set_new(e, "authorization", w.auth);
    {
        json_t *body = rq->body_len > 0 ? json_stringn(rq->body, rq->body_len) : json_string("");
        if (body) {
            json_object_set_new(e, "body", body);
        } else {
            /* Not UTF-8: keep it lossless as hex. */
            char *hex = malloc(rq->body_len * 2 + 1);
            json_object_set_new(e, "body", json_null());
            if (hex) {
                hex_encode((const unsigned char *)rq->body, rq->body_len, hex);
                json_object_set_new(e, "body_hex", json_string(hex));
                free(hex);
            }
        }
    }
    json_object_set_new(e, "body_size", json_integer((json_int_t)rq->body_total));
    json_object_set_new(e, "body_truncated", json_boolean(rq->body_total > rq->body_len));

    pthread_mutex_lock(&srv->ring_lock);
    json_object_set_new(e, "seq", json_integer((json_int_t)++srv->seq));
    if (srv->ring_len == RING_CAP) {
        json_decref(srv->ring[srv->ring_head]);
        srv->ring[srv->ring_head] = e;
        srv->ring_head = (srv->ring_head + 1) % RING_CAP;
    } else {
        srv->ring[(srv->ring_head + srv->ring_len) % RING_CAP] = e;
        srv->ring_len++;
    }
    pthread_mutex_unlock(&srv->ring_lock);
}

/* ---------------------------------------------------------------------------------------- */
/* Query strings, the way Go's url.ParseQuery and grpc-gateway read them */

struct query_pair {
    char *key;
    char *value;
};

struct query {
    struct query_pair *v;
    size_t n;
};

static void query_cleanup(struct query *q)
{
    size_t i;
    for (i = 0; i < q->n; i++) {
        free(q->v[i].key);
        free(q->v[i].value);
    }
    free(q->v);
    q->v = NULL;
    q->n = 0;
}

/* Returns NULL on success, else a message (static or in errbuf) that Go's ParseForm gives. */
static const char *query_parse(const char *raw, struct query *q, char *errbuf, size_t errlen)
{
    const char *p = raw, *err = NULL;
    if (!raw)
        return NULL;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        const char *semi = memchr(p, ';', len);
        char *key = NULL, *value = NULL, bad[4];
        enum decode_rc rc = DECODE_OK;
        if (semi) {
            if (!err)
                err = "invalid semicolon separator in query";
        } else if (len > 0) {
            size_t klen = eq ? (size_t)(eq - p) : len;
            rc = percent_decode(p, klen, true, &key, bad);
            if (rc == DECODE_OK) {
                rc = eq ? percent_decode(eq + 1, len - klen - 1, true, &value, bad)
                        : percent_decode("", 0, true, &value, bad);
            }
            if (rc == DECODE_OK) {
                struct query_pair *nv = realloc(q->v, (q->n + 1) * sizeof *nv);
                if (nv) {
                    q->v = nv;
                    q->v[q->n].key = key;
                    q->v[q->n].value = value;
                    q->n++;
                    key = value = NULL;
                } else if (!err) {
                    err = "out of memory";
                }
            } else if (!err) {
                if (rc == DECODE_BAD_ESCAPE) {
                    snprintf(errbuf, errlen, "invalid URL escape \"%s\"", bad);
                    err = errbuf;
                } else if (rc == DECODE_NUL) {
                    err = "invalid NUL byte in query";
                } else {
                    err = "out of memory";
                }
            }
            free(key);
            free(value);
        }
        p += len;
        if (*p == '&')
            p++;
    }
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* Authentication and authorisation */

struct auth_walk {
    unsigned count;
    const char *value;
};

static enum MHD_Result find_auth(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct auth_walk *w = cls;
    (void)kind;
    if (strcasecmp(key, "Authorization") == 0) {
        w->count++;
        w->value = value;
    }
    return MHD_YES;
}

static void roles_to_identity(char *const *roles, size_t n, struct identity *id)
{
    size_t i;
    id->integration = id->access = ACCESS_NONE;
    for (i = 0; i < n; i++) {
        if (strcmp(roles[i], "Admin") == 0) {
            id->integration = id->access = ACCESS_RW;
            return;
        }
        if (strcmp(roles[i], "Analyst") == 0)
            id->integration = id->access = ACCESS_READ;
    }
}

/* Returns NULL and fills id, or returns the 401 message. */
static const char *authenticate(struct server *srv, struct MHD_Connection *c, struct identity *id)
{
    struct auth_walk w = {0, NULL};
    const char *tok;
    const char *err = NULL;
    size_t i;
    time_t now = time(NULL);
    struct token *t;

    MHD_get_connection_values(c, MHD_HEADER_KIND, find_auth, &w);
    /* Central reads exactly one Authorization value, scheme "Bearer " in any case. */
    if (w.count != 1 || !w.value || strlen(w.value) < 7 || strncasecmp(w.value, "Bearer ", 7) != 0)
        return "credentials not found";
    tok = w.value + 7;
    if (*tok == '\0')
        return "credentials not found";
    for (i = 0; i < srv->ncreds; i++) {
        if (strcmp(srv->creds[i].value, tok) == 0) {
            id->integration = id->access = srv->creds[i].readonly ? ACCESS_READ : ACCESS_RW;
            return NULL;
        }
    }
    /* Tokens this double issued authenticate too, with their roles, until revoked/expired. */
    pthread_mutex_lock(&srv->lock);
    t = find_token_by_secret(srv, tok);
    if (!t || t->revoked || t->expires <= now)
        err = "credentials not found: token validation failed";
    else if (t->nroles == 0)
        err = "access for this user is not authorized: no valid role, please contact your system "
              "administrator";
    else
        roles_to_identity(t->roles, t->nroles, id);
    pthread_mutex_unlock(&srv->lock);
    return err;
}

/* The authorizer's message for a missing permission, or NULL when allowed. */
static bool permitted(enum access have, enum access need)
{
    return have >= need;
}

static const char *access_name(enum access a)
{
    return a == ACCESS_RW ? "READ_WRITE_ACCESS" : "READ_ACCESS";
}

static enum MHD_Result send_denied(struct MHD_Connection *c, struct request *rq, enum access need,
                                   const char *resource)
{
    return send_errorf(c, rq, GRPC_PERMISSION_DENIED, "not authorized: \"%s\" for \"%s\"",
                       access_name(need), resource);
}

/* ---------------------------------------------------------------------------------------- */
/* The APITokenService */

static enum MHD_Result op_list(struct server *srv, struct MHD_Connection *c, struct request *rq,
                               const struct query *q)
{
    const char *vals[64];
    size_t nvals = 0, i;
    bool have_filter = false, want = false;
    json_t *tokens, *resp;
    struct identity id;
    const char *autherr;

    for (i = 0; i < q->n; i++)
        if (strcmp(q->v[i].key, "revoked") == 0 && nvals < 64)
            vals[nvals++] = q->v[i].value;
    if (nvals > 1) {
        char msg[1024];
        size_t off = (size_t)snprintf(msg, sizeof msg, "too many values for field \"revoked\": ");
        for (i = 0; i < nvals && off < sizeof msg; i++)
            off += (size_t)snprintf(msg + off, sizeof msg - off, "%s%s", i ? ", " : "", vals[i]);
        return send_error(c, rq, GRPC_INVALID_ARGUMENT, msg);
    }
    if (nvals == 1) {
        if (!parse_go_bool(vals[0], &want)) {
            char *quoted = go_quote(vals[0]);
            enum MHD_Result r = send_errorf(
                c, rq, GRPC_INVALID_ARGUMENT,
                "parsing field \"revoked\": strconv.ParseBool: parsing %s: invalid syntax",
                quoted ? quoted : "\"\"");
            free(quoted);
            return r;
        }
        have_filter = true;
    }

    if ((autherr = authenticate(srv, c, &id)) != NULL)
        return send_error(c, rq, GRPC_UNAUTHENTICATED, autherr);
    if (!permitted(id.integration, ACCESS_READ))
        return send_denied(c, rq, ACCESS_READ, "Integration");

    tokens = json_array();
    resp = json_object();
    if (!tokens || !resp) {
        json_decref(tokens);
        json_decref(resp);
        return send_error(c, rq, GRPC_INTERNAL, "out of memory");
    }
    pthread_mutex_lock(&srv->lock);
    for (i = 0; i < srv->ntokens; i++)
        if (!have_filter || srv->tokens[i]->revoked == want)
            json_array_append_new(tokens, token_json(srv->tokens[i]));
    pthread_mutex_unlock(&srv->lock);
    json_object_set_new(resp, "tokens", tokens);
    return send_json(c, rq, 200, resp, NULL);
}

static enum MHD_Result op_get(struct server *srv, struct MHD_Connection *c, struct request *rq,
                              const char *id_str)
{
    struct identity id;
    const char *autherr;
    struct token *t;
    json_t *j = NULL;

    if ((autherr = authenticate(srv, c, &id)) != NULL)
        return send_error(c, rq, GRPC_UNAUTHENTICATED, autherr);
    if (!permitted(id.integration, ACCESS_READ))
        return send_denied(c, rq, ACCESS_READ, "Integration");
    if (*id_str == '\0')
        return send_error(c, rq, GRPC_INVALID_ARGUMENT, "empty id passed: invalid arguments");
    pthread_mutex_lock(&srv->lock);
    t = find_token_by_id(srv, id_str);
    if (t)
        j = token_json(t);
    pthread_mutex_unlock(&srv->lock);
    if (!t)
        return send_errorf(c, rq, GRPC_INVALID_ARGUMENT,
                           "token with id '%s' does not exist: invalid arguments", id_str);
    if (!j)
        return send_error(c, rq, GRPC_INTERNAL, "out of memory");
    return send_json(c, rq, 200, j, NULL);
}

static enum MHD_Result op_revoke(struct server *srv, struct MHD_Connection *c, struct request *rq,
                                 const char *id_str)
{
    struct identity id;
    const char *autherr;
    struct token *t;

    if ((autherr = authenticate(srv, c, &id)) != NULL)
        return send_error(c, rq, GRPC_UNAUTHENTICATED, autherr);
    if (!permitted(id.integration, ACCESS_RW))
        return send_denied(c, rq, ACCESS_RW, "Integration");
    pthread_mutex_lock(&srv->lock);
    t = find_token_by_id(srv, id_str);
    if (t)
        t->revoked = true; /* revoking twice is fine: 200 {} */
    pthread_mutex_unlock(&srv->lock);
    if (!t)
        return send_errorf(c, rq, GRPC_INTERNAL, "token with id '%s' does not exist", id_str);
    return send_json(c, rq, 200, json_object(), NULL);
}

static bool known_role(const struct server *srv, const char *name)
{
    size_t i;
    for (i = 0; i < srv->nroles; i++)
        if (strcmp(srv->roles[i], name) == 0)
            return true;
    return false;
}

/* The decoded GenerateTokenRequest. */
struct gen_req {
    const char *name;
    const char *role;
    json_t *roles; /* borrowed array or NULL */
    bool has_expiration;
    time_t expiration;
};

/* protojson-like decoding of the body; returns NULL or a message for a 400. */
static const char *decode_generate(json_t *body, struct gen_req *g, char *buf, size_t len)
{
    const char *key;
    json_t *v;
    memset(g, 0, sizeof *g);
    if (!body)
        return NULL;
    if (!json_is_object(body))
        return "proto: syntax error (line 1:1): unexpected token, want JSON object";
    json_object_foreach(body, key, v)
    {
        if (json_is_null(v))
            continue;
        if (strcmp(key, "name") == 0 || strcmp(key, "role") == 0) {
            if (!json_is_string(v)) {
                char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                snprintf(buf, len, "proto: invalid value for string field %s: %s", key,
                         dump ? dump : "?");
                free(dump);
                return buf;
            }
            if (key[0] == 'n')
                g->name = json_string_value(v);
            else
                g->role = json_string_value(v);
        } else if (strcmp(key, "roles") == 0) {
            size_t i;
            json_t *r;
            if (!json_is_array(v))
                return "proto: syntax error: unexpected token, want [ for repeated field roles";
            json_array_foreach(v, i, r)
            {
                if (!json_is_string(r)) {
                    char *dump = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
                    snprintf(buf, len, "proto: invalid value for string field roles: %s",
                             dump ? dump : "?");
                    free(dump);
                    return buf;
                }
            }
            g->roles = v;
        } else if (strcmp(key, "expiration") == 0) {
            if (!json_is_string(v) || !parse_rfc3339(json_string_value(v), &g->expiration)) {
                char *dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                snprintf(buf, len, "proto: invalid google.protobuf.Timestamp value %s",
                         dump ? dump : "?");
                free(dump);
                return buf;
            }
            g->has_expiration = true;
        }
        /* Unknown fields are discarded, as Central's unmarshaler does. */
    }
    return NULL;
}

static enum MHD_Result op_generate(struct server *srv, struct MHD_Connection *c, struct request *rq)
{
    json_t *body = NULL, *resp = NULL, *meta = NULL;
    json_error_t jerr;
    struct gen_req g;
    struct identity id;
    const char *autherr, *err;
    char errbuf[1024];
    struct token *t = NULL;
    const char *single[1];
    const char **names = NULL;
    size_t nnames = 0, i;
    time_t now = time(NULL);
    unsigned char rnd[24];
    char hex[49];
    enum MHD_Result ret;

    /* The gateway decodes the body before the call reaches the interceptors. */
    if (rq->body_total > MAX_BODY)
        return send_errorf(c, rq, GRPC_RESOURCE_EXHAUSTED,
                           "grpc: received message larger than max (%zu vs. %u)", rq->body_total,
                           MAX_BODY);
    if (rq->body_len > 0) {
        body = json_loadb(rq->body, rq->body_len, JSON_DECODE_ANY, &jerr);
        if (!body)
            return send_errorf(c, rq, GRPC_INVALID_ARGUMENT, "proto: syntax error (line %d:%d): %s",
                               jerr.line, jerr.column, jerr.text);
    }
    err = decode_generate(body, &g, errbuf, sizeof errbuf);
    if (err) {
        ret = send_error(c, rq, GRPC_INVALID_ARGUMENT, err);
        goto out;
    }

    if ((autherr = authenticate(srv, c, &id)) != NULL) {
        ret = send_error(c, rq, GRPC_UNAUTHENTICATED, autherr);
        goto out;
    }
    if (!permitted(id.access, ACCESS_READ)) {
        ret = send_denied(c, rq, ACCESS_READ, "Access");
        goto out;
    }
    if (!permitted(id.integration, ACCESS_RW)) {
        ret = send_denied(c, rq, ACCESS_RW, "Integration");
        goto out;
    }

    if (!g.name || *g.name == '\0') {
        ret = send_error(c, rq, GRPC_INVALID_ARGUMENT,
                         "token name cannot be empty: invalid arguments");
        goto out;
    }
    if (g.role && *g.role) {
        if (g.roles && json_array_size(g.roles) > 0) {
            ret = send_error(c, rq, GRPC_INVALID_ARGUMENT,
                             "must use either role or roles, but not both: invalid arguments");
            goto out;
        }
        single[0] = g.role;
        names = single;
        nnames = 1;
    } else if (g.roles) {
        nnames = json_array_size(g.roles);
        names = calloc(nnames ? nnames : 1, sizeof *names);
        if (!names) {
            ret = send_error(c, rq, GRPC_INTERNAL, "out of memory");
            goto out;
        }
        for (i = 0; i < nnames; i++)
            names[i] = json_string_value(json_array_get(g.roles, i));
    }
    {
        char missing[1024];
        size_t off = 0;
        missing[0] = '\0';
        for (i = 0; i < nnames; i++)
            if (!known_role(srv, names[i]) && off < sizeof missing)
                off += (size_t)snprintf(missing + off, sizeof missing - off, "%s%s", off ? "," : "",
                                        names[i]);
        if (off > 0) {
            ret = send_errorf(c, rq, GRPC_INVALID_ARGUMENT,
                              "role(s) %s don't exist: invalid arguments", missing);
            goto out;
        }
    }
    if (g.has_expiration && g.expiration <= now) {
        ret = send_error(c, rq, GRPC_INVALID_ARGUMENT,
                         "expiration date cannot be in the past: invalid arguments");
        goto out;
    }

    t = calloc(1, sizeof *t);
    if (!t || !make_uuid(t->id) || !fill_random(rnd, sizeof rnd))
        goto oom;
    hex_encode(rnd, sizeof rnd, hex);
    t->name = strdup(g.name);
    t->secret = malloc(strlen("fake-token.") + sizeof hex);
    t->roles = calloc(nnames ? nnames : 1, sizeof *t->roles);
    if (!t->name || !t->secret || !t->roles)
        goto oom;
    sprintf(t->secret, "fake-token.%s", hex);
    for (i = 0; i < nnames; i++) {
        if (!(t->roles[i] = strdup(names[i])))
            goto oom;
        t->nroles++;
    }
    t->issued = now;
    t->expires = g.has_expiration ? g.expiration : now + TOKEN_LIFETIME;

    resp = json_object();
    meta = token_json(t);
    if (!resp || !meta)
        goto oom;
    json_object_set_new(resp, "token", json_string(t->secret));
    json_object_set_new(resp, "metadata", meta);
    meta = NULL;

    pthread_mutex_lock(&srv->lock);
    if (srv->ntokens == srv->captokens) {
        size_t cap = srv->captokens ? srv->captokens * 2 : 16;
        struct token **nt = realloc(srv->tokens, cap * sizeof *nt);
        if (!nt) {
            pthread_mutex_unlock(&srv->lock);
            goto oom;
        }
        srv->tokens = nt;
        srv->captokens = cap;
    }
    srv->tokens[srv->ntokens++] = t;
    t = NULL;
    pthread_mutex_unlock(&srv->lock);

    ret = send_json(c, rq, 200, resp, NULL);
    resp = NULL;
    goto out;
oom:
    ret = send_error(c, rq, GRPC_INTERNAL, "out of memory");
out:
    if (names != single)
        free((void *)names);
    token_free(t);
    json_decref(meta);
    json_decref(resp);
    json_decref(body);
    return ret;
}

static enum MHD_Result op_allowed_roles(struct server *srv, struct MHD_Connection *c,
                                        struct request *rq)
{
    struct identity id;
    const char *autherr;
    json_t *names, *resp;
    size_t i;

    if ((autherr = authenticate(srv, c, &id)) != NULL)
        return send_error(c, rq, GRPC_UNAUTHENTICATED, autherr);
    if (!permitted(id.access, ACCESS_READ))
        return send_denied(c, rq, ACCESS_READ, "Access");
    names = json_array();
    resp = json_object();
    if (!names || !resp) {
        json_decref(names);
        json_decref(resp);
        return send_error(c, rq, GRPC_INTERNAL, "out of memory");
    }
    /* "None" is never offered; only an admin-like caller may grant any role. */
    if (id.access == ACCESS_RW)
        for (i = 0; i < srv->nroles; i++)
            if (strcmp(srv->roles[i], "None") != 0)
                json_array_append_new(names, json_string(srv->roles[i]));
    json_object_set_new(resp, "roleNames", names);
    return send_json(c, rq, 200, resp, NULL);
}

/* RoleService.GetRoles: {"roles":[storage.Role...]} for the roles this double knows (the
 * deprecated globalAccess / resourceToAccess sent as their zero values, as Central does). The
 * permission set and access scope ids follow Central's ids for its default roles. */
static enum MHD_Result op_roles(struct server *srv, struct MHD_Connection *c, struct request *rq)
{
    static const struct {
        const char *name, *desc, *pset;
    } known[] = {
        {"Admin", "For users: use it to provide read and write access to all the resources",
         "admin"},
        {"Analyst", "For users: use it to give read-only access to all the resources", "analyst"},
        {"Continuous Integration",
         "For automation: it includes the permissions required to enforce deployment policies",
         "continuousintegration"},
        {"None", "For users: use it to provide no read and write access to any resource", "none"},
        {"Sensor Creator",
         "For automation: it consists of the permissions to create Sensors in "
         "secured clusters",
         "sensorcreator"},
        {"Vulnerability Report Creator",
         "For users: use it to create and manage vulnerability reporting configurations for "
         "scheduled vulnerability reports",
         "vulnreporter"},
    };
    struct identity id;
    const char *autherr, *desc, *pset;
    char psid[128];
    json_t *roles, *resp, *r;
    size_t i, k;

    if ((autherr = authenticate(srv, c, &id)) != NULL)
        return send_error(c, rq, GRPC_UNAUTHENTICATED, autherr);
    if (!permitted(id.access, ACCESS_READ))
        return send_denied(c, rq, ACCESS_READ, "Role");
    roles = json_array();
    resp = json_object();
    for (i = 0; roles && resp && i < srv->nroles; i++) {
        desc = "";
        pset = NULL;
        for (k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(known[k].name, srv->roles[i]) == 0) {
                desc = known[k].desc;
                pset = known[k].pset;
            }
        snprintf(psid, sizeof psid, "io.stackrox.authz.permissionset.%s", pset ? pset : "custom");
        r = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:n}", "name", srv->roles[i], "globalAccess",
                      "NO_ACCESS", "resourceToAccess", "description", desc, "permissionSetId", psid,
                      "accessScopeId", "io.stackrox.authz.accessscope.unrestricted", "traits");
        if (!r || json_array_append_new(roles, r) != 0) {
            json_decref(roles);
            roles = NULL;
        }
    }
    if (!roles || !resp) {
        json_decref(roles);
        json_decref(resp);
        return send_error(c, rq, GRPC_INTERNAL, "out of memory");
    }
    json_object_set_new(resp, "roles", roles);
    return send_json(c, rq, 200, resp, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Fault injection */

static ssize_t huge_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    static const char head[] = "{\"tokens\":[],\"padding\":\"";
    static const char tail[] = "\"}";
    size_t hl = sizeof head - 1, tl = sizeof tail - 1, n = 0;
    (void)cls;
    while (n < max && pos + n < HUGE_SIZE) {
        uint64_t at = pos + n;
        if (at < hl)
            buf[n] = head[at];
        else if (at >= HUGE_SIZE - tl)
            buf[n] = tail[at - (HUGE_SIZE - tl)];
        else
            buf[n] = 'x';
        n++;
    }
    return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

/* A drip answer: the bytes of `big`, chunked, piece by piece (see docs/central-double.md). */
struct drip {
    struct server *srv;
    char *body;
    size_t len;
    size_t piece;
    bool hold;
    unsigned hold_ms;
};

static void drip_wait_release(struct drip *d)
{
    struct server *srv = d->srv;
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += d->hold_ms / 1000;
    until.tv_nsec += (long)(d->hold_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv->stop_lock);
    while (!srv->stopping && !srv->drip.released)
        if (pthread_cond_timedwait(&srv->stop_cond, &srv->stop_lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&srv->stop_lock);
}

/* Thread per connection: blocking here holds only this request. */
static ssize_t drip_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct drip *d = cls;
    size_t n;

    if (pos >= d->len) {
        pthread_mutex_lock(&d->srv->stop_lock);
        d->srv->drip.done = true;
        pthread_mutex_unlock(&d->srv->stop_lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (pos > 0 && d->hold)
        drip_wait_release(d);
    n = d->len - (size_t)pos;
    if (n > d->piece)
        n = d->piece;
    if (n > max)
        n = max;
    memcpy(buf, d->body + pos, n);
    pthread_mutex_lock(&d->srv->stop_lock);
    d->srv->drip.sent = (size_t)pos + n;
    pthread_mutex_unlock(&d->srv->stop_lock);
    return (ssize_t)n;
}

static void drip_free(void *cls)
{
    struct drip *d = cls;

    pthread_mutex_lock(&d->srv->stop_lock);
    if (!d->srv->drip.done)
        d->srv->drip.aborted = true;
    pthread_mutex_unlock(&d->srv->stop_lock);
    free(d->body);
    free(d);
}

/* A valid JSON array of at least n bytes: objects with escapes and non-ASCII text, the same bytes
 * for the same n. Caller frees. */
static char *big_array(size_t n, size_t *len)
{
    char *b = malloc(n + 256), item[160];
    size_t o = 0, i = 0;
    int k;

    if (!b)
        return NULL;
    b[o++] = '[';
    while (o < n) {
        k = snprintf(item, sizeof item,
                     "%s{\"i\":%zu,\"name\":\"tok-%07zu\",\"note\":\"caf\\u00e9 "
                     "\xc3\xa9 \\\"q\\\" \\\\\",\"revoked\":%s}",
                     i ? "," : "", i, i, i % 2 ? "true" : "false");
        memcpy(b + o, item, (size_t)k);
        o += (size_t)k;
        i++;
    }
    b[o++] = ']';
    *len = o;
    return b;
}

/* Sleep up to seconds, returning early when the server stops. */
static void stall(struct server *srv, unsigned ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv->stop_lock);
    while (!srv->stopping)
        if (pthread_cond_timedwait(&srv->stop_cond, &srv->stop_lock, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&srv->stop_lock);
}

/*
 * Apply the configured fault to an API request. Returns true when the request is answered (or
 * dropped) here, with the MHD result in *ret.
 */
static bool apply_fault(struct server *srv, struct MHD_Connection *c, struct request *rq,
                        enum MHD_Result *ret)
{
    enum fault_mode mode;
    unsigned stall_ms;
    bool fail = false;
    struct fault f;

    pthread_mutex_lock(&srv->lock);
    mode = srv->fault.mode;
    stall_ms = srv->fault.ms;
    f = srv->fault;
    if (mode != FAULT_NONE && srv->fault.remaining > 0 && --srv->fault.remaining == 0)
        srv->fault.mode = FAULT_NONE;
    if (srv->fault.fail_ratio > 0) {
        /* Deterministic: exactly floor(n * ratio) of the first n calls fail. */
        unsigned long long n = ++srv->fault.calls;
        unsigned long long due = (unsigned long long)((double)n * srv->fault.fail_ratio);
        if (due > srv->fault.failed) {
            srv->fault.failed++;
            fail = true;
        }
    }
    pthread_mutex_unlock(&srv->lock);

    switch (mode) {
    case FAULT_STALL:
        stall(srv, stall_ms);
        break; /* then answer normally */
    case FAULT_RESET: {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
            struct linger lg = {1, 0}; /* close() sends RST */
            setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        rq->status = 0;
        *ret = MHD_NO;
        return true;
    }
    case FAULT_HUGE: {
        struct MHD_Response *resp =
            MHD_create_response_from_callback(HUGE_SIZE, 64 * 1024, huge_reader, NULL, NULL);
        if (!resp) {
            *ret = MHD_NO;
            return true;
        }
        MHD_add_response_header(resp, "Content-Type", "application/json");
        rq->status = 200;
        *ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return true;
    }
    case FAULT_INVALID_JSON: {
        static const char bad[] = "{\"tokens\":[{\"id\":\"0000-not-json";
        char *b = strdup(bad);
        *ret = b ? send_body(c, rq, 200, "application/json", b, strlen(b), NULL, false) : MHD_NO;
        return true;
    }
    case FAULT_HTML_ERROR: {
        static const char page[] =
            "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
            "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n";
        char *b = strdup(page);
        *ret = b ? send_body(c, rq, 502, "text/html", b, strlen(b), NULL, false) : MHD_NO;
        return true;
    }
    case FAULT_BIG: {
        size_t len = 0;
        char *b = big_array(f.bytes, &len);
        *ret = b ? send_body(c, rq, 200, "application/json", b, len, NULL, false) : MHD_NO;
        return true;
    }
    case FAULT_DRIP: {
        struct MHD_Response *resp = NULL;
        struct drip *d = calloc(1, sizeof(*d));
        if (d != NULL)
            d->body = big_array(f.bytes, &d->len);
        if (d == NULL || d->body == NULL) {
            if (d != NULL)
                free(d);
            *ret = MHD_NO;
            return true;
        }
        d->srv = srv;
        d->piece = f.piece;
        d->hold = f.hold;
        d->hold_ms = f.ms;
        pthread_mutex_lock(&srv->stop_lock);
        memset(&srv->drip, 0, sizeof(srv->drip));
        pthread_mutex_unlock(&srv->stop_lock);
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, drip_reader, d,
                                                 drip_free);
        if (!resp) {
            free(d->body);
            free(d);
            *ret = MHD_NO;
            return true;
        }
        MHD_add_response_header(resp, "Content-Type", "application/json");
        rq->status = 200;
        *ret = MHD_queue_response(c, 200, resp);
        MHD_destroy_response(resp);
        return true;
    }
    case FAULT_STATUS: {
        struct MHD_Response *resp;
        char *b = strdup(f.body);
        if (!b) {
            *ret = MHD_NO;
            return true;
        }
        resp = MHD_create_response_from_buffer(strlen(b), b, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
            free(b);
            *ret = MHD_NO;
            return true;
        }
        MHD_add_response_header(resp, "Content-Type", f.ctype);
        if (f.location[0])
            MHD_add_response_header(resp, "Location", f.location);
        rq->status = f.status;
        *ret = MHD_queue_response(c, f.status, resp);
        MHD_destroy_response(resp);
        return true;
    }
    case FAULT_NONE:
        break;
    }
    if (fail) {
        *ret = send_error(c, rq, GRPC_INTERNAL, "injected fault");
        return true;
    }
    return false;
}

static json_t *fault_json(struct server *srv)
{
    json_t *j;
    pthread_mutex_lock(&srv->lock);
    j = json_pack("{s:s, s:I, s:I, s:f, s:I, s:I}", "mode", fault_names[srv->fault.mode], "seconds",
                  (json_int_t)srv->fault.seconds, "count", (json_int_t)srv->fault.remaining,
                  "fail_ratio", srv->fault.fail_ratio, "calls", (json_int_t)srv->fault.calls,
                  "failed", (json_int_t)srv->fault.failed);
    pthread_mutex_unlock(&srv->lock);
    pthread_mutex_lock(&srv->stop_lock);
    if (j != NULL)
        json_object_set_new(j, "drip",
                            json_pack("{s:I, s:b, s:b, s:b}", "sent", (json_int_t)srv->drip.sent,
                                      "released", srv->drip.released, "done", srv->drip.done,
                                      "aborted", srv->drip.aborted));
    pthread_mutex_unlock(&srv->stop_lock);
    return j;
}

static enum MHD_Result send_control_error(struct MHD_Connection *c, struct request *rq,
                                          unsigned status, const char *msg)
{
    return send_json(c, rq, status, json_pack("{s:s}", "error", msg), NULL);
}

static enum MHD_Result set_faults(struct server *srv, struct MHD_Connection *c, struct request *rq)
{
    json_error_t jerr;
    json_t *b = rq->body_len ? json_loadb(rq->body, rq->body_len, 0, &jerr) : json_object();
    json_t *mode = NULL, *seconds = NULL, *ms = NULL, *count = NULL, *ratio = NULL;
    json_t *bytes = NULL, *status = NULL, *ctype = NULL, *location = NULL, *body = NULL;
    json_t *piece = NULL, *hold = NULL;
    enum fault_mode m = FAULT_NONE;
    size_t i;

    if (!b || !json_is_object(b)) {
        json_decref(b);
        return send_control_error(c, rq, 400, "body must be a JSON object");
    }
    mode = json_object_get(b, "mode");
    seconds = json_object_get(b, "seconds");
    ms = json_object_get(b, "ms");
    count = json_object_get(b, "count");
    ratio = json_object_get(b, "fail_ratio");
    bytes = json_object_get(b, "bytes");
    status = json_object_get(b, "status");
    ctype = json_object_get(b, "content_type");
    location = json_object_get(b, "location");
    body = json_object_get(b, "body");
    piece = json_object_get(b, "piece");
    hold = json_object_get(b, "hold");
    if ((piece && (!json_is_integer(piece) || json_integer_value(piece) < 1 ||
                   json_integer_value(piece) > 1048576)) ||
        (hold && !json_is_boolean(hold))) {
        json_decref(b);
        return send_control_error(c, rq, 400, "piece: integer 1..1048576; hold: a boolean");
    }
    if ((bytes && (!json_is_integer(bytes) || json_integer_value(bytes) < 2 ||
                   json_integer_value(bytes) > BIG_MAX)) ||
        (status && (!json_is_integer(status) || json_integer_value(status) < 200 ||
                    json_integer_value(status) > 599)) ||
        (ctype && (!json_is_string(ctype) || json_string_length(ctype) >= 128)) ||
        (location && (!json_is_string(location) || json_string_length(location) >= 512)) ||
        (body && (!json_is_string(body) || json_string_length(body) >= 4096))) {
        json_decref(b);
        return send_control_error(c, rq, 400,
                                  "bytes: integer 2..268435456; status: integer 200..599; "
                                  "content_type, location: short strings; body: a string "
                                  "under 4096 bytes");
    }
    if (mode) {
        bool found = false;
        for (i = 0; json_is_string(mode) && i < sizeof fault_names / sizeof fault_names[0]; i++)
            if (strcmp(json_string_value(mode), fault_names[i]) == 0) {
                m = (enum fault_mode)i;
                found = true;
            }
        if (!found) {
            json_decref(b);
            return send_control_error(c, rq, 400,
                                      "mode must be one of none, stall, reset, huge, "
                                      "invalid-json, html-error, big, status, drip");
        }
    }
    if ((seconds && (!json_is_integer(seconds) || json_integer_value(seconds) < 0 ||
                     json_integer_value(seconds) > 3600)) ||
        (ms && (!json_is_integer(ms) || json_integer_value(ms) < 0 ||
                json_integer_value(ms) > 3600000)) ||
        (count && (!json_is_integer(count) || json_integer_value(count) < -1)) ||
        (ratio && (!json_is_number(ratio) || json_number_value(ratio) < 0 ||
                   json_number_value(ratio) > 1))) {
        json_decref(b);
        return send_control_error(
            c, rq, 400,
            "seconds: integer 0..3600; ms: integer 0..3600000; count: integer >= -1; "
            "fail_ratio: number 0..1");
    }
    pthread_mutex_lock(&srv->lock);
    if (mode) {
        srv->fault.mode = m;
        srv->fault.seconds = seconds ? (unsigned)json_integer_value(seconds) : 10;
        /* "ms" (sub-second stalls) wins over "seconds" when both are given. */
        srv->fault.ms = ms ? (unsigned)json_integer_value(ms) : srv->fault.seconds * 1000u;
        if (ms)
            srv->fault.seconds = srv->fault.ms / 1000u;
        srv->fault.remaining = count ? (long)json_integer_value(count) : -1;
        if (srv->fault.remaining == 0)
            srv->fault.mode = FAULT_NONE;
        srv->fault.bytes = bytes ? (size_t)json_integer_value(bytes) : 1024u * 1024u;
        srv->fault.status = status ? (unsigned)json_integer_value(status) : 418;
        srv->fault.piece = piece ? (size_t)json_integer_value(piece) : 4096u;
        srv->fault.hold = hold ? json_is_true(hold) : true;
        snprintf(srv->fault.ctype, sizeof srv->fault.ctype, "%s",
                 ctype ? json_string_value(ctype) : "text/html");
        snprintf(srv->fault.location, sizeof srv->fault.location, "%s",
                 location ? json_string_value(location) : "");
        snprintf(srv->fault.body, sizeof srv->fault.body, "%s",
                 body ? json_string_value(body)
                      : "<html><head><title>418 I'm a teapot</title></head>"
                        "<body><script>alert(1)</script></body></html>");
    }
    if (ratio) {
        srv->fault.fail_ratio = json_number_value(ratio);
        srv->fault.calls = srv->fault.failed = 0;
    }
    pthread_mutex_unlock(&srv->lock);
    json_decref(b);
    return send_json(c, rq, 200, fault_json(srv), NULL);
}

/* /__double/...: no auth, not recorded, not subject to faults. */
static enum MHD_Result control(struct server *srv, struct MHD_Connection *c, const char *method,
                               struct request *rq, const char *path, const char *query)
{
    if (strcmp(path, "/__double/requests") == 0) {
        if (strcmp(method, "GET") == 0) {
            unsigned long long since = 0;
            json_t *arr = json_array();
            size_t i;
            if (query && strncmp(query, "since=", 6) == 0)
                since = strtoull(query + 6, NULL, 10);
            pthread_mutex_lock(&srv->ring_lock);
            for (i = 0; arr && i < srv->ring_len; i++) {
                json_t *e = srv->ring[(srv->ring_head + i) % RING_CAP];
                if ((unsigned long long)json_integer_value(json_object_get(e, "seq")) > since)
                    json_array_append(arr, e);
            }
            /* Serialise under the lock: the entries are shared with the ring. */
            {
                char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
                pthread_mutex_unlock(&srv->ring_lock);
                json_decref(arr);
                if (!text)
                    return send_control_error(c, rq, 500, "out of memory");
                return send_body(c, rq, 200, "application/json", text, strlen(text), NULL, false);
            }
        }
        if (strcmp(method, "DELETE") == 0) {
            size_t n, i;
            pthread_mutex_lock(&srv->ring_lock);
            n = srv->ring_len;
            for (i = 0; i < srv->ring_len; i++)
                json_decref(srv->ring[(srv->ring_head + i) % RING_CAP]);
            srv->ring_head = srv->ring_len = 0;
            pthread_mutex_unlock(&srv->ring_lock);
            return send_json(c, rq, 200, json_pack("{s:I}", "cleared", (json_int_t)n), NULL);
        }
        return send_control_error(c, rq, 405, "use GET or DELETE");
    }
    if (strcmp(path, "/__double/faults/release") == 0) {
        if (strcmp(method, "POST") != 0)
            return send_control_error(c, rq, 405, "use POST");
        pthread_mutex_lock(&srv->stop_lock);
        srv->drip.released = true;
        pthread_cond_broadcast(&srv->stop_cond);
        pthread_mutex_unlock(&srv->stop_lock);
        return send_json(c, rq, 200, fault_json(srv), NULL);
    }
    if (strcmp(path, "/__double/faults") == 0) {
        if (strcmp(method, "GET") == 0)
            return send_json(c, rq, 200, fault_json(srv), NULL);
        if (strcmp(method, "POST") == 0)
            return set_faults(srv, c, rq);
        if (strcmp(method, "DELETE") == 0) {
            pthread_mutex_lock(&srv->lock);
            memset(&srv->fault, 0, sizeof srv->fault);
            srv->fault.remaining = -1;
            pthread_mutex_unlock(&srv->lock);
            return send_json(c, rq, 200, fault_json(srv), NULL);
        }
        return send_control_error(c, rq, 405, "use GET, POST or DELETE");
    }
    if (strcmp(path, "/__double/tokens") == 0) {
        if (strcmp(method, "DELETE") == 0) {
            size_t n, i;
            pthread_mutex_lock(&srv->lock);
            n = srv->ntokens;
            for (i = 0; i < srv->ntokens; i++)
                token_free(srv->tokens[i]);
            srv->ntokens = 0;
            pthread_mutex_unlock(&srv->lock);
            return send_json(c, rq, 200, json_pack("{s:I}", "cleared", (json_int_t)n), NULL);
        }
        return send_control_error(c, rq, 405, "use DELETE");
    }
    return send_control_error(c, rq, 404, "unknown control endpoint");
}

/* ---------------------------------------------------------------------------------------- */
/* Routing, grpc-gateway style */

enum route_id {
    R_NONE,
    R_LIST,
    R_GENERATE,
    R_ALLOWED,
    R_REVOKE,
    R_GET,
    R_PING,
    R_ROLES,
    R_ALERTS,
    R_DEPLOYMENTS,
    R_IMAGES,
    R_POLICIES
};

struct route {
    const char *method;
    size_t nseg;
    const char *seg[4]; /* NULL = one-segment variable */
    enum route_id id;
};

static const struct route routes[] = {
    {"GET", 2, {"v1", "apitokens", NULL, NULL}, R_LIST},
    {"POST", 3, {"v1", "apitokens", "generate", NULL}, R_GENERATE},
    {"GET", 4, {"v1", "apitokens", "generate", "allowed-roles"}, R_ALLOWED},
    {"PATCH", 4, {"v1", "apitokens", "revoke", NULL}, R_REVOKE},
    {"GET", 3, {"v1", "apitokens", NULL, NULL}, R_GET},
    {"GET", 2, {"v1", "ping", NULL, NULL}, R_PING},
    {"GET", 2, {"v1", "roles", NULL, NULL}, R_ROLES},
    {"GET", 2, {"v1", "alerts", NULL, NULL}, R_ALERTS},
    {"GET", 2, {"v1", "deployments", NULL, NULL}, R_DEPLOYMENTS},
    {"GET", 2, {"v1", "images", NULL, NULL}, R_IMAGES},
    {"GET", 2, {"v1", "policies", NULL, NULL}, R_POLICIES},
};

/* Small canned answers of other Central services (ListAlerts, ListDeployments, ListImages,
 * ListPolicies), in Central's shapes: lowerCamelCase, zero values sent. */
static json_t *canned(enum route_id id)
{
    switch (id) {
    case R_ALERTS:
        return json_pack("{s:[{s:s, s:s, s:{s:s, s:s}, s:s, s:s}]}", "alerts", "id",
                         "8b6d3a1e-0000-4000-8000-000000000001", "lifecycleStage", "DEPLOY",
                         "policy", "id", "policy-1", "name", "Latest tag", "state", "ACTIVE",
                         "time", "2026-06-01T12:00:00Z");
    case R_DEPLOYMENTS:
        return json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}]}", "deployments", "id", "d-0001", "name",
                         "central", "clusterName", "demo", "namespace", "stackrox", "created",
                         "2026-06-01T12:00:00Z");
    case R_IMAGES:
        return json_pack("{s:[{s:s, s:s, s:i, s:i}]}", "images", "id", "sha256:0001", "name",
                         "quay.io/stackrox-io/main:4.11.0", "components", 0, "cves", 0);
    case R_POLICIES:
        return json_pack("{s:[{s:s, s:s, s:s, s:b}]}", "policies", "id", "policy-1", "name",
                         "Latest tag", "severity", "LOW_SEVERITY", "disabled", 0);
    default:
        return NULL;
    }
}

static bool route_matches(const struct route *r, char **segs, size_t nseg)
{
    size_t i;
    if (r->nseg != nseg)
        return false;
    for (i = 0; i < nseg; i++)
        if (r->seg[i] && strcmp(r->seg[i], segs[i]) != 0)
            return false;
    return true;
}

/* The index of the variable segment of a route (its id), or 0. */
static size_t route_var(const struct route *r)
{
    size_t i;
    for (i = 0; i < r->nseg; i++)
        if (!r->seg[i])
            return i;
    return 0;
}

/* Go's net/http answer to a request line it cannot parse. */
static enum MHD_Result send_go_bad_request(struct MHD_Connection *c, struct request *rq)
{
    char *b = strdup("400 Bad Request");
    if (!b)
        return MHD_NO;
    return send_body(c, rq, 400, "text/plain; charset=utf-8", b, strlen(b), NULL, true);
}

static enum MHD_Result api(struct server *srv, struct MHD_Connection *c, const char *method,
                           struct request *rq, const char *path, size_t path_len, const char *query)
{
    char *segs[MAX_SEGMENTS];
    size_t nseg = 0, i;
    const struct route *match = NULL;
    bool other_method = false;
    enum MHD_Result ret;
    const char *p = path + 1, *end = path + path_len;
    char *decoded_path = NULL, bad[4];
    bool too_many = false;

    if (path_len == 0 || path[0] != '/')
        return send_go_bad_request(c, rq);

    if (srv->split_encoded_slash) {
        /* Central proper decodes the whole path first, so %2F splits a segment. */
        if (percent_decode(path, path_len, false, &decoded_path, bad) != DECODE_OK)
            return send_go_bad_request(c, rq);
        p = decoded_path + 1;
        end = decoded_path + strlen(decoded_path);
    }
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        size_t len = slash ? (size_t)(slash - p) : (size_t)(end - p);
        enum decode_rc rc;
        if (nseg == MAX_SEGMENTS) {
            too_many = true;
            break;
        }
        if (srv->split_encoded_slash)
            rc = (segs[nseg] = xstrndup(p, len)) ? DECODE_OK : DECODE_NOMEM;
        else
            rc = percent_decode(p, len, false, &segs[nseg], bad);
        if (rc != DECODE_OK) {
            ret = rc == DECODE_NOMEM ? send_error(c, rq, GRPC_INTERNAL, "out of memory")
                                     : send_go_bad_request(c, rq);
            goto out;
        }
        nseg++;
        if (!slash)
            break;
        p = slash + 1;
    }

    for (i = 0; !too_many && i < sizeof routes / sizeof routes[0]; i++) {
        if (!route_matches(&routes[i], segs, nseg))
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            match = &routes[i];
            break;
        }
        other_method = true;
    }
    if (!match) {
        ret = other_method ? send_error(c, rq, GRPC_UNIMPLEMENTED, "Method Not Allowed")
                           : send_error(c, rq, GRPC_NOT_FOUND, "Not Found");
        goto out;
    }

    if (match->id == R_PING) {
        ret = send_json(c, rq, 200, json_pack("{s:s}", "status", "ok"), NULL);
        goto out;
    }
    if (match->id >= R_ALERTS) {
        ret = send_json(c, rq, 200, canned(match->id), NULL);
        goto out;
    }
    if (match->id == R_GENERATE) {
        ret = op_generate(srv, c, rq);
        goto out;
    }
    if (match->id == R_ALLOWED) {
        ret = op_allowed_roles(srv, c, rq);
        goto out;
    }
    if (match->id == R_ROLES) {
        ret = op_roles(srv, c, rq);
        goto out;
    }
    {
        /* Methods with path or query parameters go through Go's ParseForm first. */
        struct query q = {NULL, 0};
        char errbuf[64];
        const char *qerr = query_parse(query, &q, errbuf, sizeof errbuf);
        if (qerr)
            ret = send_error(c, rq, GRPC_INVALID_ARGUMENT, qerr);
        else if (match->id == R_LIST)
            ret = op_list(srv, c, rq, &q);
        else if (match->id == R_GET)
            ret = op_get(srv, c, rq, segs[route_var(match)]);
        else
            ret = op_revoke(srv, c, rq, segs[route_var(match)]);
        query_cleanup(&q);
    }
out:
    for (i = 0; i < nseg; i++)
        free(segs[i]);
    free(decoded_path);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* MHD callbacks */

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct request *rq = calloc(1, sizeof *rq);
    (void)cls;
    (void)c;
    if (rq)
        rq->uri = xstrdup(uri ? uri : "");
    return rq;
}

/* Keep URL and arguments exactly as received; the double decodes what it needs itself. */
static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct request *rq = *req_cls;
    (void)cls;
    (void)c;
    (void)toe;
    if (rq) {
        free(rq->uri);
        free(rq->body);
        free(rq);
        *req_cls = NULL;
    }
}

static void append_body(struct request *rq, const char *data, size_t n)
{
    rq->body_total += n;
    if (rq->body_len + n > MAX_BODY)
        n = rq->body_len < MAX_BODY ? MAX_BODY - rq->body_len : 0;
    if (n == 0)
        return;
    if (rq->body_len + n > rq->body_cap) {
        size_t cap = rq->body_cap ? rq->body_cap : 1024;
        char *nb;
        while (cap < rq->body_len + n)
            cap *= 2;
        nb = realloc(rq->body, cap);
        if (!nb)
            return;
        rq->body = nb;
        rq->body_cap = cap;
    }
    memcpy(rq->body + rq->body_len, data, n);
    rq->body_len += n;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct server *srv = cls;
    struct request *rq = *req_cls;
    const char *qmark, *query;
    size_t path_len;
    enum MHD_Result ret;

    if (!rq) {
        /* The URI callback could not allocate; MHD calls the handler anyway. */
        rq = on_uri(NULL, url, c);
        if (!rq)
            return MHD_NO;
        *req_cls = rq;
    }
    if (!rq->uri)
        return MHD_NO;
    if (!rq->seen) {
        rq->seen = true;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        append_body(rq, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    qmark = strchr(rq->uri, '?');
    path_len = qmark ? (size_t)(qmark - rq->uri) : strlen(rq->uri);
    query = qmark ? qmark + 1 : NULL;

    if (path_len >= 9 && strncmp(rq->uri, "/__double", 9) == 0 &&
        (path_len == 9 || rq->uri[9] == '/')) {
        char *path = xstrndup(rq->uri, path_len);
        if (!path)
            return MHD_NO;
        ret = control(srv, c, method, rq, path, query);
        free(path);
        return ret;
    }

    record_request(srv, c, method, version, rq, rq->uri, path_len, query);
    if (!apply_fault(srv, c, rq, &ret))
        ret = api(srv, c, method, rq, rq->uri, path_len, query);
    log_line(srv, method, rq);
    return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* Start-up */

static void usage(FILE *f)
{
    fprintf(f, "usage: " DOUBLE_NAME " [OPTIONS]\n"
               "A stand-in for StackRox Central's APITokenService (REST), for demos and tests:\n"
               "tokens live in memory only; it is not Central and guards nothing.\n\n"
               "  --listen ADDR          address to bind (default 127.0.0.1; IPv6 allowed)\n"
               "  --port N               port (default 8443; 0 = pick a free one)\n"
               "  --port-file F          write the bound port to F (atomically) once listening\n"
               "  --token T              accept 'Authorization: Bearer T' with full access\n"
               "                         (repeatable; also env CENTRAL_DOUBLE_TOKENS=a,b)\n"
               "  --readonly-token T     accept T with read-only access: 403 on generate/revoke\n"
               "                         (repeatable; also env CENTRAL_DOUBLE_READONLY_TOKENS)\n"
               "  --role NAME            a role that exists (repeatable; replaces the defaults:\n"
               "                         Admin, Analyst, Continuous Integration, None,\n"
               "                         Sensor Creator, Vulnerability Report Creator)\n"
               "  --tls-cert F --tls-key F  serve HTTPS with this PEM certificate and key\n"
               "  --split-encoded-slash  decode the whole path before splitting, like Central\n"
               "                         itself (an id with %%2F then no longer matches)\n"
               "  --log-requests         one line per API request on stderr (no credentials)\n"
               "  -h, --help             this text\n\n"
               "Control endpoints (no auth): GET/DELETE /__double/requests, GET/POST/DELETE\n"
               "/__double/faults, DELETE /__double/tokens. See docs/central-double.md.\n");
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static bool add_cred(struct server *srv, const char *value, bool readonly)
{
    struct cred *nc;
    if (!value || !*value)
        return true;
    nc = realloc(srv->creds, (srv->ncreds + 1) * sizeof *nc);
    if (!nc)
        return false;
    srv->creds = nc;
    srv->creds[srv->ncreds].value = strdup(value);
    srv->creds[srv->ncreds].readonly = readonly;
    if (!srv->creds[srv->ncreds].value)
        return false;
    srv->ncreds++;
    return true;
}

static bool add_creds_from_env(struct server *srv, const char *var, bool readonly)
{
    const char *env = getenv(var);
    char *copy, *save = NULL, *tok;
    bool ok = true;
    if (!env)
        return true;
    copy = strdup(env);
    if (!copy)
        return false;
    for (tok = strtok_r(copy, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        ok = add_cred(srv, tok, readonly);
    }
    free(copy);
    return ok;
}

static bool add_role(struct server *srv, const char *name)
{
    char **nr = realloc(srv->roles, (srv->nroles + 1) * sizeof *nr);
    if (!nr)
        return false;
    srv->roles = nr;
    if (!(srv->roles[srv->nroles] = strdup(name)))
        return false;
    srv->nroles++;
    return true;
}

static bool write_port_file(const char *path, unsigned port)
{
    char tmp[PATH_MAX];
    FILE *f;
    bool ok;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return false;
    f = fopen(tmp, "w");
    if (!f)
        return false;
    ok = fprintf(f, "%u\n", port) > 0;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok)
        unlink(tmp);
    return ok;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < 2100)
        fprintf(stderr,
                "%s: warning: only %lu file descriptors; 1000 concurrent connections need "
                "about 1100 (raise ulimit -n)\n",
                DOUBLE_NAME, (unsigned long)rl.rlim_cur);
}

static void server_cleanup(struct server *srv)
{
    size_t i;
    for (i = 0; i < srv->ntokens; i++)
        token_free(srv->tokens[i]);
    free(srv->tokens);
    for (i = 0; i < srv->ring_len; i++)
        json_decref(srv->ring[(srv->ring_head + i) % RING_CAP]);
    for (i = 0; i < srv->ncreds; i++)
        free(srv->creds[i].value);
    free(srv->creds);
    for (i = 0; i < srv->nroles; i++)
        free(srv->roles[i]);
    free(srv->roles);
    pthread_mutex_destroy(&srv->lock);
    pthread_mutex_destroy(&srv->ring_lock);
    pthread_mutex_destroy(&srv->stop_lock);
    pthread_cond_destroy(&srv->stop_cond);
}

/* "--name value" or "--name=value"; advances *i past a separate value. */
static const char *flag_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0') {
        if (*i + 1 >= argc) {
            fprintf(stderr, "%s: %s needs a value\n", DOUBLE_NAME, name);
            exit(2);
        }
        return argv[++*i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static struct server srv;
    const char *listen_addr = "127.0.0.1", *port_file = NULL, *cert_file = NULL, *key_file = NULL,
               *v;
    long port = 8443;
    char *cert = NULL, *key = NULL;
    struct sockaddr_storage ss;
    struct MHD_Daemon *d = NULL;
    unsigned flags;
    sigset_t sigs;
    int sig = 0, rc = 1, i;
    bool ipv6 = false, roles_given = false;
    unsigned bound_port = 0;
    const union MHD_DaemonInfo *di;
    char host[INET6_ADDRSTRLEN];

    memset(&ss, 0, sizeof ss);
    pthread_mutex_init(&srv.lock, NULL);
    pthread_mutex_init(&srv.ring_lock, NULL);
    pthread_mutex_init(&srv.stop_lock, NULL);
    pthread_cond_init(&srv.stop_cond, NULL);
    srv.fault.remaining = -1;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        } else if ((v = flag_value(argc, argv, &i, "--listen"))) {
            listen_addr = v;
        } else if ((v = flag_value(argc, argv, &i, "--port-file"))) {
            port_file = v;
        } else if ((v = flag_value(argc, argv, &i, "--port"))) {
            char *end;
            port = strtol(v, &end, 10);
            if (*v == '\0' || *end || port < 0 || port > 65535) {
                fprintf(stderr, "%s: bad --port %s\n", DOUBLE_NAME, v);
                rc = 2;
                goto out;
            }
        } else if ((v = flag_value(argc, argv, &i, "--token"))) {
            if (!add_cred(&srv, v, false))
                goto out;
        } else if ((v = flag_value(argc, argv, &i, "--readonly-token"))) {
            if (!add_cred(&srv, v, true))
                goto out;
        } else if ((v = flag_value(argc, argv, &i, "--role"))) {
            roles_given = true;
            if (!add_role(&srv, v))
                goto out;
        } else if ((v = flag_value(argc, argv, &i, "--tls-cert"))) {
            cert_file = v;
        } else if ((v = flag_value(argc, argv, &i, "--tls-key"))) {
            key_file = v;
        } else if (strcmp(argv[i], "--log-requests") == 0) {
            srv.log_requests = true;
        } else if (strcmp(argv[i], "--split-encoded-slash") == 0) {
            srv.split_encoded_slash = true;
        } else {
            fprintf(stderr, "%s: unknown argument '%s' (try --help)\n", DOUBLE_NAME, argv[i]);
            rc = 2;
            goto out;
        }
    }
    if (!add_creds_from_env(&srv, "CENTRAL_DOUBLE_TOKENS", false) ||
        !add_creds_from_env(&srv, "CENTRAL_DOUBLE_READONLY_TOKENS", true))
        goto out;
    for (i = 0; !roles_given && i < (int)(sizeof default_roles / sizeof default_roles[0]); i++)
        if (!add_role(&srv, default_roles[i]))
            goto out;
    if (!cert_file != !key_file) {
        fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", DOUBLE_NAME);
        rc = 2;
        goto out;
    }
    if (cert_file) {
        if (!(cert = read_file(cert_file)) || !(key = read_file(key_file))) {
            fprintf(stderr, "%s: cannot read %s: %s\n", DOUBLE_NAME, cert ? key_file : cert_file,
                    strerror(errno));
            goto out;
        }
    }

    if (strchr(listen_addr, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        ipv6 = true;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, listen_addr, &a->sin6_addr) != 1) {
            fprintf(stderr, "%s: bad --listen %s\n", DOUBLE_NAME, listen_addr);
            rc = 2;
            goto out;
        }
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, listen_addr, &a->sin_addr) != 1) {
            fprintf(stderr, "%s: bad --listen %s (an IP address)\n", DOUBLE_NAME, listen_addr);
            rc = 2;
            goto out;
        }
    }

    raise_fd_limit();
    /* Threads inherit this mask, so only the main thread's sigwait sees the signals. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    /* A thread per connection keeps stalls independent; poll() lifts the FD_SETSIZE cap. */
    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ipv6)
        flags |= MHD_USE_IPv6;
    if (cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            fprintf(stderr, "%s: this libmicrohttpd has no TLS support\n", DOUBLE_NAME);
            goto out;
        }
        flags |= MHD_USE_TLS;
    }
    d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, &srv, MHD_OPTION_SOCK_ADDR,
                         (const struct sockaddr *)&ss, MHD_OPTION_URI_LOG_CALLBACK, on_uri, &srv,
                         MHD_OPTION_UNESCAPE_CALLBACK, keep_raw, &srv, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, &srv, MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
                         MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK,
                         cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
                         MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "%s: cannot listen on %s port %ld\n", DOUBLE_NAME, listen_addr, port);
        goto out;
    }
    di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
    if (di) {
        struct sockaddr_storage got;
        socklen_t gl = sizeof got;
        if (getsockname(di->listen_fd, (struct sockaddr *)&got, &gl) == 0)
            bound_port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                         : ((struct sockaddr_in *)&got)->sin_port);
    }
    if (bound_port == 0) {
        fprintf(stderr, "%s: cannot read the bound port\n", DOUBLE_NAME);
        goto out;
    }
    snprintf(host, sizeof host, "%s", listen_addr);
    printf("%s listening on %s://%s%s%s:%u\n", DOUBLE_NAME, cert ? "https" : "http",
           ipv6 ? "[" : "", host, ipv6 ? "]" : "", bound_port);
    fflush(stdout);
    if (srv.ncreds == 0)
        fprintf(stderr,
                "%s: no tokens configured: every APITokenService call will get 401. Pass "
                "--token T (or CENTRAL_DOUBLE_TOKENS) and send 'Authorization: Bearer T'.\n",
                DOUBLE_NAME);
    else
        fprintf(stderr,
                "%s: accepting %zu configured token(s); try: curl -H 'Authorization: "
                "Bearer <token>' %s://%s%s%s:%u/v1/apitokens\n",
                DOUBLE_NAME, srv.ncreds, cert ? "https" : "http", ipv6 ? "[" : "", host,
                ipv6 ? "]" : "", bound_port);
    if (port_file && !write_port_file(port_file, bound_port)) {
        fprintf(stderr, "%s: cannot write %s: %s\n", DOUBLE_NAME, port_file, strerror(errno));
        goto out;
    }

    while (sigwait(&sigs, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
        ;
    rc = 0;
out:
    pthread_mutex_lock(&srv.stop_lock);
    srv.stopping = true;
    pthread_cond_broadcast(&srv.stop_cond);
    pthread_mutex_unlock(&srv.stop_lock);
    if (d)
        MHD_stop_daemon(d);
    server_cleanup(&srv);
    free(cert);
    free(key);
    if (rc == 0 && sig)
        fprintf(stderr, "%s: stopped (signal %d)\n", DOUBLE_NAME, sig);
    return rc;
}
