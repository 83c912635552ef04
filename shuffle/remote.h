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

/* Serving: sends one chunk of the segment asked for by request id on conn (p, n bytes;
 * last marks the final one, possibly empty), or the error that stops serving it. */
typedef int (*em_shuffle_send_fn)(void *ud, em_conn_id conn, uint64_t id, const uint8_t *p,
                                  size_t n, bool last, em_err *err);
typedef void (*em_shuffle_fail_fn)(void *ud, em_conn_id conn, uint64_t id, const em_err *why);

typedef struct em_shuffle_remote_opts {
    em_net *net;                 /* borrowed; outlives the object */
    const char *self_loc;        /* this process's shuffle server "host:port" (copied) */
    const char *dir;             /* this process's shuffle directory (copied) */
    em_shuffle_request_fn request;
    em_shuffle_send_fn send;     /* serving (em_shuffle_serve_request) */
    em_shuffle_fail_fn fail;
    size_t chunk;                /* segment bytes per send call */
    void *ud;
} em_shuffle_remote_opts;

typedef struct em_shuffle_remote em_shuffle_remote;

em_shuffle_remote *em_shuffle_remote_new(const em_shuffle_remote_opts *o);   /* aborts on OOM */
void em_shuffle_remote_free(em_shuffle_remote *r);                          /* NULL ok */
/* The fetcher reading segments through r (borrowed: valid while r lives). A location equal
 * to self_loc is read from dir directly. */
em_fetcher em_shuffle_remote_fetcher(em_shuffle_remote *r);
/* SERVING, BOUNDED PER CONNECTION. A peer's fetch request (id, segment) waits in conn's
 * queue, and segments are served in arrival order, each only while conn's send queue is
 * under the net's drain mark (em_net_drain_mark); em_shuffle_serve_drain, called from the
 * net's on_drain, serves on. So a peer holds at most one segment's bytes queued beyond the
 * mark however many fetches it sends, and at most EM_SHUFFLE_SERVE_MAX requests wait: one
 * more is EM_EPROTO (an honest peer has one fetch in flight per task thread; the caller
 * closes the connection). A segment that cannot be read goes to opts.fail. Network thread
 * only (with em_shuffle_remote_forget, which drops conn's queue). */
#define EM_SHUFFLE_SERVE_MAX 256u
int em_shuffle_serve_request(em_shuffle_remote *r, em_conn_id conn, uint64_t id, uint32_t sid,
                             uint32_t mid, uint32_t reduce, em_err *err);
void em_shuffle_serve_drain(em_shuffle_remote *r, em_conn_id conn);
/* Requests waiting in conn's queue (tests). Network thread. */
uint32_t em_shuffle_serve_waiting(em_shuffle_remote *r, em_conn_id conn);
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
