/* sql/dataset.c - a query's result as an engine dataset (em_rdd), so jobs mix SQL and
 * transformations. Today the result is computed on the local path and handed to the engine
 * with em_parallelize; each record is one row in the typed row codec (sql/sql.h). When SQL
 * runs as distributed stages, this is where the result will stay distributed instead. */
#include "engine/ember.h"
#include "sql/sql_int.h"

em_rdd *em_sql_result_to_rdd(em_context *sc, const em_sql_result *r, uint32_t nparts,
                             em_err *err)
{
    size_t n = em_sql_result_nrows(r);
    uint32_t ncols = em_sql_result_ncols(r);
    em_vbuf b;
    size_t *ends = em_malloc((n + 1) * sizeof *ends);
    em_rec *recs = em_calloc(n + 1, sizeof *recs);
    em_rdd *out = NULL;
    em_vbuf_init(&b);
    if (ends == NULL || recs == NULL) {
        em_err_set(err, EM_ENOMEM, "sql result to dataset: out of memory");
        goto done;
    }
    if (ncols == 0) {
        em_err_set(err, EM_EINVAL, "sql result to dataset: the statement returned no columns");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (em_sql_row_encode(&b, em_sql_result_row(r, i), ncols) < 0) {
            em_err_set(err, EM_ENOMEM, "sql result to dataset: out of memory");
            goto done;
        }
        ends[i] = b.len;
    }
    for (size_t i = 0; i < n; i++) { /* b.data is final now: point into it */
        size_t start = i ? ends[i - 1] : 0;
        recs[i].val = em_slice_make(b.data + start, ends[i] - start);
    }
    out = em_parallelize(sc, EM_REC_BYTES, 0, recs, n, nparts);
done:
    em_vbuf_destroy(&b);
    em_free(ends);
    em_free(recs);
    return out;
}
