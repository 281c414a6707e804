"""GET / PUT /v1/users/{id}/subscription (API.md § Subscriptions and Stripe)."""

import uuid

from tests.conftest import READ, WRITE
from tests.stripe_helpers import create_user, uid


def body(**overrides):
    values = {
        "stripeCustomerId": uid("cus"),
        "stripeSubscriptionId": uid("sub"),
        "stripePriceId": "price_basic",
        "status": "ACTIVE",
        "currentPeriodEnd": "2030-01-02T03:04:05.678Z",
        "cancelAtPeriodEnd": False,
    }
    values.update(overrides)
    return values


async def test_put_creates_then_updates_and_get_reads_it(client):
    user_id = await create_user(client)
    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    assert r.status == 404
    assert (await r.json())["code"] == "not_found"

    first = body()
    r = await client.put(f"/v1/users/{user_id}/subscription", json=first, headers=WRITE)
    assert r.status == 201, await r.text()
    created = await r.json()
    assert created["userId"] == user_id
    for key, value in first.items():
        assert created[key] == value, key

    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    assert r.status == 200
    assert await r.json() == created

    second = body(status="PAST_DUE", stripePriceId="price_pro", cancelAtPeriodEnd=True,
                  currentPeriodEnd="2031-05-06T07:08:09.000Z")
    r = await client.put(f"/v1/users/{user_id}/subscription", json=second, headers=WRITE)
    assert r.status == 200, await r.text()
    updated = await r.json()
    assert updated["id"] == created["id"]
    for key, value in second.items():
        assert updated[key] == value, key

    # The cached read was invalidated by the write.
    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    assert r.status == 200
    assert (await r.json())["status"] == "PAST_DUE"
    assert (await r.json())["stripePriceId"] == "price_pro"


async def test_put_defaults(client):
    user_id = await create_user(client)
    r = await client.put(f"/v1/users/{user_id}/subscription", json={}, headers=WRITE)
    assert r.status == 201, await r.text()
    sub = await r.json()
    assert sub["status"] == "INACTIVE"
    assert sub["cancelAtPeriodEnd"] is False
    assert sub["stripeCustomerId"] is None and sub["currentPeriodEnd"] is None


async def test_unknown_user_is_404(client):
    missing = "c" + uuid.uuid4().hex[:24]
    r = await client.put(f"/v1/users/{missing}/subscription", json=body(), headers=WRITE)
    assert r.status == 404
    assert (await r.json())["code"] == "not_found"
    r = await client.get(f"/v1/users/{missing}/subscription", headers=READ)
    assert r.status == 404


async def test_stripe_ids_already_used_by_another_user_are_409(client):
    owner, other = await create_user(client), await create_user(client)
    taken = body()
    r = await client.put(f"/v1/users/{owner}/subscription", json=taken, headers=WRITE)
    assert r.status == 201

    r = await client.put(f"/v1/users/{other}/subscription",
                         json=body(stripeCustomerId=taken["stripeCustomerId"]), headers=WRITE)
    assert r.status == 409, await r.text()
    problem = await r.json()
    assert problem["code"] == "conflict"
    assert [e["field"] for e in problem["errors"]] == ["stripeCustomerId"]

    r = await client.put(f"/v1/users/{other}/subscription",
                         json=body(stripeSubscriptionId=taken["stripeSubscriptionId"]), headers=WRITE)
    assert r.status == 409, await r.text()
    assert [e["field"] for e in (await r.json())["errors"]] == ["stripeSubscriptionId"]

    # Nothing was written for the other user; the owner's row is untouched.
    r = await client.get(f"/v1/users/{other}/subscription", headers=READ)
    assert r.status == 404
    r = await client.get(f"/v1/users/{owner}/subscription", headers=READ)
    assert (await r.json())["stripeCustomerId"] == taken["stripeCustomerId"]

    # The owner may PUT its own ids again (an update, not a conflict with itself).
    r = await client.put(f"/v1/users/{owner}/subscription", json=taken, headers=WRITE)
    assert r.status == 200


async def test_bad_status_is_422(client):
    user_id = await create_user(client)
    r = await client.put(f"/v1/users/{user_id}/subscription", json=body(status="active"), headers=WRITE)
    assert r.status == 422
    problem = await r.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["field"] == "status"
    r = await client.put(f"/v1/users/{user_id}/subscription", json=body(status="BOGUS"), headers=WRITE)
    assert r.status == 422
    r = await client.get(f"/v1/users/{user_id}/subscription", headers=READ)
    assert r.status == 404


async def test_other_bad_fields_are_422(client):
    user_id = await create_user(client)
    for bad in ({"cancelAtPeriodEnd": "yes"}, {"currentPeriodEnd": "not a date"},
                {"currentPeriodEnd": "2030-01-02T03:04:05"}, {"unknownField": 1}):
        r = await client.put(f"/v1/users/{user_id}/subscription", json=body(**bad), headers=WRITE)
        assert r.status == 422, (bad, await r.text())
        assert (await r.json())["errors"][0]["field"] == next(iter(bad)), bad


async def test_scopes(client):
    user_id = await create_user(client)
    r = await client.put(f"/v1/users/{user_id}/subscription", json=body(), headers=READ)
    assert r.status == 403
    r = await client.get(f"/v1/users/{user_id}/subscription")
    assert r.status == 401
