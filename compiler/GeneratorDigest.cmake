# Writes GeneratorDigest.h: a SHA-256 over the sources that decide what the
# generator emits (compiler/ and dialect/), for the disk cache's key, so a
# kernel cached by another generator is never taken for this one's.
# cmake -DLIST=<file of paths, one a line> -DOUT=<header> -P GeneratorDigest.cmake
file(STRINGS "${LIST}" sources)
list(SORT sources)
set(all "")
foreach(source IN LISTS sources)
  file(SHA256 "${source}" one)
  get_filename_component(name "${source}" NAME)
  string(APPEND all "${name}:${one};")
endforeach()
string(SHA256 digest "${all}")
string(SUBSTRING "${digest}" 0 16 digest)
file(WRITE "${OUT}.tmp" "#define FLASHJIT_GENERATOR_DIGEST \"${digest}\"\n")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
