/* SPDX-License-Identifier: Apache-2.0 */
/* proxies.c: --trusted-proxies and the client named by X-Forwarded-For / Forwarded
 * (proxies.h). Every header byte is untrusted input: entries are parsed with bounds, addresses
 * with inet_pton, and only the NK_PROXIES_MAX_HOPS right-most entries are kept. */
#include "naftikod/proxies.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define ENTRY_MAX 96 /* longest entry looked at ("[v6]:port" with room to spare) */

/* One parsed address: family and bytes (IPv4-mapped IPv6 folded to IPv4). */
struct ip {
    int family;
    unsigned char b[16];
};

static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parse a bare numeric address of n bytes (no brackets, no port). */
static bool parse_ip(const char *s, size_t n, struct ip *ip)
{
    char buf[ENTRY_MAX];

    memset(ip, 0, sizeof(*ip)); /* an IPv4 block's bytes past the fourth are compared as 0 */
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, ip->b) == 1) {
        ip->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, ip->b) != 1)
        return false;
    ip->family = AF_INET6;
    if (memcmp(ip->b, v4mapped, sizeof(v4mapped)) == 0) {
        memmove(ip->b, ip->b + 12, 4);
        memset(ip->b + 4, 0, sizeof(ip->b) - 4);
        ip->family = AF_INET;
    }
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    size_t i;

    if (n == 0 || n > 5)
        return false;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* An entry as proxies write it: IPv4, IPv6, [IPv6], IPv4:port, [IPv6]:port. */
static bool parse_entry(const char *s, size_t n, struct ip *ip)
{
    const char *colon, *close;

    if (n > 0 && s[0] == '[') {
        close = memchr(s, ']', n);
        if (close == NULL)
            return false;
        if ((size_t)(close - s) + 1 < n &&
            (close[1] != ':' || !all_digits(close + 2, n - (size_t)(close - s) - 2)))
            return false;
        /* brackets hold IPv6 only */
        return memchr(s + 1, ':', (size_t)(close - s) - 1) != NULL &&
               parse_ip(s + 1, (size_t)(close - s) - 1, ip);
    }
    colon = memchr(s, ':', n);
    if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - s) - 1) == NULL) {
        /* one colon: IPv4:port */
        if (!all_digits(colon + 1, n - (size_t)(colon - s) - 1))
            return false;
        return parse_ip(s, (size_t)(colon - s), ip) && ip->family == AF_INET;
    }
    return parse_ip(s, n, ip);
}

static void ip_text(const struct ip *ip, char out[NK_PROXIES_ADDR_MAX])
{
    if (inet_ntop(ip->family, ip->b, out, NK_PROXIES_ADDR_MAX) == NULL)
        snprintf(out, NK_PROXIES_ADDR_MAX, "-");
}

