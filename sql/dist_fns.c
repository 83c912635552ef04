/* sql/dist_fns.c - SQL's task functions, run by executors (and local task threads):
 *   sql.stage    (EM_FN_PARTITION) runs a stage plan (sql/serial.c) over one partition with
 *                the local executor and emits its rows;
 *   sql.sort_key (EM_FN_MAP) the bytewise-sortable key of a row (sort_by).
 *
 * STAGE BLOB (little-endian):
 *   u8 src        SRC_ROWS: records are rows (plain, or the value of a KV record);
 *                 SRC_COGROUP: records are (key, em_pair(em_list of rows, em_list of rows))
 *                 from cogroup, the two lists input 0 and input 1;
 *                 SRC_CSV: records are (u64 start, u64 end) byte ranges of a CSV file;
 *                 SRC_EMC: records are (u32 row group, path) of an ember table's part
 *                 file (sql/colfile.c), with the blob of SRC_CSV (path: the directory);
 *   u32 w0, w1    widths of input 0 and input 1 rows;
 *   SRC_CSV, SRC_EMC only: str path, str table, u32 ncols, ncols x (u8 type, str name), u8 delim,
 *                 u8 header, u8 multiline, u8 skip_bad, u8 has_need, has_need ? ncols x
 *                 u8 (0: a column the query does not read, given as NULL), u32
 *                 accumulator of skipped rows (0 none); a str is u32 length then bytes;
 *   u32 k, k - 1 exprs: k = 0 emits plain rows; otherwise KV records keyed by the 8-byte
 *                 hash of these k - 1 expressions over the output row (the shuffle key);
 *   the plan: its P_REL leaves read input 0, input 1, or broadcast (input - 2), whose value
 *                 is rows of that leaf's width, one after another.
 * Rows are in the row codec (sql/sql.h). A partition is materialized in one arena. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/ember.h"
#include "sql/colfile.h"
#include "sql/sql_int.h"
#include "sql/sql_ml.h"

enum { SRC_ROWS = 0, SRC_COGROUP = 1, SRC_CSV = 2, SRC_EMC = 3 };

typedef struct stage_rd {
    const uint8_t *p;
    size_t n, off;
} stage_rd;

static int rd_u8(stage_rd *r, uint8_t *v, em_err *err)
{
    *v = 0;   /* written on every path: -O2's -Wmaybe-uninitialized in the callers */
    if (r->n - r->off < 1)
        return em_err_set(err, EM_ECORRUPT, "sql stage: truncated blob");
    *v = r->p[r->off++];
    return 0;
}

static int rd_u32(stage_rd *r, uint32_t *v, em_err *err)
{
    *v = 0;
    if (r->n - r->off < 4)
        return em_err_set(err, EM_ECORRUPT, "sql stage: truncated blob");
    memcpy(v, r->p + r->off, 4);
    r->off += 4;
    return 0;
}

static int rd_str(stage_rd *r, em_arena *a, const char **s, em_err *err)
{
    uint32_t n;
    int rc = rd_u32(r, &n, err);
    if (rc < 0)
        return rc;
    if (n > r->n - r->off)
        return em_err_set(err, EM_ECORRUPT, "sql stage: truncated blob");
    char *c = em_arena_alloc(a, (size_t)n + 1);
    if (c == NULL)
        return em_err_set(err, EM_ENOMEM, "sql stage: out of memory");
    memcpy(c, r->p + r->off, n);
    c[n] = '\0';
    r->off += n;
    *s = c;
    return 0;
}

uint64_t em__sql_hash_row(const em_sql_value *v, uint32_t n)
{
    uint64_t h = 0x12345;
    for (uint32_t i = 0; i < n; i++)
        h = em__sql_hash(&v[i], h);
    return h;
}

/* Decodes rows of width w from p[0..n) (text copied into the arena) onto r. */
static int push_rows(sql_exec *x, sql_rel *r, const uint8_t *p, size_t n, bool one,
                     em_err *err)
{
    em_sql_value *row = em_arena_alloc(x->arena, (r->width + 1) * sizeof *row);
    size_t off = 0;
    if (row == NULL)
        return em_err_set(err, EM_ENOMEM, "sql stage: out of memory");
    while (off < n) {
        for (uint32_t c = 0; c < r->width; c++) {
            size_t used;
            int rc = em__sql_value_read(x->arena, p + off, n - off, &row[c], &used, err);
            if (rc < 0)
                return rc;
            off += used;
        }
        if (em__sql_rel_push(x, r, row) < 0)
            return em_err_set(err, EM_ENOMEM, "sql stage: out of memory");
        if (one && off != n)
            return em_err_set(err, EM_ECORRUPT, "sql stage: %zu bytes after a row", n - off);
    }
    return 0;
}

