/* engine/exec/mappart.c - MAP_PARTITIONS: runs the partition function over its parent's
 * iterator and streams what it emits, in bounded memory whoever consumes it.
 *
 * DESIGN: the function is called once per partition and emits as it goes, so its output
 * cannot be pulled record by record from inside the call. Two paths:
 *   - drained (em__iter_drain: map sinks, caching, a fused map above): the function's
 *     emitter is in push mode and each record goes straight to the consumer, nothing is
 *     buffered (as fuse.c does for map chains);
 *   - pulled (em_iter_next: result sinks, joins, glom, a user's partition function
 *     reading it): the function runs on a producer thread that strictly alternates with
 *     the consumer like a coroutine. It buffers at most CHUNK bytes of records (plus one
 *     record) in an emitter, then hands over and waits until the consumer has read them
 *     all. Exactly one of the two threads runs at any time (the turn flag under mu), so
 *     the task's state (metrics, broadcasts, the parent iterator) is used by one thread at
 *     a time, as before, and memory stays bounded by CHUNK + one record.
 * If the consumer frees the iterator early (take, first), em_emit fails with EM_ECANCELED
 * in the function, which returns; the thread is joined in mp_free.
 * A node with a declared width (map_partitions_fixed) checks every emitted record: a pair
 * or a record of another size fails the task with EM_EINVAL naming the node. */
#include <pthread.h>
#include <string.h>

#include "engine/exec/exec_int.h"

#define CHUNK ((size_t)1 << 20)   /* pull mode: bytes buffered before handing over */

typedef struct mp_iter {
    em_iter base;
    const em_plan_node *n;
    em_iter *parent;
    em_partition_fn fn;
    em_fn_ctx ctx;
    uint32_t part;
    bool started;             /* the function has been called (either path) */
    /* push path */
    em__push_fn sink;
    em__push_run_fn sink_run;   /* optional: the sink takes runs of FIXED records */
    void *sink_ud;
    /* First failure of an emit (a wrong width; push: the consumer's error too), sticky: a
     * function that ignores em_emit's error still fails the task. */
    int frc;
    bool fsink;               /* frc is the consumer's own error, already described */
    em_err ferr;
    /* pull path: fields below mu are guarded by it */
    em_emitter out;           /* records of the current chunk (buffered) */
    size_t off;
    pthread_t th;
    bool have_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool producer_turn;       /* who may run: the producer thread, or the consumer */
    bool done;                /* the function returned; fn_rc / fn_err hold its result */
    bool stop;                /* the consumer is gone: emits fail */
    int fn_rc;
    em_err fn_err;
} mp_iter;

int em__check_width(const em_plan_node *n, const em_rec *r, em_err *err)
{
    if (EM_LIKELY(!r->key.p && r->val.n == n->width))
        return 0;
    const char *name = n->name ? n->name : em_op_name(n->op);
    if (r->key.p)
        return em_err_set(err, EM_EINVAL, "%s emitted a pair (key %zu, value %zu bytes) where "
                          "plain records of width %u were declared", name, r->key.n, r->val.n,
                          n->width);
    return em_err_set(err, EM_EINVAL, "%s emitted a record of %zu bytes where width %u was "
                      "declared", name, r->val.n, n->width);
}

/* ---------------------------------------------------------------- push (drained) */

/* Records a sticky failure and returns its code. */
static int fail(mp_iter *m, int rc, bool from_sink, em_err *err)
{
    if (!m->frc) {
        m->frc = rc;
        m->fsink = from_sink;
        em_err_copy(&m->ferr, err);
    }
    return m->frc;
}

/* The function's result, with a sticky failure first. */
static int fn_result(mp_iter *m, int rc, em_err *err)
{
    if (m->frc) {
        em_err_copy(err, &m->ferr);
        return m->fsink ? m->frc : em__node_err(m->n, err);
    }
    return rc < 0 ? em__node_err(m->n, err) : 0;
}

static int push_out(void *ud, const em_rec *r, em_err *err)
{
    mp_iter *m = ud;
    int rc;
    if (EM_UNLIKELY(m->frc))
        return m->frc;
    if (m->n->width && (rc = em__check_width(m->n, r, err)) < 0)
        return fail(m, rc, false, err);
    if ((rc = m->sink(m->sink_ud, r, err)) < 0)
        return fail(m, rc, true, err);
    return 0;
}

/* A run from em_emit_fixed: the width checked once, the run handed on whole. */
static int push_out_run(void *ud, const uint8_t *p, uint32_t width, size_t n, em_err *err)
{
    mp_iter *m = ud;
    int rc;
    if (EM_UNLIKELY(m->frc))
        return m->frc;
    if (m->n->width && width != m->n->width) {
        em_rec r = {em_slice_make(NULL, 0), em_slice_make(p, width)};
        return fail(m, em__check_width(m->n, &r, err), false, err);
    }
    if ((rc = m->sink_run(m->sink_ud, p, width, n, err)) < 0)
        return fail(m, rc, true, err);
    return 0;
}

