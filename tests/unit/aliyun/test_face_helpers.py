"""Small pure parts of the Alibaba face: rate-limit settings, upload URLs, task ids,
job parameter rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from otahub.aliyun import firmware_data as fd
from otahub.aliyun import jobspec, lookup, storage
from otahub.aliyun.protocol.errors import BusinessError, GatewayError
from otahub.aliyun.protocol.ratelimits import limiter_from_spec
from otahub.domain import selectors as sel
from otahub.domain.clock import FakeClock
from otahub.domain.entities import Package, PackageFile
from otahub.domain.states import VerifyState


def test_rate_limit_settings() -> None:
    clock = FakeClock()
    default = limiter_from_spec(clock, None)
    assert default.limit_for("CreateOTAVerifyJob").rate == 10
    assert default.limit_for("CancelOTATaskByJob").rate == 5
    assert default.limit_for("CreateOTAStaticUpgradeJob").rate == 20
    assert not limiter_from_spec(clock, "off").enabled
    custom = limiter_from_spec(clock, "default=50, CreateOTAVerifyJob=2")
    assert custom.limit_for("QueryOTAJob").rate == 50
    assert custom.limit_for("CreateOTAVerifyJob").rate == 2
    assert limiter_from_spec(clock, "7").limit_for("QueryOTAJob").rate == 7
    for bad in ("fast", "CreateOTAVerifyJob=0"):
        with pytest.raises(ValueError):
            limiter_from_spec(clock, bad)
    custom.check("acct", "CreateOTAVerifyJob")
    custom.check("acct", "CreateOTAVerifyJob")
    with pytest.raises(GatewayError) as raised:
        custom.check("acct", "CreateOTAVerifyJob")
    assert raised.value.code == "Throttling.User"
    custom.check("other-acct", "CreateOTAVerifyJob")


def test_upload_urls_name_their_keys() -> None:
    key = storage.new_key("tar.gz")
    assert key.startswith("ota/") and key.endswith(".tar.gz")
    url = f"{storage.host('http://10.0.0.5:8080/')}/{key}"
    assert url.startswith("http://10.0.0.5:8080/oss/ota/")
    assert storage.key_of_url(url) == key
    assert storage.key_of_url("https://elsewhere.example/oss/ota/a/b.bin") == "ota/a/b.bin"
    for other in ("http://h/other/ota/x.bin", "http://h/oss/", "not a url"):
        assert storage.key_of_url(other) is None


def test_task_ids_name_job_and_device() -> None:
    tid = lookup.task_id("wahVIzGkCMuAUE2gDERM02abcd", 123_456_789)
    ref, _, device = tid.rpartition(lookup.TASK_SEPARATOR)
    assert ref == "wahVIzGkCMuAUE2gDERM02abcd"
    assert int(device, 36) == 123_456_789
    assert lookup.task_id("j", 0).endswith("-0")


def _package(*sizes: int, source: str | None = None) -> Package:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Package(
        id=1,
        tenant_id=1,
        ref="fw",
        product_id=1,
        name="fw",
        module="MCU",
        version="2.0",
        source_version=source,
        description=None,
        verify_state=VerifyState.UNVERIFIED,
        data={fd.MULTI_FILE: len(sizes) > 1},
        created_at=now,
        updated_at=now,
        files=tuple(PackageFile(ordinal=i, name=f"f{i}", size=s) for i, s in enumerate(sizes)),
    )


def test_mqtt_download_needs_one_file_of_16_mb_at_most() -> None:
    jobspec.check_download_protocol(_package(16 * 1024 * 1024), "MQTT")
    jobspec.check_download_protocol(_package(16 * 1024 * 1024 + 1), "HTTPS")
    for package in (_package(16 * 1024 * 1024 + 1), _package(10, 10)):
        with pytest.raises(BusinessError) as raised:
            jobspec.check_download_protocol(package, "MQTT")
        assert raised.value.code == "iot.ota.DownloadProtocolNotSupported"


def test_version_selectors() -> None:
    field = "version:MCU"
    done = sel.Not(sel.Match(field, "2.0"))
    assert jobspec.version_selector(_package(1), None) == done
    assert jobspec.version_selector(_package(1), ["1.0", "1.1"]) == sel.And(
        (sel.AnyOf(field, ("1.0", "1.1")), done)
    )
    assert jobspec.version_selector(_package(1, source="1.5"), None) == sel.And(
        (sel.Match(field, "1.5"), done)
    )
    with pytest.raises(BusinessError):
        jobspec.check_diff_versions(_package(1, source="1.5"), ["1.4"])
    jobspec.check_diff_versions(_package(1, source="1.5"), ["1.5"])
