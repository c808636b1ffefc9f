"""The Alibaba device-side codec: topics, inbound messages, pushes, download frames."""

from __future__ import annotations

import json
import os
import struct

import crcmod.predefined
import pytest

from otahub.aliyun.devices.codec import (
    DEFAULT_MODULE,
    INBOUND_FILTERS,
    CodecError,
    DownloadRequest,
    PackageFile,
    ProgressFailure,
    Topic,
    UpgradeInfo,
    build_download_error,
    build_download_reply,
    build_get_reply,
    build_topic,
    build_upgrade_push,
    crc16_arc,
    device_sign_method,
    loads_lenient,
    parse_download_reply,
    parse_download_request,
    parse_firmware_get,
    parse_inform,
    parse_progress,
    parse_topic,
    upgrade_data,
)

MD5 = "9E107D9D372BB6826BD81D3542A419D6"
SHA = "D7A8FBB307D7809469CA9ABCB0082E4F8D5651E46D3CDB762D02D0BF37C9E592"
C_SDK_REQUEST = (
    b'{"id":"7","version":"1.0","params":{"fileToken":"default","fileInfo":'
    b'{"streamId":1234,"fileId":1,},"fileBlock":{"size":5120,"offset":10240}}}'
)

# ---------------------------------------------------------------- lenient JSON


def test_trailing_commas_outside_strings_are_dropped() -> None:
    assert loads_lenient(b'{"a":[1,2,],"b":{"c":"x,}",},}') == {"a": [1, 2], "b": {"c": "x,}"}}
    assert loads_lenient('{"s":"quote \\" ,]",  }\x00') == {"s": 'quote " ,]'}


@pytest.mark.parametrize("bad", [b"[1]", b"not json", b"\xff\xfe", b'{"a":,}'])
def test_bad_payloads(bad: bytes) -> None:
    with pytest.raises(CodecError):
        loads_lenient(bad)


# ---------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("kind", "topic"),
    [
        ("inform", "/ota/device/inform/pk/dn"),
        ("upgrade", "/ota/device/upgrade/pk/dn"),
        ("progress", "/ota/device/progress/pk/dn"),
        ("firmware_get", "/sys/pk/dn/thing/ota/firmware/get"),
        ("firmware_get_reply", "/sys/pk/dn/thing/ota/firmware/get_reply"),
        ("file_download", "/sys/pk/dn/thing/file/download"),
        ("file_download_reply", "/sys/pk/dn/thing/file/download_reply"),
    ],
)
def test_topics_round_trip(kind: str, topic: str) -> None:
    assert build_topic(kind, "pk", "dn") == topic  # type: ignore[arg-type]
    parsed = parse_topic(topic)
    assert parsed == Topic(kind, "pk", "dn")  # type: ignore[arg-type]
    assert str(parsed) == topic


@pytest.mark.parametrize(
    "topic",
    [
        "/ota/device/other/pk/dn",
        "/ota/device/inform/pk",
        "/ota/device/inform/pk/dn/extra",
        "/ota/device/inform//dn",
        "/sys/pk/dn/thing/event/property/post",
        "/sys/pk/dn/thing/ota/firmware/get/x",
        "ota/device/inform/pk/dn",
    ],
)
def test_other_topics_are_not_ours(topic: str) -> None:
    assert parse_topic(topic) is None


def test_topic_segments_are_checked() -> None:
    with pytest.raises(CodecError):
        build_topic("inform", "pk", "a/b")
    with pytest.raises(CodecError):
        build_topic("inform", "+", "dn")


def test_inbound_filters_match_device_topics() -> None:
    assert "/ota/device/inform/+/+" in INBOUND_FILTERS
    assert "/sys/+/+/thing/file/download" in INBOUND_FILTERS


# ---------------------------------------------------------------- inbound messages


def test_inform_from_linkkit_and_docs() -> None:
    linkkit = parse_inform(b'{"id": 1,"params": {"version":"1.0.0","module": "MCU"}}')
    assert (linkkit.id, linkkit.version, linkkit.module) == (1, "1.0.0", "MCU")
    docs = parse_inform('{"id":"123","params":{"version":"1.0.1"}}')
    assert (docs.id, docs.module) == ("123", DEFAULT_MODULE)
    empty_module = parse_inform('{"id":2,"params":{"version":"1.0","module":""},}')
    assert empty_module.module == DEFAULT_MODULE


@pytest.mark.parametrize(
    "bad",
    [b'{"id":1,"params":{}}', b'{"id":1,"params":{"version":""}}', b'{"id":[1],"params":{}}'],
)
def test_bad_inform(bad: bytes) -> None:
    with pytest.raises(CodecError):
        parse_inform(bad)


@pytest.mark.parametrize(
    ("step", "expected"), [('"50"', 50), ("50", 50), ('"100"', 100), ("1", 1), ("0", 0)]
)
def test_progress_steps(step: str, expected: int) -> None:
    report = parse_progress(f'{{"id":"2","params":{{"step":{step},"desc":"ok"}}}}')
    assert report.step == expected and not report.failed and report.failure is None
    assert report.desc == "ok" and report.module == DEFAULT_MODULE


