"""The model's `pattern` traits are Java regexes; the translator keeps Java's meaning."""

from __future__ import annotations

import botocore.loaders
import pytest

from otahub.aws.wire import codec
from otahub.aws.wire.errors import AwsError
from otahub.aws.wire.javaregex import JavaRegexError, compile_java, translate
from otahub.aws.wire.model import service_model


def matches(pattern: str, value: str) -> bool:
    return compile_java(pattern).fullmatch(value) is not None


def test_every_model_pattern_compiles() -> None:
    loader = botocore.loaders.Loader()
    patterns = {
        shape["pattern"]
        for service in ("iot", "iot-jobs-data", "signer", "s3")
        for shape in loader.load_service_model(service, "service-2")["shapes"].values()
        if "pattern" in shape
    }
    assert len(patterns) > 40
    for p in patterns:
        compile_java(p)


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # POSIX classes are ASCII-only in Java (the regex package's are Unicode-wide).
        (r"[\p{Upper}\p{Digit}_]+", "ABORTED_1", True),
        (r"[\p{Upper}\p{Digit}_]+", "ÄB", False),
        (r"[\p{Upper}\p{Digit}_]+", "A٣", False),  # Arabic-Indic digit
        (r"[\p{Graph}\x20]*", "group one!", True),
        (r"[\p{Graph}\x20]*", "café", False),
        (r"\p{Alpha}+", "abcXYZ", True),
        (r"\p{Alpha}+", "é", False),
        (r"\p{Punct}+", "!#~", True),
        (r"\w+", "naïve", False),
        (r"\d+", "١٢", False),
        (r"\s", "\u00a0", False),
        (r"[^\p{Cntrl}]*", "tab\there", False),
        # Unicode categories keep their Unicode meaning.
        (r"[^\p{C}]+", "déjà vu", True),
        (r"[^\p{C}]+", "bell\u0007", False),
        (r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*", "Größe 5", True),
        # `.` excludes every Java line terminator, not only \n.
        (r"a.b", "a\u2028b", False),
        (r"a.b", "a\rb", False),
        (r"a.b", "a\u0085b", False),
        (r"a.b", "aéb", True),
        (r"(?s)a.b", "a\nb", True),
        # Nested classes are unions, `&&` intersects.
        (r"[a-c[x-z]]+", "abxz", True),
        (r"[a-z&&[^aeiou]]+", "bcd", True),
        (r"[a-z&&[^aeiou]]+", "bad", False),
        (r"[a-z&&[def]]", "e", True),
        # Literals that are set operators in the regex package's VERSION1 mode.
        (r"[a-z--]+", "a-b", True),
        (r"[|~&]+", "||~~", True),
        (r"[a-zA-Z0-9!_.*'()-\/]+", "a+b", True),  # `)-\/` is a range that holds `+`
        (r"[a-zA-Z0-9:_-]+", "thing:1_a-b", True),
        (r"[a-zA-Z0-9:_-]+", "bad name", False),
        (r"\Qa.b\E", "a.b", True),
        (r"\Qa.b\E", "axb", False),
        (r"\x41\u0042\0103", "ABC", True),
    ],
)
def test_java_meaning(pattern: str, value: str, expected: bool) -> None:
    assert matches(pattern, value) is expected, translate(pattern)


def test_compiled_once() -> None:
    assert compile_java(r"[\p{Upper}]+") is compile_java(r"[\p{Upper}]+")


def test_unknown_syntax_is_refused() -> None:
    with pytest.raises(JavaRegexError):
        compile_java(r"\y")


def test_validation_uses_java_meaning() -> None:
    cancel = service_model("iot").operation_model("CancelJob").input_shape
    codec.validate("iot", cancel, {"jobId": "j1", "reasonCode": "FW_2"})
    with pytest.raises(AwsError) as err:
        codec.validate("iot", cancel, {"jobId": "j1", "reasonCode": "ÜBER"})
    assert err.value.code == "InvalidRequestException"