/* ---------------------------------------------------------------- CSV ranges */
typedef struct csv_src {
    sql_csv_spec sp;
    uint32_t acc;
} csv_src;

static int rd_csv(stage_rd *r, em_arena *a, csv_src *cs, em_err *err)
{
    uint32_t nc;
    uint8_t f[5];
    int rc;
    memset(cs, 0, sizeof *cs);
    if ((rc = rd_str(r, a, &cs->sp.path, err)) < 0 || (rc = rd_str(r, a, &cs->sp.table, err)) < 0 ||
        (rc = rd_u32(r, &nc, err)) < 0)
        return rc;
    if (nc == 0 || nc > 4096)
        return em_err_set(err, EM_ECORRUPT, "sql stage: bad column count %u", nc);
    uint8_t *types = em_arena_alloc(a, nc);
    const char **names = em_arena_alloc(a, nc * sizeof *names);
    if (types == NULL || names == NULL)
        return em_err_set(err, EM_ENOMEM, "sql stage: out of memory");
    for (uint32_t c = 0; c < nc; c++)
        if ((rc = rd_u8(r, &types[c], err)) < 0 || (rc = rd_str(r, a, &names[c], err)) < 0)
            return rc;
    for (int i = 0; i < 5; i++)
        if ((rc = rd_u8(r, &f[i], err)) < 0)
            return rc;
    if (f[4] != 0) {   /* the columns the query reads */
        uint8_t *need = em_arena_alloc(a, nc);
        if (need == NULL)
            return em_err_set(err, EM_ENOMEM, "sql stage: out of memory");
        for (uint32_t c = 0; c < nc; c++)
            if ((rc = rd_u8(r, &need[c], err)) < 0)
                return rc;
        cs->sp.need = need;
    }
    cs->sp.ncols = nc;
    cs->sp.types = types;
    cs->sp.cols = names;
    cs->sp.delim = (char)f[0];
    cs->sp.header = f[1] != 0;
    cs->sp.multiline = f[2] != 0;
    cs->sp.skip_bad = f[3] != 0;
    return rd_u32(r, &cs->acc, err);
}

int em__sql_csv_spec_encode(em_vbuf *b, const sql_csv_spec *sp, uint32_t acc)
{
    int rc = 0;
    const char *strs[2] = {sp->path, sp->table};
    for (int i = 0; i < 2 && rc == 0; i++)
        if ((rc = em_vbuf_append_u32le(b, (uint32_t)strlen(strs[i]))) == 0)
            rc = em_vbuf_append(b, strs[i], strlen(strs[i]));
    if (rc == 0)
        rc = em_vbuf_append_u32le(b, sp->ncols);
    for (uint32_t c = 0; c < sp->ncols && rc == 0; c++)
        if ((rc = em_vbuf_append(b, &sp->types[c], 1)) == 0 &&
            (rc = em_vbuf_append_u32le(b, (uint32_t)strlen(sp->cols[c]))) == 0)
            rc = em_vbuf_append(b, sp->cols[c], strlen(sp->cols[c]));
    uint8_t f[5] = {(uint8_t)sp->delim, sp->header, sp->multiline, sp->skip_bad,
                    sp->need != NULL};
    if (rc == 0 && (rc = em_vbuf_append(b, f, 5)) == 0 && sp->need != NULL)
        rc = em_vbuf_append(b, sp->need, sp->ncols);
    if (rc == 0)
        rc = em_vbuf_append_u32le(b, acc);
    return rc;
}

/* Where a range's rows go: r, as they are; or with `leaf` (the stage plan's P_SUBQ over
 * the file's rows), each row placed in its slice of a wide row and kept when the leaf's
 * pushed-down filter holds, so rows the query drops are never stored. */
typedef struct csv_sink {
    sql_exec *x;
    sql_rel *r;
    const sql_plan *leaf;
    em_sql_value *wide;   /* leaf->width values */
    int rc;               /* an evaluation error (x->diag says which) */
    /* Chunked stages: every CSV_CHUNK_ROWS rows, flush runs the plan over r and emits its
     * rows, then r starts again (its arena, x's, is reset); its error is kept in ferr. */
    int (*flush)(struct csv_sink *k);
    void *flush_ud;
    bool have_ferr;
    em_err ferr;
    /* An INNER hash join with a broadcast right above the leaf (filters between), its left
     * keys columns of the leaf's slice (semi_cols): a row whose keys match no build row is
     * dropped here, before it is stored (the join would drop it) */
    const sql_plan *semi;
    uint32_t *semi_cols;
    em_sql_value *semi_keys;
    /* ember tables: the same check made on the key columns' vectors before the row is
     * built (gated: csv_row need not check again) */
    sql_cf_gate gate;
    uint32_t *gate_cols;
    bool gated;
} csv_sink;

