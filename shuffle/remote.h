/* shuffle/remote.h - shuffle segments between processes: the fetcher a reduce task uses for
 * map outputs at other executors' shuffle servers, and the serving side of a fetch.
 *
 * SPLIT OF WORK. This module owns what is the shuffle's: where a location's segment lies
 * (this process's own shuffle directory, or a peer's "host:port"), one connection per peer
 * (engine/net, made on first use, forgotten when it closes), reading a segment from local
 * files and handing it out in chunks, and the fetch-failure contract (every failure but
 * EM_ENOMEM becomes EM_EFETCH naming shuffle, map, reduce and location, so the scheduler
 * recomputes the map output). The process that owns the connections and their protocol
 * (the executor, engine/executor) supplies how one request travels (`request`) and how a
 * served chunk is sent (`em_shuffle_chunk_fn`).
 * THREADS: the fetcher is called by task threads concurrently; em_shuffle_remote_forget
 * from the network thread; em_shuffle_serve_segment from any thread. */
#ifndef EMBER_SHUFFLE_REMOTE_H
#define EMBER_SHUFFLE_REMOTE_H

#include "engine/net/net.h"
#include "shuffle/shuffle.h"

/* Sends a fetch of segment (sid, mid, reduce) on connection conn and appends the reply's
 * bytes to out, failing (EM_EPROTO) when they would exceed `size` bytes, the size the map
 * status told; 0 or <0 (err set). Task threads, concurrently. */
typedef int (*em_shuffle_request_fn)(void *ud, em_conn_id conn, uint32_t sid, uint32_t mid,
                                     uint32_t reduce, uint64_t size, em_vbuf *out,
                                     em_err *err);

typedef struct em_shuffle_remote_opts {
    em_net *net;                 /* borrowed; outlives the object */
    const char *self_loc;        /* this process's shuffle server "host:port" (copied) */
    const char *dir;             /* this process's shuffle directory (copied) */
    em_shuffle_request_fn request;
    void *ud;
} em_shuffle_remote_opts;

typedef struct em_shuffle_remote em_shuffle_remote;

em_shuffle_remote *em_shuffle_remote_new(const em_shuffle_remote_opts *o);   /* aborts on OOM */
void em_shuffle_remote_free(em_shuffle_remote *r);                          /* NULL ok */
/* The fetcher reading segments through r (borrowed: valid while r lives). A location equal
 * to self_loc is read from dir directly. */
em_fetcher em_shuffle_remote_fetcher(em_shuffle_remote *r);
/* Connection conn closed: the next fetch from its peer connects again. */
void em_shuffle_remote_forget(em_shuffle_remote *r, em_conn_id conn);

/* Serving: one chunk of a segment (p, n bytes; last marks the final one, possibly empty). */
typedef int (*em_shuffle_chunk_fn)(void *ud, const uint8_t *p, size_t n, bool last,
                                   em_err *err);
/* Reads segment (sid, mid, reduce) under dir and hands it to fn in chunks of at most
 * `chunk` bytes (an empty segment is one empty last chunk). Returns 0, the read error
 * (EM_EFETCH naming ids and path; fn not called), or fn's error (the rest not sent). */
int em_shuffle_serve_segment(const char *dir, uint32_t sid, uint32_t mid, uint32_t reduce,
                             size_t chunk, em_shuffle_chunk_fn fn, void *ud, em_err *err);

#endif /* EMBER_SHUFFLE_REMOTE_H */
