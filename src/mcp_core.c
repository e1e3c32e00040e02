/* SPDX-License-Identifier: Apache-2.0 */
/* mcp_core.c: the MCP protocol engine: JSON-RPC framing, both protocol eras, tools, sessions. */
#include "naftikod/mcp_core.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "naftikod/audit.h"
#include "naftikod/authz.h"
#include "naftikod/inbound.h"
#include "naftikod/jsonout.h"
#include "naftikod/problem.h"
#include "naftikod/sha256.h"

/* JSON-RPC and MCP error codes. */
#define RPC_PARSE_ERROR (-32700)
#define RPC_INVALID_REQUEST (-32600)
#define RPC_METHOD_NOT_FOUND (-32601)
#define RPC_INVALID_PARAMS (-32602)
#define RPC_INTERNAL (-32603)
#define MCP_HEADER_MISMATCH (-32020)
#define MCP_UNSUPPORTED_VERSION (-32022)

#define META_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CAPS "io.modelcontextprotocol/clientCapabilities"
#define META_SERVER_INFO "io.modelcontextprotocol/serverInfo"

/* Newest first: initialize answers handshake_versions[0] when the client's is unknown. */
static const char *const handshake_versions[] = {"2025-11-25", "2025-06-18", "2025-03-26",
                                                 "2024-11-05"};
#define N_HANDSHAKE (sizeof(handshake_versions) / sizeof(handshake_versions[0]))

/* session id = base64url(issued (8, big endian seconds) | nonce (16) | mac (16)) */
#define SID_TIME 8
#define SID_NONCE 16
#define SID_MAC 16
#define SID_RAW (SID_TIME + SID_NONCE + SID_MAC)
#define SID_DOMAIN "naftikod mcp session v1"

struct nk_mcp {
    atomic_ullong refused[NK_MCP_REFUSED_N]; /* session ids refused, by reason */
    pthread_rwlock_t keys_lock; /* guards keys: SIGHUP swaps them while requests verify */
    struct nk_keyring keys;
    bool no_delete;
    char **hosts;
    size_t n_hosts;
    size_t page_size;
    unsigned session_ttl_s;
    long tools_ttl_ms;
    pthread_mutex_t mu; /* guards the ended ring and the calls in flight */
    unsigned char (*ended)[SID_MAC];
    size_t max_ended, n_ended, next_ended;
    struct call *calls; /* tool calls in flight that notifications/cancelled can reach */
    uint64_t next_tag;
};

/* One tool call in flight. */
struct call {
    struct exchange *x;
    json_t *id;
    struct call *next, *prev; /* in m->calls while listed */
    bool listed;
    bool cancelled;                  /* notifications/cancelled named it: no response */
    uint64_t tag;                    /* the upstream transfer's cancel tag (never 0) */
    const struct nk_mcp_conn *conn;  /* stdio: the connection; HTTP: NULL */
    char sid[NK_MCP_SESSION_ID_MAX]; /* HTTP handshake era: the session it belongs to */
    const void *stream;              /* HTTP stateless era: the exchange's reply ud */
    nk_mcp_cancel_fn cancel;         /* the exchange's backend, for a cancellation */
    void *cancel_ud;
    nk_mcp_done_fn done; /* set by nk_mcp_invoke: where the invocation's result goes */
    bool embedded;       /* the exchange's own call0, not allocated */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static bool valid_id(json_t *id);

static enum nk_rc random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;

    /* getrandom(2): one system call, where /dev/urandom took three (open, read, close) */
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NK_ERR_IO;
        p += n;
        len -= (size_t)n;
    }
    return NK_OK;
}

static bool is_handshake_version(const char *v)
{
    size_t i;

    for (i = 0; v != NULL && i < N_HANDSHAKE; i++)
        if (strcmp(v, handshake_versions[i]) == 0)
            return true;
    return false;
}

static json_t *supported_versions(void)
{
    json_t *a = json_array();
    size_t i;

    if (a == NULL)
        return NULL;
    json_array_append_new(a, json_string(NK_MCP_MODERN_VERSION));
    for (i = 0; i < N_HANDSHAKE; i++)
        json_array_append_new(a, json_string(handshake_versions[i]));
    return a;
}

/* Copy s without leading/trailing optional whitespace (RFC 9110 OWS) into buf. */
static const char *trim_ows(const char *s, char *buf, size_t cap)
{
    size_t n;

    if (s == NULL)
        return NULL;
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

/* ---- engine lifecycle --------------------------------------------------------------------- */

enum nk_rc nk_mcp_new(const struct nk_mcp_options *opts, struct nk_mcp **out, struct nk_error *err)
{
    struct nk_mcp *m = NULL;
    enum nk_rc rc = NK_ERR_NOMEM;
    size_t i;

    m = calloc(1, sizeof(*m));
    if (m == NULL)
        goto out;
    pthread_mutex_init(&m->mu, NULL);
    pthread_rwlock_init(&m->keys_lock, NULL);
    m->no_delete = opts != NULL && opts->no_delete;
    m->page_size = opts != NULL && opts->page_size > 0 ? opts->page_size : 100;
    m->session_ttl_s = opts != NULL && opts->session_ttl_s > 0 ? opts->session_ttl_s : 86400;
    m->max_ended = opts != NULL && opts->max_ended > 0 ? opts->max_ended : 4096;
    m->tools_ttl_ms = opts != NULL && opts->tools_ttl_ms > 0 ? opts->tools_ttl_ms : 60000;
    m->ended = calloc(m->max_ended, sizeof(*m->ended));
    if (m->ended == NULL)
        goto out;
    if (opts != NULL && opts->session_keys != NULL && opts->session_keys->n > 0) {
        m->keys = *opts->session_keys;
    } else if (opts != NULL && opts->session_key != NULL && opts->session_key_len > 0) {
        /* Any key length: hashed down so the HMAC key is always 32 bytes (keyring.c). */
        nk_keyring_add(&m->keys, opts->session_key, opts->session_key_len);
    } else {
        unsigned char rnd[NK_SHA256_LEN];

        if (random_bytes(rnd, sizeof(rnd)) != NK_OK) {
            nk_error_set(err, "cannot read /dev/urandom for the MCP session key");
            rc = NK_ERR_IO;
            goto out;
        }
        nk_keyring_add(&m->keys, rnd, sizeof(rnd));
        explicit_bzero(rnd, sizeof(rnd));
    }
    if (opts != NULL && opts->n_allowed_hosts > 0) {
        m->hosts = calloc(opts->n_allowed_hosts, sizeof(*m->hosts));
        if (m->hosts == NULL)
            goto out;
        for (i = 0; i < opts->n_allowed_hosts; i++) {
            m->hosts[i] = strdup(opts->allowed_hosts[i]);
            if (m->hosts[i] == NULL)
                goto out;
            m->n_hosts++;
        }
    }
    *out = m;
    m = NULL;
    rc = NK_OK;
out:
    if (rc == NK_ERR_NOMEM)
        nk_error_set(err, "out of memory");
    nk_mcp_free(m);
    return rc;
}

void nk_mcp_free(struct nk_mcp *m)
{
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->n_hosts; i++)
        free(m->hosts[i]);
    free(m->hosts);
    free(m->ended);
    pthread_mutex_destroy(&m->mu);
    pthread_rwlock_destroy(&m->keys_lock);
    nk_keyring_wipe(&m->keys);
    free(m);
}

/* ---- sessions ----------------------------------------------------------------------------- */

void nk_mcp_set_keys(struct nk_mcp *m, const struct nk_keyring *ring)
{
    if (ring->n == 0)
        return;
    pthread_rwlock_wrlock(&m->keys_lock);
    nk_keyring_wipe(&m->keys);
    m->keys = *ring;
    pthread_rwlock_unlock(&m->keys_lock);
}

unsigned long long nk_mcp_sessions_refused(struct nk_mcp *m, enum nk_mcp_refused why)
{
    return atomic_load(&m->refused[why]);
}

size_t nk_mcp_key_fingerprints(struct nk_mcp *m, char (*fp)[17], size_t max)
{
    size_t i, n;

    pthread_rwlock_rdlock(&m->keys_lock);
    n = m->keys.n;
    for (i = 0; i < n && i < max; i++)
        memcpy(fp[i], m->keys.fingerprint[i], 17);
    pthread_rwlock_unlock(&m->keys_lock);
    return n;
}

/* The MAC covers the authenticated caller's name too: an id minted for caller A does not verify
 * for caller B (who then gets 404, as for an unknown id). caller "" or NULL: no inbound auth. */
