/* SPDX-License-Identifier: Apache-2.0 */
/* test_keyring.c: the MCP session key file: one key a line, comments and blanks, the checks
 * (length, placeholder, one repeated byte, count), the raw binary form of before, and that
 * fingerprints and errors never carry a key's bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "naftikod/keyring.h"

#define K1 "q4tW9zLr2mXc8VbN1sYe7HgP0uJd3KfA"   /* 32 bytes */
#define K2 "Zp6Rw0Qe9Tn2Ly5Ux8Ci1Ov4Bm7Ak3Jh+/" /* 34 bytes */

static enum nk_rc parse(const char *text, struct nk_keyring *r, char *why, size_t n)
{
    return nk_keyring_parse((const unsigned char *)text, strlen(text), r, why, n);
}

static void test_lines(void **state)
{
    struct nk_keyring r, one;
    char why[300];

    (void)state;
    assert_int_equal(
        parse("# rotation: new key second\n\n  " K1 " \r\n\t" K2 "\n", &r, why, sizeof(why)),
        NK_OK);
    assert_int_equal(r.n, 2);
    assert_int_equal(strlen(r.fingerprint[0]), 16);
    assert_string_not_equal(r.fingerprint[0], r.fingerprint[1]);
    /* The same key gives the same HMAC key and fingerprint alone, with CRLF or without a
     * final newline. */
    assert_int_equal(parse(K1, &one, why, sizeof(why)), NK_OK);
    assert_string_equal(one.fingerprint[0], r.fingerprint[0]);
    assert_memory_equal(one.mac_key[0], r.mac_key[0], NK_SHA256_LEN);
    /* A one-line file is one key; a one-key file that is more than its line also accepts its
     * whole bytes (what versions before rings used), a different key. */
    assert_int_equal(parse(K1 "\n", &one, why, sizeof(why)), NK_OK);
    assert_int_equal(one.n, 1);
    assert_string_equal(one.fingerprint[0], r.fingerprint[0]);
    assert_int_equal(parse(K1, &one, why, sizeof(why)), NK_OK);
    assert_int_equal(one.n, 2);
    assert_string_equal(one.fingerprint[0], r.fingerprint[0]);
    assert_int_equal(parse("# c\n" K1 "\r\n", &r, why, sizeof(why)), NK_OK);
    assert_int_equal(r.n, 2);
    assert_string_not_equal(r.fingerprint[1], one.fingerprint[1]);
    assert_int_equal(
        parse("# rotation: new key second\n\n  " K1 " \r\n\t" K2 "\n", &r, why, sizeof(why)),
        NK_OK);
    /* Neither the fingerprint nor the HMAC key shows bytes of the key. */
    assert_null(strstr(r.fingerprint[0], "q4tW"));
    /* Swapping the order swaps the roles, not the keys. */
    assert_int_equal(parse(K2 "\n" K1 "\n", &one, why, sizeof(why)), NK_OK);
    assert_string_equal(one.fingerprint[0], r.fingerprint[1]);
    assert_string_equal(one.fingerprint[1], r.fingerprint[0]);
}

static void expect_bad(const char *text, const char *want)
{
    struct nk_keyring r;
    char why[300] = "";

    assert_int_equal(parse(text, &r, why, sizeof(why)), NK_ERR_INVALID);
    if (strstr(why, want) == NULL)
        fail_msg("'%s': want '%s'", why, want);
    assert_null(strstr(why, "q4tW"));
    assert_int_equal(r.n, 0);
}

static void test_refused(void **state)
{
    (void)state;
    expect_bad("", "no key in the file");
    expect_bad("# only a comment\n\n   \n", "no key in the file");
    expect_bad("short\n", "the key on line 1 is shorter than 32 bytes");
    expect_bad(K1 "\n"
                  "q4tW9zLr2mXc8VbN1sYe7HgP0uJd3Kf\n",
               "line 2 is shorter than 32");
    expect_bad("REPLACE-WITH-32-RANDOM-BYTES-PLEASE-NOW\n", "is a placeholder text");
    expect_bad("x" K1 "changeme\n", "is a placeholder text");
    expect_bad(K1 "Example\n", "is a placeholder text");
    expect_bad("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n", "fewer than 8 distinct bytes");
    expect_bad("abababababababababababababababababababab\n", "fewer than 8 distinct bytes");
    expect_bad(K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n" K1 "\n",
               "more than 8 keys (line 9)");
}

static void test_raw(void **state)
{
    unsigned char raw[40];
    struct nk_keyring r;
    char why[300];
    size_t i;

    (void)state;
    /* A binary file (the format before rings) is one key, every byte of it, newlines too. */
    for (i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 37 + 1);
    raw[5] = '\n';
    raw[6] = 0;
    assert_int_equal(nk_keyring_parse(raw, sizeof(raw), &r, why, sizeof(why)), NK_OK);
    assert_int_equal(r.n, 1);
    assert_int_equal(nk_keyring_parse(raw, 20, &r, why, sizeof(why)), NK_ERR_INVALID);
    assert_non_null(strstr(why, "binary file: one raw key) is shorter than 32 bytes"));
    memset(raw, 0, sizeof(raw));
    assert_int_equal(nk_keyring_parse(raw, sizeof(raw), &r, why, sizeof(why)), NK_ERR_INVALID);
    assert_non_null(strstr(why, "fewer than 8 distinct"));
}

static void test_add_and_wipe(void **state)
{
    struct nk_keyring r;
    size_t i;
    static const unsigned char zero[NK_SHA256_LEN];

    (void)state;
    memset(&r, 0, sizeof(r));
    for (i = 0; i < NK_KEYRING_MAX; i++)
        assert_int_equal(nk_keyring_add(&r, (const unsigned char *)"k", 1), NK_OK);
    assert_int_equal(nk_keyring_add(&r, (const unsigned char *)"k", 1), NK_ERR_TOO_LARGE);
    nk_keyring_wipe(&r);
    assert_int_equal(r.n, 0);
    assert_memory_equal(r.mac_key[0], zero, sizeof(zero));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_raw),
        cmocka_unit_test(test_add_and_wipe),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
