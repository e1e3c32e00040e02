/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_authz.c: libFuzzer harness for the permission rules: the input is a permissions file,
 * optionally followed by a NUL byte and the JSON arguments of a call. A file that compiles is
 * asked about every operation of the bundled capability for several principals. Checks: a
 * decision is either an allow with a rule or a denial with a reason; an allowed operation is
 * visible; a missing scope only for an OAuth caller; every text is valid UTF-8 (a JSON string);
 * the audit fields serialise. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "naftikod/authz.h"
#include "naftikod/common.h"
#include "naftikod/optable.h"

#ifndef NK_SEED_CAPABILITY
#define NK_SEED_CAPABILITY "capabilities/stackrox-apitokenservice.yaml"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct nk_optable *table;

static const struct nk_optable *the_table(void)
{
    const char *files[] = {getenv("NK_SEED_CAPABILITY") ? getenv("NK_SEED_CAPABILITY")
                                                        : NK_SEED_CAPABILITY};
    struct nk_diags d;

    if (table != NULL)
        return table;
    nk_diags_init(&d);
    if (nk_optable_load(files, 1, NULL, &d, &table) != NK_OK ||
        nk_optable_group(table, NULL, &d) != NK_OK) {
        fprintf(stderr, "fuzz_authz: cannot load %s\n", files[0]);
        abort();
    }
    nk_diags_cleanup(&d);
    return table;
}

static void valid_text(const char *s)
{
    json_t *j = json_string(s);

    if (j == NULL)
        abort(); /* not UTF-8 */
    json_decref(j);
}

static void ask(const struct nk_authz *az, const struct nk_principal *p, enum nk_adapter_type type,
                const struct nk_exposed *op, const json_t *args)
{
    struct nk_authz_decision d;
    bool visible = nk_authz_visible(az, p, type, op);
    char *dumped;

    if (nk_authz_check(az, p, type, op, args, &d) != NK_OK)
        return; /* out of memory */
    valid_text(d.rule);
    valid_text(d.reason);
    valid_text(d.missing_scope);
    if (d.allowed && (!visible || d.rule[0] == '\0' || d.reason[0] != '\0'))
        abort();
    if (!d.allowed && (d.reason[0] == '\0' || d.rule[0] == '\0'))
        abort();
    if (d.missing_scope[0] != '\0' && (d.allowed || p->kind != NK_PRINCIPAL_OAUTH))
        abort();
    if (d.audit_args != NULL) {
        dumped = json_dumps(d.audit_args, JSON_COMPACT);
        if (dumped == NULL)
            abort();
        free(dumped);
    }
    nk_authz_decision_cleanup(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct nk_optable *t = the_table();
    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul != NULL ? (size_t)(nul - data) : size;
    struct nk_principal who[5];
    struct nk_authz *az = NULL;
    struct nk_error err;
    json_t *args = NULL;
    size_t i, j, k;

    memset(&err, 0, sizeof(err));
    if (nk_authz_parse("fuzz.yaml", (const char *)data, text_len, &az, &err) != NK_OK) {
        valid_text(err.msg);
        return 0;
    }
    if (nul != NULL)
        args = json_loadb((const char *)nul + 1, size - text_len - 1, JSON_DECODE_ANY, NULL);
    if (args == NULL)
        args = json_pack("{s:{s:s,s:[s,s]},s:s,s:s}", "body", "name", "ci-x", "roles",
                         "Continuous Integration", "Admin", "id", "abc", "revoked", "true");
    memset(who, 0, sizeof(who));
    who[0].kind = NK_PRINCIPAL_TOKEN;
    snprintf(who[0].name, sizeof(who[0].name), "ci");
    who[1].kind = NK_PRINCIPAL_DOCUMENT;
    snprintf(who[1].name, sizeof(who[1].name), "alice");
    who[2].kind = NK_PRINCIPAL_OAUTH;
    snprintf(who[2].name, sizeof(who[2].name), "user-1");
    snprintf(who[2].client_id, sizeof(who[2].client_id), "agent");
    snprintf(who[2].scope, sizeof(who[2].scope), "tokens.read  tokens.write x");
    who[3].kind = NK_PRINCIPAL_ANONYMOUS;
    who[4].kind = NK_PRINCIPAL_TOKEN;
    snprintf(who[4].name, sizeof(who[4].name), "admin");
    for (i = 0; i < t->n_listeners; i++)
        for (j = 0; j < t->listeners[i].n_ops; j++)
            for (k = 0; k < sizeof(who) / sizeof(who[0]); k++)
                ask(az, &who[k], t->listeners[i].type, &t->listeners[i].ops[j], args);
    json_decref(args);
    nk_authz_free(az);
    return 0;
}