static void session_mac(const unsigned char key[NK_SHA256_LEN], const unsigned char *payload,
                        const char *caller, unsigned char mac[SID_MAC])
{
    unsigned char msg[sizeof(SID_DOMAIN) + SID_TIME + SID_NONCE + NK_SHA256_LEN];
    unsigned char full[NK_SHA256_LEN];

    memcpy(msg, SID_DOMAIN, sizeof(SID_DOMAIN)); /* includes the NUL as a separator */
    memcpy(msg + sizeof(SID_DOMAIN), payload, SID_TIME + SID_NONCE);
    /* A fixed-size digest of the name keeps the message unambiguous whatever the name holds. */
    nk_sha256(caller != NULL ? caller : "", caller != NULL ? strlen(caller) : 0,
              msg + sizeof(SID_DOMAIN) + SID_TIME + SID_NONCE);
    nk_hmac_sha256(key, NK_SHA256_LEN, msg, sizeof(msg), full);
    memcpy(mac, full, SID_MAC);
}

enum nk_rc nk_mcp_session_new(struct nk_mcp *m, const char *caller, char out[NK_MCP_SESSION_ID_MAX])
{
    unsigned char raw[SID_RAW];
    uint64_t now = (uint64_t)time(NULL);
    unsigned i;

    for (i = 0; i < SID_TIME; i++)
        raw[i] = (unsigned char)(now >> (56 - 8 * i));
    if (random_bytes(raw + SID_TIME, SID_NONCE) != NK_OK)
        return NK_ERR_IO;
    pthread_rwlock_rdlock(&m->keys_lock);
    session_mac(m->keys.mac_key[0], raw, caller, raw + SID_TIME + SID_NONCE);
    pthread_rwlock_unlock(&m->keys_lock);
    nk_b64url_encode(raw, sizeof(raw), out);
    return NK_OK;
}

/* Decode and verify; on success mac (for the ended set) is filled. */
static bool session_verify(struct nk_mcp *m, const char *id, const char *caller,
                           unsigned char mac[SID_MAC])
{
    unsigned char raw[SID_RAW], want[SID_MAC];
    uint64_t issued = 0, now = (uint64_t)time(NULL);
    size_t len;
    unsigned i;
    size_t k;
    bool ok = false;

    if (id == NULL)
        return false;
    len = strlen(id);
    if (len != nk_b64url_len(SID_RAW) || nk_b64url_decode(id, len, raw, sizeof(raw)) != SID_RAW)
        return false;
    /* Any key of the ring: during a rotation some replicas sign with the new key already. */
    pthread_rwlock_rdlock(&m->keys_lock);
    for (k = 0; k < m->keys.n && !ok; k++) {
        session_mac(m->keys.mac_key[k], raw, caller, want);
        ok = nk_mem_equal_ct(want, raw + SID_TIME + SID_NONCE, SID_MAC);
    }
    pthread_rwlock_unlock(&m->keys_lock);
    if (!ok)
        return false;
    for (i = 0; i < SID_TIME; i++)
        issued = issued << 8 | raw[i];
    /* Expired ids are unknown ids; a little clock skew between replicas is tolerated. */
    if (issued > now + 300 || now - issued > m->session_ttl_s)
        return false;
    memcpy(mac, raw + SID_TIME + SID_NONCE, SID_MAC);
    return true;
}

static bool ended_has(struct nk_mcp *m, const unsigned char mac[SID_MAC])
{
    size_t i;

    for (i = 0; i < m->n_ended; i++)
        if (memcmp(m->ended[i], mac, SID_MAC) == 0)
            return true;
    return false;
}

enum nk_mcp_session_state nk_mcp_session_check(struct nk_mcp *m, const char *id, const char *caller)
{
    unsigned char mac[SID_MAC];
    bool ended;

    if (!session_verify(m, id, caller, mac))
        return NK_MCP_SESSION_INVALID;
    pthread_mutex_lock(&m->mu);
    ended = ended_has(m, mac);
    pthread_mutex_unlock(&m->mu);
    return ended ? NK_MCP_SESSION_ENDED : NK_MCP_SESSION_VALID;
}

enum nk_mcp_session_state nk_mcp_session_end(struct nk_mcp *m, const char *id, const char *caller)
{
    unsigned char mac[SID_MAC];
    enum nk_mcp_session_state st = NK_MCP_SESSION_VALID;

    if (!session_verify(m, id, caller, mac))
        return NK_MCP_SESSION_INVALID;
    pthread_mutex_lock(&m->mu);
    if (ended_has(m, mac)) {
        st = NK_MCP_SESSION_ENDED;
    } else {
        /* A bounded ring: the oldest ended id is forgotten first (documented limitation). */
        memcpy(m->ended[m->next_ended], mac, SID_MAC);
        m->next_ended = (m->next_ended + 1) % m->max_ended;
        if (m->n_ended < m->max_ended)
            m->n_ended++;
    }
    pthread_mutex_unlock(&m->mu);
    return st;
}

/* ---- Host / Origin ------------------------------------------------------------------------ */

/* The rule is shared with the REST adapter: inbound.c. */
bool nk_mcp_host_allowed(const struct nk_mcp *m, const char *host, const char *origin)
{
    return nk_inbound_host_allowed((const char *const *)m->hosts, m->n_hosts, host, origin);
}

/* ---- exchanges ---------------------------------------------------------------------------- */

enum era { ERA_HANDSHAKE, ERA_MODERN };

/* An upstream answer passed through unparsed (nk_result.raw_is_output): the tool result holds
 * placeholder strings for it, replaced by its bytes once the reply is dumped, so a big answer is
 * never a tree (nor dumped from one) on the loop thread. */
struct splice {
    char *raw; /* owned; one well-formed JSON value */
    size_t len;
};

/* One exchange: a single message or a batch. pending counts the dispatcher's own hold plus
 * every tool call in flight; whoever drops it to zero sends the reply. */
struct exchange {
    pthread_mutex_t mu;
    int pending;
    bool batch;
    bool noted; /* b.note was called */
    enum era era;
    unsigned status;   /* for a single message */
    bool oom;          /* an answer could not be built */
    size_t calls;      /* tools/call messages that reached the upstream stage */
    json_t *response;  /* a single message's answer, or NULL */
    json_t *responses; /* a batch's answers, made at the first one (NULL: none) */
    struct nk_mcp_reply rep;
    nk_mcp_reply_fn reply;
    void *ud;
    struct nk_mcp_backend b;
    struct nk_mcp *m;
    struct nk_mcp_conn *conn;          /* stdio only */
    const struct nk_mcp_http_in *http; /* HTTP only; valid only during dispatch */
    /* placeholders "\x01nk-raw:<nonce>:<index>:<t|v>" (text block or value) name splices[index];
     * the nonce is random per exchange, so no caller-chosen string can pass for one. "" when
     * no random bytes were to be had: results are then built from a parsed tree. */
    char nonce[33];
    struct splice *splices; /* guarded by mu; &splice0 until a second one is needed */
    size_t n_splices, cap_splices;
    struct splice splice0;
    /* the first tools/call of the exchange (the only one of a single message) lives here:
     * one allocation per call fewer */
    struct call call0;
    bool call0_used;
};

#define SPLICE_MARK "\"\\u0001nk-raw:" /* a placeholder as json_dumps writes it */

/* Bytes of raw once escaped as the content of a JSON string (without the quotes). raw is
 * well-formed JSON: outside its strings only whitespace needs escaping, and its strings are
 * valid UTF-8, kept as they are (as jansson writes them). */
static size_t escaped_len(const char *raw, size_t len)
{
    size_t i, n = 0;
    unsigned char c;

    for (i = 0; i < len; i++) {
        c = (unsigned char)raw[i];
        n += c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ? 2 : c < 0x20 ? 6 : 1;
    }
    return n;
}

static char *escape_into(char *o, const char *raw, size_t len)
{
    size_t i;
    unsigned char c;

    for (i = 0; i < len; i++) {
        c = (unsigned char)raw[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            *o++ = '\\';
            *o++ = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20) {
            o += sprintf(o, "\\u%04x", c);
        } else {
            *o++ = (char)c;
        }
    }
    return o;
}

/* At text[i], a placeholder of x? Sets its splice index, kind and length. */
static bool splice_at(const struct exchange *x, const char *text, size_t len, size_t i, size_t *idx,
                      char *kind, size_t *tok_len)
{
    size_t m = strlen(SPLICE_MARK), j;
    unsigned long long v = 0;

    if (len - i < m + 32 + 4 || memcmp(text + i, SPLICE_MARK, m) != 0 ||
        memcmp(text + i + m, x->nonce, 32) != 0 || text[i + m + 32] != ':')
        return false;
    for (j = i + m + 33; j < len && text[j] >= '0' && text[j] <= '9' && v < x->n_splices; j++)
        v = v * 10 + (unsigned long long)(text[j] - '0');
    if (j == i + m + 33 || v >= x->n_splices || len - j < 3 || text[j] != ':' ||
        (text[j + 1] != 't' && text[j + 1] != 'v') || text[j + 2] != '"')
        return false;
    *idx = (size_t)v;
    *kind = text[j + 1];
    *tok_len = j + 3 - i;
    return true;
}

