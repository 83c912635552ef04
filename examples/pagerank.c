/* examples/pagerank.c - PageRank:
 *   ember run-example pagerank EDGES ITERATIONS OUTDIR [CHECKPOINT_EVERY]
 *
 * Same semantics as Spark's SparkPageRank example:
 *   links  = lines "src dst" -> distinct -> group_by_key           (cached)
 *            (edges go through distinct as plain "src<TAB>dst" records)
 *   ranks  = 1.0 for every page with outgoing links
 *   repeat ITERATIONS times:
 *     contribs = for (src, (dsts, rank)) in join(links, ranks): (dst, rank / |dsts|)
 *     ranks    = 0.15 + 0.85 * sum of contribs per dst
 * so pages that receive no contribution drop out of ranks, as in Spark. Node ids are
 * strings (whatever the tokens are); ranks are em_enc_f64 values.
 * CLEANUP: every handle is released once the next dataset is built on it, and every
 * CHECKPOINT_EVERY iterations (optional 4th argument, default 10, 0 = never) ranks are
 * checkpointed (reliably when ember.checkpoint.dir is set, else locally) and the old
 * handles released, so the shuffles of the iterations before go at once: a run of any
 * length keeps at most CHECKPOINT_EVERY + 2 shuffles' files (links' two: distinct and
 * group_by_key; and one per iteration since the last checkpoint), as Spark's ContextCleaner
 * would with a periodic checkpoint. A local checkpoint is lost with its executor; set
 * ember.checkpoint.dir where executors may be lost.
 * EDGES: one edge per line, two tokens separated by spaces/tabs; blank lines are skipped;
 * any other line is an error naming its content.
 * OUTDIR gets "node<TAB>rank" lines (rank with 12 decimals); stdout gets the 10 highest
 * ranks as "rank<TAB>node". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ember.h"

int ember_main(em_context *sc, int argc, char **argv);
int pr_parse_edge(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int pr_one(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int pr_contribs(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int pr_damp(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int pr_format(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);
int pr_rank_first(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err);

static const em_slice no_ctx = {NULL, 0};

static bool is_space(uint8_t b)
{
    return b == ' ' || b == '\t' || b == '\r' || b == '\n' || b == '\v' || b == '\f';
}

/* "src dst" -> plain record "src<TAB>dst"; blank -> nothing. The edge stays a plain record
 * through distinct and becomes a pair with em.lines_to_pairs afterwards: the plan cannot
 * know that a user function emits pairs, so distinct would treat (src, dst) pairs emitted
 * here as plain records. */
int pr_parse_edge(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_slice tok[3];
    size_t ntok = 0, i = 0, n = in->val.n;
    const uint8_t *p = in->val.p;

    (void)c;
    while (ntok < 3) {
        while (i < n && is_space(p[i]))
            i++;
        if (i == n)
            break;
        size_t start = i;
        while (i < n && !is_space(p[i]))
            i++;
        tok[ntok++] = em_slice_make(p + start, i - start);
    }
    if (ntok == 0)
        return 0;
    if (ntok != 2)
        return em_err_set(err, EM_ECORRUPT,
                          "pagerank: malformed edge line '%.*s' (want \"src dst\")",
                          (int)(n > 120 ? 120 : n), (const char *)p);
    uint8_t small[256];
    em_vbuf big;
    int rc;
    size_t len = tok[0].n + 1 + tok[1].n;
    if (len <= sizeof small) {
        memcpy(small, tok[0].p, tok[0].n);
        small[tok[0].n] = '\t';
        memcpy(small + tok[0].n + 1, tok[1].p, tok[1].n);
        return em_emit_val(out, em_slice_make(small, len), err);
    }
    em_vbuf_init(&big);
    if (em_vbuf_append(&big, tok[0].p, tok[0].n) < 0 || em_vbuf_append(&big, "\t", 1) < 0 ||
        em_vbuf_append(&big, tok[1].p, tok[1].n) < 0) {
        em_vbuf_destroy(&big);
        return em_err_set(err, EM_ENOMEM, "pagerank: out of memory");
    }
    rc = em_emit_val(out, em_slice_make(big.data, big.len), err);
    em_vbuf_destroy(&big);
    return rc;
}

