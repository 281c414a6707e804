"""Accounts, sessions, verification tokens and authenticators: what Auth.js and internal services use."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from astrowellness_data_client import (
    Account,
    Authenticator,
    Conflict,
    NotFound,
    Session,
    ValidationFailed,
    eq,
)
from conftest import unique_email

LATER = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)


@pytest.fixture
async def user(client):
    return await client.users.create(email=unique_email("identity"))


async def test_accounts_link_rotate_list_and_unlink(client, user):
    linked = await client.accounts.link(userId=user.id, type="oauth", provider="google", providerAccountId="g-1" + user.id,
                                        access_token="at-1", refresh_token="rt-1", expires_at=1_900_000_000,
                                        token_type="bearer", scope="openid email")
    assert isinstance(linked, Account) and linked.access_token == "at-1" and linked.session_state is None
    assert await client.accounts.get("google", linked.providerAccountId) == linked

    rotated = await client.accounts.update_tokens("google", linked.providerAccountId, access_token="at-2",
                                                  refresh_token="rt-2", expires_at=1_900_003_600)
    assert (rotated.access_token, rotated.refresh_token, rotated.expires_at) == ("at-2", "rt-2", 1_900_003_600)
    assert rotated.scope == "openid email"  # fields not given are kept
    cleared = await client.accounts.update_tokens("google", linked.providerAccountId, refresh_token=None)
    assert cleared.refresh_token is None and cleared.access_token == "at-2"
    with pytest.raises(NotFound):
        await client.accounts.update_tokens("google", "not-linked", access_token="x")

    await client.accounts.link(userId=user.id, type="oauth", provider="github", providerAccountId="h-1" + user.id)
    page = await client.accounts.list_for_user(user.id, sort="provider")
    assert [a.provider for a in page.data] == ["github", "google"]
    assert [a.provider async for a in client.accounts.iter_for_user(user.id, filter={"provider": eq("github")})] \
        == ["github"]

    with pytest.raises(Conflict):
        await client.accounts.link(userId=user.id, type="oauth", provider="google",
                                   providerAccountId=linked.providerAccountId)
    await client.accounts.unlink("google", linked.providerAccountId)
    with pytest.raises(NotFound):
        await client.accounts.get("google", linked.providerAccountId)
    with pytest.raises(NotFound):
        await client.accounts.list_for_user("no-such-user")


async def test_sessions_create_lookup_update_delete(client, user):
    token = uuid.uuid4().hex
    session = await client.sessions.create(sessionToken=token, userId=user.id, expires=LATER)
    assert isinstance(session, Session) and session.expires == LATER
    found = await client.sessions.lookup(token)
    assert found.session == session and found.user.id == user.id and found.user.email == user.email

    moved = await client.sessions.update(token, LATER + timedelta(days=30))
    assert moved.expires == LATER + timedelta(days=30)
    assert (await client.sessions.delete(token)).id == session.id
    for call in (client.sessions.lookup(token), client.sessions.delete(token),
                 client.sessions.update(token, LATER), client.sessions.lookup("x" * 5000)):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(ValidationFailed):
        await client.sessions.create(sessionToken=uuid.uuid4().hex, userId="no-such-user", expires=LATER)


async def test_verification_tokens_are_used_once(client):
    identifier = unique_email("magic")
    token = uuid.uuid4().hex
    created = await client.verification_tokens.create(identifier=identifier, token=token, expires=LATER)
    assert (created.identifier, created.token, created.expires) == (identifier, token, LATER)
    with pytest.raises(NotFound):
        await client.verification_tokens.use(token, identifier=unique_email("other"))
    used = await asyncio.gather(*(client.verification_tokens.use(token, identifier=identifier) for _ in range(6)),
                                return_exceptions=True)
    assert [u for u in used if not isinstance(u, NotFound)] == [created]

    alone = uuid.uuid4().hex
    await client.verification_tokens.create(identifier=identifier, token=alone, expires=LATER)
    assert (await client.verification_tokens.use(alone)).identifier == identifier
    with pytest.raises(NotFound):
        await client.verification_tokens.use("t" * 5000)


async def test_authenticators(client, user):
    made = []
    for i in range(3):
        credential = f"cred-{uuid.uuid4().hex}"
        made.append(await client.authenticators.create(
            credentialID=credential, userId=user.id, providerAccountId=credential, credentialPublicKey=f"pk{i}",
            counter=i, credentialDeviceType="singleDevice", credentialBackedUp=False,
            transports="usb" if i else None))
    assert isinstance(made[0], Authenticator) and made[0].transports is None
    assert await client.authenticators.get(made[1].credentialID) == made[1]
    bumped = await client.authenticators.update_counter(made[1].credentialID, 99)
    assert bumped.counter == 99 and bumped.credentialPublicKey == "pk1"

    listed = await client.authenticators.list_for_user(user.id, sort="credentialID")
    assert [a.credentialID for a in listed.data] == sorted(a.credentialID for a in made)
    assert {a.credentialID async for a in client.authenticators.iter_for_user(user.id, page_size=2)} \
        == {a.credentialID for a in made}

    with pytest.raises(Conflict):
        await client.authenticators.create(**{f: getattr(made[0], f) for f in Authenticator.__struct_fields__})
    for call in (client.authenticators.get("nope"), client.authenticators.update_counter("nope", 1)):
        with pytest.raises(NotFound):
            await call

    await client.users.delete(user.id)
    with pytest.raises(NotFound):
        await client.authenticators.get(made[0].credentialID)