/* Replace every placeholder in text (len bytes, from json_dumps; freed here) by its answer: the
 * escaped text in a string for 't', the JSON value itself for 'v'. New buffer, or NULL on OOM. */
static char *splice_reply(const struct exchange *x, char *text, size_t *len)
{
    size_t i, k, out_len = 0, idx, tok, pass;
    char kind, *out = NULL, *o = NULL;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < *len;) {
            const struct splice *s;
            const char *q = memchr(text + i, '"', *len - i);
            size_t plain = q != NULL ? (size_t)(q - text) - i : *len - i;

            if (pass == 1)
                memcpy(o, text + i, plain), o += plain;
            out_len += pass == 0 ? plain : 0;
            i += plain;
            if (i == *len)
                break;
            if (!splice_at(x, text, *len, i, &idx, &kind, &tok)) {
                if (pass == 1)
                    *o++ = '"';
                out_len += pass == 0 ? 1 : 0;
                i++;
                continue;
            }
            s = &x->splices[idx];
            if (pass == 0) {
                out_len += kind == 't' ? escaped_len(s->raw, s->len) + 2 : s->len;
            } else if (kind == 't') {
                *o++ = '"';
                o = escape_into(o, s->raw, s->len);
                *o++ = '"';
            } else {
                /* Line breaks can only be whitespace between tokens here (a JSON string holds
                 * none): spaces keep a stdio message on one line. */
                for (k = 0; k < s->len; k++)
                    *o++ = s->raw[k] == '\n' || s->raw[k] == '\r' ? ' ' : s->raw[k];
            }
            i += tok;
        }
        if (pass == 0) {
            out = malloc(out_len + 1);
            if (out == NULL)
                break;
            o = out;
        }
    }
    if (out != NULL) {
        *o = '\0';
        *len = out_len;
    }
    free(text);
    return out;
}

static void exchange_finish(struct exchange *x)
{
    size_t n = x->batch ? json_array_size(x->responses) : x->response != NULL, i;
    json_t *out = NULL;

    if (x->oom) {
        x->rep.status = 500;
    } else if (n == 0) {
        x->rep.status = 202;
    } else {
        out = json_incref(x->batch ? x->responses : x->response);
        x->rep.body = nk_json_compact(out, &x->rep.len);
        if (x->rep.body != NULL) {
            if (x->n_splices > 0)
                x->rep.body = splice_reply(x, x->rep.body, &x->rep.len);
        }
        if (x->rep.body == NULL) {
            x->rep.status = 500;
        } else {
            x->rep.json = true;
            x->rep.status = x->batch ? 200 : x->status;
        }
    }
    json_decref(out);
    for (i = 0; i < x->n_splices; i++)
        free(x->splices[i].raw);
    if (x->splices != &x->splice0)
        free(x->splices);
    x->reply(x->ud, &x->rep);
    free(x->rep.body);
    json_decref(x->response);
    json_decref(x->responses);
    pthread_mutex_destroy(&x->mu);
    free(x);
}

static void exchange_release(struct exchange *x)
{
    int left;

    pthread_mutex_lock(&x->mu);
    left = --x->pending;
    pthread_mutex_unlock(&x->mu);
    if (left == 0)
        exchange_finish(x);
}

static void exchange_hold(struct exchange *x)
{
    pthread_mutex_lock(&x->mu);
    x->pending++;
    pthread_mutex_unlock(&x->mu);
}

static unsigned status_for(int code, enum era era)
{
    switch (code) {
    case RPC_PARSE_ERROR:
    case RPC_INVALID_REQUEST:
        return 400;
    case RPC_METHOD_NOT_FOUND:
        return era == ERA_MODERN ? 404 : 200;
    case RPC_INVALID_PARAMS:
    case MCP_HEADER_MISMATCH:
    case MCP_UNSUPPORTED_VERSION:
        return era == ERA_MODERN ? 400 : 200;
    case RPC_INTERNAL:
        return 500;
    default:
        return 200;
    }
}

/* Append a response (steals resp). Status applies to a single message only. When resp could
 * not be built, this one message becomes a -32603 error: the other answers of a batch (one of
 * them may carry what a state-changing call returned) are kept. */
static void add_response(struct exchange *x, json_t *id, json_t *resp, unsigned status)
{
    if (resp == NULL) {
        resp = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
                         id != NULL ? id : json_null(), "error", "code", RPC_INTERNAL, "message",
                         "Internal error: the answer could not be built");
        status = 500;
    }
    pthread_mutex_lock(&x->mu);
    if (resp == NULL) {
        /* Out of memory even for that: the best we can say is a bare 500. */
        x->oom = true;
        pthread_mutex_unlock(&x->mu);
        return;
    }
    if (x->batch) {
        if (x->responses == NULL)
            x->responses = json_array();
        if (x->responses != NULL) {
            /* takes resp even on failure, which drops this one answer as before */
            json_array_append_new(x->responses, resp);
            resp = NULL;
        } else {
            x->oom = true; /* no array for any answer: a bare 500 */
        }
    } else if (x->response == NULL) {
        x->response = resp; /* a single message has one answer: later ones are dropped */
        resp = NULL;
        x->status = status;
    }
    pthread_mutex_unlock(&x->mu);
    json_decref(resp);
}

static json_t *server_info(void)
{
    return json_pack("{s:s, s:s}", "name", "naftikod", "version", NK_VERSION);
}

static void add_error(struct exchange *x, json_t *id, int code, const char *msg, json_t *data)
{
    json_t *err = json_pack("{s:i, s:o}", "code", code, "message", nk_json_text(msg));
    json_t *resp = NULL;

    if (err != NULL && data != NULL)
        json_object_set(err, "data", data);
    if (err != NULL)
        resp = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
                         err);
    add_response(x, id, resp, status_for(code, x->era));
}

/* Steals result. Stateless results carry resultType and the server's identity. */
static void add_result(struct exchange *x, json_t *id, json_t *result)
{
    json_t *resp = NULL;

    if (result != NULL && x->era == ERA_MODERN) {
        json_t *meta = json_object();

        json_object_set_new(result, "resultType", json_string("complete"));
        if (meta != NULL) {
            json_object_set_new(meta, META_SERVER_INFO, server_info());
            json_object_set_new(result, "_meta", meta);
        }
    }
    if (result != NULL)
        resp = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
    add_response(x, id, resp, 200);
}

/* ---- tools -------------------------------------------------------------------------------- */

static const char *type_name(enum nk_type t)
{
    /* JSON Schema has no name for "any": the caller leaves "type" out. */
    return t == NK_TYPE_ANY ? NULL : nk_type_name(t);
}

static const char *tool_description(const struct nk_exposed *t)
{
    if (t->description != NULL && t->description[0] != '\0')
        return t->description;
    if (t->target != NULL && t->target->description != NULL && t->target->description[0] != '\0')
        return t->target->description;
    return t->name;
}

static json_t *input_schema(const struct nk_exposed *t)
{
    json_t *s, *props, *req;
    size_t i;

    if (t->input_schema != NULL && json_is_object(t->input_schema))
        return json_deep_copy(t->input_schema);
    s = json_pack("{s:s, s:{}}", "type", "object", "properties");
    req = json_array();
    if (s == NULL || req == NULL)
        goto fail;
    props = json_object_get(s, "properties");
    for (i = 0; i < t->n_args; i++) {
        const struct nk_arg *a = &t->args[i];
        json_t *p;

        if (a->schema != NULL && json_is_object(a->schema)) {
            p = json_deep_copy(a->schema);
        } else {
            p = json_object();
            if (p != NULL && type_name(a->type) != NULL)
                json_object_set_new(p, "type", json_string(type_name(a->type)));
            if (p != NULL && a->description != NULL)
                json_object_set_new(p, "description", json_string(a->description));
            if (p != NULL && a->pattern != NULL && a->type == NK_TYPE_STRING)
                json_object_set_new(p, "pattern", json_string(a->pattern));
        }
        if (p == NULL || json_object_set_new(props, a->name, p) != 0)
            goto fail;
        if (a->required)
            json_array_append_new(req, json_string(a->name));
    }
    if (json_array_size(req) > 0)
        json_object_set(s, "required", req);
    json_decref(req);
    return s;
fail:
    json_decref(req);
    json_decref(s);
    return NULL;
}

