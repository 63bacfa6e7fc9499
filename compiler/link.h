/* Linking a model object into a training binary (--emit=exe). */
#ifndef SC_LINK_H
#define SC_LINK_H

#include <stddef.h>

/* Links obj_path (the object simclrc emitted) with libsc_binary.a (main),
 * the communicator (libsc_comm_mpi.a and libmpi when mpi is set, else
 * libsc_comm_serial.a), libsc_runtime.a, OpenBLAS, libm and pthreads into
 * the executable
 * out_path, running the system C compiler driver: $CC when set (it may
 * carry arguments, split at blanks), otherwise the compiler simclrc was
 * built with. The runtime libraries are found by sc_locate_runtime
 * (locate.h): next to the executable, in $SIMCLRC_RUNTIME_DIR, or in the
 * build tree for the build tree's simclrc. No shell is involved. Returns 0, or -1 with a message in err that includes the
 * driver's own diagnostics. */
int sc_link_exe(const char *obj_path, const char *out_path, int mpi, char *err, size_t errlen);

/* Whether this simclrc was built with the MPI communicator (--mpi). */
int sc_link_have_mpi(void);

#endif
