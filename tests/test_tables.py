"""The LALR tables toolgram derives from Lark's: what does not depend on Lark's state order."""
import itertools

from toolgram.compiler import tables
from toolgram.ir import Rule


def test_recovery_goes_on_after_the_call_rule_itself_whatever_the_rule_order():
    """A state with gotos on the call rule and on a form aliased to it (a call lacking its end tag): after a
    broken call, parsing goes on after the call rule.  Lark lists rules in its state order, which varies with
    the hash seed; the choice must not (it decides whether a separator after the call is markup or content)."""
    forms = [Rule("open_invoke", 4, True), Rule("invoke", 5, True), Rule("param", 3, False)]
    gotos = [{"open_invoke": 3, "invoke": 2, "param": 1}, {"open_invoke": 4}, {}]
    actions = [{}, {}, {}, {}, {}]
    for rules in itertools.permutations(forms):
        rec = tables.recovery(actions, gotos, list(rules), set(), {}, "invoke")
        assert rec.call_gotos == [2, 4, -1]
