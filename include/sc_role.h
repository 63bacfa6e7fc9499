/* Which part of the model a parameter or buffer belongs to: the compiler
 * knows it from the spec (the list that made the layer), the ABI carries
 * it (sc_param_info.role), and `export` and `finetune` select tensors by
 * it. Separate from sc_abi.h so that the compiler's IR can use it. */
#ifndef SC_ROLE_H
#define SC_ROLE_H

typedef enum {
    SC_ROLE_NONE,        /* not a parameter or buffer (an activation, a gradient) */
    SC_ROLE_ENCODER,     /* <encoder>: exported, fine-tuned */
    SC_ROLE_HEAD,        /* <head>, the projection head: SimCLR training only */
    SC_ROLE_CLASSIFIER,  /* the fine-tuning classifier (classifier.weight, .bias) */
    SC_ROLE_PREDICTOR,   /* BYOL's <predictor>: trained with the online network, not exported */
    SC_ROLE_TARGET,      /* BYOL's target network, "target." + the online name: buffers,
                            EMA of the online encoder and head (sc_ema.h) */
} sc_role;

#endif
