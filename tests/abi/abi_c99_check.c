/* SPDX-License-Identifier: MIT */
/* Compiled with -std=c99 -Wall -Wextra -Werror -pedantic: the header must be plain C99. */
#include <apr/plugin.h>

int apr_abi_c99_check(void) {
  apr_plugin_api api;
  api.struct_size = sizeof api;
  return (int)(APR_PLUGIN_API_SIZE_V1_0 <= sizeof api);
}
