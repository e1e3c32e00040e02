/* SPDX-License-Identifier: Apache-2.0 */
/* oauth.c: the OAuth 2.1 resource server: token checks in the admit hook, issuer discovery,
 * JWKS and introspection over the upstream client, RFC 9728 metadata, Bearer challenges. */
#include "naftikod/oauth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "naftikod/jose.h"
#include "naftikod/log.h"
#include "naftikod/problem.h"
#include "naftikod/sha256.h"

/* Requests that may wait for the issuer's keys at once; beyond, 503. */
#define MAX_WAITERS 4096
/* Slots per set of the verdict cache. */
#define CACHE_WAYS 4
/* A negative introspection answer is remembered this long at most. */
#define NEGATIVE_TTL_S 10

/* A key set shared by the checks of every loop: replaced whole on refresh. */
struct keyset {
    int refs; /* under o->mu */
    struct nk_jwks *jwks;
};

/* A request waiting for discovery or keys; owns a copy of the token (wiped when freed). */
struct waiter {
    struct waiter *next;
    struct nk_http_req *req;
    struct nk_upstream *up;
    char *token;
    size_t len;
    bool problem;
};

/* An introspection in flight for one request. */
struct probe {
    struct nk_oauth *o;
    struct nk_http_req *req;
    unsigned char key[NK_SHA256_LEN];
    bool problem;
};

/* A remembered verdict, keyed by the SHA-256 of the token. */
struct cached {
    unsigned char key[NK_SHA256_LEN];
    bool used;
    bool ok;        /* else refused with why (invalid_token) */
    double expires; /* monotonic seconds */
    struct nk_principal who;
};

enum fetch_state { FETCH_IDLE, FETCH_METADATA_8414, FETCH_METADATA_OIDC, FETCH_JWKS };

struct nk_oauth {
    /* configuration, immutable after new */
    char *issuer;
    char *resource;
    char *audience; /* the aud a token must name: conf audience, else resource */
    char **scopes;
    size_t n_scopes;
    char *scope_list; /* the scopes joined by blanks, for challenges */
    bool introspect;
    unsigned algs;
    long leeway_s;
    double refresh_min_s;
    double jwks_max_age_s; /* keys older than this are fetched again in the background */
    long cache_ttl_s;
    char *basic;         /* "Authorization: Basic ..." line for introspection, or NULL; a secret */
    char *metadata_url;  /* the resource_metadata URL of the challenges */
    char *metadata_path; /* the path-inserted form's path ("" when resource has no path) */
    char *metadata_doc;  /* RFC 9728 document, JSON text */

    pthread_mutex_t mu; /* guards everything below */
    enum fetch_state state;
    char *jwks_uri;
    char *introspection_endpoint;
    bool discovered;
    struct keyset *keys;
    double last_fetch; /* monotonic, when the last fetch began (0: never) */
    double keys_at;    /* monotonic, when the keys in force arrived */
    bool last_failed;
    struct waiter *waiters;
    size_t n_waiters;
    struct nk_upstream *fetch_up;
    struct cached *cache;
    size_t cache_entries;
    size_t cache_next; /* turns the victim way when a set has no free or stale slot */
};

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- configuration ---------------------------------------------------------------------- */

/* The authority end and path start of an absolute http(s) URI, or NULL. */
static const char *uri_path(const char *uri)
{
    const char *p;

    if (strncmp(uri, "https://", 8) != 0 && strncmp(uri, "http://", 7) != 0)
        return NULL;
    p = strstr(uri, "://") + 3;
    if (*p == '\0' || *p == '/')
        return NULL;
    p += strcspn(p, "/?#");
    if (strpbrk(p, "?#") != NULL) /* RFC 8414 / RFC 8707: no query, no fragment */
        return NULL;
    return p;
}

/* base + middle + tail as a new string. */
static char *join3(const char *base, size_t base_len, const char *middle, const char *tail)
{
    size_t n = base_len + strlen(middle) + strlen(tail) + 1;
    char *s = malloc(n);

    if (s != NULL)
        snprintf(s, n, "%.*s%s%s", (int)base_len, base, middle, tail);
    return s;
}

/* The path of uri without a trailing '/' ("" for none or "/"). */
static void path_of(const char *uri, const char **path, size_t *len)
{
    const char *p = uri_path(uri);

    *path = p;
    *len = strlen(p);
    while (*len > 0 && p[*len - 1] == '/')
        (*len)--;
}

static bool build_metadata(struct nk_oauth *o)
{
    json_t *doc, *scopes = json_array();
    const char *path;
    size_t len, i;

    path_of(o->resource, &path, &len);
    o->metadata_path = join3("/.well-known/oauth-protected-resource", 37, path, "");
    if (o->metadata_path != NULL)
        o->metadata_path[37 + len] = '\0';
    o->metadata_url = join3(o->resource, (size_t)(path - o->resource), "", "");
    if (o->metadata_url != NULL) {
        char *full = join3(o->metadata_url, strlen(o->metadata_url), o->metadata_path, "");
        free(o->metadata_url);
        o->metadata_url = full;
    }
    for (i = 0; scopes != NULL && i < o->n_scopes; i++)
        json_array_append_new(scopes, json_string(o->scopes[i]));
    doc = json_pack("{s:s,s:[s],s:o,s:[s]}", "resource", o->resource, "authorization_servers",
                    o->issuer, "scopes_supported", scopes, "bearer_methods_supported", "header");
    o->metadata_doc = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return o->metadata_path != NULL && o->metadata_url != NULL && o->metadata_doc != NULL;
}

