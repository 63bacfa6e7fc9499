/* The XML front end: walks a model file validated by xmldoc.c (the embedded
 * schema, models/simclr.xsd), fills an sc_spec with every default applied,
 * and runs the semantic checks that need no shapes.
 *
 * Every error goes through diag.h as "FILE:LINE: error: MESSAGE"; libxml2's
 * own parse and validity errors are routed there too. The schema has
 * already rejected unknown elements, attributes and malformed values by the
 * time the tree is walked, but the walk still checks what it reads, so a
 * schema that drifts from this file fails with a message, never a crash. */
#include "model.h"

#include "diag.h"
#include "xmldoc.h"
#include "sc_augment.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/tree.h>

/* Images per step: 2 x batch views must stay far inside an int. */
#define MAX_BATCH (1 << 20)

const char *sc_layer_kind_name(sc_layer_kind k)
{
    switch (k) {
    case SC_L_CONV: return "conv";
    case SC_L_BATCHNORM: return "batchnorm";
    case SC_L_RELU: return "relu";
    case SC_L_MAXPOOL: return "maxpool";
    case SC_L_AVGPOOL: return "avgpool";
    case SC_L_GLOBAL_AVGPOOL: return "global-avgpool";
    case SC_L_FLATTEN: return "flatten";
    case SC_L_LINEAR: return "linear";
    case SC_L_RESIDUAL: return "residual";
    case SC_L_STAGE: return "stage";
    case SC_L_SILU: return "silu";
    case SC_L_GELU: return "gelu";
    case SC_L_LEAKY_RELU: return "leaky-relu";
    }
    return "?";
}

/* ------------------------------------------------------------ freeing */

static void free_list(sc_layer_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free_list(&l->items[i].body);
        free_list(&l->items[i].shortcut);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void sc_model_free(sc_spec *m)
{
    if (!m)
        return;
    free_list(&m->encoder);
    free_list(&m->head);
    free_list(&m->predictor);
    free(m->augs);
    free(m->path);
    free(m->text);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------ tree walking */

typedef struct {
    const char *path;
    sc_spec *m;
    const sc_xmldoc *doc;
} loader;

static int line_of(const loader *L, const xmlNode *n)
{
    return sc_xmldoc_line(L->doc, n);
}

static int is_elem(const xmlNode *n, const char *name)
{
    return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

static void err(loader *L, const xmlNode *n, const char *fmt, ...) SC_PRINTF(3, 4);
static void err(loader *L, const xmlNode *n, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sc_error_at(L->path, line_of(L, n), "%s", msg);
}

/* The attribute's value with the surrounding whitespace that XML Schema
 * collapses removed; NULL when absent. Free with xmlFree. */
static char *attr(const xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(n, (const xmlChar *)name);
    if (!v)
        return NULL;
    char *s = (char *)v;
    size_t len = strlen(s), a = 0;
    while (a < len && strchr(" \t\r\n", s[a]))
        a++;
    while (len > a && strchr(" \t\r\n", s[len - 1]))
        len--;
    memmove(s, s + a, len - a);
    s[len - a] = 0;
    return s;
}

static int get_int(loader *L, const xmlNode *n, const char *name, int def)
{
    char *v = attr(n, name);
    if (!v)
        return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < INT_MIN || x > INT_MAX) {
        err(L, n, "<%s> attribute '%s': '%s' is not an integer", (const char *)n->name,
            name, v);
        x = def;
    }
    xmlFree(v);
    return (int)x;
}

static double parse_double(loader *L, const xmlNode *n, const char *name,
                           const char *v, const char **rest)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || !isfinite(x)) {
        err(L, n, "<%s> attribute '%s': '%s' is not a finite number",
            (const char *)n->name, name, v);
        *rest = NULL;
        return 0;
    }
    *rest = end;
    return x;
}

