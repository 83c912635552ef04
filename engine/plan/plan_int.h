/* engine/plan/plan_int.h - internals shared by the files of engine/plan only. */
#ifndef EMBER_PLAN_INT_H
#define EMBER_PLAN_INT_H

#include "engine/plan/plan.h"

/* New zeroed node with an explicit id (decoding). Keeps the graph's lookup correct whatever
 * the order of ids. Aborts on OOM (control structure). */
em_plan_node *em__plan_node_new_id(em_plan_graph *g, em_op op, uint32_t id);
/* Frees the contents of one node (not the node itself). */
void em__plan_node_clear(em_plan_node *n);
/* Registers every built-in (builtins.c); called once through em_registry_init_builtins. */
void em__plan_register_builtins(void);

#endif /* EMBER_PLAN_INT_H */
