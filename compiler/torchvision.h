/* torchvision's state-dict keys for the encoder's tensors (torchvision.c),
 * which `export` writes (sc_param_info.export_name).
 *
 * When the spec's encoder is a torchvision-style ResNet (conv, batchnorm,
 * relu, an optional maxpool, four stages, global-avgpool, with positional
 * names), the keys are torchvision's: encoder.0 -> conv1, encoder.1 -> bn1,
 * the four stages -> layer1 .. layer4, the block names inside them
 * (J.conv1, J.downsample.0, ...) unchanged. So
 * torchvision.models.resnet18().load_state_dict(..., strict=False) finds
 * everything except fc.* (and num_batches_tracked, which eval mode does not
 * use). Otherwise no tensor has a key and the canonical names stand. */
#ifndef SC_TORCHVISION_H
#define SC_TORCHVISION_H

#include <stddef.h>

#include "ir.h"
#include "model.h"

/* The index of the first stage in m's encoder when it is torchvision-style
 * and every encoder parameter of g has a key, else -1. */
int sc_torchvision_stage0(const sc_spec *m, const sc_graph *g);
/* The key of encoder tensor `name` (canonical) when the stages start at
 * layer s0: 0, or -1 when it has none (or it does not fit in len). */
int sc_torchvision_key(const char *name, int s0, char *out, size_t len);

#endif
