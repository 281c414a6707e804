"""Identity rules a security reviewer expects: e-mails unique whatever their case (migration 0020 and
find-email-duplicates), a new e-mail is unverified, a new password ends other sessions, a deleted
user's charts go with them."""

import asyncio
import os
import subprocess
import sys

import asyncpg
import pytest

from service import email_duplicates, migrate
from tests.conftest import WRITE, unique_email
from tests.test_deploy import ROOT
from tests.test_identity import new_user

FUTURE = "2099-01-01T00:00:00.000Z"


async def test_migrate_refuses_case_variants_with_a_report_then_the_database_enforces_it(empty_database):
    migrate.apply(empty_database)
    since_0020 = [m for m in migrate.status(empty_database) if m.applied and m.id >= "0020"]
    migrate.rollback(empty_database, count=len(since_0020))  # back to before 0020
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("""INSERT INTO users (id, email, "createdAt") VALUES
            ('u1', 'Ada@Example.com', '2020-01-01'), ('u2', 'ada@example.com', '2021-01-01'),
            ('u3', 'bob@example.com', '2021-01-01'), ('u4', 'BOB@example.com', '2020-01-01'),
            ('u5', 'carol@example.com', '2020-01-01')""")
        with pytest.raises(Exception) as refused:
            migrate.apply(empty_database)
        report = str(refused.value)
        assert "differ only in case" in report
        assert "ada@example.com: u1 <Ada@Example.com>, u2 <ada@example.com>" in report
        assert "bob@example.com: u4 <BOB@example.com>, u3 <bob@example.com>" in report
        assert "carol" not in report
        assert not await conn.fetchval("SELECT to_regclass('users_email_lower_key') IS NOT NULL")
        cli = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "service", "migrate"], check=False, capture_output=True,
            text=True, cwd=ROOT, env={**os.environ, "DATABASE_URL": empty_database}, timeout=120)
        assert cli.returncode == 1 and "Traceback" not in cli.stderr, cli.stderr
        assert "ada@example.com: u1 <Ada@Example.com>, u2 <ada@example.com>" in cli.stderr

        groups = await email_duplicates.find_email_duplicates(conn)
        assert {k: [u["id"] for u in v] for k, v in groups.items()} == {
            "ada@example.com": ["u1", "u2"], "bob@example.com": ["u4", "u3"]}
        assert await asyncio.to_thread(email_duplicates.run, empty_database) == 1

        await conn.execute("DELETE FROM users WHERE id IN ('u2', 'u3')")  # the operator merged them
        assert await asyncio.to_thread(email_duplicates.run, empty_database) == 0
        migrate.apply(empty_database)
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO users (id, email) VALUES ('u6', 'CAROL@example.com')")
    finally:
        await conn.close()


async def test_changing_the_email_clears_email_verified_unless_the_patch_sets_it(client):
    user = await new_user(client, emailVerified="2026-01-02T03:04:05.678Z")
    path = f"/v1/users/{user['id']}"
    r = await client.patch(path, headers=WRITE, json={"name": "same address"})
    assert (await r.json())["emailVerified"] == "2026-01-02T03:04:05.678Z"
    r = await client.patch(path, headers=WRITE, json={"email": user["email"].upper()})  # same address
    assert (await r.json())["emailVerified"] == "2026-01-02T03:04:05.678Z"
    r = await client.patch(path, headers=WRITE, json={"email": unique_email()})
    assert r.status == 200 and (await r.json())["emailVerified"] is None
    r = await client.patch(path, headers=WRITE, json={"email": unique_email(), "emailVerified": FUTURE})
    assert (await r.json())["emailVerified"] == FUTURE
    r = await client.get(path, headers=WRITE)  # and the cached copy agrees
    assert (await r.json())["emailVerified"] == FUTURE


async def sessions_of(client, user_id, count):
    tokens = [f"tok-{user_id}-{i}" for i in range(count)]
    for token in tokens:
        r = await client.post("/v1/sessions", headers=WRITE,
                              json={"sessionToken": token, "userId": user_id, "expires": FUTURE})
        assert r.status == 201
        assert (await client.post("/v1/sessions/lookup", headers=WRITE, json={"sessionToken": token})).status == 200
    return tokens


async def lookup_statuses(client, tokens):
    return [(await client.post("/v1/sessions/lookup", headers=WRITE, json={"sessionToken": t})).status
            for t in tokens]


async def test_a_password_change_ends_the_other_sessions_unless_asked_to_keep_them(client):
    user = await new_user(client)
    tokens = await sessions_of(client, user["id"], 3)
    path = f"/v1/users/{user['id']}/password"
    r = await client.put(path, headers=WRITE, json={"password": "new-1", "keepSessions": True})
    assert r.status == 204 and await lookup_statuses(client, tokens) == [200, 200, 200]
    r = await client.put(path, headers=WRITE, json={"password": "new-2", "currentSessionToken": tokens[1]})
    assert r.status == 204
    assert await lookup_statuses(client, tokens) == [404, 200, 404]  # the cached lookups went too
    r = await client.put(path, headers=WRITE, json={"password": "new-3"})
    assert await lookup_statuses(client, tokens) == [404, 404, 404]
    r = await client.post(f"/v1/users/{user['id']}/verify-password", headers=WRITE, json={"password": "new-3"})
    assert await r.json() == {"valid": True}


async def test_deleting_a_user_deletes_their_charts(client, deps):
    user = await new_user(client)
    r = await client.post("/v1/charts", headers=WRITE, json={
        "userId": user["id"], "chartType": "TROPICAL", "chartData": {"sun": "leo"}, "ttlSeconds": 3600})
    chart = await r.json()
    assert (await client.get(f"/v1/charts/{chart['id']}", headers=WRITE)).status == 200  # now cached
    assert (await client.delete(f"/v1/users/{user['id']}", headers=WRITE)).status == 204
    assert await deps.db.fetchval('SELECT count(*) FROM chart_cache WHERE "userId" = $1', user["id"]) == 0
    assert (await client.get(f"/v1/charts/{chart['id']}", headers=WRITE)).status == 404
