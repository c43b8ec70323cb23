"""What every fuzz property shares: one bounded hypothesis profile, the nasty inputs, a counter.

``SPEEDRIFT_FUZZ_EXAMPLES`` (default 200) sets how many examples each property tries, so CI runs a
bounded pass and a soak raises it (``SPEEDRIFT_FUZZ_EXAMPLES=20000 pytest tests/fuzz``). Every
property calls :func:`tried` once per input; tests/fuzz/conftest.py adds the counts up across
xdist workers, prints them at the end of the run and, with ``SPEEDRIFT_FUZZ_REPORT=<file>``,
writes them there as JSON for the chaos suite's figures.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

PROFILE = "speedrift-fuzz"
DEFAULT_EXAMPLES = 200


def examples() -> int:
    raw = os.environ.get("SPEEDRIFT_FUZZ_EXAMPLES", "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_EXAMPLES


settings.register_profile(
    PROFILE,
    max_examples=examples(),
    deadline=None,  # a loaded 2-core machine: time is asserted nowhere
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    print_blob=True,  # a failure prints what reproduces it
)
FUZZ = settings(settings.get_profile(PROFILE))

TRIED: Counter[str] = Counter()  # property name -> inputs tried in this process


def tried(name: str, count: int = 1) -> None:
    TRIED[name] += count


# --- the nasty inputs ---------------------------------------------------------------------------
SURROGATE = b'"\\ud800"'  # a lone surrogate as a JSON escape: orjson and wg refuse it
BOM = b"\xef\xbb\xbf"


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]", core: bytes = b"1") -> bytes:
    return opener * depth + core + closer * depth


@st.composite
def deep_values(draw: st.DrawFn) -> bytes:
    """JSON text nested to a drawn depth, arrays and objects mixed (an orjson-refused depth too)."""
    depth = draw(st.sampled_from([1, 2, 127, 128, 129, 200, 255, 1023, 1024, 1025, 1100, 3000]))
    kinds = draw(st.lists(st.booleans(), min_size=1, max_size=4))
    opens, closes = [], []
    for level in range(depth):
        if kinds[level % len(kinds)]:
            opens.append(b"[")
            closes.append(b"]")
        else:
            opens.append(b'{"k":')
            closes.append(b"}")
    return b"".join(opens) + b"1" + b"".join(reversed(closes))


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec=None, categories=["Cc", "Cf", "Zl", "Zp"]), max_size=6),
)
# Cheap to draw (the recursive strategy below costs most of a property's time): for field values
# that only need to be varied, not explored.
field_values: st.SearchStrategy[object] = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=12),
    st.sampled_from(
        [None, True, 1.5, [1, "a"], {"k": [None, {"j": []}]}, "\u202e", "a\nb", "\x00", "\U0001f600"]
    ),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
REFUSED = [  # JSON values wg (and speedrift) refuse
    SURROGATE,
    b'"\\udc00"',
    b'"\\ud800\\u0041"',
    b'"a\x00b"',
    b'"\x1b[2J"',
    b"NaN",
    b"Infinity",
    b"1e400",
    b'"\xff\xfe"',
    b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8: not valid UTF-8
    BOM,
    b"\r",
    b"\x00",
]
ACCEPTED = [b"123456789012345678901234567890", b'"\\u202e"', b'"\\n"', b'"\\u0000"', b'"\\ud83d\\ude00"']
refused_fragments = st.sampled_from(REFUSED)
nasty_fragments = st.sampled_from([*REFUSED, *ACCEPTED])
