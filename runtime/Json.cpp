//===- Json.cpp -----------------------------------------------------------===//
#include "runtime/Json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace flashjit::json {

const Value *Value::get(const std::string &key) const {
  if (kind_ != Kind::Object)
    return nullptr;
  auto it = fields_.find(key);
  return it == fields_.end() ? nullptr : &it->second;
}

std::string Value::stringOr(const std::string &key, const std::string &fallback) const {
  const Value *v = get(key);
  return v && v->isString() ? v->str() : fallback;
}

int64_t Value::intOr(const std::string &key, int64_t fallback) const {
  const Value *v = get(key);
  return v && v->isNumber() ? int64_t(v->number()) : fallback;
}

bool Value::boolOr(const std::string &key, bool fallback) const {
  const Value *v = get(key);
  return v && v->kind() == Kind::Bool ? v->boolean() : fallback;
}

static void writeString(std::string &out, const std::string &s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\t': out += "\\t"; break;
    case '\r': out += "\\r"; break;
    default:
      if (c < 0x20) {
        char buf[8];
        snprintf(buf, sizeof(buf), "\\u%04x", c);
        out += buf;
      } else {
        out += char(c);
      }
    }
  }
  out += '"';
}

void Value::write(std::string &out, int indent, int depth) const {
  auto newline = [&](int d) {
    if (indent > 0) {
      out += '\n';
      out.append(size_t(indent * d), ' ');
    }
  };
  switch (kind_) {
  case Kind::Null: out += "null"; break;
  case Kind::Bool: out += bool_ ? "true" : "false"; break;
  case Kind::Number: {
    char buf[32];
    if (std::isfinite(number_) && number_ == std::floor(number_) && std::fabs(number_) < 1e15)
      snprintf(buf, sizeof(buf), "%.0f", number_);
    else if (std::isfinite(number_))
      snprintf(buf, sizeof(buf), "%.17g", number_);
    else
      snprintf(buf, sizeof(buf), "null"); // JSON has no inf/nan
    out += buf;
    break;
  }
  case Kind::String: writeString(out, string_); break;
  case Kind::Array:
    out += '[';
    for (size_t i = 0; i < items_.size(); ++i) {
      if (i)
        out += ',';
      newline(depth + 1);
      items_[i].write(out, indent, depth + 1);
    }
    if (!items_.empty())
      newline(depth);
    out += ']';
    break;
  case Kind::Object: {
    out += '{';
    bool first = true;
    for (const auto &[k, v] : fields_) {
      if (!first)
        out += ',';
      first = false;
      newline(depth + 1);
      writeString(out, k);
      out += indent > 0 ? ": " : ":";
      v.write(out, indent, depth + 1);
    }
    if (!fields_.empty())
      newline(depth);
    out += '}';
    break;
  }
  }
}

std::string Value::dump(int indent) const {
  std::string out;
  write(out, indent, 0);
  return out;
}

namespace {

struct Parser {
  const std::string &s;
  size_t i = 0;
  std::string error;

  void skip() {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
      ++i;
  }
  bool fail(const std::string &what) {
    if (error.empty())
      error = what + " at offset " + std::to_string(i);
    return false;
  }
  bool literal(const char *word) {
    size_t n = strlen(word);
    if (s.compare(i, n, word) != 0)
      return fail(std::string("expected '") + word + "'");
    i += n;
    return true;
  }
  bool parseString(std::string &out) {
    if (i >= s.size() || s[i] != '"')
      return fail("expected a string");
    ++i;
    while (i < s.size() && s[i] != '"') {
      char c = s[i++];
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i >= s.size())
        return fail("unterminated escape");
      char e = s[i++];
      switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        if (i + 4 > s.size())
          return fail("short \\u escape");
        unsigned code = unsigned(strtoul(s.substr(i, 4).c_str(), nullptr, 16));
        i += 4;
        if (code < 0x80) {
          out += char(code);
        } else if (code < 0x800) {
          out += char(0xC0 | (code >> 6));
          out += char(0x80 | (code & 0x3F));
        } else {
          out += char(0xE0 | (code >> 12));
          out += char(0x80 | ((code >> 6) & 0x3F));
          out += char(0x80 | (code & 0x3F));
        }
        break;
      }
      default: return fail("bad escape");
      }
    }
    if (i >= s.size())
      return fail("unterminated string");
    ++i;
    return true;
  }
  bool parseValue(Value &out, int depth) {
    if (depth > 64)
      return fail("nesting too deep");
    skip();
    if (i >= s.size())
      return fail("unexpected end");
    char c = s[i];
    if (c == '{') {
      ++i;
      out = Value::object();
      skip();
      if (i < s.size() && s[i] == '}') {
        ++i;
        return true;
      }
      while (true) {
        skip();
        std::string key;
        if (!parseString(key))
          return false;
        skip();
        if (i >= s.size() || s[i] != ':')
          return fail("expected ':'");
        ++i;
        if (!parseValue(out[key], depth + 1))
          return false;
        skip();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        if (i < s.size() && s[i] == '}') {
          ++i;
          return true;
        }
        return fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i;
      out = Value::array();
      skip();
      if (i < s.size() && s[i] == ']') {
        ++i;
        return true;
      }
      while (true) {
        Value item;
        if (!parseValue(item, depth + 1))
          return false;
        out.push(std::move(item));
        skip();
        if (i < s.size() && s[i] == ',') {
          ++i;
          continue;
        }
        if (i < s.size() && s[i] == ']') {
          ++i;
          return true;
        }
        return fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      std::string str;
      if (!parseString(str))
        return false;
      out = Value(std::move(str));
      return true;
    }
    if (c == 't')
      return literal("true") && (out = Value(true), true);
    if (c == 'f')
      return literal("false") && (out = Value(false), true);
    if (c == 'n')
      return literal("null") && (out = Value(), true);
    const char *begin = s.c_str() + i;
    char *end = nullptr;
    double n = strtod(begin, &end);
    if (end == begin)
      return fail("unexpected character");
    i += size_t(end - begin);
    out = Value(n);
    return true;
  }
};

} // namespace

bool parse(const std::string &text, Value &out, std::string &error) {
  Parser p{text};
  if (!p.parseValue(out, 0)) {
    error = p.error;
    return false;
  }
  p.skip();
  if (p.i != text.size()) {
    error = "trailing characters at offset " + std::to_string(p.i);
    return false;
  }
  return true;
}

} // namespace flashjit::json