static int emit_f64(em_emitter *out, double v, em_err *err)
{
    uint8_t b[8];
    em_enc_f64(b, v);
    return em_emit_val(out, em_slice_make(b, 8), err);
}

/* map_values: anything -> 1.0 */
int pr_one(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    (void)in;
    return emit_f64(out, 1.0, err);
}

/* value of join(links, ranks): em_pair(em_list of dsts, rank) -> (dst, rank / |dsts|) */
int pr_contribs(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_slice dsts, rank, item;
    bool has_l, has_r;
    em_list_iter it;
    uint8_t share[8];
    int rc;

    (void)c;
    if ((rc = em_pair_decode(in->val, &dsts, &has_l, &rank, &has_r, err)) < 0)
        return rc;
    if (!has_l || !has_r || rank.n != 8)
        return em_err_set(err, EM_ECORRUPT, "pagerank: malformed join value");
    if ((rc = em_list_iter_init(&it, dsts, err)) < 0)
        return rc;
    if (it.left == 0)
        return 0;
    em_enc_f64(share, em_dec_f64(rank.p) / it.left);
    while ((rc = em_list_iter_next(&it, &item, err)) > 0)
        if ((rc = em_emit_kv(out, item, em_slice_make(share, 8), err)) < 0)
            return rc;
    return rc;
}

/* map_values: sum of contributions -> 0.15 + 0.85 * sum */
int pr_damp(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    (void)c;
    if (in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "pagerank: sum of %zu bytes", in->val.n);
    return emit_f64(out, 0.15 + 0.85 * em_dec_f64(in->val.p), err);
}

/* (node, rank) -> "node\trank" */
int pr_format(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_vbuf b;
    int rc;

    (void)c;
    if (in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "pagerank: rank of %zu bytes", in->val.n);
    em_vbuf_init(&b);
    if (em_vbuf_printf(&b, "%.*s\t%.12f", (int)in->key.n, (const char *)in->key.p,
                       em_dec_f64(in->val.p)) < 0) {
        em_vbuf_destroy(&b);
        return em_err_set(err, EM_ENOMEM, "pagerank: out of memory");
    }
    rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
    em_vbuf_destroy(&b);
    return rc;
}

/* (node, rank) -> big-endian rank bits + node. Ranks are >= 0.15, and the bit patterns of
 * positive doubles sort like their values, so byte order = rank order. */
int pr_rank_first(const em_fn_ctx *c, const em_rec *in, em_emitter *out, em_err *err)
{
    em_vbuf b;
    uint8_t key[8];
    double r;
    uint64_t bits;
    int rc;

    (void)c;
    if (in->val.n != 8)
        return em_err_set(err, EM_ECORRUPT, "pagerank: rank of %zu bytes", in->val.n);
    r = em_dec_f64(in->val.p);
    memcpy(&bits, &r, 8);
    em_store_be64(key, bits);
    em_vbuf_init(&b);
    if (em_vbuf_append(&b, key, 8) < 0 || em_vbuf_append(&b, in->key.p, in->key.n) < 0) {
        em_vbuf_destroy(&b);
        return em_err_set(err, EM_ENOMEM, "pagerank: out of memory");
    }
    rc = em_emit_val(out, em_slice_make(b.data, b.len), err);
    em_vbuf_destroy(&b);
    return rc;
}

static bool parse_iters(const char *s, long *out)
{
    char *end;
    long v;

    if (*s < '0' || *s > '9')
        return false;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v > 1000000)
        return false;
    *out = v;
    return true;
}

