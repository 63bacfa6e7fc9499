/* Where simclrc finds its files: the runtime libraries that --emit=exe
 * links and the shipped models. Like clang's resource directory, they are
 * found relative to the executable, so a moved install prefix still works:
 *
 *   PREFIX/bin/simclrc
 *   PREFIX/lib/simclrc/       libsc_*.a   (SC_REL_RUNTIME from bin/)
 *   PREFIX/share/simclrc/models/  *.xml (SC_REL_MODELS from bin/)
 *
 * An executable inside the build tree it was built in (simclrc there, or
 * a test) uses the build tree's runtime and the source tree's models
 * instead; any other copy never looks into the build tree. */
#ifndef SC_LOCATE_H
#define SC_LOCATE_H

#include <stddef.h>
#include <stdio.h>

/* The directory of the running executable, resolved (/proc/self/exe).
 * Returns 0, or -1 when it cannot be known. */
int sc_self_dir(char *dir, size_t len);

/* The directory of the runtime libraries: PREFIX/lib/simclrc next to this
 * executable when it holds libsc_runtime.a, else $SIMCLRC_RUNTIME_DIR when
 * set, else the build tree's runtime for the build tree's simclrc. Returns
 * 0, or -1 with a message in err that says where it looked. */
int sc_locate_runtime(char *dir, size_t len, char *err, size_t errlen);

/* The directory of the shipped models (PREFIX/share/simclrc/models, or the
 * source tree's models/ for the build tree's simclrc). Returns 0, or -1
 * with a message in err that says where it looked. */
int sc_locate_models(char *dir, size_t len, char *err, size_t errlen);

/* The model a command-line argument names: arg itself when it has a '/'
 * or is an existing .xml file; otherwise the shipped model MODELS/arg.xml
 * (MODELS/arg when arg ends in .xml) if there is one, else arg. A bare
 * name prefers the shipped model even over a file of that name, which is
 * usually the binary an earlier compile left. Writes the path to use into
 * path; returns 1 when that is a shipped model, 0 when it is arg. */
int sc_resolve_model(const char *arg, char *path, size_t len);

/* Prints the names of the shipped models, one per line, sorted. Returns 0,
 * or -1 with a message in err. */
int sc_list_models(FILE *f, char *err, size_t errlen);

#endif
