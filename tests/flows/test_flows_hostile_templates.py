"""Hostile templates cost a bounded amount: refused at load when the cost is visible in the text,
refused at call time (a `FlowTemplateError`, the node's error edge) when it depends on the call.

Findings: ``{{ (9**14348907) > 1 }}`` held the hub ~25 s while jinja folded the constant at load;
nested ``range(100000)`` loops in a ``set`` node held every call 7 s at call time.
"""

from __future__ import annotations

import pytest

from ivr_flows import FlowValidationError, load_flow_text
from ivr_flows.errors import FlowTemplateError
from ivr_flows.limits import FlowLimits
from ivr_flows.templating import Expression, Template, TemplateTooCostly

CONTEXT = {"vars": {"big": "x" * 60_000, "n": 9, "nums": list(range(1000)), "pin": "1234"},
           "caller": {"number": "5551234", "name": "A"}, "call": {}, "now": None}


@pytest.mark.parametrize(("source", "message"), [
    ("{{ (9**14348907) > 1 }}", "9 ** 14348907 is larger than 4096 bits"),
    ("{{ 9**(9**7) }}", "9 ** 4782969 is larger than 4096 bits"),
    ("{{ -(2**5000) }}", "larger than 4096 bits"),
    ("{{ 'x' * 10**6 }}", "repeating a value 1000000 times"),
    ("{{ [1, 2] * 100000 }}", "repeating a value 100000 times"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "'macro' is not allowed"),
    ("{% set x %}{{ vars.big }}{% endset %}", "'set … endset' is not allowed"),
    ("{% filter upper %}x{% endfilter %}", "'filter' is not allowed"),
    ("{% for x in vars.nums recursive %}{{ loop(x) }}{% endfor %}", "recursive loops are not allowed"),
    ("{{ vars.pin is match(vars.pattern) }}", "'match' takes a literal pattern"),
    ("{{ vars.pin is match('(') }}", "is not a regular expression"),
    ("{{ '" + "x" * 5000 + "' }}", "the limit is 4096"),
])
def test_costly_templates_are_refused_at_load(source: str, message: str) -> None:
    with pytest.raises(ValueError, match="template") as caught:
        Template(source)
    assert message in str(caught.value)


def test_a_costly_condition_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="larger than 4096 bits"):
        Expression("9 ** 14348907 > 1")


@pytest.mark.parametrize(("source", "message"), [
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "range of 100000"),
    ("{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}", "more than 2000 operations"),
    ("{% for a in vars.big %}{% for b in vars.big %}{% endfor %}{% endfor %}", "more than 2000 operations"),
    ("{{ vars.n ** 99999999 }}", "9 ** 99999999 is larger than 4096 bits"),
    ("{{ vars.big|replace('x', 'xxxxxxxxxx') }}", "the replacement is longer than 65536"),
    ("{{ vars.big.replace('x', 'yy') }}", "the replacement is longer than 65536"),
    ("{{ '%0*d' % (vars.n, 1) }}", "'*' widths are not allowed"),
    ("{{ '%01000000000d' % vars.n }}", "a width of 1000000000"),
    ("{{ '{:>1000000000}'.format(vars.n) }}", "a width of 1000000000"),
    ("{{ vars.big.center(1000000000) }}", "a width of 1000000000"),
    ("{{ ([vars.big] * 60000)|string }}", "repeating a value 60000 times"),
    ("{% for i in range(1500) %}{{ vars.big }}{% endfor %}", "longer than 65536 characters"),
    ("{{ '-'.join([vars.big, vars.big]) }}", "the joined text is longer than 65536"),
    ("{{ vars.big|wordwrap(1) }}", "'wordwrap' takes at most 4096 characters"),
    ("{{ ('a' * 40 ~ '!') is match('(a|aa)+b') }}", "took too long to match"),
    ("{{ vars.nums.append(1) }}", "unsafe"),
])
def test_costly_renders_are_refused_at_call_time(source: str, message: str) -> None:
    template = Template(source)
    with pytest.raises(FlowTemplateError) as caught:
        template.render(CONTEXT)
    assert message in str(caught.value)


def test_a_costly_condition_is_refused_at_call_time() -> None:
    with pytest.raises(TemplateTooCostly, match="larger than 4096 bits"):
        Expression("vars.n ** 99999 > 1").evaluate(CONTEXT)


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ vars.pin|spell }}", "1 2 3 4"),
    ("{{ vars.nums|length }}", "1000"),
    ("{% for i in range(3) %}{{ i }}{% endfor %}", "012"),
    ("{{ (vars.n * 2) ** 3 }}", "5832"),
    ("{{ 2 ** 64 }}", "18446744073709551616"),
    ("{{ vars.nums[:5]|map('string')|join(',') }}", "0,1,2,3,4"),
    ("{{ 'Account %s' % vars.pin }}", "Account 1234"),
    ("{{ '{:>6}'.format(vars.pin) }}", "  1234"),
    ("{{ 'yes' if vars.pin is match('\\\\d{4}') else 'no' }}", "yes"),
    ("{{ caller.number|replace('555', '') }}", "1234"),
])
def test_ordinary_templates_still_render(source: str, expected: str) -> None:
    assert Template(source).render(CONTEXT) == expected


def test_every_loop_item_is_a_step_so_the_budget_is_exact() -> None:
    within = FlowLimits().template_steps // 2 - 10        # range(n) costs n, each iteration 1 more
    assert Template(f"{{% for i in range({within}) %}}{{% endfor %}}ok").render(CONTEXT) == "ok"
    with pytest.raises(TemplateTooCostly, match="operations"):
        Template(f"{{% for i in range({within + 20}) %}}{{% endfor %}}").render(CONTEXT)


def test_a_costly_template_in_a_flow_is_a_located_load_error() -> None:
    text = ("flow: f\nstart: s\nnodes:\n"
            "  s: {type: set, vars: {x: \"{{ (9**14348907) > 1 }}\"}, next: h}\n"
            "  h: {type: hangup}\n")
    with pytest.raises(FlowValidationError) as caught:
        load_flow_text(text, "hostile.yaml")
    (issue,) = caught.value.errors
    assert (issue.source, issue.line, issue.node) == ("hostile.yaml", 4, "s")
    assert "larger than 4096 bits" in issue.message
