// Unit tests of the Jinja2 subset interpreter: every construct, Python value
// semantics, whitespace control (trim_blocks + lstrip_blocks as Hugging Face
// configures Jinja), and errors.
//
// kCases: each expected string is what Python jinja2 3.1.6 renders for the template
// with HF's settings (ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True, extensions=[loopcontrols]), tojson = json.dumps(ensure_ascii=False))
// and the context kContext; the strings were produced once with that reference and
// are pinned here literally.
#include <gtest/gtest.h>

#include <string>

#include "chat/chat_template.h"

namespace kvserve {
namespace {

const char* kContext = R"~({"name": "World", "n": 3, "f": 2.5, "xs": [1, 2, 3], "words": ["a", "b", "c"],
  "d": {"b": 1, "a": "x"}, "s": "  Hello, World!  ", "none": null, "t": true,
  "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
  "u": "héllo wörld", "empty": [], "nested": {"k": [{"v": 1}, {"v": 2}]}})~";

struct Case {
  const char* tmpl;
  const char* expected;
};

const Case kCases[] = {
    {R"~(Hello {{ name }}!)~",
     R"~(Hello World!)~"},
    {R"~({{ 1 }}|{{ 1.5 }}|{{ 'a' }}|{{ "b" }}|{{ true }}|{{ none }}|{{ [1, 'x', None, False] }}|{{ {'k': 'v', 'n': 2} }})~",
     R"~(1|1.5|a|b|True|None|[1, 'x', None, False]|{'k': 'v', 'n': 2})~"},
    {R"~({{ 10 / 4 }}|{{ 10 // 4 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 7.5 // 2 }}|{{ 1 + 2.0 }}|{{ 3 - 5 }}|{{ 'ab' * 3 }}|{{ [0] * 3 }})~",
     R"~(2.5|2|-4|2|1024|0.5|3.0|3.0|-2|ababab|[0, 0, 0])~"},
    {R"~({{ 'a' + 'b' ~ 1 ~ none }}|{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ -n }}|{{ - 2 ** 2 }}|{{ 2 * 3 ** 2 }})~",
     R"~(ab1None|7|9|-3|4|18)~"},
    {R"~({{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1e-7 }}|{{ 100.0 }}|{{ 1.5e3 }})~",
     R"~(0.30000000000000004|1e+20|1e-07|100.0|1500.0)~"},
    {R"~({{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 1 == 1.0 }}|{{ 'a' != 'b' }}|{{ 'ab' < 'b' }}|{{ [1,2] == [1,2] }}|{{ 2 >= 2 }}|{{ 1 <= 0 }})~",
     R"~(True|False|True|True|True|True|True|False)~"},
    {R"~({{ 'ell' in 'hello' }}|{{ 2 in xs }}|{{ 5 not in xs }}|{{ 'a' in d }}|{{ 'z' in d }}|{{ not 'x' in 'abc' }})~",
     R"~(True|True|True|True|False|True)~"},
    {R"~({{ t and 'yes' }}|{{ none or 'fallback' }}|{{ 0 or '' }}|{{ not t }}|{{ not none and 1 }}|{{ 'a' if t else 'b' }}|{{ 'a' if none else 'b' }}|{{ 'a' if none }}|)~",
     R"~(yes|fallback||False|1|a|b||)~"},
    {R"~({{ name is defined }}|{{ nope is defined }}|{{ nope is undefined }}|{{ none is none }}|{{ n is not none }}|{{ name is string }}|{{ n is string }}|{{ d is mapping }}|{{ xs is mapping }}|{{ xs is iterable }}|{{ n is number }}|{{ f is float }}|{{ n is integer }}|{{ t is true }}|{{ t is false }}|{{ t is boolean }})~",
     R"~(True|False|True|True|True|True|False|True|False|True|True|True|True|True|False|True)~"},
    {R"~({{ n is odd }}|{{ n is even }}|{{ 9 is divisibleby 3 }}|{{ 9 is divisibleby(4) }}|{{ n is eq 3 }}|{{ 'abc' is lower }}|{{ 'ABC' is upper }}|{{ 2 is in(xs) }}|{{ none is sameas none }})~",
     R"~(True|False|True|False|True|True|True|True|True)~"},
    {R"~({{ d.a }}|{{ d['b'] }}|{{ xs[0] }}|{{ xs[-1] }}|{{ xs[1:] }}|{{ xs[:-1] }}|{{ xs[::-1] }}|{{ xs[::2] }}|{{ 'abcdef'[1:4] }}|{{ 'abc'[::-1] }}|{{ u[1] }}|{{ u[::-1] }}|{{ nested.k[1].v }}|{{ msgs[0]['role'] }}|{{ xs.1 }})~",
     R"~(x|1|1|3|[2, 3]|[1, 2]|[3, 2, 1]|[1, 3]|bcd|cba|é|dlröw olléh|2|user|2)~"},
    {R"~([{{ d.missing }}][{{ xs[10] }}][{{ none.x }}][{{ nope }}])~",
     R"~([][][][])~"},
    {R"~([{{ s|trim }}]|{{ s|length }}|{{ u|length }}|{{ xs|length }}|{{ d|length }}|{{ xs|count }}|{{ name|lower }}|{{ name|upper }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }})~",
     R"~([Hello, World!]|17|11|3|2|3|world|WORLD|Hello World|Hello)~"},
    {R"~({{ xs|join(', ') }}|{{ words|join }}|{{ xs|first }}|{{ xs|last }}|{{ 'abc'|first }}|{{ name|replace('o', '0') }}|{{ 'aaa'|replace('a', 'b', 2) }}|{{ xs|string }}|{{ 42|string + '!' }})~",
     R"~(1, 2, 3|abc|1|3|a|W0rld|bba|[1, 2, 3]|42!)~"},
    {R"~({{ nope|default('dflt') }}|{{ ''|default('dflt') }}|{{ ''|default('dflt', true) }}|{{ none|d('x') }}|{{ d|items|list }}|{{ xs|reverse|list }}|{{ [3,1,2]|sort }}|{{ [3,1,2]|sort(reverse=true) }}|{{ ['b','A','c']|sort }})~",
     R"~(dflt||dflt|None|[('b', 1), ('a', 'x')]|[3, 2, 1]|[1, 2, 3]|[3, 2, 1]|['A', 'b', 'c'])~"},
    {R"~({{ d|tojson }}|{{ msgs|tojson }}|{{ 'é"\n'|tojson }}|{{ none|tojson }}|{{ [1.5, true]|tojson }}|{{ {'a': [1, {'b': 2}]}|tojson(indent=2) }}|{{ {}|tojson }}|{{ []|tojson(indent=2) }})~",
     R"~({"b": 1, "a": "x"}|[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]|"é\"\n"|null|[1.5, true]|{
  "a": [
    1,
    {
      "b": 2
    }
  ]
}|{}|[])~"},
    {R"~({{ '42'|int + 1 }}|{{ 'x'|int }}|{{ 3.9|int }}|{{ '2.5'|float }}|{{ -3|abs }}|{{ 2.567|round(2) }}|{{ 2.5|round }}|{{ xs|sum }}|{{ xs|min }}|{{ xs|max }}|{{ [1,1,2]|unique|list }})~",
     R"~(43|0|3|2.5|3|2.57|2.0|6|1|3|[1, 2])~"},
    {R"~({{ msgs|map(attribute='role')|join(',') }}|{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|list }}|{{ msgs|rejectattr('role', 'eq', 'user')|list|length }}|{{ xs|select('odd')|list }}|{{ xs|reject('odd')|list }}|{{ ['1','2']|map('int')|sum }})~",
     R"~(user,assistant|['hi']|1|[1, 3]|[2]|3)~"},
    {R"~({{ 'a
b

c'|indent(2) }}|{{ 'a
b'|indent(2, true) }}|{{ '<a&b>'|e }}|{{ 'one two  three'|wordcount }})~",
     R"~(a
  b

  c|  a
  b|&lt;a&amp;b&gt;|3)~"},
    {R"~({{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'Hi'.startswith('H') }}|{{ 'Hi'.endswith('x') }}|{{ 'Hi'.startswith(('x', 'H')) }})~",
     R"~(Hello, World!|Hello, World!  |  Hello, World!|hi|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|True|False|True)~"},
    {R"~({{ 'AbC'.lower() }}|{{ 'AbC'.upper() }}|{{ 'a-b-c'.replace('-', '+') }}|{{ 'hello'.find('l') }}|{{ 'hello'.count('l') }}|{{ '-'.join(words) }}|{{ d.items()|list }}|{{ d.keys()|list }}|{{ d.values()|list }}|{{ d.get('a') }}|{{ d.get('zz', 'no') }}|{{ d.get('zz') }}|{{ '12'.isdigit() }}|{{ 'hello world'.title() }})~",
     R"~(abc|ABC|a+b+c|2|2|a-b-c|[('b', 1), ('a', 'x')]|['b', 'a']|[1, 'x']|x|no|None|True|Hello World)~"},
    {R"~({% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }};{% endfor %})~",
     R"~(10TrueFalse332;21FalseFalse321;32FalseTrue310;)~"},
    {R"~({% for x in xs if x > 1 %}{{ x }}:{{ loop.index }}/{{ loop.length }} {% endfor %}|{% for x in empty %}x{% else %}empty{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{% for c in 'ab' %}[{{ c }}]{% endfor %})~",
     R"~(2:1/2 3:2/2 |empty|ba|[a][b])~"},
    {R"~({% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for k, v in d|items %}{{ k }}={{ v }};{% endfor %}|{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %})~",
     R"~(b=1;a=x;|b=1;a=x;|37)~"},
    {R"~({% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}|{% for x in xs %}{% for y in words %}{{ loop.index }}{{ y }}{% endfor %}{{ loop.index }} {% endfor %})~",
     R"~(1|1a2b3c1 1a2b3c2 1a2b3c3 )~"},
    {R"~({% for x in xs %}{{ loop.previtem }}-{{ loop.nextitem }},{% endfor %}|{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 10, 3) %}{{ i }}{% endfor %}|{% for i in range(3, 0, -1) %}{{ i }}{% endfor %})~",
     R"~(-2,1-3,2-,|012|147|321)~"},
    {R"~({% set a = 1 %}{% set b, c = 2, 3 %}{{ a }}{{ b }}{{ c }}|{% set x = 0 %}{% for i in xs %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}|{% if t %}{% set y = 5 %}{% endif %}{{ y }})~",
     R"~(123|0102030|5)~"},
    {R"~({% set ns = namespace(count=0, found=false) %}{% for x in xs %}{% set ns.count = ns.count + x %}{% if x == 2 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }} {{ ns.found }}|{% set ns2 = namespace() %}{% set ns2.v = 'new' %}{{ ns2.v }})~",
     R"~(6 True|new)~"},
    {R"~({% set block %}inner {{ name }}{% endset %}[{{ block }}]|{% set l = xs + [4] %}{{ l }}|{% set dd = {'x': 1, 'y': [1]} %}{{ dd.y[0] }})~",
     R"~([inner World]|[1, 2, 3, 4]|1)~"},
    {R"~({% macro greet(who, punct='!') %}Hi {{ who }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', '?') }} {{ greet(who='Cy', punct='.') }})~",
     R"~(Hi Bob! Hi Al? Hi Cy.)~"},
    {R"~({% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }})~",
     R"~(120)~"},
    {R"~(a
  {% if t %}
  b
  {% endif %}
c
)~",
     R"~(a
  b
c)~"},
    {R"~(a   {%- if t -%}   b   {%- endif -%}   c)~",
     R"~(abc)~"},
    {R"~(a {{- ' b ' -}} c|  {{ 'x' }}  |
{# comment #}
d{#- c2 -#} e)~",
     R"~(a b c|  x  |
de)~"},
    {R"~(<{% for x in xs %}
  {{ x }}
{% endfor %}>)~",
     R"~(<  1
  2
  3
>)~"},
    {R"~(x {% if t %}y{% endif %} z
  {%+ if t %}kept{% endif %}
{% if t +%}
notrim{% endif %})~",
     R"~(x y z
  kept
notrim)~"},
    {R"~({% raw %}{{ not evaluated }}{% endraw %}|{{ '{{' }})~",
     R"~({{ not evaluated }}|{{)~"},
    {"line1\r\nline2\r\n",
     R"~(line1
line2)~"},
    {R"~({{ 'x' ~ (1 + 2) }})~",
     R"~(x3)~"},
    {R"~({{ 'It''s' }} {{ 'a' 'b' }})~",
     R"~(Its ab)~"},
};

