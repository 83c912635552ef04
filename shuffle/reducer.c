/* shuffle/reducer.c - reduce side: aggregate, group or sort KV records within a memory
 * budget, spilling sorted runs and merging them at the end.
 *
 * DESIGN
 *   - AGGREGATE keeps a combining hash map (aggmap.c, partition 0) of key -> combiner. Past
 *     the budget its entries are sorted by key and written as a run (one record per key),
 *     and the map is reset.
 *   - GROUP and SORT append records to one buffer (`recs`: key bytes then value bytes) with
 *     an index array (`ix`) carrying an 8-byte big-endian key prefix, so most comparisons
 *     of the sort are one integer compare. Past the budget the index is sorted by key
 *     (ties in arrival order, so the sort is stable) and the records are written as a run.
 *   - finish(): without spills the output comes straight from memory (sorted index, or the
 *     map's records in table order). With spills the in-memory remainder is sorted and
 *     becomes the last run (kept in memory), and the runs are merged with a binary heap keyed
 *     by (key, run number); equal keys across runs are combined: AGGREGATE with
 *     merge_combiners, GROUP by concatenating values in run order (arrival order, since runs
 *     are written in arrival order and each run's sort is stable). SORT emits records as
 *     they come off the heap. The run files are closed and removed when the merge ends.
 *   - Runs are read back one block at a time (runs.c).
 *   - GROUP output is built on a value stream (em_reducer_next_group / _value): a group is
 *     the run of equal keys at the heap top (or in the sorted buffer), and its values come
 *     off one at a time. em_reducer_next folds them into one em_list; while merging, once
 *     that list would pass the budget, the remaining values go to a spill list (budget 0:
 *     straight to a temporary file) and the list is completed at its exact size when the
 *     group ends, reading the file back block by block. So a hot key's values are in
 *     memory once, at emission (plus at most `budget` bytes of them during the merge),
 *     never twice, and never in a buffer grown by doubling. A streaming consumer (a join)
 *     calls next_group / next_value itself and never holds a group at all.
 * LIMITATIONS (out-of-core): a GROUP record needs its key's values in memory once (the
 * em_list contract: Spark's groupByKey has the same limit), and a key's combiner is held
 * whole. Runs are merged with a bounded fan-in (merge_fan_in: 1/16 of the open-file
 * limit, 2..64): while more runs than that exist, every fan-in consecutive runs are
 * merged into one (merge_level), so a tiny budget's thousands of runs cost merge levels,
 * not "Too many open files". Each run open in a merge holds a file and one decoded block (~1 MiB). */
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <unistd.h>

#include "shuffle/shuffle_int.h"

#define DEFAULT_BUDGET ((size_t)64 << 20)

/* One buffered GROUP/SORT record. `at` is an offset into recs while adding and becomes a
 * pointer once the buffer stops moving (sorting, output). */
typedef struct rec_ix {
    uint64_t prefix;       /* first 8 key bytes, big-endian, zero-padded */
    union {
        size_t off;
        const uint8_t *p;
    } at;
    uint32_t klen;
    uint32_t vlen;
} rec_ix;

/* One input of the final merge: a run file, or the sorted in-memory remainder. */
typedef struct run_src {
    bool mem;
    bool has;              /* cur is valid */
    size_t pos;            /* mem: next index */
    em__run_reader rd;     /* file */
    em_rec cur;
} run_src;

struct em_reducer {
    em_reducer_opts o;
    size_t budget;
    int level;
    em_vbuf recs;                 /* GROUP/SORT record bytes */
    rec_ix *ix;
    size_t nix, cap_ix;
    em__aggmap agg;               /* AGGREGATE */
    char **runs;                  /* run file paths, in spill order */
    size_t nruns, cap_runs;
    bool finished, merging, poisoned;
    size_t pos;                   /* no-spill output position */
    run_src *srcs;
    size_t nsrcs;
    uint32_t *heap;               /* indices into srcs */
    size_t nheap;
    long pending;                 /* SORT merge: source to advance before the next pick */
    em_vbuf key, val, tmp;        /* GROUP/AGGREGATE output being assembled */
    /* GROUP value stream. gkey: the current group's key (into key while merging, into recs
     * otherwise). grp_active: the group may have values left. grp_advance: merging, the heap
     * top's record was handed out as a value; advance it before looking again. */
    em_slice gkey;
    bool grp_active, grp_advance;
    em_spill_list *hot;           /* GROUP: values of a group past the budget (made lazily) */
    size_t hot_bytes;             /* their em_list bytes (4 + length each) */
    em_reducer_stats st;
    em_err perr;
};

