/* engine/cluster/spawn.h - starting executor processes (engine/cluster internal). */
#ifndef EMBER_CLUSTER_SPAWN_H
#define EMBER_CLUSTER_SPAWN_H

#include <sys/types.h>

#include "engine/base/base.h"

typedef struct em__spawn_args {
    const char *bin;         /* the ember command */
    const char *driver;      /* "host:port" */
    const char *exec_id;
    uint32_t cores;
    const char *memory;      /* NULL = default */
    const char *work_dir;    /* NULL = default */
    const char *secret;      /* passed as EMBER_SECRET in the environment */
} em__spawn_args;

/* The ember command: given, else $EMBER_BIN, else /proc/self/exe when it is named ember,
 * else the build's then the install's path. NULL when none exists. Caller frees. */
char *em__ember_bin(const char *given);
int em__spawn_executor(const em__spawn_args *a, pid_t *pid, em_err *err);
/* "exited with status 1", "was killed by signal 9" for a waitpid status. */
void em__describe_exit(int status, char *buf, size_t n);

#endif /* EMBER_CLUSTER_SPAWN_H */
