/* Shared by the fuzz targets: the input as a file, for readers that take a
 * path (the model loader, the safetensors reader, the dataset reader). */
#ifndef SC_FUZZ_INPUT_H
#define SC_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* A private directory for this process, made once (under $TMPDIR, else
 * /tmp); NULL if it cannot be made. */
const char *sc_fuzz_dir(void);
/* Writes data to DIR/name and returns the path (static storage, valid
 * until the next call with the same name slot), or NULL. */
const char *sc_fuzz_file(const char *name, const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
