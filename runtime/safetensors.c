/* safetensors: u64 little-endian header length, a JSON object mapping
 * tensor names to {dtype, shape, data_offsets} (plus "__metadata__" with
 * string values), then the raw bytes. The reader parses just that JSON
 * subset; the writer writes atomically. */
#include "sc_err.h"
#include "sc_rundir.h"
#include "sc_safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The safetensors library's own limit on the JSON header. */
#define SC_ST_MAX_HEADER 100000000

/* ---- a minimal JSON reader for the header ---- */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t'))
        c->p++;
}

static int expect(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != ch)
        return -1;
    c->p++;
    return 0;
}

/* Parses a JSON string into a fresh malloc'd buffer (\uXXXX kept to ASCII
 * range or replaced by '?': names here are ASCII). */
static char *parse_string(cursor *c)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return NULL;
    c->p++;
    size_t cap = 32, n = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    while (c->p < c->end && *c->p != '"') {
        char ch = *c->p++;
        if (ch == '\\') {
            if (c->p >= c->end)
                break;
            char e = *c->p++;
            switch (e) {
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            case 'b': ch = '\b'; break;
            case 'f': ch = '\f'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4 && c->p < c->end; i++, c->p++) {
                    char h = *c->p;
                    v = v * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
                }
                ch = v < 128 ? (char)v : '?';
                break;
            }
            default: ch = e; break;
            }
        }
        if (n + 2 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) {
                free(s);
                return NULL;
            }
            s = t;
        }
        s[n++] = ch;
    }
    if (c->p >= c->end) {
        free(s);
        return NULL;
    }
    c->p++; /* closing quote */
    s[n] = 0;
    return s;
}

/* A non-negative decimal integer within the cursor's bounds (the header
 * is not terminated: strtoll could run past it) that fits an int64_t. */
