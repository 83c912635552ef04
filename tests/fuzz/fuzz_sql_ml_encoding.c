/* tests/fuzz/fuzz_sql_ml_encoding.c - untrusted bytes as the SQL-to-MLlib bridge's task
 * context: the encoding (em_sql_ml_encoding_decode) and the task header
 * (em__sml_task_decode). A decoded encoding re-encodes to bytes that decode to the same
 * encoding, every indexed value is found by the lookup, and the header's column list lies
 * inside the input. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "sql/bridge_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_col(const sml_col *c)
{
    for (uint32_t k = 0; c->text && k < c->nvals; k++) {
        int64_t at = em__sml_lookup(c, (const uint8_t *)c->vals[k], c->lens[k]);
        EM_ASSERT(at >= 0 && at < c->nvals);
        EM_ASSERT(c->lens[at] == c->lens[k] && !memcmp(c->vals[at], c->vals[k], c->lens[k]));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em_err err = EM_ERR_INIT;
    em_sql_ml_encoding *e = NULL, *e2 = NULL;
    sml_task t;
    if (em__sml_task_decode(em_slice_make(data, size), &t, &err) == 0)
        EM_ASSERT(t.cols + 4 * (size_t)t.n <= data + size && t.rest.p + t.rest.n == data + size);
    if (em_sql_ml_encoding_decode(data, size, &e, &err) != 0)
        return 0;
    if (e->labeled)
        check_col(&e->label);
    for (uint32_t i = 0; i < e->nfeat; i++)
        check_col(&e->feat[i]);
    for (uint32_t j = 0; j < e->dim; j++)
        EM_ASSERT(em_sql_ml_encoding_feature(e, j) != NULL);
    em_vbuf a, b;
    em_vbuf_init(&a);
    em_vbuf_init(&b);
    EM_ASSERT(em_sql_ml_encoding_encode(e, &a) == 0);
    EM_ASSERT(em_sql_ml_encoding_decode(a.data, a.len, &e2, &err) == 0);
    EM_ASSERT(em_sql_ml_encoding_encode(e2, &b) == 0);
    EM_ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    EM_ASSERT(e2->dim == e->dim && e2->nfeat == e->nfeat);
    em_vbuf_destroy(&a);
    em_vbuf_destroy(&b);
    em_sql_ml_encoding_free(e);
    em_sql_ml_encoding_free(e2);
    return 0;
}
