// Scale tests of the safetensors header parser: a header of 100k tensors parses (in time linear
// in its size: the duration is printed, not asserted), and a header naming more tensors than
// SafetensorsFile::kMaxTensors is refused with an error that names the limit.
#include <chrono>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/safetensors_writer.h"
#include "worker/checkpoint/safetensors.h"

namespace rami {
namespace {

using checkpoint::SafetensorsFile;
using ::rami::testing::BuildSafetensorsRaw;
using ::rami::testing::ScopedTempDir;
using ::rami::testing::WriteFile;
using ::testing::AllOf;
using ::testing::HasSubstr;

// A file of `n` F32 tensors of one element each, "t<i>", laid out back to back.
std::string ManyTensors(int64_t n) {
  std::string header = "{";
  for (int64_t i = 0; i < n; ++i) {
    absl::StrAppend(&header, i > 0 ? "," : "", "\"t", i,
                    "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[", 4 * i, ",", 4 * i + 4,
                    "]}");
  }
  header += "}";
  return BuildSafetensorsRaw(header, std::string(static_cast<size_t>(4 * n), '\0'));
}

class SafetensorsScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ScopedTempDir> dir = ScopedTempDir::Create(::testing::TempDir(), "st_scale");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<ScopedTempDir>(std::move(*dir));
  }
  std::unique_ptr<ScopedTempDir> dir_;
};

TEST_F(SafetensorsScaleTest, HundredThousandTensorsParse) {
  constexpr int64_t kTensors = 100'000;
  const std::string path = dir_->Join("many.safetensors");
  ASSERT_TRUE(WriteFile(path, ManyTensors(kTensors)).ok());
  const auto start = std::chrono::steady_clock::now();
  auto file = SafetensorsFile::Open(path);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("parsed a header of %lld tensors in %.3f s\n", static_cast<long long>(kTensors),
              seconds);
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_EQ((*file)->tensors().size(), static_cast<size_t>(kTensors));
  EXPECT_EQ((*file)->tensors()[kTensors - 1].name, absl::StrCat("t", kTensors - 1));
  const checkpoint::TensorInfo* info = (*file)->Find("t54321");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->begin, 4u * 54321);
}

TEST_F(SafetensorsScaleTest, MoreTensorsThanTheLimitAreRefused) {
  const std::string path = dir_->Join("too_many.safetensors");
  ASSERT_TRUE(WriteFile(path, ManyTensors(SafetensorsFile::kMaxTensors + 1)).ok());
  auto file = SafetensorsFile::Open(path);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr(path), HasSubstr(absl::StrCat(SafetensorsFile::kMaxTensors))));
}

}  // namespace
}  // namespace rami
