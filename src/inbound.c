/* SPDX-License-Identifier: Apache-2.0 */
/* inbound.c: the tokens file, the constant-time bearer check, and the Host/Origin rule. */
#include "naftikod/inbound.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_TOKENS_FILE (1U << 20)

struct entry {
    unsigned char hash[NK_SHA256_LEN];
    char name[NK_CALLER_NAME_MAX];
};

struct nk_tokens {
    struct entry *e;
    size_t n;
};

static bool name_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '@' || c == '-';
}

enum nk_rc nk_tokens_parse(const char *name, const char *text, size_t len, struct nk_tokens **out,
                           struct nk_error *err)
{
    struct nk_tokens *t = calloc(1, sizeof(*t));
    size_t pos = 0, line = 0, cap = 0, i, k;
    struct entry *ne;

    *out = NULL;
    if (t == NULL) {
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    while (pos < len) {
        const char *l = text + pos, *nl = memchr(l, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - l) : len - pos;
        struct entry e;

        pos += n + (nl != NULL);
        line++;
        while (n > 0 && (l[n - 1] == '\r' || l[n - 1] == ' ' || l[n - 1] == '\t'))
            n--;
        while (n > 0 && (*l == ' ' || *l == '\t'))
            l++, n--;
        if (n == 0 || *l == '#')
            continue;
        memset(&e, 0, sizeof(e));
        if (n < 7 + 2 * NK_SHA256_LEN || strncmp(l, "sha256:", 7) != 0) {
            nk_error_set(err,
                         "%s:%zu: expected 'sha256:<64 hex digits> NAME' (make one with "
                         "'naftikod hash-token NAME')",
                         name, line);
            goto bad;
        }
        for (i = 0; i < NK_SHA256_LEN; i++) {
            int hi = nk_hex_digit(l[7 + 2 * i]), lo = nk_hex_digit(l[8 + 2 * i]);
            if (hi < 0 || lo < 0) {
                nk_error_set(err, "%s:%zu: the hash is not 64 hexadecimal digits", name, line);
                goto bad;
            }
            e.hash[i] = (unsigned char)(hi * 16 + lo);
        }
        k = 7 + 2 * NK_SHA256_LEN;
        if (k < n && l[k] != ' ' && l[k] != '\t') {
            nk_error_set(err, "%s:%zu: the hash is not 64 hexadecimal digits", name, line);
            goto bad;
        }
        while (k < n && (l[k] == ' ' || l[k] == '\t'))
            k++;
        if (k == n) {
            nk_error_set(err, "%s:%zu: a caller name must follow the hash", name, line);
            goto bad;
        }
        for (i = 0; k + i < n; i++) {
            if (i + 1 >= NK_CALLER_NAME_MAX || !name_char((unsigned char)l[k + i])) {
                nk_error_set(err, "%s:%zu: caller names are 1 to %d of A-Z a-z 0-9 . _ @ -", name,
                             line, NK_CALLER_NAME_MAX - 1);
                goto bad;
            }
            e.name[i] = l[k + i];
        }
        for (i = 0; i < t->n; i++)
            if (memcmp(t->e[i].hash, e.hash, NK_SHA256_LEN) == 0) {
                nk_error_set(err, "%s:%zu: the same token is listed twice (also for '%s')", name,
                             line, t->e[i].name);
                goto bad;
            }
        if (t->n == cap) {
            cap = cap ? cap * 2 : 8;
            ne = realloc(t->e, cap * sizeof(*ne));
            if (ne == NULL) {
                nk_error_set(err, "out of memory");
                nk_tokens_free(t);
                return NK_ERR_NOMEM;
            }
            t->e = ne;
        }
        t->e[t->n++] = e;
    }
    if (t->n == 0) {
        nk_error_set(err, "%s: no caller token in the file", name);
        goto bad;
    }
    *out = t;
    return NK_OK;
bad:
    nk_tokens_free(t);
    return NK_ERR_INVALID;
}

enum nk_rc nk_tokens_load(const char *path, struct nk_tokens **out, struct nk_error *err)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    enum nk_rc rc;
    struct stat st;

    *out = NULL;
    if (f == NULL) {
        nk_error_set(err, "cannot read the tokens file %s: %s", path, strerror(errno));
        return NK_ERR_IO;
    }
    if (fstat(fileno(f), &st) != 0 || st.st_size > (off_t)MAX_TOKENS_FILE) {
        fclose(f);
        nk_error_set(err, "the tokens file %s is larger than %u bytes", path, MAX_TOKENS_FILE);
        return NK_ERR_INVALID;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        fclose(f);
        nk_error_set(err, "out of memory");
        return NK_ERR_NOMEM;
    }
    n = fread(buf, 1, (size_t)st.st_size, f);
    fclose(f);
    rc = nk_tokens_parse(path, buf, n, out, err);
    free(buf);
    return rc;
}

