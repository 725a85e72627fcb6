// Compiled once against each frozen header in frozen/ (the include path picks which): the copies
// kept in the tree have exactly the offsets the current header is held to.
#include <apr/plugin.h>

#include <cstddef>

#include "abi_offsets.inc"

static_assert(APR_ABI_MAJOR == 1 && APR_ABI_MINOR == APR_FROZEN_MINOR);
