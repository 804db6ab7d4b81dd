// Target description documents from the VM's gdbstub: includes resolved
// into one document, and the register numbering gdb will use for it.
#include "targets/vm/target_description.h"

#include <cerrno>
#include <charconv>

namespace dbgstub::vm {
namespace {

using sv = std::string_view;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// The value of attribute `name` inside one tag's text ("<reg name="rip" ...").
std::optional<std::string> attribute(sv tag, sv name) {
  std::size_t pos = 0;
  while ((pos = tag.find(name, pos)) != sv::npos) {
    // A whole attribute name: preceded by a space, followed by '='.
    bool starts = pos > 0 && is_space(tag[pos - 1]);
    std::size_t i = pos + name.size();
    pos = i;
    if (!starts) continue;
    while (i < tag.size() && is_space(tag[i])) ++i;
    if (i >= tag.size() || tag[i] != '=') continue;
    ++i;
    while (i < tag.size() && is_space(tag[i])) ++i;
    if (i >= tag.size() || (tag[i] != '"' && tag[i] != '\'')) return std::nullopt;
    char quote = tag[i];
    auto end = tag.find(quote, i + 1);
    if (end == sv::npos) return std::nullopt;
    return std::string(tag.substr(i + 1, end - i - 1));
  }
  return std::nullopt;
}

std::optional<int> to_int(const std::optional<std::string>& s) {
  if (!s || s->empty()) return std::nullopt;
  int v = 0;
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || p != s->data() + s->size() || v < 0) return std::nullopt;
  return v;
}

// A document name goes into "qXfer:features:read:NAME:off,len": nothing
// that could end the field or climb out of the stub's directory.
bool valid_annex(const std::string& name) {
  if (name.empty() || name.size() > 128 || name.find("..") != std::string::npos) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-' || c == '/';
    if (!ok) return false;
  }
  return true;
}

// An included document's content: without its XML declaration and
// DOCTYPE, which may appear only at the top of a whole document.
Result<std::string> body_of(const std::string& doc, const std::string& name) {
  std::size_t pos = 0;
  auto skip_space = [&] {
    while (pos < doc.size() && is_space(doc[pos])) ++pos;
  };
  skip_space();
  if (doc.compare(pos, 5, "<?xml") == 0) {
    auto end = doc.find("?>", pos);
    if (end == std::string::npos) return make_error(EPROTO, name + ": unterminated XML declaration");
    pos = end + 2;
  }
  // Comments may come before the DOCTYPE (QEMU's copyright notice does).
  std::string kept;
  while (true) {
    skip_space();
    if (doc.compare(pos, 4, "<!--") == 0) {
      auto end = doc.find("-->", pos);
      if (end == std::string::npos) return make_error(EPROTO, name + ": unterminated comment");
      kept += doc.substr(pos, end + 3 - pos) + "\n";
      pos = end + 3;
      continue;
    }
    if (doc.compare(pos, 9, "<!DOCTYPE") == 0) {
      auto close = doc.find('>', pos);
      auto bracket = doc.find('[', pos);
      if (bracket != std::string::npos && (close == std::string::npos || bracket < close)) {
        auto subset_end = doc.find("]>", bracket);
        close = subset_end == std::string::npos ? subset_end : subset_end + 1;
      }
      if (close == std::string::npos) return make_error(EPROTO, name + ": unterminated DOCTYPE");
      pos = close + 1;
      continue;
    }
    break;
  }
  return kept + doc.substr(pos);
}

struct Inliner {
  const DocumentReader& read;
  const InlineLimits& limits;
  int includes = 0;

