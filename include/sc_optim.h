/* Optimizers and learning-rate schedules over the flat parameter buffer.
 *
 * Parameters live at param_info[i].offset (numel floats each) in one
 * buffer; the gradients have the same layout. An optimizer touches only
 * those ranges, never the gaps between tensors. Its state (momentum
 * buffers, Adam moments) is kept in flat buffers with the same layout as
 * the parameters, so a checkpoint can slice them per tensor exactly as it
 * slices the parameters.
 *
 * Weight decay groups: tensors flagged no_decay (biases, batchnorm gamma
 * and beta) get no weight decay with any optimizer, and LARS does not
 * adapt their learning rate. In PyTorch terms every optimizer sees two
 * parameter groups, {no_decay = 0: weight_decay = wd} and
 * {no_decay = 1: weight_decay = 0}.
 *
 * Update rules, for one tensor w with gradient g at learning rate lr
 * (wd is 0 for no_decay tensors; m is the momentum):
 *   SGD    g += wd w; b = m b + g; g = nesterov ? g + m b : b; w -= lr g
 *          (b is used only when m != 0; as torch.optim.SGD, dampening 0)
 *   Adam   g += wd w; then the AdamW step below without its decay line
 *   AdamW  w *= 1 - lr wd; m1 = b1 m1 + (1-b1) g; m2 = b2 m2 + (1-b2) g^2;
 *          w -= lr/(1-b1^t) m1 / (sqrt(m2)/sqrt(1-b2^t) + eps)
 *          (b1 0.9, b2 0.999, eps 1e-8, t the 1-based step: torch.optim)
 *   LARS   g += wd w; r = eta ||w|| / ||g|| if both norms > 0, else 1
 *          (r = 1 for no_decay tensors); v = m v + lr r g;
 *          w -= nesterov ? m v + lr r g : v
 *          (eta 0.001: the SimCLR paper's LARS, norms in double) */
#ifndef SC_OPTIM_H
#define SC_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "sc_abi.h"

/* The values match sc_train_defaults.optimizer. */
typedef enum { SC_OPT_SGD = 0, SC_OPT_ADAM = 1, SC_OPT_ADAMW = 2, SC_OPT_LARS = 3 } sc_optim_kind;

/* "sgd", "adam", "adamw", "lars" (the spec's names), or "?" for another value. */
const char *sc_optim_kind_name(int kind);

typedef struct {
    int kind;               /* sc_optim_kind */
    double momentum;        /* SGD and LARS; 0 means no momentum buffer */
    int nesterov;           /* SGD and LARS */
    double weight_decay;    /* for tensors without no_decay */
    double beta1, beta2, eps;   /* Adam and AdamW */
    double trust_coef;      /* LARS eta */
} sc_optim_config;

/* The configuration for a <train> element: its optimizer, momentum and
 * weight decay, with the fixed constants above (betas 0.9/0.999, eps 1e-8,
 * eta 0.001, no Nesterov). The momentum attribute applies to SGD and LARS
 * only; Adam's beta1 stays 0.9. */
void sc_optim_config_from_train(const sc_train_defaults *t, sc_optim_config *c);

typedef struct sc_optim sc_optim;

/* An optimizer for the nparams tensors of params (a buffer of
 * params_floats floats) with zeroed state. Returns NULL with a message in
 * err for a bad configuration, a tensor outside the buffer, or no memory. */
sc_optim *sc_optim_new(const sc_optim_config *c, const sc_param_info *params, int nparams,
                       int64_t params_floats, char *err, size_t errlen);
void sc_optim_free(sc_optim *o);

/* One update of params from grads at learning rate lr; then the step
 * count is one higher. */
void sc_optim_step(sc_optim *o, float *params, const float *grads, double lr);

/* Updates taken so far (Adam's bias correction uses it); set it when
 * restoring a checkpoint together with the state buffers. */
int64_t sc_optim_step_count(const sc_optim *o);
void sc_optim_set_step_count(sc_optim *o, int64_t steps);

/* The state buffers, each of params_floats floats laid out as params:
 * "momentum_buffer" (SGD, LARS with momentum != 0), "exp_avg" and
 * "exp_avg_sq" (Adam, AdamW), named as in torch.optim's state_dict.
 * Pointers stay valid until sc_optim_free; write through them to restore. */
int sc_optim_state_count(const sc_optim *o);
const char *sc_optim_state_name(const sc_optim *o, int i);
float *sc_optim_state_ptr(const sc_optim *o, int i);
int64_t sc_optim_state_floats(const sc_optim *o);

/* Learning rate at each step. Steps are 0-based (the index of the update
 * about to be taken), W = warmup_steps, T = total_steps, base = base_lr:
 *   s < W:              lr = base * s / W          (as SimCLR's reference)
 *   otherwise constant: lr = base
 *   otherwise cosine:   lr = base * 0.5 * (1 + cos(pi * min(s - W, T - W) / (T - W)))
 *                       (T <= W: lr = base)
 * so the cosine reaches 0 at s = T, one step after the last update. */
typedef enum { SC_SCHED_CONSTANT = 0, SC_SCHED_COSINE = 1 } sc_sched_kind;

typedef struct {
    int kind;               /* sc_sched_kind */
    double base_lr;         /* after lr-scaling */
    int64_t warmup_steps;   /* warmup_epochs * steps_per_epoch */
    int64_t total_steps;    /* epochs * steps_per_epoch */
} sc_lr_schedule;

/* lr-scaling: linear gives lr * batch / 256, none gives lr. */
double sc_lr_scaled(double lr, int scaling_linear, int batch);

/* The schedule for a <train> element with lr (possibly overridden), batch,
 * epochs and steps_per_epoch. Returns 0, or -1 with a message for a
 * negative count or a non-finite or negative lr. */
int sc_lr_schedule_init(sc_lr_schedule *s, const sc_train_defaults *t, double lr, int batch,
                        int64_t epochs, int64_t steps_per_epoch, char *err, size_t errlen);
double sc_lr_at(const sc_lr_schedule *s, int64_t step);

#endif