void nk_tokens_free(struct nk_tokens *t)
{
    if (t == NULL)
        return;
    free(t->e);
    free(t);
}

size_t nk_tokens_count(const struct nk_tokens *t)
{
    return t != NULL ? t->n : 0;
}

bool nk_tokens_check(const struct nk_tokens *t, const char *authorization, char *name)
{
    unsigned char h[NK_SHA256_LEN];
    const char *tok;
    size_t i, k, match = SIZE_MAX;

    if (t == NULL || authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    if (*tok == '\0')
        return false;
    nk_sha256(tok, strlen(tok), h);
    for (i = 0; i < t->n; i++) {
        unsigned diff = 0;
        size_t is_match;

        for (k = 0; k < NK_SHA256_LEN; k++)
            diff |= (unsigned)(t->e[i].hash[k] ^ h[k]);
        /* is_match is all ones when diff == 0, else 0: no branch on the bytes. */
        is_match = (size_t)0 - (size_t)((diff - 1U) >> (sizeof(unsigned) * 8 - 1));
        match = (match & ~is_match) | (i & is_match);
    }
    explicit_bzero(h, sizeof(h));
    if (match == SIZE_MAX)
        return false;
    snprintf(name, NK_CALLER_NAME_MAX, "%s", t->e[match].name);
    return true;
}

/* Constant-time equality of two digests. */
static bool same_digest(const unsigned char *a, const unsigned char *b)
{
    unsigned diff = 0;
    size_t k;

    for (k = 0; k < NK_SHA256_LEN; k++)
        diff |= (unsigned)(a[k] ^ b[k]);
    return diff == 0;
}

static int b64_value(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 (padding optional) of s into out (cap bytes, NUL-terminated); false when
 * malformed or too long. */
static bool b64_decode(const char *s, unsigned char *out, size_t cap, size_t *len)
{
    size_t n = 0, i;
    unsigned acc = 0, bits = 0;

    for (i = 0; s[i] != '\0' && s[i] != '='; i++) {
        int v = b64_value((unsigned char)s[i]);

        if (v < 0)
            return false;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return false;
            out[n++] = (unsigned char)((acc >> bits) & 0xFF);
        }
    }
    while (s[i] == '=')
        i++;
    if (s[i] != '\0')
        return false;
    out[n] = '\0';
    *len = n;
    return true;
}

bool nk_doc_check(const struct nk_auth *a, const struct nk_doc_secret *s, const char *authorization,
                  const char *key_value)
{
    unsigned char h[NK_SHA256_LEN], dec[1024];
    const char *p = NULL;
    size_t len = 0;
    bool ok = false;

    if (s == NULL || !s->set)
        return false;
    switch (a->type) {
    case NK_AUTH_BEARER:
        if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
            return false;
        for (p = authorization + 7; *p == ' ';)
            p++;
        len = strlen(p);
        break;
    case NK_AUTH_APIKEY:
        if (key_value == NULL)
            return false;
        p = key_value;
        len = strlen(p);
        break;
    case NK_AUTH_BASIC:
        if (authorization == NULL || strncasecmp(authorization, "Basic ", 6) != 0)
            return false;
        for (p = authorization + 6; *p == ' ';)
            p++;
        if (!b64_decode(p, dec, sizeof(dec), &len) || memchr(dec, ':', len) == NULL)
            return false;
        p = (const char *)dec;
        break;
    default:
        return false;
    }
    if (len == 0)
        return false;
    nk_sha256(p, len, h);
    ok = same_digest(h, s->digest);
    explicit_bzero(h, sizeof(h));
    explicit_bzero(dec, sizeof(dec));
    return ok;
}

bool nk_inbound_mode_parse(const char *s, bool allow_passthrough, enum nk_inbound_mode *out)
{
    if (strcmp(s, "none") == 0)
        *out = NK_INBOUND_NONE;
    else if (strcmp(s, "token") == 0)
        *out = NK_INBOUND_TOKEN;
    else if (allow_passthrough && strcmp(s, "passthrough") == 0)
        *out = NK_INBOUND_PASSTHROUGH;
    else if (strcmp(s, "oauth") == 0)
        *out = NK_INBOUND_OAUTH;
    else
        return false;
    return true;
}

const char *nk_inbound_mode_name(enum nk_inbound_mode m)
{
    return m == NK_INBOUND_TOKEN         ? "token"
           : m == NK_INBOUND_PASSTHROUGH ? "passthrough"
           : m == NK_INBOUND_OAUTH       ? "oauth"
                                         : "none";
}

int nk_cmd_hash_token(int argc, char **argv)
{
    char buf[4096];
    unsigned char h[NK_SHA256_LEN];
    const char *name = argc > 1 ? argv[1] : "caller";
    size_t n, i;

    if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs("Usage: naftikod hash-token [NAME] < token\n"
              "\n"
              "Read one caller token from standard input (its first line) and print the line to\n"
              "put in the --auth-tokens file: 'sha256:<hash>  NAME'. The token itself is never\n"
              "printed. NAME (default 'caller') names the caller in the access log.\n",
              stdout);
        return 0;
    }
    if (argc > 2) {
        fputs("naftikod hash-token: at most one NAME\n", stderr);
        return 2;
    }
    for (i = 0; name[i] != '\0'; i++)
        if (i + 1 >= NK_CALLER_NAME_MAX || !name_char((unsigned char)name[i])) {
            fprintf(stderr,
                    "naftikod hash-token: caller names are 1 to %d of A-Z a-z 0-9 . _ @ -\n",
                    NK_CALLER_NAME_MAX - 1);
            return 2;
        }
    if (i == 0 || fgets(buf, sizeof(buf), stdin) == NULL) {
        fputs("naftikod hash-token: no token on standard input\n", stderr);
        return 1;
    }
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    if (n < 16) {
        explicit_bzero(buf, sizeof(buf));
        fputs("naftikod hash-token: a token must be at least 16 characters (use e.g. "
              "'openssl rand -hex 32')\n",
              stderr);
        return 1;
    }
    nk_sha256(buf, n, h);
    explicit_bzero(buf, sizeof(buf));
    fputs("sha256:", stdout);
    for (i = 0; i < NK_SHA256_LEN; i++)
        printf("%02x", h[i]);
    printf("  %s\n", name);
    return 0;
}

