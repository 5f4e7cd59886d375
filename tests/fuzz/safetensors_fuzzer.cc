// Fuzzes SafetensorsFile::Open: the input is a whole .safetensors file (8-byte header length,
// JSON header, data), handed over through a memfd so the real open + mmap path runs. Every
// tensor a valid header yields is then looked up and its bytes read, which must stay inside
// the mapping.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "worker/checkpoint/safetensors.h"

namespace {

// One memfd for the process, rewritten per input.
int MemFd() {
  static const int fd = [] {
    const int f = ::memfd_create("fuzz.safetensors", 0);
    if (f < 0) std::abort();
    return f;
  }();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = MemFd();
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    std::abort();
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto file = rami::checkpoint::SafetensorsFile::Open(path);
  if (!file.ok()) return 0;
  uint64_t checksum = 0;
  for (const rami::checkpoint::TensorInfo& info : (*file)->tensors()) {
    if ((*file)->Find(info.name) != &info) std::abort();  // names are unique
    const absl::Span<const uint8_t> bytes = (*file)->Bytes(info);
    if (bytes.size() != info.nbytes) std::abort();
    for (uint8_t b : bytes) checksum += b;  // every byte readable (ASan checks the bounds)
    (void)info.numel();
  }
  static volatile uint64_t sink;
  sink = checksum;
  return 0;
}
