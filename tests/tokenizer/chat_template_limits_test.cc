// Hostile chat templates: integer overflow, deep nesting and unbounded allocation or work each
// end as a clean status naming the limit (InvalidArgument, or ResourceExhausted for a size or
// work cap), never a crash, a hang or an unbounded allocation. Most inputs here crashed the
// coordinator (SIGFPE, stack overflow, std::length_error, bad_alloc) before the limits.
#include <pthread.h>

#include <string>

#include "coordinator/chat/jinja_template.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rami::jinja {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::string> Render(const std::string& src, const RenderLimits& limits = {}) {
  auto t = Template::Parse(src, {});
  if (!t.ok()) return t.status();
  return t->Render({}, limits);
}

std::string Repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// Renders `src` and expects an error with `code` whose message has `needle`.
void ExpectError(const std::string& src, absl::StatusCode code, const std::string& needle,
                 const RenderLimits& limits = {}) {
  auto out = Render(src, limits);
  ASSERT_FALSE(out.ok()) << src.substr(0, 80) << " rendered " << out->size() << " bytes";
  EXPECT_EQ(out.status().code(), code) << src.substr(0, 80) << ": " << out.status();
  EXPECT_THAT(out.status().message(), HasSubstr(needle)) << src.substr(0, 80);
}

TEST(ChatTemplateLimits, IntegerOverflowIsAnError) {
  for (const char* src : {
           "{{ (-9223372036854775807 - 1) // -1 }}",  // was SIGFPE
           "{{ 9223372036854775807 + 1 }}", "{{ -9223372036854775807 - 2 }}",
           "{{ 4294967296 * 4294967296 }}", "{{ -(-9223372036854775807 - 1) }}", "{{ 2 ** 63 }}",
           "{{ 3 ** 1000000000000 }}", "{{ (-9223372036854775807 - 1) | abs }}",
           "{{ [9223372036854775807, 1] | sum }}", "{{ 1e300 | int }}",
           "{{ 99999999999999999999 }}",  // literal: was an uncaught std::out_of_range
       }) {
    ExpectError(src, absl::StatusCode::kInvalidArgument, "does not fit in 64 bits");
  }
}

TEST(ChatTemplateLimits, IntegerEdgesFollowPython) {
  EXPECT_EQ(*Render("{{ (-9223372036854775807 - 1) % -1 }}"), "0");  // was SIGFPE
  EXPECT_EQ(*Render("{{ (-9223372036854775807 - 1) % 3 }}"), "1");
  EXPECT_EQ(*Render("{{ (-9223372036854775807 - 1) is divisibleby(-1) }}"), "True");
  EXPECT_EQ(*Render("{{ 7 // -2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 62 }} {{ (-2) ** 63 }}"),
            "-4 2 -2 4611686018427387904 -9223372036854775808");
  EXPECT_EQ(*Render("{{ range(9223372036854775805, 9223372036854775807, 10) | list }}"),
            "[9223372036854775805]");
  EXPECT_EQ(*Render("{{ range(5, -5, -3) | list }} {{ range(0) | list }}"), "[5, 2, -1, -4] []");
  EXPECT_EQ(*Render("{{ 1e18 | int }} {{ '12.7' | int }} {{ -2.5 | abs }}"),
            "1000000000000000000 12 2.5");
}

TEST(ChatTemplateLimits, DeepNestingFailsToParse) {
  for (const std::string& src : {
           // Each overflowed the parser's stack (or, for the chains, the tree's destructor).
           "{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}",
           Repeat("{% if x %}", 50000) + Repeat("{% endif %}", 50000),
           "{{ " + std::string(100000, '[') + std::string(100000, ']') + " }}",
           "{{ 'a'" + Repeat(" ~ 'a'", 200000) + " }}",
           "{{ 1" + Repeat(" + 1", 200000) + " }}",
           "{{ x" + Repeat(" or x", 200000) + " }}",
           "{{ 1" + Repeat(" < 1", 200000) + " }}",
           "{{ " + Repeat("not ", 100000) + "x }}",
           "{{ " + Repeat("-", 100000) + "1 }}",
           "{{ x" + Repeat("|trim", 100000) + " }}",
           "{{ x" + Repeat(".a", 100000) + " }}",
           "{{ x" + Repeat("[0]", 100000) + " }}",
           "{{ f" + Repeat("()", 100000) + " }}",
           "{{ " + Repeat("{'a': ", 100000) + "1" + std::string(100000, '}') + " }}",
           "{{ 1" + Repeat(" if x else 1", 100000) + " }}",
           Repeat("{% for x in y %}", 50000) + Repeat("{% endfor %}", 50000),
           Repeat("{% macro m() %}", 50000) + Repeat("{% endmacro %}", 50000),
       }) {
    auto t = Template::Parse(src, {});
    ASSERT_FALSE(t.ok()) << src.substr(0, 40);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << src.substr(0, 40);
    EXPECT_THAT(t.status().message(), HasSubstr("nested deeper than 200 levels (kMaxParseDepth)"))
        << src.substr(0, 40);
  }
  // Just under the limit still parses and renders.
  EXPECT_EQ(*Render("{{ " + std::string(150, '(') + "1" + std::string(150, ')') + " }}"), "1");
  EXPECT_EQ(*Render("{{ 'a'" + Repeat(" ~ 'a'", 150) + " }}"), std::string(151, 'a'));
  EXPECT_EQ(*Render(Repeat("{% if true %}", 100) + "x" + Repeat("{% endif %}", 100)), "x");
}

