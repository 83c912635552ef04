/* mllib/linalg/gen.h - `ember gen blobs` and `ember gen sparse` (mllib/linalg/gen.c):
 * deterministic dense Gaussian blobs (CSV or LIBSVM) and sparse LIBSVM matrices. */
#ifndef EMBER_MLLIB_LINALG_GEN_H
#define EMBER_MLLIB_LINALG_GEN_H

#include <stdio.h>

#include "engine/base/base.h"

/* argv[0] = "blobs" or "sparse". Exit status 0 ok, 1 failure, 2 bad usage. */
int em_gen_blobs_cli_main(int argc, char **argv);
void em_gen_blobs_cli_help(FILE *f);

#endif /* EMBER_MLLIB_LINALG_GEN_H */
