// Tests for worker/checkpoint: config.json, single-file and sharded layouts (and every way an
// index can lie), typed float32 reads with shape checks, and slices along any dimension.
#include "worker/checkpoint/checkpoint.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/safetensors_writer.h"

namespace rami {

using checkpoint::Checkpoint;
using checkpoint::DType;
using checkpoint::TensorSlice;

namespace {

using ::rami::testing::BuildIndexJson;
using ::rami::testing::BuildSafetensors;
using ::rami::testing::Iota;
using ::rami::testing::MakeTensor;
using ::rami::testing::NamedFile;
using ::rami::testing::ScopedTempDir;
using ::rami::testing::WriteFile;
using ::rami::testing::WriteModelDir;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const nlohmann::json kConfig = {{"model_type", "llama"}, {"hidden_size", 8}};

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ScopedTempDir> dir =
        ScopedTempDir::Create(::testing::TempDir(), "checkpoint_test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<ScopedTempDir>(std::move(*dir));
  }

  // Writes config (null: none) and files, then opens the directory.
  absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const nlohmann::json& config,
                                                   const std::vector<NamedFile>& files) {
    EXPECT_TRUE(WriteModelDir(dir_->path(), config, files).ok());
    return Checkpoint::Open(dir_->path());
  }

  // A single-file checkpoint: "w" [4, 8] = 0..31 (F32), "h" the same in F16, "b" in BF16,
  // "cube" [2, 3, 4] = 0..23 (BF16), "ids" [3] (I32).
  std::unique_ptr<Checkpoint> OpenStandard() {
    const std::vector<float> w = Iota(32);
    auto checkpoint =
        Open(kConfig, {{"model.safetensors",
                        BuildSafetensors({MakeTensor("w", DType::kF32, {4, 8}, w),
                                          MakeTensor("h", DType::kF16, {4, 8}, w),
                                          MakeTensor("b", DType::kBF16, {4, 8}, w),
                                          MakeTensor("cube", DType::kBF16, {2, 3, 4}, Iota(24)),
                                          {"ids", "I32", {3}, std::string(12, '\1')}})}});
    EXPECT_TRUE(checkpoint.ok()) << checkpoint.status();
    return checkpoint.ok() ? std::move(*checkpoint) : nullptr;
  }

  // Shard contents: "a" in shard 1, "b" in shard 2 (both [2] F32).
  static std::string Shard(std::string_view name, float value) {
    return BuildSafetensors({MakeTensor(std::string(name), DType::kF32, {2}, {value, value})});
  }

  std::unique_ptr<ScopedTempDir> dir_;
};

TEST_F(CheckpointTest, OpensSingleFileAndReadsEveryFloatDType) {
  std::unique_ptr<Checkpoint> checkpoint = OpenStandard();
  ASSERT_NE(checkpoint, nullptr);
  EXPECT_EQ(checkpoint->dir(), dir_->path());
  EXPECT_EQ(checkpoint->config()["hidden_size"], 8);
  EXPECT_THAT(checkpoint->TensorNames(), ElementsAre("b", "cube", "h", "ids", "w"));
  EXPECT_TRUE(checkpoint->Has("w"));
  EXPECT_FALSE(checkpoint->Has("x"));
  ASSERT_NE(checkpoint->Info("h"), nullptr);
  EXPECT_EQ(checkpoint->Info("h")->dtype, DType::kF16);
  EXPECT_EQ(checkpoint->Info("x"), nullptr);
  for (const char* name : {"w", "h", "b"}) {
    absl::StatusOr<std::vector<float>> values = checkpoint->ReadF32(name, {4, 8});
    ASSERT_TRUE(values.ok()) << values.status();
    EXPECT_EQ(*values, Iota(32)) << name;
  }
}

