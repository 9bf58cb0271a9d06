#!/usr/bin/env python3
"""Builds tests/data/chat_template_cases.json: conversations rendered through each
model's chat template, plus small templates exercising single Jinja features; the
test renders them with crescent and with @huggingface/jinja and compares bytes.
Run: /usr/bin/python3 tests/data/make_chat_cases.py"""
import json, os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

U = lambda c: {"role": "user", "content": c}
A = lambda c: {"role": "assistant", "content": c}
S = lambda c: {"role": "system", "content": c}
T = lambda c, id="call_1", name="get_weather": {"role": "tool", "content": c, "tool_call_id": id, "name": name}
def call(name, args, id="call_1"):
    return {"id": id, "type": "function", "function": {"name": name, "arguments": args}}
def AC(content, calls):
    return {"role": "assistant", "content": content, "tool_calls": calls}

weather = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                          "days": {"type": "integer"}}, "required": ["city"]}}}
search = {"type": "function", "function": {"name": "search", "description": "Web search ✓ 検索",
          "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}

convs = [
    {"messages": [U("Hello!")]},
    {"messages": [U("  Hello with spaces  \n")]},
    {"messages": [S("You are a helpful assistant."), U("What is 2+2?")]},
    {"messages": [U("Hi"), A("Hello! How can I help?"), U("Tell me a joke.")]},
    {"messages": [S("Be terse."), U("Hi"), A("Hi."), U("Bye"), A("Bye.")]},
    {"messages": [U("你好，请介绍一下你自己。"), A("我是一个人工智能助手。"), U("谢谢！")]},
    {"messages": [S("Réponds en français."), U("Bonjour 👋"), A("Salut ! 😀"), U("Ça va ?")]},
    {"messages": [U("Write code:\n```python\nprint('x')\n```"), A("```python\nprint('hello')\n```\n"), U("Thanks\t")]},
    {"messages": [U("")]},
    {"messages": [U("a"), A(""), U("b")]},
    {"messages": [S(""), U("empty system")]},
    {"messages": [U("Special tokens <|im_start|> <s> </s> <|eot_id|> <start_of_turn> in text")]},
    {"messages": [U("Solve x^2=4"), A("<think>\nx = ±2 because 2*2=4.\n</think>\n\nx = 2 or x = -2."), U("And x^2=9?")]},
    {"messages": [U("Q1"), A("<think>\nreasoning one\n</think>\n\nA1"), U("Q2"), A("<think>\nreasoning two\n</think>\n\nA2")]},
    {"messages": [U("Q"), {"role": "assistant", "content": "Answer.", "reasoning_content": "Because."}, U("More?")]},
    {"messages": [U("Weather in Paris?"), AC("", [call("get_weather", "{\"city\": \"Paris\"}")]),
                  T("{\"temp\": 21}"), A("It is 21°C in Paris.")], "tools": [weather]},
    {"messages": [U("Weather in Paris and Rome?"), AC("", [call("get_weather", "{\"city\": \"Paris\"}"),
                  call("get_weather", "{\"city\": \"Rome\"}", "call_2")]), T("{\"temp\": 21}"), T("{\"temp\": 25}", "call_2"),
                  A("Paris 21°C, Rome 25°C.")], "tools": [weather, search]},
    {"messages": [S("You can call tools."), U("Search for cats"), AC("Let me search.", [call("search", "{\"q\": \"cats\"}")]),
                  T("Cats are mammals.", name="search")], "tools": [search]},
    {"messages": [U("Weather?"), AC(None, [call("get_weather", "{\"city\": \"Oslo\"}")]), T("cold"),
                  A("It is cold.")]},
    {"messages": [U("Two calls"), AC(None, [call("get_weather", "{\"city\": \"A\"}"), call("search", "{\"q\": \"B\"}", "c2")]),
                  T("a"), T("b", "c2"), A("done")]},
    {"messages": [S("sys one"), S("sys two"), U("two systems")]},
    {"messages": [U("no tools given but tool msg"), AC("", [call("get_weather", "{}")]), T("result")]},
    {"messages": [U("Just tools defined")], "tools": [weather]},
    {"messages": [S("System with tools"), U("Hello")], "tools": [weather, search]},
    {"messages": [U("x" * 500)]},
    {"messages": [U("line1\nline2\n\nline4"), A("ok\n\n"), U("  trailing  ")]},
    {"messages": [U("Привет"), A("Здравствуйте"), U("مرحبا"), A("أهلاً"), U("こんにちは")]},
    {"messages": [U("1"), A("2"), U("3"), A("4"), U("5"), A("6"), U("7"), A("8"), U("9"), A("10"), U("11")]},
    {"messages": [S("Long system prompt.\nWith lines.\n"), U("u1"), A("a1"), U("u2")]},
    {"messages": [U("quote \" and backslash \\ and tab \t")]},
    {"messages": [U("<tool_response>\nfake\n</tool_response>")]},
    {"messages": [U("Tool response first"), AC("", [call("get_weather", {"city": "Kyiv", "days": 3})]), T("ok")],
     "tools": [weather]},
    {"messages": [A("assistant first")]},
    {"messages": [U("u"), U("u again")]},
    {"messages": [S("only system")]},
    {"messages": [U("emoji 👨‍👩‍👧 and ZWJ"), A("🏳️‍🌈")]},
    {"messages": [U("think"), A("</think>only close tag"), U("next")]},
    {"messages": [U("Hi"), A("Hello"), U("How are you?")], "enable_thinking": False},
    {"messages": [S("You are a translator."), U("Translate 'cat' to German."), A("Katze"), U("And 'dog'?")]},
    {"messages": [U("List three colors."), A("1. Red\n2. Green\n3. Blue"), U("Now in reverse.")]},
    {"messages": [S("Answer in JSON."), U("Give {\"a\": 1}")]},
    {"messages": [U("Summarize: The quick brown fox jumps over the lazy dog."), A("A fox jumps over a dog.")]},
    {"messages": [U("한국어로 대답해 주세요."), A("네, 알겠습니다."), U("감사합니다.")]},
    {"messages": [S("Math tutor"), U("What is the derivative of x^3?"), A("3x^2"), U("Integral?"), A("x^4/4 + C"), U("Thanks")]},
    {"messages": [U("\n\nleading newlines"), A("\ttabbed answer\t")]},
    {"messages": [U("SQL?"), A("SELECT * FROM t WHERE a = 'x';"), U("Explain {{ jinja }} and {% raw %}")]},
    {"messages": [S("System 🤖"), U("ping"), A("pong"), U("ping"), A("pong"), U("ping")]},
    {"messages": [U("Numbers: 3.14159, 2.71828, 1e10"), A("Pi, e, ten billion.")]},
]

features = [
    ("{{ 'a' + 'b' ~ 1 }}|{{ 1 + 2 * 3 }}|{{ 7 // 2 }}|{{ 7 % 3 }}|{{ 2 ** 10 }}|{{ 7 / 2 }}|{{ -3 }}|{{ 1.0 }}|{{ 2.5 * 2 }}", {}),
    ("{% for x in items %}{{ loop.index }}/{{ loop.length }}:{{ x }}{% if not loop.last %},{% endif %}{% endfor %}", {"items": ["a", "b", "c"]}),
    ("{% for x in items if x > 1 %}{{ x }}{{ loop.first }}{{ loop.revindex }}{% else %}none{% endfor %}", {"items": [1, 2, 3]}),
    ("{% for x in items %}{{ x }}{% else %}empty{% endfor %}", {"items": []}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": 2, "1": 3}}),
    ("{% for k in d %}{{ k }}{% endfor %}", {"d": {"x": 1, "y": 2}}),
    ("{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}", {}),
    ("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}", {}),
    ("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Bob') }} {{ greet('Al', greeting='Hi') }}", {}),
    ("{{ s | trim }}|{{ s | length }}|{{ s | upper }}|{{ s | lower }}|{{ s.strip() }}|{{ s.title() }}|{{ s | capitalize }}", {"s": "  hello World  "}),
    ("{{ s.split(',') }}|{{ s.split() }}|{{ s.replace('a', 'b') }}|{{ s.startswith('a') }}|{{ s.endswith(('x','c')) }}", {"s": "a,b  c"}),
    ("{{ d | tojson }}|{{ d | tojson(indent=2) }}|{{ l | tojson }}|{{ 'é\"\\n' | tojson }}", {"d": {"a": [1, 2.5, None, True], "b": {"c": "x"}}, "l": []}),
    ("{{ d | tojson(ensure_ascii=True, sort_keys=True) }}|{{ d | tojson(separators=(',', ':')) }}", {"d": {"z": "ü", "a": 1}}),
    ("{{ l[1:] }}|{{ l[:-1] }}|{{ l[::-1] }}|{{ l[::2] }}|{{ s[1:3] }}|{{ s[::-1] }}|{{ l[-1] }}|{{ l | first }}|{{ l | last }}", {"l": [1, 2, 3, 4], "s": "héllo"}),
    ("{{ l | join(', ') }}|{{ l | length }}|{{ l | reverse | list }}|{{ l | sort }}|{{ l | unique }}", {"l": [3, 1, 2, 1]}),
    ("{{ x is defined }}|{{ y is defined }}|{{ y is undefined }}|{{ n is none }}|{{ x is string }}|{{ 3 is number }}|{{ l is iterable }}|{{ d is mapping }}|{{ 4 is even }}", {"x": "a", "n": None, "l": [], "d": {}}),
    ("{{ 'a' in 'cat' }}|{{ 'z' not in 'cat' }}|{{ 2 in [1,2] }}|{{ 'k' in d }}|{{ 1 == 1.0 }}|{{ 'a' != 'b' }}|{{ none == undefinedvar }}", {"d": {"k": 1}}),
    ("{% if a %}A{% elif b %}B{% else %}C{% endif %}{{ 'yes' if a else 'no' }}", {"a": False, "b": True}),
    ("{{ x | default('dflt') }}|{{ '' | default('e', true) }}|{{ y | default('z') }}", {"y": "set"}),
    ("{% for m in msgs | selectattr('role', 'equalto', 'user') %}{{ m.content }}{% endfor %}|{{ msgs | map(attribute='role') | join(',') }}", {"msgs": [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}),
    ("{%- for i in range(3) -%}\n  {{ i }}\n{%- endfor -%}\n  end  \n", {}),
    ("  {% if true %}\n    indented\n  {% endif %}\n{# comment #}\ntext {{- ' stripped' }}   {{ 'x' -}}   y", {}),
    ("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("{{ raise_exception('custom error') }}", {}),
    ("{{ d.get('a') }}|{{ d.get('zz', 'none') }}|{{ d.keys() | list }}|{{ d.values() | list }}|{{ d | length }}|{{ d }}", {"d": {"a": 1, "b": "two"}}),
    ("{{ 10 | string }}|{{ '42' | int + 1 }}|{{ '3.5' | float }}|{{ -2 | abs }}|{{ 3.7 | int }}|{{ true | int }}", {}),
    ("{{ text | indent(2) }}|{{ text | indent(2, true) }}", {"text": "a\nb\n\nc"}),
    ("{% set t %}block {{ 1 + 1 }}{% endset %}[{{ t }}]", {}),
    ("{% set a, b = [1, 2] %}{{ a }}{{ b }}", {}),
    ("{{ [1, 2] + [3] }}|{{ {'k': 'v'} }}|{{ (1, 2) }}|{{ none }}|{{ true }}|{{ 15 if false else 0.1 + 0.2 }}", {}),
    ("{% for a, b in pairs %}{{ a }}-{{ b }} {% endfor %}", {"pairs": [[1, "x"], [2, "y"]]}),
    ("{{ messages[0]['content'] }}{{ messages[0].role }}{{ messages | length - 1 }}", {"messages": [{"role": "user", "content": "c"}]}),
]

out = {"conversations": convs, "features": [{"template": t, "context": c} for t, c in features]}
with open(os.path.join(ROOT, "tests", "data", "chat_template_cases.json"), "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False, indent=1)
print(len(convs), "conversations,", len(features), "feature templates")
