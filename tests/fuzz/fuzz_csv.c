/* libFuzzer harness for the csv reader: make fuzz (see the Makefile) */
#include "targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_csv(data, size);
  return 0;
}