static bool semi_gate(void *ud, const em_sql_value *keys)
{
    const csv_sink *k = ud;
    return em__sql_join_may_match(k->semi, keys);
}

#define CSV_CHUNK_ROWS 4096

static int csv_keep(csv_sink *k, const em_sql_value *row)
{
    int rc = em__sql_rel_push(k->x, k->r, row);
    if (rc == 0 && k->flush != NULL && k->r->n >= CSV_CHUNK_ROWS && (rc = k->flush(k)) < 0) {
        k->rc = rc;
        k->have_ferr = true;
    }
    return rc;
}

static int csv_row(void *ud, const em_sql_value *row)
{
    csv_sink *k = ud;
    const sql_plan *l = k->leaf;
    if (l == NULL)
        return csv_keep(k, row);
    memcpy(k->wide + l->off, row, l->slice * sizeof *row);
    if (l->pred != NULL) {
        sql_env env = {.row = k->wide};
        em_sql_value t;
        int rc = em__sql_eval(k->x, l->pred, &env, &t);
        if (rc < 0) {
            k->rc = rc;
            return rc;
        }
        if (em__sql_truth(&t) != 1)
            return 0;
    }
    if (k->semi != NULL && !k->gated) {
        for (uint32_t i = 0; i < k->semi->nkeys; i++)
            k->semi_keys[i] = k->wide[k->semi_cols[i]];
        if (!em__sql_join_may_match(k->semi, k->semi_keys))
            return 0;
    }
    return csv_keep(k, k->wide);
}

/* Parses byte range [start, end) of the file (mapped, so a range reads only its pages). */
static int csv_range(sql_exec *x, const csv_src *cs, csv_sink *k, uint64_t start,
                     uint64_t end, uint64_t *bad, em_err *err)
{
    int fd = open(cs->sp.path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc;
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = em_err_set(err, em_errno_code_open(errno), "%s: cannot open: %s", cs->sp.path,
                        strerror(errno));
        if (fd >= 0)
            close(fd);
        return rc;
    }
    size_t n = (size_t)st.st_size;
    if (n == 0 || start >= n) {
        close(fd);
        return 0;
    }
    void *m = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return em_err_set(err, EM_EIO, "%s: cannot map: %s", cs->sp.path, strerror(errno));
    rc = em__sql_csv_parse(&cs->sp, m, n, (size_t)start, end < n ? (size_t)end : n, x->arena,
                           csv_row, k, bad, err);
    munmap(m, n);
    if (k->rc < 0 && k->have_ferr) /* the chunk's plan or emission failed */
        *err = k->ferr, rc = k->ferr.code;
    else if (k->rc < 0) /* the filter failed, not the memory: its own message */
        rc = em_err_set(err, x->diag->err.code ? x->diag->err.code : EM_EINVAL, "%s",
                        x->diag->err.msg);
    return rc;
}

/* Scans row group g of the part file of record rec (kept open in *f across records). */
static int emc_range(sql_exec *x, const csv_src *cs, csv_sink *k, sql_cf *f, bool *open,
                     em_slice rec, em_err *err)
{
    char path[4096];
    uint32_t g;
    int rc;
    if (rec.n < 5 || rec.n - 4 >= sizeof path)
        return em_err_set(err, EM_ECORRUPT, "sql stage: bad ember row group record");
    memcpy(&g, rec.p, 4);
    memcpy(path, rec.p + 4, rec.n - 4);
    path[rec.n - 4] = '\0';
    if (*open && strcmp(f->path, path) != 0) {
        em__sql_cf_close(f);
        *open = false;
    }
    if (!*open) {
        if ((rc = em__sql_cf_open(f, path, err)) < 0)
            return rc;
        *open = true;
        if (f->ncols != cs->sp.ncols)
            return em_err_set(err, EM_ECORRUPT, "%s: %u columns, table %s has %u", path,
                              f->ncols, cs->sp.table, cs->sp.ncols);
    }
    if (g >= f->nrg)
        return em_err_set(err, EM_ECORRUPT, "%s: no row group %u (the file changed?)", path, g);
    k->gated = false;
    if (k->semi != NULL && k->gate_cols != NULL) { /* the keys' file columns, all read */
        k->gated = true;
        for (uint32_t i = 0; i < k->semi->nkeys; i++) {
            k->gate_cols[i] = k->semi_cols[i] - k->leaf->off;
            if (k->gate_cols[i] >= f->ncols || (cs->sp.need != NULL && !cs->sp.need[k->gate_cols[i]]))
                k->gated = false;
        }
        k->gate = (sql_cf_gate){.n = k->semi->nkeys, .cols = k->gate_cols,
                                .vals = k->semi_keys, .fn = semi_gate, .ud = k};
        f->gate = k->gated ? &k->gate : NULL;
    }
    rc = em__sql_cf_scan(f, g, cs->sp.need, k->leaf ? k->leaf->pred : NULL,
                         k->leaf ? k->leaf->off : 0, x->arena, csv_row, k, NULL, err);
    f->gate = NULL;
    k->gated = false;
    if (k->rc < 0 && k->have_ferr) /* the chunk's plan or emission failed */
        *err = k->ferr, rc = k->ferr.code;
    else if (k->rc < 0) /* the filter failed */
        rc = em_err_set(err, x->diag->err.code ? x->diag->err.code : EM_EINVAL, "%s",
                        x->diag->err.msg);
    else if (rc < 0 && err->code == 0)
        rc = em_err_set(err, EM_ENOMEM, "sql stage: out of memory");
    return rc;
}

