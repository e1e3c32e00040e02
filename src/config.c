/* SPDX-License-Identifier: Apache-2.0 */
/* config.c: the option table of `serve` and `mcp-stdio`: flags, environment variables, the YAML
 * configuration file (through the spec module), --help and the documentation table. */
#include "naftikod/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "naftikod/log.h"
#include "naftikod/mcp_core.h"
#include "naftikod/ops.h"
#include "naftikod/spec.h"

enum opt_kind { OPT_STRING, OPT_UINT, OPT_BOOL, OPT_VAR, OPT_LISTEN, OPT_CONFIG, OPT_CHOICE };

/* The options table: every option once, with its environment variable, default and the commands
 * it applies to. Its config file key is the flag without "--". */
struct opt {
    const char *flag;
    const char *env; /* or NULL */
    enum opt_kind kind;
    const char *arg;  /* metavariable in --help; OPT_CHOICE: the choices, '|'-separated */
    const char *dflt; /* default as shown in --help */
    const char *help;
    size_t off;    /* offset in struct nk_config */
    unsigned cmds; /* the nk_config_cmd values it applies to */
};

#define CFG(field) offsetof(struct nk_config, field)
#define SERVE NK_CONFIG_SERVE
#define BOTH (NK_CONFIG_SERVE | NK_CONFIG_MCP_STDIO)

