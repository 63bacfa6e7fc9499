/* BYOL's target network: an exponential moving average of the online
 * encoder and head (docs: model-format.md, <loss type="byol">).
 *
 * The compiler gives every target tensor the role SC_ROLE_TARGET and the
 * name "target." + its online tensor's name; the target's parameters are
 * buffers (state, not trained). After the optimizer's step k of K,
 *   target = tau_k target + (1 - tau_k) online,
 *   tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2,
 * for each parameter, in double, rounded to float: the same on every rank
 * (the online parameters are). The target's batchnorm running statistics
 * are neither copied nor averaged: the target's own forward pass updates
 * them from its batch statistics, as a PyTorch copy of the network in
 * training mode does, so they describe the target's weights (which is what
 * `export --network target` needs for eval). At initialisation the target
 * is a copy of the online network. */
#ifndef SC_EMA_H
#define SC_EMA_H

#include <stdint.h>

#include "sc_abi.h"

/* The online name of target tensor name ("target.X" -> "X"), else NULL. */
const char *sc_target_source(const char *name);

/* tau_k above; K < 1 gives tau_base. */
double sc_ema_tau(double tau_base, int64_t k, int64_t K);

/* The target parameters of d paired with their online parameters. */
typedef struct {
    int64_t target;   /* offset into buffers */
    int64_t online;   /* offset into params */
    int64_t numel;
} sc_ema_pair;

typedef struct {
    sc_ema_pair *pairs;
    int n;
} sc_ema_plan;

/* Pairs every SC_ROLE_TARGET buffer whose source is a parameter (its
 * batchnorm running statistics are not). Returns 0 (n = 0 when d has no
 * target network), or -1 with a message (out of memory, or a target
 * tensor without a matching online parameter). */
int sc_ema_plan_init(sc_ema_plan *p, const sc_model_desc *d, char *err, size_t errlen);
void sc_ema_plan_free(sc_ema_plan *p);

/* target = tau target + (1 - tau) online for every pair; tau 0 copies. */
void sc_ema_apply(const sc_ema_plan *p, const float *params, float *buffers, double tau);
/* The same on one tensor of n floats. */
void sc_ema_update(float *target, const float *online, int64_t n, double tau);

#endif
