/* SPDX-License-Identifier: Apache-2.0 */
/* test_jose.c: compact JWS parsing and verification, JWKS keys, claim checks (jose.c). Keys are
 * generated here at run time; tokens are signed here with OpenSSL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "naftikod/jose.h"
#include "naftikod/sha256.h"

static EVP_PKEY *g_rsa, *g_ec, *g_rsa_small;

static char *b64(const void *p, size_t n)
{
    char *s = malloc(nk_b64url_len(n) + 1);

    assert_non_null(s);
    nk_b64url_encode(p, n, s);
    return s;
}

static char *bn_b64(const EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int n;
    char *s;

    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    n = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    s = b64(buf, (size_t)n);
    return s;
}

/* A JWK of k (public part) with kid and alg (NULL: none), as JSON text in a new object. */
static json_t *jwk_of(const EVP_PKEY *k, const char *kid, const char *alg)
{
    json_t *j;
    char *a, *b;

    if (EVP_PKEY_is_a(k, "RSA")) {
        a = bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0);
        b = bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
        j = json_pack("{s:s,s:s,s:s}", "kty", "RSA", "n", a, "e", b);
    } else {
        a = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, 32);
        b = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
        j = json_pack("{s:s,s:s,s:s,s:s}", "kty", "EC", "crv", "P-256", "x", a, "y", b);
    }
    free(a);
    free(b);
    if (kid != NULL)
        json_object_set_new(j, "kid", json_string(kid));
    if (alg != NULL)
        json_object_set_new(j, "alg", json_string(alg));
    return j;
}

/* The JWKS of the RSA key "r1" and the EC key "e1". */
static struct nk_jwks *jwks(void)
{
    json_t *set =
        json_pack("{s:[o,o]}", "keys", jwk_of(g_rsa, "r1", NULL), jwk_of(g_ec, "e1", "ES256"));
    char *text = json_dumps(set, JSON_COMPACT), why[128];
    struct nk_jwks *k = NULL;

    assert_int_equal(nk_jwks_parse(text, strlen(text), &k, why, sizeof(why)), NK_OK);
    assert_int_equal(nk_jwks_count(k), 2);
    free(text);
    json_decref(set);
    return k;
}

/* Sign header.claims with k as alg ("RS256", "PS256", "ES256"); header and claims stolen. */
static char *sign(EVP_PKEY *k, const char *alg, json_t *header, json_t *claims)
{
    char *h = json_dumps(header, JSON_COMPACT), *c = json_dumps(claims, JSON_COMPACT);
    char *hb = b64(h, strlen(h)), *cb = b64(c, strlen(c)), *input, *sb, *tok;
    unsigned char sig[1024], raw[64];
    size_t sig_len = sizeof(sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;

    input = malloc(strlen(hb) + strlen(cb) + 2);
    sprintf(input, "%s.%s", hb, cb);
    assert_int_equal(EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, k), 1);
    if (strcmp(alg, "PS256") == 0) {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    assert_int_equal(EVP_DigestSign(md, sig, &sig_len, (unsigned char *)input, strlen(input)), 1);
    if (strcmp(alg, "ES256") == 0) {
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
        assert_non_null(es);
        BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
        BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
        ECDSA_SIG_free(es);
        sb = b64(raw, 64);
    } else {
        sb = b64(sig, sig_len);
    }
    tok = malloc(strlen(input) + strlen(sb) + 2);
    sprintf(tok, "%s.%s", input, sb);
    EVP_MD_CTX_free(md);
    free(input);
    free(sb);
    free(hb);
    free(cb);
    free(h);
    free(c);
    json_decref(header);
    json_decref(claims);
    return tok;
}

static json_t *good_claims(void)
{
    time_t now = time(NULL);

    return json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s}", "iss", "https://as.test", "sub", "agent-7",
                     "aud", "https://rs.test/mcp", "exp", (json_int_t)now + 300, "nbf",
                     (json_int_t)now - 5, "scope", "tokens:read tokens:write", "client_id",
                     "ci-bot");
}

static json_t *hdr(const char *alg, const char *kid)
{
    return kid != NULL ? json_pack("{s:s,s:s,s:s}", "alg", alg, "kid", kid, "typ", "at+jwt")
                       : json_pack("{s:s}", "alg", alg);
}

static const char *const scopes_rw[] = {"tokens:read"};

static struct nk_claim_rules rules(void)
{
    struct nk_claim_rules r = {.issuer = "https://as.test",
                               .audience = "https://rs.test/mcp",
                               .scopes = scopes_rw,
                               .n_scopes = 1,
                               .leeway_s = 60,
                               .now = time(NULL),
                               .exp_required = true};
    return r;
}

