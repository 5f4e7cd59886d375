// AnswerExtractor: the default \boxed{...} rule (nesting, several boxes, </think>, unbalanced
// braces, escapes, Unicode, normalisation) and the regex mode (groups, last match, empty
// matches, invalid UTF-8, compile errors naming the field).
#include "coordinator/aggregation/answer_extractor.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::aggregation {
namespace {

using ::testing::HasSubstr;

TEST(ExtractLastBoxedTest, SimpleAndNested) {
  EXPECT_EQ(ExtractLastBoxed("so the answer is \\boxed{42}."), "42");
  EXPECT_EQ(ExtractLastBoxed("\\boxed{\\frac{1}{2}}"), "\\frac{1}{2}");
  EXPECT_EQ(ExtractLastBoxed("x \\boxed{\\sqrt{\\frac{a}{b^{2}}}} y"), "\\sqrt{\\frac{a}{b^{2}}}");
  EXPECT_EQ(ExtractLastBoxed("\\boxed {7}"), "7");  // LaTeX allows space before the group
}

TEST(ExtractLastBoxedTest, LastOfSeveral) {
  EXPECT_EQ(ExtractLastBoxed("\\boxed{1} then \\boxed{2}, finally \\boxed{3}"), "3");
  // A box inside a box is part of the outer answer, not a later one.
  EXPECT_EQ(ExtractLastBoxed("\\boxed{a \\boxed{b}}"), "a \\boxed{b}");
}

TEST(ExtractLastBoxedTest, NoAnswer) {
  EXPECT_EQ(ExtractLastBoxed(""), "");
  EXPECT_EQ(ExtractLastBoxed("no box here {42}"), "");
  EXPECT_EQ(ExtractLastBoxed("\\boxed 5"), "");     // only the braced form
  EXPECT_EQ(ExtractLastBoxed("\\boxedeq{5}"), "");  // another macro
  EXPECT_EQ(ExtractLastBoxed("\\boxed{   }"), "");  // empty after trimming
  EXPECT_EQ(ExtractLastBoxed("\\boxed"), "");
}

TEST(ExtractLastBoxedTest, OnlyAfterTheLastThinkEnd) {
  EXPECT_EQ(ExtractLastBoxed("<think>maybe \\boxed{1}</think> it is \\boxed{2}"), "2");
  // A box only inside the reasoning is a draft, not an answer.
  EXPECT_EQ(ExtractLastBoxed("<think>maybe \\boxed{1}</think> I am not sure."), "");
  EXPECT_EQ(ExtractLastBoxed("</think>\\boxed{1}</think>\\boxed{2}</think>\\boxed{3}"), "3");
  EXPECT_EQ(ExtractLastBoxed("\\boxed{1}</think>\\boxed{2}</think>"), "");
  // Without </think>, anywhere (a model that does not think, or an unfinished think block).
  EXPECT_EQ(ExtractLastBoxed("<think>so \\boxed{9}"), "9");
}

TEST(ExtractLastBoxedTest, UnbalancedBraces) {
  // Cut off mid-answer: the earlier complete box is the answer.
  EXPECT_EQ(ExtractLastBoxed("\\boxed{12} hmm, no: \\boxed{\\frac{1}{"), "12");
  EXPECT_EQ(ExtractLastBoxed("\\boxed{\\frac{1}{2}"), "");
  // A complete box inside an unterminated one still closes.
  EXPECT_EQ(ExtractLastBoxed("\\boxed{a \\boxed{b}"), "b");
  // A stray closing brace ends nothing it did not open.
  EXPECT_EQ(ExtractLastBoxed("}} \\boxed{x}}}"), "x");
  // Degenerate repetition stays linear and answerless.
  std::string repeated;
  for (int i = 0; i < 20000; ++i) repeated += "\\boxed{";
  EXPECT_EQ(ExtractLastBoxed(repeated), "");
}

TEST(ExtractLastBoxedTest, EscapedBracesAreCharacters) {
  EXPECT_EQ(ExtractLastBoxed("\\boxed{\\{1, 2\\}}"), "\\{1, 2\\}");
  EXPECT_EQ(ExtractLastBoxed("\\boxed{\\}}"), "\\}");
  EXPECT_EQ(ExtractLastBoxed("\\boxed{a \\\\}"), "a \\\\");  // \\ then the closing brace
  // "\\boxed" is a LaTeX line break followed by the word "boxed", not the macro.
  EXPECT_EQ(ExtractLastBoxed("\\\\boxed{1}"), "");
}

TEST(ExtractLastBoxedTest, Unicode) {
  EXPECT_EQ(ExtractLastBoxed("答案是 \\boxed{π/2} ✓"), "π/2");
  EXPECT_EQ(ExtractLastBoxed("\\boxed{ 北京 }"), "北京");
  EXPECT_EQ(ExtractLastBoxed("</think>\\boxed{é}"), "é");
}

TEST(NormalizeAnswerTest, TrimsAndUnwrapsWholeText) {
  EXPECT_EQ(NormalizeAnswer("  42 \n"), "42");
  EXPECT_EQ(NormalizeAnswer("\\text{ B }"), "B");
  EXPECT_EQ(NormalizeAnswer(" \\text {yes}"), "yes");
  // Only a \text{} that spans the whole answer is unwrapped.
  EXPECT_EQ(NormalizeAnswer("\\text{a} + \\text{b}"), "\\text{a} + \\text{b}");
  EXPECT_EQ(NormalizeAnswer("5\\text{ cm}"), "5\\text{ cm}");
  EXPECT_EQ(NormalizeAnswer("\\textbf{B}"), "\\textbf{B}");
  EXPECT_EQ(ExtractLastBoxed("\\boxed{\\text{(C)}}"), "(C)");
}

TEST(AnswerExtractorTest, DefaultModeIsBoxed) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create("");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  EXPECT_FALSE(extractor->uses_regex());
  EXPECT_EQ(extractor->Extract("<think>\\boxed{1}</think>\\boxed{\\frac{3}{4}}"), "\\frac{3}{4}");
}

