#!/bin/sh
# SPDX-License-Identifier: MIT
# Every plugin given must export exactly one dynamic symbol, apr_plugin_entry (nm -D --defined-only),
# and no GNU unique symbol.
status=0
for so in "$@"; do
  exports=$(nm -D --defined-only "$so" | awk '{print $2 " " $3}')
  if [ "$exports" != "T apr_plugin_entry" ]; then
    echo "FAIL $so exports:"
    echo "$exports" | sed 's/^/  /'
    status=1
  else
    echo "ok   $so"
  fi
done
exit $status
