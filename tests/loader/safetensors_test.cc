// Tests for worker/dtype (bit-exact conversions) and worker/safetensors (header validation:
// every malformation gives InvalidArgument naming the file, the tensor and what was wrong).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/safetensors_writer.h"
#include "worker/checkpoint/dtype.h"
#include "worker/checkpoint/safetensors.h"

namespace rami {

using checkpoint::BF16ToF32;
using checkpoint::ConvertToF32;
using checkpoint::DType;
using checkpoint::DTypeName;
using checkpoint::DTypeSize;
using checkpoint::F16ToF32;
using checkpoint::F32ToBF16;
using checkpoint::F32ToF16;
using checkpoint::ParseDType;
using checkpoint::SafetensorsFile;
using checkpoint::TensorInfo;

namespace {

using ::rami::testing::BuildSafetensors;
using ::rami::testing::BuildSafetensorsRaw;
using ::rami::testing::EncodeFloats;
using ::rami::testing::Iota;
using ::rami::testing::MakeTensor;
using ::rami::testing::ScopedTempDir;
using ::rami::testing::WriteFile;
using ::testing::AllOf;
using ::testing::HasSubstr;

uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

// ---- dtype ----

TEST(DTypeTest, NamesRoundTripAndSizes) {
  for (std::string_view name : {"BOOL", "U8", "I8", "U16", "I16", "F16", "BF16", "U32", "I32",
                                "F32", "U64", "I64", "F64", "F8_E4M3", "F8_E5M2"}) {
    absl::StatusOr<DType> dtype = ParseDType(name);
    ASSERT_TRUE(dtype.ok()) << name;
    EXPECT_EQ(DTypeName(*dtype), name);
  }
  EXPECT_EQ(DTypeSize(DType::kBool), 1u);
  EXPECT_EQ(DTypeSize(DType::kF8E5M2), 1u);
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF32), 4u);
  EXPECT_EQ(DTypeSize(DType::kI64), 8u);
  absl::StatusOr<DType> bad = ParseDType("f32");  // case-sensitive
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("unknown dtype \"f32\""));
}

TEST(DTypeTest, BF16ToF32KnownBits) {
  EXPECT_EQ(BF16ToF32(0x3f80), 1.0f);
  EXPECT_EQ(BF16ToF32(0xc000), -2.0f);
  EXPECT_EQ(Bits(BF16ToF32(0x8000)), 0x80000000u);       // -0
  EXPECT_EQ(BF16ToF32(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
  EXPECT_EQ(BF16ToF32(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(BF16ToF32(0xff80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(BF16ToF32(0x7fc0)));
  EXPECT_TRUE(std::isnan(BF16ToF32(0xff81)));
}

TEST(DTypeTest, F16ToF32KnownBits) {
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F16ToF32(0xc000), -2.0f);
  EXPECT_EQ(F16ToF32(0x3555), 0.333251953125f);
  EXPECT_EQ(F16ToF32(0x7bff), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0400), std::ldexp(1.0f, -14));     // smallest normal
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));     // smallest subnormal
  EXPECT_EQ(F16ToF32(0x03ff), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(F16ToF32(0x8001), -std::ldexp(1.0f, -24));    // negative subnormal
  EXPECT_EQ(Bits(F16ToF32(0x8000)), 0x80000000u);         // -0
  EXPECT_EQ(F16ToF32(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToF32(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToF32(0x7e00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7c01)));  // signalling-pattern NaN stays NaN, not inf
  EXPECT_TRUE(std::signbit(F16ToF32(0xfe00)));
}

TEST(DTypeTest, F32ToF16RoundsToNearestEven) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16(-2.0f), 0xc000);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7bff);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(F32ToF16(65520.0f), 0x7c00);  // tie rounds to even = inf
  EXPECT_EQ(F32ToF16(1e10f), 0x7c00);
  EXPECT_EQ(F32ToF16(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie → even (down)
  EXPECT_EQ(F32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie → even (up)
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);             // subnormal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);             // tie → even zero
  EXPECT_EQ(F32ToF16(3 * std::ldexp(1.0f, -25)), 0x0002);         // tie → even (up)
  EXPECT_EQ(F32ToF16(-std::ldexp(1023.0f, -24)), 0x83ff);
  EXPECT_EQ(F32ToF16(1e-10f), 0x0000);
  const uint16_t nan = F32ToF16(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
}

TEST(DTypeTest, F32ToBF16RoundsToNearestEven) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToBF16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);        // tie → even (down)
  EXPECT_EQ(F32ToBF16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);    // tie → even (up)
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to inf
  EXPECT_EQ(F32ToBF16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(F32ToBF16(std::ldexp(1.0f, -133)), 0x0001);  // subnormal
  // A NaN whose payload sits only in the low 16 bits must not truncate to inf.
  float low_payload_nan;
  const uint32_t bits = 0x7f800001u;
  std::memcpy(&low_payload_nan, &bits, sizeof(bits));
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(low_payload_nan))));
}

