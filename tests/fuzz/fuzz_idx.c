/* libFuzzer harness for the idx reader: make fuzz (see the Makefile) */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_idx(data, size);
  return 0;
}
