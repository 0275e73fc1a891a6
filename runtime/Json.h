//===- Json.h - a small JSON value, reader and writer -----------*- C++ -*-===//
//
// Enough JSON for flashjit's own files (cache meta.json, tuning databases,
// bundle manifests): objects, arrays, strings, numbers, booleans, null.
// Plain C++ so the runtime-only library can read them without LLVM.
//
#ifndef FLASHJIT_RUNTIME_JSON_H
#define FLASHJIT_RUNTIME_JSON_H

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace flashjit::json {

class Value {
public:
  enum class Kind { Null, Bool, Number, String, Array, Object };

  Value() = default;
  Value(bool b) : kind_(Kind::Bool), bool_(b) {}
  Value(double n) : kind_(Kind::Number), number_(n) {}
  Value(int n) : Value(double(n)) {}
  Value(int64_t n) : Value(double(n)) {}
  Value(const char *s) : kind_(Kind::String), string_(s) {}
  Value(std::string s) : kind_(Kind::String), string_(std::move(s)) {}
  static Value array() { Value v; v.kind_ = Kind::Array; return v; }
  static Value object() { Value v; v.kind_ = Kind::Object; return v; }

  Kind kind() const { return kind_; }
  bool isObject() const { return kind_ == Kind::Object; }
  bool isArray() const { return kind_ == Kind::Array; }
  bool isString() const { return kind_ == Kind::String; }
  bool isNumber() const { return kind_ == Kind::Number; }

  const std::string &str() const { return string_; }
  double number() const { return number_; }
  bool boolean() const { return bool_; }
  std::vector<Value> &items() { return items_; }
  const std::vector<Value> &items() const { return items_; }
  std::map<std::string, Value> &fields() { return fields_; }
  const std::map<std::string, Value> &fields() const { return fields_; }

  Value &operator[](const std::string &key) { kind_ = Kind::Object; return fields_[key]; }
  /// The member `key`, or nullptr when absent or not an object.
  const Value *get(const std::string &key) const;
  /// The member `key` when it exists with the right kind, else `fallback`.
  std::string stringOr(const std::string &key, const std::string &fallback = "") const;
  int64_t intOr(const std::string &key, int64_t fallback) const;
  bool boolOr(const std::string &key, bool fallback) const;
  void push(Value v) { kind_ = Kind::Array; items_.push_back(std::move(v)); }

  std::string dump(int indent = 2) const;

private:
  void write(std::string &out, int indent, int depth) const;
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<Value> items_;
  std::map<std::string, Value> fields_;
};

/// Parses `text`; on failure returns false and says where in `error`.
bool parse(const std::string &text, Value &out, std::string &error);

} // namespace flashjit::json

#endif