/* ---------------------------------------------------------------- sql.stage */
typedef struct stage {
    sql_exec x;
    em_sql_diag diag;
    sql_rel *in[2];
    em_task *task;
    em_err *err;
    /* Chunked CSV stages (read_inputs): the plan runs per chunk of rows in cx (its arena
     * reset after each), emitting as it goes. */
    sql_plan *plan;
    sql_exec cx;
    em_arena chunk;
    sql_expr **keys;
    uint32_t nkeys;
    bool keyed;
    em_emitter *out;
    bool chunked;
} stage;

static int emit_rows(stage *s, const sql_rel *r, sql_expr **keys, uint32_t nkeys, bool keyed,
                     em_emitter *out);

/* A plan whose output over a partition is the concatenation of its outputs over chunks of
 * the partition's rows: row-wise nodes, a partial aggregate (its states merge later), and
 * hash joins of the rows with a broadcast (its hash table kept from chunk to chunk). */
static bool chunkable(sql_plan *p, const sql_plan *leaf)
{
    for (sql_plan *q = p; q != NULL && q != leaf; q = q->in)
        if (q->kind == P_JOIN && q->right != NULL && q->right->kind == P_REL &&
            q->right->input >= 2 && q->nkeys > 0 && (q->join == J_INNER || q->join == J_LEFT))
            q->cache_build = true;
        else if (q->right != NULL)
            return false;
    for (; p != NULL && p != leaf; p = p->in) {
        if (p->kind == P_JOIN)
            continue;
        if (!(p->kind == P_FILTER || p->kind == P_PROJECT || p->kind == P_TRIM ||
              (p->kind == P_AGG && p->agg_mode == AGG_PARTIAL)))
            return false;
    }
    return p == leaf;
}

/* True when rel leaf p is the build side of parent, a hash join on bare columns: its rows
 * can stay encoded (sql_rel.enc), decoded only where a probe matches. */
static bool lazy_build(const sql_plan *parent, const sql_plan *p)
{
    if (parent == NULL || parent->kind != P_JOIN || parent->right != p || parent->nkeys == 0)
        return false;
    for (uint32_t k = 0; k < parent->nkeys; k++)
        if (parent->rkeys[k]->kind != E_COL || parent->rkeys[k]->level != 0)
            return false;
    return true;
}

/* Points every P_REL leaf at its rows (broadcasts decoded once per id; a hash join's build
 * side left encoded, see lazy_build). */
static int bind_inputs(stage *s, sql_plan *p, const sql_plan *parent, int depth)
{
    if (p == NULL)
        return 0;
    if (p->kind == P_REL) {
        if (p->input < 2) {
            if (s->in[p->input]->width != p->width)
                return em_err_set(s->err, EM_ECORRUPT, "sql stage: input %u has width %u, not %u",
                                  p->input, s->in[p->input]->width, p->width);
            p->rel = s->in[p->input];
            return 0;
        }
        if (p->rel != NULL) /* bound before the CSV ranges were read */
            return 0;
        em_slice v;
        int rc = em_task_broadcast(s->task, p->input - 2, &v, s->err);
        if (rc < 0)
            return rc;
        sql_rel *r = em_arena_alloc(s->x.arena, sizeof *r);
        if (r == NULL)
            return em_err_set(s->err, EM_ENOMEM, "sql stage: out of memory");
        memset(r, 0, sizeof *r);
        r->width = p->width;
        p->rel = r;
        if (lazy_build(parent, p)) { /* the bytes live as long as the task */
            r->enc = v.p;
            r->enc_n = v.n;
            return 0;
        }
        /* room for every row at once (a value takes a byte at least): no copies as it grows,
         * and pages are only touched as rows fill them */
        size_t most = v.n / (p->width ? p->width : 1) + 1, bytes;
        if (em_size_mul(most, (size_t)p->width * sizeof *r->v, &bytes) &&
            (r->v = em_arena_alloc(s->x.arena, bytes)) != NULL)
            r->cap = most;
        return push_rows(&s->x, r, v.p, v.n, false, s->err);
    }
    int rc = bind_inputs(s, p->in, p, depth + 1);
    return rc < 0 ? rc : bind_inputs(s, p->right, p, depth + 1);
}

