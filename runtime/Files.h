//===- Files.h - whole-file reads and writes with errors as values -*- C++ -*-===//
#ifndef FLASHJIT_RUNTIME_FILES_H
#define FLASHJIT_RUNTIME_FILES_H

#include "runtime/Status.h"

#include <string>

namespace flashjit {

/// Reads all of `path`; false when it cannot be opened.
bool readWholeFile(const std::string &path, std::string &out);
/// Writes `data` to `path` (created with `mode`), fsynced; the error names the path.
Status writeWholeFile(const std::string &path, const std::string &data, unsigned mode = 0600);

} // namespace flashjit

#endif