TEST(ChatTemplateLimits, HugeAllocationsAreResourceExhausted) {
  constexpr auto kExhausted = absl::StatusCode::kResourceExhausted;
  for (const char* src : {
           "{{ 'a\nb' | indent(10000000000) }}",  // was std::length_error / bad_alloc
           "{{ 'a\nb' | indent(-1) ~ 'x' * 9000000 }}",
           "{{ 'a' | center(10000000000) }}",
           "{{ 'ab' * 9223372036854775807 }}",
           "{{ 9223372036854775807 * 'ab' }}",
           "{{ '{:>1000000000}'.format(1) }}",  // was an uncaught std::invalid_argument
           "{{ '{:>99999999999999999999999}'.format(1) }}",
           "{{ ('a' * 5000000) ~ ('a' * 5000000) }}",
           "{{ ('a' * 5000000) + ('a' * 5000000) }}",
           "{{ ('a' * 5000000) | replace('a', 'bb') }}",
           "{{ ('a' * 5000000).replace('a', 'bb') }}",
           "{{ ['a' * 5000000, 'b' * 5000000] | join }}",
           "{{ '-'.join(['a' * 5000000, 'b' * 5000000]) }}",
           "{{ '%s%s' % ('a' * 5000000, 'b' * 5000000) }}",
           "{{ {'a': 1} | tojson(indent=10000000000) }}",
           "{{ ['a' * 1000000] * 9 }}",
           "{{ [['a' * 1000000] * 1000] | tojson }}",
       }) {
    ExpectError(src, kExhausted, "max_output_bytes");
  }
  for (const char* src : {
           "{{ [1, 2] * 9223372036854775807 }}",
           "{{ range(1000000000000) | length }}",
           "{{ range(-9223372036854775807 - 1, 9223372036854775807) | length }}",
           "{% for c in 'a' * 8000000 %}{% endfor %}",
           "{{ ('a ' * 4000000).split() | length }}",
       }) {
    ExpectError(src, kExhausted, "max_list_items");
  }
  // Many strings, each under the cap, still add up to the per-render total.
  ExpectError(
      "{% set ns = namespace(l=[]) %}{% for i in range(100) %}"
      "{% set ns.l = ns.l + ['x' * 4000000 ~ i] %}{% endfor %}",
      kExhausted, "max_total_bytes");
  // The rendered text itself.
  RenderLimits small;
  small.max_output_bytes = 100;
  ExpectError(std::string(101, 'x'), kExhausted, "max_output_bytes = 100", small);
  ExpectError("{% for i in range(20) %}0123456789{% endfor %}", kExhausted,
              "max_output_bytes = 100", small);
  EXPECT_EQ(*Render(std::string(100, 'x'), small), std::string(100, 'x'));
}