/* "Authorization: Basic base64(urlencode(id):urlencode(secret))" (RFC 6749 2.3.1). */
static char *basic_line(const char *id, const char *secret)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(id) * 3 + strlen(secret) * 3 + 2, i, o = 0, w;
    unsigned char *plain = malloc(n);
    char *line = NULL;
    const char *parts[2] = {id, secret};
    size_t k;

    if (plain == NULL)
        return NULL;
    for (k = 0; k < 2; k++) {
        for (i = 0; parts[k][i] != '\0'; i++) {
            unsigned char c = (unsigned char)parts[k][i];
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~') {
                plain[o++] = c;
            } else {
                plain[o++] = '%';
                plain[o++] = (unsigned char)hex[c >> 4];
                plain[o++] = (unsigned char)hex[c & 15];
            }
        }
        if (k == 0)
            plain[o++] = ':';
    }
    line = malloc(sizeof("Authorization: Basic ") + (o + 2) / 3 * 4);
    if (line != NULL) {
        w = (size_t)sprintf(line, "Authorization: Basic ");
        for (i = 0; i < o; i += 3) {
            unsigned v = (unsigned)plain[i] << 16 | (i + 1 < o ? (unsigned)plain[i + 1] << 8 : 0) |
                         (i + 2 < o ? plain[i + 2] : 0);
            line[w++] = b64[v >> 18 & 63];
            line[w++] = b64[v >> 12 & 63];
            line[w++] = i + 1 < o ? b64[v >> 6 & 63] : '=';
            line[w++] = i + 2 < o ? b64[v & 63] : '=';
        }
        line[w] = '\0';
    }
    explicit_bzero(plain, n);
    free(plain);
    return line;
}

enum nk_rc nk_oauth_new(const struct nk_oauth_conf *conf, const struct nk_oauth_options *opts,
                        struct nk_oauth **out, struct nk_error *err)
{
    struct nk_oauth *o = NULL;
    enum nk_rc rc = NK_ERR_NOMEM;
    size_t i, n = 0;

    *out = NULL;
    if (conf->authorization_server_uri == NULL ||
        uri_path(conf->authorization_server_uri) == NULL) {
        nk_error_set(err, "the authorization server (issuer) must be an absolute http(s) URI "
                          "without query or fragment");
        return NK_ERR_INVALID;
    }
    if (conf->resource == NULL || uri_path(conf->resource) == NULL) {
        nk_error_set(err, "the resource must be this server's absolute http(s) URI (RFC 8707), "
                          "without query or fragment");
        return NK_ERR_INVALID;
    }
    if (conf->token_validation == NK_TOKEN_VALIDATION_INTROSPECTION &&
        (opts->client_id == NULL || opts->client_secret == NULL)) {
        nk_error_set(err, "introspection needs the resource server's client credentials");
        return NK_ERR_INVALID;
    }
    o = calloc(1, sizeof(*o));
    if (o == NULL)
        goto fail;
    pthread_mutex_init(&o->mu, NULL);
    o->issuer = strdup(conf->authorization_server_uri);
    o->resource = strdup(conf->resource);
    o->audience = strdup(conf->audience != NULL ? conf->audience : conf->resource);
    o->scopes = calloc(conf->n_scopes + 1, sizeof(*o->scopes));
    if (o->issuer == NULL || o->resource == NULL || o->audience == NULL || o->scopes == NULL)
        goto fail;
    for (i = 0; i < conf->n_scopes; i++) {
        o->scopes[i] = strdup(conf->scopes[i]);
        if (o->scopes[i] == NULL)
            goto fail;
        o->n_scopes++;
        n += strlen(conf->scopes[i]) + 1;
    }
    o->scope_list = calloc(1, n + 1);
    if (o->scope_list == NULL)
        goto fail;
    for (i = 0; i < o->n_scopes; i++) {
        if (i > 0)
            strcat(o->scope_list, " ");
        strcat(o->scope_list, o->scopes[i]);
    }
    o->introspect = conf->token_validation == NK_TOKEN_VALIDATION_INTROSPECTION;
    o->algs = opts->algs != 0 ? opts->algs : NK_JOSE_ALGS_ALL;
    o->leeway_s = opts->leeway_s >= 0 ? opts->leeway_s : 60;
    o->refresh_min_s = opts->refresh_min_s > 0 ? (double)opts->refresh_min_s : 30.0;
    o->jwks_max_age_s = opts->jwks_max_age_s > 0 ? (double)opts->jwks_max_age_s : 3600.0;
    o->cache_ttl_s = opts->cache_ttl_s > 0 ? opts->cache_ttl_s : 300;
    if (opts->cache_entries > 0) {
        /* CACHE_WAYS times a power of two, at least the entries asked for */
        size_t sets = 1;
        while (sets * CACHE_WAYS < opts->cache_entries && sets < ((size_t)1 << 24))
            sets <<= 1;
        o->cache = calloc(sets * CACHE_WAYS, sizeof(*o->cache));
        if (o->cache == NULL)
            goto fail;
        o->cache_entries = sets * CACHE_WAYS;
    }
    if (o->introspect) {
        o->basic = basic_line(opts->client_id, opts->client_secret);
        if (o->basic == NULL)
            goto fail;
    }
    if (!build_metadata(o))
        goto fail;
    *out = o;
    return NK_OK;
fail:
    nk_error_set(err, "out of memory");
    nk_oauth_free(o);
    return rc;
}

