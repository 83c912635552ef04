/* mllib/linalg/load.c - em_ml_read, the driver's half of the loaders: lists the input
 * files, reads the CSV/TSV header, builds the parse context (linalg_int.h), plans
 * em_text_file -> ml.linalg.parse (FIXED dense rows or BYTES sparse rows), persists the
 * rows and runs the one counting job that makes every bad line surface here.
 *
 * SPLITS: the parse context carries the text source's splits so that an executor can name
 * the file and line of a bad line. They are recomputed here with the rule documented in
 * engine/api/sources.c (files of a directory not starting with '_' or '.', sorted by name;
 * split = min(total / min_parts, 32 MiB), cut while more than 1.1 splits remain); when the
 * count differs from the source's partitions (a rule changed under us) the table is left
 * out and errors name the partition instead; CSV/TSV then fails at once, since the header
 * lines could not be told from the rows.
 * LIBSVM without a feature count: the rows are parsed sparse, then one ml.linalg.scan pass
 * finds the count and the largest index; dense output is the densified copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mllib/linalg/linalg_int.h"

#define SPLIT_MAX ((uint64_t)32 << 20)


/* Appends the split table (u32 file, u64 start per split) in the text source's order. */
static uint32_t add_splits(const em_file_list *fl, uint32_t min_parts, em_vbuf *b)
{
    uint64_t total = 0;
    uint32_t n = 0;
    for (size_t i = 0; i < fl->n; i++)
        total += fl->sizes[i];
    uint64_t goal = total / (min_parts ? min_parts : 1);
    uint64_t split = goal < SPLIT_MAX ? goal : SPLIT_MAX;
    if (split == 0)
        split = 1;
    for (size_t i = 0; i < fl->n; i++) {
        uint64_t off = 0, rem = fl->sizes[i];
        while ((double)rem / (double)split > 1.1) {
            em_vbuf_append_u32le(b, (uint32_t)i);
            em_vbuf_append_u64le(b, off);
            off += split;
            rem -= split;
            n++;
        }
        if (rem > 0 || fl->sizes[i] == 0) {
            em_vbuf_append_u32le(b, (uint32_t)i);
            em_vbuf_append_u64le(b, off);
            n++;
        }
    }
    return n;
}

/* Reads the first line of path (at most 1 MiB) into a NUL-terminated string. */
static int first_line(const char *path, char **out, em_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return em_err_set(err, EM_EIO, "%s: cannot open", path);
    size_t cap = 1 << 20;
    char *buf = em_xmalloc(cap + 1);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    buf[n] = 0;
    char *nl = memchr(buf, '\n', n);
    if (!nl && n == cap) {
        em_free(buf);
        return em_err_set(err, EM_ECORRUPT, "%s:1: header line longer than 1 MiB", path);
    }
    if (nl)
        *nl = 0;
    size_t len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\r')
        buf[len - 1] = 0;
    *out = buf;
    return 0;
}

/* Counts the header's columns and finds the label column (EM__ML_NO_LABEL without one). */
static int parse_header(const char *path, const char *hdr, char sep, const char *label,
                        uint32_t *ncols, uint32_t *label_col, em_err *err)
{
    *ncols = 0;
    *label_col = EM__ML_NO_LABEL;
    if (!*hdr)
        return em_err_set(err, EM_ECORRUPT, "%s:1: empty header line", path);
    for (const char *p = hdr;; (*ncols)++) {
        const char *e = strchr(p, sep), *fe = e ? e : p + strlen(p);
        const char *a = p, *b = fe;
        while (a < b && (*a == ' ' || *a == '"'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '"'))
            b--;
        if (label && strlen(label) == (size_t)(b - a) && !memcmp(label, a, (size_t)(b - a)))
            *label_col = *ncols;
        if (!e) {
            (*ncols)++;
            break;
        }
        p = e + 1;
    }
    if (label && *label_col == EM__ML_NO_LABEL)
        return em_err_set(err, EM_EINVAL, "%s:1: no column named '%s' in the header", path,
                          label);
    if (*ncols <= (label ? 1u : 0u))
        return em_err_set(err, EM_EINVAL, "%s:1: the header names no feature column", path);
    return 0;
}