em_reducer *em_reducer_new(const em_reducer_opts *o, em_err *err)
{
    em_reducer *r;

    if (o->kind != EM_REC_KV || !o->spill_dir ||
        (o->mode != EM_REDUCE_AGGREGATE && o->mode != EM_REDUCE_GROUP &&
         o->mode != EM_REDUCE_SORT)) {
        em_err_set(err, EM_EINVAL, "reducer: needs KV input, a spill dir and a valid mode");
        return NULL;
    }
    if (o->mode == EM_REDUCE_AGGREGATE &&
        (!o->combiner || !o->combiner->ops || !o->combiner->ops->merge_combiners ||
         (!o->inputs_are_combiners && !o->combiner->ops->merge_value))) {
        em_err_set(err, EM_EINVAL, "reducer: AGGREGATE needs merge_combiners (and merge_value "
                   "unless inputs are combiners)");
        return NULL;
    }
    r = em_calloc(1, sizeof *r);
    if (!r || !(r->o.spill_dir = em_strdup(o->spill_dir))) {
        em_free(r);
        em_err_set(err, EM_ENOMEM, "reducer: out of memory");
        return NULL;
    }
    const char *dir = r->o.spill_dir;
    r->o = *o;
    r->o.spill_dir = dir;
    r->budget = o->mem_budget ? o->mem_budget : DEFAULT_BUDGET;
    r->level = o->zstd_level;   /* 0 = 1: em_block_encode */
    r->pending = -1;
    em_vbuf_init(&r->recs);
    em_vbuf_init(&r->key);
    em_vbuf_init(&r->val);
    em_vbuf_init(&r->tmp);
    em__aggmap_init(&r->agg, o->combiner, o->inputs_are_combiners);
    return r;
}

/* ---------------------------------------------------------------- ordering */

static uint64_t key_prefix(em_slice k)
{
    uint8_t b[8] = {0};
    if (k.n)
        memcpy(b, k.p, k.n < 8 ? k.n : 8);
    return em_load_be64(b);
}

static int cmp_ix_asc(const void *a, const void *b)
{
    const rec_ix *x = a, *y = b;
    if (x->prefix != y->prefix)
        return x->prefix < y->prefix ? -1 : 1;
    int c = em_slice_cmp(em_slice_make(x->at.p, x->klen), em_slice_make(y->at.p, y->klen));
    if (c)
        return c;
    return x->at.p < y->at.p ? -1 : x->at.p > y->at.p;   /* arrival order: stable */
}

static int cmp_ix_desc(const void *a, const void *b)
{
    const rec_ix *x = a, *y = b;
    if (x->prefix != y->prefix)
        return x->prefix < y->prefix ? 1 : -1;
    int c = em_slice_cmp(em_slice_make(y->at.p, y->klen), em_slice_make(x->at.p, x->klen));
    if (c)
        return c;
    return x->at.p < y->at.p ? -1 : x->at.p > y->at.p;
}

/* Byte d of an index entry's radix key: d = 0 its key length (0..8), d = 1..8 byte d - 1
 * of the prefix from the least significant; complemented for a descending sort. */
static inline unsigned radix_digit(const rec_ix *x, unsigned d, unsigned flip)
{
    unsigned b = d == 0 ? x->klen : (unsigned)(x->prefix >> (8 * (d - 1))) & 0xffu;
    return (b ^ flip) & 0xffu;
}

/* WHY a radix sort: when every key of the buffer has at most 8 bytes, the prefix and the
 * length are the whole key (two such keys with one prefix differ only in trailing zero
 * bytes, and the shorter sorts first), so the order of cmp_ix_asc / cmp_ix_desc is that of
 * (prefix, klen) ascending or descending, ties in arrival order: a stable LSD radix sort
 * on those 9 bytes, passing over only the bytes that are not the same in every entry.
 * Keys of a few bytes with many records each (an int key: a cogroup of ratings by user)
 * made qsort spend its comparisons on ties, each a call, a memcmp and a pointer compare:
 * at scale 1 the implicit run's ranking metrics spent a fifth of their CPU in that sort.
 * Takes a scratch copy of the index (qsort's merge sort allocates as much); false (and
 * nothing done) when a key is longer or memory is short. */