static int parse_int(cursor *c, int64_t *v)
{
    skip_ws(c);
    int64_t x = 0;
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int d = *c->p++ - '0';
        if (x > (INT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    if (c->p == start)
        return -1;
    *v = x;
    return 0;
}

/* Skips any JSON value (for keys we do not use). */
static int skip_value(cursor *c)
{
    skip_ws(c);
    if (c->p >= c->end)
        return -1;
    if (*c->p == '"') {
        free(parse_string(c));
        return 0;
    }
    if (*c->p == '{' || *c->p == '[') {
        int depth = 0;
        int in_str = 0;
        for (; c->p < c->end; c->p++) {
            char ch = *c->p;
            if (in_str) {
                if (ch == '\\' && ++c->p == c->end)
                    return -1;
                else if (ch == '"')
                    in_str = 0;
            } else if (ch == '"')
                in_str = 1;
            else if (ch == '{' || ch == '[')
                depth++;
            else if (ch == '}' || ch == ']') {
                if (--depth == 0) {
                    c->p++;
                    return 0;
                }
            }
        }
        return -1;
    }
    while (c->p < c->end && *c->p != ',' && *c->p != '}' && *c->p != ']')
        c->p++;
    return 0;
}

static int parse_metadata(cursor *c, sc_st_file *f)
{
    if (expect(c, '{'))
        return -1;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        char *k = parse_string(c);
        if (!k)
            return -1;
        if (expect(c, ':')) {
            free(k);
            return -1;
        }
        char *v = parse_string(c);
        if (!v) {
            free(k);
            return -1;
        }
        char **nk = realloc(f->meta_keys, (size_t)(f->nmeta + 1) * sizeof *nk);
        if (nk)
            f->meta_keys = nk;
        char **nv = realloc(f->meta_vals, (size_t)(f->nmeta + 1) * sizeof *nv);
        if (nv)
            f->meta_vals = nv;
        if (!nk || !nv) {
            free(k);
            free(v);
            return -1;
        }
        f->meta_keys[f->nmeta] = k;
        f->meta_vals[f->nmeta] = v;
        f->nmeta++;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        return expect(c, '}');
    }
}

static size_t dtype_size(const char *d)
{
    if (!strcmp(d, "F32") || !strcmp(d, "I32") || !strcmp(d, "U32"))
        return 4;
    if (!strcmp(d, "F64") || !strcmp(d, "I64") || !strcmp(d, "U64"))
        return 8;
    if (!strcmp(d, "F16") || !strcmp(d, "BF16") || !strcmp(d, "I16"))
        return 2;
    if (!strcmp(d, "U8") || !strcmp(d, "I8") || !strcmp(d, "BOOL"))
        return 1;
    return 0;
}

/* One tensor entry: {"dtype":..., "shape":[...], "data_offsets":[a,b]} */
static int parse_tensor(cursor *c, sc_st_tensor *t, size_t datalen, int64_t off[2], const char **why)
{
    int have = 0;
    if (expect(c, '{'))
        return -1;
    for (;;) {
        char *k = parse_string(c);
        if (!k || expect(c, ':')) {
            free(k);
            return -1;
        }
        int rc = 0;
        if (!strcmp(k, "dtype")) {
            char *v = parse_string(c);
            if (!v || strlen(v) >= sizeof t->dtype)
                rc = -1;
            else
                strcpy(t->dtype, v), have |= 1;
            free(v);
        } else if (!strcmp(k, "shape")) {
            if (expect(c, '['))
                rc = -1;
            skip_ws(c);
            t->ndim = 0;
            if (!rc && c->p < c->end && *c->p == ']')
                c->p++;
            else
                while (!rc) {
                    if (t->ndim >= SC_ST_MAX_DIMS || parse_int(c, &t->shape[t->ndim]) || t->shape[t->ndim] < 0) {
                        rc = -1;
                        break;
                    }
                    t->ndim++;
                    skip_ws(c);
                    if (c->p < c->end && *c->p == ',') {
                        c->p++;
                        continue;
                    }
                    rc = expect(c, ']');
                    break;
                }
            have |= 2;
        } else if (!strcmp(k, "data_offsets")) {
            rc = expect(c, '[') || parse_int(c, &off[0]) || expect(c, ',') ||
                 parse_int(c, &off[1]) || expect(c, ']') ? -1 : 0;
            have |= 4;
        } else
            rc = skip_value(c);
        free(k);
        if (rc)
            return -1;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (expect(c, '}'))
            return -1;
        break;
    }
    if (have != 7) {
        *why = "needs dtype, shape and data_offsets";
        return -1;
    }
    size_t es = dtype_size(t->dtype);
    if (!es) {
        *why = "unknown dtype";
        return -1;
    }
    /* Every product is checked: a shape's element count times the dtype's
     * size must equal the span of its data offsets. */
    size_t n = es;
    for (int i = 0; i < t->ndim; i++)
        if (__builtin_mul_overflow(n, (size_t)t->shape[i], &n)) {
            *why = "its shape's size overflows";
            return -1;
        }
    if (off[1] < off[0] || (uint64_t)(off[1] - off[0]) != n) {
        *why = "its data_offsets do not span its shape's bytes";
        return -1;
    }
    t->nbytes = n;
    /* Well-formed but beyond the end: the file was cut short. */
    if ((uint64_t)off[1] > datalen)
        return -2;
    return 0;
}

/* A tensor's byte range in the data, for the tiling check. */
typedef struct {
    size_t start, nbytes;
    int index;
} span;

static int by_start(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static const sc_st_tensor *name_base;
static int by_name(const void *a, const void *b)
{
    return strcmp(name_base[*(const int *)a].name, name_base[*(const int *)b].name);
}

/* The format's rules: the tensors' byte ranges tile the data exactly, with
 * no overlap and no hole (so no byte is read as two tensors), and no name
 * appears twice. Sorting keeps this O(n log n). Returns 0, or -1 with the
 * reason in err. */
static int check_layout(const sc_st_file *f, const unsigned char *data, size_t datalen, const char *path,
                        char *err, size_t errlen)
{
    span *sp = malloc(((size_t)f->n + 1) * sizeof *sp);
    int *order = malloc(((size_t)f->n + 1) * sizeof *order);
    int rc = 0;
    if (!sp || !order) {
        sc_errf(err, errlen, "%s: out of memory", path);
        rc = -1;
        goto done;
    }
    for (int i = 0; i < f->n; i++) {
        sp[i] = (span){(size_t)((const unsigned char *)f->t[i].data - data), f->t[i].nbytes, i};
        order[i] = i;
    }
    qsort(sp, (size_t)f->n, sizeof *sp, by_start);
    size_t at = 0;
    for (int k = 0; k < f->n && !rc; k++) {
        if (sp[k].start != at) {
            sc_errf(err, errlen, "%s: malformed safetensors header: tensor %s starts at data byte %zu, not "
                    "%zu (%s)", path, f->t[sp[k].index].name, sp[k].start, at,
                    sp[k].start < at ? "it overlaps another tensor" : "a hole before it");
            rc = -1;
        }
        at = sp[k].start + sp[k].nbytes;
    }
    if (!rc && at != datalen) {
        sc_errf(err, errlen, "%s: malformed safetensors file: %zu data bytes after the last tensor", path,
                datalen - at);
        rc = -1;
    }
    /* qsort takes no context; the reader is not used from several threads at once. */
    name_base = f->t;
    if (!rc)
        qsort(order, (size_t)f->n, sizeof *order, by_name);
    name_base = NULL;
    for (int k = 1; k < f->n && !rc; k++)
        if (!strcmp(f->t[order[k - 1]].name, f->t[order[k]].name)) {
            sc_errf(err, errlen, "%s: malformed safetensors header: the tensor %s appears twice", path,
                    f->t[order[k]].name);
            rc = -1;
        }
done:
    free(sp);
    free(order);
    return rc;
}

int sc_st_read(const char *path, sc_st_file *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        sc_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(fp), &st) || st.st_size < 8) {
        fclose(fp);
        sc_errf(err, errlen, "%s: not a safetensors file (too short)", path);
        return -1;
    }
    f->size = (size_t)st.st_size;
    f->bytes = malloc(f->size + 1);
    if (!f->bytes || fread(f->bytes, 1, f->size, fp) != f->size) {
        fclose(fp);
        sc_st_free(f);
        sc_errf(err, errlen, "%s: read failed", path);
        return -1;
    }
    fclose(fp);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | f->bytes[i];
    if (hlen > SC_ST_MAX_HEADER) {
        sc_st_free(f);
        sc_errf(err, errlen, "%s: malformed safetensors file: header length %llu exceeds the limit of %d bytes",
                path, (unsigned long long)hlen, SC_ST_MAX_HEADER);
        return -1;
    }
    if (hlen > f->size - 8) {
        sc_st_free(f);
        sc_errf(err, errlen, "%s: truncated or not a safetensors file: header length %llu exceeds the "
               "file's %zu bytes", path, (unsigned long long)hlen, (size_t)st.st_size);
        return -1;
    }
    const unsigned char *data = f->bytes + 8 + hlen;
    size_t datalen = f->size - 8 - hlen;
    cursor c = {(const char *)f->bytes + 8, (const char *)f->bytes + 8 + hlen};
    int ok = expect(&c, '{') == 0;
    int64_t cut = -1; /* end offset of a tensor past the end of the data */
    const char *why = NULL, *bad = NULL; /* a tensor's entry that is well-formed JSON but wrong */
    skip_ws(&c);
    if (ok && c.p < c.end && *c.p == '}')
        c.p++;
    else
        while (ok) {
            char *k = parse_string(&c);
            if (!k || expect(&c, ':')) {
                free(k);
                ok = 0;
                break;
            }
            if (!strcmp(k, "__metadata__")) {
                free(k);
                ok = parse_metadata(&c, f) == 0;
            } else {
                sc_st_tensor *nt = realloc(f->t, (size_t)(f->n + 1) * sizeof *nt);
                if (!nt) {
                    free(k);
                    ok = 0;
                    break;
                }
                f->t = nt;
                sc_st_tensor *t = &f->t[f->n];
                memset(t, 0, sizeof *t);
                t->name = k;
                f->n++;
                int64_t off[2];
                int prc = parse_tensor(&c, t, datalen, off, &why);
                if (why)
                    bad = t->name;
                ok = prc == 0;
                if (ok)
                    t->data = data + off[0];
                if (prc == -2)
                    cut = off[1];
            }
            skip_ws(&c);
            if (ok && c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            ok = ok && expect(&c, '}') == 0;
            break;
        }
    skip_ws(&c);
    ok = ok && c.p == c.end; /* only padding after the object */
    if (ok && check_layout(f, data, datalen, path, err, errlen)) {
        sc_st_free(f);
        return -1;
    }
    if (!ok) {
        /* The message first: bad is a name that sc_st_free frees. */
        if (cut >= 0)
            sc_errf(err, errlen, "%s: truncated: a tensor ends at data byte %lld, the file holds %zu "
                   "data bytes", path, (long long)cut, datalen);
        else if (why)
            sc_errf(err, errlen, "%s: malformed safetensors header: tensor %s: %s", path, bad, why);
        else
            sc_errf(err, errlen, "%s: malformed safetensors header", path);
        sc_st_free(f);
        return -1;
    }
    return 0;
}

void sc_st_free(sc_st_file *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->t[i].name);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->t);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->bytes);
    memset(f, 0, sizeof *f);
}