  Result<std::string> resolve(const std::string& doc, int depth) {
    std::string out;
    std::size_t pos = 0;
    while (true) {
      auto lt = doc.find('<', pos);
      if (lt == std::string::npos) {
        out.append(doc, pos, std::string::npos);
        break;
      }
      out.append(doc, pos, lt - pos);
      if (doc.compare(lt, 4, "<!--") == 0) {
        // Copied as is: an include commented out stays commented out.
        auto end = doc.find("-->", lt);
        if (end == std::string::npos) return make_error(EPROTO, "target description: unterminated comment");
        out.append(doc, lt, end + 3 - lt);
        pos = end + 3;
        continue;
      }
      if (doc.compare(lt, 11, "<xi:include") != 0 || (lt + 11 < doc.size() && !is_space(doc[lt + 11]) &&
                                                       doc[lt + 11] != '/' && doc[lt + 11] != '>')) {
        out.push_back('<');
        pos = lt + 1;
        continue;
      }
      auto gt = doc.find('>', lt);
      if (gt == std::string::npos) return make_error(EPROTO, "target description: unterminated xi:include");
      sv tag(doc.data() + lt, gt + 1 - lt);
      pos = gt + 1;
      if (tag[tag.size() - 2] != '/') {
        // <xi:include ...></xi:include>
        constexpr sv kClose = "</xi:include>";
        auto close = doc.find(kClose, pos);
        if (close == std::string::npos) return make_error(EPROTO, "target description: unclosed xi:include");
        pos = close + kClose.size();
      }
      auto href = attribute(tag, "href");
      if (!href) return make_error(EPROTO, "target description: xi:include without href");
      if (!valid_annex(*href)) return make_error(EPROTO, "target description: bad document name '" + *href + "'");
      if (depth >= limits.max_depth) return make_error(ELOOP, "target description: includes nested too deeply");
      if (++includes > limits.max_includes) return make_error(E2BIG, "target description: too many includes");
      auto included = read(*href);
      if (!included) return make_error(included.error().code, *href + ": " + included.error().message);
      auto body = body_of(*included, *href);
      if (!body) return body.error();
      auto resolved = resolve(*body, depth + 1);
      if (!resolved) return resolved;
      out += *resolved;
      if (out.size() > limits.max_size) return make_error(E2BIG, "target description too large");
    }
    if (out.size() > limits.max_size) return make_error(E2BIG, "target description too large");
    return out;
  }
};

}  // namespace

Result<std::string> inline_includes(const std::string& document, const DocumentReader& read,
                                    const InlineLimits& limits) {
  Inliner in{read, limits};
  return in.resolve(document, 0);
}

std::vector<RegisterInfo> parse_registers(const std::string& document) {
  std::vector<RegisterInfo> regs;
  int next = 0;
  std::size_t pos = 0;
  while ((pos = document.find('<', pos)) != std::string::npos) {
    if (document.compare(pos, 4, "<!--") == 0) {
      auto end = document.find("-->", pos);
      if (end == std::string::npos) break;
      pos = end + 3;
      continue;
    }
    bool is_reg = document.compare(pos, 4, "<reg") == 0 && pos + 4 < document.size() && is_space(document[pos + 4]);
    auto gt = document.find('>', pos);
    if (gt == std::string::npos) break;
    if (is_reg) {
      sv tag(document.data() + pos, gt + 1 - pos);
      auto name = attribute(tag, "name");
      auto bitsize = to_int(attribute(tag, "bitsize"));
      auto regnum = attribute(tag, "regnum");
      if (regnum) {
        auto n = to_int(regnum);
        if (!n || *n > 0xffff) {
          pos = gt + 1;
          continue;
        }
        next = *n;
      }
      if (name && !name->empty() && bitsize && next <= 0xffff) regs.push_back({*name, next, *bitsize});
      ++next;
    }
    pos = gt + 1;
  }
  return regs;
}

std::optional<RegisterInfo> find_register(const std::vector<RegisterInfo>& regs,
                                          const std::vector<std::string>& names) {
  for (const auto& n : names)
    for (const auto& r : regs)
      if (r.name == n) return r;
  return std::nullopt;
}

}  // namespace dbgstub::vm