static bool radix_sort_ix(em_reducer *r)
{
    size_t n = r->nix;
    for (size_t i = 0; i < n; i++)
        if (r->ix[i].klen > 8)
            return false;
    rec_ix *tmp = em_malloc(n * sizeof *tmp);
    size_t(*cnt)[256] = em_calloc(9, sizeof *cnt);
    if (!tmp || !cnt) {
        em_free(tmp);
        em_free(cnt);
        return false;
    }
    const unsigned flip = r->o.descending ? 0xffu : 0;
    for (size_t i = 0; i < n; i++)
        for (unsigned d = 0; d < 9; d++)
            cnt[d][radix_digit(&r->ix[i], d, flip)]++;
    rec_ix *src = r->ix, *dst = tmp;
    for (unsigned d = 0; d < 9; d++) {
        if (cnt[d][radix_digit(&src[0], d, flip)] == n)
            continue;   /* one value in every entry: the pass would not move anything */
        size_t at = 0;
        for (unsigned b = 0; b < 256; b++) {   /* counts become write cursors */
            size_t c = cnt[d][b];
            cnt[d][b] = at;
            at += c;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[d][radix_digit(&src[i], d, flip)]++] = src[i];
        rec_ix *t = src;
        src = dst;
        dst = t;
    }
    if (src != r->ix)
        memcpy(r->ix, src, n * sizeof *src);
    em_free(tmp);
    em_free(cnt);
    return true;
}

/* Sorts the buffered records; afterwards ix[].at holds pointers. */
static void sort_buffer(em_reducer *r)
{
    for (size_t i = 0; i < r->nix; i++)
        r->ix[i].at.p = r->recs.data + r->ix[i].at.off;
    if (r->nix > 1 && !radix_sort_ix(r))
        qsort(r->ix, r->nix, sizeof *r->ix, r->o.descending ? cmp_ix_desc : cmp_ix_asc);
}

static size_t mem_used(const em_reducer *r)
{
    if (r->o.mode == EM_REDUCE_AGGREGATE)
        return em__aggmap_mem(&r->agg);
    return r->recs.len + r->nix * sizeof(rec_ix);
}

/* ---------------------------------------------------------------- spilling */

static int add_run_path(em_reducer *r, const char *path, em_err *err)
{
    char **p = em_arr_grow(r->runs, &r->cap_runs, r->nruns + 1, sizeof *p);
    if (!p)
        return em_err_set(err, EM_ENOMEM, "reducer: out of memory for %zu runs", r->nruns + 1);
    r->runs = p;
    if (!(r->runs[r->nruns] = em_strdup(path)))
        return em_err_set(err, EM_ENOMEM, "reducer: out of memory");
    r->nruns++;
    return 0;
}

/* Writes the in-memory records, sorted, as a new run and empties memory. */
static int spill(em_reducer *r, em_err *err)
{
    em__run_writer w;
    int rc;

    if ((rc = em__run_writer_open(&w, r->o.spill_dir, r->level, err)) < 0)
        return rc;
    if (r->o.mode == EM_REDUCE_AGGREGATE) {
        rc = em__aggmap_sort(&r->agg, err);
        for (size_t i = 0; i < r->agg.tab.n && rc == 0; i++) {
            uint32_t part;
            em_rec rec;
            em__aggmap_at(&r->agg, i, &part, &rec);
            rc = em__run_writer_add(&w, rec.key, rec.val, err);
        }
    } else {
        sort_buffer(r);
        for (size_t i = 0; i < r->nix && rc == 0; i++) {
            const rec_ix *x = &r->ix[i];
            rc = em__run_writer_add(&w, em_slice_make(x->at.p, x->klen),
                                    em_slice_make(x->at.p + x->klen, x->vlen), err);
        }
    }
    if (rc == 0)
        rc = em__run_writer_close(&w, err);
    if (rc == 0 && (rc = add_run_path(r, w.path, err)) < 0)
        unlink(w.path);
    if (rc < 0) {
        em__run_writer_abort(&w);
        return rc;
    }
    r->st.spill_count++;
    r->st.spill_bytes += w.bytes;
    em__aggmap_reset(&r->agg);
    r->nix = 0;
    em_vbuf_clear(&r->recs);
    return 0;
}

/* ---------------------------------------------------------------- input */

static int buffer_rec(em_reducer *r, const em_rec *rec, em_err *err)
{
    size_t n = rec->key.n + rec->val.n;

    if (EM_UNLIKELY(r->nix == r->cap_ix)) {
        rec_ix *ix = em_arr_grow(r->ix, &r->cap_ix, r->nix + 1, sizeof *ix);
        if (!ix)
            return em_err_set(err, EM_ENOMEM, "reducer: out of memory for %zu records",
                              r->nix + 1);
        r->ix = ix;
    }
    if (em_vbuf_reserve(&r->recs, n) < 0)
        return em_err_set(err, EM_ENOMEM, "reducer: out of memory buffering %zu bytes", n);
    rec_ix *x = &r->ix[r->nix++];
    x->prefix = key_prefix(rec->key);
    x->at.off = r->recs.len;
    x->klen = (uint32_t)rec->key.n;
    x->vlen = (uint32_t)rec->val.n;
    if (rec->key.n)
        memcpy(r->recs.data + r->recs.len, rec->key.p, rec->key.n);
    if (rec->val.n)
        memcpy(r->recs.data + r->recs.len + rec->key.n, rec->val.p, rec->val.n);
    r->recs.len += n;
    return 0;
}

