/* The version of the generated-code ABI (sc_abi.h, sc_abi_fields.h): bumped
 * whenever a struct's fields change. 3: sc_param_info carries role and
 * export_name. 4: sc_model_desc carries loss (its description) and
 * tau_base (BYOL). */
#ifndef SC_ABI_VERSION_H
#define SC_ABI_VERSION_H
#define SC_ABI_VERSION 4
#endif