TEST_F(CheckpointTest, ShapeMismatchNamesFileTensorExpectedAndFound) {
  std::unique_ptr<Checkpoint> checkpoint = OpenStandard();
  ASSERT_NE(checkpoint, nullptr);
  absl::StatusOr<std::vector<float>> values = checkpoint->ReadF32("w", {8, 4});
  EXPECT_EQ(values.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(values.status().message(),
              AllOf(HasSubstr(dir_->Join("model.safetensors")), HasSubstr("\"w\""),
                    HasSubstr("expected shape [8, 4], found [4, 8]")));
  EXPECT_THAT(checkpoint->ReadF32("w", {32}).status().message(),
              HasSubstr("expected shape [32], found [4, 8]"));
}

TEST_F(CheckpointTest, MissingTensorAndNonFloatDTypeAreErrors) {
  std::unique_ptr<Checkpoint> checkpoint = OpenStandard();
  ASSERT_NE(checkpoint, nullptr);
  absl::StatusOr<std::vector<float>> missing = checkpoint->ReadF32("lm_head.weight", {4, 8});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("\"lm_head.weight\""));
  absl::StatusOr<std::vector<float>> ids = checkpoint->ReadF32("ids", {3});
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ids.status().message(),
              AllOf(HasSubstr("\"ids\""), HasSubstr("expected dtype F32, F16 or BF16, found I32")));
}

// The rows [start, start + length) x columns [col, col + width) of the full [4, 8] read.
std::vector<float> Window(const std::vector<float>& full, int64_t cols, int64_t row, int64_t rows,
                          int64_t col, int64_t width) {
  std::vector<float> out;
  for (int64_t r = row; r < row + rows; ++r) {
    for (int64_t c = col; c < col + width; ++c) out.push_back(full[r * cols + c]);
  }
  return out;
}

TEST_F(CheckpointTest, SlicesRowsAndColumnsMatchTheFullRead) {
  std::unique_ptr<Checkpoint> checkpoint = OpenStandard();
  ASSERT_NE(checkpoint, nullptr);
  for (const char* name : {"w", "h", "b"}) {
    SCOPED_TRACE(name);
    absl::StatusOr<std::vector<float>> full = checkpoint->ReadF32(name, {4, 8});
    ASSERT_TRUE(full.ok());
    absl::StatusOr<std::vector<float>> rows =
        checkpoint->ReadF32(name, {4, 8}, TensorSlice{.dim = 0, .start = 1, .length = 2});
    ASSERT_TRUE(rows.ok()) << rows.status();
    EXPECT_EQ(*rows, Window(*full, 8, 1, 2, 0, 8));
    absl::StatusOr<std::vector<float>> cols =
        checkpoint->ReadF32(name, {4, 8}, TensorSlice{.dim = 1, .start = 3, .length = 4});
    ASSERT_TRUE(cols.ok()) << cols.status();
    EXPECT_EQ(*cols, Window(*full, 8, 0, 4, 3, 4));
    absl::StatusOr<std::vector<float>> last =
        checkpoint->ReadF32(name, {4, 8}, TensorSlice{.dim = 1, .start = 7, .length = 1});
    ASSERT_TRUE(last.ok());
    EXPECT_EQ(*last, Window(*full, 8, 0, 4, 7, 1));
  }
}

