# Turns a .cu template into a C++ file holding its text (for NVRTC at run time).
file(READ ${INPUT} content)
file(WRITE ${OUTPUT} "namespace flashjit {\nextern const char *const ${SYMBOL};\nconst char *const ${SYMBOL} = R\"flashjit_src(${content})flashjit_src\";\n}\n")
