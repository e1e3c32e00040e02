/* SPDX-License-Identifier: Apache-2.0 */
/* jose.h: JSON Web Signatures (compact form) and JSON Web Key Sets, verified with OpenSSL 3,
 * for OAuth 2.1 access tokens (RFC 7515, 7517, 7518, 7519, 9068). The only module that includes
 * OpenSSL. Parsing is bounded (NK_JOSE_MAX_TOKEN), base64url strict (canonical, unpadded), JSON
 * headers and claims through jansson; RS256, PS256 and ES256 only: `none` and every HMAC
 * algorithm are refused whatever the configuration (a public key is no secret). */
#ifndef NAFTIKOD_JOSE_H
#define NAFTIKOD_JOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "naftikod/common.h"
#include "naftikod/principal.h"

/* Longest token accepted, in bytes: anything longer is refused before any decoding. */
#define NK_JOSE_MAX_TOKEN 8192
/* Longest JWKS document accepted. */
#define NK_JOSE_MAX_JWKS (256 * 1024)
/* Most keys kept from one JWKS. */
#define NK_JOSE_MAX_KEYS 32

/* Signature algorithms, as a bit set of the ones a resource server accepts. */
enum nk_jose_alg {
    NK_JOSE_RS256 = 1u << 0,
    NK_JOSE_PS256 = 1u << 1,
    NK_JOSE_ES256 = 1u << 2,
};
#define NK_JOSE_ALGS_ALL (NK_JOSE_RS256 | NK_JOSE_PS256 | NK_JOSE_ES256)
/* Parse a comma/blank separated list ("RS256,ES256") into *mask. NK_ERR_INVALID names the
 * algorithm refused in why (none, HS*, or unknown). */
enum nk_rc nk_jose_algs_parse(const char *list, unsigned *mask, char *why, size_t cap);

/* A key set: immutable once parsed, shared by any number of threads. */
struct nk_jwks;
/* Parse a JWKS document (len bytes, at most NK_JOSE_MAX_JWKS): every RSA key (n, e; 2048 bits
 * at least) and EC P-256 key (x, y) meant for signatures (`use` absent or "sig") becomes an
 * OpenSSL key, once. Keys of other types, curves or algorithms are skipped. *out: caller frees
 * with nk_jwks_free(). NK_ERR_INVALID (not a JWKS, or no usable key; why says which),
 * NK_ERR_TOO_LARGE, NK_ERR_NOMEM. */
enum nk_rc nk_jwks_parse(const char *json, size_t len, struct nk_jwks **out, char *why, size_t cap);
void nk_jwks_free(struct nk_jwks *k); /* NULL is a no-op */
size_t nk_jwks_count(const struct nk_jwks *k);

/* A parsed, not yet verified, compact JWS. Owns what it points to: nk_jws_cleanup(). */
struct nk_jws {
    enum nk_jose_alg alg;
    char kid[128];          /* "" when the header has none */
    json_t *header;         /* the protected header (object) */
    json_t *claims;         /* the payload (object) */
    const char *token;      /* borrowed: the token given to nk_jws_parse() */
    size_t signed_len;      /* bytes of token[0..signed_len) that are signed */
    unsigned char sig[512]; /* the decoded signature */
    size_t sig_len;
};
/* Parse token (len bytes, not necessarily NUL-terminated; borrowed until cleanup). Checks the
 * shape (three base64url parts), the header (`alg` one of allowed, no `crit`, `typ` absent, JWT
 * or at+jwt), the payload (a JSON object). NK_ERR_TOO_LARGE beyond NK_JOSE_MAX_TOKEN,
 * NK_ERR_INVALID otherwise, why saying what (never quoting the token); NK_ERR_NOMEM. */
enum nk_rc nk_jws_parse(const char *token, size_t len, unsigned allowed, struct nk_jws *out,
                        char *why, size_t cap);
void nk_jws_cleanup(struct nk_jws *j);
/* Check j's signature with the key of keys whose kid is j->kid (without a kid: each key of a
 * matching type). The key's type (and its `alg`, when the JWK has one) must match j->alg.
 * NK_OK; NK_ERR_NOTFOUND when no key has that kid (a reason to refresh the set);
 * NK_ERR_INVALID (bad signature, mismatched key), why set. */
enum nk_rc nk_jws_verify(const struct nk_jws *j, const struct nk_jwks *keys, char *why, size_t cap);

/* What a resource server demands of a token's claims (a JWT's payload or an introspection
 * answer). All strings borrowed. */
struct nk_claim_rules {
    const char *issuer;   /* iss must equal it; NULL: not checked (introspection without iss) */
    const char *audience; /* aud (string or array) must contain it */
    const char *const *scopes; /* each required */
    size_t n_scopes;
    long leeway_s; /* allowed clock skew for exp and nbf */
    time_t now;
    bool exp_required; /* a JWT must have exp; an introspection answer may omit it */
};
enum nk_claim_verdict {
    NK_CLAIMS_OK,
    NK_CLAIMS_INVALID, /* invalid_token: why says which claim */
    NK_CLAIMS_SCOPE    /* insufficient_scope: why names the missing scope */
};
enum nk_claim_verdict nk_claims_check(const json_t *claims, const struct nk_claim_rules *r,
                                      char *why, size_t cap);
/* The caller as the claims name it: sub, client_id (or azp), scope (or scp joined by
 * blanks), each truncated to the principal's fields; kind NK_PRINCIPAL_OAUTH. */
void nk_claims_principal(const json_t *claims, struct nk_principal *p);
/* The claims' exp, or 0 when absent or not a number. */
long long nk_claims_exp(const json_t *claims);

/* SHA-256 of len bytes with OpenSSL's implementation (SHA-NI/AVX2 where the CPU has them: about
 * four times faster than sha256.c on a token-sized input), for the resource server's verdict
 * cache keys; the same digest as nk_sha256(). Thread-safe. */
void nk_jose_sha256(const void *data, size_t len, unsigned char out[32]);

#endif
