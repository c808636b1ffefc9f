"""An asyncio client for AWS JSON APIs (`iot`, `iot-jobs-data`) on httpx.

Requests are serialized, signed (SigV4) and parsed by botocore from its own service
models, exactly as boto3 would do it; only the transport differs, so that thousands
of simulated devices share one connection pool in one event loop instead of a
thread per blocking boto3 call."""

from __future__ import annotations

from typing import Any

import botocore.session
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest, prepare_request_dict
from botocore.credentials import Credentials
from botocore.model import ServiceModel
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

_models: dict[str, ServiceModel] = {}


def service_model(service: str) -> ServiceModel:
    if service not in _models:
        _models[service] = botocore.session.get_session().get_service_model(service)
    return _models[service]


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.message = message
        self.status = status


class AsyncAwsClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: str,
        service: str,
        *,
        region: str,
        access_key: str,
        secret_key: str,
    ) -> None:
        self.http = http
        self.endpoint = endpoint.rstrip("/")
        self.model = service_model(service)
        self.region = region
        self.credentials = Credentials(access_key, secret_key)
        protocol = self.model.metadata["protocol"]
        self._serializer = create_serializer(protocol, include_validation=True)
        self._parser = create_parser(protocol)

    async def call(self, operation: str, **params: Any) -> dict[str, Any]:
        op = self.model.operation_model(operation)
        request_dict = self._serializer.serialize_to_request(params, op)
        prepare_request_dict(request_dict, endpoint_url=self.endpoint)
        request = AWSRequest(
            method=request_dict["method"],
            url=request_dict["url"],
            data=request_dict["body"],
            headers=request_dict["headers"],
        )
        SigV4Auth(self.credentials, self.model.signing_name, self.region).add_auth(request)
        prepared = request.prepare()
        response = await self.http.request(
            prepared.method,
            prepared.url,
            headers=dict(prepared.headers.items()),
            content=prepared.body or b"",
        )
        parsed: dict[str, Any] = self._parser.parse(
            {
                "status_code": response.status_code,
                "headers": dict(response.headers.items()),
                "body": response.content,
            },
            op.output_shape,
        )
        if response.status_code >= 300:
            error = parsed.get("Error", {})
            raise AwsError(
                str(error.get("Code") or response.status_code),
                str(error.get("Message", "")),
                response.status_code,
            )
        parsed.pop("ResponseMetadata", None)
        return parsed
