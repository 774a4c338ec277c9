"""The guarantee passes: each takes the resolved model (agentspec.resolve.Resolution) and yields diagnostics.

One module per guarantee of docs/language.md; agentspec/check.py lists them in the order they
run. Adding a guarantee is adding a function `check(res) -> Iterator[Diagnostic]` and listing it
there. A pass reads the resolution and keeps whatever it must remember in its own locals: passes
share no state and may run in any order.
"""