TEST(ChatTemplateLimits, WorkIsBounded) {
  constexpr auto kExhausted = absl::StatusCode::kResourceExhausted;
  // 10^10 iterations: the loop budget stops it after 10^6.
  ExpectError("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
              kExhausted, "max_loop_iterations = 1000000");
  // range(10^6) ten times over: each list is within max_list_items, together they pass the
  // bytes a render may allocate.
  ExpectError("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}",
              kExhausted, "max_total_bytes");
  // Work without loop iterations: quadratic filters and comparisons of shared structure.
  ExpectError("{{ range(1000000) | unique | length }}", kExhausted, "max_steps");
  ExpectError(
      "{% set x = [0] * 1000 %}{% set y = [0] * 1000 %}"
      "{% set a = [[x] * 1000] * 1000 %}{% set b = [[y] * 1000] * 1000 %}{{ a == b }}",
      kExhausted, "max_steps");
  ExpectError(
      "{% set x = [0] * 1000 %}{% set y = [0] * 1000 %}"
      "{{ ([x, y] * 5000) | sort | length }}",
      kExhausted, "max_steps");
  RenderLimits few;
  few.max_steps = 1000;
  ExpectError("{% for i in range(1000) %}{{ i }}{% endfor %}", kExhausted, "max_steps = 1000", few);
  // Recursion: macros, and values nested by a loop.
  ExpectError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", kExhausted,
              "nested too deeply");
  ExpectError(
      "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}"
      "{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
      kExhausted, "value nested too deeply");
}

TEST(ChatTemplateLimits, NamespaceCyclesDoNotRecurse) {
  EXPECT_EQ(*Render("{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.l = [ns] %}"
                    "{{ ns == ns.me }} {{ ns.l == [ns] }} {{ ns.l }} {{ ns.me.me.me is defined }}"),
            "True True [<Namespace>] True");
  ExpectError("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns | tojson }}",
              absl::StatusCode::kInvalidArgument, "nested too deeply");
}

TEST(ChatTemplateLimits, StrFormatFieldsAndSpecs) {
  EXPECT_EQ(*Render("{{ '{}-{}'.format(1, 'a') }}|{{ '{1}{0}'.format('a', 'b') }}|"
                    "{{ '{:>5}'.format(1) }}|{{ '{:*^7}'.format('ab') }}|{{ '{:<3}|'.format(7) }}|"
                    "{{ '{!r}'.format('q') }}|{{ '{{}}'.format() }}"),
            "1-a|ba|    1|**ab***|7  ||'q'|{}");
  // Named fields used to throw std::invalid_argument out of std::stoul.
  ExpectError("{{ '{name}'.format(1) }}", absl::StatusCode::kInvalidArgument, "not supported");
  ExpectError("{{ '{:.2f}'.format(1) }}", absl::StatusCode::kInvalidArgument, "not supported");
  ExpectError("{{ '{5}'.format(1) }}", absl::StatusCode::kInvalidArgument, "index out of range");
}

TEST(ChatTemplateLimits, ErrorMessagesQuoteAtMost200Bytes) {
  const std::string big(100000, 'q');
  for (const std::string& src : {
           "{{ x | " + big + " }}",
           "{% " + big + " %}",
           "{{ " + std::string(100000, '9') + " }}",
           "{{ " + big + "() }}",
           "{{ raise_exception('" + big + "') }}",
           "{{ " + big + ".a }}",
           "{{ 'a'." + big + "() }}",
           "{{ 1 + '" + big + "' }}",
       }) {
    auto out = Render(src);
    ASSERT_FALSE(out.ok()) << src.substr(0, 40);
    EXPECT_LT(out.status().message().size(), 400u) << out.status().message().substr(0, 400);
  }
  // The quoted part is the input's first 200 bytes, marked as cut.
  auto out = Render("{{ raise_exception('" + big + "') }}");
  EXPECT_THAT(out.status().message(),
              HasSubstr("chat template raised: " + big.substr(0, 200) + "…"));
}

// The recursion limits keep the stack small: the deepest template the limits allow renders
// on a thread with a 1 MiB stack (gRPC's request threads have 8 MiB or more).
TEST(ChatTemplateLimits, DeepestAllowedTemplateFitsASmallStack) {
  struct Job {
    std::string result;
  } job;
  auto run = [](void* arg) -> void* {
    auto* j = static_cast<Job*>(arg);
    std::string src = "{% macro f(n) %}{{ " + std::string(150, '(') + "f(n + 1)" +
                      std::string(150, ')') + " }}{% endmacro %}{{ f(0) }}";
    auto out = Render(src);
    j->result = out.ok() ? *out : std::string(out.status().message());
    auto parsed =
        Template::Parse("{{ " + std::string(199, '[') + std::string(199, ']') + " }}", {});
    if (!parsed.ok()) j->result += std::string(parsed.status().message());
    return nullptr;
  };
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1 << 20);
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, &attr, +run, &job), 0);
  pthread_join(thread, nullptr);
  pthread_attr_destroy(&attr);
  EXPECT_THAT(job.result, HasSubstr("nested too deeply"));
  EXPECT_THAT(job.result, ::testing::Not(HasSubstr("kMaxParseDepth")));
}

}  // namespace
}  // namespace rami::jinja
