"""An Alibaba device program built on the unmodified aliyun-iot-linkkit 1.2.13, as a
customer would write it (specs §5.5). Run by the tests with the linkkit venv's
python (paho-mqtt 1.6.1); prints one JSON line per event on stdout.

    python linkkit_device.py HOST PORT PK DN SECRET VERSION WORKDIR [CA_PEM_FILE]

With LK_QUERY=1 in the environment it also asks for its task (firmware/get).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

from linkkit import linkkit


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main() -> None:
    host, port, pk, dn, secret, version, workdir = sys.argv[1:8]
    ca = Path(sys.argv[8]).read_text() if len(sys.argv) > 8 else None
    lk = linkkit.LinkKit(host_name=host, product_key=pk, device_name=dn, device_secret=secret)
    if ca:
        lk.config_mqtt(port=int(port), cadata=ca)
    else:
        lk.config_mqtt(port=int(port), secure="")
    done = threading.Event()
    progress = f"/ota/device/progress/{pk}/{dn}"

    def on_connect(session_flag: object, rc: int, userdata: object) -> None:
        emit("connected", rc=rc)
        lk.subscribe_topic(f"/ota/device/upgrade/{pk}/{dn}")
        lk.subscribe_topic(f"/sys/{pk}/{dn}/thing/ota/firmware/get_reply")
        time.sleep(0.5)  # let the SUBACKs come back before the service answers
        lk.ota_report_version(None, version)
        if os.environ.get("LK_QUERY"):  # a NeedPush=false task: ask for it
            lk.query_ota_firmware()

    def on_ota(
        kind: int, new: str, size: object, url: str, method: str, sign: str, module: str, extra: str
    ) -> None:
        emit(
            "ota",
            type=kind,
            version=new,
            size=size,
            url=url,
            sign_method=method,
            sign=sign,
            module=module,
            extra=extra,
        )
        threading.Thread(target=upgrade, args=(new, url, method, sign), daemon=True).start()

    def upgrade(new: str, url: str, method: str, sign: str) -> None:
        path = f"{workdir}/{dn}-{new}.bin"
        lk.publish_topic(progress, json.dumps({"id": "1", "params": {"step": "10", "desc": "dl"}}))
        rc = lk.download_ota_firmware(url, path, method, sign)
        emit("downloaded", rc=str(rc))
        if rc != linkkit.LinkKit.ErrorCode.SUCCESS:
            step = "-3" if "DIGEST" in str(rc) else "-2"
            lk.publish_topic(progress, json.dumps({"id": "2", "params": {"step": step}}))
            return
        lk.publish_topic(progress, json.dumps({"id": "3", "params": {"step": "100", "desc": "ok"}}))
        lk.ota_report_version(None, new)
        emit("reported", version=new)
        done.set()

    lk.on_connect = on_connect
    lk.on_ota_message_arrived = on_ota
    lk.connect_async()
    done.wait(90)
    time.sleep(1)  # let the last publishes go out
    lk.disconnect()
    emit("exit")


if __name__ == "__main__":
    main()
