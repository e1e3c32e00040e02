/* SPDX-License-Identifier: Apache-2.0 */
/* keyring.h: the MCP session key ring: the keys of a --mcp-session-key-file, checked, each
 * kept as the HMAC key it makes and a fingerprint that names it in /metrics and the log. */
#ifndef NAFTIKOD_KEYRING_H
#define NAFTIKOD_KEYRING_H

#include <stddef.h>

#include "naftikod/common.h"
#include "naftikod/sha256.h"

#define NK_KEYRING_MAX 8          /* keys in one file */
#define NK_KEYRING_MIN_KEY 32     /* bytes of a key, at least */
#define NK_KEYRING_MAX_KEY 65536  /* bytes of a key, at most (the file's limit) */
#define NK_KEYRING_MAX_FILE 65536 /* bytes of the file, at most */

/* Keys in file order: the first signs new session ids, every one verifies. */
struct nk_keyring {
    size_t n;
    /* each key's HMAC key: SHA-256 of the key's line with its '\n' (of the bytes themselves for
     * a raw key or nk_keyring_add()) */
    unsigned char mac_key[NK_KEYRING_MAX][NK_SHA256_LEN];
    /* the first 8 bytes of SHA-256 of the HMAC key (never bytes of the key or of mac_key), in
     * lower-case hex: `printf '%s\n' KEY | sha256sum | xxd -r -p | sha256sum | cut -c1-16` */
    char fingerprint[NK_KEYRING_MAX][17];
    size_t key_len0; /* bytes of the first key as parsed (nk_keyring_parse) */
};

/* Parse a key file's bytes into *ring (overwritten; wiped on failure). The format: a text file
 * of one key a line (its bytes as written, blanks and a CR at either end trimmed); empty lines
 * and lines starting with '#' are skipped. A file with a byte that is neither printable ASCII nor
 * a blank or line end is one raw key, the whole file (the format before key rings). Every key
 * must be NK_KEYRING_MIN_KEY..NK_KEYRING_MAX_KEY bytes, have at least 8 distinct bytes and not
 * be a placeholder (it names REPLACE, CHANGEME, PLACEHOLDER or EXAMPLE, any case); 1 to
 * NK_KEYRING_MAX keys. A key's HMAC key is SHA-256 of its line ending in '\n': for a file of one
 * line that is what versions before key rings made of the whole file. A file of one key that
 * holds anything else (no final newline, a CR, a comment) also gets its whole bytes as a second
 * key, which only verifies, so an upgrade one replica at a time fails no session. NK_OK;
 * NK_ERR_INVALID with why set (a line number and the rule, never a key's bytes). */
enum nk_rc nk_keyring_parse(const unsigned char *buf, size_t len, struct nk_keyring *ring,
                            char *why, size_t why_n);

/* Read path (NK_KEYRING_MAX_FILE bytes at most) and parse it. NK_OK; NK_ERR_IO,
 * NK_ERR_TOO_LARGE, NK_ERR_INVALID, NK_ERR_NOMEM with why set (the path and the reason). */
enum nk_rc nk_keyring_load(const char *path, struct nk_keyring *ring, char *why, size_t why_n);

/* Append one key to ring without the checks of nk_keyring_parse (tests, a random key, the
 * --mcp-session-key option of the API). NK_OK; NK_ERR_TOO_LARGE when ring is full. */
enum nk_rc nk_keyring_add(struct nk_keyring *ring, const unsigned char *key, size_t n);

/* Zero every key of ring. */
void nk_keyring_wipe(struct nk_keyring *ring);

#endif
