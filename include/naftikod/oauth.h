/* SPDX-License-Identifier: Apache-2.0 */
/* oauth.h: an adapter's OAuth 2.1 resource server (the MCP authorization spec, RFC 9728, 8414,
 * 7662, 8707, 6750). It checks the access token of each request in the listener's admit hook:
 * a JWT against the issuer's JWKS, or an opaque token by introspection; keys and metadata are
 * fetched with the shared upstream client on the loop, never blocking it (a request waits,
 * suspended, with httpd's deferred admission). It serves the RFC 9728 metadata and answers the
 * spec's challenges. The client's token never goes upstream: only the AS sees it (introspection).
 * One instance per configured resource, shared by every loop: thread-safe. */
#ifndef NAFTIKOD_OAUTH_H
#define NAFTIKOD_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"
#include "naftikod/httpd.h"
#include "naftikod/optable.h"
#include "naftikod/upstream.h"

struct nk_oauth_options {
    unsigned algs;        /* nk_jose_alg bits accepted; 0: RS256, PS256 and ES256 */
    long leeway_s;        /* clock skew allowed on exp and nbf; < 0: 60 */
    long refresh_min_s;   /* an unknown kid refreshes the JWKS at most once per this; 0: 30 */
    long jwks_max_age_s;  /* keys older than this are fetched again, in the background, by the
                             next token not in the verdict cache; 0: 3600 */
    size_t cache_entries; /* checked tokens remembered (by SHA-256): 0 none */
    long cache_ttl_s;     /* the longest a verdict is remembered (never past exp); 0: 300 */
    /* introspection: the client credentials the AS knows this resource server by (borrowed
     * for the call; copied); NULL with JWKS validation */
    const char *client_id;
    const char *client_secret;
};

struct nk_oauth;

/* A resource server for conf (copied; authorization_server_uri and resource required, an
 * absolute http(s) URI each). NK_ERR_INVALID with the reason in err; NK_ERR_NOMEM. Frees with
 * nk_oauth_free() after the listeners and the upstream clients that used it. */
enum nk_rc nk_oauth_new(const struct nk_oauth_conf *conf, const struct nk_oauth_options *opts,
                        struct nk_oauth **out, struct nk_error *err);
void nk_oauth_free(struct nk_oauth *o); /* NULL is a no-op */

/* Fetch the issuer's metadata (and its JWKS) now, on up's loop, so the first caller does not
 * wait. Any thread. */
void nk_oauth_prefetch(struct nk_oauth *o, struct nk_upstream *up);

/* The admit hook's check of req, on the loop thread of up (the client that fetches what is
 * missing). Returns true when req may in (its principal set: kind NK_PRINCIPAL_OAUTH, the
 * token's sub, client_id or azp, scope); false when it was answered (401 with the Bearer
 * challenge, 403 insufficient_scope, 400 for a token in the query string, 503 when the issuer's
 * keys cannot be had) or deferred (nk_http_req_defer: answered or admitted later). problem:
 * REST-style problem+json bodies, else a JSON {error, error_description}. Every refusal is
 * logged on one line with its reason, never with the token. */
bool nk_oauth_admit(struct nk_oauth *o, struct nk_upstream *up, struct nk_http_req *req,
                    bool problem);

/* True when path is where this resource's RFC 9728 metadata is served:
 * /.well-known/oauth-protected-resource and the same followed by the resource's path. */
bool nk_oauth_metadata_path(const struct nk_oauth *o, const char *path);
/* Answer req with the metadata document (GET) or 405. */
void nk_oauth_metadata(struct nk_oauth *o, struct nk_http_req *req);

/* Where an issuer's metadata is: RFC 8414 3 inserts /.well-known/oauth-authorization-server
 * between the host and the issuer's path (https://as/t -> https://as/.well-known/oauth-
 * authorization-server/t); OpenID Connect Discovery appends /.well-known/openid-configuration
 * to the issuer (oidc true). A trailing '/' of the issuer is dropped. Caller frees; NULL for a
 * URI that is not absolute http(s), or on OOM. */
char *nk_oauth_discovery_url(const char *issuer, bool oidc);

#endif
