"""The router's index by method and first path segment picks what a scan of every
route in order picks, for a path of every operation of every service."""

from __future__ import annotations

import re

import pytest

from otahub.aws.wire import codec, model


def scan(service: str, method: str, raw_path: str) -> str | None:
    for r in model.routes(service):
        if r.method == method and r.pattern.match(raw_path):
            return r.operation
    return None


def sample_paths(template: str) -> list[str]:
    path = template.split("?", 1)[0]
    return [
        re.sub(r"\{[^}]+\}", fill, path) for fill in ("x", "$next", "a%2Fb", "a/b/c", "sub/x")
    ] + [path + "/", "/" + path.lstrip("/").split("/", 1)[0] + "/zzz/yyy"]


@pytest.mark.parametrize("service", model.SERVICES)
def test_index_matches_the_scan(service: str) -> None:
    sm = model.service_model(service)
    checked = 0
    for name in sm.operation_names:
        http = sm.operation_model(name).http
        for path in sample_paths(http["requestUri"]):
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
                found = model.route(service, method, path)
                assert (found.operation.name if found else None) == scan(service, method, path), (
                    method,
                    path,
                )
                checked += 1
    assert checked > 100


def test_labels_come_decoded() -> None:
    found = model.route("iot-jobs-data", "GET", "/things/a%3Ab/jobs")
    assert found is not None and found.operation.name == "GetPendingJobExecutions"
    assert found.labels == {"thingName": "a:b"}
    assert model.route("iot", "GET", "/nosuch/thing") is None
    assert model.route("iot", "TRACE", "/things/x") is None


def test_output_serialization_keeps_modeled_members_only() -> None:
    op = model.service_model("iot-jobs-data").operation_model("GetPendingJobExecutions")
    status, headers, body = codec.serialize_output(
        op,
        {
            "queuedJobs": [{"jobId": "j", "queuedAt": 1, "extra": 2, "startedAt": None}],
            "inProgressJobs": [],
            "unmodeled": True,
        },
    )
    assert (status, headers) == (200, {})
    assert body == b'{"inProgressJobs":[],"queuedJobs":[{"jobId":"j","queuedAt":1}]}'


def test_validation_of_nested_members() -> None:
    from otahub.aws.wire.errors import AwsError

    shape = model.service_model("iot").operation_model("CreateThing").input_shape
    codec.validate("iot", shape, {"thingName": "t", "attributePayload": {"attributes": {"k": "v"}}})
    with pytest.raises(AwsError) as err:
        codec.validate("iot", shape, {"thingName": "t", "attributePayload": {"attributes": "x"}})
    assert err.value.message == "attributePayload.attributes must be a map"
    with pytest.raises(AwsError) as err:
        codec.validate(
            "iot", shape, {"thingName": "t", "attributePayload": {"attributes": {"k": 1}}}
        )
    assert err.value.message == "attributePayload.attributes.k must be a string"
    with pytest.raises(AwsError) as err:
        codec.validate("iot", shape, {"attributePayload": {}})
    assert err.value.message == "thingName is required"
    with pytest.raises(AwsError) as err:
        codec.validate("iot", shape, {"thingName": ""})
    assert err.value.message == "thingName must have at least 1 characters"
