/* Fuzz target: a model spec (XML) through every pass of the compiler up
 * to the memory plan and the size limit, as simclrc runs them for
 * --emit=exe (the one pipeline, pipeline.h). Bad specs must end in
 * diagnostics, never a crash. */
#include "fuzz_input.h"
#include "memplan.h"
#include "model.h"
#include "pipeline.h"
#include "sizelimit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = sc_fuzz_file("model.xml", data, size);
    if (!path)
        return 0;
    sc_spec m;
    if (sc_model_load(path, &m)) {
        sc_model_free(&m);
        return 0;
    }
    /* Up to the schedule, then the size limit before the plan, as the
     * driver does for --emit=memplan (an absurd spec stops there). */
    sc_passes_opts o = {.classes = 10, .fuse = 1, .last = SC_PASS_SCHEDULE, .plan = {.threads = 2}};
    sc_compiled c;
    if (!sc_passes_run(&m, &o, &c) && !sc_size_check(&c.g, &o.plan, SC_DEFAULT_MAX_BYTES, path) &&
        !sc_passes_plan(&c, &o.plan)) {
        const sc_graph *gs[3] = {&c.g, &c.enc, &c.ft};
        const sc_memplan *mps[3] = {&c.smp, &c.emp, &c.fmp};
        for (int i = 0; i < 3; i++)
            for (int n = 0; n < gs[i]->nn; n++)
                (void)sc_memplan_aliases(gs[i], mps[i], n);
    }
    sc_compiled_free(&c);
    sc_model_free(&m);
    return 0;
}
