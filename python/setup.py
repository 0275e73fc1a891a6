"""Copies the flashjit shared library into the package at build time.

The library comes from $FLASHJIT_LIBRARY, else the repository's static build
(build-static/runtime/libflashjit.so: no LLVM needed on the host), else the
default build (build/runtime/libflashjit.so: needs the system LLVM 22).
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CANDIDATES = [
    os.environ.get("FLASHJIT_LIBRARY", ""),
    os.path.join(HERE, "..", "build-static", "runtime", "libflashjit.so"),
    os.path.join(HERE, "..", "build", "runtime", "libflashjit.so"),
]


class BuildWithLibrary(build_py):
    def run(self):
        super().run()
        library = next((c for c in CANDIDATES if c and os.path.isfile(c)), None)
        if library is None:
            raise SystemExit(
                "flashjit: libflashjit.so not found. Build it first (bash tools/build.sh, or "
                "BUILD_DIR=build-static bash tools/build.sh -DFLASHJIT_STATIC_LLVM=ON for hosts "
                "without LLVM) or set FLASHJIT_LIBRARY=/path/to/libflashjit.so")
        target = os.path.join(self.build_lib, "flashjit", "lib")
        os.makedirs(target, exist_ok=True)
        shutil.copy2(library, os.path.join(target, "libflashjit.so"))
        print(f"flashjit: packaged {os.path.realpath(library)}")


setup(cmdclass={"build_py": BuildWithLibrary})
