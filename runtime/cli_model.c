/* The model behind eval, finetune, export and encode: the state of the
 * model object, from a checkpoint or the seeded initialisation (cli.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "sc_checkpoint.h"

int sc_cli_state(sc_state *s)
{
    char err[512];
    memset(s, 0, sizeof *s);
    if (sc_desc_check(&sc_model, err, sizeof err) || sc_state_alloc(s, &sc_model, err, sizeof err)) {
        sc_cli_error("%s", err);
        return SC_EXIT_INTERNAL;
    }
    return 0;
}

int sc_cli_load_model(sc_state *s, const char *ckpt, uint64_t seed)
{
    const sc_model_desc *d = s->desc;
    if (!ckpt) {
        sc_params_init(d, s->params, s->buffers, seed);
        return 0;
    }
    char err[1024];
    int missing = 0;
    if (sc_ckpt_load(ckpt, d, d->params, d->nparams, s->params, s->buffers, NULL, NULL, &missing, err,
                     sizeof err)) {
        sc_cli_report(err);
        return SC_EXIT_INPUT;
    }
    if (missing) {
        fprintf(stderr, "%s: %s: error: %d of the model's %d parameter tensors are missing\n",
                program_invocation_short_name, ckpt, missing, d->nparams);
        return SC_EXIT_INPUT;
    }
    return 0;
}
