/* Running programs from the MPI tests (test_comm, test_mpi): plainly or
 * under mpirun on this machine, with the settings a container needs. */
#ifndef MPI_RUN_H
#define MPI_RUN_H

/* Whether the suite was built with the MPI communicator (SC_HAVE_MPI=1). */
int mpi_available(void);

/* Runs argv (NULL-terminated; argv[0] a path) with stdout and stderr
 * appended to log (NULL: inherited). Returns the exit status, or -1 if it
 * could not run or died from a signal. */
int run_log(char *const argv[], const char *log);

/* The same under `mpirun -np k` (SC_MPIEXEC): --allow-run-as-root (tests
 * run as root in containers), --oversubscribe (k may exceed the cores),
 * shared-memory and self transports only (no network), and
 * OMPI_MCA_btl_vader_single_copy_mechanism=none (containers often forbid
 * the cross-memory attach it uses by default). Under the sanitizers
 * (SC_SANITIZE=1) the ranks run without LeakSanitizer: Open MPI's own
 * allocations live until exit. */
int run_mpi(int k, char *const argv[], const char *log);

/* malloc'd printf. */
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The whole of a small text file, or NULL. */
char *slurp(const char *path);

#endif
