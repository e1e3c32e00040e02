/* SPDX-License-Identifier: Apache-2.0 */
/* optable.h: the compiled, immutable operation table that every adapter serves.
 *
 * nk_optable_load() parses capability documents (spec module) and compiles them: every
 * `call` resolved, every `with` source checked, templates and JSONPath compiled once, routes and
 * tool names unique. After load the table is read-only and may be shared by any number of
 * threads; it is reference counted so a reload can swap in a new table while in-flight calls
 * finish on the old one. Every pointer inside the table is owned by the table and valid while a
 * reference is held. */
#ifndef NAFTIKOD_OPTABLE_H
#define NAFTIKOD_OPTABLE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <regex.h>

#include "naftikod/common.h"
#include "naftikod/jsonpath.h"
#include "naftikod/template.h"

enum nk_type {
    NK_TYPE_ANY = 0, /* not declared: any JSON value (scalars sent as text) */
    NK_TYPE_STRING,
    NK_TYPE_NUMBER,
    NK_TYPE_INTEGER,
    NK_TYPE_BOOLEAN,
    NK_TYPE_ARRAY,
    NK_TYPE_OBJECT
};
const char *nk_type_name(enum nk_type t); /* "string", ...; "any" for NK_TYPE_ANY */
/* Coerce v to a declared output type t. A value already of type t stays (an integral number is
 * an integer); null stays null; a string is read as JSON text and must then be of type t
 * ("5" -> 5, "true" -> true, "[1]" -> [1]); for type string a number or boolean becomes its
 * JSON text (5 -> "5"). Anything else (an object for a string, "abc" for a number) cannot be
 * coerced. Returns a new reference, or NULL: *oom tells out of memory from "cannot". */
json_t *nk_type_coerce(enum nk_type t, json_t *v, bool *oom);

/* Where a parameter travels. NK_IN_ENVIRONMENT exists only on consumed parameters. */
enum nk_in { NK_IN_QUERY, NK_IN_PATH, NK_IN_HEADER, NK_IN_COOKIE, NK_IN_BODY, NK_IN_ENVIRONMENT };
const char *nk_in_name(enum nk_in in);

/* Source position of a construct, for diagnostics at serve time. */
struct nk_pos {
    const char *file; /* borrowed from the table */
    unsigned line, column;
};

/* ---- consumed side ---------------------------------------------------------------------- */

/* One inputParameter of a consumed operation. */
struct nk_param {
    char *name;
    enum nk_in in;
    enum nk_type type;
    bool required;
    char *description;     /* NULL when absent */
    struct nk_tmpl *value; /* NULL, or a static value / Mustache template from `value:` */
    struct nk_pos pos;
};

/* A `{{name}}` used in a consumed operation's body template, where it is written. */
struct nk_bodyvar {
    char *name;
    struct nk_pos pos;
};

/* One outputParameter of a consumed operation (named JSONPath extraction). When an operation
 * has any, its answer becomes the object {name: value coerced to type, ...} before the exposed
 * mapping sees it. */
struct nk_outparam {
    char *name;
    enum nk_type type;
    struct nk_jsonpath *value; /* compiled `value:` */
};

enum nk_auth_type {
    NK_AUTH_NONE,
    NK_AUTH_APIKEY,
    NK_AUTH_BEARER,
    NK_AUTH_BASIC,
    NK_AUTH_DIGEST,
    NK_AUTH_OAUTH2 /* inbound only: an adapter's OAuth 2.1 resource server (nk_oauth_conf) */
};
enum nk_placement { NK_PLACE_HEADER, NK_PLACE_QUERY };
/* "none", "apikey", "bearer", "basic", "digest", "oauth2". */
const char *nk_auth_type_name(enum nk_auth_type t);

struct nk_auth {
    enum nk_auth_type type;
    char *key; /* apikey: header or query parameter name */
    enum nk_placement placement;
    struct nk_tmpl value;    /* apikey value */
    struct nk_tmpl token;    /* bearer token */
    struct nk_tmpl username; /* basic/digest */
    struct nk_tmpl password; /* basic/digest */
};

/* How an OAuth 2.1 resource server checks access tokens. */
enum nk_token_validation { NK_TOKEN_VALIDATION_JWKS, NK_TOKEN_VALIDATION_INTROSPECTION };

/* An adapter's inbound `authentication: {type: oauth2, ...}`, or the same from options and config
 * keys for an adapter whose document says nothing. */
struct nk_oauth_conf {
    char *authorization_server_uri; /* the issuer; its metadata is found from it (RFC 8414, OIDC) */
    char *resource;                 /* this adapter's canonical URI (RFC 8707, RFC 9728) */
    char **scopes;                  /* required on every call; also scopes_supported */
    size_t n_scopes;
    char *audience; /* NULL: aud must equal resource */
    enum nk_token_validation token_validation;
};

