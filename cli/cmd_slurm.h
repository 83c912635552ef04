/* cli/cmd_slurm.h - `ember slurm`: a standalone cluster started through srun inside a
 * Slurm allocation for one job (cli/cmd_slurm.c, docs/slurm.md). Conventions of cli/cli.h
 * (argv[0] = sub-command, exit status 0/1/2, 128 + signal when interrupted). */
#ifndef EMBER_CLI_CMD_SLURM_H
#define EMBER_CLI_CMD_SLURM_H

#include <stdio.h>

int em__cli_slurm(int argc, char **argv);
void em__cli_slurm_help(FILE *f);

#endif /* EMBER_CLI_CMD_SLURM_H */
