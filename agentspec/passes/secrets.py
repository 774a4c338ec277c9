"""Secrets: the resolved model in, E0103 and E0305 out.

A tool reads a secret only through its headers (`{secret.NAME}`), and only a secret its
identity (`as NAME`) holds: tools never see another identity's credentials.
"""

from __future__ import annotations

from collections.abc import Iterator

from agentspec import model as m
from agentspec.diagnostics import KEEP_HELP, Diagnostic, did_you_mean, form_help, report
from agentspec.resolve import Resolution, placeholders


def check(res: Resolution) -> Iterator[Diagnostic]:
    for tool in res.tools.values():
        where = f"tool `{tool.name.value}`"
        run_as = tool.first(m.RunAs)
        identity = res.identities.get(run_as.identity.value) if run_as else None
        held = {s.value for s in identity.secrets} if identity else set()
        headers = tool.first(m.Headers)
        for header in headers.headers if headers else ():
            for placeholder in placeholders(header.value.value):
                if not placeholder.startswith("secret."):
                    continue  # resolution's E0604
                secret = placeholder[len("secret.") :]
                span = header.value.span
                if secret not in res.secrets_declared:
                    help = did_you_mean(secret, res.secrets_declared) or KEEP_HELP
                    yield report("E0103", "undefined", span, help=help, secret=secret)
                    continue
                if secret in held:
                    continue
                holders = res.identity_holding(secret)
                help = form_help("E0305", "holder", holder=holders[0], secret=secret) if holders else KEEP_HELP
                if identity:
                    yield report(
                        "E0305", "not-held", span, help=help, where=where, secret=secret, identity=identity.name.value
                    )
                else:
                    yield report("E0305", "no-identity", span, help=help, where=where, secret=secret)