struct nk_consumer;

/* One consumed operation: method + resource path + parameters. */
struct nk_operation {
    char *name;   /* operation name, unique within its consumer */
    char *qname;  /* "namespace.name", the `call` target */
    char *method; /* upper-case HTTP method */
    char *description;
    char *resource;      /* resource name */
    struct nk_tmpl path; /* NK_TMPL_PATH: resource path; VAR parts are path parameters */
    struct nk_param *params;
    size_t n_params;
    struct nk_outparam *outputs;
    size_t n_outputs;
    char *output_raw_format;      /* "json" (default) or as written */
    json_t *body_template;        /* structured `body: {type: json, data: ...}`, or NULL; strings in
                                     it are Mustache templates */
    struct nk_bodyvar *body_vars; /* every `{{name}}` in body_template strings, for load checks */
    size_t n_body_vars;
    const struct nk_consumer *consumer; /* back pointer */
    struct nk_pos pos;
};

/* A static header a consumer sends with every request (`headers` where the schema has them). */
struct nk_header {
    char *name;
    struct nk_tmpl value;
};

struct nk_consumer {
    char *ns;
    char *description;
    struct nk_tmpl base_uri; /* NK_TMPL_PATH: `{var}` server variables, `{{bind}}` references */
    struct nk_auth auth;
    struct nk_header *headers;
    size_t n_headers;
    struct nk_operation *ops;
    size_t n_ops;
    size_t index; /* position in nk_optable.consumers, set at load (O(1) per-consumer state) */
    struct nk_pos pos;
};

/* One key of `binds`: the template name `name` (also reachable as `ns.name`) takes its value
 * from environment variable `source`, or from the file at `location` when set. */
struct nk_bind {
    char *ns;       /* e.g. "env" */
    char *name;     /* key used in templates */
    char *source;   /* environment variable name */
    char *location; /* file path from `location: file:///...`, or NULL */
    struct nk_pos pos;
};

/* ---- exposed side ----------------------------------------------------------------------- */

/* An input the caller supplies to an exposed operation or tool. */
struct nk_arg {
    char *name;
    enum nk_in in; /* REST: where it is read from (path, query, header, body);
                      MCP: NK_IN_BODY (a property of `arguments`) */
    enum nk_type type;
    bool required;
    char *description; /* may be NULL */
    char *pattern;     /* string regex from the spec, or NULL */
    regex_t *re;       /* pattern compiled at load (POSIX ERE, REG_NOSUB), or NULL; owned */
    json_t *schema;    /* JSON Schema for this input (MCP inputSchema / OpenAPI); owned */
};

enum nk_binding_kind {
    NK_BIND_ARG,      /* the caller's argument args[arg] (rest.x, tools.x, ns.x, $this.ns.x) */
    NK_BIND_TEMPLATE, /* a Mustache template over binds and arguments */
};

/* How one consumed parameter receives its value for one exposed operation. */
struct nk_binding {
    const struct nk_param *param; /* borrowed: the target parameter */
    enum nk_binding_kind kind;
    size_t arg;          /* NK_BIND_ARG: index into the exposed op's args */
    struct nk_tmpl tmpl; /* NK_BIND_TEMPLATE */
};

/* Output mapping tree (`outputParameters` with `mapping`, `value`, `const`, `properties`,
 * `items`). A mock operation's outputs are one object node whose props are the named entries. */
struct nk_outmap {
    char *name; /* property name inside a parent object, else NULL */
    enum nk_type type;
    struct nk_jsonpath *mapping; /* NULL when value/const or when only shaping children */
    struct nk_tmpl *value;       /* `value`: a Mustache template over the operation's inputs,
                                    coerced to type; NULL when absent (wins over mapping) */
    json_t *konst;               /* `const` value, or NULL */
    struct nk_outmap *props;     /* object: children */
    size_t n_props;
    struct nk_outmap *items; /* array: item shape (one), or NULL */
};

/* ---- orchestration (`steps`, `mappings`) ---------------------------------------------------- */

#define NK_MAX_STEPS 32 /* steps of one operation or tool, checked at load */

enum nk_step_kind { NK_STEP_CALL, NK_STEP_LOOKUP };

/* A reference to a step's output: `$.STEP` then a JSONPath over that output (`$.get-ship.crew`
 * is step "get-ship", path `$.crew`). */
struct nk_stepref {
    size_t step;              /* index into the operation's steps */
    struct nk_jsonpath *path; /* over the step's output; `$` for the whole of it */
};

