/* SPDX-License-Identifier: Apache-2.0 */
/* principal.h: who a request comes from, as the inbound check established it. The admit hook
 * fills one in and keeps it on the request (nk_http_req_set_principal()); the adapters, the
 * permission rules and the audit trail read it. Nothing in it is a secret. */
#ifndef NAFTIKOD_PRINCIPAL_H
#define NAFTIKOD_PRINCIPAL_H

#define NK_PRINCIPAL_NAME_MAX 64
#define NK_PRINCIPAL_SCOPE_MAX 512

enum nk_principal_kind {
    NK_PRINCIPAL_ANONYMOUS, /* no inbound authentication on this adapter */
    NK_PRINCIPAL_TOKEN,     /* a line of the tokens file (--auth-tokens): name is its NAME */
    NK_PRINCIPAL_DOCUMENT,  /* the capability document's own inbound authentication */
    NK_PRINCIPAL_OAUTH      /* an OAuth 2.1 access token: name is its subject (sub) */
};

struct nk_principal {
    enum nk_principal_kind kind;
    char name[NK_PRINCIPAL_NAME_MAX];      /* shown in the access log and the audit trail */
    char client_id[NK_PRINCIPAL_NAME_MAX]; /* OAuth: client_id (or azp); "" otherwise */
    char scope[NK_PRINCIPAL_SCOPE_MAX]; /* OAuth: granted scopes, space-separated; "" otherwise */
};

#endif