static void keyset_unref(struct nk_oauth *o, struct keyset *k)
{
    bool last;

    if (k == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    last = --k->refs == 0;
    pthread_mutex_unlock(&o->mu);
    if (last) {
        nk_jwks_free(k->jwks);
        free(k);
    }
}

static void waiter_free(struct waiter *w)
{
    if (w->token != NULL) {
        explicit_bzero(w->token, w->len);
        free(w->token);
    }
    free(w);
}

void nk_oauth_free(struct nk_oauth *o)
{
    struct waiter *w, *next;
    size_t i;

    if (o == NULL)
        return;
    for (w = o->waiters; w != NULL; w = next) {
        next = w->next;
        nk_http_respond(w->req, 503, NULL, NULL, 0, NULL); /* a stopped listener drops it */
        waiter_free(w);
    }
    if (o->keys != NULL) {
        nk_jwks_free(o->keys->jwks);
        free(o->keys);
    }
    for (i = 0; o->scopes != NULL && i < o->n_scopes; i++)
        free(o->scopes[i]);
    if (o->basic != NULL) {
        explicit_bzero(o->basic, strlen(o->basic));
        free(o->basic);
    }
    if (o->cache != NULL) {
        explicit_bzero(o->cache, o->cache_entries * sizeof(*o->cache));
        free(o->cache);
    }
    free(o->scopes);
    free(o->scope_list);
    free(o->issuer);
    free(o->resource);
    free(o->audience);
    free(o->metadata_url);
    free(o->metadata_path);
    free(o->metadata_doc);
    free(o->jwks_uri);
    free(o->introspection_endpoint);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

/* ---- answers ---------------------------------------------------------------------------- */

enum refusal {
    REFUSE_NO_TOKEN,   /* 401, challenge without an error code */
    REFUSE_INVALID,    /* 401 invalid_token */
    REFUSE_SCOPE,      /* 403 insufficient_scope */
    REFUSE_REQUEST,    /* 400 invalid_request (a token in the query string) */
    REFUSE_UNAVAILABLE /* 503: the issuer's keys or answers cannot be had */
};

/* Answer req with the refusal and log one line with why (never the token). */
static void refuse(struct nk_oauth *o, struct nk_http_req *req, bool problem, enum refusal r,
                   const char *why)
{
    static const char *const codes[] = {NULL, "invalid_token", "insufficient_scope",
                                        "invalid_request", "temporarily_unavailable"};
    static const unsigned statuses[] = {401, 401, 403, 400, 503};
    char challenge[1024], safe_why[200];
    const char *hdrs[5] = {NULL};
    char *body = NULL;
    json_t *j;
    size_t i;

    for (i = 0; why[i] != '\0' && i + 1 < sizeof(safe_why); i++)
        safe_why[i] =
            (why[i] == '"' || why[i] == '\\' || (unsigned char)why[i] < 0x20) ? '\'' : why[i];
    safe_why[i] = '\0';
    if (r == REFUSE_NO_TOKEN)
        snprintf(challenge, sizeof(challenge), "Bearer resource_metadata=\"%s\"%s%s%s",
                 o->metadata_url, o->n_scopes > 0 ? ", scope=\"" : "", o->scope_list,
                 o->n_scopes > 0 ? "\"" : "");
    else
        snprintf(challenge, sizeof(challenge),
                 "Bearer error=\"%s\", error_description=\"%s\", resource_metadata=\"%s\"%s%s%s",
                 codes[r], safe_why, o->metadata_url, o->n_scopes > 0 ? ", scope=\"" : "",
                 o->scope_list, o->n_scopes > 0 ? "\"" : "");
    if (r != REFUSE_UNAVAILABLE) {
        hdrs[0] = "WWW-Authenticate";
        hdrs[1] = challenge;
    } else {
        hdrs[0] = "Retry-After";
        hdrs[1] = "5";
    }
    nk_log(NK_LOG_WARNING, "oauth: refused %s %s id=%s client=%s (%u %s): %s",
           nk_http_req_method(req), r == REFUSE_REQUEST ? "(query not shown)" : "request",
           nk_http_req_id(req), nk_http_req_client(req), statuses[r],
           codes[r] != NULL ? codes[r] : "no token", safe_why);
    if (problem) {
        body = nk_problem_new(statuses[r], NULL, safe_why, NULL);
    } else {
        j = json_pack("{s:s,s:s}", "error", codes[r] != NULL ? codes[r] : "unauthorized",
                      "error_description", safe_why);
        body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
    }
    nk_http_respond(req, statuses[r],
                    body == NULL ? NULL
                    : problem    ? "application/problem+json"
                                 : "application/json",
                    body, body != NULL ? strlen(body) : 0, hdrs);
}

bool nk_oauth_metadata_path(const struct nk_oauth *o, const char *path)
{
    return strcmp(path, "/.well-known/oauth-protected-resource") == 0 ||
           strcmp(path, o->metadata_path) == 0;
}

void nk_oauth_metadata(struct nk_oauth *o, struct nk_http_req *req)
{
    static const char *const allow[] = {"Allow", "GET, HEAD", "Cache-Control", "max-age=300", NULL};
    const char *m = nk_http_req_method(req);
    char *body;

    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        nk_http_respond(req, 405, NULL, NULL, 0, allow);
        return;
    }
    body = strdup(o->metadata_doc);
    nk_http_respond(req, body != NULL ? 200 : 500, body != NULL ? "application/json" : NULL, body,
                    body != NULL ? strlen(body) : 0, allow + 2);
}

/* ---- the cache -------------------------------------------------------------------------- */

/* The cache is set-associative: CACHE_WAYS slots per set, the set chosen by the first bytes of
 * the token's SHA-256 (a lookup reads CACHE_WAYS slots, not the whole table; the index reveals
 * nothing an attacker does not know: the hash of the token it sent). */
static struct cached *cache_set(struct nk_oauth *o, const unsigned char *key)
{
    size_t h = (size_t)key[0] | (size_t)key[1] << 8 | (size_t)key[2] << 16 | (size_t)key[3] << 24;

    return &o->cache[(h & (o->cache_entries / CACHE_WAYS - 1)) * CACHE_WAYS];
}

/* Under o->mu. The slot for key, or NULL. */
static struct cached *cache_find_locked(struct nk_oauth *o, const unsigned char *key, double now)
{
    struct cached *set = cache_set(o, key);
    size_t i;

    for (i = 0; i < CACHE_WAYS; i++)
        if (set[i].used && set[i].expires > now && nk_mem_equal_ct(set[i].key, key, NK_SHA256_LEN))
            return &set[i];
    return NULL;
}

/* Remember a verdict for ttl seconds (already bounded by the caller): in key's own slot, else a
 * free or stale one of its set, else the set's next victim in turn. */
static void cache_put(struct nk_oauth *o, const unsigned char *key, bool ok,
                      const struct nk_principal *who, double ttl)
{
    double now = mono_now();
    struct cached *set, *c = NULL;
    size_t i;

    if (o->cache_entries == 0 || ttl <= 0)
        return;
    pthread_mutex_lock(&o->mu);
    set = cache_set(o, key);
    for (i = 0; i < CACHE_WAYS && c == NULL; i++)
        if (set[i].used && memcmp(set[i].key, key, NK_SHA256_LEN) == 0)
            c = &set[i];
    for (i = 0; i < CACHE_WAYS && c == NULL; i++)
        if (!set[i].used || set[i].expires <= now)
            c = &set[i];
    if (c == NULL) {
        c = &set[o->cache_next % CACHE_WAYS];
        o->cache_next++;
    }
    memcpy(c->key, key, NK_SHA256_LEN);
    c->used = true;
    c->ok = ok;
    c->expires = now + ttl;
    if (who != NULL)
        c->who = *who;
    else
        memset(&c->who, 0, sizeof(c->who));
    pthread_mutex_unlock(&o->mu);
}

/* How long a verdict on a token that expires at exp (0: unknown) may be remembered. */
static double ttl_for(const struct nk_oauth *o, long long exp)
{
    double ttl = (double)o->cache_ttl_s;
    long long left;

    if (exp > 0) {
        left = exp - (long long)time(NULL);
        if ((double)left < ttl)
            ttl = (double)left;
    }
    return ttl;
}

/* ---- checks ----------------------------------------------------------------------------- */

static struct nk_claim_rules rules_of(const struct nk_oauth *o)
{
    struct nk_claim_rules r;

    memset(&r, 0, sizeof(r));
    r.issuer = o->issuer;
    r.audience = o->audience;
    r.scopes = (const char *const *)o->scopes;
    r.n_scopes = o->n_scopes;
    r.leeway_s = o->leeway_s;
    r.now = time(NULL);
    r.exp_required = true;
    return r;
}

enum outcome { OUT_ADMIT, OUT_REFUSED, OUT_NEED_KEYS };

/* Check a JWT with the keys in hand: admit (principal set), refuse (answered), or keys needed
 * (an unknown kid, or no keys yet). */
static enum outcome check_jwt(struct nk_oauth *o, struct nk_http_req *req, const char *tok,
                              size_t len, bool problem, bool may_refresh)
{
    struct nk_jws j;
    struct nk_claim_rules r = rules_of(o);
    struct nk_principal who;
    struct keyset *keys;
    unsigned char key[NK_SHA256_LEN];
    char why[200] = "";
    enum nk_rc rc;
    enum nk_claim_verdict v;
    enum outcome out = OUT_REFUSED;

    rc = nk_jws_parse(tok, len, o->algs, &j, why, sizeof(why));
    if (rc != NK_OK) {
        refuse(o, req, problem, REFUSE_INVALID, why);
        return OUT_REFUSED;
    }
    pthread_mutex_lock(&o->mu);
    keys = o->keys;
    if (keys != NULL)
        keys->refs++;
    pthread_mutex_unlock(&o->mu);
    if (keys == NULL) {
        nk_jws_cleanup(&j);
        return OUT_NEED_KEYS;
    }
    rc = nk_jws_verify(&j, keys->jwks, why, sizeof(why));
    keyset_unref(o, keys);
    if (rc == NK_ERR_NOTFOUND && may_refresh) {
        nk_jws_cleanup(&j);
        return OUT_NEED_KEYS;
    }
    if (rc != NK_OK) {
        refuse(o, req, problem, REFUSE_INVALID, why);
        goto out;
    }
    v = nk_claims_check(j.claims, &r, why, sizeof(why));
    if (v != NK_CLAIMS_OK) {
        refuse(o, req, problem, v == NK_CLAIMS_SCOPE ? REFUSE_SCOPE : REFUSE_INVALID, why);
        goto out;
    }
    nk_claims_principal(j.claims, &who);
    nk_http_req_set_principal(req, &who);
    nk_jose_sha256(tok, len, key);
    cache_put(o, key, true, &who, ttl_for(o, nk_claims_exp(j.claims)));
    out = OUT_ADMIT;
out:
    nk_jws_cleanup(&j);
    return out;
}

static bool claim_fetch_locked(struct nk_oauth *o, struct nk_upstream *up);
static void begin_fetch(struct nk_oauth *o);

/* Hold req until the keys (or the metadata) are there. Under o->mu. false: too many waiting
 * or out of memory (the caller answers 503). */
static bool wait_locked(struct nk_oauth *o, struct nk_upstream *up, struct nk_http_req *req,
                        const char *tok, size_t len, bool problem)
{
    struct waiter *w;

    if (o->n_waiters >= MAX_WAITERS)
        return false;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return false;
    w->token = malloc(len + 1);
    if (w->token == NULL) {
        free(w);
        return false;
    }
    memcpy(w->token, tok, len);
    w->token[len] = '\0';
    w->len = len;
    w->req = req;
    w->up = up;
    w->problem = problem;
    nk_http_req_defer(req);
    w->next = o->waiters;
    o->waiters = w;
    o->n_waiters++;
    return true;
}

static void introspect(struct nk_oauth *o, struct nk_upstream *up, struct nk_http_req *req,
                       const char *tok, size_t len, bool problem);

/* Go on with a request whose wait is over (keys or metadata now there, or not). */
static void resume_waiter(struct nk_oauth *o, struct waiter *w, bool fetched)
{
    enum outcome out;

    if (!fetched) {
        refuse(o, w->req, w->problem, REFUSE_UNAVAILABLE,
               "the authorization server's metadata or keys cannot be fetched now");
        return;
    }
    if (o->introspect) {
        introspect(o, w->up, w->req, w->token, w->len, w->problem);
        return;
    }
    out = check_jwt(o, w->req, w->token, w->len, w->problem, false);
    if (out == OUT_ADMIT)
        nk_http_req_admit(w->req);
    else if (out == OUT_NEED_KEYS)
        refuse(o, w->req, w->problem, REFUSE_INVALID,
               "no key with the token's kid in the issuer's JWKS");
}

/* The fetch is over: wake every waiter (outside the lock). */
static void fetch_done(struct nk_oauth *o, bool ok)
{
    struct waiter *w, *next;

    pthread_mutex_lock(&o->mu);
    w = o->waiters;
    o->waiters = NULL;
    o->n_waiters = 0;
    o->state = FETCH_IDLE;
    o->last_failed = !ok;
    o->fetch_up = NULL;
    pthread_mutex_unlock(&o->mu);
    for (; w != NULL; w = next) {
        next = w->next;
        resume_waiter(o, w, ok);
        waiter_free(w);
    }
}

static void on_fetched(void *ud, struct nk_upstream_response *resp);

/* GET url on o->fetch_up; false when it could not be queued. */
static bool fetch_get(struct nk_oauth *o, const char *url)
{
    struct nk_upstream_request rq;

    memset(&rq, 0, sizeof(rq));
    rq.method = strdup("GET");
    rq.url = strdup(url);
    rq.headers = calloc(1, sizeof(char *));
    if (rq.headers != NULL) {
        rq.headers[0] = strdup("Accept: application/json");
        rq.n_headers = rq.headers[0] != NULL ? 1 : 0;
    }
    if (rq.method == NULL || rq.url == NULL || rq.n_headers == 0) {
        nk_upstream_request_cleanup(&rq);
        return false;
    }
    return nk_upstream_submit(o->fetch_up, &rq, on_fetched, o) == NK_OK;
}

char *nk_oauth_discovery_url(const char *issuer, bool oidc)
{
    const char *path;
    size_t len;

    if (uri_path(issuer) == NULL)
        return NULL;
    path_of(issuer, &path, &len);
    if (oidc)
        return join3(issuer, (size_t)(path - issuer) + len, "/.well-known/openid-configuration",
                     "");
    {
        char *u =
            join3(issuer, (size_t)(path - issuer), "/.well-known/oauth-authorization-server", path);
        if (u != NULL)
            u[(size_t)(path - issuer) + 39 + len] = '\0';
        return u;
    }
}

/* Under o->mu: when no fetch runs, make this caller's client the one that fetches (the
 * metadata when not known yet, else the JWKS) and return true: the caller then calls
 * begin_fetch() once it let go of the lock (a submission never runs under it). */
static bool claim_fetch_locked(struct nk_oauth *o, struct nk_upstream *up)
{
    if (o->state != FETCH_IDLE)
        return false;
    o->fetch_up = up;
    o->last_fetch = mono_now();
    o->state = o->discovered ? FETCH_JWKS : FETCH_METADATA_8414;
    return true;
}

static void begin_fetch(struct nk_oauth *o)
{
    char *url;
    bool queued;

    pthread_mutex_lock(&o->mu);
    url = o->state == FETCH_JWKS ? (o->jwks_uri != NULL ? strdup(o->jwks_uri) : NULL)
                                 : nk_oauth_discovery_url(o->issuer, false);
    pthread_mutex_unlock(&o->mu);
    queued = url != NULL && fetch_get(o, url);
    free(url);
    if (!queued)
        fetch_done(o, false);
}

/* An endpoint from the metadata: same scheme family as the issuer (https, or http for an http
 * issuer, a lab or a test). */
static char *endpoint(const json_t *doc, const char *name, const char *issuer)
{
    const char *v = json_string_value(json_object_get(doc, name));

    if (v == NULL || uri_path(v) == NULL)
        return NULL;
    if (strncmp(v, "https://", 8) != 0 && strncmp(issuer, "http://", 7) != 0)
        return NULL;
    return strdup(v);
}

static void on_fetched(void *ud, struct nk_upstream_response *resp)
{
    struct nk_oauth *o = ud;
    enum fetch_state st;
    json_t *doc = NULL;
    struct nk_jwks *jwks = NULL;
    struct keyset *ks, *old = NULL;
    char why[200] = "";
    char *url = NULL;
    bool ok = false, next_queued = false;

    pthread_mutex_lock(&o->mu);
    st = o->state;
    pthread_mutex_unlock(&o->mu);
    if (resp->rc != NK_OK || resp->status != 200) {
        snprintf(why, sizeof(why), "%.190s", resp->rc != NK_OK ? resp->error : "status not 200");
        if (st == FETCH_METADATA_8414) {
            /* RFC 8414 missing: try OpenID Connect Discovery. */
            pthread_mutex_lock(&o->mu);
            o->state = FETCH_METADATA_OIDC;
            pthread_mutex_unlock(&o->mu);
            url = nk_oauth_discovery_url(o->issuer, true);
            next_queued = url != NULL && fetch_get(o, url);
            free(url);
            if (next_queued)
                return;
        }
        nk_log(NK_LOG_WARNING, "oauth: cannot fetch the %s of %s: %s (HTTP %ld)",
               st == FETCH_JWKS ? "JWKS" : "metadata", o->issuer, why, resp->status);
        fetch_done(o, false);
        return;
    }
    if (st == FETCH_METADATA_8414 || st == FETCH_METADATA_OIDC) {
        const char *iss;
        doc = json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL);
        iss = json_string_value(json_object_get(doc, "issuer"));
        if (iss == NULL || strcmp(iss, o->issuer) != 0) {
            /* RFC 8414 3.3: metadata for another issuer must not be used. */
            nk_log(NK_LOG_WARNING, "oauth: the metadata of %s names another issuer or none",
                   o->issuer);
            json_decref(doc);
            fetch_done(o, false);
            return;
        }
        pthread_mutex_lock(&o->mu);
        free(o->jwks_uri);
        free(o->introspection_endpoint);
        o->jwks_uri = endpoint(doc, "jwks_uri", o->issuer);
        o->introspection_endpoint = endpoint(doc, "introspection_endpoint", o->issuer);
        o->discovered = o->introspect ? o->introspection_endpoint != NULL : o->jwks_uri != NULL;
        url = !o->introspect && o->jwks_uri != NULL ? strdup(o->jwks_uri) : NULL;
        if (url != NULL)
            o->state = FETCH_JWKS;
        pthread_mutex_unlock(&o->mu);
        json_decref(doc);
        if (!o->discovered) {
            nk_log(NK_LOG_WARNING, "oauth: the metadata of %s has no usable %s", o->issuer,
                   o->introspect ? "introspection_endpoint" : "jwks_uri");
            free(url);
            fetch_done(o, false);
            return;
        }
        nk_log(NK_LOG_INFO, "oauth: discovered %s (%s)", o->issuer,
               st == FETCH_METADATA_8414 ? "RFC 8414" : "OpenID Connect");
        if (o->introspect) {
            fetch_done(o, true);
            return;
        }
        next_queued = fetch_get(o, url);
        free(url);
        if (!next_queued)
            fetch_done(o, false);
        return;
    }
    /* FETCH_JWKS */
    if (nk_jwks_parse(resp->body, resp->body_len, &jwks, why, sizeof(why)) != NK_OK) {
        nk_log(NK_LOG_WARNING, "oauth: the JWKS of %s: %s", o->issuer, why);
        fetch_done(o, false);
        return;
    }
    ks = calloc(1, sizeof(*ks));
    if (ks == NULL) {
        nk_jwks_free(jwks);
        fetch_done(o, false);
        return;
    }
    ks->refs = 1;
    ks->jwks = jwks;
    nk_log(NK_LOG_INFO, "oauth: %zu key(s) from the JWKS of %s", nk_jwks_count(jwks), o->issuer);
    pthread_mutex_lock(&o->mu);
    old = o->keys;
    o->keys = ks;
    o->keys_at = mono_now();
    pthread_mutex_unlock(&o->mu);
    keyset_unref(o, old);
    ok = true;
    fetch_done(o, ok);
}

