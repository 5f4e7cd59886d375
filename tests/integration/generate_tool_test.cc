// rami-generate, the in-process tool, over a checkpoint whose logits are NaN for one prompt
// (one token's embedding row is NaN): that prompt is reported failed with the engine's error,
// the other prompt generates its tokens, and the tool exits 1 saying how many failed.
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/golden/golden_files.h"
#include "tests/testing/safetensors_writer.h"

namespace rami::testing {
namespace {

using ::testing::HasSubstr;

constexpr int32_t kPoisonToken = 7;

// Runs `command` through the shell; its stdout and stderr together, and its exit status.
std::pair<std::string, int> RunShell(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string out;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe)) out.append(buffer, n);
  const int status = pclose(pipe);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST(GenerateTool, ASequenceWithNanLogitsFailsAloneAndTheToolSaysSo) {
  absl::StatusOr<ScopedTempDir> dir =
      CopyWithTensorValue(GoldenModelDir("qwen3"), "model.embed_tokens.weight", {kPoisonToken}, NAN,
                          ::testing::TempDir());
  ASSERT_TRUE(dir.ok()) << dir.status();
  const auto [out, status] = RunShell(
      std::string(RAMI_GENERATE_BINARY) + " --model=" + dir->path() + " --prompt_ids='1,2,3;4,5," +
      std::to_string(kPoisonToken) + "' --max_tokens=4 --temperature=0");
  EXPECT_EQ(status, 1) << out;
  EXPECT_THAT(out, HasSubstr("prompt 1: [4, 5, 7]\n  generated: []\n  failed: INTERNAL:"));
  EXPECT_THAT(out, HasSubstr("non-finite logit nan"));
  EXPECT_THAT(out, HasSubstr("4 tokens in"));  // prompt 0's, all of them
  EXPECT_THAT(out, HasSubstr("rami-generate: INTERNAL: 1 of 2 sequences failed"));
}

}  // namespace
}  // namespace rami::testing
