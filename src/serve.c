/* SPDX-License-Identifier: Apache-2.0 */
/* serve.c: placeholder until the subcommand lands (replaced by its module's owner). */
#include <stdio.h>

#include "naftikod/cmd.h"

int nk_cmd_serve(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "naftikod: '%s' is not implemented yet\n", argv[0]);
    return 2;
}
