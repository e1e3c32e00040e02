/* SPDX-License-Identifier: Apache-2.0 */
/* main.c: the naftikod command line: global flags and subcommand dispatch. */
#include <stdio.h>
#include <string.h>

#include "naftikod/cmd.h"
#include "naftikod/inbound.h"
#include "naftikod/common.h"

static const char usage[] =
    "Usage: naftikod COMMAND [OPTIONS] CAPABILITY...\n"
    "\n"
    "Serve Naftiko capabilities (naftiko: 1.0.0-alpha2 documents) as a REST API and an MCP\n"
    "server, dispatching every call through one shared upstream HTTP client.\n"
    "\n"
    "Commands:\n"
    "  check [--strict] FILE|DIR...\n"
    "                             validate capability documents (a directory: its *.yaml and\n"
    "                             *.yml); print every problem as FILE:LINE:COLUMN: error|\n"
    "                             warning: message; exit 0 when valid, 1 when any file has an\n"
    "                             error, 2 on a usage error\n"
    "  serve [OPTIONS] FILE|DIR...\n"
    "                             load the capabilities and serve every REST and MCP adapter\n"
    "                             they expose, in the foreground (see 'naftikod serve --help')\n"
    "  mcp-stdio [OPTIONS] FILE...\n"
    "                             speak MCP on stdin/stdout for desktop clients (logs to\n"
    "                             stderr; see 'naftikod mcp-stdio --help')\n"
    "  hash-token [NAME]          read a caller token on stdin, print its line for the\n"
    "                             --auth-tokens file (the token is never printed)\n"
    "  probe [URL]                GET URL (default http://127.0.0.1:8091/healthz); exit 0 on\n"
    "                             a 2xx answer, 1 otherwise (a HEALTHCHECK without curl)\n"
    "\n"
    "Options:\n"
    "  -h, --help                 show this help and exit\n"
    "  -V, --version              show the version and exit\n"
    "\n"
    "Documentation: docs/ in the source tree.\n";

int main(int argc, char **argv)
{
    const char *cmd;

    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("naftikod %s\n", NK_VERSION);
        return 0;
    }
    if (strcmp(cmd, "check") == 0)
        return nk_cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "serve") == 0)
        return nk_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "mcp-stdio") == 0)
        return nk_cmd_mcp_stdio(argc - 1, argv + 1);
    if (strcmp(cmd, "hash-token") == 0)
        return nk_cmd_hash_token(argc - 1, argv + 1);
    if (strcmp(cmd, "probe") == 0)
        return nk_cmd_probe(argc - 1, argv + 1);
    fprintf(stderr, "naftikod: unknown command '%s'\nTry 'naftikod --help'.\n", cmd);
    return 2;
}