const sc_st_tensor *sc_st_get(const sc_st_file *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->t[i].name, name))
            return &f->t[i];
    return NULL;
}

const char *sc_st_meta(const sc_st_file *f, const char *key)
{
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_keys[i], key))
            return f->meta_vals[i];
    return NULL;
}

/* ---- writer ---- */

typedef struct {
    char *name;
    int ndim;
    int64_t shape[SC_ST_MAX_DIMS];
    float *data;
    size_t n;
} wtensor;

struct sc_st_writer {
    wtensor *t;
    int n;
    char **mk, **mv;
    int nmeta;
    int oom;
};

sc_st_writer *sc_st_writer_new(void) { return calloc(1, sizeof(sc_st_writer)); }

void sc_st_writer_meta(sc_st_writer *w, const char *key, const char *val)
{
    char **nk = realloc(w->mk, (size_t)(w->nmeta + 1) * sizeof *nk);
    if (nk)
        w->mk = nk;
    char **nv = realloc(w->mv, (size_t)(w->nmeta + 1) * sizeof *nv);
    if (nv)
        w->mv = nv;
    if (!nk || !nv) {
        w->oom = 1;
        return;
    }
    w->mk[w->nmeta] = strdup(key);
    w->mv[w->nmeta] = strdup(val);
    if (!w->mk[w->nmeta] || !w->mv[w->nmeta])
        w->oom = 1;
    w->nmeta++;
}