static json_t *tool_json(const struct nk_exposed *t)
{
    json_t *o = json_object(), *ann = json_object(), *schema = input_schema(t);

    if (o == NULL || ann == NULL || schema == NULL)
        goto fail;
    json_object_set_new(o, "name", json_string(t->name));
    if (t->title != NULL) {
        json_object_set_new(o, "title", json_string(t->title));
        json_object_set_new(ann, "title", json_string(t->title));
    }
    json_object_set_new(o, "description", json_string(tool_description(t)));
    json_object_set_new(o, "inputSchema", schema);
    schema = NULL;
    json_object_set_new(ann, "readOnlyHint", json_boolean(t->hints.read_only));
    json_object_set_new(ann, "destructiveHint", json_boolean(t->hints.destructive));
    json_object_set_new(ann, "idempotentHint", json_boolean(t->hints.idempotent));
    json_object_set_new(ann, "openWorldHint", json_boolean(t->hints.open_world));
    json_object_set_new(o, "annotations", ann);
    return o;
fail:
    json_decref(o);
    json_decref(ann);
    json_decref(schema);
    return NULL;
}

/* Cursors are opaque to clients: base64url("nk1:<offset>"). */
static void make_cursor(size_t off, char out[64])
{
    char raw[32];
    int n = snprintf(raw, sizeof(raw), "nk1:%zu", off);

    nk_b64url_encode(raw, (size_t)n, out);
}

static bool parse_cursor(const char *c, size_t total, size_t *off)
{
    unsigned char raw[32];
    size_t n = nk_b64url_decode(c, strlen(c), raw, sizeof(raw) - 1);
    char *end;
    unsigned long long v;

    if (n == (size_t)-1 || n < 5 || memcmp(raw, "nk1:", 4) != 0)
        return false;
    raw[n] = '\0';
    if (raw[4] < '0' || raw[4] > '9')
        return false;
    errno = 0;
    v = strtoull((const char *)raw + 4, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v >= total)
        return false;
    *off = (size_t)v;
    return true;
}

/* Does this caller's tools/list show t? (--read-only, then the permission rules) */
static bool shown(struct exchange *x, const struct nk_exposed *t)
{
    if (x->b.read_only && !t->hints.read_only)
        return false;
    return x->b.visible == NULL || x->b.visible(x->b.call_ud, t);
}

static void do_tools_list(struct exchange *x, json_t *id, json_t *params)
{
    const struct nk_adapter *a = x->b.adapter;
    size_t total = a != NULL ? a->n_ops : 0, off = 0, i, end, n;
    json_t *cursor = json_object_get(params, "cursor");
    json_t *res = NULL, *tools = NULL;

    if (cursor != NULL && !json_is_null(cursor)) {
        if (!json_is_string(cursor) || !parse_cursor(json_string_value(cursor), total, &off)) {
            add_error(x, id, RPC_INVALID_PARAMS, "Invalid params: unknown cursor", NULL);
            return;
        }
    }
    tools = json_array();
    if (tools == NULL)
        goto oom;
    /* A page holds up to page_size visible tools; the cursor is an index into all of them. */
    for (i = off, end = off, n = 0; i < total && n < x->m->page_size; i++) {
        json_t *t;

        end = i + 1;
        if (!shown(x, &a->ops[i]))
            continue;
        t = tool_json(&a->ops[i]);
        if (t == NULL || json_array_append_new(tools, t) != 0)
            goto oom;
        n++;
    }
    while (end < total && !shown(x, &a->ops[end]))
        end++; /* no empty last page */
    res = json_object();
    if (res == NULL)
        goto oom;
    json_object_set_new(res, "tools", tools);
    tools = NULL;
    if (end < total) {
        char c[64];

        make_cursor(end, c);
        json_object_set_new(res, "nextCursor", json_string(c));
    }
    if (x->era == ERA_MODERN) {
        json_object_set_new(res, "ttlMs", json_integer(x->m->tools_ttl_ms));
        /* Without permission rules the list is the same for every caller: shared caches may
         * keep it. With them it is this caller's own. */
        json_object_set_new(res, "cacheScope",
                            json_string(x->b.private_list ? "private" : "public"));
    }
    add_result(x, id, res);
    return;
oom:
    json_decref(tools);
    json_decref(res);
    add_error(x, id, RPC_INTERNAL, "Internal error: out of memory", NULL);
}

static const struct nk_exposed *find_tool(const struct nk_adapter *a, const char *name)
{
    size_t i;

    for (i = 0; a != NULL && i < a->n_ops; i++)
        if (strcmp(a->ops[i].name, name) == 0)
            return &a->ops[i];
    return NULL;
}

static json_t *text_result(const char *text, bool is_error)
{
    json_t *r =
        json_pack("{s:[{s:s, s:o}]}", "content", "type", "text", "text", nk_json_text(text));

    if (r != NULL && is_error)
        json_object_set_new(r, "isError", json_true());
    return r;
}

/* The CallToolResult of an answer passed through: a text block and structuredContent that are
 * placeholders for a copy of it (spliced in by exchange_finish). NULL on OOM. */
static json_t *raw_result(struct exchange *x, struct nk_result *r, enum era era)
{
    struct splice *ns = NULL;
    json_t *res = NULL, *sc = NULL;
    char ph_text[80], ph_value[80];
    const char *raw = r->raw; /* stays where it is once taken */
    size_t i = 0, k;
    bool kept = false;

    pthread_mutex_lock(&x->mu);
    if (x->n_splices < x->cap_splices) {
        ns = x->splices;
    } else if (x->splices == NULL) {
        ns = x->splices = &x->splice0;
        x->cap_splices = 1;
    } else {
        /* a batch with several answers passed through: the array moves to the heap */
        ns = malloc(2 * x->cap_splices * sizeof(*ns));
        if (ns != NULL) {
            memcpy(ns, x->splices, x->n_splices * sizeof(*ns));
            if (x->splices != &x->splice0)
                free(x->splices);
            x->splices = ns;
            x->cap_splices *= 2;
        }
    }
    if (ns != NULL) {
        /* the answer is taken, not copied: the backend frees r without it */
        i = x->n_splices++;
        ns[i].raw = r->raw;
        ns[i].len = r->raw_len;
        r->raw = NULL;
        kept = true;
    }
    pthread_mutex_unlock(&x->mu);
    if (!kept)
        return NULL;
    snprintf(ph_text, sizeof(ph_text), "\x01nk-raw:%s:%zu:t", x->nonce, i);
    snprintf(ph_value, sizeof(ph_value), "\x01nk-raw:%s:%zu:v", x->nonce, i);
    for (k = 0; k < r->raw_len && strchr(" \t\r\n", raw[k]) != NULL; k++)
        ;
    /* The handshake era wants an object: a non-object answer is wrapped as {"result": ...}. */
    if (era == ERA_MODERN || (k < r->raw_len && raw[k] == '{'))
        sc = json_string(ph_value);
    else
        sc = json_pack("{s:s}", "result", ph_value);
    res = sc != NULL ? text_result(ph_text, false) : NULL;
    if (res != NULL) {
        if (json_object_set_new(res, "structuredContent", sc) != 0) {
            json_decref(res); /* json_object_set_new took sc even so */
            res = NULL;
        }
        sc = NULL;
    }
    json_decref(sc);
    return res;
}

/* Build a CallToolResult from an invocation result. */
static json_t *call_result(struct exchange *x, struct nk_result *r, enum era era)
{
    json_t *res = NULL, *sc = NULL;
    char *text = NULL;

    if (r->kind == NK_RES_OK && r->raw_is_output && x->nonce[0] != '\0') {
        res = raw_result(x, r, era);
        goto out;
    }
    if (r->kind == NK_RES_OK && r->raw_is_output) {
        /* No nonce for placeholders: parse the answer (checked well-formed UTF-8 JSON). */
        json_t *v = json_loadb(r->raw, r->raw_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);

        if (v != NULL && (era == ERA_MODERN || json_is_object(v)))
            sc = json_incref(v);
        else if (v != NULL)
            sc = json_pack("{s:O}", "result", v);
        json_decref(v);
        res = sc != NULL ? json_pack("{s:[{s:s, s:s%}]}", "content", "type", "text", "text", r->raw,
                                     r->raw_len)
                         : NULL;
        if (res != NULL)
            json_object_set(res, "structuredContent", sc);
        goto out;
    }
    if (r->kind == NK_RES_OK) {
        json_t *v = r->json != NULL ? r->json : json_null();

        if (era == ERA_MODERN || json_is_object(v))
            sc = json_incref(v);
        else
            sc = json_pack("{s:O}", "result", v);
        text = nk_json_compact(v, NULL);
        if (sc == NULL || text == NULL)
            goto out;
        res = text_result(text, false);
        if (res != NULL)
            json_object_set(res, "structuredContent", sc);
        goto out;
    }
    res = text_result(r->message[0] != '\0' ? r->message : "the tool call failed", true);
    if (res != NULL && r->kind == NK_RES_UPSTREAM_ERROR && json_is_object(r->json))
        json_object_set(res, "structuredContent", r->json);
out:
    free(text);
    json_decref(sc);
    return res;
}

