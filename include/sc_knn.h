/* The kNN monitor of SimCLR/InstDisc: classify each test feature by a
 * weighted vote of its k most similar train features and report top-1
 * accuracy.
 *
 * Features are L2-normalised rows, so similarity is the dot product
 * (cosine). For a test row x, the k train rows with the largest x . t
 * (ties broken by the lower train index) each vote exp(sim / temperature)
 * for their label; the prediction is the class with the largest total
 * (ties: the lower class). Similarities come from cblas_sgemm over chunks
 * of test rows, so memory stays at chunk_rows x Ntr floats. */
#ifndef SC_KNN_H
#define SC_KNN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int k;                  /* neighbours; 200 (fewer if Ntr is smaller) */
    double temperature;     /* vote weight exp(sim / temperature); 0.1 */
    int classes;            /* labels are 0 .. classes-1 */
    int64_t chunk_rows;     /* test rows per similarity block; 0 chooses */
} sc_knn_config;

/* k 200, temperature 0.1, chunk chosen automatically. */
void sc_knn_config_default(sc_knn_config *c, int classes);

/* Scales each of the n rows of x (d floats each) to unit L2 norm, the
 * norm summed in double; an all-zero row stays zero. */
void sc_l2_normalize_rows(float *x, int64_t n, int64_t d);

/* Top-1 accuracy (fraction in [0, 1]) of the vote for the nte test rows,
 * into *accuracy; the predicted class of each test row into pred when it
 * is not NULL. Returns 0, or -1 with a message for bad sizes or
 * configuration, a label outside 0 .. classes-1, or no memory. */
int sc_knn_accuracy(const sc_knn_config *c, const float *train, const int *train_labels,
                    int64_t ntr, const float *test, const int *test_labels, int64_t nte,
                    int64_t dim, double *accuracy, int *pred, char *err, size_t errlen);

#endif