StatusOr<std::string> RenderWith(const std::string& tmpl, const nlohmann::ordered_json& ctx) {
  KV_ASSIGN_OR_RETURN(ChatTemplate t, ChatTemplate::Parse(tmpl));
  return t.Render(ctx);
}

StatusOr<std::string> Render(const std::string& tmpl) {
  return RenderWith(tmpl, nlohmann::ordered_json::parse(kContext));
}

TEST(ChatTemplateInterpreter, MatchesJinjaReference) {
  for (const Case& c : kCases) {
    auto r = Render(c.tmpl);
    ASSERT_TRUE(r.ok()) << c.tmpl << "\n" << r.status().ToString();
    EXPECT_EQ(*r, c.expected) << "template: " << c.tmpl;
  }
}

TEST(ChatTemplateInterpreter, GenerationTagRendersItsBody) {
  // HF's AssistantTracker extension only records spans; the text is unchanged.
  auto r = Render("a{% generation %}gen {{ name }}{% endgeneration %}b");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "agen Worldb");
}

TEST(ChatTemplateInterpreter, SortedJsonContextPrintsKeysSorted) {
  // nlohmann::json (not ordered_json) sorts object keys; documented in chat_template.h.
  auto t = ChatTemplate::Parse("{{ d|tojson }}");
  ASSERT_TRUE(t.ok());
  auto r = t->Render(nlohmann::json::parse(R"({"d": {"b": 1, "a": 2}})"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, R"({"a": 2, "b": 1})");
}

TEST(ChatTemplateInterpreter, StrftimeNowFormatsTheCurrentDate) {
  auto r = Render("{{ strftime_now('%Y') }}");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 4u);
  EXPECT_GE(std::stoi(*r), 2024);
}

