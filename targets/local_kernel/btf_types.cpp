// Kernel types from the kernel's own BTF (/sys/kernel/btf/vmlinux), read
// with libbpf: WinDbg's "dt TYPE" layout of structs, unions and enums.
#include <bpf/btf.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "targets/local_kernel/local_kernel_internal.h"

namespace dbgstub::lk {

namespace {

constexpr int kMaxDepth = 16;

std::string name_of(const btf* b, const btf_type* t) {
  const char* n = btf__name_by_offset(b, t->name_off);
  return n ? n : "";
}

std::string type_name(const btf* b, uint32_t id, int depth = 0);

std::string proto_args(const btf* b, const btf_type* t, int depth) {
  std::string out = "(";
  const btf_param* p = btf_params(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i) {
    if (i) out += ", ";
    out += p[i].type == 0 ? std::string("...") : type_name(b, p[i].type, depth + 1);
  }
  if (btf_vlen(t) == 0) out += "void";
  return out + ")";
}

std::string type_name(const btf* b, uint32_t id, int depth) {
  if (id == 0) return "void";
  if (depth > kMaxDepth) return "...";
  const btf_type* t = btf__type_by_id(b, id);
  if (!t) return "<bad type " + std::to_string(id) + ">";
  std::string n = name_of(b, t);
  switch (btf_kind(t)) {
    case BTF_KIND_INT:
    case BTF_KIND_FLOAT:
    case BTF_KIND_TYPEDEF: return n;
    case BTF_KIND_STRUCT: return "struct " + (n.empty() ? "<anonymous>" : n);
    case BTF_KIND_UNION: return "union " + (n.empty() ? "<anonymous>" : n);
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64: return "enum " + (n.empty() ? "<anonymous>" : n);
    case BTF_KIND_FWD: return (btf_kflag(t) ? "union " : "struct ") + n;
    case BTF_KIND_CONST: return "const " + type_name(b, t->type, depth + 1);
    case BTF_KIND_VOLATILE: return "volatile " + type_name(b, t->type, depth + 1);
    case BTF_KIND_RESTRICT: return type_name(b, t->type, depth + 1) + " restrict";
    case BTF_KIND_TYPE_TAG: return type_name(b, t->type, depth + 1);
    case BTF_KIND_PTR: {
      const btf_type* to = btf__type_by_id(b, t->type);
      if (to && btf_kind(to) == BTF_KIND_FUNC_PROTO)
        return type_name(b, to->type, depth + 1) + " (*)" + proto_args(b, to, depth);
      std::string inner = type_name(b, t->type, depth + 1);
      return inner + (inner.back() == '*' ? "*" : " *");
    }
    case BTF_KIND_ARRAY: {
      std::string dims;
      uint32_t elem = id;
      const btf_type* at = t;
      while (at && btf_kind(at) == BTF_KIND_ARRAY && depth < kMaxDepth) {
        dims += "[" + std::to_string(btf_array(at)->nelems) + "]";
        elem = btf_array(at)->type;
        at = btf__type_by_id(b, elem);
        ++depth;
      }
      return type_name(b, elem, depth + 1) + " " + dims;
    }
    case BTF_KIND_FUNC_PROTO: return type_name(b, t->type, depth + 1) + " " + proto_args(b, t, depth);
    case BTF_KIND_FUNC: return "function " + n;
    default: return n.empty() ? "<kind " + std::to_string(btf_kind(t)) + ">" : n;
  }
}

std::string hex(uint64_t v, int width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%0*llx", width, static_cast<unsigned long long>(v));
  return buf;
}

// Members of a struct or union at `base` bits; anonymous struct/union
// members are opened in place, one level further in.
void members(const btf* b, const btf_type* t, uint64_t base_bits, int indent, const std::string& field,
             std::string& out, int& shown, int depth) {
  const btf_member* m = btf_members(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i) {
    std::string mname = btf__name_by_offset(b, m[i].name_off) ? btf__name_by_offset(b, m[i].name_off) : "";
    uint64_t bit = base_bits + btf_member_bit_offset(t, i);
    uint32_t bits = btf_member_bitfield_size(t, i);
    int32_t resolved = btf__resolve_type(b, m[i].type);
    const btf_type* mt = resolved > 0 ? btf__type_by_id(b, static_cast<uint32_t>(resolved)) : nullptr;
    bool anon_composite = mname.empty() && mt && btf_is_composite(mt);
    bool wanted = field.empty() || wildcard_match(field, mname);
    if (wanted || (anon_composite && !field.empty())) {
      std::string line = std::string(static_cast<std::size_t>(indent), ' ') + "+0x" + hex(bit / 8, 3) + " ";
      char padded[64];
      std::snprintf(padded, sizeof padded, "%-16s", mname.empty() ? "(anonymous)" : mname.c_str());
      line += padded;
      line += " : ";
      if (bits)
        line += "Pos " + std::to_string(bit % 8) + ", " + std::to_string(bits) + (bits == 1 ? " Bit" : " Bits");
      else
        line += type_name(b, m[i].type);
      if (wanted) {
        out += line + "\n";
        ++shown;
      }
    }
    if (anon_composite && depth < kMaxDepth)
      members(b, mt, bit, indent + 3, wanted ? std::string() : field, out, shown, depth + 1);
  }
}

}  // namespace

BtfTypes::~BtfTypes() {
  if (btf_) btf__free(btf_);
}

Status BtfTypes::load(const std::string& path) {
  if (btf_) return ok_status();
  errno = 0;
  btf* b = btf__parse_raw(path.c_str());
  if (!b) {
    int e = errno ? errno : EINVAL;
    std::string why = e == ENOENT ? path + " does not exist (a kernel without CONFIG_DEBUG_INFO_BTF)"
                                  : path + ": " + std::strerror(e);
    return make_error(e, "kernel type information is not available: " + why);
  }
  btf_ = b;
  return ok_status();
}

CommandOutput BtfTypes::display_type(const std::string& args) const {
  const std::string usage =
      "Usage: dt [struct|union|enum] [nt!]TYPE [FIELD]   (FIELD may use * and ?; e.g. dt task_struct, dt task_struct pid)\n";
  if (!btf_) return {false, "kernel type information is not loaded\n"};
  std::istringstream in(args);
  std::vector<std::string> w;
  for (std::string s; in >> s;) w.push_back(s);
  int want_kind = -1;
  if (!w.empty() && (w[0] == "struct" || w[0] == "union" || w[0] == "enum")) {
    want_kind = w[0] == "struct" ? BTF_KIND_STRUCT : w[0] == "union" ? BTF_KIND_UNION : BTF_KIND_ENUM;
    w.erase(w.begin());
  }
  if (w.empty() || w.size() > 2) return {false, usage};
  std::string name = w[0];
  if (auto bang = name.find('!'); bang != std::string::npos) {
    std::string module = name.substr(0, bang);
    if (module != "nt" && module != "vmlinux")
      return {false, "only the kernel image's types are available (nt!TYPE or vmlinux!TYPE), not " + module + "!\n"};
    name = name.substr(bang + 1);
  }
  if (name.empty() || name.find_first_of("*?") != std::string::npos) return {false, usage};
  std::string field = w.size() > 1 ? w[1] : "";

  int32_t id = -1;
  std::vector<int> kinds = want_kind >= 0 ? std::vector<int>{want_kind}
                                          : std::vector<int>{BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_TYPEDEF,
                                                             BTF_KIND_ENUM, BTF_KIND_ENUM64};
  if (want_kind == BTF_KIND_ENUM) kinds.push_back(BTF_KIND_ENUM64);
  for (int k : kinds) {
    id = btf__find_by_name_kind(btf_, name.c_str(), static_cast<uint32_t>(k));
    if (id > 0) break;
  }
  if (id <= 0) return {false, "Symbol " + name + " not found (no such struct, union, enum or typedef in the kernel's BTF)\n"};

  std::string out;
  const btf_type* t = btf__type_by_id(btf_, static_cast<uint32_t>(id));
  if (btf_kind(t) == BTF_KIND_TYPEDEF) {
    out += "typedef " + type_name(btf_, t->type) + " " + name + "\n";
    int32_t r = btf__resolve_type(btf_, static_cast<uint32_t>(id));
    if (r <= 0) return {true, out};
    t = btf__type_by_id(btf_, static_cast<uint32_t>(r));
    id = r;
    if (!btf_is_composite(t) && !btf_is_any_enum(t)) return {true, out};
  }
  if (btf_is_composite(t)) {
    out += type_name(btf_, static_cast<uint32_t>(id)) + " (size 0x" + hex(t->size, 1) + ", " +
           std::to_string(btf_vlen(t)) + " members)\n";
    int shown = 0;
    members(btf_, t, 0, 3, field, out, shown, 0);
    if (!field.empty() && shown == 0) return {false, out + "No member '" + field + "' in " + name + "\n"};
    return {true, out};
  }
  // enums
  out += type_name(btf_, static_cast<uint32_t>(id)) + " (size " + std::to_string(t->size) + ")\n";
  for (uint16_t i = 0; i < btf_vlen(t); ++i) {
    std::string ename;
    long long value;
    if (btf_is_enum(t)) {
      const struct btf_enum* e = btf_enum(t) + i;
      ename = btf__name_by_offset(btf_, e->name_off);
      value = btf_kflag(t) ? static_cast<long long>(static_cast<uint32_t>(e->val)) : e->val;
    } else {
      const struct btf_enum64* e = btf_enum64(t) + i;
      ename = btf__name_by_offset(btf_, e->name_off);
      value = static_cast<long long>(btf_enum64_value(e));
    }
    if (!field.empty() && !wildcard_match(field, ename)) continue;
    char padded[64];
    std::snprintf(padded, sizeof padded, "%-16s", ename.c_str());
    out += std::string("   ") + padded + " = 0n" + std::to_string(value) + "\n";
  }
  return {true, out};
}

}  // namespace dbgstub::lk
