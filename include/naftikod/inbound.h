/* SPDX-License-Identifier: Apache-2.0 */
/* inbound.h: who may call the adapters. Callers present `Authorization: Bearer <token>`; the
 * daemon keeps only SHA-256 hashes of the tokens (one line per caller in a file) and compares
 * every entry in constant time. */
#ifndef NAFTIKOD_INBOUND_H
#define NAFTIKOD_INBOUND_H

#include <stdbool.h>
#include <stddef.h>

#include "naftikod/common.h"
#include "naftikod/optable.h"
#include "naftikod/sha256.h"

#define NK_CALLER_NAME_MAX 64

/* How an adapter treats callers. */
enum nk_inbound_mode {
    NK_INBOUND_NONE,        /* anyone who reaches the port (loopback by default) */
    NK_INBOUND_TOKEN,       /* a bearer token from the tokens file */
    NK_INBOUND_PASSTHROUGH, /* REST only: the caller's Authorization goes upstream instead */
    NK_INBOUND_OAUTH        /* an OAuth 2.1 access token (oauth.h), checked by this daemon */
};

struct nk_tokens;

/* Parse a tokens file: lines `sha256:<64 hex digits>  NAME` (NAME: [A-Za-z0-9._@-]{1,64}),
 * blank lines and `#` comments. An error names FILE:LINE and what is wrong, never a token. */
enum nk_rc nk_tokens_load(const char *path, struct nk_tokens **out, struct nk_error *err);
/* Same from memory; name is used in messages. */
enum nk_rc nk_tokens_parse(const char *name, const char *text, size_t len, struct nk_tokens **out,
                           struct nk_error *err);
void nk_tokens_free(struct nk_tokens *t);
size_t nk_tokens_count(const struct nk_tokens *t);

/* Check an Authorization header value ("Bearer <token>", scheme case-insensitive). On a match
 * copies the caller's name into name (NK_CALLER_NAME_MAX bytes) and returns true. Every entry is
 * compared, with no early exit and no data-dependent branch on the hash bytes. */
bool nk_tokens_check(const struct nk_tokens *t, const char *authorization, char *name);

/* ---- the capability document's inbound `authentication` (bearer, apikey, basic) ---------- */

/* An adapter's credential from the document, resolved from its binds once per table: only its
 * SHA-256 is kept, and the request's credential is hashed and compared with it in constant
 * time (no early exit on a byte). */
struct nk_doc_secret {
    bool set; /* the adapter declares bearer, apikey or basic authentication */
    unsigned char digest[NK_SHA256_LEN]; /* bearer: the token; apikey: the value; basic:
                                            "user:password" */
    char user[NK_CALLER_NAME_MAX]; /* basic: the user name, the caller's name ("" if it does not
                                      fit); else "" */
};

/* Check a request against the document credential s of authentication a (bearer, apikey or
 * basic; any other type: false). authorization: the Authorization header or NULL; key_value:
 * for apikey, the value of the header or query parameter a->key names, or NULL. */
bool nk_doc_check(const struct nk_auth *a, const struct nk_doc_secret *s, const char *authorization,
                  const char *key_value);

/* `naftikod hash-token [NAME]`: read a token from stdin, print its tokens-file line. */
int nk_cmd_hash_token(int argc, char **argv);

/* Parse "none", "token", "oauth", "passthrough" (the last only when allowed). */
bool nk_inbound_mode_parse(const char *s, bool allow_passthrough, enum nk_inbound_mode *out);
const char *nk_inbound_mode_name(enum nk_inbound_mode m);

/* DNS-rebinding protection, the same for the MCP and the REST adapter: host ("name[:port]", the
 * Host header) and, when present, origin ("scheme://name[:port]", the Origin header) must name
 * localhost, 127.0.0.1 or [::1], or one of hosts[0..n_hosts) (names without port, compared
 * case-insensitively). NULL host or origin: not checked. An opaque origin ("null") is refused. */
bool nk_inbound_host_allowed(const char *const *hosts, size_t n_hosts, const char *host,
                             const char *origin);

#endif
