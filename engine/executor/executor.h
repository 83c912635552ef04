/* engine/executor/executor.h - an executor process: registers with the driver's cluster
 * backend (engine/cluster), runs the tasks it launches on task threads with the task
 * runner (engine/exec, em_exec_run_task), serves and fetches shuffle segments, and sends
 * each task's em_task_result back (engine/executor/protocol.h, docs/cluster.md).
 *
 * SECRETS: the secret is a byte string (>= 16 bytes) every connection proves (engine/net).
 * THREADS: em_executor_run blocks its calling thread until the executor ends. */
#ifndef EMBER_EXECUTOR_H
#define EMBER_EXECUTOR_H

#include "engine/base/base.h"

typedef struct em_executor_opts {
    const char *driver_host;     /* required */
    uint16_t driver_port;        /* required */
    const char *exec_id;         /* required: a name unique in the application */
    uint32_t cores;              /* task threads; >= 1 */
    size_t memory;               /* block store + task budgets; 0 = 1 GiB */
    const char *work_dir;        /* a new ember-exec-XXXXXX is made under it; NULL = TMPDIR;
                                    removed whole on exit */
    const char *host;            /* shuffle server listen host; NULL = 127.0.0.1 */
    const char *advertise_host;  /* the host the driver and other executors are told; NULL =
                                    host (a wildcard host: this machine's name) */
    uint16_t port_lo, port_hi;   /* shuffle/block server port or range (ember.blockManager.port;
                                    engine/net em_net_listen_range); 0 = any */
    const char *secret;          /* required, >= 16 bytes */
} em_executor_opts;

/* Runs the executor until the driver connection closes (0) or a fatal error (<0, err).
 * Loads the driver's job library only after checking its sha256. Task functions are
 * resolved through the registry (engine/plan): the caller registers the engine's own
 * before (em_executor_serve in engine/api does). */
int em_executor_run(const em_executor_opts *o, em_err *err);

/* sha256 of a file as 64 lowercase hex characters + NUL into hex[65]. */
int em_executor_file_sha256(const char *path, char hex[65], em_err *err);

#endif /* EMBER_EXECUTOR_H */
