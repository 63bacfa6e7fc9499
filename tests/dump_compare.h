/* Comparing two step dumps (cli.md's format, read by sc_st_read) tensor
 * by tensor: the measure of tests/test_codegen_parity.c, for the MPI
 * tests. A tensor's difference is max|a - ref| over max(max|ref|, floor),
 * floor being floor_rel times the largest gradient of ref (a gradient that
 * is mathematically zero is rounding noise; its own scale means nothing). */
#ifndef DUMP_COMPARE_H
#define DUMP_COMPARE_H

#include "sc_safetensors.h"

typedef struct {
    double worst;          /* the largest relative difference seen */
    char worst_name[256];
    int missing;           /* tensors of ref absent from a, or shaped differently */
} dump_diff;

/* Compares every tensor of ref whose name starts with one of the
 * prefixes (NULL-terminated; "" matches all) with a's. Returns the number
 * of tensors whose difference exceeds tol (missing ones count), printing
 * each when verbose. */
int dump_compare(const sc_st_file *a, const sc_st_file *ref, const char *const *prefixes, double tol,
                 double floor_rel, int verbose, dump_diff *out);

#endif