static const struct opt opts[] = {
    {"--config", "NAFTIKOD_CONFIG", OPT_CONFIG, "FILE", "none",
     "YAML file of options (keys: the long option names), var: and capabilities:", CFG(config),
     BOTH},
    {"--listen", "NAFTIKOD_LISTEN", OPT_STRING, "ADDR", "127.0.0.1",
     "numeric IPv4/IPv6 address every listener binds (overrides an adapter's address:)",
     CFG(listen), SERVE},
    {"--rest-port", "NAFTIKOD_REST_PORT", OPT_UINT, "N", "the spec's port",
     "port of the REST adapter(s); 0 picks a free one", CFG(rest_port), SERVE},
    {"--mcp-port", "NAFTIKOD_MCP_PORT", OPT_UINT, "N", "the spec's port",
     "port of the MCP adapter(s); 0 picks a free one", CFG(mcp_port), SERVE},
    {"--rest-listen", "NAFTIKOD_REST_LISTEN", OPT_LISTEN, "ADDR:PORT", "127.0.0.1:spec port",
     "REST adapter(s) address and port ([::1]:N, :N); beats --listen, --rest-port",
     CFG(rest_listen), SERVE},
    {"--mcp-listen", "NAFTIKOD_MCP_LISTEN", OPT_LISTEN, "ADDR:PORT", "127.0.0.1:spec port",
     "MCP adapter(s) address and port ([::1]:N, :N); beats --listen, --mcp-port", CFG(mcp_listen),
     SERVE},
    {"--mcp-tool-prefix", "NAFTIKOD_MCP_TOOL_PREFIX", OPT_CHOICE, "none|namespace", "none",
     "MCP tool names as written, or NS__TOOL (the adapter namespace without '-mcp'; 64 "
     "characters at most, longer ones end in a hash) so tools of many adapters on one "
     "endpoint cannot clash",
     CFG(mcp_tool_prefix), SERVE},
    {"--mcp-page-size", "NAFTIKOD_MCP_PAGE_SIZE", OPT_UINT, "N", "100",
     "tools per tools/list page (the cursor spans every adapter on the endpoint)",
     CFG(mcp_page_size), SERVE},
    {"--var", NULL, OPT_VAR, "NAME=VALUE", "-",
     "baseUri variable, repeatable (else env NAME upper-cased, '-' -> '_')", CFG(vars), BOTH},
    {"--ca-file", "NAFTIKOD_CA_FILE", OPT_STRING, "FILE", "system store",
     "PEM bundle to trust for upstream TLS", CFG(ca_file), BOTH},
    {"--insecure-skip-verify", "NAFTIKOD_INSECURE_SKIP_VERIFY", OPT_BOOL, NULL, "off",
     "do not verify upstream TLS certificates (labs only; logged as a warning)", CFG(insecure),
     BOTH},
    {"--allow-remote", "NAFTIKOD_ALLOW_REMOTE", OPT_BOOL, NULL, "off",
     "serve an adapter without inbound authentication on a non-loopback address (logged as a "
     "warning)",
     CFG(allow_remote), SERVE},
    {"--connect-timeout", "NAFTIKOD_CONNECT_TIMEOUT_MS", OPT_UINT, "MS", "5000",
     "upstream connect timeout in milliseconds", CFG(connect_timeout_ms), BOTH},
    {"--timeout", "NAFTIKOD_TIMEOUT_MS", OPT_UINT, "MS", "30000",
     "upstream total timeout per call in milliseconds, all the steps of an orchestrated call "
     "together (REST 504 beyond)",
     CFG(timeout_ms), BOTH},
    {"--max-response", "NAFTIKOD_MAX_RESPONSE", OPT_UINT, "BYTES", "16777216",
     "largest upstream response accepted (REST 502 beyond)", CFG(max_response), BOTH},
    {"--max-body", "NAFTIKOD_MAX_BODY", OPT_UINT, "BYTES", "1048576",
     "largest request body accepted (413 beyond)", CFG(max_body), SERVE},
    {"--drain-timeout", "NAFTIKOD_DRAIN_TIMEOUT_MS", OPT_UINT, "MS", "10000",
     "on SIGTERM/SIGINT, how long to wait for requests in flight", CFG(drain_ms), SERVE},
    {"--loops", "NAFTIKOD_LOOPS", OPT_UINT, "N", "the usable CPUs, at most 64",
     "event loops (threads) serving the adapters, each with its own listening sockets "
     "(SO_REUSEPORT) and upstream client; 1..64 (0: the default)",
     CFG(loops), SERVE},
    {"--log-format", "NAFTIKOD_LOG_FORMAT", OPT_CHOICE, "text|logfmt|json", "text",
     "log line format on stderr (one line an event)", CFG(log_format), BOTH},
    {"--log-level", "NAFTIKOD_LOG_LEVEL", OPT_CHOICE, "debug|info|warning|error", "info",
     "least severe level logged (access lines count as info)", CFG(log_level), BOTH},
    {"--port-file", "NAFTIKOD_PORT_FILE", OPT_STRING, "FILE", "none",
     "once listening, write \"rest=PORT\\nmcp=PORT\\nops=PORT\\n\" there (atomically)",
     CFG(port_file), SERVE},
    {"--ops-listen", "NAFTIKOD_OPS_LISTEN", OPT_STRING, "ADDR:PORT", NK_OPS_DEFAULT_LISTEN,
     "/healthz /readyz /metrics listener, or off (no credential used: any address allowed)",
     CFG(ops_listen), SERVE},
    {"--ready-cache", "NAFTIKOD_READY_CACHE_MS", OPT_UINT, "MS", "5000",
     "how long an upstream reachability verdict (/healthz, /metrics) is reused",
     CFG(ready_cache_ms), SERVE},
    {"--rest-auth", "NAFTIKOD_REST_AUTH", OPT_CHOICE, "none|token|oauth|passthrough", "none",
     "REST callers: anyone, a bearer token from --auth-tokens, an OAuth access token "
     "(--rest-oauth-*), or their own credential forwarded to the upstream instead of the bound "
     "one",
     CFG(rest_auth), SERVE},
    {"--mcp-auth", "NAFTIKOD_MCP_AUTH", OPT_CHOICE, "none|token|oauth", "none",
     "MCP callers: anyone, a bearer token from --auth-tokens, or an OAuth 2.1 access token "
     "(--mcp-oauth-*; never forwarded upstream)",
     CFG(mcp_auth), SERVE},
    {"--auth-tokens", "NAFTIKOD_AUTH_TOKENS_FILE", OPT_STRING, "FILE", "none",
     "caller tokens, one 'sha256:<hex>  NAME' line each (see 'naftikod hash-token')",
     CFG(auth_tokens), SERVE},
    {"--permissions", "NAFTIKOD_PERMISSIONS_FILE", OPT_STRING, "FILE",
     "none (every caller may use "
     "everything)",
     "per-caller permissions (YAML): which tools and routes each caller may use, with argument "
     "limits; anything not granted is denied; reloaded on SIGHUP (mcp-stdio: the caller is "
     "anonymous)",
     CFG(permissions), BOTH},
    {"--audit-log", "NAFTIKOD_AUDIT_LOG", OPT_STRING, "FILE|journal", "none",
     "one JSON line per call (caller, operation, decision and rule, allow-listed arguments, "
     "upstream status, latency) to FILE (reopened on SIGHUP) or the systemd journal",
     CFG(audit_log), BOTH},
    {"--rest-allowed-hosts", "NAFTIKOD_REST_ALLOWED_HOSTS", OPT_STRING, "NAMES",
     "none (loopback names only)",
     "comma-separated host names the REST adapter answers besides localhost, 127.0.0.1 and "
     "[::1] (Host and Origin headers; others get 403)",
     CFG(rest_allowed_hosts), SERVE},
    {"--read-only", "NAFTIKOD_READ_ONLY", OPT_BOOL, NULL, "off",
     "serve only GET routes and tools whose hints say readOnly", CFG(read_only), BOTH},
    {"--max-connections", "NAFTIKOD_MAX_CONNECTIONS", OPT_UINT, "N", "1024",
     "open connections per adapter listener, lowered at start to fit the descriptor limit; "
     "beyond, new ones wait",
     CFG(max_connections), SERVE},
    {"--max-connections-per-client", "NAFTIKOD_MAX_CONNECTIONS_PER_CLIENT", OPT_UINT, "N",
     "0 (no limit of its own)",
     "open connections per client address per listener (through a trusted proxy: requests in "
     "flight per forwarded client; 429 beyond)",
     CFG(max_per_client), SERVE},
    {"--max-header-bytes", "NAFTIKOD_MAX_HEADER_BYTES", OPT_UINT, "BYTES", "16384",
     "memory for a request's line and headers (431 beyond)", CFG(max_header_bytes), SERVE},
    {"--idle-timeout", "NAFTIKOD_IDLE_TIMEOUT_S", OPT_UINT, "S", "30",
     "close a connection silent for this long (slow clients included)", CFG(idle_timeout_s), SERVE},
    {"--request-timeout", "NAFTIKOD_REQUEST_TIMEOUT_S", OPT_UINT, "S", "60",
     "a request (line, headers, body) must arrive whole within this; slower clients are "
     "disconnected (0: no deadline)",
     CFG(request_timeout_s), SERVE},
    {"--rate-limit", "NAFTIKOD_RATE_LIMIT", OPT_UINT, "N", "0 (unlimited)",
     "requests per second per client address (429 + Retry-After beyond)", CFG(rate_limit), SERVE},
    {"--rate-burst", "NAFTIKOD_RATE_BURST", OPT_UINT, "N", "the rate",
     "requests a client may send at once before --rate-limit applies", CFG(rate_burst), SERVE},
    {"--mcp-max-batch", "NAFTIKOD_MCP_MAX_BATCH", OPT_UINT, "N", "64",
     "messages in one MCP JSON-RPC batch (2025-03-26); a larger batch is refused whole; each "
     "tools/call after the first costs one --rate-limit token",
     CFG(mcp_max_batch), BOTH},
    {"--mcp-allowed-hosts", "NAFTIKOD_MCP_ALLOWED_HOSTS", OPT_STRING, "NAMES",
     "none (loopback names only)",
     "comma-separated host names the MCP adapter answers besides localhost, 127.0.0.1 and "
     "[::1] (Host and Origin headers; others get 403)",
     CFG(mcp_allowed_hosts), SERVE},
    {"--mcp-session-key-file", "NAFTIKOD_MCP_SESSION_KEY_FILE", OPT_STRING, "FILE",
     "a random key per process",
     "MCP session keys, one a line (at least 32 bytes each, no placeholder): the first signs "
     "session ids, every one verifies them; read at start (a bad file stops it) and on SIGHUP "
     "(a bad file keeps the keys in force); give every replica the same file",
     CFG(mcp_session_key_file), SERVE},
    {"--mcp-tools-ttl", "NAFTIKOD_MCP_TOOLS_TTL_MS", OPT_UINT, "MS", "60000",
     "ttlMs of stateless-era (2026-07-28) tools/list and server/discover results: how long "
     "clients may cache the tool list; bounds how long a rolled-out capability change takes "
     "to reach them (0: the default)",
     CFG(mcp_tools_ttl_ms), SERVE},
    {"--replicas", "NAFTIKOD_REPLICAS", OPT_BOOL, NULL, "off",
     "one of several replicas behind a balancer: needs --mcp-session-key-file, and DELETE /mcp "
     "answers 405 (no replica can end a session that the others would still accept)",
     CFG(replicas), SERVE},
    {"--shutdown-delay", "NAFTIKOD_SHUTDOWN_DELAY_S", OPT_UINT, "S", "5",
     "on SIGTERM/SIGINT, first answer /readyz 503 and keep serving for this long (answers "
     "carry Connection: close) so balancers stop sending here, then drain; 0: drain at once",
     CFG(shutdown_delay_s), SERVE},
    {"--trusted-proxies", "NAFTIKOD_TRUSTED_PROXIES", OPT_STRING, "CIDRS", "none",
     "comma-separated addresses or CIDR blocks of proxies whose X-Forwarded-For / Forwarded "
     "header names the client (access log, --rate-limit); from anyone else they are ignored",
     CFG(trusted_proxies), SERVE},
    {"--mcp-oauth-issuer", "NAFTIKOD_MCP_OAUTH_ISSUER", OPT_STRING, "URL", "none",
     "--mcp-auth oauth: the authorization server (issuer); its metadata is found by RFC 8414, "
     "then OpenID discovery",
     CFG(mcp_oauth_issuer), SERVE},
    {"--mcp-oauth-resource", "NAFTIKOD_MCP_OAUTH_RESOURCE", OPT_STRING, "URI", "none",
     "--mcp-auth oauth: this MCP endpoint's canonical URI (e.g. https://host/mcp): tokens must "
     "name it in aud; RFC 9728 metadata describes it",
     CFG(mcp_oauth_resource), SERVE},
    {"--mcp-oauth-scopes", "NAFTIKOD_MCP_OAUTH_SCOPES", OPT_STRING, "LIST", "none",
     "scopes every MCP token must carry (comma-separated); also scopes_supported",
     CFG(mcp_oauth_scopes), SERVE},
    {"--mcp-oauth-audience", "NAFTIKOD_MCP_OAUTH_AUDIENCE", OPT_STRING, "AUD", "the resource",
     "the aud MCP tokens must name, when the issuer does not use the resource URI",
     CFG(mcp_oauth_audience), SERVE},
    {"--rest-oauth-issuer", "NAFTIKOD_REST_OAUTH_ISSUER", OPT_STRING, "URL", "none",
     "--rest-auth oauth: the authorization server (issuer)", CFG(rest_oauth_issuer), SERVE},
    {"--rest-oauth-resource", "NAFTIKOD_REST_OAUTH_RESOURCE", OPT_STRING, "URI", "none",
     "--rest-auth oauth: the REST API's canonical URI", CFG(rest_oauth_resource), SERVE},
    {"--rest-oauth-scopes", "NAFTIKOD_REST_OAUTH_SCOPES", OPT_STRING, "LIST", "none",
     "scopes every REST token must carry (comma-separated)", CFG(rest_oauth_scopes), SERVE},
    {"--rest-oauth-audience", "NAFTIKOD_REST_OAUTH_AUDIENCE", OPT_STRING, "AUD", "the resource",
     "the aud REST tokens must name", CFG(rest_oauth_audience), SERVE},
    {"--oauth-token-validation", "NAFTIKOD_OAUTH_TOKEN_VALIDATION", OPT_CHOICE,
     "jwks|introspection", "jwks",
     "check access tokens as JWTs against the issuer's JWKS, or ask its RFC 7662 "
     "introspection endpoint (needs --oauth-client-file)",
     CFG(oauth_token_validation), SERVE},
    {"--oauth-algorithms", "NAFTIKOD_OAUTH_ALGORITHMS", OPT_STRING, "LIST", "RS256,PS256,ES256",
     "JWS algorithms accepted (none and HS* are always refused)", CFG(oauth_algorithms), SERVE},
    {"--oauth-leeway", "NAFTIKOD_OAUTH_LEEWAY_S", OPT_UINT, "S", "60",
     "clock skew allowed on a token's exp and nbf, in seconds (at most 600)", CFG(oauth_leeway_s),
     SERVE},
    {"--oauth-jwks-refresh", "NAFTIKOD_OAUTH_JWKS_REFRESH_S", OPT_UINT, "S", "30",
     "an unknown kid fetches the JWKS again at most once per this many seconds",
     CFG(oauth_jwks_refresh_s), SERVE},
    {"--oauth-jwks-max-age", "NAFTIKOD_OAUTH_JWKS_MAX_AGE_S", OPT_UINT, "S", "3600",
     "keys older than this are fetched again in the background (a withdrawn key stops "
     "verifying)",
     CFG(oauth_jwks_max_age_s), SERVE},
    {"--oauth-cache-entries", "NAFTIKOD_OAUTH_CACHE_ENTRIES", OPT_UINT, "N", "1024",
     "checked tokens remembered by their SHA-256 (0: check every request again)",
     CFG(oauth_cache_entries), SERVE},
    {"--oauth-cache-ttl", "NAFTIKOD_OAUTH_CACHE_TTL_S", OPT_UINT, "S", "300",
     "the longest a token's verdict is remembered (never past its exp)", CFG(oauth_cache_ttl_s),
     SERVE},
    {"--oauth-client-file", "NAFTIKOD_OAUTH_CLIENT_FILE", OPT_STRING, "FILE", "none",
     "introspection: one line CLIENT_ID:SECRET, this resource server's credentials at the "
     "authorization server (a secret: never logged)",
     CFG(oauth_client_file), SERVE},
    {"--adapter", NULL, OPT_STRING, "NS", "the first MCP adapter",
     "namespace of the MCP adapter (any transport) to serve on stdin/stdout", CFG(adapter),
     NK_CONFIG_MCP_STDIO},
};

