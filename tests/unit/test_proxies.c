/* SPDX-License-Identifier: Apache-2.0 */
/* test_proxies.c: --trusted-proxies and the client walk over X-Forwarded-For / Forwarded, with
 * hostile headers: spoofed left-most entries, too many hops, garbage, IPv6 with brackets and
 * ports, obfuscated and quoted Forwarded forms, an untrusted peer sending the headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/proxies.h"

static struct nk_proxies P;

static int setup(void **state)
{
    char why[200];

    (void)state;
    if (nk_proxies_parse("10.0.0.0/8, 127.0.0.1 fd00::/8,::1", &P, why, sizeof(why)) != NK_OK)
        print_error("%s\n", why);
    return P.n == 4 ? 0 : -1;
}

/* The client the walk finds for a request from peer. */
static const char *client(const char *peer, const char *xff, const char *fwd)
{
    static char out[NK_PROXIES_ADDR_MAX];

    nk_proxies_client(&P, peer, xff, fwd, out);
    return out;
}

static void test_parse(void **state)
{
    struct nk_proxies p;
    char why[200];

    (void)state;
    assert_int_equal(P.n, 4);
    assert_int_equal(nk_proxies_parse("", &p, why, sizeof(why)), NK_OK);
    assert_int_equal(p.n, 0);
    assert_int_equal(nk_proxies_parse("10.0.0.1/8", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_non_null(strstr(why, "host bits"));
    assert_int_equal(nk_proxies_parse("10.0.0.0/33", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_proxies_parse("10.0.0.0/", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_proxies_parse("10.0.0.0/-1", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_proxies_parse("example.com", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_proxies_parse("10.0.0", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_proxies_parse("010.0.0.1", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_proxies_parse("[::1]", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_proxies_parse("::ffff:10.0.0.0/104", &p, why, sizeof(why)), NK_OK);
    assert_true(nk_proxies_trusted(&p, "10.1.2.3"));
    assert_true(nk_proxies_trusted(&p, "::ffff:10.1.2.3"));
    assert_false(nk_proxies_trusted(&p, "11.1.2.3"));
    assert_int_equal(nk_proxies_parse("::ffff:10.0.0.0/64", &p, why, sizeof(why)), NK_ERR_INVALID);
    assert_int_equal(nk_proxies_parse("0.0.0.0/0", &p, why, sizeof(why)), NK_OK);
    assert_true(nk_proxies_trusted(&p, "203.0.113.9"));
    assert_false(nk_proxies_trusted(&p, "2001:db8::1"));
    assert_int_equal(
        nk_proxies_parse("1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9 "
                         "1.1.1.10 1.1.1.11 1.1.1.12 1.1.1.13 1.1.1.14 1.1.1.15 1.1.1.16 1.1.1.17 "
                         "1.1.1.18 1.1.1.19 1.1.1.20 1.1.1.21 1.1.1.22 1.1.1.23 1.1.1.24 1.1.1.25 "
                         "1.1.1.26 1.1.1.27 1.1.1.28 1.1.1.29 1.1.1.30 1.1.1.31 1.1.1.32 1.1.1.33 "
                         "1.1.1.34 1.1.1.35 1.1.1.36 1.1.1.37 1.1.1.38 1.1.1.39 1.1.1.40 1.1.1.41 "
                         "1.1.1.42 1.1.1.43 1.1.1.44 1.1.1.45 1.1.1.46 1.1.1.47 1.1.1.48 1.1.1.49 "
                         "1.1.1.50 1.1.1.51 1.1.1.52 1.1.1.53 1.1.1.54 1.1.1.55 1.1.1.56 1.1.1.57 "
                         "1.1.1.58 1.1.1.59 1.1.1.60 1.1.1.61 1.1.1.62 1.1.1.63 1.1.1.64 1.1.1.65",
                         &p, why, sizeof(why)),
        NK_ERR_TOO_LARGE);
}

static void test_xff(void **state)
{
    (void)state;
    /* An untrusted peer's headers are ignored. */
    assert_string_equal(client("192.0.2.7", "198.51.100.1", NULL), "192.0.2.7");
    /* The right-most untrusted entry wins; what the client wrote to the left is ignored. */
    assert_string_equal(client("127.0.0.1", "198.51.100.1", NULL), "198.51.100.1");
    assert_string_equal(client("127.0.0.1", "6.6.6.6, 198.51.100.1, 10.1.1.1", NULL),
                        "198.51.100.1");
    assert_string_equal(client("127.0.0.1", " 6.6.6.6 ,\t198.51.100.1 ", NULL), "198.51.100.1");
    /* Ports, brackets, IPv6, IPv4-mapped folded to IPv4, canonical text. */
    assert_string_equal(client("127.0.0.1", "198.51.100.1:4711", NULL), "198.51.100.1");
    assert_string_equal(client("127.0.0.1", "[2001:DB8:0::1]:443", NULL), "2001:db8::1");
    assert_string_equal(client("127.0.0.1", "2001:db8::1", NULL), "2001:db8::1");
    assert_string_equal(client("127.0.0.1", "::ffff:198.51.100.1", NULL), "198.51.100.1");
    assert_string_equal(client("::ffff:127.0.0.1", "198.51.100.1", NULL), "198.51.100.1");
    assert_string_equal(client("::1", "[fd00::5], 198.51.100.2", NULL), "198.51.100.2");
    /* Garbage stops the walk at the proxy that reported it. */
    assert_string_equal(client("127.0.0.1", "198.51.100.1, unknown", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "198.51.100.1, 10.0.0.9, garbage", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "198.51.100.1, garbage, 10.0.0.9", NULL), "10.0.0.9");
    assert_string_equal(client("127.0.0.1", "1.2.3.4.5", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "[1.2.3.4]", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "[::1", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "[::1]x", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "1.2.3.4:99999x", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "fe80::1%eth0", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "01.2.3.4", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", ",", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", "198.51.100.1,", NULL), "127.0.0.1");
    /* Blank headers: the peer. */
    assert_string_equal(client("127.0.0.1", "  ", NULL), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", NULL, NULL), "127.0.0.1");
}

static void test_too_many_hops(void **state)
{
    char xff[4096];
    size_t n = 0;
    int i;

    (void)state;
    /* 40 proxies, all trusted, after the client: only the 32 right-most are looked at, all
     * trusted, so the left-most of those is the client (never the spoofable far end). */
    n += (size_t)snprintf(xff + n, sizeof(xff) - n, "198.51.100.1");
    for (i = 1; i <= 40; i++)
        n += (size_t)snprintf(xff + n, sizeof(xff) - n, ", 10.0.0.%d", i);
    assert_string_equal(client("127.0.0.1", xff, NULL), "10.0.0.9");
    /* 1000 untrusted entries: the right-most one, whatever is to the left. */
    n = 0;
    for (i = 0; i < 300; i++)
        n += (size_t)snprintf(xff + n, sizeof(xff) - n, "%s6.6.6.%d", i ? "," : "", i % 250);
    assert_string_equal(client("127.0.0.1", xff, NULL), "6.6.6.49");
}

static void test_forwarded(void **state)
{
    (void)state;
    assert_string_equal(client("127.0.0.1", NULL, "for=198.51.100.1"), "198.51.100.1");
    assert_string_equal(client("127.0.0.1", NULL, "For=198.51.100.1;proto=https;by=10.0.0.1"),
                        "198.51.100.1");
    assert_string_equal(client("127.0.0.1", NULL, "for=\"[2001:db8:cafe::17]:4711\""),
                        "2001:db8:cafe::17");
    assert_string_equal(client("127.0.0.1", NULL, "for=6.6.6.6, for=198.51.100.1;proto=http"),
                        "198.51.100.1");
    assert_string_equal(client("127.0.0.1", NULL, "for=198.51.100.1, for=\"10.0.0.2\""),
                        "198.51.100.1");
    /* A comma inside a quoted string is not an element boundary. */
    assert_string_equal(client("127.0.0.1", NULL, "for=\"6.6.6.6, 10.0.0.1\""), "127.0.0.1");
    /* Escapes inside quoted strings. */
    assert_string_equal(client("127.0.0.1", NULL, "for=\"198.51.100\\.1\""), "198.51.100.1");
    /* Obfuscated identifiers, unknown, no for=, two for=, broken quoting: stop at the proxy. */
    assert_string_equal(client("127.0.0.1", NULL, "for=_hidden"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", NULL, "for=unknown"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", NULL, "for=198.51.100.1, for=_x, for=10.0.0.3"),
                        "10.0.0.3");
    assert_string_equal(client("127.0.0.1", NULL, "proto=https"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", NULL, "for=1.1.1.1;for=2.2.2.2"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", NULL, "for=\"198.51.100.1"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", NULL, "for=198.51.100.1 junk"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", NULL, "for"), "127.0.0.1");
    assert_string_equal(client("127.0.0.1", NULL, ";;;,,,"), "127.0.0.1");
    /* An unbracketed IPv6 with a port cannot be told from an address: refused by inet_pton. */
    assert_string_equal(client("127.0.0.1", NULL, "for=2001:db8::1:80"), "2001:db8::1:80");
    /* X-Forwarded-For, when present, is the one read. */
    assert_string_equal(client("127.0.0.1", "198.51.100.1", "for=6.6.6.6"), "198.51.100.1");
    /* An untrusted peer: ignored. */
    assert_string_equal(client("192.0.2.1", NULL, "for=198.51.100.1"), "192.0.2.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_xff),
        cmocka_unit_test(test_too_many_hops),
        cmocka_unit_test(test_forwarded),
    };

    return cmocka_run_group_tests(tests, setup, NULL);
}
