/* mllib/bayes/cli.c - `ember ml nb`: train naive Bayes on the engine, evaluate it on --test
 * (else --train) with the multiclass metrics, optionally save the model and write the
 * predictions. With --json the last stdout line is one JSON object: accuracy,
 * weighted_precision, weighted_recall, weighted_f1, confusion, test_count, log_loss,
 * num_classes, num_features, model_type, smoothing, train_s, predict_s, load_s, total_s,
 * peak_rss_mib. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "mllib/bayes/bayes.h"
#include "mllib/eval/eval.h"
#include "mllib/ml_cli.h"

void em_nb_cli_help(FILE *f)
{
    em_ml_cli c;
    fputs("Usage: ember ml nb --train PATH [--test PATH] [options]\n"
          "\n"
          "Trains naive Bayes (Spark's NaiveBayes: multinomial or Bernoulli, additive\n"
          "smoothing) in one pass on the engine; prints accuracy and weighted F1 on --test\n"
          "(else on --train). Labels must be non-negative integers; features non-negative\n"
          "(multinomial) or 0/1 (Bernoulli).\n"
          "\n"
          "  --model-type T        multinomial (default) or bernoulli\n"
          "  --smoothing L         additive smoothing lambda > 0 (default 1)\n"
          "  --predictions DIR     write the predicted label of every evaluated row, one a\n"
          "                        line in row order (DIR/part-NNNNN; DIR must not exist)\n",
          f);
    em_ml_cli_init(&c, "nb", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, NULL);
    em_ml_cli_common_help(&c, f);
}

typedef struct nb_cmd {
    em_ml_cli c;
    em_nb_params p;
    const char *predictions;
} nb_cmd;

static int parse(nb_cmd *o, int argc, char **argv)
{
    static const char *const types[] = {"multinomial", "bernoulli", NULL};
    em_nb_params_init(&o->p);
    em_ml_cli_init(&o->c, "nb", EM_ML_CLI_TEST | EM_ML_CLI_SAVE | EM_ML_CLI_LABEL | EM_ML_CLI_DIM,
                   EM_ML_LIBSVM, em_nb_cli_help);
    for (int i = 1; i < argc; i++) {
        int r = em_ml_cli_opt(&o->c, argc, argv, &i), t;
        bool bad = false;
        const char *v;
        if (r == 1)
            continue;
        if (r == 2)
            return 2;
        if ((v = em_ml_cli_value(&o->c, "--model-type", argc, argv, &i, &bad))) {
            if (!em_ml_cli_choice(&o->c, "--model-type", v, types, &t))
                return 2;
            o->p.type = t == 1 ? EM_NB_BERNOULLI : EM_NB_MULTINOMIAL;
        } else if (!bad && (v = em_ml_cli_value(&o->c, "--smoothing", argc, argv, &i, &bad))) {
            if (!em_ml_cli_f64(&o->c, "--smoothing", v, 1e-300, 1e300, &o->p.smoothing))
                return 2;
        } else if (!bad &&
                   (v = em_ml_cli_value(&o->c, "--predictions", argc, argv, &i, &bad))) {
            o->predictions = v;
        } else if (!bad) {
            return em_ml_cli_usage(&o->c, "unknown option '%s'", argv[i]);
        }
        if (bad)
            return 2;
    }
    if (em_ml_cli_finish(&o->c) != 0)
        return 2;
    struct stat st;
    if (o->predictions && lstat(o->predictions, &st) == 0)
        return em_ml_cli_usage(&o->c, "--predictions %s: already exists", o->predictions);
    return 0;
}

static void summary(const nb_cmd *o, const em_nb_model *m, const em_eval_multiclass *e,
                    double log_loss, double train_s, double predict_s)
{
    if (!o->c.json) {
        printf("naive Bayes (%s, smoothing %g): %u classes, %u features, trained in %.3f s\n",
               m->type == EM_NB_BERNOULLI ? "bernoulli" : "multinomial", m->smoothing, m->k,
               m->dim, train_s);
        printf("%s: %llu rows, accuracy %.6f, weighted F1 %.6f, log-loss %.6f\n",
               o->c.test ? o->c.test : o->c.train, (unsigned long long)e->count, e->accuracy,
               e->weighted_f1, log_loss);
        return;
    }
    json_t *obj = json_object();
    em_eval_multiclass_json(e, obj);
    if (isfinite(log_loss))
        json_object_set_new(obj, "log_loss", json_real(log_loss));
    json_object_set_new(obj, "num_classes", json_integer(m->k));
    json_object_set_new(obj, "num_features", json_integer(m->dim));
    json_object_set_new(obj, "model_type",
                        json_string(m->type == EM_NB_BERNOULLI ? "bernoulli" : "multinomial"));
    json_object_set_new(obj, "smoothing", json_real(m->smoothing));
    json_object_set_new(obj, "train_s", json_real(train_s));
    json_object_set_new(obj, "predict_s", json_real(predict_s));
    em_ml_cli_print_json(&o->c, obj);
}

/* Predicts the evaluation set, evaluates and writes the predictions. */
static int evaluate(nb_cmd *o, em_context *sc, const em_nb_model *m, const em_ml_data *d,
                    em_eval_multiclass *e, em_err *err)
{
    em_rdd *pairs = NULL;
    uint32_t bc = 0;
    int rc = em_nb_predict_pairs(sc, m, d, &pairs, &bc, err);
    if (rc < 0)
        return rc;
    if (o->predictions)   /* two actions read the pairs: compute them once */
        em_rdd_persist(pairs, EM_PERSIST_MEMORY_AND_DISK);
    /* Classes: one more than the largest label or prediction seen. */
    rc = em_eval_multiclass_rdd(pairs, 0, e, err);
    if (rc == 0 && o->predictions) {
        em_rdd *txt = em_rdd_map(pairs, "ml.bayes.pair_text", em_slice_make(NULL, 0));
        rc = em_rdd_save_as_text_file(txt, o->predictions, err);
        em_rdd_release(txt);
    }
    em_rdd_release(pairs);
    em_broadcast_destroy(sc, bc);
    return rc;
}

