/* Diagnostics: every user-facing error of the compiler goes through here,
 * so that all of them read "simclrc: FILE:LINE: error: MESSAGE". */
#ifndef SC_DIAG_H
#define SC_DIAG_H

#if defined(__GNUC__)
#define SC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SC_PRINTF(a, b)
#endif

/* line <= 0 omits the line; file NULL omits the location entirely. */
void sc_error_at(const char *file, int line, const char *fmt, ...) SC_PRINTF(3, 4);
void sc_warning_at(const char *file, int line, const char *fmt, ...) SC_PRINTF(3, 4);
/* Number of errors reported so far (front end checks keep going to report
 * several at once, then fail). */
int sc_error_count(void);
void sc_diag_set_program(const char *name);

#endif
