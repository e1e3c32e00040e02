/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_spec.c: libFuzzer harness: any bytes through the whole loader (YAML, validation,
 * compile). Must never crash, leak or hang; the result itself does not matter. */
#include <stddef.h>
#include <stdint.h>

#include "naftikod/optable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nk_load_options strict = {.strict = true};
    struct nk_diags d;
    struct nk_optable *t = NULL;

    nk_diags_init(&d);
    if (nk_optable_load_mem("fuzz.yaml", (const char *)data, size, &strict, &d, &t) == NK_OK)
        nk_optable_unref(t);
    nk_diags_cleanup(&d);
    return 0;
}