void nk_oauth_prefetch(struct nk_oauth *o, struct nk_upstream *up)
{
    bool start = false;

    pthread_mutex_lock(&o->mu);
    if (!o->discovered || (!o->introspect && o->keys == NULL))
        start = claim_fetch_locked(o, up);
    pthread_mutex_unlock(&o->mu);
    if (start)
        begin_fetch(o);
}

/* ---- introspection (RFC 7662) ----------------------------------------------------------- */

static void on_introspected(void *ud, struct nk_upstream_response *resp)
{
    struct probe *p = ud;
    struct nk_oauth *o = p->o;
    struct nk_claim_rules r = rules_of(o);
    struct nk_principal who;
    json_t *doc = NULL;
    char why[200] = "";
    enum nk_claim_verdict v;

    if (resp->rc != NK_OK || resp->status != 200) {
        nk_log(NK_LOG_WARNING, "oauth: introspection at %s failed: %s (HTTP %ld)", o->issuer,
               resp->rc != NK_OK ? resp->error : "status not 200", resp->status);
        refuse(o, p->req, p->problem, REFUSE_UNAVAILABLE,
               "the authorization server cannot introspect the token now");
        goto out;
    }
    doc = json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_true(json_object_get(doc, "active"))) {
        refuse(o, p->req, p->problem, REFUSE_INVALID, "the token is not active (introspection)");
        cache_put(o, p->key, false, NULL, NEGATIVE_TTL_S);
        goto out;
    }
    r.exp_required = false;
    if (json_object_get(doc, "iss") == NULL)
        r.issuer = NULL; /* RFC 7662: optional; the answer comes from the issuer itself */
    v = nk_claims_check(doc, &r, why, sizeof(why));
    if (v != NK_CLAIMS_OK) {
        refuse(o, p->req, p->problem, v == NK_CLAIMS_SCOPE ? REFUSE_SCOPE : REFUSE_INVALID, why);
        goto out;
    }
    nk_claims_principal(doc, &who);
    nk_http_req_set_principal(p->req, &who);
    cache_put(o, p->key, true, &who, ttl_for(o, nk_claims_exp(doc)));
    nk_http_req_admit(p->req);
