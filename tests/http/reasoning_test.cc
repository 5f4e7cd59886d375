// ReasoningSplitter: <think> sections split from the answer however the text is cut into
// pieces, with the tags held back until whole.
#include "coordinator/http/reasoning.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace rami::http {
namespace {

// Feeds `text` in pieces of `size` bytes and joins what comes out.
ReasoningPiece Split(const std::string& text, size_t size, bool starts_inside = false) {
  ReasoningSplitter s(starts_inside);
  ReasoningPiece all;
  for (size_t i = 0; i < text.size(); i += size) {
    ReasoningPiece p = s.Feed(text.substr(i, size));
    all.reasoning += p.reasoning;
    all.content += p.content;
  }
  ReasoningPiece p = s.Finish();
  all.reasoning += p.reasoning;
  all.content += p.content;
  return all;
}

TEST(ReasoningSplitter, SplitsAtTheTagsWhateverThePieces) {
  const std::string text = "<think>2+2 is 4, as\nwe know</think>\n\nThe answer is 4.";
  for (size_t size : {1, 2, 3, 7, 100}) {
    const ReasoningPiece p = Split(text, size);
    EXPECT_EQ(p.reasoning, "2+2 is 4, as\nwe know") << size;
    EXPECT_EQ(p.content, "\n\nThe answer is 4.") << size;
  }
}

TEST(ReasoningSplitter, WithoutTagsItIsAllContent) {
  const ReasoningPiece p = Split("Just the answer: <thin", 3);
  EXPECT_EQ(p.reasoning, "");
  EXPECT_EQ(p.content, "Just the answer: <thin");
}

TEST(ReasoningSplitter, AnUnclosedSectionIsAllReasoning) {
  const ReasoningPiece p = Split("<think>still thinking </thi", 4);
  EXPECT_EQ(p.reasoning, "still thinking </thi");
  EXPECT_EQ(p.content, "");
}

TEST(ReasoningSplitter, APromptThatOpenedTheSectionStartsInside) {
  EXPECT_TRUE(ReasoningSplitter::OpensReasoning("<|Assistant|><think>\n"));
  EXPECT_FALSE(ReasoningSplitter::OpensReasoning("<think>\n\n</think>\n\n"));
  EXPECT_FALSE(ReasoningSplitter::OpensReasoning("plain"));
  const ReasoningPiece p = Split("hmm</think>42", 2, /*starts_inside=*/true);
  EXPECT_EQ(p.reasoning, "hmm");
  EXPECT_EQ(p.content, "42");
}

TEST(ReasoningSplitter, OnlyTheFirstCloseCounts) {
  const ReasoningPiece p = Split("<think>a</think>b</think>c", 1);
  EXPECT_EQ(p.reasoning, "a");
  EXPECT_EQ(p.content, "b</think>c");
}

}  // namespace
}  // namespace rami::http