/* One step of an orchestrated operation. */
struct nk_step {
    char *name; /* unique within the operation */
    enum nk_step_kind kind;
    /* NK_STEP_CALL: one consumed operation, its parameters bound like a `call`'s (bindings read
     * the caller's arguments and, in templates, `{{step.field}}` of earlier steps) */
    const struct nk_operation *target; /* borrowed */
    struct nk_binding *bindings;
    size_t n_bindings;
    /* NK_STEP_LOOKUP: for each value lookupValue gives, the first entry of step `index`'s output
     * (an array of objects, or one object) whose field `match` equals it (as text), reduced to
     * `fields`; a list of such entries when lookupValue gives a list */
    size_t index;     /* the step whose output is the table */
    char *index_path; /* `index` as written: `step`, or `step.member...` (naftikod: a list that
                         the answer wraps, such as Central's {"roles": [...]}) */
    char *match;
    bool value_is_ref; /* lookupValue is `$.step...` (value_ref), else a template */
    struct nk_stepref value_ref;
    struct nk_tmpl value_tmpl; /* over the caller's arguments and `{{step.field}}` */
    char **fields;
    size_t n_fields;
    struct nk_pos pos;
};

/* `mappings[]`: targetName (dotted: `route.from` nests) takes the value `value` reads. */
struct nk_stepmap {
    char *target;
    struct nk_stepref value;
};

struct nk_hints {
    bool read_only, destructive, idempotent, open_world;
};

enum nk_adapter_type { NK_ADAPTER_REST, NK_ADAPTER_MCP };

/* A REST resource with `forward`: every request under `prefix` that no operation takes is
 * relayed to the target consumer's baseUri (the rest of the path appended), with its method,
 * body and trusted headers, and the consumer's authentication. */
struct nk_forward {
    char *path;   /* the resource path as written, e.g. "/notion/{path}" */
    char *prefix; /* the path before its last segment (the catch-all variable), e.g. "/notion" */
    const struct nk_consumer *target; /* borrowed */
    char **trusted;                   /* header names that pass (compared case-insensitively) */
    size_t n_trusted;
    /* the target's consumer-level `in: header` inputParameters with a `value` (templates over
     * binds), sent with every forwarded request; they win over a caller's header of that name */
    struct nk_header *headers;
    size_t n_headers;
    struct nk_pos pos;
};

/* One '/'-separated segment of a REST route, compiled at load from path_tmpl. A request segment
 * matches a literal segment (var NULL) when it equals the text; else when it is prefix, then a
 * non-empty value for var, then suffix. */
struct nk_route_seg {
    char *text; /* owned: prefix_len bytes of prefix then suffix_len bytes of suffix */
    size_t prefix_len, suffix_len;
    const char *var; /* borrowed from path_tmpl (a VAR part's name), or NULL */
};

/* A REST operation or an MCP tool. */
struct nk_exposed {
    char *name;
    char *title; /* MCP title (label) or NULL */
    char *description;
    const struct nk_operation *target; /* borrowed: the `call` target; NULL for a mock, which
                                          answers `output` built from its inputs alone, and for
                                          an orchestrated operation (n_steps > 0) */
    struct nk_arg *args;
    size_t n_args;
    struct nk_binding *bindings;
    size_t n_bindings;
    struct nk_outmap *output; /* NULL: pass the upstream JSON through unchanged */
    /* orchestrated (`steps`; target is NULL): the steps run in order, then the answer is the
     * object `mappings` build (shaped and typed by output when the operation declares
     * outputParameters), or, without mappings, the last call step's output */
    struct nk_step *steps;
    size_t n_steps;
    struct nk_stepmap *mappings;
    size_t n_mappings;
    /* REST only */
    char *method;               /* upper-case */
    char *path;                 /* exposed path as written */
    struct nk_tmpl path_tmpl;   /* NK_TMPL_PATH, VAR parts are path args */
    struct nk_route_seg *route; /* path_tmpl split at '/' (one leading '/' dropped); owned */
    size_t n_route;
    /* MCP only */
    struct nk_hints hints;
    json_t *input_schema; /* MCP inputSchema / OpenAPI parameters source; owned */
    struct nk_pos pos;
    const char *adapter_ns; /* in a listener's ops: the namespace of the adapter it comes from
                               (metrics label, OpenAPI tag); NULL in an adapter's own ops */
};

