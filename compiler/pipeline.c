#include "pipeline.h"

#include <string.h>

#include "autodiff.h"
#include "build.h"
#include "derive.h"
#include "fuse.h"
#include "remat.h"
#include "schedule.h"

enum { EXIT_INPUT = 1, EXIT_INTERNAL = 3 };

static const char *const names[SC_PASS_COUNT] = {"build", "autodiff", "encoder", "finetune",
                                                 "fuse",  "schedule", "memplan"};
static const char *const gnames[3] = {"simclr", "encoder", "finetune"};

const char *sc_pass_name(sc_pass p)
{
    return p >= 0 && p < SC_PASS_COUNT ? names[p] : "?";
}

static int dumps(const sc_passes_opts *o, sc_pass p)
{
    return o->dump_after && (!strcmp(o->dump_after, "all") || !strcmp(o->dump_after, names[p]));
}

static void dump(const sc_passes_opts *o, sc_pass p, const sc_graph *g)
{
    if (!dumps(o, p))
        return;
    FILE *f = o->dump ? o->dump : stderr;
    fprintf(f, "# after pass %s\n", names[p]);
    sc_graph_print(g, f);
}

static int result_of(const sc_graph *g)
{
    return g->loss >= 0 ? g->loss : g->features;
}

int sc_passes_run(const sc_spec *m, const sc_passes_opts *o, sc_compiled *c)
{
    memset(c, 0, sizeof *c);
    sc_graph_init(&c->g);
    sc_graph_init(&c->enc);
    sc_graph_init(&c->ft);
    sc_graph *all[3] = {&c->g, &c->enc, &c->ft};
    FILE *df = o->dump ? o->dump : stderr;

    if (sc_build_graph(m, o->batch, &c->g))
        return EXIT_INPUT;
    dump(o, SC_PASS_BUILD, &c->g);
    if (o->last < SC_PASS_AUTODIFF)
        return 0;
    if (sc_autodiff(&c->g)) {
        fprintf(stderr, "simclrc: internal error: the graph has no loss to differentiate\n");
        return EXIT_INTERNAL;
    }
    dump(o, SC_PASS_AUTODIFF, &c->g);
    if (o->last < SC_PASS_ENCODER)
        return 0;
    if (sc_graph_encoder(&c->g, 2 * c->g.batch, &c->enc)) {
        fprintf(stderr, "simclrc: internal error: cannot derive the encoder graph\n");
        return EXIT_INTERNAL;
    }
    dump(o, SC_PASS_ENCODER, &c->enc);
    if (o->last < SC_PASS_FINETUNE)
        return 0;
    /* Fine-tuning steps take 2B images, the views of a SimCLR step: the same
     * shapes, so the encoder's forward kernels are shared. */
    if (sc_graph_classifier(&c->g, 2 * c->g.batch, o->classes, &c->ft) || sc_autodiff(&c->ft)) {
        fprintf(stderr, "simclrc: internal error: cannot derive the fine-tuning graph\n");
        return EXIT_INTERNAL;
    }
    dump(o, SC_PASS_FINETUNE, &c->ft);
    if (o->last < SC_PASS_FUSE)
        return 0;
    for (int i = 0; i < 3; i++)
        if (o->fuse) {
            sc_fuse(all[i]);
            if (o->fuse_stats)
                sc_fuse_stats(all[i]);
            /* after fusion (it copies fused batchnorm+relu nodes), printed with it */
            if (!o->plan.mpi)
                sc_remat(all[i], SC_REMAT_MIN_BYTES);
        }
    for (int i = 0; dumps(o, SC_PASS_FUSE) && i < 3; i++) {
        fprintf(df, "# after pass fuse (%s graph%s)\n", gnames[i], o->fuse ? "" : ", disabled by --no-fuse");
        sc_graph_print(all[i], df);
    }
    if (o->last < SC_PASS_SCHEDULE)
        return 0;
    for (int i = 0; i < 3; i++) {
        if (sc_schedule_nodes(all[i], result_of(all[i]), &o->plan)) {
            fprintf(stderr, "simclrc: error: out of memory scheduling the %s graph\n", gnames[i]);
            return EXIT_INTERNAL;
        }
        if (dumps(o, SC_PASS_SCHEDULE)) {
            fprintf(df, "# after pass schedule (%s graph)\n", gnames[i]);
            sc_graph_print(all[i], df);
        }
    }
    if (o->last < SC_PASS_MEMPLAN)
        return 0;
    return sc_passes_plan(c, &o->plan);
}

static void unplan(sc_compiled *c)
{
    if (!c->planned)
        return;
    sc_memplan_free(&c->smp);
    sc_memplan_free(&c->emp);
    sc_memplan_free(&c->fmp);
    c->planned = 0;
}

int sc_passes_plan(sc_compiled *c, const sc_memplan_opts *o)
{
    unplan(c);
    c->planned = 1;
    memset(&c->smp, 0, sizeof c->smp);
    memset(&c->emp, 0, sizeof c->emp);
    memset(&c->fmp, 0, sizeof c->fmp);
    if (sc_memplan_build(&c->g, c->g.loss, o, &c->smp) || sc_memplan_build(&c->enc, c->enc.features, o, &c->emp) ||
        sc_memplan_build(&c->ft, c->ft.loss, o, &c->fmp)) {
        fprintf(stderr, "simclrc: error: out of memory planning memory\n");
        return EXIT_INTERNAL;
    }
    return 0;
}

void sc_compiled_free(sc_compiled *c)
{
    unplan(c);
    sc_graph_free(&c->ft);
    sc_graph_free(&c->enc);
    sc_graph_free(&c->g);
}