void sc_st_writer_f32(sc_st_writer *w, const char *name, int ndim,
                      const int64_t *shape, const float *data)
{
    wtensor *nt = realloc(w->t, (size_t)(w->n + 1) * sizeof *nt);
    if (!nt || ndim > SC_ST_MAX_DIMS) {
        w->oom = 1;
        return;
    }
    w->t = nt;
    wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < ndim; i++) {
        t->shape[i] = shape[i];
        t->n *= (size_t)shape[i];
    }
    t->data = malloc(t->n * sizeof(float) + 1);
    if (!t->name || !t->data) {
        w->oom = 1;
        return;
    }
    memcpy(t->data, data, t->n * sizeof(float));
}

/* Growable string for the JSON header. */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = (b->cap + (size_t)k + 64) * 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
}

static void sb_json_string(sbuf *b, const char *s)
{
    sb_printf(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            sb_printf(b, "\\%c", ch);
        else if (ch == '\n')
            sb_printf(b, "\\n");
        else if (ch < 0x20)
            sb_printf(b, "\\u%04x", ch);
        else
            sb_printf(b, "%c", ch);
    }
    sb_printf(b, "\"");
}

int sc_st_writer_save(sc_st_writer *w, const char *path, char *err, size_t errlen)
{
    if (w->oom) {
        sc_errf(err, errlen, "%s: out of memory while preparing the file", path);
        return -1;
    }
    sbuf h = {0};
    sb_printf(&h, "{");
    if (w->nmeta) {
        sb_printf(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nmeta; i++) {
            sb_printf(&h, i ? "," : "");
            sb_json_string(&h, w->mk[i]);
            sb_printf(&h, ":");
            sb_json_string(&h, w->mv[i]);
        }
        sb_printf(&h, "}");
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        wtensor *t = &w->t[i];
        sb_printf(&h, (i || w->nmeta) ? "," : "");
        sb_json_string(&h, t->name);
        sb_printf(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            sb_printf(&h, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + t->n * 4);
        off += t->n * 4;
    }
    sb_printf(&h, "}");
    /* Pad the header with spaces so the data starts 8-byte aligned. */
    while (!h.oom && (h.n + 8) % 8)
        sb_printf(&h, " ");
    if (h.oom) {
        free(h.s);
        sc_errf(err, errlen, "%s: out of memory while preparing the file", path);
        return -1;
    }

    sc_atomic_file f;
    if (sc_atomic_begin(&f, path, err, errlen)) {
        free(h.s);
        return -1;
    }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    sc_atomic_write(&f, len8, 8);
    sc_atomic_write(&f, h.s, h.n);
    for (int i = 0; i < w->n; i++)
        sc_atomic_write(&f, w->t[i].data, w->t[i].n * 4); /* little-endian host */
    free(h.s);
    return sc_atomic_commit(&f, err, errlen);
}

void sc_st_writer_free(sc_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    for (int i = 0; i < w->nmeta; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->t);
    free(w->mk);
    free(w->mv);
    free(w);
}