static int add_one(em_reducer *r, const em_rec *rec, em_err *err)
{
    int rc;

    if (r->o.mode == EM_REDUCE_AGGREGATE)
        rc = em__aggmap_add(&r->agg, 0, rec->key, rec->val, err);
    else
        rc = buffer_rec(r, rec, err);
    if (rc < 0)
        return rc;
    r->st.records_in++;
    if (mem_used(r) > r->budget)
        return spill(r, err);
    return 0;
}

static int fail(em_reducer *r, int rc, em_err *err)
{
    r->poisoned = true;
    if (r->hot)
        em_spill_list_reset(r->hot);   /* removes a hot group's file now, not at free */
    em_err_copy(err, &r->perr);
    return rc;
}

static int refuse(em_reducer *r, em_err *err)
{
    if (r->poisoned)
        return em_err_copy(err, &r->perr);
    return em_err_set(err, EM_EINVAL, "reducer: input already finished");
}

int em_reducer_add(em_reducer *r, const em_rec *rec, em_err *err)
{
    if (r->poisoned || r->finished)
        return refuse(r, err);
    int rc = add_one(r, rec, &r->perr);
    return rc < 0 ? fail(r, rc, err) : 0;
}

int em_reducer_add_batch(em_reducer *r, const em_batch *b, em_err *err)
{
    em_batch_iter it;
    em_rec rec;

    if (r->poisoned || r->finished)
        return refuse(r, err);
    if (em_batch_kind(b) != EM_REC_KV)
        return fail(r, em_err_set(&r->perr, EM_EINVAL, "reducer: batch of kind %d, want KV",
                                  (int)em_batch_kind(b)), err);
    em_batch_iter_init(&it, b);
    while (em_batch_iter_next(&it, &rec)) {
        int rc = add_one(r, &rec, &r->perr);
        if (rc < 0)
            return fail(r, rc, err);
    }
    return 0;
}

/* ---------------------------------------------------------------- merge */

static int src_cmp(const em_reducer *r, uint32_t a, uint32_t b)
{
    int c = em_slice_cmp(r->srcs[a].cur.key, r->srcs[b].cur.key);
    if (r->o.descending)
        c = -c;
    return c ? c : (a < b ? -1 : 1);
}

static void sift_down(em_reducer *r, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < r->nheap && src_cmp(r, r->heap[l], r->heap[m]) < 0)
            m = l;
        if (l + 1 < r->nheap && src_cmp(r, r->heap[l + 1], r->heap[m]) < 0)
            m = l + 1;
        if (m == i)
            return;
        uint32_t t = r->heap[i];
        r->heap[i] = r->heap[m];
        r->heap[m] = t;
        i = m;
    }
}

/* Moves source s to its next record (has = false at its end). */
static int src_advance(em_reducer *r, run_src *s, em_err *err)
{
    if (!s->mem) {
        int rc = em__run_reader_next(&s->rd, &s->cur, err);
        if (rc < 0)
            return rc;
        s->has = rc == 1;
        return 0;
    }
    s->has = false;
    if (r->o.mode == EM_REDUCE_AGGREGATE) {
        if (s->pos < r->agg.tab.n) {
            uint32_t part;
            em__aggmap_at(&r->agg, s->pos++, &part, &s->cur);
            s->has = true;
        }
    } else if (s->pos < r->nix) {
        const rec_ix *x = &r->ix[s->pos++];
        s->cur.key = em_slice_make(x->at.p, x->klen);
        s->cur.val = em_slice_make(x->at.p + x->klen, x->vlen);
        s->has = true;
    }
    return 0;
}

/* Advances the source at the heap top and restores the heap. */
static int advance_top(em_reducer *r, em_err *err)
{
    int rc = src_advance(r, &r->srcs[r->heap[0]], err);
    if (rc < 0)
        return rc;
    if (!r->srcs[r->heap[0]].has)
        r->heap[0] = r->heap[--r->nheap];
    if (r->nheap)
        sift_down(r, 0);
    return 0;
}

/* ---------------------------------------------------------------- merge passes */

/* Runs one merge may open at once. Each open run is a file descriptor (and a decoded
 * block), and several task threads of a process may merge at the same time next to their
 * shuffle files and sockets: take 1/16 of the open-file limit, 2..64 (Hadoop's
 * io.sort.factor is 10..100). opts.max_fan_in overrides (tests). */
