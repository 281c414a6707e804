"""GET / PUT / DELETE /v1/users/{id}/natal-data with validation at every bound (API.md § Natal data)."""

import uuid

import pytest

from tests.conftest import READ, WRITE
from tests.stripe_helpers import create_user

GOOD = {
    "birthDate": "1990-07-14T06:30:00.000Z",
    "location": "Paris, France",
    "latitude": 48.8566,
    "longitude": 2.3522,
    "timezone": "Europe/Paris",
}


def url(user_id):
    return f"/v1/users/{user_id}/natal-data"


async def put(client, user_id, **overrides):
    return await client.put(url(user_id), json={**GOOD, **overrides}, headers=WRITE)


async def test_put_get_update_delete(client):
    user_id = await create_user(client)
    r = await client.get(url(user_id), headers=READ)
    assert r.status == 404

    r = await put(client, user_id)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["userId"] == user_id
    for key, value in GOOD.items():
        assert created[key] == value, key

    r = await client.get(url(user_id), headers=READ)
    assert r.status == 200
    assert await r.json() == created

    r = await put(client, user_id, birthDate="1985-01-02T03:04:05+02:00", location="  Lyon  ", latitude=45.764,
                  longitude=4.8357, timezone="America/New_York")
    assert r.status == 200, await r.text()
    updated = await r.json()
    assert updated["id"] == created["id"]
    assert updated["birthDate"] == "1985-01-02T01:04:05.000Z"  # stored as UTC
    assert updated["location"] == "Lyon"
    assert (updated["latitude"], updated["longitude"], updated["timezone"]) == (45.764, 4.8357, "America/New_York")

    r = await client.get(url(user_id), headers=READ)  # the cached read was invalidated
    assert await r.json() == updated

    r = await client.delete(url(user_id), headers=WRITE)
    assert r.status == 204
    r = await client.get(url(user_id), headers=READ)
    assert r.status == 404
    r = await client.delete(url(user_id), headers=WRITE)
    assert r.status == 404


async def test_optional_fields_may_be_left_out(client):
    user_id = await create_user(client)
    r = await client.put(url(user_id), json={"birthDate": GOOD["birthDate"], "location": "Somewhere"}, headers=WRITE)
    assert r.status == 201, await r.text()
    got = await r.json()
    assert (got["latitude"], got["longitude"], got["timezone"]) == (None, None, None)


async def test_unknown_user_is_404(client):
    missing = "c" + uuid.uuid4().hex[:24]
    r = await client.put(url(missing), json=GOOD, headers=WRITE)
    assert r.status == 404
    assert (await r.json())["code"] == "not_found"
    r = await client.get(url(missing), headers=READ)
    assert r.status == 404
    r = await client.delete(url(missing), headers=WRITE)
    assert r.status == 404


@pytest.mark.parametrize("field,value", [
    ("latitude", -90), ("latitude", 90), ("latitude", -90.0), ("latitude", 0),
    ("longitude", -180), ("longitude", 180), ("longitude", 179.9999),
    ("timezone", "Europe/Paris"), ("timezone", "UTC"), ("timezone", "America/Argentina/Buenos_Aires"),
    ("location", "x"),
])
async def test_values_at_the_bounds_are_accepted(client, field, value):
    user_id = await create_user(client)
    r = await put(client, user_id, **{field: value})
    assert r.status == 201, await r.text()
    assert (await r.json())[field] == value


@pytest.mark.parametrize("field,value", [
    ("latitude", -90.0001), ("latitude", 90.0001), ("latitude", 1e308 * 10),
    ("longitude", -180.0001), ("longitude", 180.0001),
    ("timezone", "Mars/Olympus"), ("timezone", ""), ("timezone", "europe/paris"),
    ("location", ""), ("location", "   "),
    ("birthDate", "not a date"), ("birthDate", "1990-07-14T06:30:00"),
    ("latitude", "48.8"),
])
async def test_each_violation_is_422_naming_the_field(client, field, value):
    user_id = await create_user(client)
    body = {**GOOD, field: value}
    if value == 1e308 * 10:  # JSON has no infinity; send the overflowing literal
        raw = '{"birthDate": "%s", "location": "x", "latitude": 1e999}' % GOOD["birthDate"]
        r = await client.put(url(user_id), data=raw, headers={**WRITE, "Content-Type": "application/json"})
    else:
        r = await client.put(url(user_id), json=body, headers=WRITE)
    assert r.status == 422, await r.text()
    problem = await r.json()
    assert problem["code"] == "validation_error"
    assert [e["field"] for e in problem["errors"]] == [field]
    r = await client.get(url(user_id), headers=READ)
    assert r.status == 404  # nothing stored


async def test_required_fields(client):
    user_id = await create_user(client)
    for missing in ("birthDate", "location"):
        body = {k: v for k, v in GOOD.items() if k != missing}
        r = await client.put(url(user_id), json=body, headers=WRITE)
        assert r.status == 422
        assert [e["field"] for e in (await r.json())["errors"]] == [missing]


async def test_several_violations_are_listed_together(client):
    user_id = await create_user(client)
    r = await put(client, user_id, location="  ", latitude=91, longitude=-181, timezone="Mars/Olympus")
    assert r.status == 422
    problem = await r.json()
    assert sorted(e["field"] for e in problem["errors"]) == ["latitude", "location", "longitude", "timezone"]
    for name in ("latitude", "location", "longitude", "timezone"):
        assert name in problem["detail"]


async def test_an_invalid_update_keeps_the_old_data(client):
    user_id = await create_user(client)
    r = await put(client, user_id)
    assert r.status == 201
    before = await r.json()
    r = await put(client, user_id, latitude=95)
    assert r.status == 422
    r = await client.get(url(user_id), headers=READ)
    assert await r.json() == before


async def test_scopes(client):
    user_id = await create_user(client)
    r = await client.put(url(user_id), json=GOOD, headers=READ)
    assert r.status == 403
    r = await client.delete(url(user_id), headers=READ)
    assert r.status == 403
    r = await client.get(url(user_id))
    assert r.status == 401
