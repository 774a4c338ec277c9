"""Hypothesis strategies for PII masking: `pii_texts()` draws text with emails, phone numbers, payment cards,
IBANs, IP addresses and employee ids embedded in noise, written the ways people write them (separators of every
kind, full-width digits, internationalized emails) next to look-alikes that are not PII (Luhn-invalid digit
runs, dates, wrong IBAN check digits).
"""

from __future__ import annotations

from hypothesis import strategies as st

Draw = st.DrawFn

# Characters people put between digit groups: ASCII, no-break and thin spaces, en/em dashes, and doubles.
SEPARATORS = (" ", "-", ".", "\u00a0", "\u202f", "\u2009", "\u2013", "\u2014", "  ", "--", " - ", "\u3000")
FULL_WIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
NOISE = st.text(
    alphabet=st.sampled_from(
        [*"abcXYZ019 .,;:-_+()@/#é中ßñ", "\u00a0", "\u2013", "\n", "\t", "😀", "\uff21", "\uff11", "ﬁ"]
    ),
    max_size=12,
)


def _digits(draw: Draw, n: int) -> str:
    return "".join(draw(st.sampled_from("0123456789")) for _ in range(n))


def _widen(draw: Draw, text: str) -> str:
    """Sometimes write the digits full-width, as IME input does."""
    if draw(st.booleans()) and draw(st.booleans()):
        return "".join(FULL_WIDTH.get(ch, ch) for ch in text)
    return text


def _luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


@st.composite
def cards(draw: Draw) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "37", "6011", "35"]))
    length = 15 if prefix == "37" else 16
    body = prefix + _digits(draw, length - 1 - len(prefix))
    number = body + _luhn_digit(body)
    if draw(st.integers(0, 5)) == 0:  # a Luhn-invalid look-alike
        number = number[:-1] + str((int(number[-1]) + 1) % 10)
    sep = draw(st.sampled_from(("", *SEPARATORS)))
    groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    return _widen(draw, sep.join(groups))


@st.composite
def phones(draw: Draw) -> str:
    sep = draw(st.sampled_from(SEPARATORS))
    shape = draw(st.integers(0, 3))
    if shape == 0:
        country = draw(st.sampled_from(["1", "44", "49", "33", "353"]))
        text = f"+{country}{sep}{_digits(draw, 3)}{sep}{_digits(draw, 3)}{sep}{_digits(draw, 4)}"
    elif shape == 1:
        text = f"({_digits(draw, 3)}){sep}{_digits(draw, 3)}{sep}{_digits(draw, 4)}"
    elif shape == 2:
        text = f"{_digits(draw, 3)}{sep}{_digits(draw, 3)}{sep}{_digits(draw, 4)}"
    else:
        text = f"0{_digits(draw, 2)}{sep}{_digits(draw, 4)}{sep}{_digits(draw, 4)}"
    return _widen(draw, text)


@st.composite
def emails(draw: Draw) -> str:
    local = draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,8}", fullmatch=True))
    if draw(st.booleans()) and draw(st.booleans()):
        local = draw(st.sampled_from(["josé", "müller", "用户", "δοκιμή", "ñandú.x"]))
    domain = draw(st.sampled_from(["example.com", "mail.example.co.uk", "a-b.io", "bücher.de", "例え.jp",
                                   "xn--bcher-kva.de", "пример.рф", "corp.example"]))  # fmt: skip
    at = "\uff20" if draw(st.integers(0, 7)) == 0 else "@"
    return f"{local}{at}{domain}"


@st.composite
def ibans(draw: Draw) -> str:
    country = draw(st.sampled_from(["GB", "DE", "FR", "NL", "ES", "IT"]))
    bban = draw(st.from_regex(r"[A-Z]{4}[0-9]{10,18}", fullmatch=True))
    numeric = "".join(str(ord(c) - 55) if c.isalpha() else c for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    if draw(st.integers(0, 5)) == 0:
        check = (check % 97) + 1  # wrong check digits
    compact = f"{country}{check:02d}{bban}"
    if draw(st.booleans()):
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


@st.composite
def ips(draw: Draw) -> str:
    if draw(st.booleans()):
        return ".".join(str(draw(st.integers(0, 300))) for _ in range(4))
    groups = [f"{draw(st.integers(0, 0xFFFF)):x}" for _ in range(draw(st.integers(2, 8)))]
    if len(groups) == 8:
        return ":".join(groups)
    cut = draw(st.integers(1, len(groups) - 1))
    return ":".join(groups[:cut]) + "::" + ":".join(groups[cut:])


@st.composite
def look_alikes(draw: Draw) -> str:
    """Things that are not PII and must survive: dates, order numbers, versions, short codes."""
    return draw(st.sampled_from([
        f"{draw(st.integers(1990, 2030))}-{draw(st.integers(1, 12)):02d}-{draw(st.integers(1, 28)):02d}",
        f"{draw(st.integers(1, 28))}/{draw(st.integers(1, 12))}/{draw(st.integers(1990, 2030))}",
        f"order {_digits(draw, 10)}", f"v{draw(st.integers(0, 9))}.{draw(st.integers(0, 9))}.{draw(st.integers(0, 9))}",
        f"EMP-{_digits(draw, draw(st.integers(5, 7)))}", f"EMP-{_digits(draw, 6)}",
        f"ref {_digits(draw, 3)}-{_digits(draw, 2)}",
    ]))  # fmt: skip


pii_items = st.one_of(cards(), phones(), emails(), ibans(), ips(), look_alikes())


@st.composite
def pii_texts(draw: Draw) -> str:
    parts = [draw(NOISE)]
    for _ in range(draw(st.integers(1, 4))):
        parts.extend((draw(pii_items), draw(NOISE)))
    return draw(st.sampled_from([" ", ""])).join(parts)