static size_t merge_fan_in(const em_reducer *r)
{
    size_t f;
    if (r->o.max_fan_in) {
        f = r->o.max_fan_in;
    } else {
        struct rlimit rl;
        size_t lim = 1024;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            lim = rl.rlim_cur > 1u << 20 ? 1u << 20 : (size_t)rl.rlim_cur;
        f = lim / 16;
        f = f > 64 ? 64 : f;
    }
    return f < 2 ? 2 : f;
}

/* Merges the n runs in[0..n-1] (consecutive in spill order) into one new run, whose path
 * goes to *out (owned); the inputs are removed and freed on success only. Equal keys keep
 * run order (the heap breaks ties by run index), so GROUP's arrival order and SORT's
 * stability survive; AGGREGATE's equal keys stay separate records, which the final merge
 * combines like equal keys of different runs. */
static int merge_runs(em_reducer *r, char **in, size_t n, char **out, em_err *err)
{
    em__run_reader *rd = em_calloc(n, sizeof *rd);
    em_rec *cur = em_calloc(n, sizeof *cur);
    uint32_t *heap = em_calloc(n, sizeof *heap);
    size_t nopen = 0, nheap = 0;
    em__run_writer w;
    bool wopen = false;
    int rc = 0;

    if (!rd || !cur || !heap)
        rc = em_err_set(err, EM_ENOMEM, "reducer: out of memory merging %zu runs", n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((rc = em__run_reader_open(&rd[i], in[i], err)) < 0)
            break;
        nopen++;
        if ((rc = em__run_reader_next(&rd[i], &cur[i], err)) == 1)
            heap[nheap++] = (uint32_t)i;
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0 && (rc = em__run_writer_open(&w, r->o.spill_dir, r->level, err)) == 0)
        wopen = true;
    /* A binary heap keyed by (key, run index), as the final merge's src_cmp. */
#define LESS(a, b)                                                                          \
    (em_slice_cmp(cur[a].key, cur[b].key) * (r->o.descending ? -1 : 1) < 0 ||               \
     (em_slice_cmp(cur[a].key, cur[b].key) == 0 && (a) < (b)))
    for (size_t i = nheap / 2; rc == 0 && i-- > 0;)
        for (size_t j = i;;) {
            size_t l = 2 * j + 1, m = j;
            if (l < nheap && LESS(heap[l], heap[m]))
                m = l;
            if (l + 1 < nheap && LESS(heap[l + 1], heap[m]))
                m = l + 1;
            if (m == j)
                break;
            uint32_t t = heap[j];
            heap[j] = heap[m];
            heap[m] = t;
            j = m;
        }
    while (rc == 0 && nheap > 0) {
        uint32_t top = heap[0];
        if ((rc = em__run_writer_add(&w, cur[top].key, cur[top].val, err)) < 0)
            break;
        if ((rc = em__run_reader_next(&rd[top], &cur[top], err)) < 0)
            break;
        if (rc == 0)
            heap[0] = heap[--nheap];
        rc = 0;
        for (size_t j = 0;;) {
            size_t l = 2 * j + 1, m = j;
            if (l < nheap && LESS(heap[l], heap[m]))
                m = l;
            if (l + 1 < nheap && LESS(heap[l + 1], heap[m]))
                m = l + 1;
            if (m == j)
                break;
            uint32_t t = heap[j];
            heap[j] = heap[m];
            heap[m] = t;
            j = m;
        }
    }
#undef LESS
    for (size_t i = 0; i < nopen; i++)
        em__run_reader_close(&rd[i]);
    if (rc == 0)
        rc = em__run_writer_close(&w, err);
    if (rc == 0) {
        char *path = em_strdup(w.path);
        if (!path) {
            rc = em_err_set(err, EM_ENOMEM, "reducer: out of memory");
        } else {
            for (size_t i = 0; i < n; i++) {
                unlink(in[i]);
                em_free(in[i]);
            }
            *out = path;
            r->st.spill_count++;
            r->st.spill_bytes += w.bytes;
        }
    }
    if (rc < 0 && wopen)
        em__run_writer_abort(&w);
    em_free(rd);
    em_free(cur);
    em_free(heap);
    return rc;
}

/* One level of merging: each group of fan_in consecutive runs becomes one run, in place
 * (runs stay in spill order). log_fan_in(runs) levels bring the count under the fan-in,
 * each reading and writing the data once. On error the runs array stays consistent (the
 * merged ones and the untouched ones), so the reducer's free removes every file. */
