/* The model files of a directory, for tests that check every spec. */
#ifndef SPEC_FILES_H
#define SPEC_FILES_H

/* DIR/NAME for every *.xml in dir, sorted, NULL-terminated; *count gets
 * their number. NULL when the directory cannot be read or memory runs out.
 * Free with sc_spec_list_free. */
char **sc_spec_list(const char *dir, int *count);
void sc_spec_list_free(char **list);

/* Calls fn(path, file name, ctx) for every .xml in $SC_SOURCE_DIR/sub, in
 * name order, and returns how many there were; fails the test if the
 * directory cannot be read. */
int sc_for_each_spec(const char *sub, void (*fn)(const char *path, const char *name, void *ctx), void *ctx);

#endif