/* out = step(in); releases in (out was built on it, so only the handle goes). */
static em_rdd *then(em_rdd *in, em_rdd *out)
{
    em_rdd_release(in);
    return out;
}

/* links: (src, em_list of distinct dsts), cached. */
static em_rdd *load_links(em_context *sc, const char *path)
{
    em_rdd *r = em_rdd_flat_map(em_text_file(sc, path, 0), "pr_parse_edge", no_ctx);
    r = then(r, em_rdd_distinct(r, 0));
    r = then(r, em_rdd_map(r, "em.lines_to_pairs", no_ctx));
    r = then(r, em_rdd_group_by_key(r, 0));
    return em_rdd_cache(r);
}

/* One iteration: the ranks after `ranks` (whose handle is released). */
static em_rdd *iterate(em_rdd *links, em_rdd *ranks)
{
    em_rdd *r = em_rdd_join(links, ranks, 0);
    em_rdd_release(ranks);
    r = then(r, em_rdd_values(r));
    r = then(r, em_rdd_flat_map(r, "pr_contribs", no_ctx));
    r = then(r, em_rdd_reduce_by_key(r, "em.sum_f64", no_ctx, 0));
    return then(r, em_rdd_map_values(r, "pr_damp", no_ctx));
}

int ember_main(em_context *sc, int argc, char **argv)
{
    em_rdd *links, *ranks, *out;
    em_records top = {0};
    em_err err = EM_ERR_INIT;
    long iters, every = 10;
    int rc;

    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: pagerank EDGES ITERATIONS OUTDIR [CHECKPOINT_EVERY]\n");
        return 2;
    }
    if (!parse_iters(argv[2], &iters)) {
        fprintf(stderr,
                "ember: pagerank: ITERATIONS: expected an integer in 0..1000000, "
                "got '%s'\n",
                argv[2]);
        return 2;
    }
    if (argc == 5 && !parse_iters(argv[4], &every)) {
        fprintf(stderr,
                "ember: pagerank: CHECKPOINT_EVERY: expected an integer in 0..1000000, "
                "got '%s'\n",
                argv[4]);
        return 2;
    }
    const char *ckdir = em_conf_get(em_context_conf(sc), "ember.checkpoint.dir");
    bool reliable = ckdir && *ckdir;
    links = load_links(sc, argv[1]);
    ranks = em_rdd_map_values(links, "pr_one", no_ctx);
    for (long i = 1; i <= iters; i++) {
        ranks = iterate(links, ranks);
        if (every > 0 && i % every == 0 && i < iters) {
            em_rdd *c = reliable ? em_rdd_checkpoint(ranks, &err)
                                 : em_rdd_local_checkpoint(ranks, &err);
            if (!c)
                goto fail;
            /* c does not depend on ranks' lineage: this frees the iterations' shuffles */
            ranks = then(ranks, c);
        }
    }
    ranks = em_rdd_cache(ranks);
    out = em_rdd_map(ranks, "pr_format", no_ctx);
    rc = em_rdd_save_as_text_file(out, argv[3], &err);
    em_rdd_release(out);
    if (rc < 0)
        goto fail;
    out = em_rdd_map(ranks, "pr_rank_first", no_ctx);
    rc = em_rdd_top(out, 10, &top, &err);
    em_rdd_release(out);
    if (rc < 0)
        goto fail;
    for (size_t i = 0; i < top.n; i++) {
        const em_slice v = top.recs[i].val;
        uint64_t bits = em_load_be64(v.p);
        double r;
        memcpy(&r, &bits, 8);
        printf("%.6f\t%.*s\n", r, (int)(v.n - 8), (const char *)v.p + 8);
    }
    em_records_destroy(&top);
    em_rdd_release(ranks);
    em_rdd_release(links);
    return 0;
fail:
    fprintf(stderr, "ember: pagerank: %s\n", err.msg);
    em_records_destroy(&top);
    return 1;
}
