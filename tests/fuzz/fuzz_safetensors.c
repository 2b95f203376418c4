/* libFuzzer harness for the safetensors reader: make fuzz (see the Makefile) */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_safetensors(data, size);
  return 0;
}
