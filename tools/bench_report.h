// What `rami-bench decode` leaves for tests/gpu/run.sh beside its printed tables: every row as
// JSON (--json_out), and a summary of at most ~18 lines printed last between fixed markers
// ("== rami-bench summary" … "== end of summary"), which run.sh carries into its own summary.
#pragma once

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "nlohmann/json.hpp"

namespace rami::bench {

class BenchReport {
 public:
  // One measured row of `section` ("gemm", "attention", "equal_budget", "engine", ...).
  void Add(const std::string& section, nlohmann::json row) {
    json_["rows"].push_back({{"section", section}, {"row", std::move(row)}});
  }
  void Set(const std::string& key, nlohmann::json value) { json_[key] = std::move(value); }
  // A line of the closing summary (kept short: run.sh shows the first 18).
  void Summary(std::string line) { summary_.push_back(std::move(line)); }

  // Prints the summary block and writes the JSON (when `json_path` is set) with the exit status
  // the benchmark returns. Returns `status`, or 1 when the JSON cannot be written.
  int Finish(const std::string& json_path, int status) {
    json_["status"] = status;
    std::printf("\n== rami-bench summary\n");
    for (const std::string& line : summary_) std::printf("%s\n", line.c_str());
    std::printf("%s\n== end of summary\n", status == 0 ? "result: ok" : "result: FAILED");
    std::fflush(stdout);
    if (json_path.empty()) return status;
    std::ofstream out(json_path);
    out << json_.dump(1) << "\n";
    if (!out) {
      std::fprintf(stderr, "rami-bench: cannot write %s\n", json_path.c_str());
      return 1;
    }
    return status;
  }

 private:
  nlohmann::json json_ = {{"benchmark", "decode"}, {"rows", nlohmann::json::array()}};
  std::vector<std::string> summary_;
};

}  // namespace rami::bench
