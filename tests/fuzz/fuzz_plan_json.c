/* tests/fuzz/fuzz_plan_json.c - em_plan_from_json on untrusted bytes: decode, free. */
#include "engine/plan/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    em_plan_graph *g = NULL;
    em_plan_node *root = NULL;
    em_err err = EM_ERR_INIT;
    em_registry_init_builtins();
    if (em_plan_from_json((const char *)data, size, &g, &root, &err) == 0) {
        /* A decoded plan re-encodes (the executor never crashes on what it accepted). */
        char *js = em_plan_to_json(root, root->op == EM_OP_SHUFFLED && root->nparents == 1,
                                   &err);
        em_free(js);
        em_plan_graph_free(g);
    }
    return 0;
}
