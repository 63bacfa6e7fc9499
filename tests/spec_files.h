/* The model files of a source directory, for tests that check every spec. */
#ifndef SPEC_FILES_H
#define SPEC_FILES_H

/* Calls fn(path, file name, ctx) for every .xml in $SC_SOURCE_DIR/sub
 * and returns how many there were; fails the test if the directory cannot
 * be read. */
int sc_for_each_spec(const char *sub, void (*fn)(const char *path, const char *name, void *ctx), void *ctx);

#endif