#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

/* Options a reload (SIGHUP) applies; every other one needs a restart. */
static bool opt_is_live(const struct opt *o)
{
    return o->off == CFG(vars) || o->off == CFG(log_format) || o->off == CFG(log_level);
}

/* Errors that stop start-up or a reload: "naftikod CMD: ..." on stderr at start-up (an error
 * log line once a --log-format other than text is in force), an error log line during a reload
 * (SIGHUP). Options are read on one thread at a time (start-up, then the signal thread). */
static bool g_reloading;
static unsigned g_cmd = NK_CONFIG_SERVE;

static const char *cmd_name(unsigned cmd)
{
    return cmd == NK_CONFIG_MCP_STDIO ? "mcp-stdio" : "serve";
}

static void vreport(unsigned cmd, bool reloading, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vreport(unsigned cmd, bool reloading, const char *fmt, va_list ap)
{
    char msg[900];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (reloading)
        nk_log(NK_LOG_ERROR, "reload: %s", msg);
    else if (nk_log_format() != NK_LOG_TEXT)
        nk_log(NK_LOG_ERROR, "%s", msg);
    else
        fprintf(stderr, "naftikod %s: %s\n", cmd_name(cmd), msg);
}

void nk_config_error(unsigned cmd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(cmd, false, fmt, ap);
    va_end(ap);
}

static void report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void report_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(g_cmd, g_reloading, fmt, ap);
    va_end(ap);
}

