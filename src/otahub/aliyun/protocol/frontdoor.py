"""One entry point for a raw RPC request: parameters, action, signature, rate limit,
typed parameters, in that order. Every refusal is an `AliyunError`; turn it into a
response with `envelope.error_response(error, action, fmt=format_of(...))`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from otahub.aliyun.protocol.errors import AliyunError
from otahub.aliyun.protocol.parser import (
    Format,
    RpcCall,
    action_spec,
    merge_params,
    parse_call,
    response_format,
)
from otahub.aliyun.protocol.ratelimits import ApiRateLimiter
from otahub.aliyun.protocol.signature import Authenticator, Caller


@dataclass(frozen=True)
class Received:
    caller: Caller
    call: RpcCall


async def receive(
    method: str,
    query_string: str,
    body: bytes | str,
    content_type: str | None,
    *,
    authenticator: Authenticator,
    limiter: ApiRateLimiter | None = None,
    account_of: Callable[[Caller], str] | None = None,
) -> Received:
    """`account_of` names the rate-limit budget of a caller; by default its AccessKeyId."""
    raw = merge_params(query_string, body, content_type)
    spec = action_spec(raw)
    caller = await authenticator(method, raw)
    if limiter is not None:
        account = account_of(caller) if account_of else caller.access_key_id
        limiter.check(account, spec.name)
    return Received(caller=caller, call=parse_call(method, raw))


def format_of(
    query_string: str, body: bytes | str = b"", content_type: str | None = None
) -> Format:
    """The response format for this request, even when it is malformed."""
    try:
        return response_format(merge_params(query_string, body, content_type))
    except AliyunError:
        pairs = urllib.parse.parse_qsl(query_string, keep_blank_values=True)
        return response_format(dict(pairs))


def action_of(
    query_string: str, body: bytes | str = b"", content_type: str | None = None
) -> str | None:
    """The action name if it is a known one, for the XML root of error responses."""
    try:
        return action_spec(merge_params(query_string, body, content_type)).name
    except AliyunError:
        return None