TEST_F(CheckpointTest, SlicesTheMiddleDimensionOfA3DTensor) {
  std::unique_ptr<Checkpoint> checkpoint = OpenStandard();
  ASSERT_NE(checkpoint, nullptr);
  // cube[i][j][k] = 12 i + 4 j + k; keep j in [1, 3).
  absl::StatusOr<std::vector<float>> mid =
      checkpoint->ReadF32("cube", {2, 3, 4}, TensorSlice{.dim = 1, .start = 1, .length = 2});
  ASSERT_TRUE(mid.ok()) << mid.status();
  std::vector<float> expected;
  for (int i = 0; i < 2; ++i) {
    for (int j = 1; j < 3; ++j) {
      for (int k = 0; k < 4; ++k) expected.push_back(12 * i + 4 * j + k);
    }
  }
  EXPECT_EQ(*mid, expected);
  absl::StatusOr<std::vector<float>> none =
      checkpoint->ReadF32("cube", {2, 3, 4}, TensorSlice{.dim = 2, .start = 4, .length = 0});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(CheckpointTest, OutOfRangeSlicesAreInvalidArgument) {
  std::unique_ptr<Checkpoint> checkpoint = OpenStandard();
  ASSERT_NE(checkpoint, nullptr);
  struct Case {
    TensorSlice slice;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {{.dim = 2, .start = 0, .length = 1}, "slice dim 2 out of range for rank 2"},
           {{.dim = 0, .start = 3, .length = 2}, "start 3 length 2 along dim 0 out of range"},
           {{.dim = 1, .start = -1, .length = 2}, "start -1 length 2 along dim 1"},
           {{.dim = 1, .start = 0, .length = -1}, "length -1"},
           {{.dim = 1, .start = INT64_MAX, .length = INT64_MAX}, "out of range for extent 8"},
       }) {
    absl::StatusOr<std::vector<float>> values = checkpoint->ReadF32("w", {4, 8}, c.slice);
    EXPECT_EQ(values.status().code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_THAT(values.status().message(), AllOf(HasSubstr("\"w\""), HasSubstr(c.expected)));
  }
}

TEST_F(CheckpointTest, ConfigMustExistAndBeAJsonObject) {
  const std::string weights = Shard("a", 1.0f);
  auto missing = Open(nullptr, {{"model.safetensors", weights}});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), AllOf(HasSubstr(dir_->path()), HasSubstr("config.json")));

  ASSERT_TRUE(WriteFile(dir_->Join("config.json"), "{\"hidden_size\": ").ok());
  auto invalid = Checkpoint::Open(dir_->path());
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(invalid.status().message(), AllOf(HasSubstr("config.json"), HasSubstr("invalid")));

  auto array = Open(nlohmann::json::array({1, 2}), {});
  EXPECT_EQ(array.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(array.status().message(), HasSubstr("expected a JSON object, found array"));
}

TEST_F(CheckpointTest, NoWeightsIsNotFoundNamingBothFiles) {
  auto checkpoint = Open(kConfig, {});
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(checkpoint.status().message(),
              AllOf(HasSubstr(dir_->path()), HasSubstr("model.safetensors "),
                    HasSubstr("model.safetensors.index.json")));
}

