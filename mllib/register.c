/* mllib/register.c - em_ml_register: one call that registers the task-function tables of
 * every MLlib module (mllib/mllib.h). Adding a module means one line in `modules`. */
#include "engine/base/base.h"
#include "mllib/als/als.h"
#include "mllib/bayes/bayes.h"
#include "mllib/clustering/kmeans.h"
#include "mllib/decomp/decomp.h"
#include "mllib/eval/eval.h"
#include "mllib/feature/feature.h"
#include "mllib/linalg/rows.h"
#include "mllib/linear/glm.h"
#include "mllib/linear/linear.h"
#include "mllib/mlp/mlp.h"
#include "mllib/tuning/tuning.h"
#include "mllib/mllib.h"

static int (*const modules[])(void) = {
    em_als_register,
    em_als_io_register,
    em_linalg_register,
    em_kmeans_register,
    em_decomp_register,
    em_linear_register,
    em_eval_register,
    em_bayes_register,
    em_feature_register,
    em_glm_register,
    em_mlp_register,
    em_tune_register,
};

int em_ml_register(void)
{
    for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
        int rc = modules[i]();
        if (rc < 0)
            return rc;
    }
    return 0;
}