typedef struct plan_in {
    em_ml_format format;
    bool sparse, labeled, skip, coalesce;
    uint32_t dim, ncols, label_col, acc, nsplits;
    const em_file_list *fl;
    const em_vbuf *splits;
} plan_in;

static void build_ctx(const plan_in *pi, em_vbuf *b)
{
    uint8_t h[8] = {0};
    em_store_le32(h, EM__ML_PARSE_MAGIC);
    h[4] = (uint8_t)pi->format;
    h[5] = pi->sparse;
    h[6] = pi->labeled;
    h[7] = pi->skip;
    em_vbuf_append(b, h, 8);
    em_vbuf_append_u32le(b, pi->dim);
    em_vbuf_append_u32le(b, pi->ncols);
    em_vbuf_append_u32le(b, pi->label_col);
    em_vbuf_append_u32le(b, pi->acc);
    em_vbuf_append_u32le(b, (uint32_t)pi->fl->n);
    em_vbuf_append_u32le(b, pi->nsplits);
    for (size_t i = 0; i < pi->fl->n; i++) {
        em_vbuf_append_u32le(b, (uint32_t)strlen(pi->fl->paths[i]));
        em_vbuf_append(b, pi->fl->paths[i], strlen(pi->fl->paths[i]));
    }
    if (pi->nsplits)
        em_vbuf_append(b, pi->splits->data, pi->splits->len);
}

/* The LIBSVM pass without a feature count: count rows and find the largest index. */
static int scan_sparse(em_ml_data *d, em_err *err)
{
    uint8_t lay[6];
    uint64_t acc[2];
    em_vbuf out;
    em_ml_layout_encode(d, lay);
    em_agg a = {.size = sizeof acc, .seq = "ml.linalg.scan", .merge = "ml.linalg.scan_merge",
                .ctx = em_slice_make(lay, sizeof lay)};
    em_vbuf_init(&out);
    int rc = em_rdd_tree_aggregate_acc(d->rows, &a, 2, &out, err);
    if (rc == 0 && out.len == sizeof acc) {
        memcpy(acc, out.data, sizeof acc);
        d->nrows = acc[0];
        if (acc[1] > UINT32_MAX - 1)
            rc = em_err_set(err, EM_EINVAL, "feature index %llu too large",
                            (unsigned long long)acc[1]);
        d->dim = (uint32_t)acc[1];
    } else if (rc == 0)
        rc = em_err_set(err, EM_ECORRUPT, "ml.linalg.scan: result of %zu bytes", out.len);
    em_vbuf_destroy(&out);
    return rc;
}

static int densify(em_ml_data *d, em_err *err)
{
    em_ml_data dense = *d;
    uint8_t lay[6];
    dense.sparse = false;
    if (dense.dim == 0)
        dense.dim = 1;
    em_ml_layout_encode(&dense, lay);
    uint32_t w = 8 * (dense.dim + (dense.labeled ? 1 : 0));
    dense.rows = em_rdd_map_fixed(d->rows, "ml.linalg.densify", em_slice_make(lay, 6), w);
    em_rdd_persist(dense.rows, EM_PERSIST_MEMORY_AND_DISK);
    uint64_t n;
    int rc = em_rdd_count(dense.rows, &n, err);
    em_ml_data_release(d);
    *d = dense;
    return rc;
}

static int read_header(const em_file_list *fl, const em_ml_read_opts *o, plan_in *pi,
                       em_err *err)
{
    char *hdr = NULL;
    int rc = first_line(fl->paths[0], &hdr, err);
    if (rc == 0)
        rc = parse_header(fl->paths[0], hdr, o->format == EM_ML_TSV ? '\t' : ',', o->label,
                          &pi->ncols, &pi->label_col, err);
    em_free(hdr);
    pi->dim = pi->ncols - (o->label ? 1 : 0);
    return rc;
}