static const char serve_intro[] =
    "Usage: naftikod serve [OPTIONS] [CAPABILITY...]\n"
    "\n"
    "Load the capability documents and serve every REST and MCP (transport: http) adapter\n"
    "they expose, in the foreground, until SIGTERM or SIGINT (which drain requests in\n"
    "flight, then exit 0). SIGHUP reloads the capabilities, the --auth-tokens file (and\n"
    "the --config file) without dropping a request; a broken reload is logged and the\n"
    "previous table and tokens stay.\n"
    "Logs go to stderr, one line an event. CAPABILITY arguments (files, or directories of\n"
    "*.yaml and *.yml files) replace the config file's capabilities: list. Adapters of one\n"
    "type on one address and port share one listener.\n";

static const char stdio_intro[] =
    "Usage: naftikod mcp-stdio [OPTIONS] [CAPABILITY...]\n"
    "\n"
    "Speak MCP (JSON-RPC 2.0, one message a line) on stdin/stdout for desktop clients; logs go\n"
    "to stderr. Serves the tools of one MCP adapter of the capabilities (any transport).\n"
    "CAPABILITY arguments replace the config file's capabilities: list; options of 'naftikod\n"
    "serve' that concern listeners are refused here (their variables and file keys are\n"
    "ignored).\n";

static const char serve_outro[] =
    "Credentials the capabilities bind (e.g. STACKROX_API_KEY) come from the environment\n"
    "variable NAME, else the file named by NAME_FILE, else $CREDENTIALS_DIRECTORY/NAME\n"
    "(systemd LoadCredential=); NAME and NAME_FILE both set is an error. They are never\n"
    "logged. With $NOTIFY_SOCKET set, systemd is told READY=1, RELOADING=1, STOPPING=1 and\n"
    "(with $WATCHDOG_USEC) WATCHDOG=1. Details: docs/configuration.md, docs/operations.md.\n"
    "\n"
    "Exit status: 0 after a clean shutdown, 1 when start-up fails (invalid capability or\n"
    "config file, missing variable or credential, address in use), 2 on a usage error.\n";

