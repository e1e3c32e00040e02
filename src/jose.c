/* SPDX-License-Identifier: Apache-2.0 */
/* jose.c: compact JWS parsing and verification, JWKS keys and JWT claim checks on OpenSSL 3. */
#include "naftikod/jose.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "naftikod/sha256.h"

/* RSA keys shorter than this are refused (RFC 7518 3.3: 2048 bits or larger). */
#define MIN_RSA_BITS 2048
/* The decoded header or payload of a token is at most this (the token is bounded anyway). */
#define MAX_PART NK_JOSE_MAX_TOKEN

struct jwk {
    char kid[128];
    bool rsa;       /* else EC P-256 */
    unsigned alg;   /* the JWK's `alg` as a bit, or 0 when it names none */
    EVP_PKEY *pkey; /* owned */
};

struct nk_jwks {
    struct jwk keys[NK_JOSE_MAX_KEYS];
    size_t n;
};

static void say(char *why, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
}

static unsigned alg_bit(const char *name)
{
    if (strcmp(name, "RS256") == 0)
        return NK_JOSE_RS256;
    if (strcmp(name, "PS256") == 0)
        return NK_JOSE_PS256;
    if (strcmp(name, "ES256") == 0)
        return NK_JOSE_ES256;
    return 0;
}

static bool alg_is_rsa(unsigned bit)
{
    return bit == NK_JOSE_RS256 || bit == NK_JOSE_PS256;
}

/* Why an algorithm other than the three is refused, for the log. */
static void say_refused_alg(const char *name, char *why, size_t cap)
{
    char shown[16];
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < sizeof(shown); i++)
        shown[i] = isprint((unsigned char)name[i]) ? name[i] : '?';
    shown[i] = '\0';
    if (strcasecmp(name, "none") == 0)
        say(why, cap, "alg 'none' (an unsigned token) is refused");
    else if (strncasecmp(name, "HS", 2) == 0)
        say(why, cap, "alg '%s' (HMAC, keyed with what may be a public key) is refused", shown);
    else
        say(why, cap, "alg '%s' is not accepted", shown);
}

enum nk_rc nk_jose_algs_parse(const char *list, unsigned *mask, char *why, size_t cap)
{
    char word[32];
    size_t n;
    unsigned bit;

    *mask = 0;
    while (*list != '\0') {
        n = strcspn(list, ", \t");
        if (n > 0) {
            if (n >= sizeof(word)) {
                say(why, cap, "an algorithm name is too long");
                return NK_ERR_INVALID;
            }
            memcpy(word, list, n);
            word[n] = '\0';
            bit = alg_bit(word);
            if (bit == 0) {
                say_refused_alg(word, why, cap);
                return NK_ERR_INVALID;
            }
            *mask |= bit;
        }
        list += n;
        list += strspn(list, ", \t");
    }
    if (*mask == 0) {
        say(why, cap, "no algorithm named");
        return NK_ERR_INVALID;
    }
    return NK_OK;
}