void ExpectError(const std::string& tmpl, const std::string& fragment) {
  auto r = Render(tmpl);
  ASSERT_FALSE(r.ok()) << "template should fail: " << tmpl << " rendered: " << *r;
  EXPECT_NE(r.status().message().find(fragment), std::string::npos)
      << "template: " << tmpl << "\nmessage: " << r.status().message() << "\nexpected fragment: " << fragment;
}

TEST(ChatTemplateInterpreter, SyntaxErrorsNameLineAndColumn) {
  ExpectError("{% if x %}no end", "chat template 1:17: unexpected end of template, expected 'endif'");
  ExpectError("line1\n{{ 1 + }}", "chat template 2:8: unexpected '}}' in expression");
  ExpectError("{% for x in %}{% endfor %}", "chat template 1:13: unexpected '%}' in expression");
  ExpectError("{% endfor %}", "chat template 1:4: unknown or unexpected tag 'endfor'");
  ExpectError("{% frobnicate %}", "unknown or unexpected tag 'frobnicate'");
  ExpectError("{{ 'abc }}", "1:4: unterminated string literal");
  ExpectError("{# never closed", "1:1: unterminated comment");
  ExpectError("{{ x", "unexpected end of template, expected '}}'");
  ExpectError("{{ a ? b }}", "unexpected character '?'");
  ExpectError("{% break %}", "'break' outside of a loop");
  ExpectError("{% set = 1 %}", "expected a name");
  ExpectError("{{ f(a=1, 2) }}", "positional argument follows keyword argument");
  ExpectError("{{ 99999999999999999999 }}", "integer literal out of range");
}

