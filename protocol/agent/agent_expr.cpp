// Agent expression interpreter. Semantics follow GDB's manual ("Agent
// Expressions", bytecode descriptions) and gdbserver's interpreter; every
// operand and stack access is checked first, since the bytes come from the
// network.
#include "protocol/agent/agent_expr.h"

#include <cstdio>
#include <cstring>
#include <limits>
#include <vector>

#include "protocol/rsp/hex.h"

namespace dbgstub::agent {

const char* status_name(Status s) {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::EmptyExpression: return "empty expression";
    case Status::EmptyStack: return "empty stack at end";
    case Status::StackOverflow: return "stack overflow";
    case Status::StackUnderflow: return "stack underflow";
    case Status::BadJump: return "jump out of the expression";
    case Status::Truncated: return "truncated expression";
    case Status::UnknownOpcode: return "unknown opcode";
    case Status::Unsupported: return "unsupported opcode";
    case Status::DivideByZero: return "division by zero";
    case Status::BadRegister: return "bad register";
    case Status::MemoryError: return "memory read failed";
    case Status::TooManySteps: return "too many steps";
    case Status::TooMuchOutput: return "printf output or string reads over the limit";
    case Status::BadFormat: return "bad printf format or arguments";
  }
  return "?";
}

std::optional<std::string> parse_expression(std::string_view& s) {
  if (s.empty() || s[0] != 'X') return std::nullopt;
  auto comma = s.find(',');
  if (comma == std::string_view::npos) return std::nullopt;
  auto len = rsp::parse_hex_u64(s.substr(1, comma - 1));
  // The bytes must be there: the length can't exceed what the packet holds.
  std::size_t avail = s.size() - comma - 1;
  if (!len || *len == 0 || *len > avail / 2) return std::nullopt;
  auto bytes = rsp::from_hex(s.substr(comma + 1, *len * 2));
  if (!bytes) return std::nullopt;
  s.remove_prefix(comma + 1 + *len * 2);
  return bytes;
}

