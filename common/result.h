// A tiny expected<T, Error> for C++20: parsers and targets return errors as
// values, never by throwing or crashing, so untrusted input can't take the
// server down.
#pragma once
#include <string>
#include <utility>
#include <variant>

namespace dbgstub {

struct Error {
  int code = 1;          // errno-like number; goes into "Exx" replies
  std::string message;   // human readable; logged and shown to the user
};

inline Error make_error(int code, std::string message) { return Error{code, std::move(message)}; }

template <typename T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// For operations that only succeed or fail.
struct Ok {};
using Status = Result<Ok>;
inline Status ok_status() { return Ok{}; }

}  // namespace dbgstub
