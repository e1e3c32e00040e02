/* SPDX-License-Identifier: Apache-2.0 */
/* rest.h: the REST adapter: routes from an `exposes` type rest entry onto nk_invoke(). */
#ifndef NAFTIKOD_REST_H
#define NAFTIKOD_REST_H

#include "naftikod/httpd.h"
#include "naftikod/server.h"

/* Handle one request for the REST adapter whose namespace is ns (looked up in the server's
 * current table on every request, so reloads apply). Always answers req exactly once. */
void nk_rest_handle(struct nk_server *s, const char *ns, struct nk_http_req *req);

#endif