static bool in_block(const struct nk_cidr *c, const struct ip *ip)
{
    unsigned full = c->bits / 8, rest = c->bits % 8;

    if (c->family != ip->family)
        return false;
    if (memcmp(c->addr, ip->b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((c->addr[full] ^ ip->b[full]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

static bool trusted_ip(const struct nk_proxies *p, const struct ip *ip)
{
    size_t i;

    for (i = 0; p != NULL && i < p->n; i++)
        if (in_block(&p->v[i], ip))
            return true;
    return false;
}

bool nk_proxies_trusted(const struct nk_proxies *p, const char *addr)
{
    struct ip ip;

    return addr != NULL && parse_ip(addr, strlen(addr), &ip) && trusted_ip(p, &ip);
}

enum nk_rc nk_proxies_parse(const char *list, struct nk_proxies *out, char *why, size_t why_n)
{
    const char *s = list != NULL ? list : "";
    struct nk_cidr *c;
    struct ip ip;
    char entry[ENTRY_MAX];
    size_t n, i;

    memset(out, 0, sizeof(*out));
    for (;;) {
        const char *slash;
        unsigned long bits;
        unsigned max;
        bool mapped;

        s += strspn(s, ", \t");
        if (*s == '\0')
            return NK_OK;
        n = strcspn(s, ", \t");
        if (n >= sizeof(entry)) {
            snprintf(why, why_n, "--trusted-proxies: an entry is longer than %zu bytes",
                     sizeof(entry) - 1);
            return NK_ERR_INVALID;
        }
        memcpy(entry, s, n);
        entry[n] = '\0';
        s += n;
        if (out->n == NK_PROXIES_MAX) {
            snprintf(why, why_n, "--trusted-proxies names more than %d blocks", NK_PROXIES_MAX);
            return NK_ERR_TOO_LARGE;
        }
        slash = strchr(entry, '/');
        if (!parse_ip(entry, slash != NULL ? (size_t)(slash - entry) : n, &ip)) {
            snprintf(why, why_n, "--trusted-proxies: '%s' is not an address or ADDR/BITS", entry);
            return NK_ERR_INVALID;
        }
        /* An IPv4-mapped IPv6 block was folded to IPv4: its prefix counts 96 bits more. */
        mapped = ip.family == AF_INET && memchr(entry, ':', n) != NULL;
        max = ip.family == AF_INET ? 32 : 128;
        bits = max;
        if (slash != NULL) {
            if (!all_digits(slash + 1, strlen(slash + 1)) ||
                (bits = strtoul(slash + 1, NULL, 10)) > (mapped ? 128 : max) ||
                (mapped && bits < 96)) {
                snprintf(why, why_n, "--trusted-proxies: '%s': the prefix length must be %u..%u",
                         entry, mapped ? 96 : 0, mapped ? 128 : max);
                return NK_ERR_INVALID;
            }
            if (mapped)
                bits -= 96;
        }
        c = &out->v[out->n];
        c->family = ip.family;
        c->bits = (unsigned)bits;
        memcpy(c->addr, ip.b, sizeof(c->addr));
        for (i = 0; i < 16; i++) {
            unsigned keep = i * 8 >= bits ? 0 : (i + 1) * 8 <= bits ? 8 : (unsigned)(bits - i * 8);
            unsigned char mask = (unsigned char)(keep == 0 ? 0 : 0xff << (8 - keep));

            if ((c->addr[i] & (unsigned char)~mask) != 0) {
                snprintf(why, why_n,
                         "--trusted-proxies: '%s' has host bits set (did you mean the network "
                         "address?)",
                         entry);
                return NK_ERR_INVALID;
            }
        }
        out->n++;
    }
}

/* The right-most entries of a header, parsed: at most NK_PROXIES_MAX_HOPS, oldest dropped. */
struct hops {
    struct ip ip[NK_PROXIES_MAX_HOPS];
    bool ok[NK_PROXIES_MAX_HOPS];
    size_t n, next; /* a ring: next is where the following entry goes */
};

static void hops_add(struct hops *h, const char *s, size_t n)
{
    while (n > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    h->ok[h->next] = parse_entry(s, n, &h->ip[h->next]);
    h->next = (h->next + 1) % NK_PROXIES_MAX_HOPS;
    if (h->n < NK_PROXIES_MAX_HOPS)
        h->n++;
}

static void split_xff(const char *v, struct hops *h)
{
    for (;;) {
        size_t n = strcspn(v, ",");

        hops_add(h, v, n);
        if (v[n] == '\0')
            return;
        v += n + 1;
    }
}

/* Forwarded (RFC 7239): elements split at ',' and pairs at ';', both outside quoted strings;
 * each element's one for= value is the entry. An element without exactly one for=, or with a
 * broken quoted string, is an entry that is no address. */
static void split_forwarded(const char *v, struct hops *h)
{
    const char *bad = "?";

    while (*v != '\0') {
        char val[ENTRY_MAX];
        size_t vlen = 0;
        int n_for = 0;
        bool broken = false;

        for (;;) { /* one pair */
            const char *name;
            size_t nlen;
            bool is_for;

            while (*v == ' ' || *v == '\t')
                v++;
            name = v;
            while (*v != '\0' && *v != '=' && *v != ';' && *v != ',')
                v++;
            nlen = (size_t)(v - name);
            while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
                nlen--;
            is_for = nlen == 3 && strncasecmp(name, "for", 3) == 0;
            if (*v == '=') {
                size_t len = 0;

                v++;
                while (*v == ' ' || *v == '\t')
                    v++;
                if (*v == '"') {
                    v++;
                    while (*v != '\0' && *v != '"') {
                        if (*v == '\\' && v[1] != '\0')
                            v++;
                        if (is_for && len + 1 < sizeof(val))
                            val[len] = *v;
                        len++;
                        v++;
                    }
                    if (*v != '"')
                        broken = true;
                    else
                        v++;
                } else {
                    while (*v != '\0' && *v != ';' && *v != ',' && *v != ' ' && *v != '\t') {
                        if (is_for && len + 1 < sizeof(val))
                            val[len] = *v;
                        len++;
                        v++;
                    }
                }
                if (is_for) {
                    n_for++;
                    vlen = len < sizeof(val) ? len : sizeof(val); /* too long: no address */
                }
                while (*v == ' ' || *v == '\t')
                    v++;
                if (*v != '\0' && *v != ';' && *v != ',')
                    broken = true;
            } else if (nlen > 0) {
                broken = true; /* a name without a value */
            }
            while (*v != '\0' && *v != ';' && *v != ',')
                v++; /* skip the rest of a broken pair */
            if (*v != ';')
                break;
            v++;
        }
        if (broken || n_for != 1 || vlen >= sizeof(val))
            hops_add(h, bad, 1);
        else
            hops_add(h, val, vlen);
        if (*v == ',')
            v++;
    }
}

bool nk_proxies_client(const struct nk_proxies *p, const char *peer, const char *xff,
                       const char *forwarded, char out[NK_PROXIES_ADDR_MAX])
{
    struct hops h;
    struct ip last;
    size_t i;

    snprintf(out, NK_PROXIES_ADDR_MAX, "%s", peer != NULL ? peer : "-");
    if (p == NULL || p->n == 0 || peer == NULL || !parse_ip(peer, strlen(peer), &last) ||
        !trusted_ip(p, &last))
        return false;
    memset(&h, 0, sizeof(h));
    if (xff != NULL && xff[strspn(xff, " \t")] != '\0')
        split_xff(xff, &h);
    else if (forwarded != NULL && forwarded[strspn(forwarded, " \t")] != '\0')
        split_forwarded(forwarded, &h);
    else
        return false;
    for (i = 0; i < h.n; i++) {
        size_t k = (h.next + NK_PROXIES_MAX_HOPS - 1 - i) % NK_PROXIES_MAX_HOPS;

        if (!h.ok[k])
            break; /* not an address: the proxy that reported it is the client */
        last = h.ip[k];
        if (!trusted_ip(p, &last))
            break;
    }
    ip_text(&last, out);
    return strcmp(out, peer) != 0;
}
