/* tests/unit/plan/test_json.c - plan JSON: round trips of graphs with every op and the
 * decoder's rejection of malformed or hostile input. */
#include "tests/unit/exec/exec_test_util.h"

/* A graph using every op and field; returns the root of a result stage over it and sets
 * *map_root to a SHUFFLED node whose map side includes most ops. */
static em_plan_node *every_op(em_plan_graph *g, em_plan_node **map_root)
{
    em_plan_node *par = tn(g, EM_OP_PARALLELIZE, 2, NULL, NULL);
    par->is_kv = true;
    par->level = EM_STORAGE_MEMORY_AND_DISK;
    par->name = em_xstrdup("parallelize \"q\"");
    em_plan_node *rng = tn(g, EM_OP_RANGE, 2, NULL, NULL);
    rng->range_start = INT64_MIN;
    rng->range_end = INT64_MAX;
    rng->range_step = 7;
    rng->width = 8;
    em_plan_node *txt = tn(g, EM_OP_TEXT_FILE, 2, NULL, NULL);
    txt->splits = em_xcalloc(2, sizeof *txt->splits);
    txt->nsplits = 2;
    txt->splits[0] = (em_split){em_xstrdup("/data/\xc3\xa9.txt"), 0, UINT64_MAX / 2, 0};
    txt->splits[1] = (em_split){em_xstrdup("/data/b.txt"), 5, 6, 1};
    em_plan_node *whole = tn(g, EM_OP_WHOLE_TEXT_FILES, 1, NULL, NULL);
    whole->splits = em_xcalloc(1, sizeof *whole->splits);
    whole->nsplits = 1;
    whole->splits[0] = (em_split){em_xstrdup("/d/x"), 0, 3, 0};
    em_plan_node *map = tn(g, EM_OP_MAP, 2, par, NULL);
    tn_fn(map, "em.identity", "\x00\x01\xff", 3);
    map->flags = EM_NODE_VALUES_ONLY;
    em_plan_node *fil = tn(g, EM_OP_FILTER, 2, map, NULL);
    tn_fn(fil, "em.key_equals", "k", 1);
    em_plan_node *mp = tn(g, EM_OP_MAP_PARTITIONS, 2, fil, NULL);
    tn_fn(mp, "em.aggregate_partition", NULL, 0);
    em_plan_node *smp = tn(g, EM_OP_SAMPLE, 2, mp, NULL);
    smp->sample_fraction = 0.1;
    smp->seed = UINT64_MAX;
    em_plan_node *glom = tn(g, EM_OP_GLOM, 2, rng, NULL);
    em_plan_node *zip = tn(g, EM_OP_ZIP_WITH_INDEX, 2, txt, NULL);
    zip->zip_starts = em_xcalloc(2, 8);
    zip->zip_starts[1] = (uint64_t)1 << 60;
    em_plan_node *lr = tn(g, EM_OP_LOCAL_REDUCE, 2, smp, NULL);
    lr->mode = EM_REDUCE_AGGREGATE;
    lr->fn = em_xstrdup("em.concat_list");
    lr->fn_create = em_xstrdup("em.to_list");
    lr->fn_merge = em_xstrdup("em.concat_list");
    lr->zero = em_xmalloc(1);   /* present but empty */
    em_plan_node *uni = tn(g, EM_OP_UNION, 5, lr, glom);
    em_plan_node *ps3[3] = {lr, glom, whole};
    em_plan_node_set_parents(uni, ps3, 3);
    em_plan_node *coal = tn(g, EM_OP_COALESCE, 2, uni, NULL);
    coal->coalesce_starts = em_xcalloc(3, 4);
    coal->coalesce_starts[1] = 3;
    coal->coalesce_starts[2] = 5;
    em_plan_node *cart = tn(g, EM_OP_CARTESIAN, 4, coal, zip);
    em_plan_node *tag = tn(g, EM_OP_TAG, 4, cart, NULL);
    tag->tag = 1;
    em_plan_node *sh = tn(g, EM_OP_SHUFFLED, 3, tag, NULL);
    sh->shuffle_id = 12;
    sh->map_part = EM_MAP_PART_RANGE;
    sh->mode = EM_REDUCE_GROUP;
    sh->part.kind = EM_PART_RANGE;
    sh->part.nparts = 3;
    sh->part.nbounds = 2;
    sh->part.bounds = em_xcalloc(2, sizeof(em_slice));
    sh->part.bounds[0] = em_slice_make(em_xstrdup("b"), 1);
    sh->part.bounds[1] = em_slice_make(em_xstrdup("d\xff"), 2);
    sh->part.descending = true;
    em_plan_node *cg = tn(g, EM_OP_COGROUP_SPLIT, 3, sh, NULL);
    cg->flags = EM_NODE_JOIN_INNER | EM_NODE_JOIN_LEFT;
    *map_root = sh;
    return cg;
}