TEST(DTypeTest, SixteenBitFormatsRoundTripExhaustively) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const auto bits = static_cast<uint16_t>(b);
    const float h = F16ToF32(bits);
    if (std::isnan(h)) {
      EXPECT_TRUE(std::isnan(F16ToF32(F32ToF16(h)))) << std::hex << b;
    } else {
      EXPECT_EQ(F32ToF16(h), bits) << std::hex << b;
    }
    const float bf = BF16ToF32(bits);
    if (std::isnan(bf)) {
      EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(bf)))) << std::hex << b;
    } else {
      EXPECT_EQ(F32ToBF16(bf), bits) << std::hex << b;
    }
  }
}

TEST(DTypeTest, ConvertToF32HandlesUnalignedSourcesAndRejectsOtherDTypes) {
  const std::string f16 = " " + EncodeFloats(DType::kF16, {1.0f, -0.5f, 65504.0f});
  std::vector<float> out(3);
  ASSERT_TRUE(
      ConvertToF32(DType::kF16, reinterpret_cast<const uint8_t*>(f16.data()) + 1, 3, out.data())
          .ok());
  EXPECT_THAT(out, ::testing::ElementsAre(1.0f, -0.5f, 65504.0f));
  const std::string f32 = " " + EncodeFloats(DType::kF32, {3.5f, -7.0f});
  ASSERT_TRUE(
      ConvertToF32(DType::kF32, reinterpret_cast<const uint8_t*>(f32.data()) + 1, 2, out.data())
          .ok());
  EXPECT_EQ(out[0], 3.5f);
  EXPECT_EQ(out[1], -7.0f);
  absl::Status status = ConvertToF32(DType::kI32, nullptr, 0, out.data());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("I32"));
}

// ---- safetensors ----

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ScopedTempDir> dir =
        ScopedTempDir::Create(::testing::TempDir(), "safetensors_test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = std::make_unique<ScopedTempDir>(std::move(*dir));
  }

  // Writes `contents` to a file named `name` and opens it.
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> OpenContents(const std::string& contents,
                                                                const std::string& name = "t") {
    path_ = dir_->Join(name + ".safetensors");
    EXPECT_TRUE(WriteFile(path_, contents).ok());
    return SafetensorsFile::Open(path_);
  }

  std::unique_ptr<ScopedTempDir> dir_;
  std::string path_;  // of the last file written
};