/* List c where notifications/cancelled can find it: stdio (either era) and HTTP sessions. */
static void call_list(struct exchange *x, struct call *c)
{
    struct nk_mcp *m = x->m;

    if (x->conn != NULL) {
        c->conn = x->conn;
    } else if (x->http != NULL && x->era == ERA_MODERN && x->ud != NULL) {
        c->stream = x->ud; /* cancelled by closing its stream: nk_mcp_http_closed() */
    } else if (x->http != NULL && x->http->session_id != NULL) {
        snprintf(c->sid, sizeof(c->sid), "%s", x->http->session_id);
    } else {
        return;
    }
    c->cancel = x->b.cancel;
    c->cancel_ud = x->b.call_ud;
    pthread_mutex_lock(&m->mu);
    c->next = m->calls;
    if (m->calls != NULL)
        m->calls->prev = c;
    m->calls = c;
    c->listed = true;
    pthread_mutex_unlock(&m->mu);
}

/* Take c off the list; true when it was cancelled meanwhile. */
static bool call_unlist(struct nk_mcp *m, struct call *c)
{
    bool cancelled;

    pthread_mutex_lock(&m->mu);
    if (c->listed) {
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            m->calls = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        c->listed = false;
    }
    cancelled = c->cancelled;
    pthread_mutex_unlock(&m->mu);
    return cancelled;
}

uint64_t nk_mcp_call_tag(const void *done_ud)
{
    const struct call *c = done_ud;

    return c != NULL ? c->tag : 0;
}

static void call_done(void *ud, struct nk_result *r)
{
    struct call *c = ud;
    struct exchange *x = c->x;
    json_t *res, *id = c->id;

    if (!call_unlist(x->m, c)) {
        res = call_result(x, r, x->era);
        if (res == NULL)
            add_error(x, id, RPC_INTERNAL, "Internal error: out of memory", NULL);
        else
            add_result(x, id, res);
    } /* else: cancelled by the client, which wants no response for it */
    if (!c->embedded)
        free(c);
    exchange_release(x); /* may free x, and call0 with it */
    json_decref(id);
}

/* notifications/cancelled: the named request of the same stdio connection or HTTP session gets
 * no response, and its upstream transfer is aborted. Unknown or finished ids are ignored. */
static void do_cancelled(struct exchange *x, json_t *params)
{
    json_t *rid = json_object_get(params, "requestId");
    const char *sid = x->http != NULL ? x->http->session_id : NULL;
    uint64_t tags[16];
    size_t n = 0, i;
    struct call *c;

    if (!valid_id(rid) || (x->conn == NULL && sid == NULL))
        return;
    pthread_mutex_lock(&x->m->mu);
    for (c = x->m->calls; c != NULL && n < sizeof(tags) / sizeof(tags[0]); c = c->next) {
        if (c->cancelled || !json_equal(c->id, rid))
            continue;
        if (x->conn != NULL ? c->conn != x->conn
                            : c->conn != NULL || c->stream != NULL || strcmp(c->sid, sid) != 0)
            continue;
        c->cancelled = true;
        tags[n++] = c->tag;
    }
    pthread_mutex_unlock(&x->m->mu);
    for (i = 0; i < n && x->b.cancel != NULL; i++)
        x->b.cancel(x->b.call_ud, tags[i]);
}

static void do_tools_call(struct exchange *x, json_t *id, json_t *params)
{
    json_t *name = json_object_get(params, "name");
    json_t *args = json_object_get(params, "arguments");
    json_t *empty = NULL;
    const struct nk_exposed *tool;
    struct nk_error err;
    struct call *c = NULL;
    json_t *data = NULL;
    unsigned retry = 1;
    char msg[600];
    enum nk_rc rc;
    bool cancelled;

    if (!json_is_string(name)) {
        add_error(x, id, RPC_INVALID_PARAMS, "Invalid params: 'name' must be a string", NULL);
        return;
    }
    tool = find_tool(x->b.adapter, json_string_value(name));
    if (tool != NULL && x->b.read_only && !tool->hints.read_only)
        tool = NULL; /* --read-only: not a tool here */
    if (tool == NULL) {
        snprintf(msg, sizeof(msg), "Unknown tool: %s", json_string_value(name));
        nk_utf8_fix(msg, sizeof(msg)); /* the name may have been cut mid-character */
        add_error(x, id, RPC_INVALID_PARAMS, msg, NULL);
        return;
    }
    if (args == NULL || json_is_null(args)) {
        args = empty = json_object();
        if (empty == NULL)
            goto oom;
    } else if (!json_is_object(args)) {
        add_error(x, id, RPC_INVALID_PARAMS, "Invalid params: 'arguments' must be an object", NULL);
        return;
    }
    if (x->b.call == NULL) {
        add_result(x, id, text_result("no upstream is configured for this tool", true));
        goto out;
    }
    /* The request paid for one call; each further call of a batch is charged on its own. */
    if (x->calls++ > 0 && x->b.charge != NULL && !x->b.charge(x->b.call_ud, &retry)) {
        snprintf(msg, sizeof(msg), "rate limited, retry after %u s", retry);
        data = json_pack("{s:I}", "retryAfter", (json_int_t)retry);
        add_error(x, id, NK_MCP_RATE_LIMITED, msg, data);
        goto out;
    }
    if (!x->call0_used) {
        c = &x->call0;
        memset(c, 0, sizeof(*c));
        c->embedded = true;
        x->call0_used = true;
    } else {
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            goto oom;
    }
    c->x = x;
    c->id = json_incref(id);
    pthread_mutex_lock(&x->m->mu);
    c->tag = ++x->m->next_tag;
    pthread_mutex_unlock(&x->m->mu);
    call_list(x, c);
    memset(&err, 0, sizeof(err));
    exchange_hold(x);
    rc = x->b.call(x->b.call_ud, tool, args, call_done, c, &err);
    if (rc == NK_OK) {
        c = NULL; /* call_done owns it now */
        goto out;
    }
    exchange_release(x); /* cannot reach zero: the dispatcher still holds x */
    cancelled = call_unlist(x->m, c);
    json_decref(c->id);
    if (c->embedded)
        x->call0_used = false;
    else
        free(c);
    c = NULL;
    if (cancelled) {
        goto out;
    } else if (rc == NK_ERR_FORBIDDEN) {
        /* Not the model's to fix by changing arguments alone: a protocol error that names
         * the missing permission. */
        nk_utf8_fix(err.msg, sizeof(err.msg));
        add_error(x, id, NK_MCP_FORBIDDEN, err.msg[0] != '\0' ? err.msg : "permission denied",
                  NULL);
    } else if (rc == NK_ERR_INVALID) {
        /* Bad arguments are the model's to fix: a tool result, not a protocol error. */
        add_result(x, id, text_result(err.msg[0] != '\0' ? err.msg : "invalid arguments", true));
    } else {
        snprintf(msg, sizeof(msg), "the tool call could not start: %s",
                 err.msg[0] != '\0' ? err.msg : nk_rc_str(rc));
        nk_utf8_fix(msg, sizeof(msg));
        add_result(x, id, text_result(msg, true));
    }
    goto out;
oom:
    add_error(x, id, RPC_INTERNAL, "Internal error: out of memory", NULL);
out:
    json_decref(data);
    json_decref(empty);
}

/* listChanged: an HTTP handshake-era session can open the GET stream that carries
 * notifications/tools/list_changed after a reload; stdio has no reload, the 2026-07-28 era has
 * no server-to-client stream (ttlMs says how long a list holds). */
static json_t *capabilities(bool list_changed)
{
    return json_pack("{s:{s:b}}", "tools", "listChanged", list_changed);
}

