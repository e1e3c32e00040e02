/* SPDX-License-Identifier: Apache-2.0 */
/* server.h: what the adapters share while serving: the current context (table + resolved binds,
 * swapped atomically on reload) and the one upstream client. */
#ifndef NAFTIKOD_SERVER_H
#define NAFTIKOD_SERVER_H

#include "naftikod/invoke.h"
#include "naftikod/upstream.h"

struct nk_server;

/* A new reference to the context in force now; callers nk_context_unref() it when their request
 * is done, so a reload never frees a table under an in-flight call. Thread-safe. */
struct nk_context *nk_server_context(struct nk_server *s);
/* Borrowed; valid while s lives. Thread-safe. */
struct nk_upstream *nk_server_upstream(struct nk_server *s);

#endif