/* parse + verify + claims: 0 ok, else the rc of the failing step ('S' for scope). */
static int check(const char *tok, const struct nk_jwks *keys, unsigned allowed, char *why,
                 size_t cap)
{
    struct nk_jws j;
    struct nk_claim_rules r = rules();
    enum nk_rc rc;
    enum nk_claim_verdict v;

    rc = nk_jws_parse(tok, strlen(tok), allowed, &j, why, cap);
    if (rc != NK_OK)
        return (int)rc;
    rc = nk_jws_verify(&j, keys, why, cap);
    if (rc != NK_OK) {
        nk_jws_cleanup(&j);
        return (int)rc;
    }
    v = nk_claims_check(j.claims, &r, why, cap);
    nk_jws_cleanup(&j);
    return v == NK_CLAIMS_OK ? 0 : v == NK_CLAIMS_SCOPE ? 'S' : 'I';
}

static void test_good_tokens(void **state)
{
    struct nk_jwks *k = jwks();
    const char *algs[] = {"RS256", "PS256", "ES256"};
    char why[160] = "", *tok;
    struct nk_jws j;
    struct nk_principal p;
    size_t i;

    (void)state;
    for (i = 0; i < 3; i++) {
        EVP_PKEY *key = strcmp(algs[i], "ES256") == 0 ? g_ec : g_rsa;
        const char *kid = strcmp(algs[i], "ES256") == 0 ? "e1" : "r1";
        tok = sign(key, algs[i], hdr(algs[i], kid), good_claims());
        assert_int_equal(check(tok, k, NK_JOSE_ALGS_ALL, why, sizeof(why)), 0);
        free(tok);
        /* no kid: each key of the matching type is tried */
        tok = sign(key, algs[i], hdr(algs[i], NULL), good_claims());
        assert_int_equal(check(tok, k, NK_JOSE_ALGS_ALL, why, sizeof(why)), 0);
        free(tok);
    }
    tok = sign(g_rsa, "RS256", hdr("RS256", "r1"), good_claims());
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_RS256, &j, why, sizeof(why)), NK_OK);
    nk_claims_principal(j.claims, &p);
    assert_int_equal(p.kind, NK_PRINCIPAL_OAUTH);
    assert_string_equal(p.name, "agent-7");
    assert_string_equal(p.client_id, "ci-bot");
    assert_string_equal(p.scope, "tokens:read tokens:write");
    assert_true(nk_claims_exp(j.claims) > time(NULL));
    nk_jws_cleanup(&j);
    free(tok);
    nk_jwks_free(k);
}

static void test_bad_signatures(void **state)
{
    struct nk_jwks *k = jwks();
    char why[160] = "", *tok, *dot;

    (void)state;
    /* a payload changed after signing */
    tok = sign(g_rsa, "RS256", hdr("RS256", "r1"), good_claims());
    dot = strchr(tok, '.');
    dot[2] = dot[2] == 'A' ? 'B' : 'A';
    assert_int_not_equal(check(tok, k, NK_JOSE_ALGS_ALL, why, sizeof(why)), 0);
    free(tok);
    /* an unknown kid: NOTFOUND, the reason to refresh the set */
    tok = sign(g_rsa, "RS256", hdr("RS256", "r2"), good_claims());
    assert_int_equal(check(tok, k, NK_JOSE_ALGS_ALL, why, sizeof(why)), NK_ERR_NOTFOUND);
    assert_non_null(strstr(why, "kid"));
    free(tok);
    /* RS256 claimed with the EC key's kid: the key does not match the alg */
    tok = sign(g_rsa, "RS256", hdr("RS256", "e1"), good_claims());
    assert_int_equal(check(tok, k, NK_JOSE_ALGS_ALL, why, sizeof(why)), NK_ERR_INVALID);
    assert_non_null(strstr(why, "does not match"));
    free(tok);
    /* signed by another key of the same type */
    tok = sign(g_rsa_small, "RS256", hdr("RS256", "r1"), good_claims());
    assert_int_equal(check(tok, k, NK_JOSE_ALGS_ALL, why, sizeof(why)), NK_ERR_INVALID);
    free(tok);
    /* ES256 with the r||s signature JWS uses */
    tok = sign(g_ec, "ES256", hdr("ES256", "e1"), good_claims());
    assert_int_equal(check(tok, k, NK_JOSE_ALGS_ALL, why, sizeof(why)), 0);
    free(tok);
    nk_jwks_free(k);
}

