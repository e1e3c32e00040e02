/* SPDX-License-Identifier: Apache-2.0 */
/* sha256.h: SHA-256 (FIPS 180-4), HMAC-SHA256 (RFC 2104) and unpadded base64url (RFC 4648 §5),
 * enough to mint and verify MCP session ids without a crypto library. Not constant-time beyond
 * the MAC comparison helper; never use it for secrets at rest. */
#ifndef NAFTIKOD_SHA256_H
#define NAFTIKOD_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NK_SHA256_LEN 32
#define NK_SHA256_BLOCK 64

/* Streaming state; caller storage. */
struct nk_sha256 {
    uint32_t h[8];
    uint64_t len; /* bytes hashed so far */
    unsigned char buf[NK_SHA256_BLOCK];
    size_t n; /* bytes in buf */
};

void nk_sha256_init(struct nk_sha256 *c);
void nk_sha256_update(struct nk_sha256 *c, const void *data, size_t len);
void nk_sha256_final(struct nk_sha256 *c, unsigned char out[NK_SHA256_LEN]);
/* One-shot digest. */
void nk_sha256(const void *data, size_t len, unsigned char out[NK_SHA256_LEN]);
/* HMAC-SHA256 of msg under key (any length). */
void nk_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                    unsigned char out[NK_SHA256_LEN]);
/* Compare n bytes without an early exit. */
bool nk_mem_equal_ct(const void *a, const void *b, size_t n);

/* Encode len bytes as unpadded base64url into out (room for nk_b64url_len(len) + 1 bytes,
 * NUL-terminated). Returns the length written. */
size_t nk_b64url_len(size_t len);
size_t nk_b64url_encode(const void *in, size_t len, char *out);
/* Decode unpadded base64url text s (length n) into out (room for cap bytes). Returns the number
 * of bytes, or (size_t)-1 when s is not canonical base64url or does not fit. */
size_t nk_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap);

#endif
