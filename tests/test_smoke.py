from tests.conftest import READ, WRITE, unique_email


async def test_create_and_read_a_user(client):
    email = unique_email()
    r = await client.post("/v1/users", json={"email": "  " + email.upper() + " ", "name": "Ada", "password": "pw"},
                          headers=WRITE)
    assert r.status == 201, await r.text()
    user = await r.json()
    assert user["email"] == email
    assert "password" not in user
    assert user["createdAt"].endswith("Z") and len(user["createdAt"]) == 24
    r = await client.get(f"/v1/users/{user['id']}", headers=READ)
    assert r.status == 200
    assert await r.json() == user
