/* Two safetensors files (checkpoints) compared byte for byte, for the
 * tests that kill and resume training (test_train, test_byol). */
#ifndef ST_COMPARE_H
#define ST_COMPARE_H

#include <stddef.h>

/* Fails the current cmocka test unless a and b hold the same tensors
 * (names, dtype, shape, bytes; each of a in b and as many in both) and
 * the same value for each of the nkeys metadata keys. Returns how many
 * tensor names contain `part`, so that a caller can require the state it
 * cares about (the optimizer's, a BYOL target's) to be there at all. */
int st_assert_same(const char *a, const char *b, const char *const *keys, size_t nkeys, const char *part);

#endif
