/* Reading and writing safetensors files (8-byte little-endian header
 * length, JSON header, raw little-endian data), as used for step dumps and
 * checkpoints. Only F32 tensors (and U8/I64 for reading) are needed. */
#ifndef SC_SAFETENSORS_H
#define SC_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SC_ST_MAX_DIMS 8

typedef struct {
    char *name;
    char dtype[8];          /* "F32", ... */
    int ndim;
    int64_t shape[SC_ST_MAX_DIMS];
    size_t nbytes;
    const void *data;       /* into the file's bytes (reader) */
} sc_st_tensor;

typedef struct {
    sc_st_tensor *t;
    int n;
    char **meta_keys, **meta_vals;   /* __metadata__ string pairs */
    int nmeta;
    unsigned char *bytes;            /* the whole file */
    size_t size;
} sc_st_file;

/* Reads PATH; on error writes a message naming the file into err (size
 * errlen) and returns -1. */
int sc_st_read(const char *path, sc_st_file *f, char *err, size_t errlen);
void sc_st_free(sc_st_file *f);
const sc_st_tensor *sc_st_get(const sc_st_file *f, const char *name);
const char *sc_st_meta(const sc_st_file *f, const char *key);

/* Writer: add tensors (data is copied), then write atomically (temporary
 * file in the same directory, fsync, rename). */
typedef struct sc_st_writer sc_st_writer;
sc_st_writer *sc_st_writer_new(void);
void sc_st_writer_meta(sc_st_writer *w, const char *key, const char *val);
void sc_st_writer_f32(sc_st_writer *w, const char *name, int ndim,
                      const int64_t *shape, const float *data);
/* Returns 0, or -1 with a message (naming the path and the system error)
 * in err. Frees nothing: call sc_st_writer_free after. */
int sc_st_writer_save(sc_st_writer *w, const char *path, char *err,
                      size_t errlen);
void sc_st_writer_free(sc_st_writer *w);

#endif