/* A token from parts given as text (header JSON, payload JSON, signature text). */
static char *raw_token(const char *h, const char *c, const char *sig)
{
    char *hb = b64(h, strlen(h)), *cb = b64(c, strlen(c));
    char *t = malloc(strlen(hb) + strlen(cb) + strlen(sig) + 3);

    sprintf(t, "%s.%s.%s", hb, cb, sig);
    free(hb);
    free(cb);
    return t;
}

static void test_refused_shapes(void **state)
{
    struct nk_jwks *k = jwks();
    char why[160] = "", *tok, *big;
    const char *claims = "{\"iss\":\"https://as.test\"}";
    struct nk_jws j;

    (void)state;
    tok = raw_token("{\"alg\":\"none\"}", claims, "");
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    assert_non_null(strstr(why, "none"));
    free(tok);
    tok = raw_token("{\"alg\":\"HS256\",\"kid\":\"r1\"}", claims, "c2lnbmF0dXJl");
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    assert_non_null(strstr(why, "HMAC"));
    free(tok);
    /* ES256 when only RS256 is configured */
    tok = sign(g_ec, "ES256", hdr("ES256", "e1"), good_claims());
    assert_int_equal(check(tok, k, NK_JOSE_RS256, why, sizeof(why)), NK_ERR_INVALID);
    assert_non_null(strstr(why, "not configured"));
    free(tok);
    /* crit, a bad typ, padding, a standard-base64 character, two parts, four parts */
    tok = raw_token("{\"alg\":\"RS256\",\"crit\":[\"x\"]}", claims, "c2ln");
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    free(tok);
    tok = raw_token("{\"alg\":\"RS256\",\"typ\":\"dpop+jwt\"}", claims, "c2ln");
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    free(tok);
    tok = raw_token("{\"alg\":\"RS256\"}", claims, "c2lnbg==");
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    assert_non_null(strstr(why, "base64url"));
    free(tok);
    tok = raw_token("{\"alg\":\"RS256\"}", claims, "c2l+bg");
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    free(tok);
    assert_int_equal(nk_jws_parse("abc.def", 7, NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    assert_int_equal(nk_jws_parse("a.b.c.d", 7, NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    /* a duplicate header member, a header that is not an object */
    tok = raw_token("{\"alg\":\"RS256\",\"alg\":\"none\"}", claims, "c2ln");
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    free(tok);
    tok = raw_token("[\"RS256\"]", claims, "c2ln");
    assert_int_equal(nk_jws_parse(tok, strlen(tok), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_INVALID);
    free(tok);
    /* 8 KiB + 1: refused before any decoding */
    big = malloc(NK_JOSE_MAX_TOKEN + 2);
    memset(big, 'A', NK_JOSE_MAX_TOKEN + 1);
    big[10] = '.';
    big[20] = '.';
    big[NK_JOSE_MAX_TOKEN + 1] = '\0';
    assert_int_equal(nk_jws_parse(big, strlen(big), NK_JOSE_ALGS_ALL, &j, why, sizeof(why)),
                     NK_ERR_TOO_LARGE);
    free(big);
    nk_jwks_free(k);
}

static void test_claims(void **state)
{
    struct nk_claim_rules r = rules();
    char why[160];
    json_t *c;

    (void)state;
#define VERDICT(json_expr, want)                                                                   \
    do {                                                                                           \
        c = (json_expr);                                                                           \
        assert_int_equal(nk_claims_check(c, &r, why, sizeof(why)), (want));                        \
        json_decref(c);                                                                            \
    } while (0)
    VERDICT(good_claims(), NK_CLAIMS_OK);
    c = good_claims();
    json_object_set_new(c, "exp", json_integer((json_int_t)r.now - 61));
    VERDICT(c, NK_CLAIMS_INVALID);
    assert_non_null(strstr(why, "expired"));
    c = good_claims();
    json_object_set_new(c, "exp", json_integer((json_int_t)r.now - 59)); /* within the leeway */
    VERDICT(c, NK_CLAIMS_OK);
    c = good_claims();
    json_object_set_new(c, "nbf", json_integer((json_int_t)r.now + 120));
    VERDICT(c, NK_CLAIMS_INVALID);
    assert_non_null(strstr(why, "nbf"));
    c = good_claims();
    json_object_del(c, "exp");
    VERDICT(c, NK_CLAIMS_INVALID);
    c = good_claims();
    json_object_set_new(c, "exp", json_string("tomorrow"));
    VERDICT(c, NK_CLAIMS_INVALID);
    c = good_claims();
    json_object_set_new(c, "iss", json_string("https://evil.test"));
    VERDICT(c, NK_CLAIMS_INVALID);
    assert_non_null(strstr(why, "issuer"));
    c = good_claims();
    json_object_set_new(c, "aud", json_string("https://other.test/mcp"));
    VERDICT(c, NK_CLAIMS_INVALID);
    assert_non_null(strstr(why, "aud"));
    c = good_claims();
    json_object_set_new(c, "aud", json_pack("[s,s]", "x", "https://rs.test/mcp"));
    VERDICT(c, NK_CLAIMS_OK);
    c = good_claims();
    json_object_set_new(c, "scope", json_string("tokens:readonly tokens:write"));
    VERDICT(c, NK_CLAIMS_SCOPE);
    assert_non_null(strstr(why, "tokens:read"));
    c = good_claims();
    json_object_del(c, "scope");
    json_object_set_new(c, "scp", json_pack("[s]", "tokens:read"));
    VERDICT(c, NK_CLAIMS_OK);
    /* introspection answers may omit exp */
    r.exp_required = false;
    c = good_claims();
    json_object_del(c, "exp");
    VERDICT(c, NK_CLAIMS_OK);
#undef VERDICT
}

static void test_jwks_refusals(void **state)
{
    struct nk_jwks *k = NULL;
    char why[160], *text;
    json_t *set, *bad;

    (void)state;
    /* a 1024-bit RSA key, an EC point off the curve, an encryption key: none usable */
    bad = jwk_of(g_ec, "off", NULL);
    json_object_set_new(bad, "y", json_string("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE"));
    set = json_pack("{s:[o,o,o]}", "keys", jwk_of(g_rsa_small, "small", NULL), bad,
                    json_pack("{s:s,s:s}", "kty", "oct", "k", "c2VjcmV0"));
    json_array_append_new(json_object_get(set, "keys"), jwk_of(g_rsa, "enc", NULL));
    json_object_set_new(json_array_get(json_object_get(set, "keys"), 3), "use", json_string("enc"));
    text = json_dumps(set, JSON_COMPACT);
    assert_int_equal(nk_jwks_parse(text, strlen(text), &k, why, sizeof(why)), NK_ERR_INVALID);
    assert_non_null(strstr(why, "4 skipped"));
    free(text);
    json_decref(set);
    assert_int_equal(nk_jwks_parse("{\"keys\":{}}", 11, &k, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_jwks_parse("nope", 4, &k, why, sizeof(why)), NK_ERR_INVALID);
    assert_null(k);
    nk_jwks_free(NULL);
}

static void test_algs_option(void **state)
{
    unsigned m = 0;
    char why[128];

    (void)state;
    assert_int_equal(nk_jose_algs_parse("RS256, ES256", &m, why, sizeof(why)), NK_OK);
    assert_int_equal(m, NK_JOSE_RS256 | NK_JOSE_ES256);
    assert_int_equal(nk_jose_algs_parse("RS256,HS256", &m, why, sizeof(why)), NK_ERR_INVALID);
    assert_non_null(strstr(why, "HMAC"));
    assert_int_equal(nk_jose_algs_parse("none", &m, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_jose_algs_parse("", &m, why, sizeof(why)), NK_ERR_INVALID);
}

static void test_sha256_same(void **state)
{
    unsigned char a[32], b[32], buf[1000];
    size_t n;

    (void)state;
    for (n = 0; n < sizeof(buf); n++)
        buf[n] = (unsigned char)(n * 7);
    for (n = 0; n < sizeof(buf); n += 37) {
        nk_jose_sha256(buf, n, a);
        nk_sha256(buf, n, b);
        assert_memory_equal(a, b, 32);
    }
}

static int keys_setup(void **state)
{
    (void)state;
    g_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    g_rsa_small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    g_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return g_rsa != NULL && g_ec != NULL && g_rsa_small != NULL ? 0 : -1;
}

static int keys_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(g_rsa);
    EVP_PKEY_free(g_rsa_small);
    EVP_PKEY_free(g_ec);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_tokens),    cmocka_unit_test(test_bad_signatures),
        cmocka_unit_test(test_refused_shapes), cmocka_unit_test(test_claims),
        cmocka_unit_test(test_jwks_refusals),  cmocka_unit_test(test_algs_option),
        cmocka_unit_test(test_sha256_same),
    };
    return cmocka_run_group_tests(tests, keys_setup, keys_teardown);
}
