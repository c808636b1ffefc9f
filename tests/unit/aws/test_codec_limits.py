"""The codec's parsing of URI, query-string and header text, and its validators, on
text no client should send: the service's invalid-request error and nothing else."""

from __future__ import annotations

import pytest

from otahub.aws.wire import codec, model
from otahub.aws.wire.errors import AwsError

HOSTILE_TEXT = [
    "1" * 5000,  # past Python's int-digits limit
    "nan",
    "-inf",
    "1e309",
    "9999-12-31T23:59:59-23:59",
    "99999-01-01",
    "1e18",
    "a\x00b",
    "\ud800",
    "١٢",
    "",
]
SCALARS = ["integer", "long", "double", "boolean", "timestamp", "string"]  # no float here


def scalar_shape(type_name: str) -> object:
    for service in model.SERVICES:
        shapes = model.service_model(service).shape_names
        for name in shapes:
            shape = model.service_model(service).shape_for(name)
            if shape.type_name == type_name:
                return shape
    raise LookupError(type_name)


@pytest.mark.parametrize("type_name", SCALARS)
@pytest.mark.parametrize("text", HOSTILE_TEXT, ids=[repr(t[:12]) for t in HOSTILE_TEXT])
def test_scalars_raise_only_the_invalid_error(type_name: str, text: str) -> None:
    shape = scalar_shape(type_name)
    for service, code in (("iot", "InvalidRequestException"), ("signer", "ValidationException")):
        try:
            codec._scalar(shape, text, "member", service)  # type: ignore[arg-type]
        except AwsError as err:
            assert err.code == code
            assert err.message and len(err.message) < 300


@pytest.mark.parametrize(
    ("body", "why"),
    ids=["deep", "NUL", "lone-surrogate", "past-int64", "1e309", "not-utf8"],
    argvalues=[
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "deep"),
        (b'{"targets": ["' + b"\\u0000" + b'"], "document": "{}"}', "NUL"),
        (b'{"targets": ["\\udc00"], "document": "{}"}', "lone surrogate"),
        (b'{"targets": [], "document": "{}", "x": 1' + b"0" * 30 + b"}", "past int64"),
        (b'{"targets": [], "document": "{}", "x": 1e309}', "1e309"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bodies_the_store_cannot_hold(body: bytes, why: str) -> None:
    op = model.service_model("iot").operation_model("CreateJob")
    with pytest.raises(AwsError) as err:
        codec.parse_input("iot", op, {"jobId": "j"}, "", {}, body)
    assert err.value.code == "InvalidRequestException", why


def test_numbers_outside_their_java_type() -> None:
    shapes = {t: scalar_shape(t) for t in ("integer", "long", "double")}
    for type_name, value in (("integer", 2**31), ("long", 2**63), ("integer", 1.5)):
        check = codec.validator("iot", shapes[type_name])  # type: ignore[arg-type]
        with pytest.raises(AwsError):
            check(value, "member")
    codec.validator("iot", shapes["double"])(1.5, "member")  # type: ignore[arg-type]
    with pytest.raises(AwsError):
        codec.validator("iot", shapes["double"])(float("nan"), "member")  # type: ignore[arg-type]


def test_a_signer_operation_without_validation_answers_a_declared_code() -> None:
    op = model.service_model("signer").operation_model("GetSigningProfile")
    with pytest.raises(AwsError) as err:
        codec.validate("signer", op.input_shape, {"profileName": "x"})  # min 2
    assert err.value.code == "ResourceNotFoundException"