static const char stdio_outro[] =
    "Credentials the capabilities bind come from NAME, NAME_FILE or\n"
    "$CREDENTIALS_DIRECTORY/NAME, as for 'naftikod serve'; they are never logged. Details:\n"
    "docs/configuration.md, docs/mcp.md.\n"
    "\n"
    "Exit status: 0 at end of input, 1 when the capabilities or the config file do not load,\n"
    "2 on a usage error.\n";

void nk_config_usage(unsigned cmd, FILE *out)
{
    size_t i;
    char left[64];

    fputs(cmd == NK_CONFIG_MCP_STDIO ? stdio_intro : serve_intro, out);
    fputs("\n"
          "Options (flag, environment variable, default; flag > variable > config file >\n"
          "default; the config file key is the flag without '--'):\n",
          out);
    for (i = 0; i < N_OPTS; i++) {
        if ((opts[i].cmds & cmd) == 0)
            continue;
        snprintf(left, sizeof(left), "%s%s%s", opts[i].flag, opts[i].arg ? " " : "",
                 opts[i].arg ? opts[i].arg : "");
        fprintf(out, "  %-24s (env %s; default %s)\n      %s\n", left,
                opts[i].env ? opts[i].env : "-", opts[i].dflt, opts[i].help);
    }
    fputs("  -h, --help\n      show this help and exit\n\n", out);
    fputs(cmd == NK_CONFIG_MCP_STDIO ? stdio_outro : serve_outro, out);
}

/* s with '|' escaped, so it stays inside one Markdown table cell. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

void nk_config_markdown(unsigned cmd, FILE *out)
{
    size_t i;

    fputs("| flag | environment | config key | default | meaning |\n"
          "|---|---|---|---|---|\n",
          out);
    for (i = 0; i < N_OPTS; i++) {
        const struct opt *o = &opts[i];

        if ((o->cmds & cmd) == 0)
            continue;
        fprintf(out, "| `%s%s", o->flag, o->arg ? " " : "");
        md_cell(out, o->arg ? o->arg : "");
        fprintf(out, "` | %s%s%s | ", o->env ? "`" : "",
                o->env               ? o->env
                : o->kind == OPT_VAR ? "NAME upper-cased"
                                     : "-",
                o->env ? "`" : "");
        if (o->kind == OPT_CONFIG)
            fputs("- | ", out);
        else if (o->kind == OPT_VAR)
            fputs("`var:` (mapping NAME: VALUE) | ", out);
        else
            fprintf(out, "`%s:` | ", o->flag + 2);
        md_cell(out, o->dflt);
        fputs(" | ", out);
        md_cell(out, o->help);
        fputs(" |\n", out);
    }
    fputs("| `CAPABILITY...` (arguments) | - | `capabilities:` (list of paths, relative to the "
          "file) | none | capability documents to serve; arguments replace the file's list |\n",
          out);
}

static bool parse_ulong(const char *s, long *out)
{
    char *end = NULL;
    unsigned long v;

    if (s == NULL || *s == '\0' || *s == '-')
        return false;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > (unsigned long)LONG_MAX)
        return false;
    *out = (long)v;
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "1") == 0 || strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0) {
        *out = true;
        return true;
    }
    if (strcmp(s, "0") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 ||
        *s == '\0') {
        *out = false;
        return true;
    }
    return false;
}

/* Parse ADDR:PORT, [V6ADDR]:PORT or :PORT into o. */
static bool parse_listen(const char *v, struct nk_config_listen *o)
{
    const char *host, *port;
    size_t alen;

    if (!nk_split_listen(v, &host, &alen, &port) || alen >= sizeof(o->addr) ||
        !parse_ulong(port, &o->port) || o->port > 65535)
        return false;
    memcpy(o->addr, host, alen);
    o->addr[alen] = '\0';
    o->given = true;
    return true;
}

/* One of the '|'-separated choices? */
static bool is_choice(const char *choices, const char *v)
{
    size_t n = strlen(v);
    const char *p = choices;

    while (n > 0 && p != NULL) {
        if (strncmp(p, v, n) == 0 && (p[n] == '|' || p[n] == '\0'))
            return true;
        p = strchr(p, '|');
        if (p != NULL)
            p++;
    }
    return false;
}

/* A string the config keeps (value from the config file): a copy of s[0..n), or n zero bytes
 * when s is NULL; NULL on OOM. */
static char *keep(struct nk_config *c, const char *s, size_t n)
{
    char **tmp = realloc(c->owned, (c->n_owned + 1) * sizeof(*tmp));
    char *d;

    if (tmp == NULL)
        return NULL;
    c->owned = tmp;
    d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    if (s != NULL)
        memcpy(d, s, n);
    else
        memset(d, 0, n);
    d[n] = '\0';
    c->owned[c->n_owned++] = d;
    return d;
}

void nk_config_free(struct nk_config *c)
{
    size_t i;

    for (i = 0; i < c->n_owned; i++) {
        explicit_bzero(c->owned[i], strlen(c->owned[i]));
        free(c->owned[i]);
    }
    free(c->owned);
    free(c->vars);
    free(c->files);
    memset(c, 0, sizeof(*c));
}

