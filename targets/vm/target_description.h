// The VM's register description (target.xml), as the gdbstub describes it.
//
// QEMU's x86-64 target.xml is a stub that includes another document
// (<xi:include href="i386-64bit.xml"/>). dbgstub serves gdb one document
// (the dispatcher answers only the annex "target.xml"), so the included
// documents are fetched here and put in place of their include elements,
// as gdb itself would do when reading them one by one.
#pragma once
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace dbgstub::vm {

// Reads one feature document by name ("target.xml", "i386-64bit.xml").
using DocumentReader = std::function<Result<std::string>(const std::string& annex)>;

struct InlineLimits {
  int max_depth = 4;                    // includes inside included documents
  int max_includes = 64;                // in all
  std::size_t max_size = 1 << 20;       // bytes of the finished document
};

// `document` with every <xi:include href="NAME"/> replaced by NAME's
// content (its XML declaration and DOCTYPE dropped, includes inside it
// resolved the same way). Fails on a bad include element, a name that
// can't travel in a qXfer request, an unreadable document, or a limit.
Result<std::string> inline_includes(const std::string& document, const DocumentReader& read,
                                    const InlineLimits& limits = {});

// One <reg> of a description, numbered as gdb numbers them: in document
// order, from 0, a regnum="N" attribute restarting the count at N.
struct RegisterInfo {
  std::string name;
  int regno = 0;
  int bitsize = 0;
};
// Registers of an already inlined document. Malformed <reg> elements
// (no name, bad numbers) are skipped: gdb would reject the document
// itself, and dbgstub only needs the few registers it can find.
std::vector<RegisterInfo> parse_registers(const std::string& document);

// The first register of `names` present in `regs` (e.g. {"rip", "eip", "pc"}).
std::optional<RegisterInfo> find_register(const std::vector<RegisterInfo>& regs,
                                          const std::vector<std::string>& names);

}  // namespace dbgstub::vm
