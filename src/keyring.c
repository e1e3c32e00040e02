/* SPDX-License-Identifier: Apache-2.0 */
/* keyring.c: the MCP session key ring: parse and check a key file (keyring.h). */
#include "naftikod/keyring.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "naftikod/secret.h"

/* Words of the texts people leave in a Secret they have not filled in (deploy/'s example
 * says REPLACE-WITH-...). */
static const char *const placeholders[] = {"replace",   "changeme",    "change-me",
                                           "change_me", "placeholder", "example"};

static bool contains_ci(const unsigned char *s, size_t n, const char *word)
{
    size_t w = strlen(word), i;

    for (i = 0; i + w <= n; i++)
        if (strncasecmp((const char *)s + i, word, w) == 0)
            return true;
    return false;
}

/* Why key (n bytes) may not be a key, or NULL. */
static const char *refusal(const unsigned char *key, size_t n)
{
    bool seen[256] = {false};
    size_t i, distinct = 0;

    if (n < NK_KEYRING_MIN_KEY)
        return "is shorter than 32 bytes";
    if (n > NK_KEYRING_MAX_KEY)
        return "is longer than 65536 bytes";
    for (i = 0; i < n; i++)
        if (!seen[key[i]]) {
            seen[key[i]] = true;
            distinct++;
        }
    if (distinct < 8)
        return "has fewer than 8 distinct bytes (not a random key)";
    for (i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
        if (contains_ci(key, n, placeholders[i]))
            return "is a placeholder text, not a key";
    return NULL;
}

/* Append key (n bytes, then a '\n' when line) to ring as its HMAC key and fingerprint. */
static void add_key(struct nk_keyring *ring, const unsigned char *key, size_t n, bool line)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[NK_SHA256_LEN];
    struct nk_sha256 c;
    size_t i;

    nk_sha256_init(&c);
    nk_sha256_update(&c, key, n);
    if (line)
        nk_sha256_update(&c, "\n", 1);
    nk_sha256_final(&c, ring->mac_key[ring->n]);
    nk_sha256(ring->mac_key[ring->n], NK_SHA256_LEN, d);
    for (i = 0; i < 8; i++) {
        ring->fingerprint[ring->n][2 * i] = hex[d[i] >> 4];
        ring->fingerprint[ring->n][2 * i + 1] = hex[d[i] & 15];
    }
    ring->fingerprint[ring->n][16] = '\0';
    explicit_bzero(&c, sizeof(c));
    ring->n++;
}

static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Printable ASCII, blanks and line ends only: the one-key-a-line format. */
static bool is_text(const unsigned char *buf, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++)
        if (!((buf[i] >= 0x20 && buf[i] < 0x7f) || buf[i] == '\n' || is_blank(buf[i])))
            return false;
    return true;
}

enum nk_rc nk_keyring_parse(const unsigned char *buf, size_t len, struct nk_keyring *ring,
                            char *why, size_t why_n)
{
    const char *bad;
    size_t pos = 0, line = 0;

    memset(ring, 0, sizeof(*ring));
    if (!is_text(buf, len)) {
        /* One raw key, as files were read before key rings (e.g. `openssl rand 32`). */
        bad = refusal(buf, len);
        if (bad != NULL) {
            snprintf(why, why_n, "the key (a binary file: one raw key) %s", bad);
            goto fail;
        }
        add_key(ring, buf, len, false);
        return NK_OK;
    }
    while (pos < len) {
        size_t start = pos, end;

        line++;
        while (pos < len && buf[pos] != '\n')
            pos++;
        end = pos;
        if (pos < len)
            pos++; /* the '\n' */
        while (start < end && is_blank(buf[start]))
            start++;
        while (end > start && is_blank(buf[end - 1]))
            end--;
        if (start == end || buf[start] == '#')
            continue;
        if (ring->n == NK_KEYRING_MAX) {
            snprintf(why, why_n, "more than %d keys (line %zu)", NK_KEYRING_MAX, line);
            goto fail;
        }
        bad = refusal(buf + start, end - start);
        if (bad != NULL) {
            snprintf(why, why_n, "the key on line %zu %s", line, bad);
            goto fail;
        }
        if (ring->n == 0)
            ring->key_len0 = end - start;
        add_key(ring, buf + start, end - start, true);
    }
    if (ring->n == 0) {
        snprintf(why, why_n, "no key in the file (one key a line, at least 32 bytes each)");
        goto fail;
    }
    /* Versions before key rings used the whole file as the key: for the usual one-line file
     * ("KEY\n") that is the key as a line, the same HMAC key both ways. A one-key file that
     * holds anything else (no final newline, a CR, a comment) also verifies under its whole
     * bytes, so replicas of before still see their ids accepted during an upgrade. */
    if (ring->n == 1 && len != ring->key_len0 + 1)
        add_key(ring, buf, len, false);
    return NK_OK;
fail:
    nk_keyring_wipe(ring);
    return NK_ERR_INVALID;
}

enum nk_rc nk_keyring_load(const char *path, struct nk_keyring *ring, char *why, size_t why_n)
{
    char *buf = NULL, inner[300];
    size_t len = 0;
    enum nk_rc rc;

    memset(ring, 0, sizeof(*ring));
    rc = nk_secret_file(path, "--mcp-session-key-file", true, &buf, &len, why, why_n);
    if (rc != NK_OK)
        return rc;
    rc = nk_keyring_parse((const unsigned char *)buf, len, ring, inner, sizeof(inner));
    if (rc != NK_OK)
        snprintf(why, why_n, "'%s': %s", path, inner);
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

enum nk_rc nk_keyring_add(struct nk_keyring *ring, const unsigned char *key, size_t n)
{
    if (ring->n == NK_KEYRING_MAX)
        return NK_ERR_TOO_LARGE;
    add_key(ring, key, n, false);
    return NK_OK;
}

void nk_keyring_wipe(struct nk_keyring *ring)
{
    explicit_bzero(ring, sizeof(*ring));
}