TEST(ChatTemplateInterpreter, RenderErrorsAreStatusesWithPositions) {
  ExpectError("{{ raise_exception('Only user and assistant roles are supported!') }}",
              "chat template 1:4: raise_exception: Only user and assistant roles are supported!");
  ExpectError("\n  {{ xs|frobnicate }}", "chat template 2:8: unknown filter 'frobnicate'");
  ExpectError("{{ 1 is frobnicated }}", "unknown test 'frobnicated'");
  ExpectError("{{ nope.attr }}", "'nope' is undefined (reading attribute 'attr')");
  ExpectError("{{ d.missing.attr }}", "'dict object' has no attribute 'missing'");
  ExpectError("{{ nope() }}", "'nope' is undefined");
  ExpectError("{{ 'a' + 1 }}", "unsupported operand type(s) for +: 'str' and 'int'");
  ExpectError("{{ nope + 'x' }}", "'nope' is undefined");
  ExpectError("{{ 1 / 0 }}", "division by zero");
  ExpectError("{{ 1 // 0 }}", "integer division or modulo by zero");
  ExpectError("{{ 1 < 'a' }}", "'<' not supported between instances of 'int' and 'str'");
  ExpectError("{{ name.nosuchmethod() }}", "'str' object has no method 'nosuchmethod'");
  ExpectError("{{ 1 in 2 }}", "argument of type 'int' is not iterable");
  ExpectError("{% for x in 5 %}{% endfor %}", "'int' object is not iterable");
  ExpectError("{% set name.x = 1 %}", "cannot assign attribute 'x' on 'name' (a str, not a namespace)");
  ExpectError("{% for a, b in xs %}{% endfor %}", "cannot unpack a int into 2 variables");
  ExpectError("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", "macro 'm' takes 1 argument(s), got 2");
  ExpectError("{% macro m(a) %}{% endmacro %}{{ m(b=1) }}", "macro 'm' has no parameter 'b'");
  ExpectError("{{ 9223372036854775807 + 1 }}", "integer overflow");
  ExpectError("{{ xs[::0] }}", "slice step cannot be zero");
  ExpectError("{{ none|tojson }}{{ nope|tojson }}", "not JSON serializable");
  ExpectError("{% set ns = namespace(a=1) %}{% set ns.a = ns %}", "cannot store a namespace inside namespace 'ns'");
}

