"""Templates and conditions: the sandbox refuses code execution at load, strict undefined at
run, the names a template may use, the `spell` filter and `match` test, `now` in the flow's zone."""

from __future__ import annotations

import datetime as dt

import pytest
from flows_fakes import FakeCall, make_ctx

from ivr_flows import FlowRunner, FlowTemplateError, load_flow_text
from ivr_flows.templating import Expression, Template, TemplateVars


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ ''.__class__.__mro__ }}", "access to '__class__', '__mro__' is not allowed"),
        ("{{ vars.__dict__ }}", "access to '__dict__' is not allowed"),
        ("{{ vars['__class__'] }}", "access to '__class__' is not allowed"),
        ("{{ ''|attr('__class__') }}", "unknown filter 'attr'"),
        ("{{ cycler.__init__.__globals__ }}", "access to '__init__', '__globals__' is not allowed"),
        ("{{ cycler }}", "unknown name 'cycler'"),
        ("{{ lipsum() }}", "unknown name 'lipsum'"),
        ("{% import 'os' as os %}", "'import' is not allowed"),
        ("{% extends 'base' %}", "'extends' is not allowed"),
        ("{{ caller.numbr }}", "'caller' has no field 'numbr' (did you mean 'number'?)"),
        ("{{ call.id }}", "'call' has no field 'id'"),
        ("{{ vars.x | upperr }}", "unknown filter 'upperr' (did you mean 'upper'?)"),
        ("{{ vars.x is matchh('1') }}", "unknown test 'matchh' (did you mean 'match'?)"),
        ("{{ vars.x ", "template syntax error"),
    ],
)
def test_templates_refused_at_load(source: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Template(source)
    assert message in str(caught.value)


def test_a_flow_with_a_code_execution_attempt_does_not_load() -> None:
    text = (
        "flow: x\nstart: s\nnodes:\n  s: {type: say, text: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\","
        " next: h}\n  h: {type: hangup}\n"
    )
    with pytest.raises(Exception, match="not allowed") as caught:
        load_flow_text(text, "t.yaml")
    assert str(caught.value.errors[0]).startswith("t.yaml:4:24: node 's': text: template: access to")  # type: ignore[attr-defined]


def test_loops_and_local_names_are_fine() -> None:
    template = Template("{% for d in vars.account %}{{ d }}-{% endfor %}{% set n = 2 %}{{ n }}")
    assert template.render({"vars": TemplateVars(account="12")}) == "1-2-2"
    assert not template.is_static
    assert Template("plain text").is_static


def test_undefined_variables_are_clear_errors_at_run() -> None:
    with pytest.raises(FlowTemplateError, match=r"variable 'vars.account' is not set"):
        Template("Account {{ vars.account }}").render({"vars": TemplateVars()})
    with pytest.raises(FlowTemplateError, match="is not set"):
        Expression("vars.balance > 3").evaluate({"vars": TemplateVars()})
    assert Expression("vars.balance is defined").evaluate({"vars": TemplateVars()}) is False


def test_sandbox_still_guards_values_at_run() -> None:
    """A format string that arrives as data (e.g. from a webhook) cannot reach private attributes."""
    template = Template("{{ vars.fmt.format(vars.x) }}")
    assert template.render({"vars": TemplateVars(fmt="<{0}>", x="ok")}) == "<ok>"
    with pytest.raises(FlowTemplateError, match=r"unsafe|access"):
        template.render({"vars": TemplateVars(fmt="{0.__class__.__mro__}", x="ok")})


def test_spell_filter_and_match_test() -> None:
    assert Template("{{ vars.n | spell }}").render({"vars": TemplateVars(n="1203")}) == "1 2 0 3"
    assert Expression("vars.n is match('^[0-9]{4}$')").evaluate({"vars": TemplateVars(n="1203")}) is True
    assert Expression("vars.n is match('^[0-9]{4}$')").evaluate({"vars": TemplateVars(n="12034")}) is False


def test_now_is_in_the_flow_time_zone() -> None:
    text = (
        "flow: t\ntimezone: Asia/Tokyo\nstart: s\nnodes:\n"
        "  s: {type: say, text: \"{{ now.strftime('%H:%M %Z') }} {{ call.destination }}\", next: h}\n"
        "  h: {type: hangup}\n"
    )
    call = FakeCall()
    FlowRunner(load_flow_text(text, "t.yaml"), make_ctx(call, at=dt.datetime(2026, 1, 1, 0, 30, tzinfo=dt.UTC))).run()
    assert call.of("speak")[0]["text"] == "09:30 JST 5000"


def test_numbers_and_booleans_are_templates_too() -> None:
    assert Template._validate(1001).source == "1001"
    with pytest.raises(ValueError, match="expected a text"):
        Template._validate(True)
    assert Expression._validate(True).evaluate({}) is True