static double get_double(loader *L, const xmlNode *n, const char *name, double def)
{
    char *v = attr(n, name);
    if (!v)
        return def;
    const char *rest;
    double x = parse_double(L, n, name, v, &rest);
    if (!rest)
        x = def;
    else if (*rest) {
        err(L, n, "<%s> attribute '%s': '%s' is not a number", (const char *)n->name,
            name, v);
        x = def;
    }
    xmlFree(v);
    return x;
}

/* Exactly three whitespace-separated numbers (normalize's mean and std). */
static void get_triple(loader *L, const xmlNode *n, const char *name, double out[3])
{
    out[0] = out[1] = out[2] = 0;
    char *v = attr(n, name);
    if (!v) {
        err(L, n, "<%s> needs the attribute '%s'", (const char *)n->name, name);
        return;
    }
    const char *p = v;
    int k = 0;
    for (;;) {
        while (*p && strchr(" \t\r\n", *p))
            p++;
        if (!*p)
            break;
        if (k == 3) {
            k++;
            break;
        }
        const char *rest;
        out[k++] = parse_double(L, n, name, p, &rest);
        if (!rest)
            goto done;
        if (*rest && !strchr(" \t\r\n", *rest)) {
            err(L, n, "<%s> attribute '%s': '%s' is not a list of numbers",
                (const char *)n->name, name, v);
            goto done;
        }
        p = rest;
    }
    if (k != 3)
        err(L, n, "<%s> attribute '%s' needs exactly 3 values (one per channel), got '%s'",
            (const char *)n->name, name, v);
done:
    xmlFree(v);
}

static int get_bool(loader *L, const xmlNode *n, const char *name, int def)
{
    char *v = attr(n, name);
    if (!v)
        return def;
    int x = def;
    if (!strcmp(v, "true") || !strcmp(v, "1"))
        x = 1;
    else if (!strcmp(v, "false") || !strcmp(v, "0"))
        x = 0;
    else
        err(L, n, "<%s> attribute '%s': '%s' is not a boolean (true or false)",
            (const char *)n->name, name, v);
    xmlFree(v);
    return x;
}

/* Index of the attribute's value in names (NULL-terminated); def when absent. */
static int get_enum(loader *L, const xmlNode *n, const char *name,
                    const char *const *names, int def)
{
    char *v = attr(n, name);
    if (!v)
        return def;
    int x = -1;
    for (int i = 0; names[i]; i++)
        if (!strcmp(v, names[i]))
            x = i;
    if (x < 0) {
        err(L, n, "<%s> attribute '%s': unknown value '%s'", (const char *)n->name,
            name, v);
        x = def;
    }
    xmlFree(v);
    return x;
}

static int required_int(loader *L, const xmlNode *n, const char *name)
{
    if (!xmlHasProp(n, (const xmlChar *)name)) {
        err(L, n, "<%s> needs the attribute '%s'", (const char *)n->name, name);
        return 1;
    }
    return get_int(L, n, name, 1);
}

static double required_double(loader *L, const xmlNode *n, const char *name)
{
    if (!xmlHasProp(n, (const xmlChar *)name)) {
        err(L, n, "<%s> needs the attribute '%s'", (const char *)n->name, name);
        return 1;
    }
    return get_double(L, n, name, 1);
}

/* A size attribute that must be >= min (the schema says so too). */
static int size_attr(loader *L, const xmlNode *n, const char *name, int def,
                     int required, int min)
{
    int x = required ? required_int(L, n, name) : get_int(L, n, name, def);
    if (x < min) {
        err(L, n, "<%s> attribute '%s' must be at least %d, got %d",
            (const char *)n->name, name, min, x);
        x = min;
    }
    return x;
}