namespace {

// One printf conversion: the validated spec text without length modifier.
struct Spec {
  std::string flags_width_prec;  // e.g. "-08.3"
  enum class Len { None, Char, Short, Long } len = Len::None;
  char conv = 0;
};

// Appends snprintf output of a spec we built ourselves from checked parts.
template <typename T>
void append_formatted(std::string& out, const std::string& fmt, T value) {
  char buf[512];
  int n = std::snprintf(buf, sizeof buf, fmt.c_str(), value);
  if (n > 0) out.append(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
}

}  // namespace

// GDB sends the format as the user typed it; the agent processes the
// escapes as gdbserver's format_pieces does (up to an unescaped '"').
std::optional<std::string> unescape_format(std::string_view s) {
  std::string f;
  for (std::size_t i = 0; i < s.size() && s[i] != '"'; ++i) {
    if (s[i] != '\\') {
      f += s[i];
      continue;
    }
    if (++i >= s.size()) return std::nullopt;
    switch (s[i]) {
      case '\\': f += '\\'; break;
      case 'a': f += '\a'; break;
      case 'b': f += '\b'; break;
      case 'e': f += '\x1b'; break;
      case 'f': f += '\f'; break;
      case 'n': f += '\n'; break;
      case 'r': f += '\r'; break;
      case 't': f += '\t'; break;
      case 'v': f += '\v'; break;
      case '"': f += '"'; break;
      default: return std::nullopt;
    }
  }
  return f;
}

std::optional<std::string> format_printf(std::string_view raw_format, const uint64_t* args, std::size_t nargs,
                                         Context& ctx, const Limits& limits, std::size_t* read_budget) {
  auto unescaped = unescape_format(raw_format);
  if (!unescaped) return std::nullopt;
  std::string_view format = *unescaped;
  std::string out;
  std::size_t used = 0;
  std::size_t i = 0;
  while (i < format.size()) {
    char c = format[i];
    if (c != '%') {
      out += c;
      ++i;
      continue;
    }
    ++i;
    if (i < format.size() && format[i] == '%') {
      out += '%';
      ++i;
      continue;
    }
    Spec spec;
    while (i < format.size() && std::strchr("-+ #0", format[i]) && format[i] != '\0') spec.flags_width_prec += format[i++];
    // Width and precision: at most 3 digits each, so that output stays small
    // (and well under snprintf's buffer above).
    auto digits = [&](std::size_t max) {
      std::size_t n = 0;
      while (i < format.size() && format[i] >= '0' && format[i] <= '9') {
        if (++n > max) return false;
        spec.flags_width_prec += format[i++];
      }
      return true;
    };
    if (!digits(3)) return std::nullopt;
    if (i < format.size() && format[i] == '.') {
      spec.flags_width_prec += format[i++];
      if (!digits(3)) return std::nullopt;
    }
    if (i < format.size() && format[i] == 'h') {
      ++i;
      spec.len = Spec::Len::Short;
      if (i < format.size() && format[i] == 'h') {
        ++i;
        spec.len = Spec::Len::Char;
      }
    } else if (i < format.size() && (format[i] == 'l' || format[i] == 'z' || format[i] == 'j' || format[i] == 't')) {
      bool l = format[i] == 'l';
      ++i;
      spec.len = Spec::Len::Long;
      if (l && i < format.size() && format[i] == 'l') ++i;
    }
    if (i >= format.size()) return std::nullopt;
    spec.conv = format[i++];
    if (!std::strchr("diouxXcsp", spec.conv) || spec.conv == '\0') return std::nullopt;
    if (used >= nargs) return std::nullopt;
    uint64_t a = args[used++];
    std::string fmt = "%" + spec.flags_width_prec;
    switch (spec.conv) {
      case 'd':
      case 'i': {
        long long v = 0;
        switch (spec.len) {
          case Spec::Len::None: v = static_cast<int32_t>(a); break;
          case Spec::Len::Short: v = static_cast<int16_t>(a); break;
          case Spec::Len::Char: v = static_cast<int8_t>(a); break;
          case Spec::Len::Long: v = static_cast<int64_t>(a); break;
        }
        append_formatted(out, fmt + "ll" + spec.conv, v);
        break;
      }
      case 'o':
      case 'u':
      case 'x':
      case 'X': {
        unsigned long long v = 0;
        switch (spec.len) {
          case Spec::Len::None: v = static_cast<uint32_t>(a); break;
          case Spec::Len::Short: v = static_cast<uint16_t>(a); break;
          case Spec::Len::Char: v = static_cast<uint8_t>(a); break;
          case Spec::Len::Long: v = a; break;
        }
        append_formatted(out, fmt + "ll" + spec.conv, v);
        break;
      }
      case 'c':
        append_formatted(out, fmt + "c", static_cast<int>(static_cast<unsigned char>(a)));
        break;
      case 'p':
        if (a == 0) {
          append_formatted(out, fmt + "s", "(nil)");
        } else {
          append_formatted(out, fmt + "s", ("0x" + rsp::hex_u64(a)).c_str());
        }
        break;
      case 's': {
        std::string str;
        if (a == 0) {
          str = "(null)";
        } else {
          for (std::size_t k = 0; k < limits.max_string; ++k) {
            char ch = 0;
            if (read_budget) {
              if (*read_budget == 0) return std::nullopt;
              --*read_budget;
            }
            if (!ctx.read_memory(a + k, &ch, 1)) return std::nullopt;
            if (ch == '\0') break;
            str += ch;
          }
        }
        // Padding and precision by hand: the string may be long.
        std::string fwp = spec.flags_width_prec;
        bool left = fwp.find('-') != std::string::npos;
        std::size_t p = 0;
        while (p < fwp.size() && std::strchr("-+ #0", fwp[p])) ++p;
        std::size_t width = 0, prec = std::string::npos;
        while (p < fwp.size() && fwp[p] != '.') width = width * 10 + static_cast<std::size_t>(fwp[p++] - '0');
        if (p < fwp.size() && fwp[p] == '.') {
          prec = 0;
          for (++p; p < fwp.size(); ++p) prec = prec * 10 + static_cast<std::size_t>(fwp[p] - '0');
        }
        if (prec < str.size()) str.resize(prec);
        std::string pad(width > str.size() ? width - str.size() : 0, ' ');
        out += left ? str + pad : pad + str;
        break;
      }
      default: return std::nullopt;
    }
    if (out.size() > limits.max_output) return std::nullopt;
  }
  if (used != nargs) return std::nullopt;  // gdbserver: wrong number of arguments
  if (out.size() > limits.max_output) return std::nullopt;
  return out;
}

Result evaluate(std::string_view code, Context& ctx, bool need_value, const Limits& limits) {
  if (code.empty()) return {Status::EmptyExpression};
  std::vector<uint64_t> st;
  st.reserve(std::min<std::size_t>(limits.max_stack, 128));
  const std::size_t n = code.size();
  std::size_t pc = 0;
  uint64_t steps = 0;
  std::size_t printed = 0;                                // by printf, this evaluation
  std::size_t read_budget = limits.max_string_reads;      // by printf's %s, this evaluation
  auto byte = [&](std::size_t at) { return static_cast<uint8_t>(code[at]); };
  // Big-endian operand of `len` bytes at pc (checked by the caller).
  auto operand = [&](std::size_t len) {
    uint64_t v = 0;
    for (std::size_t k = 0; k < len; ++k) v = (v << 8) | byte(pc + k);
    pc += len;
    return v;
  };
  auto need = [&](std::size_t k) { return st.size() >= k; };
  auto room = [&](std::size_t k) { return st.size() + k <= limits.max_stack; };
  auto pop = [&] {
    uint64_t v = st.back();
    st.pop_back();
    return v;
  };
  auto push = [&](uint64_t v) { st.push_back(v); };

  while (true) {
    if (pc >= n) return {Status::Truncated};
    if (++steps > limits.max_steps) return {Status::TooManySteps};
    uint8_t op = byte(pc++);
    // Operand bytes of fixed-size operands must be there.
    std::size_t opnd = 0;
    switch (op) {
      case kTraceQuick: case kExt: case kConst8: case kZeroExt: case kPick: opnd = 1; break;
      case kIfGoto: case kGoto: case kConst16: case kReg: case kGetv: case kSetv: case kTracev: case kTrace16: opnd = 2; break;
      case kConst32: opnd = 4; break;
      case kConst64: opnd = 8; break;
      case kPrintf: opnd = 3; break;
      default: break;
    }
    if (n - pc < opnd) return {Status::Truncated};

    switch (op) {
      case kAdd: case kSub: case kMul: case kDivSigned: case kDivUnsigned: case kRemSigned:
      case kRemUnsigned: case kLsh: case kRshSigned: case kRshUnsigned: case kBitAnd: case kBitOr:
      case kBitXor: case kEqual: case kLessSigned: case kLessUnsigned: {
        if (!need(2)) return {Status::StackUnderflow};
        uint64_t b = pop(), a = pop();
        auto sa = static_cast<int64_t>(a), sb = static_cast<int64_t>(b);
        uint64_t r = 0;
        switch (op) {
          case kAdd: r = a + b; break;
          case kSub: r = a - b; break;
          case kMul: r = a * b; break;
          case kDivSigned:
            if (b == 0) return {Status::DivideByZero};
            r = (sa == std::numeric_limits<int64_t>::min() && sb == -1) ? a : static_cast<uint64_t>(sa / sb);
            break;
          case kDivUnsigned:
            if (b == 0) return {Status::DivideByZero};
            r = a / b;
            break;
          case kRemSigned:
            if (b == 0) return {Status::DivideByZero};
            r = sb == -1 ? 0 : static_cast<uint64_t>(sa % sb);
            break;
          case kRemUnsigned:
            if (b == 0) return {Status::DivideByZero};
            r = a % b;
            break;
          case kLsh: r = b >= 64 ? 0 : a << b; break;
          case kRshSigned: r = static_cast<uint64_t>(b >= 64 ? (sa < 0 ? -1 : 0) : sa >> b); break;
          case kRshUnsigned: r = b >= 64 ? 0 : a >> b; break;
          case kBitAnd: r = a & b; break;
          case kBitOr: r = a | b; break;
          case kBitXor: r = a ^ b; break;
          case kEqual: r = a == b; break;
          case kLessSigned: r = sa < sb; break;
          case kLessUnsigned: r = a < b; break;
          default: break;
        }
        push(r);
        break;
      }
      case kLogNot:
      case kBitNot:
        if (!need(1)) return {Status::StackUnderflow};
        st.back() = op == kLogNot ? static_cast<uint64_t>(st.back() == 0) : ~st.back();
        break;
      case kExt: {
        uint64_t bits = operand(1);
        if (!need(1)) return {Status::StackUnderflow};
        if (bits == 0) return {Status::BadFormat};
        if (bits < 64) {
          uint64_t v = st.back() & ((uint64_t{1} << bits) - 1);
          uint64_t sign = uint64_t{1} << (bits - 1);
          st.back() = (v ^ sign) - sign;
        }
        break;
      }
      case kZeroExt: {
        uint64_t bits = operand(1);
        if (!need(1)) return {Status::StackUnderflow};
        if (bits < 64) st.back() &= (uint64_t{1} << bits) - 1;
        break;
      }
      case kRef8: case kRef16: case kRef32: case kRef64: {
        if (!need(1)) return {Status::StackUnderflow};
        std::size_t len = op == kRef8 ? 1 : op == kRef16 ? 2 : op == kRef32 ? 4 : 8;
        unsigned char buf[8] = {};
        if (!ctx.read_memory(st.back(), buf, len)) return {Status::MemoryError};
        uint64_t v = 0;
        for (std::size_t k = len; k-- > 0;) v = (v << 8) | buf[k];
        st.back() = v;
        break;
      }
      case kIfGoto:
      case kGoto: {
        uint64_t target = operand(2);
        bool jump = true;
        if (op == kIfGoto) {
          if (!need(1)) return {Status::StackUnderflow};
          jump = pop() != 0;
        }
        if (jump) {
          if (target >= n) return {Status::BadJump};
          pc = static_cast<std::size_t>(target);
        }
        break;
      }
      case kConst8: case kConst16: case kConst32: case kConst64: {
        if (!room(1)) return {Status::StackOverflow};
        push(operand(op == kConst8 ? 1 : op == kConst16 ? 2 : op == kConst32 ? 4 : 8));
        break;
      }
      case kReg: {
        int regno = static_cast<int>(operand(2));
        if (!room(1)) return {Status::StackOverflow};
        auto v = ctx.reg(regno);
        if (!v) return {Status::BadRegister};
        push(*v);
        break;
      }
      case kEnd:
        if (st.empty()) {
          if (need_value) return {Status::EmptyStack};
          return {Status::Ok, 0};
        }
        return {Status::Ok, st.back()};
      case kDup:
        if (!need(1)) return {Status::StackUnderflow};
        if (!room(1)) return {Status::StackOverflow};
        push(st.back());
        break;
      case kPop:
        if (!need(1)) return {Status::StackUnderflow};
        st.pop_back();
        break;
      case kPick: {
        uint64_t k = operand(1);
        if (!need(static_cast<std::size_t>(k) + 1)) return {Status::StackUnderflow};
        if (!room(1)) return {Status::StackOverflow};
        push(st[st.size() - 1 - k]);
        break;
      }
      case kSwap:
        if (!need(2)) return {Status::StackUnderflow};
        std::swap(st[st.size() - 1], st[st.size() - 2]);
        break;
      case kRot: {  // a b c => c a b
        if (!need(3)) return {Status::StackUnderflow};
        std::size_t s = st.size();
        uint64_t a = st[s - 3], b = st[s - 2], c = st[s - 1];
        st[s - 3] = c;
        st[s - 2] = a;
        st[s - 1] = b;
        break;
      }
      // Tracing ops collect data into a trace frame; breakpoint conditions
      // and commands have none, so they only do their stack effect.
      case kTrace:
      case kTracenz:
        if (!need(2)) return {Status::StackUnderflow};
        st.pop_back();
        st.pop_back();
        break;
      case kTraceQuick:
        operand(1);
        if (!need(1)) return {Status::StackUnderflow};
        break;
      case kTracev:
        operand(2);
        break;
      case kPrintf: {
        std::size_t nargs = static_cast<std::size_t>(operand(1));
        std::size_t slen = static_cast<std::size_t>(operand(2));
        if (n - pc < slen) return {Status::Truncated};
        std::string_view fmt = code.substr(pc, slen);
        pc += slen;
        if (slen == 0 || fmt.back() != '\0') return {Status::BadFormat};
        fmt.remove_suffix(1);
        if (!need(nargs + 2)) return {Status::StackUnderflow};
        pop();  // function
        pop();  // channel
        std::vector<uint64_t> args(nargs);
        for (std::size_t k = 0; k < nargs; ++k) args[k] = pop();
        auto text = format_printf(fmt, args.data(), nargs, ctx, limits, &read_budget);
        if (!text) return {read_budget == 0 ? Status::TooMuchOutput : Status::BadFormat};
        printed += text->size();
        if (printed > limits.max_output) return {Status::TooMuchOutput};
        ctx.print(*text);
        break;
      }
      // Floating point, trace state variables and the 16-bit trace: GDB
      // emits these only for tracepoints or never; refused.
      case kFloat: case kRefFloat: case kRefDouble: case kRefLongDouble: case kLToD: case kDToL:
      case kGetv: case kSetv: case kTrace16: case kInvalid2:
        return {Status::Unsupported};
      default:
        return {Status::UnknownOpcode};
    }
  }
}

}  // namespace dbgstub::agent
