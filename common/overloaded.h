// Overloaded{lambda...}: one visitor for std::visit made of a lambda per
// alternative (the usual C++17 idiom), for the request dispatchers.
#pragma once

namespace dbgstub {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

}  // namespace dbgstub