@pytest.mark.parametrize(
    ("step", "failure", "meaning"),
    [
        (-1, ProgressFailure.UPGRADE_FAILED, "upgrade failed"),
        (-2, ProgressFailure.DOWNLOAD_FAILED, "download failed"),
        (-3, ProgressFailure.VERIFY_FAILED, "verification failed"),
        (-4, ProgressFailure.FLASH_FAILED, "flashing failed"),
    ],
)
def test_progress_failures(step: int, failure: ProgressFailure, meaning: str) -> None:
    report = parse_progress(
        json.dumps({"id": 3, "params": {"step": str(step), "desc": "boom", "module": "MCU"}})
    )
    assert report.failed and report.failure is failure and failure.meaning == meaning
    assert (report.desc, report.module) == ("boom", "MCU")


@pytest.mark.parametrize("step", ['"-5"', "101", '"abc"', "true", '"5.5"'])
def test_bad_progress(step: str) -> None:
    with pytest.raises(CodecError):
        parse_progress(f'{{"id":1,"params":{{"step":{step}}}}}')


def test_progress_without_step() -> None:
    with pytest.raises(CodecError):
        parse_progress('{"id":1,"params":{"desc":"x"}}')


def test_firmware_get_forms() -> None:
    assert parse_firmware_get(b'{"id": 5, "params": {}}').module == DEFAULT_MODULE
    assert parse_firmware_get(b'{"id": 5, "params": {"module": "MCU"}}').module == "MCU"
    docs = parse_firmware_get(
        '{"id":"123","version":"1.0","params":{"module":"MCU"},"method":"thing.ota.firmware.get"}'
    )
    assert (docs.id, docs.module) == ("123", "MCU")


# ---------------------------------------------------------------- upgrade push


def single(**kw: object) -> UpgradeInfo:
    base: dict[str, object] = {
        "version": "2.0.0",
        "sign_method": "MD5",
        "url": "http://127.0.0.1:8080/dl/fw.bin?sig=x",
        "size": 432945,
        "sign": MD5,
    }
    base.update(kw)
    return UpgradeInfo(**base)  # type: ignore[arg-type]


def test_push_for_the_default_module() -> None:
    message = json.loads(build_upgrade_push(single(), message_id=1626969597470))
    assert message["code"] == "1000" and message["message"] == "success"
    assert message["id"] == 1626969597470
    assert message["data"] == {
        "version": "2.0.0",
        "size": 432945,
        "url": "http://127.0.0.1:8080/dl/fw.bin?sig=x",
        "sign": MD5.lower(),
        "md5": MD5.lower(),
        "signMethod": "Md5",
    }


def test_push_with_module_diff_tags_and_udi() -> None:
    info = single(module="MCU", is_diff=True, tags={"key1": "value1"}, udi="udi text")
    data = upgrade_data(info)
    assert data["module"] == "MCU"
    assert data["isDiff"] == 1
    assert data["extData"] == {"key1": "value1", "_package_udi": "udi text"}


def test_sha256_push() -> None:
    data = upgrade_data(single(sign_method="sha256", sign=SHA))
    assert data["signMethod"] == "SHA256" and data["sign"] == SHA.lower()
    assert "md5" not in data
    with_md5 = upgrade_data(single(sign_method="SHA256", sign=SHA, md5=MD5))
    assert with_md5["md5"] == MD5.lower()


@pytest.mark.parametrize(
    ("stored", "wire"),
    [
        ("MD5", "Md5"),
        ("md5", "Md5"),
        ("Md5", "Md5"),
        ("SHA256", "SHA256"),
        ("Sha256", "SHA256"),
        ("SHA-256", "SHA256"),
    ],
)
def test_sign_method_spelling(stored: str, wire: str) -> None:
    assert device_sign_method(stored) == wire


def test_bad_signs() -> None:
    with pytest.raises(ValueError):
        device_sign_method("CRC32")
    with pytest.raises(ValueError):
        upgrade_data(single(sign=SHA))  # 64 hex for an MD5 package
    with pytest.raises(ValueError):
        upgrade_data(single(sign="z" * 32))
    with pytest.raises(ValueError):
        upgrade_data(single(url=None))


def test_multi_file_push() -> None:
    files = [
        PackageFile("a.bin", 10, "http://x/a", MD5),
        PackageFile("b.bin", 20, "http://x/b", MD5, md5=MD5),
    ]
    data = upgrade_data(UpgradeInfo(version="3.0", sign_method="MD5", module="MCU", files=files))
    assert "url" not in data and "size" not in data and "sign" not in data
    assert data["files"] == [
        {"fileName": "a.bin", "fileSize": 10, "fileUrl": "http://x/a", "fileSign": MD5.lower()},
        {
            "fileName": "b.bin",
            "fileSize": 20,
            "fileUrl": "http://x/b",
            "fileSign": MD5.lower(),
            "fileMd5": MD5.lower(),
        },
    ]
    assert data["signMethod"] == "Md5" and data["module"] == "MCU"


