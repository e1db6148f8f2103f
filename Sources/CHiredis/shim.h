#ifndef ENVOY_CHIREDIS_SHIM_H
#define ENVOY_CHIREDIS_SHIM_H
#include <hiredis/hiredis.h>
#include <hiredis/read.h>

/// hiredis's version macros as values Swift can read.
static inline int envoy_hiredis_major(void) { return HIREDIS_MAJOR; }
static inline int envoy_hiredis_minor(void) { return HIREDIS_MINOR; }
static inline int envoy_hiredis_patch(void) { return HIREDIS_PATCH; }
#endif
