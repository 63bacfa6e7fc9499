#include "sc_init.h"

#include <math.h>

void sc_init_tensor(sc_rng *r, sc_init_kind kind, int fan_in, long numel, float *out)
{
    double bound = fan_in > 0 ? 1.0 / sqrt((double)fan_in) : 0.0;
    for (long i = 0; i < numel; i++) {
        switch (kind) {
        case SC_INIT_KAIMING_UNIFORM:
        case SC_INIT_FAN_IN_UNIFORM:
            out[i] = (float)((2.0 * sc_rng_uniform(r) - 1.0) * bound);
            break;
        case SC_INIT_ONES:
            out[i] = 1.0f;
            break;
        case SC_INIT_ZEROS:
        case SC_INIT_NONE:
            out[i] = 0.0f;
            break;
        }
    }
}
