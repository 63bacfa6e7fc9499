/* Fuzz target: a model spec (XML) through every pass of the compiler up
 * to the memory plan and the size limit, as simclrc runs them for
 * --emit=exe. Bad specs must end in diagnostics, never a crash. */
#include "autodiff.h"
#include "build.h"
#include "derive.h"
#include "fuse.h"
#include "fuzz_input.h"
#include "memplan.h"
#include "model.h"
#include "schedule.h"
#include "sizelimit.h"

/* Schedules each graph, then (within the size limit) plans its memory. */
static void plan_all(sc_graph *const *gs, const sc_memplan_opts *o, const char *path)
{
    for (int i = 0; i < 3; i++)
        if (sc_schedule_nodes(gs[i], gs[i]->loss >= 0 ? gs[i]->loss : gs[i]->features, o))
            return;
    if (sc_size_check(gs[0], o, SC_DEFAULT_MAX_BYTES, path))
        return;
    for (int i = 0; i < 3; i++) {
        sc_graph *g = gs[i];
        sc_memplan mp;
        if (sc_memplan_build(g, g->loss >= 0 ? g->loss : g->features, o, &mp))
            return;
        for (int n = 0; n < g->nn; n++)
            (void)sc_memplan_aliases(g, &mp, n);
        sc_memplan_free(&mp);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = sc_fuzz_file("model.xml", data, size);
    if (!path)
        return 0;
    sc_model m;
    if (sc_model_load(path, &m)) {
        sc_model_free(&m);
        return 0;
    }
    sc_graph g, enc, ft;
    sc_graph_init(&g);
    sc_graph_init(&enc);
    sc_graph_init(&ft);
    const sc_memplan_opts o = {.threads = 2};
    if (!sc_build_graph(&m, 0, &g) && !sc_autodiff(&g) &&
        !sc_graph_encoder(&g, 2 * g.batch, &enc) && !sc_graph_classifier(&g, 2 * g.batch, 10, &ft) &&
        !sc_autodiff(&ft)) {
        sc_fuse(&g);
        sc_fuse(&enc);
        sc_fuse(&ft);
        sc_graph *gs[3] = {&g, &enc, &ft};
        plan_all(gs, &o, path);
    }
    sc_graph_free(&g);
    sc_graph_free(&enc);
    sc_graph_free(&ft);
    sc_model_free(&m);
    return 0;
}