static void do_initialize(struct exchange *x, json_t *id, json_t *params)
{
    json_t *pv = json_object_get(params, "protocolVersion");
    const char *v;
    json_t *res;

    if (!json_is_object(params) || !json_is_string(pv)) {
        add_error(x, id, RPC_INVALID_PARAMS, "Invalid params: 'protocolVersion' is required", NULL);
        return;
    }
    v = json_string_value(pv);
    if (!is_handshake_version(v))
        v = NK_MCP_LATEST_HANDSHAKE_VERSION;
    res = json_pack("{s:s, s:o, s:o}", "protocolVersion", v, "capabilities",
                    capabilities(x->conn == NULL), "serverInfo", server_info());
    if (res != NULL && x->b.adapter != NULL && x->b.adapter->description != NULL)
        json_object_set_new(res, "instructions", json_string(x->b.adapter->description));
    if (res != NULL && x->conn != NULL)
        snprintf(x->conn->version, sizeof(x->conn->version), "%s", v);
    if (res == NULL)
        add_error(x, id, RPC_INTERNAL, "Internal error: out of memory", NULL);
    else
        add_result(x, id, res);
}

static void do_discover(struct exchange *x, json_t *id)
{
    json_t *res = json_pack("{s:o, s:o, s:I, s:s}", "supportedVersions", supported_versions(),
                            "capabilities", capabilities(false), "ttlMs",
                            (json_int_t)x->m->tools_ttl_ms, "cacheScope", "public");

    if (res != NULL && x->b.adapter != NULL && x->b.adapter->description != NULL)
        json_object_set_new(res, "instructions", json_string(x->b.adapter->description));
    if (res == NULL)
        add_error(x, id, RPC_INTERNAL, "Internal error: out of memory", NULL);
    else
        add_result(x, id, res);
}

void nk_mcp_http_closed(struct nk_mcp *m, const void *ud)
{
    struct call *c;
    nk_mcp_cancel_fn fn = NULL;
    void *fn_ud = NULL;
    uint64_t tag = 0;

    if (ud == NULL)
        return; /* never a listed stream (stdio and session calls have none) */
    /* A stateless exchange is one message: at most one call. */
    pthread_mutex_lock(&m->mu);
    for (c = m->calls; c != NULL; c = c->next)
        if (c->stream == ud && !c->cancelled) {
            c->cancelled = true;
            fn = c->cancel;
            fn_ud = c->cancel_ud;
            tag = c->tag;
            break;
        }
    pthread_mutex_unlock(&m->mu);
    if (fn != NULL)
        fn(fn_ud, tag);
}

/* Valid JSON-RPC id: string or integer. */
static bool valid_id(json_t *id)
{
    return json_is_string(id) || json_is_integer(id);
}

/* Checks only a stateless request over HTTP needs: headers against the body. */
static bool modern_headers_ok(struct exchange *x, json_t *id, const char *method, json_t *params,
                              const char *meta_version)
{
    const struct nk_mcp_http_in *in = x->http;
    char buf[512];
    const char *hv, *want = NULL;
    json_t *name = NULL;

    if (in == NULL)
        return true;
    hv = trim_ows(in->protocol_version, buf, sizeof(buf));
    if (hv == NULL || strcmp(hv, meta_version) != 0) {
        add_error(x, id, MCP_HEADER_MISMATCH,
                  hv == NULL ? "Header mismatch: MCP-Protocol-Version header is missing"
                             : "Header mismatch: MCP-Protocol-Version does not match "
                               "_meta protocolVersion",
                  NULL);
        return false;
    }
    hv = trim_ows(in->mcp_method, buf, sizeof(buf));
    if (hv == NULL || strcmp(hv, method) != 0) {
        add_error(x, id, MCP_HEADER_MISMATCH,
                  hv == NULL ? "Header mismatch: Mcp-Method header is missing"
                             : "Header mismatch: Mcp-Method does not match the body's method",
                  NULL);
        return false;
    }
    if (strcmp(method, "tools/call") == 0 || strcmp(method, "prompts/get") == 0)
        name = json_object_get(params, "name");
    else if (strcmp(method, "resources/read") == 0)
        name = json_object_get(params, "uri");
    if (json_is_string(name))
        want = json_string_value(name);
    hv = trim_ows(in->mcp_name, buf, sizeof(buf));
    if ((want != NULL || hv != NULL) && (want == NULL || hv == NULL || strcmp(hv, want) != 0)) {
        add_error(x, id, MCP_HEADER_MISMATCH,
                  hv == NULL ? "Header mismatch: Mcp-Name header is missing"
                             : "Header mismatch: Mcp-Name does not match the body",
                  NULL);
        return false;
    }
    return true;
}

static void dispatch_modern(struct exchange *x, json_t *id, const char *method, json_t *params)
{
    json_t *meta = json_object_get(params, "_meta");
    json_t *pv = json_object_get(meta, META_VERSION);
    json_t *caps = json_object_get(meta, META_CAPS);
    const char *v;

    if (!json_is_object(params) || !json_is_object(meta) || !json_is_string(pv) ||
        !json_is_object(caps)) {
        add_error(x, id, RPC_INVALID_PARAMS,
                  "Invalid params: _meta must carry " META_VERSION " and " META_CAPS, NULL);
        return;
    }
    v = json_string_value(pv);
    if (!modern_headers_ok(x, id, method, params, v))
        return;
    if (strcmp(v, NK_MCP_MODERN_VERSION) != 0) {
        json_t *data = json_pack("{s:o, s:s}", "supported", supported_versions(), "requested", v);

        add_error(x, id, MCP_UNSUPPORTED_VERSION, "Unsupported protocol version", data);
        json_decref(data);
        return;
    }
    if (strcmp(method, "server/discover") == 0)
        do_discover(x, id);
    else if (strcmp(method, "tools/list") == 0)
        do_tools_list(x, id, params);
    else if (strcmp(method, "tools/call") == 0)
        do_tools_call(x, id, params);
    else
        add_error(x, id, RPC_METHOD_NOT_FOUND, "Method not found", NULL);
}

static void dispatch_handshake(struct exchange *x, json_t *id, const char *method, json_t *params)
{
    if (params != NULL && !json_is_object(params)) {
        add_error(x, id, RPC_INVALID_PARAMS, "Invalid params: params must be an object", NULL);
        return;
    }
    if (strcmp(method, "initialize") == 0)
        do_initialize(x, id, params);
    else if (strcmp(method, "ping") == 0)
        add_result(x, id, json_object());
    else if (strcmp(method, "tools/list") == 0)
        do_tools_list(x, id, params);
    else if (strcmp(method, "tools/call") == 0)
        do_tools_call(x, id, params);
    else
        add_error(x, id, RPC_METHOD_NOT_FOUND, "Method not found", NULL);
}

/* One message of an exchange. */
static void dispatch_one(struct exchange *x, json_t *msg)
{
    json_t *id, *method, *params;
    json_t *jv = json_object_get(msg, "jsonrpc");

    if (!json_is_object(msg)) {
        add_error(x, NULL, RPC_INVALID_REQUEST, "Invalid Request: not an object", NULL);
        return;
    }
    id = json_object_get(msg, "id");
    method = json_object_get(msg, "method");
    params = json_object_get(msg, "params");
    if (!json_is_string(jv) || strcmp(json_string_value(jv), "2.0") != 0 ||
        (id != NULL && !valid_id(id))) {
        add_error(x, valid_id(id) ? id : NULL, RPC_INVALID_REQUEST,
                  "Invalid Request: not JSON-RPC 2.0", NULL);
        return;
    }
    if (method == NULL) {
        /* A response from the client (we never send requests) or garbage. */
        if (id != NULL &&
            (json_object_get(msg, "result") != NULL || json_object_get(msg, "error") != NULL))
            return;
        add_error(x, id, RPC_INVALID_REQUEST, "Invalid Request: no method", NULL);
        return;
    }
    if (!json_is_string(method)) {
        add_error(x, id, RPC_INVALID_REQUEST, "Invalid Request: method must be a string", NULL);
        return;
    }
    if (x->b.note != NULL && !x->noted) {
        json_t *name = strcmp(json_string_value(method), "tools/call") == 0
                           ? json_object_get(params, "name")
                           : NULL;

        x->noted = true;
        x->b.note(x->b.call_ud, json_string_value(method),
                  json_is_string(name) ? json_string_value(name) : NULL);
    }
    if (id == NULL) {
        /* Notifications need no answer; only cancellation acts. */
        if (strcmp(json_string_value(method), "notifications/cancelled") == 0)
            do_cancelled(x, params);
        return;
    }
    if (x->era == ERA_MODERN)
        dispatch_modern(x, id, json_string_value(method), params);
    else
        dispatch_handshake(x, id, json_string_value(method), params);
}