static int merge_level(em_reducer *r, size_t fan_in, em_err *err)
{
    size_t out = 0, i = 0;
    int rc = 0;
    while (i < r->nruns) {
        size_t n = r->nruns - i < fan_in ? r->nruns - i : fan_in;
        char *merged = NULL;
        if (n > 1 && (rc = merge_runs(r, r->runs + i, n, &merged, err)) < 0)
            break;
        r->runs[out++] = n > 1 ? merged : r->runs[i];
        i += n;
    }
    memmove(r->runs + out, r->runs + i, (r->nruns - i) * sizeof *r->runs);
    r->nruns = out + (r->nruns - i);
    r->st.merge_passes++;
    return rc;
}

static int start_merge(em_reducer *r, em_err *err)
{
    size_t fan_in = merge_fan_in(r);
    int rc;
    while (r->nruns > fan_in)   /* the final merge opens every run left */
        if ((rc = merge_level(r, fan_in, err)) < 0)
            return rc;
    size_t n = r->nruns + 1;

    r->srcs = em_calloc(n, sizeof *r->srcs);
    r->heap = em_calloc(n, sizeof *r->heap);
    if (!r->srcs || !r->heap)
        return em_err_set(err, EM_ENOMEM, "reducer: out of memory merging %zu runs", n);
    for (size_t i = 0; i < r->nruns; i++) {
        if ((rc = em__run_reader_open(&r->srcs[i].rd, r->runs[i], err)) < 0)
            return rc;
        r->nsrcs++;
    }
    if (r->o.mode == EM_REDUCE_AGGREGATE) {
        if ((rc = em__aggmap_sort(&r->agg, err)) < 0)
            return rc;
    } else
        sort_buffer(r);
    r->srcs[r->nsrcs].mem = true;
    r->srcs[r->nsrcs].rd.fd = -1;
    r->nsrcs++;
    for (size_t i = 0; i < r->nsrcs; i++) {
        if ((rc = src_advance(r, &r->srcs[i], err)) < 0)
            return rc;
        if (r->srcs[i].has)
            r->heap[r->nheap++] = (uint32_t)i;
    }
    for (size_t i = r->nheap / 2; i-- > 0;)
        sift_down(r, i);
    r->merging = true;
    return 0;
}

int em_reducer_finish(em_reducer *r, em_err *err)
{
    if (r->poisoned || r->finished)
        return refuse(r, err);
    r->finished = true;
    if (r->nruns > 0) {
        int rc = start_merge(r, &r->perr);
        if (rc < 0)
            return fail(r, rc, err);
    } else if (r->o.mode != EM_REDUCE_AGGREGATE) {
        sort_buffer(r);
    }
    return 0;
}

/* AGGREGATE: merges combiner v into the one being assembled for the current key. */
static int fold_value(em_reducer *r, em_slice v, em_err *err)
{
    const em_combiner *c = r->o.combiner;
    em_vbuf_clear(&r->tmp);
    int rc = c->ops->merge_combiners(c->self, em_slice_make(r->val.data, r->val.len), v,
                                     &r->tmp, err);
    if (rc < 0)
        return rc;
    em_vbuf t = r->val;
    r->val = r->tmp;
    r->tmp = t;
    return 0;
}

/* AGGREGATE: starts the output value with its first combiner v. */
static int first_value(em_reducer *r, em_slice v, em_err *err)
{
    em_vbuf_clear(&r->val);
    if (em_vbuf_append(&r->val, v.p, v.n) < 0)
        return em_err_set(err, EM_ENOMEM, "reducer: out of memory for a %zu-byte value", v.n);
    return 0;
}

/* The merge is over: closes the run files and removes them (disk is given back at the end
 * of the output, not at free). */
static void merge_done(em_reducer *r)
{
    for (size_t i = 0; i < r->nsrcs; i++)
        if (!r->srcs[i].mem)
            em__run_reader_close(&r->srcs[i].rd);
    r->nsrcs = 0;
    for (size_t i = 0; i < r->nruns; i++) {
        unlink(r->runs[i]);
        em_free(r->runs[i]);
    }
    r->nruns = 0;
}

/* Next merged record: SORT passes records through; AGGREGATE combines equal keys. */
static int next_merged(em_reducer *r, em_rec *out, em_err *err)
{
    int rc;

    if (r->pending >= 0) {
        r->pending = -1;
        if ((rc = advance_top(r, err)) < 0)
            return rc;
    }
    if (r->nheap == 0) {
        merge_done(r);
        return 0;
    }
    run_src *s = &r->srcs[r->heap[0]];
    if (r->o.mode == EM_REDUCE_SORT) {
        *out = s->cur;            /* valid until the source advances: at the next call */
        r->pending = (long)r->heap[0];
        return 1;
    }
    em_vbuf_clear(&r->key);
    if (em_vbuf_reserve(&r->key, s->cur.key.n) < 0 ||   /* non-NULL data for an empty key */
        em_vbuf_append(&r->key, s->cur.key.p, s->cur.key.n) < 0)
        return em_err_set(err, EM_ENOMEM, "reducer: out of memory for a key");
    if ((rc = first_value(r, s->cur.val, err)) < 0 || (rc = advance_top(r, err)) < 0)
        return rc;
    em_slice key = em_slice_make(r->key.data, r->key.len);
    while (r->nheap && em_slice_eq(r->srcs[r->heap[0]].cur.key, key)) {
        if ((rc = fold_value(r, r->srcs[r->heap[0]].cur.val, err)) < 0 ||
            (rc = advance_top(r, err)) < 0)
            return rc;
    }
    out->key = key;
    out->val = em_slice_make(r->val.data, r->val.len);
    return 1;
}

