#include "st_compare.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sc_safetensors.h"

int st_assert_same(const char *a, const char *b, const char *const *keys, size_t nkeys, const char *part)
{
    sc_st_file fa, fb;
    char err[512];
    if (sc_st_read(a, &fa, err, sizeof err))
        fail_msg("%s", err);
    if (sc_st_read(b, &fb, err, sizeof err)) {
        sc_st_free(&fa);
        fail_msg("%s", err);
    }
    assert_int_equal(fa.n, fb.n);
    int found = 0;
    for (int i = 0; i < fa.n; i++) {
        const sc_st_tensor *x = &fa.t[i], *y = sc_st_get(&fb, x->name);
        if (!y)
            fail_msg("%s has %s, %s does not", a, x->name, b);
        assert_string_equal(x->dtype, y->dtype);
        assert_int_equal(x->ndim, y->ndim);
        assert_int_equal(x->nbytes, y->nbytes);
        if (memcmp(x->data, y->data, x->nbytes))
            fail_msg("tensor %s differs between %s and %s", x->name, a, b);
        found += strstr(x->name, part) != NULL;
    }
    for (size_t k = 0; k < nkeys; k++) {
        const char *va = sc_st_meta(&fa, keys[k]), *vb = sc_st_meta(&fb, keys[k]);
        if (!va || !vb || strcmp(va, vb))
            fail_msg("metadata %s: '%s' in %s, '%s' in %s", keys[k], va ? va : "(none)", a, vb ? vb : "(none)", b);
    }
    sc_st_free(&fa);
    sc_st_free(&fb);
    return found;
}
