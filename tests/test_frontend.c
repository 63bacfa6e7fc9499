/* The front end: XML -> sc_spec -> forward graph.
 *
 * (a) Every shipped model loads and builds; parameter and buffer names,
 *     shapes and order are compared with torchvision's state_dicts (printed
 *     by tests/frontend_reference.py), plus spot checks of shapes, ops,
 *     attributes, lines and defaults.
 * (b) Every fixture in tests/bad fails with the line and message its first
 *     line announces: <!-- expect-line: N expect: SUBSTRING -->, both in
 *     process and through the real compiler ($SIMCLRC --emit=graph).
 * (c) Robustness: missing, unreadable and empty files, line numbers past
 *     65535, and a few hundred random mutations of a model, none of which
 *     may crash or leak (run under -DSC_SANITIZE=ON to check the latter). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, strndup */
#endif
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "spec_files.h"
#include "test_skip.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "build.h"
#include "diag.h"
#include "model.h"

/* ------------------------------------------------------------ helpers */

static const char *source_dir(void)
{
    const char *s = getenv("SC_SOURCE_DIR");
    return s ? s : ".";
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[n] = 0;
    return buf;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Sorted list of DIR/NAME for every *.xml in dir (NULL-terminated). */
static char **list_xml(const char *dir, int *count)
{
    char **v = sc_spec_list(dir, count);
    assert_non_null(v);
    return v;
}

static void free_list(char **v) { sc_spec_list_free(v); }

/* Runs load + build in process with stderr captured into *err (malloc'd).
 * Returns 0 on success, 1 when the load failed, 2 when the build did. */
static int load_and_build(const char *path, int batch, sc_spec *m, sc_graph *g, char **err)
{
    char tmpl[] = "/tmp/sc_frontend_errXXXXXX";
    int fd = mkstemp(tmpl);
    assert_true(fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    dup2(fd, 2);
    int rc = sc_model_load(path, m) != 0 ? 1 : sc_build_graph(m, batch, g) != 0 ? 2 : 0;
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    *err = read_all(tmpl);
    unlink(tmpl);
    assert_non_null(*err);
    return rc;
}

static const sc_tensor *find(const sc_graph *g, const char *name)
{
    int i = sc_graph_find(g, name);
    if (i < 0)
        fail_msg("tensor '%s' is missing", name);
    return &g->t[i];
}

static void check_shape(const sc_graph *g, const char *name, int ndim, int d0, int d1,
                        int d2, int d3)
{
    const sc_tensor *t = find(g, name);
    int want[4] = {d0, d1, d2, d3};
    if (t->ndim != ndim)
        fail_msg("%s: ndim %d, want %d", name, t->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != want[i])
            fail_msg("%s: dim %d is %d, want %d", name, i, t->shape[i], want[i]);
}

/* Line (1-based) of the first occurrence of needle in text. */
static int line_of_text(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    assert_non_null(p);
    int line = 1;
    for (const char *q = text; q < p; q++)
        line += *q == '\n';
    return line;
}

/* The node producing tensor name. */
static const sc_node *producer(const sc_graph *g, const char *name)
{
    const sc_tensor *t = find(g, name);
    assert_true(t->producer >= 0 && t->producer < g->nn);
    return &g->n[t->producer];
}

/* ------------------------------------------ (a) shipped models build */

/* Invariants every built graph must satisfy. */
static void check_graph(const sc_spec *m, const sc_graph *g)
{
    assert_int_equal(g->nfwd, g->nn);
    assert_true(g->nparams > 0);
    assert_string_equal(g->name, m->name);
    assert_int_equal(g->batch, m->train.batch);
    const sc_tensor *in = &g->t[g->input];
    assert_int_equal(in->kind, SC_T_INPUT);
    assert_string_equal(in->name, "input");
    assert_int_equal(in->ndim, 4);
    assert_int_equal(in->shape[0], 2 * g->batch);
    assert_int_equal(in->shape[1], m->in_c);
    assert_int_equal(in->shape[2], m->in_h);
    assert_int_equal(in->shape[3], m->in_w);
    const sc_tensor *loss = &g->t[g->loss];
    assert_int_equal(loss->kind, SC_T_LOSS);
    assert_string_equal(loss->name, "loss");
    assert_int_equal(loss->ndim, 1);
    assert_int_equal(loss->shape[0], 1);
    const sc_node *last = &g->n[g->nn - 1];
    assert_int_equal(last->out[0], g->loss);
    if (m->loss_kind == SC_LOSS_NTXENT) {
        assert_int_equal(last->op, SC_OP_NTXENT);
        assert_true(last->temperature == m->temperature);
        assert_int_equal(g->n[g->nn - 2].op, SC_OP_L2NORM);
    } else if (m->loss_kind == SC_LOSS_BYOL) {
        assert_int_equal(last->op, SC_OP_BYOL); /* (l2norm(q), l2norm(t)) */
    } else { /* Barlow Twins and VICReg read the projections themselves */
        assert_int_equal(last->op, m->loss_kind == SC_LOSS_BARLOW ? SC_OP_BARLOW : SC_OP_VICREG);
        assert_memory_equal(last->coef, m->loss_coef, sizeof last->coef);
        assert_int_not_equal(g->n[g->nn - 2].op, SC_OP_L2NORM);
    }
    /* Unique tensor names, every node labelled with a source line, each
     * tensor produced at most once, and inputs produced before use. */
    for (int i = 0; i < g->nt; i++)
        assert_int_equal(sc_graph_find(g, g->t[i].name), i);
    for (int i = 0; i < g->nn; i++) {
        const sc_node *n = &g->n[i];
        assert_true(n->label[0] != 0);
        assert_true(n->line > 0);
        for (int k = 0; k < n->nin; k++) {
            const sc_tensor *t = &g->t[n->in[k]];
            assert_true(t->producer < i);
            if (t->producer < 0)
                assert_true(t->kind == SC_T_INPUT || t->kind == SC_T_PARAM ||
                            t->kind == SC_T_BUFFER);
        }
        for (int k = 0; k < n->nout; k++)
            assert_int_equal(g->t[n->out[k]].producer, i);
    }
    for (int i = 0; i < g->nparams; i++) {
        const sc_tensor *t = &g->t[g->params[i]];
        assert_int_equal(t->kind, SC_T_PARAM);
        assert_true(t->init != SC_INIT_NONE);
        assert_true(t->numel > 0);
    }
    for (int i = 0; i < g->nbuffers; i++)
        assert_int_equal(g->t[g->buffers[i]].kind, SC_T_BUFFER);
}

static void test_shipped_models_build(void **state)
{
    (void)state;
    char *dir = path_join(source_dir(), "models");
    int n;
    char **models = list_xml(dir, &n);
    assert_true(n >= 5);
    for (int i = 0; i < n; i++) {
        sc_spec m;
        sc_graph g;
        sc_graph_init(&g);
        char *err;
        int rc = load_and_build(models[i], 0, &m, &g, &err);
        if (rc != 0)
            fail_msg("%s does not build:\n%s", models[i], err);
        assert_string_equal(err, "");
        check_graph(&m, &g);
        /* m->text is the file, byte for byte. */
        char *text = read_all(models[i]);
        assert_string_equal(m.text, text);
        free(text);
        free(err);
        sc_graph_free(&g);
        sc_model_free(&m);
    }
    free_list(models);
    free(dir);
}

/* Names and shapes of parameters and buffers in creation order, which
 * interleaves them as PyTorch's state_dict does. */
static char *state_dict_listing(const sc_graph *g)
{
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    s[0] = 0;
    for (int i = 0; i < g->nt; i++) {
        const sc_tensor *t = &g->t[i];
        if (t->kind != SC_T_PARAM && t->kind != SC_T_BUFFER)
            continue;
        if (cap - n < 256) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
        n += (size_t)snprintf(s + n, cap - n, "%s ", t->name);
        for (int d = 0; d < t->ndim; d++)
            n += (size_t)snprintf(s + n, cap - n, "%s%d", d ? "," : "", t->shape[d]);
        n += (size_t)snprintf(s + n, cap - n, "\n");
    }
    return s;
}

static void test_torchvision_layouts(void **state)
{
    (void)state;
    const char *py = getenv("SC_PYTHON");
    if (!py || access(py, X_OK) != 0)
        test_skip("no Python (SC_PYTHON): torchvision's layouts are not compared\n");
    static const char *const models[] = {"resnet18-stl10", "resnet18-stl10-paper",
                                         "resnet50-stl10", "resnet18-cifar",
                                         "resnet-small", "resnext-small"};
    const int nmodels = (int)(sizeof models / sizeof models[0]);
    char *script = path_join(source_dir(), "tests/frontend_reference.py");
    char cmd[4096];
    int k = snprintf(cmd, sizeof cmd, "'%s' '%s'", py, script);
    for (int i = 0; i < nmodels; i++)
        k += snprintf(cmd + k, sizeof cmd - (size_t)k, " %s", models[i]);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 20, n = 0, got;
    char *ref = malloc(cap);
    assert_non_null(ref);
    while ((got = fread(ref + n, 1, cap - n - 1, p)) > 0) {
        n += got;
        if (n + 1 == cap) {
            cap *= 2;
            ref = realloc(ref, cap);
            assert_non_null(ref);
        }
    }
    ref[n] = 0;
    int status = pclose(p);
    if (status != 0)
        fail_msg("%s failed (status %d); does %s have torch and torchvision?", cmd, status, py);

    for (int i = 0; i < nmodels; i++) {
        char header[128], next_header[128];
        snprintf(header, sizeof header, "# %s\n", models[i]);
        char *start = strstr(ref, header);
        assert_non_null(start);
        start += strlen(header);
        size_t len = strlen(start);
        if (i + 1 < nmodels) {
            snprintf(next_header, sizeof next_header, "# %s\n", models[i + 1]);
            char *end = strstr(start, next_header);
            assert_non_null(end);
            len = (size_t)(end - start);
        }
        char *xml = path_join(source_dir(), "models");
        char file[512];
        snprintf(file, sizeof file, "%s/%s.xml", xml, models[i]);
        free(xml);
        sc_spec m;
        sc_graph g;
        sc_graph_init(&g);
        char *err;
        assert_int_equal(load_and_build(file, 0, &m, &g, &err), 0);
        char *ours = state_dict_listing(&g);
        if (strlen(ours) != len || strncmp(ours, start, len))
            fail_msg("%s: parameters differ from torchvision's.\nsimclrc:\n%s\ntorchvision:\n%.*s",
                     models[i], ours, (int)len, start);
        /* The count follows from the same list, but say it in numbers. */
        long count = 0;
        for (const char *l = start; l < start + len;) {
            const char *eol = memchr(l, '\n', (size_t)(start + len - l));
            assert_non_null(eol);
            if (!memmem(l, (size_t)(eol - l), "running_", 8)) {
                long numel = 1;
                const char *sp = memchr(l, ' ', (size_t)(eol - l));
                assert_non_null(sp);
                for (const char *d = sp + 1; d < eol;) {
                    char *e;
                    numel *= strtol(d, &e, 10);
                    d = e + 1;
                }
                count += numel;
            }
            l = eol + 1;
        }
        assert_int_equal(sc_graph_param_count(&g), count);
        print_message("%s: %ld parameters, as torchvision\n", models[i], count);
        free(ours);
        free(err);
        sc_graph_free(&g);
        sc_model_free(&m);
    }
    free(ref);
    free(script);
}

static void load_shipped(const char *name, int batch, sc_spec *m, sc_graph *g)
{
    char *dir = path_join(source_dir(), "models");
    char file[512];
    snprintf(file, sizeof file, "%s/%s.xml", dir, name);
    free(dir);
    sc_graph_init(g);
    char *err;
    int rc = load_and_build(file, batch, m, g, &err);
    if (rc != 0)
        fail_msg("%s: %s", file, err);
    free(err);
}

static void test_resnet18_stl10(void **state)
{
    (void)state;
    sc_spec m;
    sc_graph g;
    load_shipped("resnet18-stl10", 0, &m, &g);

    /* The number the reference notebooks print for this recipe. */
    assert_int_equal(sc_graph_param_count(&g), 11504832);
    assert_string_equal(g.t[g.params[0]].name, "encoder.0.weight");
    assert_string_equal(g.t[g.params[g.nparams - 1]].name, "head.2.bias");
    assert_string_equal(g.t[g.buffers[0]].name, "encoder.1.running_mean");
    assert_string_equal(g.t[g.buffers[1]].name, "encoder.1.running_var");
    assert_int_equal(g.batch, 256);

    check_shape(&g, "input", 4, 512, 3, 96, 96);
    check_shape(&g, "encoder.0.weight", 4, 64, 3, 7, 7);
    check_shape(&g, "encoder.4.0.conv1.weight", 4, 64, 64, 3, 3);
    check_shape(&g, "encoder.5.0.conv1.weight", 4, 128, 64, 3, 3);
    check_shape(&g, "encoder.5.0.downsample.0.weight", 4, 128, 64, 1, 1);
    check_shape(&g, "encoder.5.0.downsample.1.running_var", 1, 128, 0, 0, 0);
    check_shape(&g, "encoder.7.1.bn2.bias", 1, 512, 0, 0, 0);
    check_shape(&g, "head.0.weight", 2, 512, 512, 0, 0);
    check_shape(&g, "head.2.weight", 2, 128, 512, 0, 0);
    /* Activations: 96 -> conv/2 48 -> maxpool/2 24 -> 24, 12, 6, 3 -> pool. */
    check_shape(&g, "encoder.0", 4, 512, 64, 48, 48);
    check_shape(&g, "encoder.3", 4, 512, 64, 24, 24);
    check_shape(&g, "encoder.4.1", 4, 512, 64, 24, 24);
    check_shape(&g, "encoder.5.0", 4, 512, 128, 12, 12);
    check_shape(&g, "encoder.6.1", 4, 512, 256, 6, 6);
    check_shape(&g, "encoder.7.1", 4, 512, 512, 3, 3);
    check_shape(&g, "encoder.8", 2, 512, 512, 0, 0);
    check_shape(&g, "head.2", 2, 512, 128, 0, 0);
    check_shape(&g, "z_norm", 2, 512, 128, 0, 0);
    /* No downsample where the shape is kept (stage 1), nor in later blocks. */
    assert_int_equal(sc_graph_find(&g, "encoder.4.0.downsample.0.weight"), -1);
    assert_int_equal(sc_graph_find(&g, "encoder.5.1.downsample.0.weight"), -1);
    /* Convolutions have no bias here (bias defaults to false). */
    assert_int_equal(sc_graph_find(&g, "encoder.0.bias"), -1);

    /* Initialisation metadata. */
    const sc_tensor *t = find(&g, "encoder.0.weight");
    assert_int_equal(t->init, SC_INIT_KAIMING_UNIFORM);
    assert_int_equal(t->fan_in, 3 * 7 * 7);
    assert_int_equal(t->no_decay, 0);
    t = find(&g, "head.0.bias");
    assert_int_equal(t->init, SC_INIT_FAN_IN_UNIFORM);
    assert_int_equal(t->fan_in, 512);
    assert_int_equal(t->no_decay, 1);
    t = find(&g, "encoder.1.weight");
    assert_int_equal(t->init, SC_INIT_ONES);
    assert_int_equal(t->no_decay, 1);
    assert_int_equal(find(&g, "encoder.1.bias")->init, SC_INIT_ZEROS);
    assert_int_equal(find(&g, "encoder.1.running_mean")->init, SC_INIT_ZEROS);
    assert_int_equal(find(&g, "encoder.1.running_var")->init, SC_INIT_ONES);
    assert_int_equal(find(&g, "encoder.1.running_var")->kind, SC_T_BUFFER);

    /* Ops, attributes, labels and lines. */
    int stem_line = line_of_text(m.text, "<conv filters=\"64\" kernel=\"7\"");
    const sc_node *n = &g.n[0];
    assert_int_equal(n->op, SC_OP_CONV2D);
    assert_int_equal(n->nin, 2);
    assert_int_equal(n->kernel, 7);
    assert_int_equal(n->stride, 2);
    assert_int_equal(n->pad, 3);
    assert_string_equal(n->label, "encoder.0");
    assert_int_equal(n->line, stem_line);
    n = producer(&g, "encoder.1");
    assert_int_equal(n->op, SC_OP_BATCHNORM);
    assert_int_equal(n->nout, 3);
    assert_true(n->eps == 1e-5);
    assert_int_equal(n->out[1], sc_graph_find(&g, "encoder.1.mean"));
    const sc_node *run = n + 1;
    assert_int_equal(run->op, SC_OP_BN_RUNNING);
    assert_int_equal(run->nin, 4);
    assert_int_equal(run->nout, 0);
    assert_int_equal(run->in[0], n->out[1]);
    assert_int_equal(run->in[1], n->out[2]);
    assert_int_equal(run->in[2], sc_graph_find(&g, "encoder.1.running_mean"));
    assert_int_equal(run->in[3], sc_graph_find(&g, "encoder.1.running_var"));
    assert_true(run->momentum == 0.1);
    n = producer(&g, "encoder.3");
    assert_int_equal(n->op, SC_OP_MAXPOOL);
    assert_int_equal(n->kernel, 3);
    assert_int_equal(n->stride, 2);
    assert_int_equal(n->pad, 1);
    n = producer(&g, "encoder.5.0");
    assert_int_equal(n->op, SC_OP_RELU);
    n = producer(&g, "encoder.5.0.add");
    assert_int_equal(n->op, SC_OP_ADD);
    assert_int_equal(n->in[1], sc_graph_find(&g, "encoder.5.0.downsample.1"));
    assert_int_equal(n->line, line_of_text(m.text, "<stage block=\"basic\" filters=\"128\""));
    n = producer(&g, "encoder.5.0.conv1");
    assert_int_equal(n->stride, 2);
    assert_string_equal(n->label, "encoder.5.0.conv1");
    assert_int_equal(producer(&g, "encoder.5.1.conv1")->stride, 1);
    assert_int_equal(producer(&g, "encoder.8")->op, SC_OP_GLOBAL_AVGPOOL);
    n = producer(&g, "head.0");
    assert_int_equal(n->op, SC_OP_LINEAR);
    assert_int_equal(n->nin, 3);
    assert_true(g.n[g.nn - 1].temperature == 0.07);

    /* The model tree: defaults and values as written. */
    assert_string_equal(m.name, "resnet18-stl10");
    assert_int_equal(m.encoder.n, 9);
    assert_int_equal(m.head.n, 3);
    assert_int_equal(m.encoder.items[4].kind, SC_L_STAGE);
    assert_int_equal(m.encoder.items[4].expansion, 1);
    assert_int_equal(m.encoder.items[1].kind, SC_L_BATCHNORM);
    assert_true(m.encoder.items[1].momentum == 0.1 && m.encoder.items[1].eps == 1e-5);
    assert_int_equal(m.head.items[0].bias, 1);
    assert_int_equal(m.encoder.items[0].bias, 0);
    assert_int_equal(m.train.batch, 256);
    assert_int_equal(m.train.epochs, 100);
    assert_int_equal(m.train.optimizer, SC_OPT_ADAMW);
    assert_true(m.train.lr == 5e-4 && m.train.weight_decay == 1e-4);
    assert_int_equal(m.train.schedule, SC_SCHED_COSINE);
    assert_int_equal(m.train.lr_scaling_linear, 0);
    assert_int_equal(m.train.warmup_epochs, 0);
    assert_true(m.train.momentum == 0.9);
    assert_int_equal(m.naugs, 6);
    const sc_aug *crop = &m.augs[1];
    assert_int_equal(crop->kind, SC_AUG_RANDOM_RESIZED_CROP);
    assert_int_equal(crop->size, 96);
    assert_true(crop->scale_min == 0.08 && crop->ratio_max == 1.3333333);
    /* The crop's start tag spans two lines: its line is the first. */
    assert_int_equal(crop->line, line_of_text(m.text, "<random-resized-crop"));
    assert_int_equal(m.augs[4].kind, SC_AUG_GAUSSIAN_BLUR);
    assert_int_equal(m.augs[4].kernel, 9);
    assert_int_equal(m.augs[5].kind, SC_AUG_NORMALIZE);
    assert_true(m.augs[5].mean[2] == 0.5 && m.augs[5].std[0] == 0.5);
    assert_int_equal(m.loss_line, line_of_text(m.text, "<loss"));

    sc_graph_free(&g);
    sc_model_free(&m);

    /* A batch override changes the input, nothing else. */
    load_shipped("resnet18-stl10", 8, &m, &g);
    assert_int_equal(g.batch, 8);
    check_shape(&g, "input", 4, 16, 3, 96, 96);
    check_shape(&g, "z_norm", 2, 16, 128, 0, 0);
    assert_int_equal(sc_graph_param_count(&g), 11504832);
    sc_graph_free(&g);
    sc_model_free(&m);
}

static void test_other_models(void **state)
{
    (void)state;
    sc_spec m;
    sc_graph g;
    load_shipped("resnet18-stl10-paper", 0, &m, &g);
    assert_int_equal(m.train.optimizer, SC_OPT_LARS);
    assert_int_equal(m.train.lr_scaling_linear, 1);
    assert_int_equal(m.train.warmup_epochs, 10);
    assert_true(m.train.lr == 0.3 && m.train.weight_decay == 1e-6);
    assert_true(m.temperature == 0.2);
    int jitter = 0, blur = 0;
    for (int i = 0; i < m.naugs; i++) {
        const sc_aug *a = &m.augs[i];
        if (a->kind == SC_AUG_COLOR_JITTER) {
            jitter = 1;
            assert_true(a->p == 0.8 && a->brightness == 0.8 && a->contrast == 0.8 &&
                        a->saturation == 0.8 && a->hue == 0.2);
        }
        if (a->kind == SC_AUG_GAUSSIAN_BLUR) {
            blur = 1;
            assert_true(a->p == 0.5);
            assert_int_equal(a->kernel, 9);
        }
    }
    assert_true(jitter && blur);
    sc_graph_free(&g);
    sc_model_free(&m);

    load_shipped("resnet18-cifar", 0, &m, &g);
    check_shape(&g, "encoder.0.weight", 4, 64, 3, 3, 3);
    check_shape(&g, "encoder.3.0", 4, 512, 64, 32, 32);
    check_shape(&g, "encoder.6.1", 4, 512, 512, 4, 4);
    check_shape(&g, "encoder.7", 2, 512, 512, 0, 0);
    sc_graph_free(&g);
    sc_model_free(&m);

    load_shipped("resnet50-stl10", 0, &m, &g);
    check_shape(&g, "encoder.4.0.conv1.weight", 4, 64, 64, 1, 1);
    check_shape(&g, "encoder.4.0.conv3.weight", 4, 256, 64, 1, 1);
    check_shape(&g, "encoder.4.0.downsample.0.weight", 4, 256, 64, 1, 1);
    check_shape(&g, "encoder.5.0.conv2.weight", 4, 128, 128, 3, 3);
    check_shape(&g, "encoder.8", 2, 512, 2048, 0, 0);
    /* The bottleneck's stride sits on its 3x3 conv (ResNet v1.5, as torchvision). */
    assert_int_equal(producer(&g, "encoder.5.0.conv1")->stride, 1);
    assert_int_equal(producer(&g, "encoder.5.0.conv2")->stride, 2);
    assert_int_equal(m.encoder.items[5].expansion, 4);
    sc_graph_free(&g);
    sc_model_free(&m);
}

/* Every layer kind, named layers, residuals with and without shortcut. */
static const char custom_model[] =
    "<simclr name=\"custom\" version=\"1\">\n"                                 /* 1 */
    "  <input channels=\"1\" height=\"12\" width=\"10\"/>\n"                   /* 2 */
    "  <encoder>\n"                                                            /* 3 */
    "    <conv name=\"stem\" filters=\"4\" kernel=\"3\" pad=\"1\" bias=\"true\"/>\n" /* 4 */
    "    <residual name=\"blk\">\n"                                            /* 5 */
    "      <body>\n"                                                           /* 6 */
    "        <conv filters=\"6\" kernel=\"3\" stride=\"2\" pad=\"1\"/>\n"      /* 7 */
    "        <batchnorm momentum=\"0.2\" eps=\"1e-3\"/>\n"                      /* 8 */
    "      </body>\n"                                                          /* 9 */
    "      <shortcut>\n"                                                       /* 10 */
    "        <conv filters=\"6\" kernel=\"1\" stride=\"2\"/>\n"                /* 11 */
    "      </shortcut>\n"                                                      /* 12 */
    "    </residual>\n"                                                        /* 13 */
    "    <residual activation=\"none\">\n"                                     /* 14 */
    "      <body><relu/></body>\n"                                             /* 15 */
    "    </residual>\n"                                                        /* 16 */
    "    <avgpool kernel=\"2\"/>\n"                                            /* 17 */
    "    <maxpool kernel=\"3\" stride=\"1\" pad=\"1\"/>\n"                     /* 18 */
    "    <flatten/>\n"                                                         /* 19 */
    "    <batchnorm/>\n"                                                       /* 20 */
    "    <flatten/>\n"                                                         /* 21 */
    "  </encoder>\n"                                                           /* 22 */
    "  <head>\n"                                                               /* 23 */
    "    <linear name=\"proj\" units=\"5\" bias=\"false\"/>\n"                 /* 24 */
    "    <stage block=\"basic\" filters=\"2\" blocks=\"1\"/>\n"               /* 25 */
    "  </head>\n"                                                              /* 26 */
    "  <loss type=\"nt-xent\" temperature=\"0.1\"/>\n"                         /* 27 */
    "  <train batch=\"3\" epochs=\"2\" optimizer=\"sgd\" lr=\"0.05\"/>\n"      /* 28 */
    "</simclr>\n";

static void test_custom_layers(void **state)
{
    (void)state;
    char path[] = "/tmp/sc_frontend_customXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    /* The stage in the head is on a 2-D input: first check that error. */
    write_file(path, custom_model);
    sc_spec m;
    sc_graph g;
    sc_graph_init(&g);
    char *err;
    assert_int_not_equal(load_and_build(path, 0, &m, &g, &err), 0);
    char want[600];
    snprintf(want, sizeof want, "%s:25: error: stage needs a 4-D input", path);
    if (!strstr(err, want))
        fail_msg("want '%s' in:\n%s", want, err);
    free(err);
    sc_graph_free(&g);
    sc_model_free(&m);

    /* Without it, everything builds. */
    char *text = strdup(custom_model);
    assert_non_null(text);
    char *stage = strstr(text, "    <stage");
    memset(stage, ' ', (size_t)(strchr(stage, '\n') - stage));
    write_file(path, text);
    free(text);
    sc_graph_init(&g);
    if (load_and_build(path, 0, &m, &g, &err) != 0)
        fail_msg("%s", err);
    free(err);
    check_graph(&m, &g);
    assert_int_equal(g.batch, 3);
    check_shape(&g, "stem.weight", 4, 4, 1, 3, 3);
    check_shape(&g, "stem.bias", 1, 4, 0, 0, 0);
    assert_int_equal(find(&g, "stem.bias")->fan_in, 9);
    check_shape(&g, "stem", 4, 6, 4, 12, 10);
    check_shape(&g, "blk.body.0.weight", 4, 6, 4, 3, 3);
    check_shape(&g, "blk.body.0", 4, 6, 6, 6, 5);
    check_shape(&g, "blk.body.1.weight", 1, 6, 0, 0, 0);
    check_shape(&g, "blk.shortcut.0.weight", 4, 6, 4, 1, 1);
    check_shape(&g, "blk.shortcut.0", 4, 6, 6, 6, 5);
    check_shape(&g, "blk", 4, 6, 6, 6, 5);
    assert_int_equal(producer(&g, "blk")->op, SC_OP_RELU);
    assert_int_equal(producer(&g, "blk.add")->op, SC_OP_ADD);
    assert_int_equal(producer(&g, "blk.add")->line, 5);
    assert_int_equal(producer(&g, "blk.body.1")->line, 8);
    assert_true(producer(&g, "blk.body.1")->eps == 1e-3);
    assert_true(producer(&g, "blk.body.1")->momentum == 0.2);
    assert_true(producer(&g, "blk.body.1")[1].momentum == 0.2);
    /* activation="none": the add is the output. */
    assert_int_equal(producer(&g, "encoder.2")->op, SC_OP_ADD);
    assert_int_equal(sc_graph_find(&g, "encoder.2.add"), -1);
    check_shape(&g, "encoder.2.body.0", 4, 6, 6, 6, 5);
    /* avgpool stride defaults to the kernel; 6x5 -> 3x2. */
    assert_int_equal(producer(&g, "encoder.3")->stride, 2);
    check_shape(&g, "encoder.3", 4, 6, 6, 3, 2);
    check_shape(&g, "encoder.4", 4, 6, 6, 3, 2);
    assert_int_equal(producer(&g, "encoder.5")->op, SC_OP_RESHAPE);
    check_shape(&g, "encoder.5", 2, 6, 36, 0, 0);
    check_shape(&g, "encoder.6", 2, 6, 36, 0, 0);
    check_shape(&g, "encoder.6.running_mean", 1, 36, 0, 0, 0);
    /* A flatten of a 2-D tensor is no node at all. */
    assert_int_equal(sc_graph_find(&g, "encoder.7"), -1);
    check_shape(&g, "proj.weight", 2, 5, 36, 0, 0);
    assert_int_equal(sc_graph_find(&g, "proj.bias"), -1);
    assert_int_equal(producer(&g, "proj")->nin, 2);
    assert_int_equal(producer(&g, "proj")->line, 24);
    assert_int_equal(producer(&g, "proj")->in[0], sc_graph_find(&g, "encoder.6"));
    assert_string_equal(g.t[g.params[0]].name, "stem.weight");
    assert_string_equal(g.t[g.params[1]].name, "stem.bias");
    assert_string_equal(g.t[g.params[2]].name, "blk.body.0.weight");
    assert_string_equal(g.t[g.params[3]].name, "blk.body.1.weight");
    assert_string_equal(g.t[g.params[4]].name, "blk.body.1.bias");
    assert_string_equal(g.t[g.params[5]].name, "blk.shortcut.0.weight");
    assert_string_equal(g.t[g.params[6]].name, "encoder.6.weight");
    assert_string_equal(g.t[g.params[g.nparams - 1]].name, "proj.weight");
    assert_int_equal(g.nparams, 9);
    assert_int_equal(g.nbuffers, 4);
    /* Defaults in the tree. */
    assert_int_equal(m.naugs, 0);
    assert_int_equal(m.train.schedule, SC_SCHED_CONSTANT);
    assert_true(m.train.weight_decay == 0);
    assert_int_equal(m.train.seed, 0);
    assert_int_equal(m.encoder.items[2].relu_after, 0);
    assert_int_equal(m.encoder.items[1].relu_after, 1);
    assert_int_equal(m.encoder.items[3].stride, 2);
    assert_int_equal(m.encoder.items[3].pad, 0);
    sc_graph_free(&g);
    sc_model_free(&m);
    unlink(path);
}

/* silu, gelu and leaky-relu (given and default slope) in the tree and the
 * graph: one elementwise node each, shape kept, slope on the node. */
static void test_activation_layers(void **state)
{
    (void)state;
    char *path = path_join(source_dir(), "tests/specs/activations.xml");
    char *text = read_all(path);
    assert_non_null(text);
    sc_spec m;
    sc_graph g;
    sc_graph_init(&g);
    char *err;
    if (load_and_build(path, 0, &m, &g, &err) != 0)
        fail_msg("%s", err);
    free(err);
    check_graph(&m, &g);
    const sc_layer *enc = m.encoder.items, *head = m.head.items;
    assert_int_equal(enc[1].kind, SC_L_SILU);
    assert_int_equal(enc[2].body.items[2].kind, SC_L_GELU);
    assert_int_equal(enc[2].shortcut.items[0].kind, SC_L_LEAKY_RELU);
    assert_true(enc[2].shortcut.items[0].slope == -0.5);
    assert_int_equal(enc[3].kind, SC_L_LEAKY_RELU);
    assert_true(enc[3].slope == 0.2);
    assert_int_equal(head[3].kind, SC_L_LEAKY_RELU);
    assert_true(head[3].slope == 0.01); /* the default */
    assert_string_equal(sc_layer_kind_name(head[3].kind), "leaky-relu");

    assert_int_equal(producer(&g, "encoder.1")->op, SC_OP_SILU);
    assert_int_equal(producer(&g, "encoder.1")->line, line_of_text(text, "<silu/>"));
    assert_int_equal(producer(&g, "encoder.2.body.2")->op, SC_OP_GELU);
    assert_int_equal(producer(&g, "encoder.3")->op, SC_OP_LEAKY_RELU);
    assert_true(producer(&g, "encoder.3")->slope == 0.2);
    assert_true(producer(&g, "encoder.2.shortcut.0")->slope == -0.5);
    assert_int_equal(producer(&g, "encoder.3")->line, line_of_text(text, "<leaky-relu slope=\"0.2\""));
    assert_int_equal(producer(&g, "head.1")->op, SC_OP_GELU);
    assert_int_equal(producer(&g, "head.3")->op, SC_OP_LEAKY_RELU);
    assert_true(producer(&g, "head.3")->slope == 0.01);
    assert_int_equal(producer(&g, "head.5")->op, SC_OP_SILU);
    assert_int_equal(producer(&g, "head.5")->in[0], sc_graph_find(&g, "head.4"));
    check_shape(&g, "encoder.1", 4, 6, 5, 11, 13);
    check_shape(&g, "encoder.6", 4, 6, 7, 5, 6);
    check_shape(&g, "head.3", 2, 6, 8, 0, 0);
    /* no parameters of their own */
    assert_int_equal(sc_graph_find(&g, "encoder.1.weight"), -1);
    assert_int_equal(sc_graph_find(&g, "head.3.weight"), -1);
    sc_graph_free(&g);
    sc_model_free(&m);
    free(text);
    free(path);
}

/* -------------------------------------------------- (b) bad fixtures */

typedef struct {
    int line;
    char substr[512];
} expectation;

static void parse_expectation(const char *path, expectation *x)
{
    char *text = read_all(path);
    assert_non_null(text);
    const char *p = strstr(text, "<!-- expect-line: ");
    if (!p || p != text)
        fail_msg("%s: the first line must be <!-- expect-line: N expect: SUBSTRING -->", path);
    p += strlen("<!-- expect-line: ");
    x->line = (int)strtol(p, (char **)&p, 10);
    assert_true(x->line > 0);
    const char *e = strstr(p, " expect: ");
    const char *end = strstr(p, " -->");
    assert_non_null(e);
    assert_non_null(end);
    e += strlen(" expect: ");
    assert_true(end > e && (size_t)(end - e) < sizeof x->substr);
    snprintf(x->substr, sizeof x->substr, "%.*s", (int)(end - e), e);
    free(text);
}

/* Does some line of err hold "PATH:LINE: error:" and the substring? */
static int has_error(const char *err, const char *path, const expectation *x)
{
    char loc[1024];
    snprintf(loc, sizeof loc, "%s:%d: error: ", path, x->line);
    for (const char *l = err; *l;) {
        const char *eol = strchr(l, '\n');
        size_t len = eol ? (size_t)(eol - l) : strlen(l);
        char *line = strndup(l, len);
        assert_non_null(line);
        int ok = strstr(line, loc) && strstr(line, x->substr);
        free(line);
        if (ok)
            return 1;
        l += len + (eol ? 1 : 0);
    }
    return 0;
}

static char **bad_fixtures(int *n)
{
    char *dir = path_join(source_dir(), "tests/bad");
    char **v = list_xml(dir, n);
    free(dir);
    if (*n < 24)
        fail_msg("only %d fixtures in tests/bad", *n);
    return v;
}

static void test_bad_in_process(void **state)
{
    (void)state;
    int n;
    char **files = bad_fixtures(&n);
    for (int i = 0; i < n; i++) {
        expectation x;
        parse_expectation(files[i], &x);
        sc_spec m;
        sc_graph g;
        sc_graph_init(&g);
        char *err;
        int before = sc_error_count();
        int rc = load_and_build(files[i], 0, &m, &g, &err);
        if (rc == 0)
            fail_msg("%s: accepted, but should fail at line %d with '%s'", files[i], x.line,
                     x.substr);
        assert_true(sc_error_count() > before);
        if (!has_error(err, files[i], &x))
            fail_msg("%s: want line %d and '%s', got:\n%s", files[i], x.line, x.substr, err);
        /* A failed load leaves an empty model, safe to free twice. */
        if (rc == 1 && (m.text || m.path || m.encoder.n))
            fail_msg("%s: a failed load left a non-empty model", files[i]);
        free(err);
        sc_graph_free(&g);
        sc_model_free(&m);
        sc_model_free(&m);
    }
    free_list(files);
}

/* Runs argv with stdout to /dev/null and stderr into *err; returns the exit
 * status, or -1 when it did not exit normally. */
static int run(char *const argv[], char **err, char **out)
{
    char etmpl[] = "/tmp/sc_frontend_stderrXXXXXX", otmpl[] = "/tmp/sc_frontend_stdoutXXXXXX";
    int efd = mkstemp(etmpl), ofd = mkstemp(otmpl);
    assert_true(efd >= 0 && ofd >= 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    close(efd);
    close(ofd);
    *err = read_all(etmpl);
    *out = read_all(otmpl);
    unlink(etmpl);
    unlink(otmpl);
    assert_non_null(*err);
    assert_non_null(*out);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_bad_with_compiler(void **state)
{
    (void)state;
    const char *bin = getenv("SIMCLRC");
    if (!bin) {
        test_skip("SIMCLRC is not set (run through ctest); skipped\n");
    }
    /* First, that it compiles a good model at all. */
    char *model = path_join(source_dir(), "models/resnet-small.xml");
    char *gargv[] = {(char *)bin, "--emit=graph", model, NULL};
    char *gerr, *gout;
    int grc = run(gargv, &gerr, &gout);
    if (grc != 0 || !strstr(gout, "encoder.0.weight"))
        fail_msg("%s --emit=graph %s: status %d, stderr:\n%s", bin, model, grc, gerr);
    free(gerr);
    free(gout);
    free(model);

    int n;
    char **files = bad_fixtures(&n);
    for (int i = 0; i < n; i++) {
        expectation x;
        parse_expectation(files[i], &x);
        char *argv[] = {(char *)bin, "--emit=graph", files[i], NULL};
        char *err, *out;
        int rc = run(argv, &err, &out);
        if (rc != 1)
            fail_msg("%s: exit status %d, want 1; stderr:\n%s", files[i], rc, err);
        if (!has_error(err, files[i], &x))
            fail_msg("%s: want 'simclrc: %s:%d: error: ...%s...', got:\n%s", files[i],
                     files[i], x.line, x.substr, err);
        assert_non_null(strstr(err, "simclrc: "));
        free(err);
        free(out);
    }
    free_list(files);
}

/* ------------------------------------------------- (c) robustness */

static void expect_failure(const char *path, const char *substr)
{
    sc_spec m;
    sc_graph g;
    sc_graph_init(&g);
    char *err;
    assert_int_not_equal(load_and_build(path, 0, &m, &g, &err), 0);
    if (!strstr(err, substr) || !strstr(err, "simclrc: ") || !strstr(err, path))
        fail_msg("%s: want '%s', got:\n%s", path, substr, err);
    free(err);
    sc_graph_free(&g);
    sc_model_free(&m);
}

static void test_unreadable_files(void **state)
{
    (void)state;
    expect_failure("/nonexistent/model.xml", "cannot open the model file");
    char dir[] = "/tmp/sc_frontend_dirXXXXXX";
    assert_non_null(mkdtemp(dir));
    expect_failure(dir, "cannot read the model file");
    char *empty = path_join(dir, "empty.xml");
    write_file(empty, "");
    expect_failure(empty, "the model file is empty");
    char *junk = path_join(dir, "junk.xml");
    write_file(junk, "\x01\x02 not xml at all");
    expect_failure(junk, "error: ");
    unlink(empty);
    unlink(junk);
    rmdir(dir);
    free(empty);
    free(junk);
}

/* libxml2 keeps 16-bit line numbers in its tree; lines past 65535 must
 * still be exact, for schema errors and for the compiler's own. */
static void test_big_line_numbers(void **state)
{
    (void)state;
    static const char *const fixtures[] = {"unknown-attribute.xml", "temperature-zero.xml",
                                           "residual-mismatch.xml"};
    for (int f = 0; f < 3; f++) {
        char *rel = path_join("tests/bad", fixtures[f]);
        char *src = path_join(source_dir(), rel);
        free(rel);
        expectation x;
        parse_expectation(src, &x);
        char *text = read_all(src);
        assert_non_null(text);
        const int pad = 70000;
        size_t len = strlen(text);
        char *big = malloc(len + (size_t)pad * 9 + 1);
        assert_non_null(big);
        size_t k = 0;
        for (int i = 0; i < pad; i++) {
            memcpy(big + k, "<!-- -->\n", 9);
            k += 9;
        }
        memcpy(big + k, text, len + 1);
        char path[] = "/tmp/sc_frontend_bigXXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        write_file(path, big);
        /* The expectation comment is no longer first; move the line. */
        x.line += pad;
        sc_spec m;
        sc_graph g;
        sc_graph_init(&g);
        char *err;
        assert_int_not_equal(load_and_build(path, 0, &m, &g, &err), 0);
        if (!has_error(err, path, &x))
            fail_msg("want line %d and '%s', got:\n%s", x.line, x.substr, err);
        free(err);
        sc_graph_free(&g);
        sc_model_free(&m);
        unlink(path);
        free(big);
        free(text);
        free(src);
    }
}

/* Random byte edits of a valid model: each must load or fail with an
 * error, never crash; ASan/UBSan builds catch leaks and overflows. */
static void test_mutations(void **state)
{
    (void)state;
    char *src = path_join(source_dir(), "models/resnet-small.xml");
    char *text = read_all(src);
    assert_non_null(text);
    size_t len = strlen(text);
    char path[] = "/tmp/sc_frontend_mutXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    static const char alphabet[] = "<>/=\"' -.0123456789eE&;abcxyz\n\t\x01\xff";
    uint64_t s = 0x9E3779B97F4A7C15ull;
    int accepted = 0, rejected = 0;
    for (int iter = 0; iter < 300; iter++) {
        char *mut = malloc(len + 8);
        assert_non_null(mut);
        memcpy(mut, text, len + 1);
        size_t n = len;
        int edits = 1 + (int)(iter % 3);
        for (int e = 0; e < edits; e++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = (size_t)((s >> 33) % n);
            char c = alphabet[(s >> 17) % (sizeof alphabet - 1)];
            switch ((s >> 8) % 3) {
            case 0: mut[at] = c; break;                                   /* replace */
            case 1: memmove(mut + at, mut + at + 1, n - at); n--; break;  /* delete */
            default:                                                      /* insert */
                if (n + 1 < len + 8) {
                    memmove(mut + at + 1, mut + at, n - at + 1);
                    mut[at] = c;
                    n++;
                }
            }
        }
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(mut, 1, n, f);
        fclose(f);
        sc_spec m;
        sc_graph g;
        sc_graph_init(&g);
        char *err;
        int before = sc_error_count();
        if (load_and_build(path, 0, &m, &g, &err) == 0) {
            accepted++;
            check_graph(&m, &g);
        } else {
            rejected++;
            assert_true(sc_error_count() > before);
            assert_non_null(strstr(err, "simclrc: "));
            assert_non_null(strstr(err, " error: "));
        }
        free(err);
        sc_graph_free(&g);
        sc_model_free(&m);
        free(mut);
    }
    print_message("mutations: %d accepted, %d rejected\n", accepted, rejected);
    assert_true(rejected > 0);
    unlink(path);
    free(text);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_models_build),
        cmocka_unit_test(test_torchvision_layouts),
        cmocka_unit_test(test_resnet18_stl10),
        cmocka_unit_test(test_other_models),
        cmocka_unit_test(test_custom_layers),
        cmocka_unit_test(test_activation_layers),
        cmocka_unit_test(test_bad_in_process),
        cmocka_unit_test(test_bad_with_compiler),
        cmocka_unit_test(test_unreadable_files),
        cmocka_unit_test(test_big_line_numbers),
        cmocka_unit_test(test_mutations),
    };
    return test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
