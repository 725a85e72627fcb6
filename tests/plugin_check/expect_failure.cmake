# SPDX-License-Identifier: MIT
# Runs `apr plugin-check PLUGIN` and requires exit status 1 and a line matching EXPECT.
execute_process(COMMAND "${APR}" plugin-check "${PLUGIN}" RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 1)
  message(FATAL_ERROR "apr plugin-check exited with ${rc}, expected 1\n${err}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "no line matches: ${EXPECT}")
endif()