TEST_F(SafetensorsTest, OpensWellFormedFileInHeaderOrder) {
  const std::vector<float> w = Iota(6);
  const std::vector<float> b = {0.5f, -1.0f, 2.0f, 1024.0f};
  auto file = OpenContents(BuildSafetensors(
      {MakeTensor("z.weight", DType::kF32, {2, 3}, w), MakeTensor("a.bias", DType::kBF16, {4}, b),
       MakeTensor("scalar", DType::kF16, {}, std::vector<float>{7.0f}),
       MakeTensor("empty", DType::kF32, {0, 5}, {})},
      {{"format", "pt"}}));
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& tensors = (*file)->tensors();
  ASSERT_EQ(tensors.size(), 4u);
  EXPECT_EQ(tensors[0].name, "z.weight");  // header order, not sorted
  EXPECT_EQ(tensors[1].name, "a.bias");
  EXPECT_EQ(tensors[2].numel(), 1);
  EXPECT_EQ(tensors[3].numel(), 0);

  const TensorInfo* info = (*file)->Find("a.bias");
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->dtype, DType::kBF16);
  EXPECT_EQ(info->shape, std::vector<int64_t>{4});
  EXPECT_EQ(info->begin, 24u);
  EXPECT_EQ(info->nbytes, 8u);
  absl::Span<const uint8_t> bytes = (*file)->Bytes(*info);
  std::vector<float> values(4);
  ASSERT_TRUE(ConvertToF32(info->dtype, bytes.data(), 4, values.data()).ok());
  EXPECT_EQ(values, b);
  EXPECT_EQ((*file)->Find("missing"), nullptr);
  EXPECT_EQ((*file)->Bytes(*(*file)->Find("empty")).size(), 0u);
}

TEST_F(SafetensorsTest, MissingFileIsNotFound) {
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file =
      SafetensorsFile::Open(dir_->Join("nope.safetensors"));
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(file.status().message(), HasSubstr("nope.safetensors"));
  EXPECT_EQ(SafetensorsFile::Open(dir_->path()).status().code(),
            absl::StatusCode::kInvalidArgument);  // a directory
}

struct Malformed {
  std::string label;
  std::string contents;               // whole file
  std::vector<std::string> expected;  // substrings of the error message
};

// Header `h` followed by `data_bytes` zero bytes.
std::string File(std::string_view h, size_t data_bytes = 16) {
  return BuildSafetensorsRaw(h, std::string(data_bytes, '\0'));
}

std::vector<Malformed> MalformedFiles() {
  const std::string ok_entry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  return {
      {"empty file", "", {"0 bytes", "shorter than"}},
      {"7 bytes", std::string(7, '\0'), {"7 bytes", "shorter than"}},
      {"length past end", BuildSafetensorsRaw(1000, "{}", ""), {"header length 1000", "exceeds"}},
      {"length overflowing", BuildSafetensorsRaw(~uint64_t{0}, "{}", ""), {"exceeds"}},
      {"zero length", BuildSafetensorsRaw(0, "", ""), {"invalid JSON"}},
      {"not utf8", File("{\"w\xff\":{}}"), {"not valid UTF-8", "offset 3"}},
      {"overlong utf8", File("{\"\xc0\xaf\":{}}"), {"not valid UTF-8"}},
      {"invalid json", File(R"({"w": )"), {"invalid JSON"}},
      {"trailing garbage", File(R"({} x)"), {"invalid JSON"}},
      {"top-level array", File("[1, 2]"), {"expected a JSON object", "array"}},
      {"entry not object", File(R"({"w": 3})"), {"\"w\"", "expected an object", "number"}},
      {"missing dtype",
       File(R"({"w":{"shape":[2],"data_offsets":[0,8]}})"),
       {"\"w\"", "missing field \"dtype\""}},
      {"missing shape",
       File(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})"),
       {"\"w\"", "missing field \"shape\""}},
      {"missing offsets",
       File(R"({"w":{"dtype":"F32","shape":[2]}})"),
       {"\"w\"", "missing field \"data_offsets\""}},
      {"extra field",
       File(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})"),
       {"\"w\"", "unexpected field \"x\""}},
      {"unknown dtype",
       File(R"({"w":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})"),
       {"\"w\"", "unknown dtype \"F12\""}},
      {"dtype number",
       File(R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})"),
       {"\"w\"", "dtype: expected a string, found number"}},
      {"shape object",
       File(R"({"w":{"dtype":"F32","shape":{},"data_offsets":[0,8]}})"),
       {"\"w\"", "shape: expected an array of non-negative integers", "object"}},
      {"shape negative",
       File(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})"),
       {"\"w\"", "non-negative integers", "-2"}},
      {"shape float",
       File(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})"),
       {"\"w\"", "non-negative integers", "2.0"}},
      {"shape string",
       File(R"({"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})"),
       {"\"w\"", "non-negative integers", "string"}},
      {"numel overflow",
       File(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})"),
       {"\"w\"", "overflows int64"}},
      {"bytes overflow",
       File(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})"),
       {"\"w\"", "byte size overflows"}},
      {"offsets one",
       File(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8]}})"),
       {"\"w\"", "two ascending non-negative integers", "[8]"}},
      {"offsets three",
       File(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})"),
       {"\"w\"", "two ascending"}},
      {"offsets descending",
       File(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})"),
       {"\"w\"", "two ascending", "[8,4]"}},
      {"offsets negative",
       File(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})"),
       {"\"w\"", "two ascending"}},
      {"offsets string",
       File(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":"0-8"}})"),
       {"\"w\"", "two ascending", "string"}},
      {"offsets beyond data",
       File(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})"),
       {"\"w\"", "[12, 20]", "beyond the data section of 16 bytes"}},
      {"size mismatch",
       File(R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})"),
       {"\"w\"", "hold 12 bytes, expected 16", "[2, 2]", "F32"}},
      {"overlap",
       File(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})"),
       {"\"a\"", "\"b\"", "overlap"}},
      {"contained overlap",
       File(R"({"big":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
            R"("e":{"dtype":"U8","shape":[],"data_offsets":[15,16]},)"
            R"("mid":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})"),
       {"\"big\"", "overlap"}},
      {"duplicate name",
       File(R"({"w":)" + ok_entry + R"(,"w":)" + ok_entry + "}"),
       {"duplicate tensor name \"w\""}},
      {"duplicate field",
       File(R"({"w":{"dtype":"F32","dtype":"F32","shape":[2],)"
            R"("data_offsets":[0,8]}})"),
       {"duplicate key \"dtype\""}},
      {"metadata not object",
       File(R"({"__metadata__":[1]})"),
       {"__metadata__", "expected an object of strings", "array"}},
      {"metadata value not string",
       File(R"({"__metadata__":{"format":1}})"),
       {"__metadata__", "\"format\"", "expected a string, found number"}},
  };
}

