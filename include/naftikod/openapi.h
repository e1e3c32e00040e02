/* SPDX-License-Identifier: Apache-2.0 */
/* openapi.h: the OpenAPI 3.1 document of one REST adapter, generated from the operation table. */
#ifndef NAFTIKOD_OPENAPI_H
#define NAFTIKOD_OPENAPI_H

#include <jansson.h>

#include "naftikod/optable.h"

/* Build the OpenAPI 3.1.0 document for adapter a of table t: info from the capability
 * label/description, one path item per exposed path, one operation per route (operationId,
 * tags, parameters with schemas, requestBody for body arguments, 200 and a default problem
 * response). server_url (may be NULL: "/") becomes servers[0].url. Both borrowed.
 * Returns a new reference, or NULL on OOM. */
json_t *nk_openapi_build(const struct nk_optable *t, const struct nk_adapter *a,
                         const char *server_url);

#endif