/* Runs the stage plan over the chunk's rows (the leaf reads them), emits its output and
 * starts a new chunk. */
static int chunk_flush(csv_sink *k)
{
    stage *s = k->flush_ud;
    sql_rel *res;
    int rc = 0;
    if (k->r->n > 0) {
        if (em__sql_run(&s->cx, s->plan, NULL, &res) < 0)
            rc = em_err_set(&k->ferr, s->diag.err.code ? s->diag.err.code : EM_EINVAL, "%s",
                            s->diag.err.msg);
        else if ((rc = emit_rows(s, res, s->keys, s->nkeys, s->keyed, s->out)) < 0)
            k->ferr = *s->err;
    }
    em_arena_reset(&s->chunk);
    k->r->n = 0; /* its storage (the stage's arena, one chunk's rows) is kept */
    if (rc < 0)
        k->have_ferr = true;
    return rc;
}

/* Sets k's semi filter (csv_sink.semi) when the chunked plan has such a join over leaf l,
 * building the join's hash table now. */
static int semi_filter(stage *s, sql_plan *plan, const sql_plan *l, csv_sink *k)
{
    sql_plan *j = NULL;
    for (sql_plan *q = plan; q != NULL && q != l; q = q->in)
        if (q->kind == P_JOIN)
            j = q;
        else if (q->kind != P_FILTER)
            j = NULL;
    if (j == NULL || j->join != J_INNER || !em__sql_join_keeps_build(j) || j->in == NULL)
        return 0;
    for (uint32_t i = 0; i < j->nkeys; i++) {
        const sql_expr *e = j->lkeys[i];
        if (e->kind != E_COL || e->level != 0 || e->col < 0 || (uint32_t)e->col < l->off ||
            (uint32_t)e->col >= l->off + l->slice)
            return 0;
    }
    k->semi_cols = em_arena_alloc(s->x.arena, (j->nkeys + 1) * sizeof *k->semi_cols);
    k->semi_keys = em_arena_alloc(s->x.arena, (j->nkeys + 1) * sizeof *k->semi_keys);
    k->gate_cols = em_arena_alloc(s->x.arena, (j->nkeys + 1) * sizeof *k->gate_cols);
    if (k->semi_cols == NULL || k->semi_keys == NULL || k->gate_cols == NULL)
        return em_err_set(s->err, EM_ENOMEM, "sql stage: out of memory");
    for (uint32_t i = 0; i < j->nkeys; i++)
        k->semi_cols[i] = (uint32_t)j->lkeys[i]->col;
    if (em__sql_join_prebuild(&s->x, j) < 0)
        return em_err_set(s->err, s->diag.err.code ? s->diag.err.code : EM_EINVAL, "%s",
                          s->diag.err.msg);
    k->semi = j;
    return 0;
}