static int mp_drain(em_iter *it, em__push_fn fn, em__push_run_fn run, void *ud, em_err *err)
{
    mp_iter *m = (mp_iter *)it;
    em_rec r;
    int rc;
    if (m->started) {   /* pulled before: the producer thread goes on */
        while ((rc = em_iter_next(it, &r, err)) == 1)
            if ((rc = fn(ud, &r, err)) < 0)
                return rc;
        return rc;
    }
    m->started = true;
    m->done = true;
    em_emitter e;
    em__emitter_init(&e);
    e.push = push_out;
    e.push_run = run ? push_out_run : NULL;
    e.push_ud = m;
    m->sink = fn;
    m->sink_run = run;
    m->sink_ud = ud;
    rc = m->fn(&m->ctx, m->part, m->parent, &e, err);
    return fn_result(m, rc, err);
}

/* ---------------------------------------------------------------- pull (producer thread) */

/* Gives the turn to the other side and waits until it comes back (mu held). */
static void hand_over(mp_iter *m, bool to_producer)
{
    m->producer_turn = to_producer;
    pthread_cond_broadcast(&m->cv);
    while (m->producer_turn == to_producer && !(to_producer && m->done))
        pthread_cond_wait(&m->cv, &m->mu);
}

/* Producer side of em_emit: buffers the record; a full chunk goes to the consumer. */
static int pull_out(void *ud, const em_rec *r, em_err *err)
{
    mp_iter *m = ud;
    int rc;
    if (m->stop)
        return em_err_set(err, EM_ECANCELED, "the consumer stopped reading");
    if (EM_UNLIKELY(m->frc))
        return m->frc;
    if (m->n->width && (rc = em__check_width(m->n, r, err)) < 0)
        return fail(m, rc, false, err);
    if ((rc = em_emit(&m->out, r, err)) < 0)
        return fail(m, rc, false, err);
    if (m->out.buf.len < CHUNK)
        return 0;
    pthread_mutex_lock(&m->mu);
    hand_over(m, false);
    bool stop = m->stop;
    pthread_mutex_unlock(&m->mu);
    return stop ? em_err_set(err, EM_ECANCELED, "the consumer stopped reading") : 0;
}

static void *producer_main(void *arg)
{
    mp_iter *m = arg;
    em_emitter e;
    pthread_mutex_lock(&m->mu);
    while (!m->producer_turn)
        pthread_cond_wait(&m->cv, &m->mu);
    pthread_mutex_unlock(&m->mu);
    em__emitter_init(&e);
    e.push = pull_out;
    e.push_ud = m;
    int rc = m->stop ? 0 : m->fn(&m->ctx, m->part, m->parent, &e, &m->fn_err);
    pthread_mutex_lock(&m->mu);
    m->fn_rc = rc < 0 ? rc : 0;
    m->done = true;
    m->producer_turn = false;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static int start_producer(mp_iter *m, em_err *err)
{
    m->started = true;
    if (pthread_create(&m->th, NULL, producer_main, m) != 0) {
        m->done = true;
        return em_err_set(err, EM_ENOMEM, "map_partitions (rdd %u): cannot start the "
                          "producer thread", m->n->id);
    }
    m->have_thread = true;
    return 0;
}

static int mp_next(em_iter *it, em_rec *r, em_err *err)
{
    mp_iter *m = (mp_iter *)it;
    int rc;
    if (!m->started && (rc = start_producer(m, err)) < 0)
        return rc;
    for (;;) {
        if (em__emitter_read(&m->out, &m->off, r))
            return 1;
        em__emitter_reset(&m->out);
        m->off = 0;
        pthread_mutex_lock(&m->mu);
        if (!m->done)
            hand_over(m, true);
        bool done = m->done && m->out.buf.len == 0;
        pthread_mutex_unlock(&m->mu);
        if (!done)
            continue;
        em_err_copy(err, &m->fn_err);
        return fn_result(m, m->fn_rc, err);
    }
}

static void mp_free(em_iter *it)
{
    mp_iter *m = (mp_iter *)it;
    if (m->have_thread) {
        pthread_mutex_lock(&m->mu);
        m->stop = true;
        while (!m->done)
            hand_over(m, true);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->th, NULL);
    }
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    em__iter_free(m->parent);
    em__emitter_destroy(&m->out);
    em_free(m);
}

int em__map_partitions_new(em_task *t, const em_plan_node *n, uint32_t part, em_iter *parent,
                           em_iter **out, em_err *err)
{
    em_any_fn f;
    int rc = em__node_fn(n, n->fn, EM_FN_PARTITION, &f, err);
    if (rc < 0)
        return rc;
    mp_iter *m = em_xcalloc(1, sizeof *m);
    m->base.next = mp_next;
    m->base.drain = mp_drain;
    m->base.free = mp_free;
    m->n = n;
    m->parent = parent;
    m->fn = (em_partition_fn)f;
    m->ctx = (em_fn_ctx){em_slice_make(n->blob, n->blob_len), t};
    m->part = part;
    m->fn_err = (em_err)EM_ERR_INIT;
    m->ferr = (em_err)EM_ERR_INIT;
    em__emitter_init(&m->out);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    *out = &m->base;
    return 0;
}
