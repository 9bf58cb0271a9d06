// Chat templates of real models (and small single-feature templates) rendered by
// crescent and by @huggingface/jinja (tests/e2e/tokenizer_reference.mjs render)
// must agree byte for byte, including which conversations raise.
#include "model/chat_template.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>

#include "base/file.h"
#include "base/json.h"

namespace crescent::model {
namespace {

namespace json = boost::json;

std::string Root() { return CRESCENT_SOURCE_DIR; }

std::string ConfigToken(const json::object& cfg, const char* key) {
  const json::value* v = cfg.if_contains(key);
  if (!v) return "";
  if (v->is_string()) return std::string(v->get_string());
  if (v->is_object() && v->get_object().if_contains("content")) return std::string(v->get_object().at("content").as_string());
  return "";
}

TEST(ChatTemplateTest, MatchesReferenceRenderer) {
  const std::string npm = Root() + "/third_party/npm/node_modules/@lenml/tokenizer-";
  ASSERT_TRUE(FileExists(npm + "llama3/models/tokenizer_config.json")) << npm + "llama3/models/tokenizer_config.json" << " is missing: run scripts/setup.sh (it installs the npm tokenizer packages)";
  json::value cases = ReadJsonFile(Root() + "/tests/data/chat_template_cases.json").value();
  json::array all;            // [{template, context}]
  std::vector<std::string> owner;  // which template each case belongs to
  for (const char* model : {"llama3", "qwen3", "gemma3", "deepseek_v3"}) {
    json::value cfg = ReadJsonFile(npm + model + "/models/tokenizer_config.json").value();
    std::string tpl(cfg.at("chat_template").as_string());
    for (const auto& conv : cases.at("conversations").as_array()) {
      for (bool agp : {true, false}) {
        json::object ctx;
        ctx["messages"] = conv.at("messages");
        ctx["add_generation_prompt"] = agp;
        ctx["bos_token"] = ConfigToken(cfg.as_object(), "bos_token");
        ctx["eos_token"] = ConfigToken(cfg.as_object(), "eos_token");
        if (conv.as_object().if_contains("tools")) ctx["tools"] = conv.at("tools");
        if (conv.as_object().if_contains("enable_thinking")) ctx["enable_thinking"] = conv.at("enable_thinking");
        all.push_back(json::object{{"template", tpl}, {"context", std::move(ctx)}});
        owner.push_back(model);
      }
    }
  }
  for (const auto& f : cases.at("features").as_array()) {
    all.push_back(f);
    owner.push_back("features");
  }
  const std::string in = std::string(CRESCENT_BINARY_DIR) + "/chat_cases.json";
  const std::string out = std::string(CRESCENT_BINARY_DIR) + "/chat_ref.jsonl";
  ASSERT_TRUE(WriteFileAtomic(in, json::serialize(all)).ok());
  const std::string cmd = "node '" + Root() + "/tests/e2e/tokenizer_reference.mjs' render '" + in + "' '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(out);
  std::string line;
  std::map<std::string, int> rendered, matched;
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_TRUE(std::getline(f, line));
    json::value ref = ParseJson(line, "reference").value();
    const json::object& c = all[i].as_object();
    std::string tpl(c.at("template").as_string());
    Result<ChatTemplate> t = ChatTemplate::Create(tpl);
    ASSERT_TRUE(t.ok()) << owner[i] << ": " << t.status().ToString();
    Result<std::string> got = t->RenderJson(json::serialize(c.at("context")));
    bool ref_ok = ref.at("ok").as_bool();
    if (ref_ok) {
      ++rendered[owner[i]];
      if (!got.ok()) {
        ADD_FAILURE() << owner[i] << " case " << i << ": reference rendered, crescent failed: " << got.status().ToString()
                      << "\n  template: " << tpl.substr(0, 200);
        continue;
      }
      std::string want(ref.at("text").as_string());
      if (*got != want) {
        ADD_FAILURE() << owner[i] << " case " << i << " differs\n  want " << json::serialize(json::value(want))
                      << "\n  got  " << json::serialize(json::value(*got)) << "\n  template: " << tpl.substr(0, 200);
        continue;
      }
      ++matched[owner[i]];
    } else {
      EXPECT_FALSE(got.ok()) << owner[i] << " case " << i << ": reference raised '" << ref.at("error").as_string()
                             << "' but crescent rendered " << json::serialize(json::value(got.ok() ? *got : ""));
    }
  }
  for (const char* model : {"llama3", "qwen3", "gemma3", "deepseek_v3"}) {
    std::printf("%s: %d renders identical (conversations x add_generation_prompt), %zu raised in both\n", model, matched[model],
                static_cast<size_t>(cases.at("conversations").as_array().size() * 2 - static_cast<size_t>(rendered[model])));
    EXPECT_GE(matched[model], 30) << model << ": conversations rendered identically";
    EXPECT_EQ(matched[model], rendered[model]) << model;
  }
}

TEST(ChatTemplateTest, UnsupportedConstructsFailAtLoadNamingThem) {
  auto expect_error = [](const char* tpl, const char* named) {
    Result<ChatTemplate> t = ChatTemplate::Create(tpl);
    ASSERT_FALSE(t.ok()) << tpl;
    EXPECT_NE(t.status().message().find(named), std::string::npos) << t.status().message();
  };
  expect_error("{% include 'header.j2' %}", "include");
  expect_error("{% call foo() %}x{% endcall %}", "call");
  expect_error("{{ text | wordwrap(10) }}", "wordwrap");
  expect_error("{% if x is divisibleby %}{% endif %}", "divisibleby");
  expect_error("{% for x in y %}", "endfor");
  expect_error("{{ 'unterminated }}", "end of input");
}

TEST(ChatTemplateTest, RendersNativeMessages) {
  ChatTemplate t = ChatTemplate::Create(
                       "{% for m in messages %}[{{ m.role }}:{{ m.content }}{% if m.tool_calls %}"
                       "{% for c in m.tool_calls %}({{ c.function.name }} {{ c.function.arguments }}){% endfor %}"
                       "{% endif %}]{% endfor %}{% if add_generation_prompt %}>{% endif %}{{ tools | length }}")
                       .value();
  std::vector<ChatMessage> msgs(2);
  msgs[0].role = "user";
  msgs[0].content = "hi";
  msgs[1].role = "assistant";
  msgs[1].tool_calls.push_back({"c1", "function", "f", "{\"a\":1}"});
  ChatTemplateInputs in;
  in.tools_json = {"{\"type\":\"function\"}"};
  Result<std::string> r = t.Render(msgs, in);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "[user:hi][assistant:(f {\"a\":1})]>1");
}