int em_nb_cli_main(int argc, char **argv)
{
    nb_cmd o;
    em_err err = EM_ERR_INIT;
    em_ml_data train = {0}, test = {0};
    em_nb_model *m = NULL;
    em_eval_multiclass e = {0};
    if (parse(&o, argc, argv) != 0)
        return o.c.status;
    int status = 1;
    em_context *sc = em_ml_cli_context_new(&o.c, &err);
    if (!sc)
        return em_ml_cli_fail(&o.c, &err);
    if (em_ml_cli_load(&o.c, sc, &train, &test, &err) < 0)
        goto out;
    double t0 = em_now_s();
    if (em_nb_train(&train, &o.p, &m, &err) < 0)
        goto out;
    double train_s = em_now_s() - t0;
    if (o.c.verbose)
        fprintf(stderr, "ember ml nb: trained in %.3f s\n", train_s);
    if (o.c.save && em_nb_model_save(m, o.c.save, &err) < 0)
        goto out;
    t0 = em_now_s();
    const em_ml_data *ev = test.rows ? &test : &train;
    double ll;
    if (evaluate(&o, sc, m, ev, &e, &err) < 0 || em_nb_log_loss(sc, m, ev, &ll, &err) < 0)
        goto out;
    summary(&o, m, &e, ll, train_s, em_now_s() - t0);
    status = 0;
out:
    if (status)
        em_ml_cli_fail(&o.c, &err);
    em_eval_multiclass_destroy(&e);
    em_nb_model_free(m);
    em_ml_data_release(&test);
    em_ml_data_release(&train);
    em_ml_cli_context_free(&o.c, sc);
    return status;
}
