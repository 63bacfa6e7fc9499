/* Running programs from the MPI tests (test_comm, test_mpi): plainly or
 * under mpirun on this machine, with the settings a container needs. */
#ifndef MPI_RUN_H
#define MPI_RUN_H

#include "test_util.h"

/* Whether the suite was built with the MPI communicator (SC_HAVE_MPI=1). */
int mpi_available(void);

/* run_log (test_util.h) under `mpirun -np k` (SC_MPIEXEC): --allow-run-as-root (tests
 * run as root in containers), --oversubscribe (k may exceed the cores),
 * shared-memory and self transports only (no network), and
 * OMPI_MCA_btl_vader_single_copy_mechanism=none (containers often forbid
 * the cross-memory attach it uses by default). Under the sanitizers
 * (SC_SANITIZE=1) the ranks run without LeakSanitizer: Open MPI's own
 * allocations live until exit. */
int run_mpi(int k, char *const argv[], const char *log);

#endif