TEST(ChatTemplateTest, RaiseExceptionIsAnError) {
  ChatTemplate t = ChatTemplate::Create("{{ raise_exception('roles must alternate') }}").value();
  Result<std::string> r = t.RenderJson("{}");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "roles must alternate");
}

// Found by fuzz_chat_template: integer arithmetic past int64 was undefined
// behaviour (-(-9223372036854775807 - 1) wrapped); each such expression is a
// template error now, and a template asking for a huge list or padding is
// refused instead of exhausting memory.
// Found by fuzz_chat_template: 800 nested parentheses overflowed the parser's
// stack. Nesting of every kind is bounded at parse time, and a macro that
// calls itself without end at render time; each is an error.
TEST(ChatTemplateTest, DeepNestingAndUnboundedRecursionAreErrors) {
  auto repeat = [](const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
  };
  for (const std::string& src : std::vector<std::string>{
           "{{ " + repeat("(", 5000) + "1" + repeat(")", 5000) + " }}", "{{ " + repeat("1 + ", 20000) + "1 }}",
        "{{ " + repeat("not ", 5000) + "x }}", "{{ " + repeat("-", 5000) + "1 }}", "{{ x" + repeat(".a", 5000) + " }}",
        "{{ x" + repeat("|upper", 5000) + " }}", "{{ f" + repeat("()", 5000) + " }}",
        repeat("{% if x %}", 3000) + "y" + repeat("{% endif %}", 3000), "{{ [" + repeat("[", 5000) + "]" + " }}"}) {
    Result<ChatTemplate> t = ChatTemplate::Create(src);
    ASSERT_FALSE(t.ok()) << src.substr(0, 40);
    EXPECT_NE(t.status().message().find("nested deeper"), std::string::npos) << t.status().message();
  }
  // Ordinary templates are far from the bound: 100 levels and a 100-term chain parse.
  EXPECT_TRUE(ChatTemplate::Create("{{ " + repeat("(", 100) + "1" + repeat(")", 100) + " }}").ok());
  EXPECT_TRUE(ChatTemplate::Create("{{ " + repeat("'a' + ", 100) + "'b' }}").ok());
  Result<ChatTemplate> rec = ChatTemplate::Create("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_TRUE(rec.ok()) << rec.status().ToString();
  Result<std::string> r = rec->RenderJson("{}");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("macros nested deeper"), std::string::npos) << r.status().message();
  Result<ChatTemplate> ok = ChatTemplate::Create(
      "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{{ n }}{% endmacro %}{{ f(10) }}");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->RenderJson("{}").value(), "012345678910") << "bounded recursion renders";
}

TEST(ChatTemplateTest, IntegerOverflowAndHugeRequestsAreErrors) {
  auto render = [](const std::string& src) {
    Result<ChatTemplate> t = ChatTemplate::Create(src);
    EXPECT_TRUE(t.ok()) << src;
    return t.ok() ? t->RenderJson("{}") : Result<std::string>(t.status());
  };
  for (const std::string expr :
       {"-(-9223372036854775807 - 1)", "9223372036854775807 + 1", "(-9223372036854775807 - 1) - 1",
        "4611686018427387904 * 2", "(-9223372036854775807 - 1) // -1", "2 ** 64", "7 // 0",
        "(-9223372036854775807 - 1) | abs", "(10.0 ** 300) | int", "range(100000000) | length",
        "'x' | indent(100000000000)"}) {
    Result<std::string> r = render("{{ " + expr + " }}");
    EXPECT_FALSE(r.ok()) << expr << " gave " << (r.ok() ? *r : "");
  }
  Result<std::string> ok = render(
      "{{ 9223372036854775806 + 1 }} {{ -7 // 2 }} {{ 7 // -2 }} {{ (-9223372036854775807 - 1) % -1 }} "
      "{{ [1, 2, 3][1::9223372036854775807] }} {{ range(3) | length }} {{ -(-9223372036854775807) }}");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, "9223372036854775807 -4 -4 0 [2] 3 9223372036854775807");
}

}  // namespace
}  // namespace crescent::model
