/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_jose.c: libFuzzer harness for the access-token parser (jose.c). The first byte chooses:
 * even, the rest is a compact JWS: parsed with every algorithm allowed, verified against a
 * fixed key set (an RSA and an EC P-256 public key), its claims checked and turned into a
 * principal; odd, the rest is a JWKS document. Asserts the bounds the parser promises. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "naftikod/jose.h"

static const char fixed_jwks[] =
    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"n\":\"tub32OuezrrdailyZVBEFE8tFXHl_8XZQE5cOXIo7"
    "OJDrhrV6Fla7WxDyVLYLs4nOwyNDRAFxmFemxwH9sdv87_j_m0mjrpnCd3w5w5BtQWEat5UksRFH2kUPc888_KvGt0s"
    "1CH1z8zzB5N91VqGuRzc2JlR8pvM7VOY_Qa3hsFWxFRIBg67-wGO9fnKfu_LbS8GdqWSkGxthcFPO5heY1qzIz8m66"
    "d3SZbQHuEY243PtTBczySMHqizrlIivIFJiDNofZEtt55_AalkIYOwskvtW6AAIWb7Aj5EsrRXPmSlAMBwVPXmdTmgW"
    "FUSO-67WLLCPh-9zC8V4zjxM9oVLw\",\"e\":\"AQAB\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":"
    "\"e1\",\"x\":\"pwpzNlIZJS01ecCa1RdmNbvderEeE8--SclDWpHgxIc\",\"y\":\"wYdEyeTmZtq2FHV1SzvQP"
    "9pvw40HAfcF4UvsGCPRFTU\"}]}";

static struct nk_jwks *g_keys;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const scopes[] = {"mcp:tools"};
    struct nk_claim_rules rules = {.issuer = "https://as.test",
                                   .audience = "https://rs.test/mcp",
                                   .scopes = scopes,
                                   .n_scopes = 1,
                                   .leeway_s = 60,
                                   .now = 1800000000,
                                   .exp_required = true};
    struct nk_principal p;
    struct nk_jws j;
    struct nk_jwks *k = NULL;
    char why[160];
    enum nk_rc rc;

    if (g_keys == NULL) {
        rc = nk_jwks_parse(fixed_jwks, strlen(fixed_jwks), &g_keys, why, sizeof(why));
        assert(rc == NK_OK && nk_jwks_count(g_keys) == 2);
    }
    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0) {
        rc = nk_jws_parse((const char *)data + 1, size - 1, NK_JOSE_ALGS_ALL, &j, why, sizeof(why));
        assert(rc != NK_OK || size - 1 <= NK_JOSE_MAX_TOKEN);
        assert(strlen(why) < sizeof(why));
        if (rc != NK_OK)
            return 0;
        assert(json_is_object(j.header) && json_is_object(j.claims));
        assert(j.signed_len < size - 1 && j.sig_len > 0 && j.sig_len <= sizeof(j.sig));
        (void)nk_jws_verify(&j, g_keys, why, sizeof(why));
        (void)nk_claims_check(j.claims, &rules, why, sizeof(why));
        nk_claims_principal(j.claims, &p);
        assert(strlen(p.name) < sizeof(p.name) && strlen(p.scope) < sizeof(p.scope));
        nk_jws_cleanup(&j);
    } else {
        rc = nk_jwks_parse((const char *)data + 1, size - 1, &k, why, sizeof(why));
        assert((rc == NK_OK) == (k != NULL));
        assert(nk_jwks_count(k) <= NK_JOSE_MAX_KEYS);
        nk_jwks_free(k);
    }
    return 0;
}
