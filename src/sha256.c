/* SPDX-License-Identifier: Apache-2.0 */
/* sha256.c: SHA-256, HMAC-SHA256 and base64url for self-verifying MCP session ids. */
#include "naftikod/sha256.h"

#include <string.h>

static const uint32_t k256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* One round with the eight working variables named in rotated order, so that eight rounds in a
 * row need no shuffling of them: each round writes only d and h. */
#define ROUND(a, b, c, d, e, f, g, h, i)                                                           \
    do {                                                                                           \
        uint32_t t1_ =                                                                             \
            h + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + (g ^ (e & (f ^ g))) + k256[i] + w[i];      \
        uint32_t t2_ = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) | (c & (a | b)));          \
        d += t1_;                                                                                  \
        h = t1_ + t2_;                                                                             \
    } while (0)

static void compress(uint32_t st[8], const unsigned char *p)
{
    uint32_t w[64], a, b, c, d, e, f, g, h;
    unsigned i;

    for (i = 0; i < 16; i++)
        w[i] = load_be32(p + 4 * i);
    for (i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    for (i = 0; i < 64; i += 8) {
        ROUND(a, b, c, d, e, f, g, h, i);
        ROUND(h, a, b, c, d, e, f, g, i + 1);
        ROUND(g, h, a, b, c, d, e, f, i + 2);
        ROUND(f, g, h, a, b, c, d, e, i + 3);
        ROUND(e, f, g, h, a, b, c, d, i + 4);
        ROUND(d, e, f, g, h, a, b, c, i + 5);
        ROUND(c, d, e, f, g, h, a, b, i + 6);
        ROUND(b, c, d, e, f, g, h, a, i + 7);
    }
    st[0] += a, st[1] += b, st[2] += c, st[3] += d, st[4] += e, st[5] += f, st[6] += g, st[7] += h;
}

#undef ROUND

void nk_sha256_init(struct nk_sha256 *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

    memcpy(c->h, iv, sizeof(iv));
    c->len = 0;
    c->n = 0;
}

void nk_sha256_update(struct nk_sha256 *c, const void *data, size_t len)
{
    const unsigned char *p = data;

    c->len += len;
    while (len > 0) {
        size_t take = NK_SHA256_BLOCK - c->n;

        if (take > len)
            take = len;
        memcpy(c->buf + c->n, p, take);
        c->n += take;
        p += take;
        len -= take;
        if (c->n == NK_SHA256_BLOCK) {
            compress(c->h, c->buf);
            c->n = 0;
        }
    }
}

void nk_sha256_final(struct nk_sha256 *c, unsigned char out[NK_SHA256_LEN])
{
    uint64_t bits = c->len * 8;
    unsigned i;

    c->buf[c->n++] = 0x80;
    if (c->n > 56) {
        memset(c->buf + c->n, 0, NK_SHA256_BLOCK - c->n);
        compress(c->h, c->buf);
        c->n = 0;
    }
    memset(c->buf + c->n, 0, 56 - c->n);
    for (i = 0; i < 8; i++)
        c->buf[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    compress(c->h, c->buf);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)c->h[i];
    }
    memset(c, 0, sizeof(*c));
}

void nk_sha256(const void *data, size_t len, unsigned char out[NK_SHA256_LEN])
{
    struct nk_sha256 c;

    nk_sha256_init(&c);
    nk_sha256_update(&c, data, len);
    nk_sha256_final(&c, out);
}

/* The states after the key's inner and outer pad blocks; kept per thread for the last key used,
 * which halves the work of an HMAC of a short message under the same key (a session id check). */
struct hmac_pads {
    bool set;
    unsigned char key[NK_SHA256_BLOCK]; /* the key as padded, or its digest when longer */
    uint32_t inner[8], outer[8];
};

static _Thread_local struct hmac_pads tl_pads;

static void pads_for(const void *key, size_t key_len, struct hmac_pads *out)
{
    unsigned char k[NK_SHA256_BLOCK], pad[NK_SHA256_BLOCK];
    struct nk_sha256 c;
    unsigned i;

    memset(k, 0, sizeof(k));
    if (key_len > NK_SHA256_BLOCK)
        nk_sha256(key, key_len, k);
    else if (key_len > 0)
        memcpy(k, key, key_len);
    if (out->set && nk_mem_equal_ct(out->key, k, sizeof(k))) {
        memset(k, 0, sizeof(k));
        return;
    }
    memcpy(out->key, k, sizeof(k));
    nk_sha256_init(&c);
    for (i = 0; i < NK_SHA256_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    compress(c.h, pad);
    memcpy(out->inner, c.h, sizeof(c.h));
    nk_sha256_init(&c);
    for (i = 0; i < NK_SHA256_BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    compress(c.h, pad);
    memcpy(out->outer, c.h, sizeof(c.h));
    out->set = true;
    memset(k, 0, sizeof(k));
    memset(pad, 0, sizeof(pad));
    memset(&c, 0, sizeof(c));
}

void nk_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t msg_len,
                    unsigned char out[NK_SHA256_LEN])
{
    unsigned char inner[NK_SHA256_LEN];
    struct nk_sha256 c;

    pads_for(key, key_len, &tl_pads);
    nk_sha256_init(&c);
    memcpy(c.h, tl_pads.inner, sizeof(c.h));
    c.len = NK_SHA256_BLOCK;
    nk_sha256_update(&c, msg, msg_len);
    nk_sha256_final(&c, inner);
    nk_sha256_init(&c);
    memcpy(c.h, tl_pads.outer, sizeof(c.h));
    c.len = NK_SHA256_BLOCK;
    nk_sha256_update(&c, inner, sizeof(inner));
    nk_sha256_final(&c, out);
    memset(inner, 0, sizeof(inner));
}

bool nk_mem_equal_ct(const void *a, const void *b, size_t n)
{
    const volatile unsigned char *x = a, *y = b;
    unsigned char d = 0;
    size_t i;

    for (i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t nk_b64url_len(size_t len)
{
    return len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
}

size_t nk_b64url_encode(const void *in, size_t len, char *out)
{
    const unsigned char *p = in;
    size_t i, o = 0;

    for (i = 0; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64val(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '-' ? 62 : ch == '_' ? 63 : -1;
}

size_t nk_b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    size_t i, o = 0, full = n / 4 * 4;
    int v[4];

    if (n % 4 == 1 || (n / 4) * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return (size_t)-1;
    for (i = 0; i < n; i++)
        if (b64val(s[i]) < 0)
            return (size_t)-1;
    for (i = 0; i < full; i += 4) {
        v[0] = b64val(s[i]), v[1] = b64val(s[i + 1]), v[2] = b64val(s[i + 2]),
        v[3] = b64val(s[i + 3]);
        out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
        out[o++] = (unsigned char)((v[2] & 3) << 6 | v[3]);
    }
    if (n - full >= 2) {
        v[0] = b64val(s[i]), v[1] = b64val(s[i + 1]);
        out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (n - full == 2 && (v[1] & 15) != 0)
            return (size_t)-1; /* non-canonical trailing bits */
        if (n - full == 3) {
            v[2] = b64val(s[i + 2]);
            out[o++] = (unsigned char)((v[1] & 15) << 4 | v[2] >> 2);
            if ((v[2] & 3) != 0)
                return (size_t)-1;
        }
    }
    return o;
}