static struct exchange *exchange_new(struct nk_mcp *m, const struct nk_mcp_backend *b,
                                     nk_mcp_reply_fn reply, void *ud)
{
    struct exchange *x = calloc(1, sizeof(*x));

    if (x == NULL)
        return NULL;
    pthread_mutex_init(&x->mu, NULL);
    x->pending = 1;
    x->status = 200;
    x->m = m;
    if (b != NULL)
        x->b = *b;
    x->reply = reply;
    x->ud = ud;
    {
        unsigned char r[16];
        size_t i;

        static const char hexd[] = "0123456789abcdef";

        if (random_bytes(r, sizeof(r)) == NK_OK) {
            for (i = 0; i < sizeof(r); i++) {
                x->nonce[2 * i] = hexd[r[i] >> 4];
                x->nonce[2 * i + 1] = hexd[r[i] & 15];
            }
            x->nonce[2 * sizeof(r)] = '\0';
        }
    }
    return x;
}

/* Reply at once without an exchange (framing errors, sessions, methods). */
static void reply_now(nk_mcp_reply_fn reply, void *ud, unsigned status, int code, const char *msg,
                      const char *allow)
{
    struct nk_mcp_reply r;
    json_t *body = NULL;

    memset(&r, 0, sizeof(r));
    r.status = status;
    r.allow = allow;
    if (code != 0) {
        body = json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error", "code", code,
                         "message", msg);
        r.body = body != NULL ? nk_json_compact(body, &r.len) : NULL;
        if (r.body != NULL) {
            r.json = true;
        }
    }
    json_decref(body);
    reply(ud, &r);
    free(r.body);
}

/* "Parse error", naming a duplicate key (JSON-RPC has no code of its own for it). */
static const char *parse_error_message(const json_error_t *e, char *buf, size_t cap)
{
    if (strstr(e->text, "duplicate object key") == NULL)
        return "Parse error";
    snprintf(buf, cap, "Parse error: %s", e->text);
    nk_utf8_fix(buf, cap);
    return buf;
}

/* Modern when the header names the stateless version or the body carries its _meta. */
static bool looks_modern(const char *header_version, json_t *body)
{
    char buf[64];
    const char *hv = trim_ows(header_version, buf, sizeof(buf));
    json_t *meta = json_object_get(json_object_get(body, "params"), "_meta");

    if (hv != NULL && strcmp(hv, NK_MCP_MODERN_VERSION) == 0)
        return true;
    return json_is_object(body) && json_object_get(meta, META_VERSION) != NULL;
}

static bool is_initialize(json_t *body)
{
    json_t *method = json_object_get(body, "method");

    return json_is_object(body) && json_is_string(method) &&
           strcmp(json_string_value(method), "initialize") == 0;
}

/* A batch over the limit is refused whole, before any of its calls runs. */
static bool batch_too_large(struct exchange *x, json_t *body)
{
    size_t max = x->b.max_batch != 0 ? x->b.max_batch : NK_MCP_DEFAULT_MAX_BATCH;
    char msg[128];

    if (!json_is_array(body) || json_array_size(body) <= max)
        return false;
    snprintf(msg, sizeof(msg), "Invalid Request: a batch holds at most %zu messages, got %zu", max,
             json_array_size(body));
    add_error(x, NULL, RPC_INVALID_REQUEST, msg, NULL);
    return true;
}

static void run_exchange(struct exchange *x, json_t *body)
{
    size_t i;

    if (batch_too_large(x, body)) {
        x->http = NULL;
        exchange_release(x);
        return;
    }
    if (json_is_array(body)) {
        x->batch = true;
        for (i = 0; i < json_array_size(body); i++)
            dispatch_one(x, json_array_get(body, i));
    } else {
        dispatch_one(x, body);
    }
    x->http = NULL;
    exchange_release(x);
}

/* A request whose session id is missing or not valid (st): counted by reason (refusals of ids a
 * replica with another key signed show up in /metrics while a key rotation is rolled out
 * wrongly), answered 400 without an id, 404 for one that is not valid. */
static void refuse_session(struct nk_mcp *m, const char *session_id, enum nk_mcp_session_state st,
                           nk_mcp_reply_fn reply, void *ud)
{
    atomic_fetch_add(&m->refused[session_id == NULL           ? NK_MCP_REFUSED_MISSING
                                 : st == NK_MCP_SESSION_ENDED ? NK_MCP_REFUSED_ENDED
                                                              : NK_MCP_REFUSED_UNKNOWN],
                     1);
    if (session_id == NULL)
        reply_now(reply, ud, 400, RPC_INVALID_REQUEST,
                  "Bad Request: Mcp-Session-Id header is required", NULL);
    else
        reply_now(reply, ud, 404, RPC_INVALID_REQUEST, "Session not found", NULL);
}

static bool accepts_sse(const char *accept)
{
    const char *p;

    for (p = accept; p != NULL && *p != '\0'; p++)
        if (strncasecmp(p, "text/event-stream", 17) == 0)
            return true;
    return false;
}

/* GET in the handshake era with a session and Accept: text/event-stream: the server-to-client
 * stream (answered here, true), or 404 for a session that is not valid. Anything else (no
 * session, no SSE in Accept, the 2026-07-28 era) is left to the 405 (false). */
static bool get_stream(struct nk_mcp *m, const struct nk_mcp_http_in *in, nk_mcp_reply_fn reply,
                       void *ud)
{
    char vbuf[64];
    const char *version = trim_ows(in->protocol_version, vbuf, sizeof(vbuf));
    enum nk_mcp_session_state st;
    struct nk_mcp_reply r;

    if (in->session_id == NULL || !accepts_sse(in->accept) ||
        (version != NULL && !is_handshake_version(version)))
        return false;
    st = nk_mcp_session_check(m, in->session_id, in->caller);
    if (st != NK_MCP_SESSION_VALID) {
        refuse_session(m, in->session_id, st, reply, ud);
        return true;
    }
    memset(&r, 0, sizeof(r));
    r.status = 200;
    r.stream = true;
    snprintf(r.session_id, sizeof(r.session_id), "%s", in->session_id);
    reply(ud, &r);
    return true;
}