TEST(ChatTemplateInterpreter, ResourceBoundsFailCleanly) {
  ExpectError("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "macro calls nested deeper than 64");
  ExpectError("{{ 'x' * 100000000 }}", "string exceeds the size limit");
  ExpectError("{% for i in range(100000000) %}{% endfor %}", "range(): more than");
  ExpectError("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
              "string exceeds the size limit");
  ExpectError("{% set ns = namespace(l=[]) %}{% for i in range(200) %}{% set ns.l = [ns.l] %}{% endfor %}",
              "value nested deeper than 128");
  std::string deep(300, '(');
  ExpectError("{{ " + deep + "1" + std::string(300, ')') + " }}", "expression nested too deeply");
  std::string deep_ifs;
  for (int i = 0; i < 300; ++i) deep_ifs += "{% if true %}";
  ExpectError(deep_ifs, "blocks nested too deeply");

  auto busy = ChatTemplate::Parse("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}");
  ASSERT_TRUE(busy.ok());
  chat::RenderLimits few_steps;
  few_steps.max_steps = 100000;
  busy->set_limits(few_steps);
  auto spun = busy->Render(nlohmann::json::object());
  ASSERT_FALSE(spun.ok());
  EXPECT_NE(spun.status().message().find("template exceeded 100000 evaluation steps"), std::string::npos)
      << spun.status().message();

  auto t = ChatTemplate::Parse("{% for i in range(1000) %}xxxxxxxxxx{% endfor %}");
  ASSERT_TRUE(t.ok());
  chat::RenderLimits limits;
  limits.max_output_bytes = 5000;
  t->set_limits(limits);
  auto r = t->Render(nlohmann::json::object());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("output exceeds 5000 bytes"), std::string::npos) << r.status().message();
}

TEST(ChatTemplateInterpreter, ContextMustBeAnObject) {
  auto t = ChatTemplate::Parse("x");
  ASSERT_TRUE(t.ok());
  auto r = t->Render(nlohmann::json::array());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("must be a JSON object"), std::string::npos);
}

TEST(ChatTemplateInterpreter, UndefinedValuesPrintEmptyAndTestFalse) {
  auto r = Render("[{{ nope }}][{{ d.zz }}][{% if nope %}y{% else %}n{% endif %}][{{ nope is defined }}][{% for x in nope %}x{% endfor %}]");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "[][][n][False][]");
}

}  // namespace
}  // namespace kvserve
