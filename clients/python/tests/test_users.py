from datetime import UTC, datetime, timedelta

import pytest
from astrowellness_data_client import (
    BadRequest,
    Conflict,
    NotFound,
    Role,
    SubscriptionStatus,
    User,
    ValidationFailed,
    gte,
    ilike,
    in_,
    is_null,
    not_,
)
from conftest import unique_email

NOW = datetime.now(UTC).replace(microsecond=123000)


async def test_create_answers_a_typed_user_with_its_nested_rows(client):
    email = unique_email("nested")
    user = await client.users.create(
        email=f"  {email.upper()} ", name="Ada", password="correct horse", emailVerified=NOW, role=Role.ADMIN,
        subscription={"status": "ACTIVE", "stripeCustomerId": "cus_1" + email[:8]},
        natalData={"birthDate": datetime(1990, 5, 17, 14, 30, tzinfo=UTC), "location": "Lisbon",
                   "latitude": 38.72, "longitude": -9.14, "timezone": "Europe/Lisbon"})
    assert user.email == email  # trimmed and lower-cased by the service
    assert user.role is Role.ADMIN and user.emailVerified == NOW
    assert user.subscription.status is SubscriptionStatus.ACTIVE
    assert user.natalData.location == "Lisbon" and user.natalData.birthDate.year == 1990
    assert isinstance(user.createdAt, datetime) and user.createdAt.tzinfo is not None

    again = await client.users.get(user.id, include=["subscription", "natalData", "accounts"])
    assert again.subscription == user.subscription and again.natalData == user.natalData
    assert again.accounts == []
    assert await client.users.get_fields(user.id, ["id", "email"]) == {"id": user.id, "email": email}


async def test_missing_user_is_a_not_found_problem_with_code_and_request_id(client):
    with pytest.raises(NotFound) as caught:
        await client.users.get("no-such-user")
    assert caught.value.status == 404 and caught.value.code == "not_found"
    assert caught.value.request_id and caught.value.requestId == caught.value.request_id


async def test_taken_email_is_a_conflict_naming_the_field(client):
    email = unique_email()
    await client.users.create(email=email)
    with pytest.raises(Conflict) as caught:
        await client.users.create(email=email.upper())
    assert caught.value.status == 409 and "email" in caught.value.fields


async def test_invalid_fields_are_a_validation_problem_naming_them(client):
    with pytest.raises(ValidationFailed) as caught:
        await client.users.create(email="not-an-email", role="OWNER")
    assert caught.value.status == 422 and caught.value.code == "validation_error"
    assert "email" in caught.value.fields


async def test_lookups_by_email_and_account(client):
    user = await client.users.create(email=unique_email("look+up/with%2Fslash"))
    assert await client.users.get_by_email(user.email.upper()) == User(**{
        f: getattr(user, f) for f in User.__struct_fields__})
    account = await client.accounts.link(userId=user.id, type="oauth", provider="github",
                                         providerAccountId=f"gh-{user.id}")
    assert (await client.users.get_by_account("github", account.providerAccountId)).id == user.id
    with pytest.raises(NotFound):
        await client.users.get_by_account("github", "nobody/with a slash")


async def test_update_password_and_delete(client):
    user = await client.users.create(email=unique_email("life"), name="Before")
    updated = await client.users.update(user.id, name="After", image=None, emailVerified=NOW)
    assert (updated.name, updated.image, updated.emailVerified, updated.email) == ("After", None, NOW, user.email)

    assert await client.users.verify_password(user.id, "s3cret") is False  # no password yet
    await client.users.set_password(user.id, "s3cret")
    assert await client.users.verify_password(user.id, "s3cret") is True
    assert await client.users.verify_password(user.id, "wrong") is False

    await client.sessions.create(sessionToken=f"tok-{user.id}-1", userId=user.id, expires=NOW + timedelta(days=1))
    await client.sessions.create(sessionToken=f"tok-{user.id}-2", userId=user.id, expires=NOW + timedelta(days=1))
    assert await client.users.delete_sessions(user.id) == 2
    await client.users.delete(user.id)
    with pytest.raises(NotFound):
        await client.users.get(user.id)
    with pytest.raises(NotFound):
        await client.users.delete(user.id)


async def test_list_filters_sorts_and_selects(client, marker):
    emails = [f"list-{marker}-{i:02d}@example.com" for i in range(5)]
    assert await client.users.create_many([{"email": e, "name": None if i % 2 else f"n{i}"}
                                           for i, e in enumerate(emails)]) == 5
    page = await client.users.list(filter={"email": ilike(f"list-{marker}-*")}, sort="email", limit=2)
    assert [u.email for u in page.data] == emails[:2]
    assert (page.pagination.total, page.pagination.totalPages, page.pagination.hasNext) == (5, 3, True)
    assert isinstance(page.data[0], User)

    named = await client.users.list(filter={"email": ilike(f"list-{marker}-*"), "name": not_(is_null())},
                                    sort=["-email"], select=["email", "name"])
    assert named.data == [{"email": emails[i], "name": f"n{i}"} for i in (4, 2, 0)]

    some = await client.users.list(filter={"email": in_(emails[1:3]), "createdAt": gte(NOW - timedelta(days=1))})
    assert sorted(u.email for u in some.data) == emails[1:3]

    with pytest.raises(BadRequest) as caught:
        await client.users.list(filter={"password": "x"})
    assert "password" in caught.value.fields or "password" in caught.value.detail


async def test_iter_walks_every_page_once(client, marker):
    emails = {f"iter-{marker}-{i:03d}@example.com" for i in range(250)}
    assert await client.users.create_many([{"email": e} for e in emails]) == 250
    seen = [u.email async for u in client.users.iter(filter={"email": ilike(f"iter-{marker}-*")}, page_size=40)]
    assert len(seen) == 250 and set(seen) == emails
    by_email = [u.email async for u in client.users.iter(filter={"email": ilike(f"iter-{marker}-*")},
                                                           sort="email", page_size=100)]
    assert by_email == sorted(emails)