out:
    json_decref(doc);
    free(p);
}

/* Percent-encode s for a form body. */
static char *form_encode(const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(len * 3 + 1);
    size_t i, o = 0;

    if (out == NULL)
        return NULL;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

/* Ask the AS about tok for req (already deferred, or deferred here). */
static void introspect(struct nk_oauth *o, struct nk_upstream *up, struct nk_http_req *req,
                       const char *tok, size_t len, bool problem)
{
    struct nk_upstream_request rq;
    struct probe *p = calloc(1, sizeof(*p));
    char *enc = form_encode(tok, len);
    size_t n;

    memset(&rq, 0, sizeof(rq));
    if (p == NULL || enc == NULL)
        goto fail;
    p->o = o;
    p->req = req;
    p->problem = problem;
    nk_jose_sha256(tok, len, p->key);
    n = strlen(enc) + 64;
    rq.body = malloc(n);
    rq.method = strdup("POST");
    pthread_mutex_lock(&o->mu);
    rq.url = o->introspection_endpoint != NULL ? strdup(o->introspection_endpoint) : NULL;
    pthread_mutex_unlock(&o->mu);
    rq.headers = calloc(3, sizeof(char *));
    if (rq.body == NULL || rq.method == NULL || rq.url == NULL || rq.headers == NULL)
        goto fail;
    rq.body_len = (size_t)snprintf(rq.body, n, "token=%s&token_type_hint=access_token", enc);
    rq.headers[0] = strdup("Content-Type: application/x-www-form-urlencoded");
    rq.headers[1] = strdup("Accept: application/json");
    rq.headers[2] = strdup(o->basic);
    rq.n_headers = 3;
    if (rq.headers[0] == NULL || rq.headers[1] == NULL || rq.headers[2] == NULL)
        goto fail;
    explicit_bzero(enc, strlen(enc));
    free(enc);
    enc = NULL;
    nk_http_req_defer(req); /* no-op when already deferred */
    if (nk_upstream_submit(up, &rq, on_introspected, p) != NK_OK) {
        refuse(o, req, problem, REFUSE_UNAVAILABLE, "the introspection could not be sent");
        free(p);
    }
    return;
fail:
    if (rq.body != NULL)
        explicit_bzero(rq.body, rq.body_len);
    if (rq.headers != NULL && rq.n_headers == 3 && rq.headers[2] != NULL)
        explicit_bzero(rq.headers[2], strlen(rq.headers[2]));
    nk_upstream_request_cleanup(&rq);
    if (enc != NULL) {
        explicit_bzero(enc, strlen(enc));
        free(enc);
    }
    free(p);
    refuse(o, req, problem, REFUSE_UNAVAILABLE, "out of memory");
}

/* ---- the admit hook --------------------------------------------------------------------- */

bool nk_oauth_admit(struct nk_oauth *o, struct nk_upstream *up, struct nk_http_req *req,
                    bool problem)
{
    const char *authz = nk_http_req_header(req, "Authorization"), *tok, *name, *value;
    unsigned char key[NK_SHA256_LEN];
    struct cached *c;
    struct nk_principal who;
    double now;
    size_t i, len;
    bool hit = false, hit_ok = false, waiting, refresh_ok, start;
    enum outcome out;

    /* RFC 6750 2.3 is not offered (bearer_methods_supported: header): a token in the URI ends
     * up in logs and histories; refuse it even beside a header. */
    for (i = 0; i < nk_http_req_query_count(req); i++) {
        nk_http_req_query_at(req, i, &name, &value);
        if (strcmp(name, "access_token") == 0) {
            refuse(o, req, problem, REFUSE_REQUEST,
                   "a token in the query string is refused: send 'Authorization: Bearer'");
            return false;
        }
    }
    if (authz == NULL) {
        refuse(o, req, problem, REFUSE_NO_TOKEN, "no Authorization header");
        return false;
    }
    if (strncasecmp(authz, "Bearer ", 7) != 0) {
        refuse(o, req, problem, REFUSE_INVALID, "the Authorization scheme is not Bearer");
        return false;
    }
    tok = authz + 7;
    while (*tok == ' ')
        tok++;
    len = strlen(tok);
    while (len > 0 && tok[len - 1] == ' ')
        len--;
    if (len == 0) {
        refuse(o, req, problem, REFUSE_NO_TOKEN, "an empty bearer token");
        return false;
    }
    if (len > NK_JOSE_MAX_TOKEN) {
        refuse(o, req, problem, REFUSE_INVALID, "the token is longer than 8192 bytes");
        return false;
    }
    nk_jose_sha256(tok, len, key);
    now = mono_now();
    if (o->cache_entries > 0) {
        pthread_mutex_lock(&o->mu);
        c = cache_find_locked(o, key, now);
        if (c != NULL) {
            hit = true;
            hit_ok = c->ok;
            who = c->who;
        }
        pthread_mutex_unlock(&o->mu);
    }
    if (hit && hit_ok) {
        nk_http_req_set_principal(req, &who);
        return true;
    }
    if (hit) {
        refuse(o, req, problem, REFUSE_INVALID, "the token is not active (remembered)");
        return false;
    }
    if (o->introspect) {
        pthread_mutex_lock(&o->mu);
        waiting = !o->discovered;
        if (waiting && !wait_locked(o, up, req, tok, len, problem)) {
            pthread_mutex_unlock(&o->mu);
            refuse(o, req, problem, REFUSE_UNAVAILABLE, "too many requests wait for the issuer");
            return false;
        }
        start = waiting && claim_fetch_locked(o, up);
        pthread_mutex_unlock(&o->mu);
        if (start)
            begin_fetch(o);
        if (!waiting)
            introspect(o, up, req, tok, len, problem);
        return false;
    }
    /* Keys older than jwks_max_age_s are fetched again in the background (a key the issuer
     * withdrew stops verifying); the ones in hand serve meanwhile, and if the fetch fails. */
    pthread_mutex_lock(&o->mu);
    start = o->keys != NULL && now - o->keys_at >= o->jwks_max_age_s &&
            now - o->last_fetch >= o->refresh_min_s && claim_fetch_locked(o, up);
    pthread_mutex_unlock(&o->mu);
    if (start)
        begin_fetch(o);
    out = check_jwt(o, req, tok, len, problem, true);
    if (out != OUT_NEED_KEYS)
        return out == OUT_ADMIT;
    /* No keys yet, or an unknown kid: fetch, at most once per refresh_min_s (a stream of forged
     * kids must not turn into a stream of fetches). */
    pthread_mutex_lock(&o->mu);
    refresh_ok =
        o->state != FETCH_IDLE || o->last_fetch == 0.0 || now - o->last_fetch >= o->refresh_min_s;
    if (!refresh_ok) {
        bool have_keys = o->keys != NULL;
        pthread_mutex_unlock(&o->mu);
        refuse(o, req, problem, have_keys ? REFUSE_INVALID : REFUSE_UNAVAILABLE,
               have_keys ? "no key with the token's kid in the issuer's JWKS (refreshed "
                           "recently)"
                         : "the authorization server's keys cannot be fetched now");
        return false;
    }
    if (!wait_locked(o, up, req, tok, len, problem)) {
        pthread_mutex_unlock(&o->mu);
        refuse(o, req, problem, REFUSE_UNAVAILABLE, "too many requests wait for the issuer");
        return false;
    }
    start = claim_fetch_locked(o, up);
    pthread_mutex_unlock(&o->mu);
    if (start)
        begin_fetch(o);
    return false;
}
