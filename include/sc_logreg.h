/* Multinomial logistic regression with L2 weight decay, fitted by L-BFGS
 * in double precision: the classifier of the linear probe (eval).
 *
 * For n rows x (dim values each) with labels y in 0..classes-1 it
 * minimises
 *     f(W, b) = 1/n sum_i CE(softmax(W x_i + b), y_i) + lambda/2 ||W||^2
 * with W [classes, dim] and b [classes] (the bias is not decayed). For
 * lambda > 0 the minimum is unique up to adding one constant to every
 * bias (softmax ignores it); the gradient's biases sum to zero, so a start
 * whose biases sum to zero (zeros) ends at the solution whose biases do.
 * The fit is a deterministic function of its inputs: a fixed L-BFGS
 * (memory 10, Armijo backtracking from the unit step) with a fixed
 * iteration budget and stopping rule.
 *
 * Features are standardised first (sc_standardizer), so one grid of
 * lambda values suits every encoder. */
#ifndef SC_LOGREG_H
#define SC_LOGREG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double weight_decay;    /* lambda >= 0 */
    int max_iter;           /* L-BFGS iterations; 500 */
    int history;            /* correction pairs kept; 10 */
    double grad_tol;        /* stop when max |gradient| < grad_tol; 1e-6 */
} sc_logreg_config;

void sc_logreg_config_default(sc_logreg_config *c, double weight_decay);

typedef struct {
    int iterations;         /* L-BFGS iterations taken */
    int evaluations;        /* objective evaluations */
    double loss;            /* f at the solution */
    double grad_max;        /* max |gradient| at the solution */
} sc_logreg_result;

/* Fits W and b. wb holds classes * dim weights (row-major) followed by
 * classes biases; on entry the starting point (zeros, or a previous
 * solution to warm-start), on return the solution. Returns 0, or -1 with
 * a message for bad sizes, a label out of range, a non-finite input or
 * no memory. */
int sc_logreg_fit(const sc_logreg_config *c, const double *x, const int *y, int64_t n, int dim,
                  int classes, double *wb, sc_logreg_result *res, char *err, size_t errlen);

/* The objective f and, when grad is not NULL, its gradient (laid out as
 * wb) at wb; scratch needs n * classes doubles. */
double sc_logreg_objective(const double *x, const int *y, int64_t n, int dim, int classes,
                           double weight_decay, const double *wb, double *grad, double *scratch);

/* Predicted class (argmax of W x + b, ties to the lower class) of each of
 * the n rows of x into pred; returns the fraction equal to y when y is
 * not NULL (else 0). */
double sc_logreg_predict(const double *x, int64_t n, int dim, int classes, const double *wb,
                         const int *y, int *pred);

/* Per-column standardisation: z = (x - mean) / std, with the mean and the
 * (biased) standard deviation of the rows it was fitted on. A column that
 * is constant up to rounding (std < 1e-12, or below 1e-6 of |mean|: a
 * dead unit) gets std 1, so it standardises to zero instead of noise. */
typedef struct {
    int dim;
    double *mean, *std;
} sc_standardizer;

/* Fits on n rows of x (float, dim values each). Returns 0, or -1 when out
 * of memory. */
int sc_standardizer_fit(sc_standardizer *s, const float *x, int64_t n, int dim);
/* Writes the standardised rows as doubles into out (n * dim). */
void sc_standardizer_apply(const sc_standardizer *s, const float *x, int64_t n, double *out);
void sc_standardizer_free(sc_standardizer *s);

#endif