void nk_mcp_http(struct nk_mcp *m, const struct nk_mcp_backend *b, const struct nk_mcp_http_in *in,
                 nk_mcp_reply_fn reply, void *ud)
{
    json_t *body = NULL;
    json_error_t jerr;
    struct exchange *x = NULL;
    char vbuf[64], pbuf[256];
    const char *version;
    enum nk_mcp_session_state st;

    if (!nk_mcp_host_allowed(m, in->host, in->origin)) {
        reply_now(reply, ud, 403, RPC_INVALID_REQUEST, "Forbidden: Host or Origin not allowed",
                  NULL);
        goto out;
    }
    if (strcmp(in->method, "DELETE") == 0 && m->no_delete) {
        /* Replicas: an end one replica knows and the others do not would let the session go on
         * through them; the spec lets a server refuse client-ended sessions with 405. */
        reply_now(reply, ud, 405, RPC_INVALID_REQUEST,
                  "Method Not Allowed: sessions end when they expire (this server runs as "
                  "replicas)",
                  "POST");
        goto out;
    }
    if (strcmp(in->method, "DELETE") == 0) {
        if (in->session_id == NULL) {
            reply_now(reply, ud, 400, RPC_INVALID_REQUEST, "Bad Request: Mcp-Session-Id required",
                      NULL);
            goto out;
        }
        st = nk_mcp_session_end(m, in->session_id, in->caller);
        if (st == NK_MCP_SESSION_VALID)
            reply_now(reply, ud, 204, 0, NULL, NULL);
        else
            reply_now(reply, ud, 404, RPC_INVALID_REQUEST, "Session not found", NULL);
        goto out;
    }
    if (strcmp(in->method, "GET") == 0 && get_stream(m, in, reply, ud))
        goto out;
    if (strcmp(in->method, "POST") != 0) {
        /* No server-initiated SSE stream here: GET is 405, never 400 (clients loop on 400). */
        reply_now(reply, ud, 405, RPC_INVALID_REQUEST, "Method Not Allowed", "POST, DELETE");
        goto out;
    }
    /* Duplicate keys are refused as REST refuses them: which "name" would run is ambiguous. */
    body = json_loadb(in->body != NULL ? in->body : "", in->body_len,
                      JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (body == NULL) {
        reply_now(reply, ud, 400, RPC_PARSE_ERROR, parse_error_message(&jerr, pbuf, sizeof(pbuf)),
                  NULL);
        goto out;
    }
    x = exchange_new(m, b, reply, ud);
    if (x == NULL) {
        reply_now(reply, ud, 500, RPC_INTERNAL, "Internal error: out of memory", NULL);
        goto out;
    }
    x->http = in;
    if (looks_modern(in->protocol_version, body)) {
        x->era = ERA_MODERN;
        if (!json_is_object(body)) {
            add_error(x, NULL, RPC_INVALID_REQUEST,
                      json_is_array(body)
                          ? "Invalid Request: batches are not supported in " NK_MCP_MODERN_VERSION
                          : "Invalid Request: a JSON-RPC message must be an object",
                      NULL);
            x->batch = false;
            exchange_release(x);
            goto out;
        }
        run_exchange(x, body);
        goto out;
    }
    x->era = ERA_HANDSHAKE;
    version = trim_ows(in->protocol_version, vbuf, sizeof(vbuf));
    if (version == NULL)
        version = NK_MCP_DEFAULT_HTTP_VERSION;
    if (!is_initialize(body) && !is_handshake_version(version)) {
        add_error(x, NULL, RPC_INVALID_REQUEST,
                  "Bad Request: unsupported MCP-Protocol-Version header", NULL);
        exchange_release(x);
        goto out;
    }
    if (json_is_array(body) && (strcmp(version, "2025-03-26") != 0 || json_array_size(body) == 0)) {
        add_error(x, NULL, RPC_INVALID_REQUEST,
                  json_array_size(body) == 0
                      ? "Invalid Request: empty batch"
                      : "Invalid Request: JSON-RPC batches are only accepted in 2025-03-26",
                  NULL);
        exchange_release(x);
        goto out;
    }
    if (is_initialize(body)) {
        if (nk_mcp_session_new(m, in->caller, x->rep.session_id) != NK_OK) {
            add_error(x, json_object_get(body, "id"), RPC_INTERNAL, "Internal error: no session id",
                      NULL);
            exchange_release(x);
            goto out;
        }
    } else {
        st = nk_mcp_session_check(m, in->session_id, in->caller);
        if (in->session_id == NULL || st != NK_MCP_SESSION_VALID) {
            /* Undo the exchange and answer at the HTTP level. */
            x->pending = 0;
            json_decref(x->response);
            json_decref(x->responses);
            pthread_mutex_destroy(&x->mu);
            free(x);
            x = NULL;
            refuse_session(m, in->session_id, st, reply, ud);
            goto out;
        }
    }
    run_exchange(x, body);
out:
    json_decref(body);
}

void nk_mcp_line(struct nk_mcp *m, const struct nk_mcp_backend *b, struct nk_mcp_conn *conn,
                 const char *line, size_t len, nk_mcp_reply_fn reply, void *ud)
{
    json_t *body;
    json_error_t jerr;
    struct exchange *x;
    char pbuf[256];

    body = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    x = exchange_new(m, b, reply, ud);
    if (x == NULL) {
        json_decref(body);
        reply_now(reply, ud, 500, RPC_INTERNAL, "Internal error: out of memory", NULL);
        return;
    }
    x->conn = conn;
    x->era = looks_modern(NULL, body) ? ERA_MODERN : ERA_HANDSHAKE;
    if (body == NULL) {
        add_error(x, NULL, RPC_PARSE_ERROR, parse_error_message(&jerr, pbuf, sizeof(pbuf)), NULL);
    } else if (json_is_array(body) &&
               (x->era == ERA_MODERN || strcmp(conn->version, "2025-03-26") != 0 ||
                json_array_size(body) == 0)) {
        add_error(x, NULL, RPC_INVALID_REQUEST,
                  json_array_size(body) == 0
                      ? "Invalid Request: empty batch"
                      : "Invalid Request: JSON-RPC batches are only accepted in 2025-03-26",
                  NULL);
    } else {
        run_exchange(x, body);
        json_decref(body);
        return;
    }
    json_decref(body);
    exchange_release(x);
}

/* ---- the transports' call backend ---------------------------------------------------------- */

/* nk_invoke's callback takes the result; the engine only borrows it (and may take r->raw). */
static void invoke_done(void *ud, struct nk_result *r)
{
    struct call *c = ud;

    c->done(c, r); /* frees c (or leaves it to its exchange) */
    nk_result_free(r);
}

enum nk_rc nk_mcp_invoke(struct nk_context *ctx, struct nk_upstream *up,
                         const struct nk_exposed *tool, json_t *args, const char *request_id,
                         nk_mcp_done_fn done, void *done_ud, struct nk_error *err)
{
    struct call *c = done_ud; /* the engine's, as nk_mcp_call_tag() reads it */

    c->done = done;
    return nk_invoke_cancellable(ctx, up, tool, args, NK_ARGS_JSON, request_id, c->tag, invoke_done,
                                 c, err);
}

/* ---- permissions and the audit trail around a call (both transports) ------------------- */

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A tool call on its way, with what its audit record needs once the answer is in. */
struct audited {
    nk_mcp_done_fn done;
    void *done_ud;
    struct nk_principal who;
    char request_id[80];
    const struct nk_exposed *tool; /* borrowed: the exchange holds the context */
    const char *adapter;           /* borrowed from the table, likewise */
    char rule[160];
    json_t *args; /* allow-listed fields, owned, or NULL */
    double t0;
};

static void audit_tool(const struct nk_principal *who, const char *request_id, const char *adapter,
                       const struct nk_exposed *tool, bool allowed, const char *rule,
                       const char *reason, const json_t *args, long status, const char *outcome,
                       double t0)
{
    struct nk_audit_record rec;

    memset(&rec, 0, sizeof(rec));
    rec.request_id = request_id;
    rec.caller = who;
    rec.adapter = adapter;
    rec.kind = "tool";
    rec.operation = tool->name;
    rec.allowed = allowed;
    rec.rule = rule;
    rec.reason = reason;
    rec.args = args;
    rec.upstream_status = status;
    rec.outcome = outcome;
    rec.latency_ms = (mono_now() - t0) * 1000.0;
    nk_audit_write(&rec);
}

/* nk_invoke's callback with the audit trail on: record, then hand the result to the engine. */
static void audited_done(void *ud, struct nk_result *r)
{
    struct audited *a = ud;

    audit_tool(&a->who, a->request_id, a->adapter, a->tool, true, a->rule, NULL, a->args, r->status,
               nk_audit_outcome(r->kind), a->t0);
    a->done(a->done_ud, r);
    nk_result_free(r);
    json_decref(a->args);
    free(a);
}

enum nk_rc nk_mcp_invoke_access(struct nk_context *ctx, struct nk_upstream *up,
                                const struct nk_mcp_access *acc, const struct nk_exposed *tool,
                                json_t *args, nk_mcp_done_fn done, void *done_ud,
                                char missing_scope[128], struct nk_error *err)
{
    static const struct nk_principal anonymous;
    const struct nk_principal *who = acc->who != NULL ? acc->who : &anonymous;
    const char *adapter = tool->adapter_ns != NULL ? tool->adapter_ns : acc->adapter;
    struct nk_authz_decision d;
    struct audited *a = NULL;
    double t0 = mono_now();
    enum nk_rc rc;

    memset(&d, 0, sizeof(d));
    /* The permission rules, before anything goes upstream. */
    if (acc->authz != NULL) {
        if (nk_authz_check(acc->authz, who, NK_ADAPTER_MCP, tool, args, &d) != NK_OK) {
            nk_error_set(err, "out of memory");
            rc = NK_ERR_NOMEM;
            goto out;
        }
        if (!d.allowed) {
            if (nk_audit_enabled())
                audit_tool(who, acc->request_id, adapter, tool, false, d.rule, d.reason,
                           d.audit_args, 0, "denied", t0);
            if (d.missing_scope[0] != '\0' && missing_scope != NULL)
                memcpy(missing_scope, d.missing_scope, 128);
            nk_error_set(err, "%s", d.reason);
            rc = NK_ERR_FORBIDDEN;
            goto out;
        }
    } else {
        snprintf(d.rule, sizeof(d.rule), "no permissions file");
    }
    if (!nk_audit_enabled()) {
        rc = nk_mcp_invoke(ctx, up, tool, args, acc->request_id, done, done_ud, err);
        goto out;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        nk_error_set(err, "out of memory");
        rc = NK_ERR_NOMEM;
        goto out;
    }
    a->done = done;
    a->done_ud = done_ud;
    a->who = *who;
    snprintf(a->request_id, sizeof(a->request_id), "%s",
             acc->request_id != NULL ? acc->request_id : "");
    a->tool = tool;
    a->adapter = adapter;
    memcpy(a->rule, d.rule, sizeof(a->rule));
    a->args = d.audit_args;
    d.audit_args = NULL;
    a->t0 = t0;
    rc = nk_invoke_cancellable(ctx, up, tool, args, NK_ARGS_JSON, acc->request_id,
                               nk_mcp_call_tag(done_ud), audited_done, a, err);
    if (rc != NK_OK) {
        audit_tool(who, acc->request_id, adapter, tool, true, a->rule, err->msg, a->args, 0,
                   rc == NK_ERR_INVALID ? "invalid" : "internal", t0);
        json_decref(a->args);
        free(a);
    }
out:
    nk_authz_decision_cleanup(&d);
    return rc;
}