static char *roundtrip(const char *js)
{
    em_plan_graph *g2;
    em_plan_node *root;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_plan_from_json(js, strlen(js), &g2, &root, &err), 0, "%s\n%s", err.msg, js);
    bool map_side = strstr(js, "\"shuffled\"") && root->op == EM_OP_SHUFFLED &&
                    root->nparents == 1;
    char *js2 = em_plan_to_json(root, map_side, &err);
    cr_assert(js2, "%s", err.msg);
    em_plan_graph_free(g2);
    return js2;
}

Test(json, roundtrip_every_op)
{
    em_registry_init_builtins();
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *sh;
    em_plan_node *root = every_op(g, &sh);
    em_err err = EM_ERR_INIT;
    char *js = em_plan_to_json(root, false, &err);
    cr_assert(js, "%s", err.msg);
    char *js2 = roundtrip(js);
    cr_assert_str_eq(js2, js);
    cr_assert(strstr(js, "\"op\":\"cogroup_split\"") && strstr(js, "\"op\":\"shuffled\""));
    cr_assert_null(strstr(js, "\"op\":\"tag\""), "the result stage stops at the shuffle");
    em_free(js);
    em_free(js2);
    js = em_plan_to_json(sh, true, &err);
    cr_assert(js, "%s", err.msg);
    for (int op = 1; op < EM_OP_COGROUP_SPLIT; op++) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"op\":\"%s\"", em_op_name((em_op)op));
        cr_assert(strstr(js, pat), "map stage lacks %s", pat);
    }
    js2 = roundtrip(js);
    cr_assert_str_eq(js2, js);
    em_free(js);
    em_free(js2);
    em_plan_graph_free(g);
}

Test(json, stage_roundtrip_through_exec)
{
    em_registry_init_builtins();
    em_plan_graph *g = em_plan_graph_new();
    em_plan_node *sh;
    em_plan_node *root = every_op(g, &sh);
    em_err err = EM_ERR_INIT;
    em_result_spec spec = {.op = EM_RESULT_TOP, .n = 3, .descending = true, .seed = 1};
    char *js = em_stage_encode(root, false, &spec, &err);
    cr_assert(js, "%s", err.msg);
    cr_assert(strstr(js, "\"op\":\"top\""));
    em_free(js);
    em_plan_graph_free(g);
}

/* Decoding `js` fails with `code` and a message containing `needle`. */
static void rejects(const char *js, int code, const char *needle)
{
    em_plan_graph *g = NULL;
    em_plan_node *root = NULL;
    em_err err = EM_ERR_INIT;
    em_registry_init_builtins();
    int rc = em_plan_from_json(js, strlen(js), &g, &root, &err);
    cr_assert_eq(rc, code, "%s: rc %d (%s)", js, rc, err.msg);
    cr_assert(strstr(err.msg, needle), "%s: message '%s' lacks '%s'", js, err.msg, needle);
    cr_assert_null(g);
}

#define NODE1 "{\"id\":1,\"op\":\"range\",\"flags\":0,\"nparts\":2,\"width\":8,\"is_kv\":false," \
              "\"level\":0,\"parents\":[],\"range\":[0,10,1]}"

Test(json, accepts_minimal)
{
    em_plan_graph *g;
    em_plan_node *root;
    em_err err = EM_ERR_INIT;
    const char *js = "{\"version\":1,\"root\":1,\"nodes\":[" NODE1 "]}";
    cr_assert_eq(em_plan_from_json(js, strlen(js), &g, &root, &err), 0, "%s", err.msg);
    cr_assert_eq(root->range_end, 10);
    em_plan_graph_free(g);
}

