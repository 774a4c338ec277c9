import os, sys
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pairs")
base = open(f"{root}/base.agent").read()
def ed(text, *reps):
    for a, b in reps:
        assert text.count(a) == 1, (a, text.count(a))
        text = text.replace(a, b)
    return text
TRACK = '''  tool track {
    GET "https://orders.example.com/v1/track/{id}"
    risk low
    read_only
    args { id: string }
  }

  workflow help'''
ARCHIVE = '''  // Reachable from no workflow yet, so it may lose its key and still check.
  tool archive {
    POST "https://orders.example.com/v1/archive"
    risk medium
    args { id: string }
    idempotency key "{session}:{args.id}"
  }

  workflow help'''
HELP_ALLOW = ("tools allow [lookup, notify]", "tools allow [lookup, notify, unnotify]")
HELP_OUT = ('outbound allow ["orders.example.com", "mail.example.com"]', 'outbound allow ["orders.example.com", "mail.example.com", "billing.example.com"]')
REFUND_RISK = ('''    risk high
    as biller''', '''    risk medium
    as biller''')
ROUTE_MED = ("    route risk low -> tier small\n    tools allow [lookup, notify]", "    route risk low -> tier small\n    route risk medium -> tier large\n    tools allow [lookup, notify]")
CLEARS = ("    timeout 6s\n    clears risk medium", "    timeout 6s\n    clears risk high")
SHADOW = ('''    outbound allow ["orders.example.com", "mail.example.com"]
    policy enforce''', '''    outbound allow ["orders.example.com", "mail.example.com"]
    policy shadow''')
KEY = ('    idempotency key "{session}:{args.to}"\n', '')
KEY2 = ('idempotency key "{session}:{args.to}"\n', 'idempotency key "{session}:{workflow}:{args.to}"\n')
COMP = ("    compensate unnotify\n", "")
SECRETS = ("secrets [MAIL_KEY]", "secrets [MAIL_KEY, SMS_KEY]")
PII = ("pii mask [email, phone] before persist", "pii mask [email] before persist")
PATTERN = ("pii mask [email, phone] before persist", 'pii pattern order_ref "ORD-\\\\d{6}"\n    pii mask [email, phone, order_ref] before persist')
CKPT = ("checkpoint every 6 turns", "checkpoint every 3 turns")
SLO = [("latency p95 < 2s", "latency p95 < 3s"), ("success >= 99%", "success >= 98%"), ("denied <= 5%", "denied <= 8%")]
SERVICE = [("auth bearer secret API_TOKENS admin secret ADMIN_TOKEN", "auth bearer secret SHOP_TOKENS"),
           ('tenant header "x-tenant-id"', 'tenant header "x-shop-id"'), ('owner "shop-team"', 'owner "payments-team"'),
           ("  store kv summaries\n", "  store kv summaries\n  store r2 archive\n")]
MODELS = ('fallback "@cf/meta/llama-4-scout-17b-16e-instruct"', 'fallback "@cf/google/gemma-4-26b-a4b-it" "@cf/meta/llama-4-scout-17b-16e-instruct"')
PRICE = ("price in 1.00 out 3.00 per Mtok", "price in 1.00 out 4.50 per Mtok")
VERSION = ("agent shop version 1", "agent shop version 2")
STEP = ("      tokens per task in 4000 out 800\n    }\n", '      tokens per task in 4000 out 800\n    }\n    step check = call lookup with { id: "{params.id}" }\n')
AFF = ("    policy enforce\n    checkpoint", '    policy enforce\n    session affinity header "x-session" ttl 1h\n    checkpoint')
AUDIT = ("\n}\n", '''
  workflow audit class compliance {
    route risk low -> tier small
    tools allow [lookup]
    outbound allow ["orders.example.com"]
    pii mask [email] before persist
  }
}
''')
ENDPOINT = ('GET "https://orders.example.com/v1/orders/{id}"', 'GET "https://orders.example.com/v2/orders/{id}"')
CONTRACT = ("    read_only\n    args { id: string }\n  }\n\n  tool notify", "    read_only\n    timeout 3s\n    args { id: string, full?: bool }\n  }\n\n  tool notify")
READONLY = ("    risk low\n    read_only\n    args { id: string }\n  }\n\n  tool notify", '    risk low\n    args { id: string }\n    idempotency key "{session}:{args.id}"\n  }\n\n  tool notify')

cases = {
    "tool_added": (base, ed(base, ("\n  workflow help", "\n" + TRACK))),
    "tool_removed": (ed(base, ("\n  workflow help", "\n" + TRACK)), base),
    "tool_allowlist_widened": (base, ed(base, HELP_ALLOW)),
    "tool_allowlist_narrowed": (ed(base, HELP_ALLOW), base),
    "outbound_widened": (base, ed(base, HELP_OUT)),
    "outbound_narrowed": (ed(base, HELP_OUT), base),
    "risk_lowered": (base, ed(base, REFUND_RISK)),
    "risk_raised": (ed(base, REFUND_RISK), base),
    "routed_lower": (ed(base, ROUTE_MED), base),
    "routed_higher": (base, ed(base, ROUTE_MED)),
    "clearance_raised": (base, ed(base, CLEARS)),
    "clearance_lowered": (ed(base, CLEARS), base),
    "enforce_to_shadow": (base, ed(base, SHADOW)),
    "shadow_to_enforce": (ed(base, SHADOW), base),
    "idempotency_removed": (ed(base, ("\n  workflow help", "\n" + ARCHIVE)), ed(base, ("\n  workflow help", "\n" + ARCHIVE.replace('    idempotency key "{session}:{args.id}"\n', '')))),
    "idempotency_changed": (base, ed(base, KEY2)),
    "compensation_removed": (base, ed(base, COMP)),
    "compensation_added": (ed(base, COMP), base),
    "secrets_gained": (base, ed(base, SECRETS)),
    "secrets_lost": (ed(base, SECRETS), base),
    "pii_narrowed": (base, ed(base, PII)),
    "pii_widened": (ed(base, PII), base),
    "pii_pattern_added": (base, ed(base, PATTERN)),
    "checkpoint_cadence": (base, ed(base, CKPT)),
    "slo_loosened": (base, ed(base, *SLO)),
    "slo_tightened": (ed(base, *SLO), base),
    "auth_tenant_admin": (base, ed(base, *SERVICE)),
    "model_chain": (base, ed(base, MODELS)),
    "price": (base, ed(base, PRICE)),
    "widening_with_version_bump": (base, ed(base, HELP_ALLOW, VERSION)),
    "steps": (base, ed(base, STEP)),
    "affinity": (base, ed(base, AFF)),
    "workflow_added": (base, ed(base, AUDIT)),
    "workflow_removed": (ed(base, AUDIT), base),
    "tool_endpoint": (base, ed(base, ENDPOINT)),
    "tool_contract": (base, ed(base, CONTRACT)),
    "read_only_dropped": (base, ed(base, READONLY)),
}
for name, (old, new) in cases.items():
    d = f"{root}/{name}"
    os.makedirs(d, exist_ok=True)
    open(f"{d}/old.agent", "w").write(old)
    open(f"{d}/new.agent", "w").write(new)
print(len(cases))