TEST_F(CheckpointTest, CorruptSingleFileNamesIt) {
  auto checkpoint = Open(kConfig, {{"model.safetensors", "short"}});
  EXPECT_EQ(checkpoint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(checkpoint.status().message(), HasSubstr(dir_->Join("model.safetensors")));
}

TEST_F(CheckpointTest, ShardedCheckpointReadsFromEveryShard) {
  auto checkpoint = Open(kConfig, {{"model-00001-of-00002.safetensors", Shard("a", 1.0f)},
                                   {"model-00002-of-00002.safetensors", Shard("b", 2.0f)},
                                   {"model.safetensors.index.json",
                                    BuildIndexJson({{"a", "model-00001-of-00002.safetensors"},
                                                    {"b", "model-00002-of-00002.safetensors"}})}});
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT((*checkpoint)->TensorNames(), ElementsAre("a", "b"));
  EXPECT_THAT(*(*checkpoint)->ReadF32("a", {2}), ElementsAre(1.0f, 1.0f));
  EXPECT_THAT(*(*checkpoint)->ReadF32("b", {2}), ElementsAre(2.0f, 2.0f));
}

TEST_F(CheckpointTest, IndexTakesPrecedenceOverASingleFile) {
  auto checkpoint =
      Open(kConfig, {{"model.safetensors", Shard("stale", 0.0f)},
                     {"s1.safetensors", Shard("a", 1.0f)},
                     {"model.safetensors.index.json", BuildIndexJson({{"a", "s1.safetensors"}})}});
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();
  EXPECT_THAT((*checkpoint)->TensorNames(), ElementsAre("a"));
}

struct BadIndex {
  std::string label;
  std::vector<NamedFile> files;  // besides config.json
  absl::StatusCode code;
  std::vector<std::string> expected;  // substrings of the error message
};

TEST_F(CheckpointTest, EveryIndexInconsistencyIsAnError) {
  const std::string index = "model.safetensors.index.json";
  const std::vector<BadIndex> cases = {
      {"parent dir shard",
       {{index, BuildIndexJson({{"a", "../s1.safetensors"}})}},
       absl::StatusCode::kInvalidArgument,
       {index, "\"a\"", "plain shard file name", "../s1.safetensors"}},
      {"subdir shard",
       {{index, BuildIndexJson({{"a", "sub/s1.safetensors"}})}},
       absl::StatusCode::kInvalidArgument,
       {"\"a\"", "sub/s1.safetensors"}},
      {"shard not a string",
       {{index, R"({"weight_map": {"a": 3}})"}},
       absl::StatusCode::kInvalidArgument,
       {"\"a\"", "plain shard file name", "number"}},
      {"no weight_map",
       {{index, R"({"metadata": {}})"}},
       absl::StatusCode::kInvalidArgument,
       {index, "weight_map"}},
      {"index not json",
       {{index, "{"}},
       absl::StatusCode::kInvalidArgument,
       {index, "invalid JSON"}},
      {"duplicate index entry",
       {{index, R"({"weight_map": {"a": "s1.safetensors", "a": "s2.safetensors"}})"}},
       absl::StatusCode::kInvalidArgument,
       {index, "duplicate key \"a\""}},
      {"shard file missing",
       {{index, BuildIndexJson({{"a", "s1.safetensors"}})}},
       absl::StatusCode::kNotFound,
       {"s1.safetensors"}},
      {"tensor missing from its shard",
       {{"s1.safetensors", Shard("a", 1.0f)},
        {"s2.safetensors", Shard("b", 2.0f)},
        {index, BuildIndexJson({{"a", "s1.safetensors"}, {"b", "s1.safetensors"}})}},
       absl::StatusCode::kInvalidArgument,
       {"\"b\"", "listed in shard \"s1.safetensors\"", "does not contain it"}},
      {"tensor in two shards",
       {{"s1.safetensors", Shard("a", 1.0f)},
        {"s2.safetensors", BuildSafetensors({MakeTensor("a", DType::kF32, {2}, {3.0f, 3.0f}),
                                             MakeTensor("b", DType::kF32, {1}, {2.0f})})},
        {index, BuildIndexJson({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}})}},
       absl::StatusCode::kInvalidArgument,
       {"\"a\"", "two shards", "s1.safetensors", "s2.safetensors"}},
      {"tensor missing from the index",
       {{"s1.safetensors", BuildSafetensors({MakeTensor("a", DType::kF32, {1}, {1.0f}),
                                             MakeTensor("extra", DType::kF32, {1}, {2.0f})})},
        {index, BuildIndexJson({{"a", "s1.safetensors"}})}},
       absl::StatusCode::kInvalidArgument,
       {"s1.safetensors", "\"extra\"", "missing from", index}},
      {"corrupt shard",
       {{"s1.safetensors", "bad"}, {index, BuildIndexJson({{"a", "s1.safetensors"}})}},
       absl::StatusCode::kInvalidArgument,
       {"s1.safetensors", "shorter than"}},
  };
  for (const BadIndex& c : cases) {
    SCOPED_TRACE(c.label);
    absl::StatusOr<ScopedTempDir> dir = ScopedTempDir::Create(dir_->path(), "case");
    ASSERT_TRUE(dir.ok());
    ASSERT_TRUE(WriteModelDir(dir->path(), kConfig, c.files).ok());
    absl::StatusOr<std::unique_ptr<Checkpoint>> checkpoint = Checkpoint::Open(dir->path());
    ASSERT_FALSE(checkpoint.ok());
    EXPECT_EQ(checkpoint.status().code(), c.code) << checkpoint.status();
    for (const std::string& expected : c.expected) {
      EXPECT_THAT(checkpoint.status().message(), HasSubstr(expected));
    }
  }
}

}  // namespace
}  // namespace rami
