"""Things and thing groups."""

from __future__ import annotations

from typing import Any

from otahub.aws import fleet_query
from otahub.aws.handlers import handles
from otahub.aws.handlers.common import page_token, thing
from otahub.aws.handlers.tags import from_wire
from otahub.aws.wire.app import AwsContext
from otahub.core.services.registry import KEEP
from otahub.domain.errors import AlreadyExists, InvalidRequest
from otahub.domain.limits import INT64_MAX


def _thing_out(ctx: AwsContext, d: Any) -> dict[str, Any]:
    return {"thingName": d.name, "thingArn": ctx.arn(f"thing/{d.name}"), "thingId": d.uid}


@handles("iot", "CreateThing")
async def create_thing(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    attrs = (p.get("attributePayload") or {}).get("attributes") or {}
    name = p["thingName"]
    try:
        d = await ctx.services.registry.create_device(
            ctx.tenant_id, name, attributes=attrs, type_name=p.get("thingTypeName")
        )
    except AlreadyExists:
        d = await thing(ctx, name)
        if d.attributes != attrs or d.type_name != p.get("thingTypeName"):
            raise AlreadyExists(
                f"Thing {name} already exists with different attributes",
                resource_id=d.uid,
                resource_arn=ctx.arn(f"thing/{name}"),
            ) from None
    return _thing_out(ctx, d)


@handles("iot", "DescribeThing")
async def describe_thing(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    d = await thing(ctx, p["thingName"])
    return {
        **_thing_out(ctx, d),
        "defaultClientId": d.name,
        "thingTypeName": d.type_name,
        "attributes": d.attributes,
        "version": d.version,
    }


@handles("iot", "ListThings")
async def list_things(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    after = page_token(p, INT64_MAX)  # device ids
    limit = p.get("maxResults") or 50
    found = await ctx.services.registry.list_devices(
        ctx.tenant_id, product_key="", after_id=after, limit=limit + 1
    )
    if "attributeName" in p:
        key, want = p["attributeName"], p.get("attributeValue")
        prefix = p.get("usePrefixAttributeValue", False)
        found = [
            d
            for d in found
            if key in d.attributes
            and (
                want is None
                or (d.attributes[key].startswith(want) if prefix else d.attributes[key] == want)
            )
        ]
    if "thingTypeName" in p:
        found = [d for d in found if d.type_name == p["thingTypeName"]]
    page = found[:limit]
    out: dict[str, Any] = {
        "things": [
            {
                "thingName": d.name,
                "thingArn": ctx.arn(f"thing/{d.name}"),
                "thingTypeName": d.type_name,
                "attributes": d.attributes,
                "version": d.version,
            }
            for d in page
        ]
    }
    if len(found) > limit:
        out["nextToken"] = str(page[-1].id)
    return out


@handles("iot", "UpdateThing")
async def update_thing(ctx: AwsContext, p: dict[str, Any]) -> None:
    d = await thing(ctx, p["thingName"])
    payload = p.get("attributePayload") or {}
    await ctx.services.registry.update_device(
        d.id,
        attributes=payload.get("attributes"),
        merge=payload.get("merge", False),
        type_name=p.get("thingTypeName"),
        remove_type=p.get("removeThingType", False),
        expected_version=p.get("expectedVersion"),
    )


@handles("iot", "DeleteThing")
async def delete_thing(ctx: AwsContext, p: dict[str, Any]) -> None:
    d = await ctx.services.registry.find_device(ctx.tenant_id, p["thingName"])
    if d is not None:  # deleting a missing thing succeeds, as on AWS
        await ctx.services.registry.delete_device(d.id, expected_version=p.get("expectedVersion"))


def _group_out(ctx: AwsContext, g: Any) -> dict[str, Any]:
    return {
        "thingGroupName": g.name,
        "thingGroupArn": ctx.arn(f"thinggroup/{g.name}"),
        "thingGroupId": g.uid,
    }


@handles("iot", "CreateThingGroup")
async def create_thing_group(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    props = p.get("thingGroupProperties") or {}
    attrs = (props.get("attributePayload") or {}).get("attributes") or {}
    name = p["thingGroupName"]
    try:
        g = await ctx.services.registry.create_group(
            ctx.tenant_id,
            name,
            parent=p.get("parentGroupName"),
            description=props.get("thingGroupDescription"),
            attributes=attrs,
            tags=from_wire(p.get("tags")),
            tagged_as=ctx.arn(f"thinggroup/{name}"),
        )
    except AlreadyExists:
        g = await ctx.services.registry.get_group(ctx.tenant_id, name)
        if g.attributes != attrs or g.description != props.get("thingGroupDescription"):
            raise AlreadyExists(
                f"Thing group {name} already exists with a different configuration",
                resource_id=g.uid,
            ) from None
    return _group_out(ctx, g)


@handles("iot", "CreateDynamicThingGroup")
async def create_dynamic_thing_group(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    if p.get("indexName", "AWS_Things") != "AWS_Things":
        raise InvalidRequest("only the AWS_Things index exists")
    selector = fleet_query.parse(p["queryString"])
    props = p.get("thingGroupProperties") or {}
    g = await ctx.services.registry.create_group(
        ctx.tenant_id,
        p["thingGroupName"],
        selector=selector,
        query=p["queryString"],
        description=props.get("thingGroupDescription"),
        tags=from_wire(p.get("tags")),
        tagged_as=ctx.arn(f"thinggroup/{p['thingGroupName']}"),
    )
    return {
        **_group_out(ctx, g),
        "indexName": "AWS_Things",
        "queryString": g.query,
        "queryVersion": p.get("queryVersion") or "2017-09-30",
    }


@handles("iot", "DescribeThingGroup")
async def describe_thing_group(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    g = await ctx.services.registry.get_group(ctx.tenant_id, p["thingGroupName"])
    props: dict[str, Any] = {}
    if g.description:
        props["thingGroupDescription"] = g.description
    if g.attributes:
        props["attributePayload"] = {"attributes": g.attributes}
    out = {
        **_group_out(ctx, g),
        "version": g.version,
        "thingGroupProperties": props,
        "thingGroupMetadata": {"creationDate": g.created_at},
    }
    if g.parent_id is not None:
        chain = await ctx.services.registry.group_ancestors(g)
        out["thingGroupMetadata"] = {
            "parentGroupName": chain[-1].name,
            "rootToParentThingGroups": [
                {"groupName": r.name, "groupArn": ctx.arn(f"thinggroup/{r.name}")} for r in chain
            ],
            "creationDate": g.created_at,
        }
    if g.dynamic:
        out.update(
            indexName="AWS_Things", queryString=g.query, queryVersion="2017-09-30", status="ACTIVE"
        )
    return out


async def _delete_group(ctx: AwsContext, name: str) -> None:
    await ctx.services.registry.delete_group(
        ctx.tenant_id, name, tagged_as=ctx.arn(f"thinggroup/{name}")
    )


@handles("iot", "DeleteThingGroup")
async def delete_thing_group(ctx: AwsContext, p: dict[str, Any]) -> None:
    await _delete_group(ctx, p["thingGroupName"])


@handles("iot", "UpdateThingGroup")
async def update_thing_group(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    props = p["thingGroupProperties"]
    payload = props.get("attributePayload")
    g = await ctx.services.registry.update_group(
        ctx.tenant_id,
        p["thingGroupName"],
        description=props.get("thingGroupDescription", KEEP),
        attributes=None if payload is None else payload.get("attributes") or {},
        merge=bool(payload and payload.get("merge")),
        expected_version=p.get("expectedVersion"),
    )
    return {"version": g.version}


@handles("iot", "DeleteDynamicThingGroup")
async def delete_dynamic_thing_group(ctx: AwsContext, p: dict[str, Any]) -> None:
    await _delete_group(ctx, p["thingGroupName"])


def _page(items: list[dict[str, Any]], p: dict[str, Any], key: str) -> dict[str, Any]:
    start = page_token(p, INT64_MAX)  # a position in the list
    limit = p.get("maxResults") or 50
    out: dict[str, Any] = {key: items[start : start + limit]}
    if start + limit < len(items):
        out["nextToken"] = str(start + limit)
    return out


@handles("iot", "ListThingGroups")
async def list_thing_groups(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    """All groups; with parentGroup its children, or every descendant if recursive."""
    rows = await ctx.services.registry.list_groups(
        ctx.tenant_id,
        parent=p.get("parentGroup") or None,
        recursive=bool(p.get("recursive")),
        name_prefix=p.get("namePrefixFilter"),
    )
    groups = [{"groupName": r.name, "groupArn": ctx.arn(f"thinggroup/{r.name}")} for r in rows]
    return _page(groups, p, "thingGroups")


@handles("iot", "ListThingGroupsForThing")
async def list_thing_groups_for_thing(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    d = await thing(ctx, p["thingName"])
    groups = [
        {"groupName": g.name, "groupArn": ctx.arn(f"thinggroup/{g.name}")}
        for g in await ctx.services.registry.groups_of_device(d.id)
    ]
    return _page(groups, p, "thingGroups")


def _name_from(p: dict[str, Any], name_key: str, arn_key: str, kind: str) -> str:
    if p.get(name_key):
        return str(p[name_key])
    arn = p.get(arn_key) or ""
    if f":{kind}/" not in arn:
        raise InvalidRequest(f"give {name_key} or {arn_key}")
    return str(arn.split(f":{kind}/", 1)[1])


@handles("iot", "AddThingToThingGroup")
async def add_thing_to_group(ctx: AwsContext, p: dict[str, Any]) -> None:
    group = _name_from(p, "thingGroupName", "thingGroupArn", "thinggroup")
    d = await thing(ctx, _name_from(p, "thingName", "thingArn", "thing"))
    await ctx.services.registry.add_to_group(ctx.tenant_id, group, [d.id])


@handles("iot", "RemoveThingFromThingGroup")
async def remove_thing_from_group(ctx: AwsContext, p: dict[str, Any]) -> None:
    group = _name_from(p, "thingGroupName", "thingGroupArn", "thinggroup")
    d = await thing(ctx, _name_from(p, "thingName", "thingArn", "thing"))
    await ctx.services.registry.remove_from_group(ctx.tenant_id, group, [d.id])


@handles("iot", "ListThingsInThingGroup")
async def list_things_in_group(ctx: AwsContext, p: dict[str, Any]) -> dict[str, Any]:
    after = page_token(p, INT64_MAX)  # device ids
    limit = p.get("maxResults") or 50
    ids = await ctx.services.registry.group_member_ids(
        ctx.tenant_id,
        p["thingGroupName"],
        recursive=p.get("recursive", False),
        after_id=after,
        limit=limit + 1,
    )
    devices = {d.id: d for d in await ctx.services.registry.get_devices(ids[:limit])}
    out: dict[str, Any] = {"things": [devices[i].name for i in ids[:limit] if i in devices]}
    if len(ids) > limit:
        out["nextToken"] = str(ids[limit - 1])
    return out