static int count_elements(const xmlNode *parent)
{
    int n = 0;
    for (const xmlNode *c = parent->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            n++;
    return n;
}

/* ------------------------------------------------------------ layers */

static int parse_layers(loader *L, const xmlNode *parent, sc_layer_list *list);

static void parse_layer(loader *L, const xmlNode *n, sc_layer *l)
{
    const char *el = (const char *)n->name;
    l->line = line_of(L, n);
    char *name = attr(n, "name");
    if (name) {
        if (!name[0] || strlen(name) >= sizeof l->name)
            err(L, n, "layer name '%s' must have 1 to %d characters", name,
                (int)sizeof l->name - 1);
        else
            snprintf(l->name, sizeof l->name, "%s", name);
        xmlFree(name);
    }

    if (!strcmp(el, "conv")) {
        l->kind = SC_L_CONV;
        l->filters = size_attr(L, n, "filters", 0, 1, 1);
        l->kernel = size_attr(L, n, "kernel", 0, 1, 1);
        l->stride = size_attr(L, n, "stride", 1, 0, 1);
        l->pad = size_attr(L, n, "pad", 0, 0, 0);
        l->bias = get_bool(L, n, "bias", 0);
        l->groups = size_attr(L, n, "groups", 1, 0, 1);
        l->dilation = size_attr(L, n, "dilation", 1, 0, 1);
        if (l->filters % l->groups)
            err(L, n, "<conv> filters %d must be divisible by groups %d", l->filters, l->groups);
    } else if (!strcmp(el, "batchnorm")) {
        l->kind = SC_L_BATCHNORM;
        l->momentum = get_double(L, n, "momentum", 0.1);
        l->eps = get_double(L, n, "eps", 1e-5);
        if (!(l->momentum >= 0 && l->momentum <= 1))
            err(L, n, "batchnorm momentum must be in [0, 1], got %g", l->momentum);
        if (!(l->eps > 0))
            err(L, n, "batchnorm eps must be > 0, got %g", l->eps);
    } else if (!strcmp(el, "relu")) {
        l->kind = SC_L_RELU;
    } else if (!strcmp(el, "silu")) {
        l->kind = SC_L_SILU;
    } else if (!strcmp(el, "gelu")) {
        l->kind = SC_L_GELU;
    } else if (!strcmp(el, "leaky-relu")) {
        l->kind = SC_L_LEAKY_RELU;
        l->slope = get_double(L, n, "slope", 0.01); /* PyTorch's default */
    } else if (!strcmp(el, "maxpool") || !strcmp(el, "avgpool")) {
        l->kind = el[0] == 'm' ? SC_L_MAXPOOL : SC_L_AVGPOOL;
        l->kernel = size_attr(L, n, "kernel", 0, 1, 1);
        l->stride = size_attr(L, n, "stride", l->kernel, 0, 1);
        l->pad = size_attr(L, n, "pad", 0, 0, 0);
    } else if (!strcmp(el, "global-avgpool")) {
        l->kind = SC_L_GLOBAL_AVGPOOL;
    } else if (!strcmp(el, "flatten")) {
        l->kind = SC_L_FLATTEN;
    } else if (!strcmp(el, "linear")) {
        l->kind = SC_L_LINEAR;
        l->units = size_attr(L, n, "units", 0, 1, 1);
        l->bias = get_bool(L, n, "bias", 1);
    } else if (!strcmp(el, "residual")) {
        static const char *const acts[] = {"none", "relu", NULL};
        l->kind = SC_L_RESIDUAL;
        l->relu_after = get_enum(L, n, "activation", acts, 1);
        int nbody = 0;
        for (const xmlNode *c = n->children; c; c = c->next) {
            if (is_elem(c, "body")) {
                nbody++;
                if (parse_layers(L, c, &l->body) == 0)
                    err(L, c, "the residual's <body> has no layers");
            } else if (is_elem(c, "shortcut")) {
                parse_layers(L, c, &l->shortcut);
            } else if (c->type == XML_ELEMENT_NODE) {
                err(L, c, "unexpected <%s> in <residual> (expected <body> and <shortcut>)",
                    (const char *)c->name);
            }
        }
        if (nbody != 1)
            err(L, n, "<residual> needs exactly one <body>");
    } else if (!strcmp(el, "stage")) {
        static const char *const blocks[] = {"basic", "bottleneck", NULL};
        l->kind = SC_L_STAGE;
        if (!xmlHasProp(n, (const xmlChar *)"block"))
            err(L, n, "<stage> needs the attribute 'block'");
        l->bottleneck = get_enum(L, n, "block", blocks, 0);
        l->filters = size_attr(L, n, "filters", 0, 1, 1);
        l->blocks = size_attr(L, n, "blocks", 0, 1, 1);
        l->stride = size_attr(L, n, "stride", 1, 0, 1);
        l->expansion = size_attr(L, n, "expansion", 4, 0, 1);
        if (!l->bottleneck) {
            if (xmlHasProp(n, (const xmlChar *)"expansion"))
                err(L, n, "expansion applies to bottleneck blocks only, not basic ones");
            l->expansion = 1;
        }
        l->groups = size_attr(L, n, "groups", 1, 0, 1);
        l->width = size_attr(L, n, "width", 64, 0, 1);
        if (!l->bottleneck && (l->groups != 1 || l->width != 64))
            err(L, n, "groups and width apply to bottleneck blocks only, not basic ones");
    } else {
        err(L, n, "unknown layer <%s>", el);
    }
}

/* Parses the element children of parent as layers; returns their count. */
static int parse_layers(loader *L, const xmlNode *parent, sc_layer_list *list)
{
    int n = count_elements(parent);
    if (n == 0)
        return 0;
    list->items = calloc((size_t)n, sizeof *list->items);
    if (!list->items) {
        err(L, parent, "out of memory");
        return 0;
    }
    list->n = n;
    int i = 0;
    for (const xmlNode *c = parent->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            parse_layer(L, c, &list->items[i++]);
    return n;
}

/* Layer names must be unique: they become parameter name prefixes. */
typedef struct {
    const sc_layer **v;
    int n, cap;
} name_set;

static void check_names(loader *L, const sc_layer_list *list, name_set *s)
{
    for (int i = 0; i < list->n; i++) {
        const sc_layer *l = &list->items[i];
        if (l->name[0]) {
            for (int j = 0; j < s->n; j++)
                if (!strcmp(s->v[j]->name, l->name)) {
                    sc_error_at(L->path, l->line,
                                "duplicate layer name '%s' (first used on line %d)",
                                l->name, s->v[j]->line);
                    break;
                }
            if (s->n == s->cap) {
                int ncap = s->cap ? 2 * s->cap : 16;
                const sc_layer **q = realloc(s->v, (size_t)ncap * sizeof *q);
                if (!q) {
                    sc_error_at(L->path, l->line, "out of memory");
                    return;
                }
                s->v = q;
                s->cap = ncap;
            }
            s->v[s->n++] = l;
        }
        check_names(L, &l->body, s);
        check_names(L, &l->shortcut, s);
    }
}

/* ----------------------------------------------------- augmentations */

static void parse_aug(loader *L, const xmlNode *n, sc_aug *a)
{
    const char *el = (const char *)n->name;
    sc_spec *m = L->m;
    a->line = line_of(L, n);
    if (!strcmp(el, "random-resized-crop")) {
        a->kind = SC_AUG_RANDOM_RESIZED_CROP;
        a->size = size_attr(L, n, "size", 0, 1, 1);
        a->scale_min = get_double(L, n, "scale-min", 0.08);
        a->scale_max = get_double(L, n, "scale-max", 1.0);
        a->ratio_min = get_double(L, n, "ratio-min", 3.0 / 4.0);
        a->ratio_max = get_double(L, n, "ratio-max", 4.0 / 3.0);
        if (a->size != m->in_h || a->size != m->in_w)
            err(L, n, "random-resized-crop size %d does not match the input %dx%d "
                "(the crop is what the encoder sees)", a->size, m->in_h, m->in_w);
        if (!(a->scale_min > 0 && a->scale_max <= 1))
            err(L, n, "random-resized-crop scale must lie in (0, 1], got %g to %g",
                a->scale_min, a->scale_max);
        if (a->scale_min > a->scale_max)
            err(L, n, "random-resized-crop scale-min %g is greater than scale-max %g",
                a->scale_min, a->scale_max);
        if (!(a->ratio_min > 0))
            err(L, n, "random-resized-crop ratio-min must be > 0, got %g", a->ratio_min);
        if (a->ratio_min > a->ratio_max)
            err(L, n, "random-resized-crop ratio-min %g is greater than ratio-max %g",
                a->ratio_min, a->ratio_max);
        return;
    }
    if (!strcmp(el, "horizontal-flip")) {
        a->kind = SC_AUG_HORIZONTAL_FLIP;
        a->p = get_double(L, n, "p", 0.5);
    } else if (!strcmp(el, "color-jitter")) {
        a->kind = SC_AUG_COLOR_JITTER;
        a->p = get_double(L, n, "p", 1.0);
        a->brightness = get_double(L, n, "brightness", 0);
        a->contrast = get_double(L, n, "contrast", 0);
        a->saturation = get_double(L, n, "saturation", 0);
        a->hue = get_double(L, n, "hue", 0);
        if (a->brightness < 0 || a->contrast < 0 || a->saturation < 0)
            err(L, n, "color-jitter brightness, contrast and saturation must be >= 0");
        if (!(a->hue >= 0 && a->hue <= 0.5))
            err(L, n, "color-jitter hue must be in [0, 0.5], got %g", a->hue);
    } else if (!strcmp(el, "grayscale")) {
        a->kind = SC_AUG_GRAYSCALE;
        a->p = get_double(L, n, "p", 0.1);
    } else if (!strcmp(el, "gaussian-blur")) {
        a->kind = SC_AUG_GAUSSIAN_BLUR;
        a->p = get_double(L, n, "p", 1.0);
        a->kernel = size_attr(L, n, "kernel", 0, 1, 1);
        a->sigma_min = get_double(L, n, "sigma-min", 0.1);
        a->sigma_max = get_double(L, n, "sigma-max", 2.0);
        if (a->kernel % 2 == 0)
            err(L, n, "gaussian-blur kernel must be odd, got %d", a->kernel);
        if (!(a->sigma_min > 0))
            err(L, n, "gaussian-blur sigma-min must be > 0, got %g", a->sigma_min);
        if (a->sigma_min > a->sigma_max)
            err(L, n, "gaussian-blur sigma-min %g is greater than sigma-max %g",
                a->sigma_min, a->sigma_max);
    } else if (!strcmp(el, "normalize")) {
        a->kind = SC_AUG_NORMALIZE;
        a->p = 1;
        get_triple(L, n, "mean", a->mean);
        get_triple(L, n, "std", a->std);
        for (int i = 0; i < 3; i++)
            if (!(a->std[i] > 0)) {
                err(L, n, "normalize std must be > 0 for every channel, got %g", a->std[i]);
                break;
            }
    } else {
        err(L, n, "unknown augmentation <%s>", el);
        return;
    }
    if (!(a->p >= 0 && a->p <= 1))
        err(L, n, "%s probability p must be in [0, 1], got %g", el, a->p);
    /* These work on RGB images: one value per colour channel. */
    if ((a->kind == SC_AUG_COLOR_JITTER || a->kind == SC_AUG_GRAYSCALE ||
         a->kind == SC_AUG_NORMALIZE) && m->in_c != 3)
        err(L, n, "%s needs 3 input channels, but the input has %d", el, m->in_c);
}

/* ------------------------------------------------------ top level */

static void parse_train(loader *L, const xmlNode *n, sc_train *t)
{
    static const char *const opts[] = {"sgd", "adam", "adamw", "lars", NULL};
    static const char *const scheds[] = {"constant", "cosine", NULL};
    static const char *const scalings[] = {"none", "linear", NULL};
    t->line = line_of(L, n);
    t->batch = size_attr(L, n, "batch", 0, 1, 1);
    t->epochs = size_attr(L, n, "epochs", 0, 1, 1);
    if (!xmlHasProp(n, (const xmlChar *)"optimizer"))
        err(L, n, "<train> needs the attribute 'optimizer'");
    t->optimizer = (sc_optimizer)get_enum(L, n, "optimizer", opts, SC_OPT_SGD);
    t->lr = required_double(L, n, "lr");
    t->lr_scaling_linear = get_enum(L, n, "lr-scaling", scalings, 0);
    t->momentum = get_double(L, n, "momentum", 0.9);
    t->weight_decay = get_double(L, n, "weight-decay", 0);
    t->warmup_epochs = size_attr(L, n, "warmup-epochs", 0, 0, 0);
    t->schedule = (sc_schedule)get_enum(L, n, "schedule", scheds, SC_SCHED_CONSTANT);
    t->seed = 0;
    char *v = attr(n, "seed");
    if (v) {
        char *end;
        errno = 0;
        unsigned long long s = strtoull(v, &end, 10);
        if (end == v || *end || errno || v[0] == '-')
            err(L, n, "<train> attribute 'seed': '%s' is not an unsigned 64-bit integer", v);
        else
            t->seed = (uint64_t)s;
        xmlFree(v);
    }

    if (t->batch < 2)
        err(L, n, "batch must be at least 2 (NT-Xent needs other images as negatives), got %d",
            t->batch);
    if (t->batch > MAX_BATCH)
        err(L, n, "batch %d is larger than the supported %d", t->batch, MAX_BATCH);
    if (!(t->lr > 0))
        err(L, n, "lr must be > 0, got %g", t->lr);
    if (!(t->momentum >= 0 && t->momentum < 1))
        err(L, n, "momentum must be in [0, 1), got %g", t->momentum);
    if (!(t->weight_decay >= 0))
        err(L, n, "weight-decay must be >= 0, got %g", t->weight_decay);
    if (t->warmup_epochs > t->epochs)
        err(L, n, "warmup-epochs %d exceeds epochs %d", t->warmup_epochs, t->epochs);
}

/* ------------------------------------------------------ the objective */

/* A loss coefficient: def when absent; must be >= lo (> lo when open). */
static double coef_attr(loader *L, const xmlNode *n, const char *name, double def, double lo, int open)
{
    double x = get_double(L, n, name, def);
    if (open ? !(x > lo) : !(x >= lo))
        err(L, n, "<loss> attribute '%s' must be %s %g, got %g", name, open ? ">" : ">=", lo, x);
    return x;
}

static void parse_ntxent(loader *L, const xmlNode *n, sc_spec *m)
{
    m->temperature = required_double(L, n, "temperature");
    if (!(m->temperature > 0))
        err(L, n, "temperature must be > 0, got %g", m->temperature);
}

/* Defaults: facebookresearch/barlowtwins (lambda 0.0051) and the VICReg
 * paper (25, 25, 1, eps 1e-4). */
static void parse_barlow(loader *L, const xmlNode *n, sc_spec *m)
{
    m->loss_coef[SC_BARLOW_LAMBDA] = coef_attr(L, n, "lambda", 0.0051, 0, 0);
    m->loss_coef[SC_BARLOW_SCALE] = coef_attr(L, n, "scale", 1, 0, 1);
}

static void parse_vicreg(loader *L, const xmlNode *n, sc_spec *m)
{
    m->loss_coef[SC_VICREG_SIM] = coef_attr(L, n, "sim-coeff", 25, 0, 0);
    m->loss_coef[SC_VICREG_STD] = coef_attr(L, n, "std-coeff", 25, 0, 0);
    m->loss_coef[SC_VICREG_COV] = coef_attr(L, n, "cov-coeff", 1, 0, 0);
    m->loss_coef[SC_VICREG_EPS] = coef_attr(L, n, "eps", 1e-4, 0, 1);
}

/* <loss type="byol" tau-base="T"/>; its <predictor> is checked in parse_loss. */
static void parse_byol(loader *L, const xmlNode *n, sc_spec *m)
{
    m->tau_base = get_double(L, n, "tau-base", 0.99);
    if (!(m->tau_base >= 0 && m->tau_base <= 1))
        err(L, n, "tau-base must be in [0, 1], got %g", m->tau_base);
}

/* One row per <loss type>: the attributes it takes besides 'type', in the
 * order of their loss_coef slots (sc_loss_describe relies on it; the
 * schema allows the union of all, so each row rejects the others). */
static const struct {
    const char *type;
    sc_loss_kind kind;
    const char *attrs[5];
    void (*parse)(loader *L, const xmlNode *n, sc_spec *m);
} loss_types[] = {
    {"nt-xent", SC_LOSS_NTXENT, {"temperature"}, parse_ntxent},
    {"barlow-twins", SC_LOSS_BARLOW, {"lambda", "scale"}, parse_barlow},
    {"vicreg", SC_LOSS_VICREG, {"sim-coeff", "std-coeff", "cov-coeff", "eps"}, parse_vicreg},
    {"byol", SC_LOSS_BYOL, {"tau-base"}, parse_byol},
};

void sc_loss_describe(const sc_spec *m, char *buf, size_t len)
{
    size_t k = 0, nk = sizeof loss_types / sizeof *loss_types;
    while (k < nk && loss_types[k].kind != m->loss_kind)
        k++;
    if (k == nk) {
        snprintf(buf, len, "?");
        return;
    }
    int at = snprintf(buf, len, "%s", loss_types[k].type);
    for (int j = 0; j < 5 && loss_types[k].attrs[j] && at >= 0 && (size_t)at < len; j++) {
        double v = m->loss_kind == SC_LOSS_NTXENT ? m->temperature
                   : m->loss_kind == SC_LOSS_BYOL ? m->tau_base
                                                  : m->loss_coef[j];
        at += snprintf(buf + at, len - (size_t)at, ", %s %g", loss_types[k].attrs[j], v);
    }
}

/* <loss>, and the <predictor> (an MLP like <head>) that BYOL requires and
 * every other loss refuses; the predictor's layer names share the online
 * network's namespace. */
static void parse_loss(loader *L, const xmlNode *n, const xmlNode *predictor, sc_spec *m)
{
    m->loss_line = line_of(L, n);
    char *type = attr(n, "type");
    if (!type) {
        err(L, n, "<loss> needs the attribute 'type'");
        return;
    }
    size_t k = 0, nk = sizeof loss_types / sizeof *loss_types;
    while (k < nk && strcmp(type, loss_types[k].type))
        k++;
    if (k == nk) {
        err(L, n, "<loss> attribute 'type': unknown value '%s'", type);
        xmlFree(type);
        return;
    }
    xmlFree(type);
    for (const xmlAttr *a = n->properties; a; a = a->next) {
        const char *name = (const char *)a->name;
        int ok = !strcmp(name, "type");
        for (int j = 0; j < 5 && loss_types[k].attrs[j] && !ok; j++)
            ok = !strcmp(name, loss_types[k].attrs[j]);
        if (!ok)
            err(L, n, "<loss> attribute '%s' does not apply to type \"%s\"", name, loss_types[k].type);
    }
    m->loss_kind = loss_types[k].kind;
    loss_types[k].parse(L, n, m);
    if (m->loss_kind != SC_LOSS_BYOL) {
        if (predictor)
            err(L, predictor, "<predictor> belongs to the byol loss, not to <loss type=\"%s\">", loss_types[k].type);
        return;
    }
    if (!predictor) {
        err(L, n, "<loss type=\"byol\"> needs a <predictor> element (an MLP like <head>)");
        return;
    }
    m->predictor_line = line_of(L, predictor);
    if (parse_layers(L, predictor, &m->predictor) == 0)
        err(L, predictor, "the predictor has no layers");
}

static void parse_model(loader *L, const xmlNode *root)
{
    sc_spec *m = L->m;
    m->line = line_of(L, root);
    if (!is_elem(root, "simclr")) {
        err(L, root, "the root element must be <simclr>, not <%s>", (const char *)root->name);
        return;
    }
    char *name = attr(root, "name");
    if (!name || !name[0] || strlen(name) >= sizeof m->name)
        err(L, root, "<simclr> needs a name of 1 to %d characters", (int)sizeof m->name - 1);
    else
        snprintf(m->name, sizeof m->name, "%s", name);
    if (name)
        xmlFree(name);
    int version = required_int(L, root, "version");
    if (version != 1) {
        err(L, root, "unsupported format version %d (this compiler reads version 1)",
            version);
        return; /* the rest may mean something else in another version */
    }

    const xmlNode *input = NULL, *encoder = NULL, *loss = NULL, *train = NULL;
    const xmlNode *head = NULL, *augment = NULL, *predictor = NULL;
    for (const xmlNode *c = root->children; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE)
            continue;
        const xmlNode **slot = is_elem(c, "input") ? &input
                             : is_elem(c, "encoder") ? &encoder
                             : is_elem(c, "head") ? &head
                             : is_elem(c, "predictor") ? &predictor
                             : is_elem(c, "loss") ? &loss
                             : is_elem(c, "augment") ? &augment
                             : is_elem(c, "train") ? &train : NULL;
        if (!slot)
            err(L, c, "unexpected <%s> in <simclr>", (const char *)c->name);
        else if (*slot)
            err(L, c, "<%s> appears twice (first on line %d)", (const char *)c->name,
                line_of(L, *slot));
        else
            *slot = c;
    }
    const char *missing = !input ? "input" : !encoder ? "encoder" : !loss ? "loss"
                        : !train ? "train" : NULL;
    if (missing) {
        err(L, root, "<simclr> needs an <%s> element", missing);
        return;
    }

    m->input_line = line_of(L, input);
    m->in_c = size_attr(L, input, "channels", 0, 1, 1);
    m->in_h = size_attr(L, input, "height", 0, 1, 1);
    m->in_w = size_attr(L, input, "width", 0, 1, 1);

    m->encoder_line = line_of(L, encoder);
    if (parse_layers(L, encoder, &m->encoder) == 0)
        err(L, encoder, "the encoder has no layers");
    if (head) {
        m->head_line = line_of(L, head);
        parse_layers(L, head, &m->head);
    }

    parse_loss(L, loss, predictor, m);
    name_set names = {0};
    check_names(L, &m->encoder, &names);
    check_names(L, &m->head, &names);
    check_names(L, &m->predictor, &names);
    free(names.v);

    if (augment) {
        int n = count_elements(augment);
        if (n > SC_AUGMENT_MAX_OPS) {
            /* The runtime's pipeline holds that many (sc_augment.h). */
            const xmlNode *c = augment->children;
            for (int k = 0; c; c = c->next)
                if (c->type == XML_ELEMENT_NODE && ++k > SC_AUGMENT_MAX_OPS)
                    break;
            err(L, c, "more than %d augmentations: the data pipeline applies at most %d", SC_AUGMENT_MAX_OPS,
                SC_AUGMENT_MAX_OPS);
        } else if (n > 0) {
            m->augs = calloc((size_t)n, sizeof *m->augs);
            if (!m->augs) {
                err(L, augment, "out of memory");
                return;
            }
            for (const xmlNode *c = augment->children; c; c = c->next)
                if (c->type == XML_ELEMENT_NODE)
                    parse_aug(L, c, &m->augs[m->naugs++]);
        }
    }

    parse_train(L, train, &m->train);
}

int sc_model_load(const char *path, sc_spec *m)
{
    memset(m, 0, sizeof *m);
    int errors0 = sc_error_count();
    m->path = strdup(path);
    if (!m->path) {
        sc_error_at(path, 0, "out of memory");
        return -1;
    }
    sc_xmldoc *doc = sc_xmldoc_load(path, &m->text);
    if (doc) {
        loader L = {path, m, doc};
        parse_model(&L, sc_xmldoc_root(doc));
        sc_xmldoc_free(doc);
    }
    if (!doc || sc_error_count() > errors0) {
        sc_model_free(m);
        return -1;
    }
    return 0;
}