/* Next record when nothing spilled, AGGREGATE or SORT: straight from memory. */
static int next_memory(em_reducer *r, em_rec *out)
{
    if (r->o.mode == EM_REDUCE_AGGREGATE) {
        uint32_t part;
        return em__aggmap_next(&r->agg, &r->pos, &part, out);
    }
    if (r->pos >= r->nix)
        return 0;
    const rec_ix *x = &r->ix[r->pos++];
    out->key = em_slice_make(x->at.p, x->klen);
    out->val = em_slice_make(x->at.p + x->klen, x->vlen);
    return 1;
}

/* ---------------------------------------------------------------- GROUP value stream */

/* Next value of the current group: 1 and *v, 0 at the group's end. */
static int group_value(em_reducer *r, em_slice *v, em_err *err)
{
    int rc;
    if (!r->grp_active)
        return 0;
    if (r->merging) {
        if (r->grp_advance) {
            r->grp_advance = false;
            if ((rc = advance_top(r, err)) < 0)
                return rc;
        }
        if (r->nheap && em_slice_eq(r->srcs[r->heap[0]].cur.key, r->gkey)) {
            *v = r->srcs[r->heap[0]].cur.val;
            r->grp_advance = true;
            return 1;
        }
    } else if (r->pos < r->nix) {
        const rec_ix *x = &r->ix[r->pos];
        if (em_slice_eq(em_slice_make(x->at.p, x->klen), r->gkey)) {
            r->pos++;
            *v = em_slice_make(x->at.p + x->klen, x->vlen);
            return 1;
        }
    }
    r->grp_active = false;
    return 0;
}

/* Skips what is left of the current group and starts the next: 1 (r->gkey set), 0 at the
 * end of the output. */
static int group_start(em_reducer *r, em_err *err)
{
    em_slice v;
    int rc;
    while (r->grp_active)
        if ((rc = group_value(r, &v, err)) < 0)
            return rc;
    if (!r->merging) {
        if (r->pos >= r->nix)
            return 0;
        r->gkey = em_slice_make(r->ix[r->pos].at.p, r->ix[r->pos].klen);
        r->grp_active = true;
        return 1;
    }
    if (r->grp_advance) {
        r->grp_advance = false;
        if ((rc = advance_top(r, err)) < 0)
            return rc;
    }
    if (r->nheap == 0) {
        merge_done(r);
        return 0;
    }
    em_slice k = r->srcs[r->heap[0]].cur.key;
    em_vbuf_clear(&r->key);
    /* reserve first: data must be non-NULL even for an empty key (a NULL key is "no key") */
    if (em_vbuf_reserve(&r->key, k.n) < 0 || em_vbuf_append(&r->key, k.p, k.n) < 0)
        return em_err_set(err, EM_ENOMEM, "reducer: out of memory for a %zu-byte key", k.n);
    r->gkey = em_slice_make(r->key.data, r->key.len);
    r->grp_active = true;
    return 1;
}

/* Appends v to the hot group's spill list (made on first use). */
static int hot_add(em_reducer *r, em_slice v, em_err *err)
{
    if (!r->hot && !(r->hot = em_spill_list_new(r->o.spill_dir, 0, r->level, err)))
        return err->code;
    if (em_spill_list_count(r->hot) == 0)
        r->st.hot_groups++;
    int rc = em_spill_list_add(r->hot, v, err);
    if (rc < 0)
        return rc;
    r->hot_bytes += 4 + v.n;
    return 0;
}

/* Completes the em_list in r->val with the hot group's spilled values: one allocation of the
 * exact final size, then the file read back block by block; the file is removed. */