Test(json, rejects_malformed)
{
    rejects("", EM_ECORRUPT, "JSON error");
    rejects("[]", EM_ECORRUPT, "version");
    rejects("{\"version\":2,\"root\":1,\"nodes\":[" NODE1 "]}", EM_ECORRUPT, "version");
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 "]}", EM_EPLAN, "root 2");
    rejects("{\"version\":1,\"root\":1,\"nodes\":[" NODE1 "," NODE1 "]}", EM_ECORRUPT, "twice");
    rejects("{\"version\":1,\"root\":1,\"nodes\":[{\"id\":1,\"op\":\"nope\"}]}", EM_ECORRUPT,
            "'op'");
    rejects("{\"version\":1,\"root\":1,\"nodes\":[{\"id\":1,\"op\":\"range\",\"flags\":0,"
            "\"width\":8,\"is_kv\":false,\"level\":0,\"parents\":[],\"range\":[0,1,1]}]}",
            EM_ECORRUPT, "plan node 1 (range): field 'nparts': missing");
    rejects("{\"version\":1,\"root\":1,\"nodes\":[{\"id\":1,\"op\":\"range\",\"flags\":0,"
            "\"nparts\":0,\"width\":8,\"is_kv\":false,\"level\":0,\"parents\":[],"
            "\"range\":[0,1,1]}]}", EM_ECORRUPT, "'nparts': out of range");
    rejects("{\"version\":1,\"root\":1,\"nodes\":[{\"id\":1,\"op\":\"range\",\"flags\":0,"
            "\"nparts\":1,\"width\":8,\"is_kv\":false,\"level\":0,\"parents\":[],"
            "\"range\":[0,1,0]}]}", EM_EPLAN, "step is 0");
    /* bad parent id, self-cycle, forward (cyclic) parent */
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"glom\","
            "\"flags\":0,\"nparts\":2,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[5]}]}", EM_EPLAN, "plan node 2 (glom): field 'parents': unknown");
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"glom\","
            "\"flags\":0,\"nparts\":2,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[2]}]}", EM_EPLAN, "cycle");
    /* wrong nparts for a narrow op */
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"glom\","
            "\"flags\":0,\"nparts\":3,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[1]}]}", EM_EPLAN, "differs from the parent");
    /* bad base64 and unknown function */
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"map\","
            "\"flags\":0,\"nparts\":2,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[1],\"fn\":\"em.identity\",\"blob\":\"a$==\"}]}", EM_ECORRUPT,
            "'blob'");
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"map\","
            "\"flags\":0,\"nparts\":2,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[1],\"fn\":\"no_such_fn_xyz\"}]}", EM_EPLAN,
            "function 'no_such_fn_xyz' is not registered");
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"map\","
            "\"flags\":0,\"nparts\":2,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[1],\"fn\":\"em.sum_i64\"}]}", EM_EPLAN,
            "is a reduce function, not a map function");
    /* coalesce beyond the parent */
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"coalesce\","
            "\"flags\":0,\"nparts\":1,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[1],\"coalesce_starts\":[0,3]}]}", EM_EPLAN, "beyond");
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"coalesce\","
            "\"flags\":0,\"nparts\":2,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[1],\"coalesce_starts\":[0,2,1]}]}", EM_EPLAN, "monotone");
    /* split partition out of range, seed not a string */
    rejects("{\"version\":1,\"root\":1,\"nodes\":[{\"id\":1,\"op\":\"text_file\",\"flags\":0,"
            "\"nparts\":1,\"width\":0,\"is_kv\":false,\"level\":0,\"parents\":[],"
            "\"splits\":[{\"path\":\"/x\",\"start\":\"0\",\"len\":\"1\",\"part\":1}]}]}",
            EM_ECORRUPT, "split 0");
    rejects("{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"sample\","
            "\"flags\":0,\"nparts\":2,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[1],\"sample\":{\"fraction\":0.5,\"with_replacement\":false},"
            "\"seed\":5}]}", EM_ECORRUPT, "'seed'");
    /* a shuffled node with a parent that is not the root */
    rejects("{\"version\":1,\"root\":3,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"shuffled\","
            "\"flags\":256,\"nparts\":2,\"width\":0,\"is_kv\":false,\"level\":0,"
            "\"parents\":[1],\"shuffle_id\":1,\"map_part\":3,\"mode\":0,\"seed\":\"1\"},"
            "{\"id\":3,\"op\":\"glom\",\"flags\":0,\"nparts\":2,\"width\":0,\"is_kv\":false,"
            "\"level\":0,\"parents\":[2]}]}", EM_EPLAN, "only as the root");
}