static int read_inputs(stage *s, uint8_t src, const csv_src *cs, sql_plan *plan, em_iter *it)
{
    em_rec rec;
    int rc;
    uint64_t bad = 0;
    csv_sink k = {.x = &s->x, .r = s->in[0]};
    sql_cf cf;
    bool cf_open = false;
    if (src == SRC_CSV || src == SRC_EMC) { /* the scan's leaf (SubqueryScan over input 0) filters as it parses */
        sql_plan *l = plan;
        while (l != NULL && !(l->kind == P_SUBQ && l->in != NULL && l->in->kind == P_REL &&
                              l->in->input == 0))
            l = l->in;
        if (l != NULL && l->in->width == s->in[0]->width && l->slice == l->in->width &&
            l->off <= l->width && l->slice <= l->width - l->off) {
            sql_rel *r = em_arena_alloc(s->x.arena, sizeof *r);
            k.wide = em_arena_alloc(s->x.arena, (l->width + 1) * sizeof *k.wide);
            if (r == NULL || k.wide == NULL)
                return em_err_set(s->err, EM_ENOMEM, "sql stage: out of memory");
            for (uint32_t c = 0; c < l->width; c++)
                k.wide[c] = em__sql_null();
            memset(r, 0, sizeof *r);
            r->width = l->width;
            k.r = r;
            k.leaf = l;
            if (chunkable(plan, l)) { /* rows and their text live in the chunk's arena */
                k.x = &s->cx;
                k.flush = chunk_flush;
                k.flush_ud = s;
                l->kind = P_REL;
                l->input = 0;
                l->rel = r;
                s->in[0] = r;
                s->chunked = true;
                /* one chunk's rows, allocated once: not regrown (and its pages faulted
                 * again) chunk after chunk */
                if ((r->v = em_arena_alloc(s->x.arena, (size_t)CSV_CHUNK_ROWS * (l->width + 1) *
                                                           sizeof *r->v)) == NULL)
                    return em_err_set(s->err, EM_ENOMEM, "sql stage: out of memory");
                r->cap = CSV_CHUNK_ROWS;
                if ((rc = semi_filter(s, plan, l, &k)) < 0)
                    return rc;
            }
        }
    }
    while ((rc = em_iter_next(it, &rec, s->err)) == 1) {
        if (src == SRC_ROWS) {
            if ((rc = push_rows(&s->x, s->in[0], rec.val.p, rec.val.n, true, s->err)) < 0)
                return rc;
        } else if (src == SRC_CSV) {
            if (rec.val.n != 16)
                return em_err_set(s->err, EM_ECORRUPT, "sql stage: bad CSV range record");
            uint64_t a = (uint64_t)em_dec_i64(rec.val.p), b = (uint64_t)em_dec_i64(rec.val.p + 8);
            if ((rc = csv_range(k.x, cs, &k, a, b, &bad, s->err)) < 0)
                return rc;
        } else if (src == SRC_EMC) {
            if ((rc = emc_range(k.x, cs, &k, &cf, &cf_open, rec.val, s->err)) < 0) {
                if (cf_open)
                    em__sql_cf_close(&cf);
                return rc;
            }
        } else {
            em_slice lists[2];
            bool has[2];
            if ((rc = em_pair_decode(rec.val, &lists[0], &has[0], &lists[1], &has[1], s->err)) < 0)
                return rc;
            for (int side = 0; side < 2; side++) {
                em_list_iter li;
                em_slice item;
                if (!has[side])
                    continue;
                if ((rc = em_list_iter_init(&li, lists[side], s->err)) < 0)
                    return rc;
                while ((rc = em_list_iter_next(&li, &item, s->err)) == 1)
                    if ((rc = push_rows(&s->x, s->in[side], item.p, item.n, true, s->err)) < 0)
                        return rc;
                if (rc < 0)
                    return rc;
            }
        }
    }
    if (cf_open)
        em__sql_cf_close(&cf);
    if (rc == 0 && bad > 0 && cs->acc != 0)
        em_task_acc_add_i64(s->task, cs->acc, (int64_t)bad);
    if (rc == 0 && k.flush != NULL)  /* the last chunk */
        rc = chunk_flush(&k) < 0 ? (*s->err = k.ferr, k.ferr.code) : 0;
    if (rc == 0 && k.leaf != NULL && k.flush == NULL) { /* the leaf's rows are made: it reads
                                                           them as input 0 */
        sql_plan *l = (sql_plan *)k.leaf;
        l->kind = P_REL;
        l->input = 0;
        l->rel = NULL;
        s->in[0] = k.r;
    }
    return rc;
}

static int emit_rows(stage *s, const sql_rel *r, sql_expr **keys, uint32_t nkeys, bool keyed,
                     em_emitter *out)
{
    em_vbuf b;
    em_sql_value *kv = em_arena_alloc(s->x.arena, (nkeys + 1) * sizeof *kv);
    int rc = 0;
    if (kv == NULL)
        return em_err_set(s->err, EM_ENOMEM, "sql stage: out of memory");
    em_vbuf_init(&b);
    for (size_t i = 0; i < r->n && rc == 0; i++) {
        const em_sql_value *row = &r->v[i * r->width];
        em_vbuf_clear(&b);
        if (em_sql_row_encode(&b, row, r->width) < 0) {
            rc = em_err_set(s->err, EM_ENOMEM, "sql stage: out of memory");
            break;
        }
        if (!keyed) {
            rc = em_emit_val(out, em_slice_make(b.data, b.len), s->err);
            continue;
        }
        sql_env env = {.row = row};
        for (uint32_t k = 0; k < nkeys && rc == 0; k++)
            if (em__sql_eval(&s->x, keys[k], &env, &kv[k]) < 0)
                rc = em_err_set(s->err, s->diag.err.code, "%s", s->diag.err.msg);
        uint8_t h[8];
        em_enc_i64(h, (int64_t)em__sql_hash_row(kv, nkeys));
        if (rc == 0)
            rc = em_emit_kv(out, em_slice_make(h, 8), em_slice_make(b.data, b.len), s->err);
    }
    em_vbuf_destroy(&b);
    return rc;
}

