/* SPDX-License-Identifier: Apache-2.0 */
/* cmd.h: the subcommands main.c dispatches to. Each takes the arguments after the subcommand
 * name (argv[0] is the subcommand) and returns the process exit status. */
#ifndef NAFTIKOD_CMD_H
#define NAFTIKOD_CMD_H

/* naftikod check [--strict] FILE...: 0 all valid, 1 problems found, 2 usage error. */
int nk_cmd_check(int argc, char **argv);
/* naftikod serve [options] CAPABILITY...: runs in the foreground until SIGTERM/SIGINT. */
int nk_cmd_serve(int argc, char **argv);
/* naftikod mcp-stdio [options] CAPABILITY...: MCP over stdin/stdout. */
int nk_cmd_mcp_stdio(int argc, char **argv);
/* naftikod probe [URL]: one HTTP GET (default http://127.0.0.1:8091/healthz); 0 on a 2xx
 * answer, 1 on any other answer or none, 2 on a usage error. */
int nk_cmd_probe(int argc, char **argv);

#endif