/* ---- Host / Origin (DNS-rebinding protection) ------------------------------------------- */

/* Extract the host name (brackets kept for IPv6) from "host[:port]" into buf. */
static bool split_host(const char *hp, char *buf, size_t cap)
{
    const char *end;
    size_t n;

    if (hp[0] == '[') {
        end = strchr(hp, ']');
        if (end == NULL)
            return false;
        end++;
        if (*end != '\0' && *end != ':')
            return false;
    } else {
        end = strchr(hp, ':');
        if (end == NULL)
            end = hp + strlen(hp);
    }
    n = (size_t)(end - hp);
    if (n == 0 || n >= cap)
        return false;
    memcpy(buf, hp, n);
    buf[n] = '\0';
    if (*end == ':') {
        const char *p = end + 1;

        if (*p == '\0')
            return false;
        for (; *p != '\0'; p++)
            if (*p < '0' || *p > '9')
                return false;
    }
    return true;
}

static bool name_allowed(const char *const *hosts, size_t n_hosts, const char *name)
{
    size_t i;

    if (strcasecmp(name, "localhost") == 0 || strcmp(name, "127.0.0.1") == 0 ||
        strcmp(name, "[::1]") == 0)
        return true;
    for (i = 0; i < n_hosts; i++)
        if (strcasecmp(name, hosts[i]) == 0)
            return true;
    return false;
}

bool nk_inbound_host_allowed(const char *const *hosts, size_t n_hosts, const char *host,
                             const char *origin)
{
    char buf[256];
    const char *p;

    if (host != NULL) {
        if (!split_host(host, buf, sizeof(buf)) || !name_allowed(hosts, n_hosts, buf))
            return false;
    }
    if (origin != NULL) {
        p = strstr(origin, "://");
        if (p == NULL)
            return false; /* includes the opaque "null" origin */
        p += 3;
        if (strchr(p, '/') != NULL) {
            size_t n = (size_t)(strchr(p, '/') - p);
            char tmp[256];

            if (n >= sizeof(tmp) || strcmp(p + n, "/") != 0)
                return false;
            memcpy(tmp, p, n);
            tmp[n] = '\0';
            return split_host(tmp, buf, sizeof(buf)) && name_allowed(hosts, n_hosts, buf);
        }
        if (!split_host(p, buf, sizeof(buf)) || !name_allowed(hosts, n_hosts, buf))
            return false;
    }
    return true;
}