static int stage_fn(const em_fn_ctx *c, uint32_t index, em_iter *it, em_emitter *out,
                    em_err *err)
{
    (void)index;
    em_arena a;
    em_arena_init(&a, 64 * 1024);
    stage s = {.x = {.arena = &a}, .task = c->task, .err = err, .out = out};
    s.x.diag = &s.diag;
    em_arena_init(&s.chunk, 64 * 1024);
    s.cx = (sql_exec){.arena = &s.chunk, .diag = &s.diag};
    stage_rd r = {.p = c->blob.p, .n = c->blob.n};
    uint8_t src;
    uint32_t w[2], nkeys;
    csv_src cs = {0};
    sql_expr **keys = NULL;
    sql_plan *plan;
    sql_rel *res;
    size_t used;
    int rc;
    if ((rc = rd_u8(&r, &src, err)) < 0 || (rc = rd_u32(&r, &w[0], err)) < 0 ||
        (rc = rd_u32(&r, &w[1], err)) < 0)
        goto out;
    if (src > SRC_EMC || w[0] == 0 || w[0] > 65536 || w[1] > 65536) {
        rc = em_err_set(err, EM_ECORRUPT, "sql stage: bad header");
        goto out;
    }
    if ((src == SRC_CSV || src == SRC_EMC) && (rc = rd_csv(&r, &a, &cs, err)) < 0)
        goto out;
    if ((rc = rd_u32(&r, &nkeys, err)) < 0)
        goto out;
    bool keyed = nkeys > 0;
    nkeys -= keyed;
    if (nkeys > r.n - r.off || (keys = em_arena_alloc(&a, (nkeys + 1) * sizeof *keys)) == NULL) {
        rc = em_err_set(err, EM_ECORRUPT, "sql stage: bad key count");
        goto out;
    }
    size_t keys_at = r.off;
    for (uint32_t k = 0; k < nkeys; k++) { /* checked against the plan's width below */
        if ((rc = em__sql_expr_decode(&a, r.p + r.off, r.n - r.off, &used, 65536, &keys[k],
                                      err)) < 0)
            goto out;
        if (keys[k] == NULL) {
            rc = em_err_set(err, EM_ECORRUPT, "sql stage: missing key");
            goto out;
        }
        r.off += used;
    }
    if ((rc = em__sql_plan_decode(&a, r.p + r.off, r.n - r.off, &used, &plan, err)) < 0)
        goto out;
    if (r.off + used != r.n) {
        rc = em_err_set(err, EM_ECORRUPT, "sql stage: %zu bytes after the plan", r.n - r.off - used);
        goto out;
    }
    r.off = keys_at; /* the keys again, now with the output width known */
    for (uint32_t k = 0; k < nkeys; k++) {
        if ((rc = em__sql_expr_decode(&a, r.p + r.off, r.n - r.off, &used, plan->width,
                                      &keys[k], err)) < 0)
            goto out;
        r.off += used;
    }
    for (int i = 0; i < 2; i++) {
        if ((s.in[i] = em_arena_alloc(&a, sizeof *s.in[i])) == NULL) {
            rc = em_err_set(err, EM_ENOMEM, "sql stage: out of memory");
            goto out;
        }
        memset(s.in[i], 0, sizeof *s.in[i]);
        s.in[i]->width = w[i];
    }
    s.plan = plan;
    s.keys = keys;
    s.nkeys = nkeys;
    s.keyed = keyed;
    if ((src == SRC_CSV || src == SRC_EMC) && (rc = bind_inputs(&s, plan, NULL, 0)) < 0) /* broadcasts, before chunks */
        goto out;
    if ((rc = read_inputs(&s, src, &cs, plan, it)) < 0)
        goto out;
    if (s.chunked) /* emitted as read */
        goto out;
    if ((rc = bind_inputs(&s, plan, NULL, 0)) < 0)
        goto out;
    if (em__sql_run(&s.x, plan, NULL, &res) < 0) {
        rc = em_err_set(err, s.diag.err.code ? s.diag.err.code : EM_EINVAL, "%s", s.diag.err.msg);
        goto out;
    }
    rc = emit_rows(&s, res, keys, nkeys, keyed, out);
out:
    if (s.plan != NULL)
        em__sql_plan_free_caches(s.plan);
    em_arena_destroy(&s.chunk);
    em_arena_destroy(&a);
    return rc;
}

/* ---------------------------------------------------------------- sql.sort_key
 * Blob: u32 width, u32 nsort, nsort x (u32 col, u8 desc). */
