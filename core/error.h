// core/error.h — Kiln's one error mechanism.
//
// KILN_CHECK(cond, parts...) throws kiln::Error carrying the failing expression, file, line and a
// message concatenated from `parts` (anything with operator<<). Destructors never throw: they log.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
 public:
  Error(std::string expression, std::string file, int line, const std::string& message)
      : std::runtime_error(message),
        expression_(std::move(expression)),
        file_(std::move(file)),
        line_(line) {}
  const std::string& expression() const { return expression_; }
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  // "message (expression failed at file:line)"
  std::string detailed() const {
    return std::string(what()) + " (" + expression_ + " failed at " + file_ + ":" +
           std::to_string(line_) + ")";
  }

 private:
  std::string expression_, file_;
  int line_;
};

namespace detail {
template <typename... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}
}  // namespace detail

}  // namespace kiln

#define KILN_CHECK(cond, ...)                                                              \
  do {                                                                                     \
    if (!(cond))                                                                           \
      throw ::kiln::Error(#cond, __FILE__, __LINE__, ::kiln::detail::concat(__VA_ARGS__)); \
  } while (0)

#define KILN_FAIL(...) \
  throw ::kiln::Error("", __FILE__, __LINE__, ::kiln::detail::concat(__VA_ARGS__))
