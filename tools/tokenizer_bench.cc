// tokenizer_bench: encode throughput of rami's tokenizer on one core.
//   tokenizer_bench MODEL_DIR TEXT_FILE [REPEATS]
// Prints the machine (CPU model, core count), then MB/s and tokens/s for Encode over the file
// cut into ~4 KB paragraphs (as a server sees prompts), best of REPEATS runs. The matching
// Hugging Face figure comes from tests/golden_tokenizer/bench_hf.py on the same directory and
// file; docs/tokenizer.md has both.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "coordinator/tokenizer/tokenizer.h"

namespace {

// "model name" of /proc/cpuinfo (x86), else "Model" / "Hardware" (Arm), else "unknown CPU".
std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    if (key == "model name" || key == "Model" || key == "Hardware") {
      const size_t start = line.find_first_not_of(' ', colon + 1);
      if (start != std::string::npos) return line.substr(start);
    }
  }
  return "unknown CPU";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL_DIR TEXT_FILE [REPEATS]\n", argv[0]);
    return 2;
  }
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 3;
  auto tok = rami::tokenizer::Tokenizer::FromDirectory(argv[1]);
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", std::string(tok.status().message()).c_str());
    return 1;
  }
  std::ifstream in(argv[2], std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", argv[2]);
    return 1;
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<std::string> docs;  // paragraphs of up to ~4 KB, like prompts
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', std::min(text.size(), start + 4096));
    end = end == std::string::npos ? text.size() : end + 1;
    docs.push_back(text.substr(start, end - start));
    start = end;
  }
  double best = 1e30;
  size_t tokens = 0;
  for (int r = 0; r < repeats; ++r) {
    tokens = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (const std::string& d : docs) {
      auto ids = (*tok)->Encode(d, false);
      if (!ids.ok()) {
        std::fprintf(stderr, "encode failed: %s\n", std::string(ids.status().message()).c_str());
        return 1;
      }
      tokens += ids->size();
    }
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("machine: %s, %u cores (the bench uses one)\n", CpuModel().c_str(),
              std::thread::hardware_concurrency());
  const double mb = static_cast<double>(text.size()) / 1e6;
  std::printf("rami: %.2f MB in %.3f s = %.2f MB/s, %.0f tokens/s (%zu tokens, %zu docs)\n", mb,
              best, mb / best, static_cast<double>(tokens) / best, tokens, docs.size());
  return 0;
}