/* Set variable name (len n) to value; a later source replaces an earlier one. */
static bool set_var(struct nk_config *c, const char *name, size_t n, const char *value)
{
    struct nk_var *tmp;
    const char *kept;
    size_t i;

    for (i = 0; i < c->n_vars; i++)
        if (strlen(c->vars[i].name) == n && strncmp(c->vars[i].name, name, n) == 0) {
            c->vars[i].value = value;
            return true;
        }
    kept = keep(c, name, n);
    tmp = kept != NULL ? realloc(c->vars, (c->n_vars + 1) * sizeof(*tmp)) : NULL;
    if (tmp == NULL) {
        report_error("out of memory");
        return false;
    }
    c->vars = tmp;
    c->vars[c->n_vars].name = kept;
    c->vars[c->n_vars].value = value;
    c->n_vars++;
    return true;
}

/* Apply one option value (from a flag, the environment or the config file; `from` names it in
 * messages). value must outlive c. Returns false on a bad value. */
static bool apply(struct nk_config *c, const struct opt *o, const char *value, const char *from)
{
    char *base = (char *)c;
    const char *eq;

    switch (o->kind) {
    case OPT_STRING:
    case OPT_CONFIG:
        *(const char **)(void *)(base + o->off) = value;
        if (o->off == CFG(listen))
            c->listen_given = true;
        return true;
    case OPT_CHOICE:
        if (!is_choice(o->arg, value)) {
            report_error("%s: expected one of %s, got '%s'", from, o->arg, value);
            return false;
        }
        *(const char **)(void *)(base + o->off) = value;
        return true;
    case OPT_UINT:
        if (!parse_ulong(value, (long *)(void *)(base + o->off))) {
            report_error("%s: '%s' is not a non-negative integer", from, value);
            return false;
        }
        if ((o->off == CFG(rest_port) || o->off == CFG(mcp_port)) &&
            *(long *)(void *)(base + o->off) > 65535) {
            report_error("%s: port %s is out of range", from, value);
            return false;
        }
        return true;
    case OPT_BOOL:
        if (!parse_bool(value, (bool *)(void *)(base + o->off))) {
            report_error("%s: '%s' is not a boolean", from, value);
            return false;
        }
        return true;
    case OPT_LISTEN:
        if (!parse_listen(value, (struct nk_config_listen *)(void *)(base + o->off))) {
            report_error("%s: expected ADDR:PORT, [IPV6]:PORT or :PORT, got '%s'", from, value);
            return false;
        }
        return true;
    case OPT_VAR:
        eq = strchr(value, '=');
        if (eq == NULL || eq == value) {
            report_error("%s: expected NAME=VALUE, got '%s'", from, value);
            return false;
        }
        return set_var(c, value, (size_t)(eq - value), eq + 1);
    }
    return false;
}

/* ---- configuration file ------------------------------------------------------------------- */

/* "FILE:LINE:COLUMN: key" of a node. */
static void node_at(const char *file, const struct nk_node *n, const char *key, char *out,
                    size_t cap)
{
    snprintf(out, cap, "%s:%u:%u: %s", file, n->line, n->column, key);
}

/* The directory part of path ("." when none), kept in c. */
static const char *dir_of(struct nk_config *c, const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return keep(c, ".", 1);
    return keep(c, path, slash == path ? 1 : (size_t)(slash - path));
}

static bool config_capabilities(struct nk_config *c, const char *file, const struct nk_node *v)
{
    const char *dir = dir_of(c, file);
    char at[600];
    size_t i;

    node_at(file, v, "capabilities", at, sizeof(at));
    if (v->kind != NK_NODE_SEQUENCE) {
        report_error("%s: expected a list of capability file paths", at);
        return false;
    }
    free(c->files);
    c->n_files = 0;
    c->files = calloc(v->n + 1, sizeof(*c->files));
    if (c->files == NULL || dir == NULL) {
        report_error("out of memory");
        return false;
    }
    for (i = 0; i < v->n; i++) {
        const struct nk_node *p = v->items[i];
        char *path;
        size_t n;

        if (p->kind != NK_NODE_SCALAR || p->len == 0 || strlen(p->str) != p->len) {
            node_at(file, p, "capabilities", at, sizeof(at));
            report_error("%s: expected a file path", at);
            return false;
        }
        n = p->len;
        if (p->str[0] == '/') {
            path = keep(c, p->str, n);
        } else {
            path = keep(c, NULL, strlen(dir) + 1 + n);
            if (path != NULL)
                snprintf(path, strlen(dir) + 2 + n, "%s/%s", dir, p->str);
        }
        if (path == NULL) {
            report_error("out of memory");
            return false;
        }
        c->files[c->n_files++] = path;
    }
    return true;
}

/* var: NAME: VALUE. The environment variable of NAME beats the file (defaults < file < env <
 * flags), so a file value is skipped when that variable is set. */
static bool config_vars(struct nk_config *c, const char *file, const struct nk_node *v)
{
    char at[600], env[256];
    size_t i, j;

    node_at(file, v, "var", at, sizeof(at));
    if (v->kind != NK_NODE_MAPPING) {
        report_error("%s: expected a mapping of NAME: VALUE", at);
        return false;
    }
    for (i = 0; i < v->n; i++) {
        const struct nk_node *k = v->pairs[i].key, *val = v->pairs[i].value;
        const char *value, *e;

        if (val->kind != NK_NODE_SCALAR || k->len == 0 || strlen(k->str) != k->len ||
            strlen(val->str) != val->len) {
            node_at(file, val, k->str, at, sizeof(at));
            report_error("%s: expected NAME: VALUE with a text value", at);
            return false;
        }
        for (j = 0; k->str[j] != '\0' && j + 1 < sizeof(env); j++)
            env[j] = k->str[j] == '-' ? '_' : (char)toupper((unsigned char)k->str[j]);
        env[j] = '\0';
        if ((e = getenv(env)) != NULL && e[0] != '\0')
            continue;
        value = keep(c, val->str, val->len);
        if (value == NULL || !set_var(c, k->str, k->len, value))
            return false;
    }
    return true;
}