static int hot_finish(em_reducer *r, em_err *err)
{
    size_t need;
    em_slice v;
    int rc;
    if (!em_size_add(r->val.len, r->hot_bytes, &need))
        return em_err_set(err, EM_ENOMEM, "reducer: group of %zu bytes", r->hot_bytes);
    if (need > r->val.cap) {
        uint8_t *p = em_realloc(r->val.data, need);
        if (!p)
            return em_err_set(err, EM_ENOMEM, "reducer: out of memory for a group of %zu "
                              "bytes (a key's values must fit in memory once)", need);
        r->val.data = p;
        r->val.cap = need;
    }
    if ((rc = em_spill_list_rewind(r->hot, err)) < 0)
        return rc;
    while ((rc = em_spill_list_next(r->hot, &v, err)) == 1)
        em_list_append(&r->val, v);   /* cannot fail: room reserved above */
    em_spill_list_reset(r->hot);
    r->hot_bytes = 0;
    return rc;
}

/* GROUP record: the next group's values as one em_list (hot groups via the spill list). */
static int next_group_record(em_reducer *r, em_rec *out, em_err *err)
{
    uint32_t count = 0;
    em_slice v;
    int rc = group_start(r, err);
    if (rc <= 0)
        return rc;
    if (r->val.cap > r->budget)
        em_vbuf_destroy(&r->val);   /* the last group was hot: give its memory back */
    em_vbuf_clear(&r->val);
    int64_t off = em_list_begin(&r->val);
    if (off < 0)
        return em_err_set(err, EM_ENOMEM, "reducer: out of memory grouping values");
    while ((rc = group_value(r, &v, err)) == 1) {
        if (count == UINT32_MAX)
            return em_err_set(err, EM_EINVAL, "reducer: a key has more than %u values",
                              UINT32_MAX);
        count++;
        if (r->hot_bytes || (r->merging && r->val.len + 4 + v.n > r->budget))
            rc = hot_add(r, v, err);
        else if (em_list_append(&r->val, v) < 0)
            rc = em_err_set(err, EM_ENOMEM, "reducer: out of memory grouping values");
        if (rc < 0)
            return rc;
    }
    if (rc < 0 || (r->hot_bytes && (rc = hot_finish(r, err)) < 0))
        return rc;
    em_list_end(&r->val, off, count);
    out->key = r->gkey;
    out->val = em_slice_make(r->val.data, r->val.len);
    return 1;
}

static int check_group_stream(em_reducer *r, em_err *err)
{
    if (r->poisoned)
        return em_err_copy(err, &r->perr);
    if (!r->finished || r->o.mode != EM_REDUCE_GROUP)
        return em_err_set(err, EM_EINVAL, "reducer: group stream needs a finished GROUP "
                          "reducer");
    return 0;
}

int em_reducer_next_group(em_reducer *r, em_slice *key, em_err *err)
{
    int rc = check_group_stream(r, err);
    if (rc < 0)
        return rc;
    if ((rc = group_start(r, &r->perr)) < 0)
        return fail(r, rc, err);
    if (rc == 1) {
        *key = r->gkey;
        r->st.records_out++;
    }
    return rc;
}

int em_reducer_next_value(em_reducer *r, em_slice *val, em_err *err)
{
    int rc = check_group_stream(r, err);
    if (rc < 0)
        return rc;
    if ((rc = group_value(r, val, &r->perr)) < 0)
        return fail(r, rc, err);
    return rc;
}

int em_reducer_next(em_reducer *r, em_rec *out, em_err *err)
{
    int rc;
    if (r->poisoned)
        return em_err_copy(err, &r->perr);
    if (!r->finished)
        return em_err_set(err, EM_EINVAL, "reducer: next before finish");
    if (r->o.mode == EM_REDUCE_GROUP)
        rc = next_group_record(r, out, &r->perr);
    else
        rc = r->merging ? next_merged(r, out, &r->perr) : next_memory(r, out);
    if (rc < 0)
        return fail(r, rc, err);
    if (rc == 1)
        r->st.records_out++;
    return rc;
}

void em_reducer_stats_get(const em_reducer *r, em_reducer_stats *st)
{
    *st = r->st;
    if (r->hot) {
        uint64_t n, bytes;
        em_spill_list_spills(r->hot, &n, &bytes);
        st->spill_count += n;
        st->spill_bytes += bytes;
    }
}

void em_reducer_free(em_reducer *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nsrcs; i++)
        if (!r->srcs[i].mem)
            em__run_reader_close(&r->srcs[i].rd);
    em_free(r->srcs);
    em_free(r->heap);
    for (size_t i = 0; i < r->nruns; i++) {
        unlink(r->runs[i]);
        em_free(r->runs[i]);
    }
    em_free(r->runs);
    em_spill_list_free(r->hot);
    em__aggmap_destroy(&r->agg);
    em_vbuf_destroy(&r->recs);
    em_free(r->ix);
    em_vbuf_destroy(&r->key);
    em_vbuf_destroy(&r->val);
    em_vbuf_destroy(&r->tmp);
    em_free((char *)r->o.spill_dir);
    em_free(r);
}
