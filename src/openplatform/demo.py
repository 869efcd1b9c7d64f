"""The demo app and user that ``openplatform serve --demo`` (README command 1)
creates on first run and prints on every run, with calls to copy and paste."""

from __future__ import annotations

import html
import json
import os
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from openplatform.config import Settings
from openplatform.oauth.rfc7636 import s256_challenge
from openplatform.storage.apps import AppSettings
from openplatform.storage.database import open_database

__all__ = ["DemoCredentials", "demo_callback", "ensure_demo"]

FILE_NAME = "demo.json"
DEMO_USERNAME = "demo"


@dataclass(frozen=True)
class DemoCredentials:
    app_id: int
    api_key: str
    secret: str
    uid: int
    username: str
    password: str
    access_token: str
    code_verifier: str


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, s256_challenge(verifier)


async def ensure_demo(settings: Settings, issuer: str) -> str:
    """Create the demo app and user once (remembered in ``data/demo.json``,
    readable by the owner only) and return the text to print."""
    issuer = issuer.rstrip("/")
    path = settings.data_dir / FILE_NAME
    database = open_database(settings)
    try:
        saved: dict[str, object] = {}
        if path.exists():
            saved = json.loads(path.read_text())
        user = await database.users.get_by_username(DEMO_USERNAME)
        password = str(saved.get("password", ""))
        if user is None:
            password = secrets.token_urlsafe(12)
            user = await database.users.create(
                username=DEMO_USERNAME,
                password=password,
                email="demo@example.com",
                mobile="+8613800000000",
                display_name="Demo User",
            )
        app = None
        if isinstance(saved.get("app_id"), int):
            app = await database.apps.get(int(saved["app_id"]))  # type: ignore[call-overload]
        if app is None or app.status == "deleted":
            app = await database.apps.create(
                AppSettings.from_mapping(
                    {
                        "name": "Demo app",
                        "description": "Created by openplatform serve --demo",
                        "redirect_uris": [f"{issuer}/demo/callback"],
                        "scopes": ["basic", "email", "mobile", "data"],
                    }
                ),
                owner_id=user.uid,
            )
        grant_id = await database.tokens.create_grant(app.id, user.uid, "basic email", "demo")
        issued = await database.tokens.issue(
            grant_id, app.id, user.uid, "basic email", 3600, None, with_session=False
        )
        verifier, challenge = _pkce_pair()
        record = {"app_id": app.id, "uid": user.uid, "password": password}
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
    finally:
        await database.close()
    credentials = DemoCredentials(
        app.id,
        app.api_key,
        app.secret,
        user.uid,
        user.username,
        password,
        issued.access_token,
        verifier,
    )
    return describe(credentials, issuer, challenge)


def describe(c: DemoCredentials, issuer: str, challenge: str) -> str:
    redirect_uri = f"{issuer}/demo/callback"
    authorize = f"{issuer}/oauth/2.0/authorize?" + urlencode(
        {
            "response_type": "code",
            "client_id": c.api_key,
            "redirect_uri": redirect_uri,
            "scope": "basic email",
            "state": "demo",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"""\
Demo app   app_id {c.app_id}
           api_key (client_id)  {c.api_key}
           secret               {c.secret}
Demo user  {c.username} / {c.password}   (uid {c.uid})   developer of the demo app

Open in a browser:
  {issuer}/            the front door
  {issuer}/console     developer console (sign in as the demo user, or sign up)
  {issuer}/account     the apps a user allowed, and revoking them

Try it:
  curl {issuer}/healthz
  curl '{issuer}/rest/2.0/users.getLoggedInUser?access_token={c.access_token}'
  curl -u '{c.api_key}:{c.secret}' -d grant_type=client_credentials {issuer}/oauth/2.0/token

Sign in as the user and approve the app in a browser:
  {authorize}
then exchange the code shown on the callback page:
  curl -u '{c.api_key}:{c.secret}' -d grant_type=authorization_code \\
       -d redirect_uri={redirect_uri} -d code_verifier={c.code_verifier} -d code=CODE \\
       {issuer}/oauth/2.0/token
"""


async def demo_callback(request: Request) -> Response:
    """Where the demo app's authorization ends: shows the code (or the error)
    and the ``curl`` call that exchanges it."""
    params = request.query_params
    rows = "".join(
        f"<tr><th>{html.escape(key)}</th><td><code>{html.escape(value)}</code></td></tr>"
        for key, value in params.multi_items()
    )
    code = params.get("code")
    issuer: str = request.app.state.services.issuer.rstrip("/")
    hint = ""
    if code:
        hint = (
            "<p>Exchange the code (within 10 minutes, once) with the command that "
            "<code>scripts/serve</code> printed, replacing <code>CODE</code> by:</p>"
            f"<pre>{html.escape(code)}</pre>"
            f"<pre>curl -u 'API_KEY:SECRET' -d grant_type=authorization_code "
            f"-d redirect_uri={html.escape(issuer)}/demo/callback "
            f"-d code_verifier=VERIFIER -d code={html.escape(code)} "
            f"{html.escape(issuer)}/oauth/2.0/token</pre>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<title>openplatform demo callback</title><link rel='icon' href='data:,'>"
        "<style>body{font:16px system-ui,sans-serif;max-width:46rem;margin:2rem auto;"
        "padding:0 1rem}pre{white-space:pre-wrap;word-break:break-all;background:#f4f4f4;"
        "padding:.75rem}th{text-align:left;padding-right:1rem;vertical-align:top}"
        "td code{word-break:break-all}</style></head><body>"
        f"<h1>Demo app callback</h1><table>{rows}</table>{hint}</body></html>"
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})