TEST(AnswerExtractorTest, RegexWithGroupTakesTheGroupOfTheLastMatch) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create(R"(Answer:\s*(\d+))");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  EXPECT_TRUE(extractor->uses_regex());
  EXPECT_EQ(extractor->Extract("Answer: 3\nwait\nAnswer: 17\n"), "17");
  EXPECT_EQ(extractor->Extract("no answer"), "");
  // The regex sees the whole text, </think> included.
  EXPECT_EQ(extractor->Extract("Answer: 5</think>done"), "5");
}

TEST(AnswerExtractorTest, RegexWithoutGroupTakesTheWholeMatch) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create(R"([A-D]\))");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  EXPECT_EQ(extractor->Extract("A) no, B) no, C) yes"), "C)");
}

TEST(AnswerExtractorTest, RegexGroupThatDidNotTakePartGivesEmpty) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create(R"(x(\d)?)");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  EXPECT_EQ(extractor->Extract("x1 x2"), "2");
  EXPECT_EQ(extractor->Extract("x1 x"), "");  // the last match counts, even without its group
}

TEST(AnswerExtractorTest, RegexIsUnicodeAware) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create(R"(答案[:：]\s*(\w+))");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  EXPECT_EQ(extractor->Extract("答案：北京。 答案: 上海"), "上海");
  // A one-character match advances by whole characters, never inside one.
  absl::StatusOr<AnswerExtractor> any = AnswerExtractor::Create(".");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(any->Extract("aé漢"), "漢");
}

TEST(AnswerExtractorTest, RegexEmptyMatchesAdvance) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create(R"(\d*)");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  EXPECT_EQ(extractor->Extract("12a"), "");  // the last match is the empty one at the end
  EXPECT_EQ(extractor->Extract("é"), "");    // and never splits a character
  absl::StatusOr<AnswerExtractor> trailing = AnswerExtractor::Create(R"(\d+$)");
  ASSERT_TRUE(trailing.ok()) << trailing.status();
  EXPECT_EQ(trailing->Extract("a1 b22"), "22");
}

TEST(AnswerExtractorTest, RegexAnswerIsNormalised) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create(R"(ANS\[(.*?)\])");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  EXPECT_EQ(extractor->Extract("ANS[  \\text{B} ]"), "B");
}

TEST(AnswerExtractorTest, InvalidUtf8TextGivesNoAnswer) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create(R"(\d+)");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  EXPECT_EQ(extractor->Extract(std::string("12 \xC3 34")), "");
  // The default mode works byte-wise and only cares about ASCII delimiters.
  EXPECT_EQ(ExtractLastBoxed(std::string("\xFF \\boxed{1}")), "1");
}

TEST(AnswerExtractorTest, BadRegexNamesFieldMessageAndOffset) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create("Answer: (\\d+");
  ASSERT_FALSE(extractor.ok());
  EXPECT_EQ(extractor.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(extractor.status().message(), HasSubstr("aggregation.extractor.regex"));
  EXPECT_THAT(extractor.status().message(), HasSubstr("offset 12"));
  EXPECT_THAT(extractor.status().message(), HasSubstr("missing closing parenthesis"));

  for (const char* bad : {"[a-", "a{2,1}", "(?<n>a)(?<n>b)", "\\"}) {
    absl::StatusOr<AnswerExtractor> e = AnswerExtractor::Create(bad);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_THAT(e.status().message(), HasSubstr("aggregation.extractor.regex")) << bad;
  }
  EXPECT_FALSE(AnswerExtractor::Create(std::string("\xC3(")).ok());  // pattern not UTF-8
}

TEST(AnswerExtractorTest, OverlongRegexIsRejected) {
  absl::StatusOr<AnswerExtractor> extractor =
      AnswerExtractor::Create(std::string(kMaxExtractorRegexBytes + 1, 'a'));
  ASSERT_FALSE(extractor.ok());
  EXPECT_THAT(extractor.status().message(), HasSubstr("aggregation.extractor.regex is 4097 bytes"));
  EXPECT_TRUE(AnswerExtractor::Create(std::string(kMaxExtractorRegexBytes, 'a')).ok());
}

TEST(AnswerExtractorTest, CopiesShareTheCompiledRegex) {
  absl::StatusOr<AnswerExtractor> extractor = AnswerExtractor::Create(R"((\d+))");
  ASSERT_TRUE(extractor.ok()) << extractor.status();
  const AnswerExtractor copy = *extractor;
  extractor = AnswerExtractor::Create("");  // the original's regex is released; the copy's not
  EXPECT_EQ(copy.Extract("1 2 3"), "3");
}

}  // namespace
}  // namespace rami::aggregation