struct nk_adapter {
    enum nk_adapter_type type;
    char *ns;
    char *description;
    unsigned port;   /* from the spec; 0 allowed only when overridden at serve time */
    char *address;   /* `address:` if given, else NULL (serve decides) */
    char *transport; /* MCP: "http" or "stdio" */
    struct nk_exposed *ops;
    size_t n_ops;
    struct nk_forward *forwards; /* REST: the resources with `forward` (a listener: none; its
                                    members' are read) */
    size_t n_forwards;
    /* Inbound `authentication:` of the document (type NK_AUTH_NONE when absent); for
     * NK_AUTH_OAUTH2 the settings are in oauth (NULL otherwise). */
    struct nk_auth auth;
    struct nk_oauth_conf *oauth;
    struct nk_pos pos;
    /* A listener (nk_optable.listeners) only: every adapter of one type on one address and
     * port. ops are shallow copies of the members' ops (names owned when prefixed), address
     * and port the effective ones, key "ADDR PORT". */
    char *key;
    const struct nk_adapter **members;
    size_t n_members;
    bool owns_names;
};

struct nk_optable {
    struct nk_consumer *consumers;
    size_t n_consumers;
    struct nk_adapter *adapters;
    size_t n_adapters;
    struct nk_bind *binds;
    size_t n_binds;
    char **files; /* the loaded file names, owned; nk_pos.file points in here */
    size_t n_files;
    /* the listeners nk_optable_group() made (adapters grouped by type, address, port) */
    struct nk_adapter *listeners;
    size_t n_listeners;
    char *label;       /* info.label of the first document, or NULL */
    char *description; /* info.description of the first document, or NULL */
    /* SHA-256 over the documents' bytes in load order (each preceded by its length as 8 bytes,
     * big endian), first 8 bytes in lower-case hex: the same files give the same fingerprint
     * on every replica whatever their paths */
    char fingerprint[17];
    /* private */
    int refs;
};

struct nk_load_options {
    bool strict; /* report every departure from the pure alpha2 schema as a warning */
};

/* Load, validate and compile the capability documents files[0..n). Every problem found in every
 * file is appended to diags (errors and warnings, sorted by position). Returns NK_OK and a new
 * table (refcount 1) only when there are no errors; otherwise NK_ERR_INVALID (or NK_ERR_IO /
 * NK_ERR_NOMEM) and *out untouched. opts may be NULL. */
enum nk_rc nk_optable_load(const char *const *files, size_t n, const struct nk_load_options *opts,
                           struct nk_diags *diags, struct nk_optable **out);
/* Same from memory (tests, fuzzing): one document named `name`. */
enum nk_rc nk_optable_load_mem(const char *name, const char *buf, size_t len,
                               const struct nk_load_options *opts, struct nk_diags *diags,
                               struct nk_optable **out);

/* How nk_optable_group() places adapters: the port options of `naftikod serve`. */
struct nk_group_options {
    const char *listen; /* the default address (--listen); NULL: 127.0.0.1 */
    bool listen_given;  /* --listen beats an adapter's own address: */
    long rest_port;     /* --rest-port, or -1 (the spec's) */
    long mcp_port;
    bool rest_listen_given; /* --rest-listen ADDR:PORT (an empty ADDR keeps the address) */
    const char *rest_listen_addr;
    long rest_listen_port;
    bool mcp_listen_given;
    const char *mcp_listen_addr;
    long mcp_listen_port;
    bool tool_prefix; /* --mcp-tool-prefix namespace: tools named NS__TOOL */
};

/* Group the adapters served over HTTP (REST, MCP transport http) into t->listeners, one per
 * (type, address, port) after the options apply, and judge the conflicts: a route (method and
 * structurally equal path) or a tool name served twice on one listener, a REST and an MCP
 * listener on one address and port, a port 0 left without an option. Errors name both places
 * (FILE:LINE:COL). Call once, right after a successful load, before the table is shared.
 * Returns NK_OK, NK_ERR_INVALID (diags has the errors) or NK_ERR_NOMEM. opts may be NULL. */
enum nk_rc nk_optable_group(struct nk_optable *t, const struct nk_group_options *opts,
                            struct nk_diags *diags);
/* The listener of type type whose key is key, or NULL. */
const struct nk_adapter *nk_optable_find_listener(const struct nk_optable *t,
                                                  enum nk_adapter_type type, const char *key);
/* The MCP tool name of `tool` of adapter `ns` under --mcp-tool-prefix namespace: ns without a
 * trailing "-mcp", "__", tool; characters outside [A-Za-z0-9_-] become '_'; longer than 64
 * characters: the first 55, '-', and 8 hex digits of the FNV-1a hash of the whole name.
 * Writes at most 65 bytes into out. */
void nk_tool_prefixed(const char *ns, const char *tool, char out[65]);

/* Reference counting; thread-safe. unref(NULL) is a no-op. The last unref frees the table. */
struct nk_optable *nk_optable_ref(struct nk_optable *t);
void nk_optable_unref(struct nk_optable *t);

/* Lookups; results borrowed from t. */
const struct nk_operation *nk_optable_find_op(const struct nk_optable *t, const char *qname);
const struct nk_exposed *nk_adapter_find_tool(const struct nk_adapter *a, const char *name);

#endif
