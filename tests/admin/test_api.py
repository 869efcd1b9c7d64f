"""Admin API (PROTOCOL §5), over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from openplatform.app import create_app
from openplatform.cache.memory import MemorySharedState
from openplatform.config import Settings
from openplatform.gateway.maintenance import current_maintenance
from openplatform.services import Services
from openplatform.storage.database import Database


@pytest.fixture
async def services(database: Database, tmp_path: Path) -> Services:
    settings = Settings.from_env({"OPENPLATFORM_DATA_DIR": str(tmp_path)})
    return Services(settings, database, MemorySharedState(prefix="t"), "http://testserver")


@pytest.fixture
async def admin(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    token = await services.database.admin_tokens.create("tests")
    transport = httpx.ASGITransport(app=create_app(services.settings, services))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body: dict[str, object] = response.json()
    assert body["error_code"] == code
    assert response.headers["X-Error-Code"] == str(code)
    return body


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic YTpi", "Bearer "])
async def test_admin_token_required(admin: httpx.AsyncClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    client = httpx.AsyncClient(transport=admin._transport, base_url="http://testserver")
    async with client:
        response = await client.post("/admin/api/apps", json={"name": "x"}, headers=headers)
    assert_error(response, 401, 110)


async def test_app_lifecycle(admin: httpx.AsyncClient, services: Services) -> None:
    made = await admin.post(
        "/admin/api/apps",
        json={"name": "Shop", "redirect_uris": ["https://shop.example/cb"], "scopes": ["basic"]},
    )
    assert made.status_code == 201
    app = made.json()
    assert app["secret"]
    assert app["api_key"].startswith("ak_")
    assert app["require_pkce"] is True
    assert app["grants"] == ["authorization_code", "refresh_token", "client_credentials"]

    shown = await admin.get(f"/admin/api/apps/{app['app_id']}")
    assert shown.status_code == 200
    assert "secret" not in shown.json()
    assert shown.json()["name"] == "Shop"

    patched = await admin.patch(
        f"/admin/api/apps/{app['app_id']}",
        json={"ip_allowlist": ["10.0.0.0/8", "2001:db8::1"], "legacy_http_200": True},
    )
    assert patched.status_code == 200
    assert patched.json()["ip_allowlist"] == ["10.0.0.0/8", "2001:db8::1"]
    assert patched.json()["legacy_http_200"] is True
    assert patched.json()["name"] == "Shop"

    rotated = await admin.post(f"/admin/api/apps/{app['app_id']}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret != app["secret"]
    stored = await services.database.apps.get(app["app_id"])
    assert stored is not None
    assert stored.secret == new_secret

    deleted = await admin.delete(f"/admin/api/apps/{app['app_id']}")
    assert deleted.status_code == 204
    assert_error(await admin.get(f"/admin/api/apps/{app['app_id']}"), 404, 900)
    assert_error(await admin.delete(f"/admin/api/apps/{app['app_id']}"), 404, 900)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "ip_allowlist": ["10.0.0.300"]}, 114),
        ({"name": "x", "ip_allowlist": ["not-an-ip"]}, 114),
        ({"name": "x", "scopes": ["root"]}, 100),
        ({"name": "x", "redirect_uris": ["javascript:alert(1)"]}, 100),
        ({"name": "x", "rate_limits": [{"methods": "*", "per": "planet", "limit": 1}]}, 100),
        ({"name": "x", "colour": "blue"}, 100),
        ({"redirect_uris": []}, 100),
        ([1, 2], 100),
    ],
)
async def test_invalid_settings_rejected(admin: httpx.AsyncClient, body: object, code: int) -> None:
    assert_error(await admin.post("/admin/api/apps", json=body), 400, code)


async def test_invalid_patch_rejected(admin: httpx.AsyncClient) -> None:
    app = (await admin.post("/admin/api/apps", json={"name": "x"})).json()
    response = await admin.patch(
        f"/admin/api/apps/{app['app_id']}", json={"ip_allowlist": ["1.2.3.4/99"]}
    )
    assert_error(response, 400, 114)
    response = await admin.patch(f"/admin/api/apps/{app['app_id']}", content=b"{not json")
    assert_error(response, 400, 100)


@pytest.mark.parametrize(
    ("field", "shortest", "longest"),
    [("access_token_ttl_s", 1, 30 * 86400), ("refresh_token_ttl_s", 1, 366 * 86400)],
)
async def test_token_lifetimes_from_one_second(
    admin: httpx.AsyncClient, field: str, shortest: int, longest: int
) -> None:
    """PROTOCOL §5: developers test their refresh logic with second-long tokens."""
    app = (await admin.post("/admin/api/apps", json={"name": "x"})).json()
    url = f"/admin/api/apps/{app['app_id']}"
    for value in (shortest, 5, longest):
        response = await admin.patch(url, json={field: value})
        assert response.status_code == 200, response.text
        assert response.json()[field] == value
    for value in (shortest - 1, longest + 1):
        body = assert_error(await admin.patch(url, json={field: value}), 400, 100)
        detail = str(body["error_detail"])
        assert field in detail and f"between {shortest} and {longest}" in detail


@pytest.mark.parametrize("app_id", ["999999", "abc", "-1", "1" * 40])
async def test_unknown_app_is_900(admin: httpx.AsyncClient, app_id: str) -> None:
    assert_error(await admin.get(f"/admin/api/apps/{app_id}"), 404, 900)


async def test_users(admin: httpx.AsyncClient, services: Services) -> None:
    made = await admin.post(
        "/admin/api/users",
        json={
            "username": "carol",
            "password": "long-enough-pw",
            "email": "carol@example.com",
            "profile_visibility": "private",
        },
    )
    assert made.status_code == 201
    user = made.json()
    assert user["profile_visibility"] == "private"
    assert_error(
        await admin.post("/admin/api/users", json={"username": "carol", "password": "another-pw"}),
        409,
        804,
    )
    patched = await admin.patch(f"/admin/api/users/{user['uid']}", json={"disabled": True})
    assert patched.status_code == 200
    assert patched.json()["disabled"] is True
    assert await services.database.users.authenticate("carol", "long-enough-pw") is None
    assert_error(
        await admin.patch(f"/admin/api/users/{user['uid']}", json={"disabled": "yes"}), 400, 100
    )
    assert_error(await admin.patch("/admin/api/users/987654", json={"disabled": True}), 400, 108)


async def test_maintenance_switch(admin: httpx.AsyncClient, services: Services) -> None:
    response = await admin.put(
        "/admin/api/maintenance", json={"enabled": True, "methods": ["users.getInfo"]}
    )
    assert response.status_code == 200
    assert response.json() == {"enabled": True, "methods": ["users.getInfo"]}
    state = current_maintenance(services)
    assert state.blocks("users.getInfo")
    assert not state.blocks("users.isAppUser")
    await admin.put("/admin/api/maintenance", json={"enabled": False, "methods": []})
    assert not current_maintenance(services).blocks("users.getInfo")
    assert_error(await admin.put("/admin/api/maintenance", json={"enabled": "on"}), 400, 100)


async def test_listing_apps_and_users_by_pages(admin: httpx.AsyncClient) -> None:
    made = [
        (await admin.post("/admin/api/apps", json={"name": f"app {i}"})).json() for i in range(5)
    ]
    deleted = made.pop(2)
    await admin.delete(f"/admin/api/apps/{deleted['app_id']}")
    seen: list[int] = []
    after = 0
    while True:
        page = await admin.get("/admin/api/apps", params={"limit": 2, "after": after})
        assert page.status_code == 200, page.text
        body = page.json()
        assert all("secret" not in app for app in body["items"])
        seen.extend(app["app_id"] for app in body["items"])
        if body["next_after"] is None:
            break
        after = body["next_after"]
    assert seen == [app["app_id"] for app in made]
    for uid in range(3):
        await admin.post("/admin/api/users", json={"username": f"u{uid}", "password": "pw-123456"})
    users = (await admin.get("/admin/api/users", params={"limit": 200})).json()
    assert [u["username"] for u in users["items"]] == ["u0", "u1", "u2"]
    assert users["next_after"] is None
    one = await admin.get(f"/admin/api/users/{users['items'][1]['uid']}")
    assert one.json()["username"] == "u1"
    assert_error(await admin.get("/admin/api/users/987654"), 400, 108)
    for params in ({"limit": 0}, {"limit": 201}, {"after": "x"}, {"colour": "red"}):
        body = assert_error(await admin.get("/admin/api/apps", params=params), 400, 100)
        assert next(iter(params)) in str(body["error_detail"])


async def test_errors_name_the_field(admin: httpx.AsyncClient) -> None:
    body = assert_error(
        await admin.post(
            "/admin/api/apps", json={"name": "x", "ip_allowlist": ["1.2.3.4", "nope"]}
        ),
        400,
        114,
    )
    assert str(body["error_detail"]).startswith("ip_allowlist[1]")
    body = assert_error(
        await admin.post("/admin/api/users", json={"username": "a b", "password": "x"}), 400, 100
    )
    assert str(body["error_detail"]).startswith("username")
    zh = await admin.post("/admin/api/apps", params={"lang": "zh"}, json={"name": ""})
    assert zh.json()["error_msg"] == "请求参数无效"
    assert (await admin.get("/admin/api/maintenance")).json() == {"enabled": False, "methods": []}
