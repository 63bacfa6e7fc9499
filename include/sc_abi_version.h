/* The version of the generated-code ABI (sc_abi.h). Separate so that the
 * compiler, whose own model type is also called sc_model, can use it. */
#ifndef SC_ABI_VERSION_H
#define SC_ABI_VERSION_H
#define SC_ABI_VERSION 2
#endif