TEST_F(SafetensorsTest, EveryMalformationIsInvalidArgumentNamingFileAndProblem) {
  for (const Malformed& m : MalformedFiles()) {
    SCOPED_TRACE(m.label);
    auto file = OpenContents(m.contents, "bad_file");
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
    EXPECT_THAT(file.status().message(), HasSubstr(path_));
    for (const std::string& expected : m.expected) {
      EXPECT_THAT(file.status().message(), HasSubstr(expected));
    }
  }
}

TEST_F(SafetensorsTest, HeaderOver100MiBIsRejectedBeforeParsing) {
  // A sparse file larger than the limit, so only the 100 MiB rule can reject it.
  const uint64_t header_length = (100ull << 20) + 1;
  path_ = dir_->Join("huge.safetensors");
  ASSERT_TRUE(WriteFile(path_, BuildSafetensorsRaw(header_length, "", "")).ok());
  std::filesystem::resize_file(path_, header_length + 64);
  auto file = SafetensorsFile::Open(path_);
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr(path_), HasSubstr("104857601"), HasSubstr("limit of 104857600")));
}

TEST_F(SafetensorsTest, TruncatedAndCorruptedFilesFailCleanly) {
  const std::string good = BuildSafetensors(
      {MakeTensor("a", DType::kF32, {2, 2}, Iota(4)), MakeTensor("b", DType::kBF16, {3}, Iota(3))});
  // Every strict prefix is an error (it either cuts the header or the data section).
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(OpenContents(good.substr(0, n)).ok()) << n;
  }
  // Random byte corruption: Open may succeed or fail, but every span it hands out stays inside
  // the file (ASan builds check the rest).
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 300; ++trial) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k) bad[rng() % bad.size()] = static_cast<char>(rng());
    auto file = OpenContents(bad);
    if (!file.ok()) continue;
    for (const TensorInfo& t : (*file)->tensors()) {
      absl::Span<const uint8_t> bytes = (*file)->Bytes(t);
      ASSERT_EQ(bytes.size(), t.nbytes);
      ASSERT_LE(t.begin + t.nbytes + 8, bad.size());
    }
  }
}

}  // namespace
}  // namespace rami
