//===- Status.h - errors as values ------------------------------*- C++ -*-===//
#ifndef FLASHJIT_RUNTIME_STATUS_H
#define FLASHJIT_RUNTIME_STATUS_H

#include <string>
#include <utility>

namespace flashjit {

/// The runtime never throws across its API and never aborts on a bad request:
/// every call returns a Status whose message says what was wrong.
class Status {
public:
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message)); }

  bool isOk() const { return !failed_; }
  explicit operator bool() const { return isOk(); }
  const std::string &message() const { return message_; }

private:
  Status() = default;
  explicit Status(std::string m) : failed_(true), message_(std::move(m)) {}
  bool failed_ = false;
  std::string message_;
};

} // namespace flashjit

#endif