static int plan_and_count(em_context *sc, const char *path, const plan_in *in,
                          uint32_t min_parts, em_ml_data *out, em_err *err)
{
    plan_in pi = *in;
    em_vbuf ctx;
    em_rdd *text = em_text_file(sc, path, min_parts);
    if (em_rdd_num_partitions(text) != pi.nsplits) {
        em_log(EM_LOG_WARN, "ml read %s: %u splits expected, the text source made %u", path,
               pi.nsplits, em_rdd_num_partitions(text));
        pi.nsplits = 0;
        if (pi.format != EM_ML_LIBSVM) {
            em_rdd_release(text);
            return em_err_set(err, EM_EINVAL, "cannot find the header lines of the splits");
        }
    }
    em_vbuf_init(&ctx);
    build_ctx(&pi, &ctx);
    if (!pi.sparse)
        out->rows = em_rdd_map_partitions_fixed(text, "ml.linalg.parse",
                                                em_slice_make(ctx.data, ctx.len), false,
                                                8 * (pi.dim + (pi.labeled ? 1 : 0)));
    else
        out->rows = em_rdd_map_partitions(text, "ml.linalg.parse",
                                          em_slice_make(ctx.data, ctx.len), false);
    em_vbuf_destroy(&ctx);
    em_rdd_release(text);
    uint32_t slots = em_context_default_parallelism(sc);
    if (pi.coalesce && em_rdd_num_partitions(out->rows) > slots) {
        /* Contiguous runs of splits, each parsed by one task (the parse context still
         * names the split of a bad line: it gets the split's own partition index). */
        em_rdd *c = em_rdd_coalesce(out->rows, slots, false);
        em_rdd_release(out->rows);
        out->rows = c;
    }
    em_rdd_persist(out->rows, EM_PERSIST_MEMORY_AND_DISK);
    if (pi.sparse && pi.dim == 0)
        return scan_sparse(out, err);
    return em_rdd_count(out->rows, &out->nrows, err);
}

int em_ml_read(em_context *sc, const char *path, const em_ml_read_opts *o, em_ml_data *out,
               em_err *err)
{
    em_file_list fl;
    em_vbuf splits;
    plan_in pi = {.format = o->format, .skip = o->skip_bad_lines, .coalesce = o->coalesce,
                  .label_col = EM__ML_NO_LABEL};
    int rc;

    memset(out, 0, sizeof *out);
    if ((rc = em_linalg_register()) < 0)
        return em_err_set(err, rc, "ml.linalg: a task function name is taken");
    if (o->format != EM_ML_CSV && o->format != EM_ML_TSV && o->format != EM_ML_LIBSVM)
        return em_err_set(err, EM_EINVAL, "unknown data format %d", (int)o->format);
    if ((rc = em_file_list_expand(path, &fl, err)) < 0)
        return rc;
    em_vbuf_init(&splits);
    uint32_t mp = o->min_partitions ? o->min_partitions : em_context_default_parallelism(sc);
    pi.fl = &fl;
    pi.splits = &splits;
    pi.nsplits = add_splits(&fl, mp, &splits);
    if (o->format == EM_ML_LIBSVM) {
        pi.labeled = true;
        pi.dim = o->dim;
        pi.sparse = !o->dense || o->dim == 0;
    } else if ((rc = read_header(&fl, o, &pi, err)) < 0)
        goto out;
    else
        pi.labeled = o->label != NULL;
    if (pi.skip)
        pi.acc = em_accumulator_new(sc, "ml.linalg.skipped_lines");
    out->sparse = pi.sparse;
    out->labeled = pi.labeled;
    out->dim = pi.dim;
    rc = plan_and_count(sc, path, &pi, mp, out, err);
    if (rc == 0 && o->format == EM_ML_LIBSVM && o->dense && pi.sparse)
        rc = densify(out, err);
    if (rc == 0 && pi.acc)
        out->skipped = (uint64_t)em_accumulator_i64(sc, pi.acc);
out:
    if (rc < 0) {
        em_ml_data_release(out);
        em_err_prefix(err, "reading %s", path);
    }
    em_vbuf_destroy(&splits);
    em_file_list_destroy(&fl);
    return rc;
}
