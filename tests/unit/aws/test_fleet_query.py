"""Fleet-indexing queries: parsed into selectors and evaluated on the registry."""

from __future__ import annotations

import pytest

from otahub.aws.fleet_query import InvalidQuery, parse
from otahub.core.services import Services
from otahub.domain.selectors import And, Match, Not, Or, Range


def test_parse_terms_and_boolean_structure() -> None:
    assert parse("thingName:sensor-*") == Match("name", "sensor-", prefix=True)
    assert parse("attributes.model:X1 AND NOT thingTypeName:legacy") == And(
        (Match("attr:model", "X1"), Not(Match("type", "legacy")))
    )
    assert parse(
        "(thingGroupNames:lab OR thingGroupNames:field) connectivity.connected:true"
    ) == And((Or((Match("group", "lab"), Match("group", "field"))), Match("connected", "true")))
    assert parse("attributes.rev:[2 TO 5}") == Range("attr:rev", 2, 5, True, False)
    assert parse("attributes.rev>=3") == Range(
        "attr:rev", low=3, include_low=True, include_high=False
    )
    assert parse('attributes.site:"north wing"') == Match("attr:site", "north wing")


@pytest.mark.parametrize(
    "query",
    [
        "",
        "shadow.reported.x:1",
        "thingName:(a",
        "thingName>3",
        "connectivity.connected:maybe",
        "attributes.rev:[a TO 3]",
        "AND thingName:a",
        "thingName:a)",
    ],
)
def test_refused(query: str) -> None:
    with pytest.raises(InvalidQuery):
        parse(query)


async def test_queries_select_the_right_things(services: Services) -> None:
    t = (await services.accounts.tenant("123456789012")).id
    reg = services.registry
    a = await reg.create_device(t, "sensor-1", attributes={"rev": "2", "model": "X1"})
    b = await reg.create_device(
        t, "sensor-2", attributes={"rev": "4", "model": "X2"}, type_name="legacy"
    )
    c = await reg.create_device(t, "gateway-1", attributes={"rev": "7", "model": "X1"})
    await reg.create_group(t, "lab")
    await reg.create_group(t, "bench", parent="lab")
    await reg.add_to_group(t, "bench", [c.id])
    await reg.set_connected(b.id, True)

    async def names(query: str) -> list[str]:
        found = await reg.list_devices(t, selector=parse(query))
        return sorted(d.name for d in found)

    assert await names("thingName:sensor-*") == ["sensor-1", "sensor-2"]
    assert await names("attributes.model:X1 AND NOT thingTypeName:legacy") == [
        "gateway-1",
        "sensor-1",
    ]
    assert await names("attributes.rev:[2 TO 4]") == ["sensor-1", "sensor-2"]
    assert await names("attributes.rev>4") == ["gateway-1"]
    assert await names("thingGroupNames:lab") == ["gateway-1"]  # members of child groups too
    assert await names("connectivity.connected:true") == ["sensor-2"]
    assert a.id and b.id