Test(json, base64_roundtrip_and_errors)
{
    uint8_t buf[64];
    for (size_t n = 0; n < sizeof buf; n++) {
        buf[n] = (uint8_t)(n * 37 + 1);
        char *s = em_base64_encode(buf, n);
        uint8_t *out;
        size_t len;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(strlen(s), (n + 2) / 3 * 4);
        cr_assert_eq(em_base64_decode(s, strlen(s), &out, &len, &err), 0, "%s", err.msg);
        cr_assert(len == n && memcmp(out, buf, n) == 0);
        em_free(out);
        em_free(s);
    }
    char *foob = em_base64_encode((const uint8_t *)"foob", 4);
    cr_assert_str_eq(foob, "Zm9vYg==");
    em_free(foob);
    static const char *bad[] = {"Zm9", "Zm9v=", "Zm=v", "====", "Zm9vYh==", "Zm9v\nA=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *out;
        size_t len;
        em_err err = EM_ERR_INIT;
        cr_assert_eq(em_base64_decode(bad[i], strlen(bad[i]), &out, &len, &err), EM_ECORRUPT,
                     "%s", bad[i]);
    }
}

/* Every op has one descriptor: a unique name that maps back to it, a consistent shape, and
 * an arity the decoder can satisfy; an op outside the table is "unknown" and never fits. */
Test(json, every_op_has_a_descriptor)
{
    for (int op = 1; op < EM_OP__COUNT; op++) {
        const em_op_desc *d = em_op_desc_get((em_op)op);
        cr_assert_str_neq(d->name, "unknown", "op %d has no descriptor", op);
        cr_assert_eq(em_op_from_name(d->name), (em_op)op, "%s", d->name);
        cr_assert_str_eq(em_op_name((em_op)op), d->name);
        cr_assert_leq(d->min_parents, d->max_parents, "%s", d->name);
        cr_assert(!(d->source && d->min_parents), "%s: a source reads no parent", d->name);
        cr_assert(!d->one_to_one || (d->min_parents == 1 && d->max_parents == 1), "%s",
                  d->name);
        cr_assert_eq(em_op_one_to_one((em_op)op), d->one_to_one);
    }
    cr_assert_str_eq(em_op_desc_get((em_op)0)->name, "unknown");
    cr_assert_str_eq(em_op_desc_get(EM_OP__COUNT)->name, "unknown");
    cr_assert_gt(em_op_desc_get(EM_OP__COUNT)->min_parents,
                 em_op_desc_get(EM_OP__COUNT)->max_parents);
    cr_assert(em_op_desc_get(EM_OP_SHUFFLED)->wide);
    cr_assert(em_op_desc_get(EM_OP_TEXT_FILE)->source);
}

/* A fixed-width map keeps its declared width through JSON (map nodes used to carry 0). */
Test(json, map_width_roundtrips)
{
    em_registry_init_builtins();
    const char *js = "{\"version\":1,\"root\":2,\"nodes\":[" NODE1 ",{\"id\":2,\"op\":\"map\","
                     "\"flags\":0,\"nparts\":2,\"width\":24,\"is_kv\":false,\"level\":0,"
                     "\"parents\":[1],\"fn\":\"em.identity\"}]}";
    em_plan_graph *g;
    em_plan_node *root;
    em_err err = EM_ERR_INIT;
    cr_assert_eq(em_plan_from_json(js, strlen(js), &g, &root, &err), 0, "%s", err.msg);
    cr_assert_eq(root->width, 24);
    char *js2 = em_plan_to_json(root, false, &err);
    cr_assert(js2 && strstr(js2, "\"width\":24"), "%s", js2 ? js2 : err.msg);
    em_free(js2);
    em_plan_graph_free(g);
}
