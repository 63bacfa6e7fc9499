#include "torchvision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sc_torchvision_key(const char *name, int s0, char *out, size_t len)
{
    if (s0 < 0)
        return -1;
    if (!strncmp(name, "encoder.0.", 10))
        return snprintf(out, len, "conv1.%s", name + 10) < (int)len ? 0 : -1;
    if (!strncmp(name, "encoder.1.", 10))
        return snprintf(out, len, "bn1.%s", name + 10) < (int)len ? 0 : -1;
    if (strncmp(name, "encoder.", 8))
        return -1;
    char *end;
    long layer = strtol(name + 8, &end, 10);
    if (end == name + 8 || *end != '.' || layer < s0 || layer > s0 + 3)
        return -1;
    return snprintf(out, len, "layer%ld.%s", layer - s0 + 1, end + 1) < (int)len ? 0 : -1;
}

/* The layer kinds of a torchvision ResNet's top level; without the maxpool
 * it is a CIFAR-style stem. */
static int stage0_of_layers(const sc_layer_list *enc)
{
    static const sc_layer_kind with_pool[] = {SC_L_CONV,  SC_L_BATCHNORM, SC_L_RELU,  SC_L_MAXPOOL,
                                              SC_L_STAGE, SC_L_STAGE,     SC_L_STAGE, SC_L_STAGE,
                                              SC_L_GLOBAL_AVGPOOL};
    int n = enc->n, pool = n == 9;
    if (n != 8 && n != 9)
        return -1;
    for (int i = 0, k = 0; i < n; i++, k++) {
        if (!pool && k == 3)
            k++;
        if (enc->items[i].kind != with_pool[k])
            return -1;
    }
    return pool ? 4 : 3;
}

int sc_torchvision_stage0(const sc_spec *m, const sc_graph *g)
{
    int s0 = stage0_of_layers(&m->encoder);
    char key[2 * SC_NAME_MAX];
    for (int i = 0; s0 >= 0 && i < g->nparams; i++) {
        const sc_tensor *t = &g->t[g->params[i]];
        if (t->role == SC_ROLE_ENCODER && sc_torchvision_key(t->name, s0, key, sizeof key))
            return -1;   /* a named layer: no torchvision key for it */
    }
    return s0;
}