/* Decode the base64url JSON member `name` of o into a new buffer (*len bytes). */
static unsigned char *member_b64(const json_t *o, const char *name, size_t max, size_t *len)
{
    const char *s = json_string_value(json_object_get(o, name));
    unsigned char *buf;
    size_t n;

    if (s == NULL || s[0] == '\0' || strlen(s) > max * 4 / 3 + 4)
        return NULL;
    buf = malloc(max);
    if (buf == NULL)
        return NULL;
    n = nk_b64url_decode(s, strlen(s), buf, max);
    if (n == (size_t)-1 || n == 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* A public key from an OSSL_PARAM list: type "RSA" or "EC". NULL on failure. */
static EVP_PKEY *key_from(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;

    if (params == NULL)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(const json_t *k)
{
    unsigned char *n = NULL, *e = NULL;
    size_t n_len = 0, e_len = 0;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    n = member_b64(k, "n", 1024, &n_len);
    e = member_b64(k, "e", 8, &e_len);
    if (n == NULL || e == NULL || n_len * 8 < MIN_RSA_BITS)
        goto out;
    bn = BN_bin2bn(n, (int)n_len, NULL);
    be = BN_bin2bn(e, (int)e_len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn == NULL || be == NULL || bld == NULL || BN_num_bits(bn) < MIN_RSA_BITS ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        goto out;
    pkey = key_from("RSA", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *ec_key(const json_t *k)
{
    unsigned char *x = NULL, *y = NULL, point[65];
    size_t x_len = 0, y_len = 0;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;
    const char *crv = json_string_value(json_object_get(k, "crv"));

    if (crv == NULL || strcmp(crv, "P-256") != 0)
        goto out;
    x = member_b64(k, "x", 32, &x_len);
    y = member_b64(k, "y", 32, &y_len);
    if (x == NULL || y == NULL || x_len != 32 || y_len != 32)
        goto out;
    point[0] = 0x04; /* uncompressed: the import checks the point is on the curve */
    memcpy(point + 1, x, 32);
    memcpy(point + 33, y, 32);
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL ||
        !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
        goto out;
    pkey = key_from("EC", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}

enum nk_rc nk_jwks_parse(const char *json, size_t len, struct nk_jwks **out, char *why, size_t cap)
{
    struct nk_jwks *set = NULL;
    json_t *doc = NULL, *keys, *k;
    json_error_t jerr;
    enum nk_rc rc = NK_ERR_INVALID;
    size_t i, skipped = 0;

    *out = NULL;
    if (len > NK_JOSE_MAX_JWKS) {
        say(why, cap, "the JWKS is larger than %d bytes", NK_JOSE_MAX_JWKS);
        return NK_ERR_TOO_LARGE;
    }
    if (memchr(json, '\0', len) != NULL) {
        say(why, cap, "the JWKS is not JSON text");
        return NK_ERR_INVALID;
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        say(why, cap, "not a JWKS (no 'keys' array)");
        goto out;
    }
    set = calloc(1, sizeof(*set));
    if (set == NULL) {
        rc = NK_ERR_NOMEM;
        goto out;
    }
    json_array_foreach(keys, i, k)
    {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *use = json_string_value(json_object_get(k, "use"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        const char *kid = json_string_value(json_object_get(k, "kid"));
        struct jwk *slot = &set->keys[set->n];
        unsigned bit = alg != NULL ? alg_bit(alg) : 0;

        if (set->n == NK_JOSE_MAX_KEYS || kty == NULL || (use != NULL && strcmp(use, "sig")) ||
            (alg != NULL && bit == 0) || (kid != NULL && strlen(kid) >= sizeof(slot->kid))) {
            skipped++;
            continue;
        }
        if (strcmp(kty, "RSA") == 0 && (bit == 0 || alg_is_rsa(bit))) {
            slot->rsa = true;
            slot->pkey = rsa_key(k);
        } else if (strcmp(kty, "EC") == 0 && (bit == 0 || bit == NK_JOSE_ES256)) {
            slot->rsa = false;
            slot->pkey = ec_key(k);
        }
        if (slot->pkey == NULL) {
            skipped++;
            continue;
        }
        slot->alg = bit;
        snprintf(slot->kid, sizeof(slot->kid), "%s", kid != NULL ? kid : "");
        set->n++;
    }
    if (set->n == 0) {
        say(why, cap, "the JWKS has no usable signing key (%zu skipped)", skipped);
        goto out;
    }
    *out = set;
    set = NULL;
    rc = NK_OK;
out:
    nk_jwks_free(set);
    json_decref(doc);
    return rc;
}

void nk_jwks_free(struct nk_jwks *k)
{
    size_t i;

    if (k == NULL)
        return;
    for (i = 0; i < k->n; i++)
        EVP_PKEY_free(k->keys[i].pkey);
    free(k);
}

size_t nk_jwks_count(const struct nk_jwks *k)
{
    return k != NULL ? k->n : 0;
}

/* Decode one base64url part of a token into a JSON object. */
static json_t *part_json(const char *s, size_t n)
{
    unsigned char *buf = malloc(MAX_PART + 1);
    json_t *j = NULL;
    size_t len;

    if (buf == NULL)
        return NULL;
    len = nk_b64url_decode(s, n, buf, MAX_PART);
    if (len != (size_t)-1 && memchr(buf, '\0', len) == NULL)
        j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

enum nk_rc nk_jws_parse(const char *token, size_t len, unsigned allowed, struct nk_jws *out,
                        char *why, size_t cap)
{
    const char *dot1, *dot2, *alg, *typ, *kid;
    size_t n;

    memset(out, 0, sizeof(*out));
    if (len > NK_JOSE_MAX_TOKEN) {
        say(why, cap, "the token is longer than %d bytes", NK_JOSE_MAX_TOKEN);
        return NK_ERR_TOO_LARGE;
    }
    dot1 = memchr(token, '.', len);
    dot2 = dot1 != NULL ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        say(why, cap, "not a compact JWS (three dot-separated parts)");
        return NK_ERR_INVALID;
    }
    out->token = token;
    out->header = part_json(token, (size_t)(dot1 - token));
    if (out->header == NULL) {
        say(why, cap, "the token header is not base64url JSON");
        goto bad;
    }
    alg = json_string_value(json_object_get(out->header, "alg"));
    if (alg == NULL) {
        say(why, cap, "the token header has no alg");
        goto bad;
    }
    out->alg = alg_bit(alg);
    if (out->alg == 0) {
        say_refused_alg(alg, why, cap);
        goto bad;
    }
    if ((out->alg & allowed) == 0) {
        say(why, cap, "alg '%s' is not configured here", alg);
        goto bad;
    }
    if (json_object_get(out->header, "crit") != NULL) {
        say(why, cap, "the token header has 'crit' extensions");
        goto bad;
    }
    typ = json_string_value(json_object_get(out->header, "typ"));
    if (json_object_get(out->header, "typ") != NULL &&
        (typ == NULL || (strcasecmp(typ, "JWT") != 0 && strcasecmp(typ, "at+jwt") != 0 &&
                         strcasecmp(typ, "application/at+jwt") != 0))) {
        say(why, cap, "the token's typ is not JWT or at+jwt");
        goto bad;
    }
    kid = json_string_value(json_object_get(out->header, "kid"));
    if (json_object_get(out->header, "kid") != NULL &&
        (kid == NULL || strlen(kid) >= sizeof(out->kid))) {
        say(why, cap, "the token's kid is not a short string");
        goto bad;
    }
    snprintf(out->kid, sizeof(out->kid), "%s", kid != NULL ? kid : "");
    out->claims = part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (out->claims == NULL) {
        say(why, cap, "the token payload is not base64url JSON");
        goto bad;
    }
    out->signed_len = (size_t)(dot2 - token);
    n = len - out->signed_len - 1;
    out->sig_len = nk_b64url_decode(dot2 + 1, n, out->sig, sizeof(out->sig));
    if (out->sig_len == (size_t)-1 || out->sig_len == 0) {
        out->sig_len = 0;
        say(why, cap, "the token signature is not base64url");
        goto bad;
    }
    return NK_OK;
bad:
    nk_jws_cleanup(out);
    return NK_ERR_INVALID;
}

void nk_jws_cleanup(struct nk_jws *j)
{
    if (j == NULL)
        return;
    json_decref(j->header);
    json_decref(j->claims);
    memset(j, 0, sizeof(*j));
}

/* JWS ES256 signatures are r||s (32 bytes each); OpenSSL wants DER. *der: caller frees with
 * OPENSSL_free. */
static int ecdsa_der(const unsigned char *sig, size_t len, unsigned char **der)
{
    ECDSA_SIG *s = NULL;
    BIGNUM *r = NULL, *ss = NULL;
    int n = -1;

    *der = NULL;
    if (len != 64)
        return -1;
    s = ECDSA_SIG_new();
    r = BN_bin2bn(sig, 32, NULL);
    ss = BN_bin2bn(sig + 32, 32, NULL);
    if (s == NULL || r == NULL || ss == NULL || !ECDSA_SIG_set0(s, r, ss))
        goto out;
    r = ss = NULL; /* s owns them now */
    n = i2d_ECDSA_SIG(s, der);
out:
    BN_free(r);
    BN_free(ss);
    ECDSA_SIG_free(s);
    return n;
}

/* 1: valid; 0: not; -1: could not check. */
static int verify_with(const struct nk_jws *j, EVP_PKEY *pkey)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    const unsigned char *sig = j->sig;
    size_t sig_len = j->sig_len;
    int ok = -1, n;

    if (md == NULL)
        goto out;
    if (j->alg == NK_JOSE_ES256) {
        n = ecdsa_der(j->sig, j->sig_len, &der);
        if (n <= 0) {
            ok = 0;
            goto out;
        }
        sig = der;
        sig_len = (size_t)n;
    }
    if (EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pkey) != 1)
        goto out;
    if (j->alg == NK_JOSE_PS256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
        goto out;
    ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)j->token, j->signed_len) == 1;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    return ok;
}

static bool key_fits(const struct jwk *k, unsigned alg)
{
    if (k->alg != 0 && k->alg != alg)
        return false;
    return alg_is_rsa(alg) ? k->rsa : !k->rsa;
}

enum nk_rc nk_jws_verify(const struct nk_jws *j, const struct nk_jwks *keys, char *why, size_t cap)
{
    size_t i, tried = 0;
    bool kid_seen = false;

    for (i = 0; keys != NULL && i < keys->n; i++) {
        const struct jwk *k = &keys->keys[i];
        if (j->kid[0] != '\0' && strcmp(k->kid, j->kid) != 0)
            continue;
        kid_seen = true;
        if (!key_fits(k, j->alg))
            continue;
        tried++;
        if (verify_with(j, k->pkey) == 1)
            return NK_OK;
    }
    if (j->kid[0] != '\0' && !kid_seen) {
        say(why, cap, "no key with the token's kid in the issuer's JWKS");
        return NK_ERR_NOTFOUND;
    }
    if (tried == 0)
        say(why, cap, "the issuer's key does not match the token's alg");
    else
        say(why, cap, "the token signature does not verify");
    return NK_ERR_INVALID;
}

/* True when the space-separated list s contains word. */
static bool has_word(const char *s, const char *word)
{
    size_t wl = strlen(word), n;

    while (*s != '\0') {
        n = strcspn(s, " ");
        if (n == wl && strncmp(s, word, n) == 0)
            return true;
        s += n;
        s += strspn(s, " ");
    }
    return false;
}

static bool has_scope(const json_t *claims, const char *want)
{
    const json_t *scp = json_object_get(claims, "scp"), *v;
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    size_t i;

    if (scope != NULL && has_word(scope, want))
        return true;
    if (json_is_string(scp) && has_word(json_string_value(scp), want))
        return true;
    json_array_foreach(scp, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

static bool aud_has(const json_t *aud, const char *want)
{
    const json_t *v;
    size_t i;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return true;
    }
    return false;
}

enum nk_claim_verdict nk_claims_check(const json_t *claims, const struct nk_claim_rules *r,
                                      char *why, size_t cap)
{
    const json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    double now = (double)r->now;
    size_t i;

    if (exp == NULL ? r->exp_required : !json_is_number(exp)) {
        say(why, cap, "the token has no numeric exp");
        return NK_CLAIMS_INVALID;
    }
    if (exp != NULL && now > json_number_value(exp) + (double)r->leeway_s) {
        say(why, cap, "the token expired");
        return NK_CLAIMS_INVALID;
    }
    if (nbf != NULL &&
        (!json_is_number(nbf) || now + (double)r->leeway_s < json_number_value(nbf))) {
        say(why, cap, "the token is not valid yet (nbf)");
        return NK_CLAIMS_INVALID;
    }
    if (r->issuer != NULL && (iss == NULL || strcmp(iss, r->issuer) != 0)) {
        say(why, cap, "the token's issuer is not the configured one");
        return NK_CLAIMS_INVALID;
    }
    if (r->audience != NULL && !aud_has(json_object_get(claims, "aud"), r->audience)) {
        say(why, cap, "the token was not issued for this resource (aud)");
        return NK_CLAIMS_INVALID;
    }
    for (i = 0; i < r->n_scopes; i++)
        if (!has_scope(claims, r->scopes[i])) {
            say(why, cap, "the token lacks the scope '%s'", r->scopes[i]);
            return NK_CLAIMS_SCOPE;
        }
    return NK_CLAIMS_OK;
}

/* Copy s into out (cap bytes) keeping printable ASCII only (names end in logs). */
static void copy_printable(const char *s, char *out, size_t cap)
{
    size_t i;

    for (i = 0; s != NULL && s[i] != '\0' && i + 1 < cap; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[i] = '\0';
}

void nk_claims_principal(const json_t *claims, struct nk_principal *p)
{
    const json_t *scp = json_object_get(claims, "scp"), *v;
    const char *client = json_string_value(json_object_get(claims, "client_id"));
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    size_t i, used = 0;

    memset(p, 0, sizeof(*p));
    p->kind = NK_PRINCIPAL_OAUTH;
    if (client == NULL)
        client = json_string_value(json_object_get(claims, "azp"));
    copy_printable(json_string_value(json_object_get(claims, "sub")), p->name, sizeof(p->name));
    copy_printable(client, p->client_id, sizeof(p->client_id));
    if (scope != NULL || json_is_string(scp)) {
        copy_printable(scope != NULL ? scope : json_string_value(scp), p->scope, sizeof(p->scope));
        return;
    }
    json_array_foreach(scp, i, v)
    {
        const char *s = json_string_value(v);
        size_t n = s != NULL ? strlen(s) : 0;
        if (n == 0 || used + n + 2 > sizeof(p->scope))
            continue;
        if (used > 0)
            p->scope[used++] = ' ';
        copy_printable(s, p->scope + used, sizeof(p->scope) - used);
        used += n;
    }
}

long long nk_claims_exp(const json_t *claims)
{
    const json_t *exp = json_object_get(claims, "exp");

    return json_is_number(exp) ? (long long)json_number_value(exp) : 0;
}

static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL); /* held for the process's life */
}

void nk_jose_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned n = 0;

    pthread_once(&g_sha256_once, fetch_sha256);
    if (g_sha256 == NULL || EVP_Digest(data, len, out, &n, g_sha256, NULL) != 1 || n != 32)
        nk_sha256(data, len, out);
}
