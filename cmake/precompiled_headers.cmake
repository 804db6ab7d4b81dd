# Precompiled headers: asio's and spdlog's headers are most of what each
# C++ file of targets/, server/ and tests/unit costs to compile, and every
# one of those files is compiled with the same flags and definitions, so one
# header, precompiled once in dbgstub_targets, serves them all (REUSE_FROM).
# nlohmann/json is left out: two files include it, and in the header every
# other file would load it for nothing. protocol/ (no asio, no spdlog) has
# none. DBGSTUB_PCH=OFF builds without (e.g. to check that each file
# includes what it uses).
#
# Included from the top-level CMakeLists.txt after the libraries' folders
# (the option DBGSTUB_PCH is there). Measured on one file (server/gdb/session.cpp,
# Debug + ASan/UBSan): 16.3 s of CPU without, 15.4 s with; most of a file's
# time is code generation for the templates it instantiates, which a
# precompiled header does not save.

set(DBGSTUB_PCH_HEADERS
  <asio/io_context.hpp>
  <asio/post.hpp>
  <asio/steady_timer.hpp>
  <asio/ip/tcp.hpp>
  <spdlog/spdlog.h>
  <functional>
  <map>
  <memory>
  <optional>
  <string>
  <vector>)

# Callers: the targets that use the header, after they exist.
function(dbgstub_use_pch)
  if(NOT DBGSTUB_PCH)
    return()
  endif()
  foreach(t ${ARGN})
    target_precompile_headers(${t} REUSE_FROM dbgstub_targets)
  endforeach()
endfunction()

if(DBGSTUB_PCH)
  target_precompile_headers(dbgstub_targets PRIVATE ${DBGSTUB_PCH_HEADERS})
endif()