static int sort_key_fn(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    stage_rd r = {.p = c->blob.p, .n = c->blob.n};
    uint32_t w, ns;
    int rc;
    if ((rc = rd_u32(&r, &w, err)) < 0 || (rc = rd_u32(&r, &ns, err)) < 0)
        return rc;
    if (w == 0 || w > 65536)
        return em_err_set(err, EM_ECORRUPT, "sql sort key: bad width");
    em_sql_value *row = em_malloc(w * sizeof *row);
    em_vbuf b;
    size_t used;
    if (row == NULL)
        return em_err_set(err, EM_ENOMEM, "sql sort key: out of memory");
    em_vbuf_init(&b);
    rc = em_sql_row_decode(in->val.p, in->val.n, row, w, &used, err);
    for (uint32_t i = 0; i < ns && rc == 0; i++) {
        uint32_t col;
        uint8_t desc;
        if ((rc = rd_u32(&r, &col, err)) < 0 || (rc = rd_u8(&r, &desc, err)) < 0)
            break;
        if (col >= w)
            rc = em_err_set(err, EM_ECORRUPT, "sql sort key: column %u of %u", col, w);
        else if (em_sql_key_encode(&b, &row[col], desc != 0) < 0)
            rc = em_err_set(err, EM_ENOMEM, "sql sort key: out of memory");
    }
    if (rc == 0)
        rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
    em_vbuf_destroy(&b);
    em_free(row);
    return rc;
}

/* ---------------------------------------------------------------- sql.emc_write
 * Writes the partition's rows (row codec) as DIR/part-<index>.emc and emits u64 rows.
 * Blob: str dir, u32 ncols, ncols x (u8 type, str name). */
static int emc_write_fn(const em_fn_ctx *c, uint32_t index, em_iter *it, em_emitter *out,
                        em_err *err)
{
    em_arena a;
    stage_rd r = {.p = c->blob.p, .n = c->blob.n};
    const char *dir;
    uint32_t nc;
    char path[4096];
    sql_cw *w = NULL;
    em_sql_value *row = NULL;
    em_rec rec;
    uint64_t rows = 0;
    int rc;
    em_arena_init(&a, 4096);
    if ((rc = rd_str(&r, &a, &dir, err)) < 0 || (rc = rd_u32(&r, &nc, err)) < 0)
        goto out;
    if (nc == 0 || nc > 4096) {
        rc = em_err_set(err, EM_ECORRUPT, "sql.emc_write: bad column count %u", nc);
        goto out;
    }
    uint8_t *types = em_arena_alloc(&a, nc);
    const char **names = em_arena_alloc(&a, nc * sizeof *names);
    row = em_malloc(nc * sizeof *row);
    if (types == NULL || names == NULL || row == NULL) {
        rc = em_err_set(err, EM_ENOMEM, "sql.emc_write: out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < nc; i++)
        if ((rc = rd_u8(&r, &types[i], err)) < 0 || (rc = rd_str(&r, &a, &names[i], err)) < 0)
            goto out;
    if ((size_t)snprintf(path, sizeof path, "%s/part-%05u.emc", dir, index) >= sizeof path) {
        rc = em_err_set(err, EM_EINVAL, "%s: path too long", dir);
        goto out;
    }
    if ((w = em__sql_cw_open(path, nc, types, names, err)) == NULL) {
        rc = err->code;
        goto out;
    }
    while ((rc = em_iter_next(it, &rec, err)) == 1) {
        size_t used;
        if ((rc = em_sql_row_decode(rec.val.p, rec.val.n, row, nc, &used, err)) < 0 ||
            (rc = em__sql_cw_row(w, row, err)) < 0)
            break;
    }
    if (rc < 0) {
        em__sql_cw_abort(w);
        goto out;
    }
    if ((rc = em__sql_cw_close(w, &rows, err)) == 0) {
        uint8_t v[8];
        em_enc_i64(v, (int64_t)rows);
        rc = em_emit_val(out, em_slice_make(v, 8), err);
    }
out:
    em_free(row);
    em_arena_destroy(&a);
    return rc;
}

int em_sql_register(void)
{
    static const em_fn_entry fns[] = {
        {"sql.stage", EM_FN_PARTITION, EM_FN(stage_fn)},
        {"sql.sort_key", EM_FN_MAP, EM_FN(sort_key_fn)},
        {"sql.emc_write", EM_FN_PARTITION, EM_FN(emc_write_fn)},
    };
    int rc = em_fn_register_table(fns, sizeof fns / sizeof fns[0]);
    return rc < 0 ? rc : em_sql_ml_register();   /* the labeled-point bridge's tasks */
}