/* Read the YAML config file into c (through the spec module: positions, limits, duplicate keys).
 * Unknown keys, wrong shapes and bad values are errors naming FILE:LINE:COLUMN and the key. */
static bool config_load(struct nk_config *c, const char *file)
{
    struct nk_node *root = NULL;
    struct nk_error err;
    char *buf = NULL;
    size_t len = 0, i, j;
    bool ok = false;
    char at[600];

    memset(&err, 0, sizeof(err));
    if (nk_spec_read_file(file, &buf, &len, &err) != NK_OK) {
        report_error("cannot read the config file %s: %s", file, err.msg);
        return false;
    }
    if (nk_spec_parse(buf, len, &root, &err) != NK_OK) {
        report_error("%s:%u:%u: %s", file, err.line, err.column, err.msg);
        goto out;
    }
    if (root->kind != NK_NODE_MAPPING) {
        node_at(file, root, "(top level)", at, sizeof(at));
        report_error("%s: expected a mapping of option names to values", at);
        goto out;
    }
    for (i = 0; i < root->n; i++) {
        const struct nk_node *k = root->pairs[i].key, *v = root->pairs[i].value;
        const struct opt *o = NULL;
        const char *value;

        if (strcmp(k->str, "capabilities") == 0) {
            if (!config_capabilities(c, file, v))
                goto out;
            continue;
        }
        if (strcmp(k->str, "var") == 0) {
            if (!config_vars(c, file, v))
                goto out;
            continue;
        }
        for (j = 0; j < N_OPTS; j++)
            if (opts[j].kind != OPT_CONFIG && opts[j].kind != OPT_VAR &&
                strcmp(opts[j].flag + 2, k->str) == 0)
                o = &opts[j];
        node_at(file, k, k->str, at, sizeof(at));
        if (o == NULL) {
            report_error("%s: unknown key (expected an option name without '--', var or "
                         "capabilities; see naftikod %s --help)",
                         at, cmd_name(g_cmd));
            goto out;
        }
        if ((o->cmds & g_cmd) == 0) /* another command's key: one file may serve both */
            continue;
        if (v->kind != NK_NODE_SCALAR || strlen(v->str) != v->len || nk_node_is_null(v)) {
            report_error("%s: expected a single value", at);
            goto out;
        }
        value = keep(c, v->str, v->len);
        if (value == NULL) {
            report_error("out of memory");
            goto out;
        }
        node_at(file, v, k->str, at, sizeof(at));
        if (!apply(c, o, value, at))
            goto out;
    }
    ok = true;
out:
    nk_node_free(root);
    free(buf);
    return ok;
}

/* ---- reading every source ------------------------------------------------------------------ */

static const struct opt *find_flag(const char *arg)
{
    size_t i, flen;

    for (i = 0; i < N_OPTS; i++) {
        flen = strlen(opts[i].flag);
        if (strncmp(arg, opts[i].flag, flen) == 0 && (arg[flen] == '\0' || arg[flen] == '='))
            return &opts[i];
    }
    return NULL;
}

/* Walk the command line. With c == NULL only find --config (into *config) and --help /
 * --options-markdown; otherwise apply every flag and collect the capability arguments. Returns 0
 * to go on, -1 after printing help, 2 on a usage error. */
static int scan_args(int argc, char **argv, struct nk_config *c, const char **config)
{
    const char *v;
    int a;

    for (a = 1; a < argc; a++) {
        const char *arg = argv[a];
        const struct opt *o;
        size_t flen;

        if (c == NULL && (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)) {
            nk_config_usage(g_cmd, stdout);
            return -1;
        }
        if (c == NULL && strcmp(arg, "--options-markdown") == 0) { /* hidden: docs test */
            nk_config_markdown(g_cmd, stdout);
            return -1;
        }
        if (strcmp(arg, "--") == 0) {
            for (a++; c != NULL && a < argc; a++)
                c->files[c->n_files++] = argv[a];
            break;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            if (c != NULL)
                c->files[c->n_files++] = arg;
            continue;
        }
        o = find_flag(arg);
        if (o == NULL) {
            fprintf(stderr, "naftikod %s: unknown option '%s'\nTry 'naftikod %s --help'.\n",
                    cmd_name(g_cmd), arg, cmd_name(g_cmd));
            return 2;
        }
        if ((o->cmds & g_cmd) == 0) {
            fprintf(stderr,
                    "naftikod %s: %s is an option of 'naftikod %s' only (it has no effect "
                    "here)\nTry 'naftikod %s --help'.\n",
                    cmd_name(g_cmd), o->flag, cmd_name(o->cmds), cmd_name(g_cmd));
            return 2;
        }
        flen = strlen(o->flag);
        if (arg[flen] == '=') {
            v = arg + flen + 1;
        } else if (o->kind == OPT_BOOL) {
            v = "true";
        } else if (a + 1 < argc) {
            v = argv[++a];
        } else {
            fprintf(stderr, "naftikod %s: %s needs a value\n", cmd_name(g_cmd), o->flag);
            return 2;
        }
        if (c == NULL) {
            if (o->kind == OPT_CONFIG)
                *config = v;
        } else if (!apply(c, o, v, o->flag)) {
            return 2;
        }
    }
    return 0;
}

