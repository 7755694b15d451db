// libFuzzer's driver entry (compiler-rt, linked by -sanitize=fuzzer). SwiftPM renames an
// executable's main.swift entry point and aliases main to it, so libFuzzer's own main is
// never linked; each fuzz target's main.swift calls the driver through FuzzKit instead.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
