/* SPDX-License-Identifier: Apache-2.0 */
/* config.h: the option table shared by `naftikod serve` and `naftikod mcp-stdio`: flags,
 * environment variables and the YAML configuration file (defaults < file < environment <
 * flags), and the --help text and the documentation table generated from it. */
#ifndef NAFTIKOD_CONFIG_H
#define NAFTIKOD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "naftikod/common.h"
#include "naftikod/invoke.h"

/* The commands that read options; each option of the table names the ones it applies to. */
enum nk_config_cmd {
    NK_CONFIG_SERVE = 1u << 0,
    NK_CONFIG_MCP_STDIO = 1u << 1,
};

/* An ADDR:PORT override for one adapter type. */
struct nk_config_listen {
    bool given;
    char addr[64]; /* empty: the --listen address */
    long port;
};

/* Every option's value after nk_config_read(). Strings are borrowed from argv or the
 * environment, or owned by the config (values read from the file); all live until
 * nk_config_free(). A field of an option that does not apply to the command keeps its default. */
/* The most event loops `serve` runs (--loops). */
#define NK_CONFIG_MAX_LOOPS 64

struct nk_config {
    const char *config; /* --config FILE, or NULL */
    const char *listen;
    bool listen_given;
    long rest_port; /* -1: from the spec */
    long mcp_port;
    struct nk_config_listen rest_listen;
    struct nk_config_listen mcp_listen;
    const char *mcp_tool_prefix; /* none or namespace */
    long mcp_page_size;          /* 0: the default (100) */
    const char *ca_file;
    bool insecure;
    bool allow_remote;
    long connect_timeout_ms; /* 0: the upstream client's default */
    long timeout_ms;
    long max_response;
    long max_body;
    long drain_ms;
    long loops;             /* 0: the usable CPUs, at most NK_CONFIG_MAX_LOOPS */
    const char *log_format; /* text, logfmt or json */
    const char *log_level;  /* debug, info, warning or error */
    const char *port_file;
    struct nk_var *vars;
    size_t n_vars;
    const char *ops_listen; /* ops listener (health and metrics); NULL: the default */
    long ready_cache_ms;
    const char *rest_auth; /* none, token or passthrough */
    const char *mcp_auth;  /* none or token */
    const char *auth_tokens;
    const char *permissions;        /* per-caller permissions file (authz.h), or NULL */
    const char *audit_log;          /* audit trail: a file, "journal", or NULL (off) */
    const char *rest_allowed_hosts; /* comma-separated Host names besides loopback, or NULL */
    bool read_only;
    long max_connections;
    long max_per_client;
    long max_header_bytes;
    long idle_timeout_s;
    long rate_limit;
    long rate_burst;
    long request_timeout_s;
    long mcp_max_batch;
    const char *mcp_allowed_hosts;    /* comma-separated MCP Host/Origin names, or NULL */
    const char *mcp_session_key_file; /* the MCP session key ring's file, or NULL */
    long mcp_tools_ttl_ms;            /* 0: the default (60000) */
    bool replicas;                    /* DELETE /mcp 405; a session key file required */
    long shutdown_delay_s;            /* lame duck before the drain */
    const char *trusted_proxies;      /* comma-separated CIDR blocks, or NULL */
    const char *adapter;              /* mcp-stdio: the MCP adapter to serve; NULL: the first */
    /* OAuth 2.1 resource server (--rest-auth oauth / --mcp-auth oauth) for adapters whose
     * document has no oauth2 authentication of its own */
    const char *mcp_oauth_issuer, *mcp_oauth_resource, *mcp_oauth_scopes, *mcp_oauth_audience;
    const char *rest_oauth_issuer, *rest_oauth_resource, *rest_oauth_scopes, *rest_oauth_audience;
    const char *oauth_token_validation; /* jwks or introspection */
    const char *oauth_algorithms;       /* accepted JWS algorithms */
    long oauth_leeway_s;
    long oauth_jwks_refresh_s;
    long oauth_jwks_max_age_s;
    long oauth_cache_entries;
    long oauth_cache_ttl_s;
    const char *oauth_client_file; /* introspection: CLIENT_ID:SECRET, one line */
    /* Not options: the capability files (command line, else the config file's list), and the
     * strings this config owns (values read from the config file). */
    const char **files;
    size_t n_files;
    bool files_from_args;
    char **owned;
    size_t n_owned;
};

/* Fill c for command cmd (one nk_config_cmd) from every source: defaults < the --config file <
 * environment variables < flags (argv[0] is the command name). A flag of another command is a
 * usage error naming the command it belongs to; another command's environment variables and
 * file keys are ignored. Errors are reported by the module: "naftikod CMD: message" on stderr,
 * or an error log line when a --log-format other than text is in force, or, with reloading, a
 * "reload: message" error log line. Returns 0 to go on, -1 after printing --help or
 * --options-markdown on stdout, 1 for a bad configuration file, 2 on a usage error. c is always
 * initialised: free it with nk_config_free() whatever the result. */
int nk_config_read(struct nk_config *c, unsigned cmd, bool reloading, int argc, char **argv);
/* Free what c owns (wiping values read from the file) and zero it. */
void nk_config_free(struct nk_config *c);

/* The --help text of cmd. */
void nk_config_usage(unsigned cmd, FILE *out);
/* An error that stops command cmd's start-up, worded like the option errors: "naftikod serve:
 * MESSAGE" on stderr, or an error log line once a --log-format other than text is in force. */
void nk_config_error(unsigned cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* cmd's options as the Markdown table in docs/configuration.md (a test compares them). */
void nk_config_markdown(unsigned cmd, FILE *out);

/* Log a warning for every option that differs between running and next and that a reload does
 * not apply (all but --var, --log-format and --log-level). */
void nk_config_warn_changes(const struct nk_config *running, const struct nk_config *next);

/* Split a comma/blank-separated list into at most max words: *copy (caller frees) holds them,
 * words[] points into it. NK_OK; NK_ERR_TOO_LARGE for more than max words; NK_ERR_NOMEM. */
enum nk_rc nk_config_split_list(const char *list, char **copy, const char **words, size_t max,
                                size_t *n);

#endif
