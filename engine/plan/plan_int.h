/* engine/plan/plan_int.h - internals shared by the files of engine/plan only. */
#ifndef EMBER_PLAN_INT_H
#define EMBER_PLAN_INT_H

#include "engine/plan/plan.h"
#include "shuffle/shuffle.h"     /* partitioners, reduce modes (plan.h keeps them opaque) */
#include "storage/storage.h"     /* storage levels */

/* New zeroed node with an explicit id (decoding). Keeps the graph's lookup correct whatever
 * the order of ids. Aborts on OOM (control structure). */
em_plan_node *em__plan_node_new_id(em_plan_graph *g, em_op op, uint32_t id);
/* Frees the contents of one node (not the node itself). */
void em__plan_node_clear(em_plan_node *n);
/* Registers every built-in (builtins.c); called once through em_registry_init_builtins. */
void em__plan_register_builtins(void);

/* ---------------------------------------------------------------- JSON helpers
 * Shared by json.c (fields of every node) and ops.c (each op's own fields). All decoders
 * take untrusted JSON and name the node and the field in errors. */
#define EM__PJ_MAX_NODES (1u << 16)
#define EM__PJ_MAX_PARTS (1u << 20)
struct json_t;
/* "plan node <id> (<op>): field '<field>': <what>"; returns code. */
int em__pj_ferr(em_err *err, int code, const em_plan_node *n, const char *field,
                const char *what);
/* Integer field in [lo, hi]; absent: EM_ECORRUPT if required, else *out = lo. */
int em__pj_get_u32(const struct json_t *o, const em_plan_node *n, const char *key,
                   bool required, uint32_t lo, uint32_t hi, uint32_t *out, em_err *err);
/* Required decimal uint64 string field. */
int em__pj_get_u64s(const struct json_t *o, const em_plan_node *n, const char *key,
                    uint64_t *out, em_err *err);
/* A decimal uint64 string value: 0, or -1 when it is not one. */
int em__pj_parse_u64(const struct json_t *v, uint64_t *out);
/* Optional string without NUL bytes: *out = owned copy, NULL when absent. */
int em__pj_get_str(const struct json_t *o, const em_plan_node *n, const char *key, char **out,
                   em_err *err);
/* v in decimal, in buf (returned). */
char *em__pj_u64_str(uint64_t v, char buf[24]);
/* Sets o[key] = a (taken) when a holds `expect` items; false (a dropped) otherwise. */
bool em__pj_set_arr(struct json_t *o, const char *key, struct json_t *a, size_t expect);
/* EM_EPLAN unless lo <= nparents <= hi. */
int em__pj_want_parents(const em_plan_node *n, uint32_t lo, uint32_t hi, em_err *err);
/* Resolves function `name` of the node's field as kind (absent: EM_EPLAN if required). */
int em__pj_resolve(const em_plan_node *n, const char *field, const char *name, em_fn_kind kind,
                   bool required, em_err *err);

#endif /* EMBER_PLAN_INT_H */