int nk_config_read(struct nk_config *c, unsigned cmd, bool reloading, int argc, char **argv)
{
    const char *config = NULL, *v;
    const char **cfg_files;
    size_t i, n_cfg_files;
    char from[64];
    int r;

    g_cmd = cmd;
    g_reloading = reloading;
    memset(c, 0, sizeof(*c));
    c->listen = "127.0.0.1";
    c->rest_port = -1;
    c->mcp_port = -1;
    c->drain_ms = 10000;
    c->shutdown_delay_s = 5;
    c->ready_cache_ms = NK_OPS_DEFAULT_READY_CACHE_MS;
    c->log_format = "text";
    c->rest_auth = "none";
    c->max_connections = 1024;
    c->max_header_bytes = 16384;
    c->idle_timeout_s = 30;
    c->request_timeout_s = 60;
    c->mcp_max_batch = NK_MCP_DEFAULT_MAX_BATCH;
    c->mcp_auth = "none";
    c->oauth_token_validation = "jwks";
    c->oauth_algorithms = "RS256,PS256,ES256";
    c->oauth_leeway_s = 60;
    c->oauth_jwks_refresh_s = 30;
    c->oauth_jwks_max_age_s = 3600;
    c->oauth_cache_entries = 1024;
    c->oauth_cache_ttl_s = 300;
    c->mcp_tool_prefix = "none";
    c->log_level = "info";
    r = scan_args(argc, argv, NULL, &config);
    if (r != 0)
        return r;
    if (config == NULL && (v = getenv("NAFTIKOD_CONFIG")) != NULL && v[0] != '\0')
        config = v;
    if (config != NULL) {
        c->config = config;
        if (!config_load(c, config))
            return 1;
    }
    for (i = 0; i < N_OPTS; i++) {
        if (opts[i].env == NULL || opts[i].kind == OPT_CONFIG || (opts[i].cmds & cmd) == 0 ||
            (v = getenv(opts[i].env)) == NULL || *v == '\0')
            continue;
        snprintf(from, sizeof(from), "%s", opts[i].env);
        if (!apply(c, &opts[i], v, from))
            return 2;
    }
    /* Capability arguments replace the config file's list. */
    cfg_files = c->files;
    n_cfg_files = c->n_files;
    c->files = calloc((size_t)argc + 1, sizeof(*c->files));
    c->n_files = 0;
    if (c->files == NULL) {
        c->files = cfg_files;
        report_error("out of memory");
        return 2;
    }
    r = scan_args(argc, argv, c, NULL);
    if (r == 0 && c->n_files == 0 && n_cfg_files > 0) {
        free(c->files);
        c->files = cfg_files;
        c->n_files = n_cfg_files;
    } else {
        free(cfg_files);
        c->files_from_args = true;
    }
    if (r != 0)
        return r;
    if (c->n_files == 0) {
        report_error("no capability file given (arguments or the config file's capabilities:)");
        if (!g_reloading)
            fprintf(stderr, "Try 'naftikod %s --help'.\n", cmd_name(cmd));
        return 2;
    }
    return 0;
}

/* Render option o's value in c, to tell whether a reload changed it. */
static void opt_value(const struct nk_config *c, const struct opt *o, char *out, size_t cap)
{
    const char *base = (const char *)c;
    const struct nk_config_listen *lo;
    const char *s;

    switch (o->kind) {
    case OPT_STRING:
    case OPT_CONFIG:
    case OPT_CHOICE:
        s = *(const char *const *)(const void *)(base + o->off);
        snprintf(out, cap, "%s", s != NULL ? s : "(unset)");
        return;
    case OPT_UINT:
        snprintf(out, cap, "%ld", *(const long *)(const void *)(base + o->off));
        return;
    case OPT_BOOL:
        snprintf(out, cap, "%d", *(const bool *)(const void *)(base + o->off) ? 1 : 0);
        return;
    case OPT_LISTEN:
        lo = (const struct nk_config_listen *)(const void *)(base + o->off);
        snprintf(out, cap, "%d %s %ld", lo->given ? 1 : 0, lo->addr, lo->port);
        return;
    case OPT_VAR:
        break;
    }
    out[0] = '\0';
}

void nk_config_warn_changes(const struct nk_config *running, const struct nk_config *next)
{
    char a[600], b[600];
    size_t i;

    for (i = 0; i < N_OPTS; i++) {
        if (opt_is_live(&opts[i]) || (opts[i].cmds & NK_CONFIG_SERVE) == 0)
            continue;
        opt_value(running, &opts[i], a, sizeof(a));
        opt_value(next, &opts[i], b, sizeof(b));
        if (strcmp(a, b) != 0)
            nk_log(NK_LOG_WARNING,
                   "reload: %s changed: it needs a restart (the running value stays)",
                   opts[i].flag);
    }
}

enum nk_rc nk_config_split_list(const char *list, char **copy, const char **words, size_t max,
                                size_t *n)
{
    char *tok, *save = NULL;

    *n = 0;
    *copy = strdup(list);
    if (*copy == NULL)
        return NK_ERR_NOMEM;
    for (tok = strtok_r(*copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save)) {
        if (*n == max)
            return NK_ERR_TOO_LARGE;
        words[(*n)++] = tok;
    }
    return NK_OK;
}
