/* SPDX-License-Identifier: Apache-2.0 */
/* audit.h: the audit trail: one JSON line per call that reached dispatch, allowed or denied
 * (who, which adapter and operation, the decision and the rule that made it, the allow-listed
 * argument fields, the upstream status, the latency), to a file (reopened on SIGHUP for
 * logrotate) or to the systemd journal. Never a credential, never a response body. One sink per
 * process; every function is thread-safe. */
#ifndef NAFTIKOD_AUDIT_H
#define NAFTIKOD_AUDIT_H

#include <stdbool.h>

#include <jansson.h>

#include "naftikod/common.h"
#include "naftikod/invoke.h"
#include "naftikod/principal.h"

/* The journal's native socket (systemd.journal-fields(7), "native protocol"). */
#define NK_AUDIT_JOURNAL_SOCKET "/run/systemd/journal/socket"

struct nk_audit_record {
    const char *request_id;            /* may be NULL */
    const struct nk_principal *caller; /* borrowed */
    const char *adapter;               /* the adapter's namespace */
    const char *kind;                  /* "tool" or "route" */
    const char *operation;             /* tool name, or "METHOD /path" as exposed */
    bool allowed;
    const char *rule;     /* the rule that decided ("FILE:LINE (caller NAME)", "default deny",
                             "no permissions file", "read-only") */
    const char *reason;   /* a denial's reason, or NULL */
    const json_t *args;   /* allow-listed argument fields (nk_authz_decision.audit_args), or NULL */
    long upstream_status; /* 0: no upstream answer (denied, refused, unreachable) */
    const char *outcome;  /* "ok", "upstream_error", "unreachable", "timeout", "bad_upstream",
                             "internal", "denied", "invalid" */
    double latency_ms;    /* from dispatch to the answer */
};

/* Open the sink: "journal" (the journal's native socket) or a file path (created 0640 if
 * missing, appended to). Replaces a sink already open. NK_ERR_IO with err set when it cannot. */
enum nk_rc nk_audit_open(const char *target, struct nk_error *err);
/* Reopen the file (after logrotate moved it); the journal needs nothing. On failure the old
 * descriptor stays in use and err says why. */
enum nk_rc nk_audit_reopen(struct nk_error *err);
void nk_audit_close(void);
/* Is a sink open? (Callers skip building records otherwise.) */
bool nk_audit_enabled(void);
/* Write one record as one line (one write(2) on an O_APPEND descriptor, or one datagram).
 * A failed write is counted and logged once a minute at most; it never blocks a call. */
void nk_audit_write(const struct nk_audit_record *r);
/* The record's outcome for an invocation result: "ok", "upstream_error", "unreachable",
 * "timeout", "bad_upstream" or "internal". */
const char *nk_audit_outcome(enum nk_result_kind k);
/* The record's JSON line (no newline), for tests: caller frees with free(). NULL: no memory. */
char *nk_audit_format(const struct nk_audit_record *r);

#endif
