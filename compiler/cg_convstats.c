/* conv2d+stats's statistics (fuse_stats.c, ir.h): after a chunk of nb
 * images of the convolution's output is written, and while it is still in
 * cache (the chunk is sized to fit), each channel's count, mean and sum of
 * squared deviations about that mean over the chunk, in double: two
 * passes over the chunk's rows, the second centred, so no cancellation.
 * The chunk's first image's row of stats takes them, the other images'
 * rows a count of 0 (sc_ref_stats_merge skips them). */
#include "cg_builder.h"

void sc_cg_conv_chunk_stats(sc_codegen *c, int i, LLVMValueRef img0, int64_t nb)
{
    const sc_tensor *y = &c->g->t[c->g->n[i].out[0]];
    sc_cg_conv_chunk_stats_rows(c, i, img0, nb, ci(c, 0), ci(c, y->shape[1]));
}

void sc_cg_conv_chunk_stats_rows(sc_codegen *c, int i, LLVMValueRef img0, int64_t nb, LLVMValueRef lo, LLVMValueRef hi)
{
    const sc_node *n = &c->g->n[i];
    const sc_tensor *y = &c->g->t[n->out[0]];
    int64_t ch = y->shape[1], hw = y->numel / ((int64_t)y->shape[0] * ch);
    LLVMValueRef Y = tensor(c, n->out[0]), S = tensor(c, n->out[1]);
    LLVMValueRef s1 = var(c, c->f64, cd(c, 0)), s2 = var(c, c->f64, cd(c, 0));
    loop Lo, Lj, Lk, Lz;
    LLVMValueRef o = loop_range(c, &Lo, lo, hi);
    for (int pass = 0; pass < 2; pass++) {
        LLVMValueRef acc = pass ? s2 : s1;
        LLVMValueRef mean = pass ? fdiv(c, get(c, s1, c->f64), cd(c, (double)(nb * hw))) : NULL;
        set(c, acc, cd(c, 0));
        LLVMValueRef j = loop_begin(c, &Lj, nb);
        LLVMValueRef row = gep(c, Y, imul(c, mad(c, iadd(c, img0, j), ch, o), ci(c, hw)));
        LLVMValueRef k = loop_begin(c, &Lk, hw);
        LLVMValueRef v = fext(c, ld(c, row, k));
        if (pass)
            v = fsub(c, v, mean), v = fmul(c, v, v);
        set(c, acc, fadd(c, get(c, acc, c->f64), v));
        loop_end(c, &Lk);
        loop_end(c, &Lj);
        if (pass) {
            LLVMValueRef at = imul(c, mad(c, img0, ch, o), ci(c, 3));
            st(c, S, at, cf(c, (double)(nb * hw)));
            st(c, S, iadd(c, at, ci(c, 1)), ftrunc(c, mean));
            st(c, S, iadd(c, at, ci(c, 2)), ftrunc(c, get(c, s2, c->f64)));
        }
    }
    LLVMValueRef j = loop_range(c, &Lz, ci(c, 1), ci(c, nb));
    st(c, S, imul(c, mad(c, iadd(c, img0, j), ch, o), ci(c, 3)), cf(c, 0));
    loop_end(c, &Lz);
    loop_end(c, &Lo);
}