def test_mqtt_download_push() -> None:
    data = upgrade_data(single(url=None, stream_id=1234, stream_file_id=1))
    assert "url" not in data
    assert (data["dProtocol"], data["streamId"], data["streamFileId"]) == ("mqtt", 1234, 1)
    assert data["size"] == 432945 and data["sign"] == MD5.lower() and data["signMethod"] == "Md5"
    with pytest.raises(ValueError):
        upgrade_data(single(stream_id=1))


def test_get_reply() -> None:
    empty = json.loads(build_get_reply(7, None))
    assert empty == {"id": 7, "code": 200, "data": {}}
    reply = json.loads(build_get_reply("abc", single()))
    assert reply["code"] == 200 and reply["id"] == "abc"
    assert reply["data"]["signMethod"] == "Md5" and reply["data"]["url"]


# ---------------------------------------------------------------- MQTT download

CRC_16 = crcmod.predefined.mkCrcFun("crc-16")


def test_crc16_arc_check_value() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D == CRC_16(b"123456789")
    assert crc16_arc(b"") == 0


def test_crc16_matches_crcmod_on_random_blocks() -> None:
    for size in (1, 2, 255, 256, 5120, 131072):
        block = os.urandom(size)
        assert crc16_arc(block) == CRC_16(block)


def test_c_sdk_request_with_trailing_comma() -> None:
    request = parse_download_request(C_SDK_REQUEST)
    assert request == DownloadRequest(
        id="7", file_token="default", stream_id=1234, file_id=1, size=5120, offset=10240
    )


@pytest.mark.parametrize(
    ("size", "offset"), [(255, 0), (128 * 1024 + 1, 0), (5120, 16 * 1024 * 1024 + 1), (5120, -1)]
)
def test_download_limits(size: int, offset: int) -> None:
    payload = json.dumps(
        {
            "id": 1,
            "params": {
                "fileToken": "t",
                "fileInfo": {"streamId": 1, "fileId": 1},
                "fileBlock": {"size": size, "offset": offset},
            },
        }
    )
    with pytest.raises(CodecError):
        parse_download_request(payload)


def test_download_limit_edges_are_allowed() -> None:
    for size, offset in ((256, 0), (128 * 1024, 16 * 1024 * 1024)):
        payload = json.dumps(
            {
                "id": 1,
                "params": {
                    "fileInfo": {"streamId": "1", "fileId": 2},
                    "fileBlock": {"size": str(size), "offset": offset},
                },
            }
        )
        assert parse_download_request(payload).size == size


def test_download_request_missing_parts() -> None:
    with pytest.raises(CodecError):
        parse_download_request(b'{"id":1,"params":{"fileInfo":{"streamId":1}}}')
    with pytest.raises(CodecError):
        parse_download_request(
            b'{"id":1,"params":{"fileInfo":{"streamId":1},"fileBlock":{"size":256,"offset":0}}}'
        )


def test_download_reply_frame_layout() -> None:
    request = parse_download_request(C_SDK_REQUEST)
    block = os.urandom(5120)
    frame = build_download_reply(request, file_length=432945, block=block)
    (head_len,) = struct.unpack(">H", frame[:2])
    header = json.loads(frame[2 : 2 + head_len])
    assert header == {
        "id": "7",
        "code": 200,
        "data": {"fileToken": "default", "fileLength": 432945, "bSize": 5120, "bOffset": 10240},
    }
    # What the C SDK checks: total = 2 + header + bSize + 2, and the CRC of the block.
    assert len(frame) == 2 + head_len + header["data"]["bSize"] + 2
    assert frame[2 + head_len : -2] == block
    assert frame[-2:] == struct.pack("<H", CRC_16(block))
    assert parse_download_reply(frame).block == block


def test_last_block_may_be_short() -> None:
    request = parse_download_request(C_SDK_REQUEST)
    frame = build_download_reply(request, file_length=10250, block=b"0123456789")
    reply = parse_download_reply(frame)
    assert reply.header["data"]["bSize"] == 10 and reply.block == b"0123456789"


def test_corrupt_reply_is_detected() -> None:
    request = parse_download_request(C_SDK_REQUEST)
    frame = bytearray(build_download_reply(request, file_length=6000, block=b"x" * 300))
    frame[-3] ^= 0xFF
    with pytest.raises(CodecError):
        parse_download_reply(bytes(frame))
    with pytest.raises(CodecError):
        parse_download_reply(b"\x00")


def test_download_error_frame() -> None:
    reply = parse_download_reply(build_download_error("7", 404, "no such stream"))
    assert reply.header == {"id": "7", "code": 404, "msg": "no such stream"}
    assert reply.block == b""
