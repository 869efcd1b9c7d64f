"""The command line (PROTOCOL §6), run as a user runs it: a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openplatform.config import Settings
from openplatform.storage.database import open_database

CLI = [sys.executable, "-m", "openplatform"]


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENPLATFORM_")}
    env["OPENPLATFORM_DATA_DIR"] = str(tmp_path / "data")
    env["OPENPLATFORM_SECRET_KEY"] = "test-secret-key-for-the-cli"
    return env


async def test_apps_and_users_create_json(cli_env: dict[str, str]) -> None:
    made = run_cli(
        cli_env,
        "apps", "create", "--name", "Shop", "--redirect-uri", "https://shop.example/cb",
        "--scope", "basic", "--scope", "email", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    app = json.loads(made.stdout)
    assert app["name"] == "Shop" and app["api_key"] and app["secret"]
    assert app["scopes"] == ["basic", "email"]

    made = run_cli(
        cli_env, "users", "create", "--username", "alice", "--password", "s3cret-pass",
        "--email", "alice@example.com", "--private", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    user = json.loads(made.stdout)
    assert user["username"] == "alice" and user["profile_visibility"] == "private"

    token = json.loads(run_cli(cli_env, "admin-token", "create", "--json").stdout)["token"]

    database = open_database(Settings.from_env(cli_env))
    try:
        stored = await database.apps.get(app["app_id"])
        assert stored is not None
        assert (stored.api_key, stored.secret) == (app["api_key"], app["secret"])
        assert stored.settings.redirect_uris == ("https://shop.example/cb",)
        alice = await database.users.authenticate("alice", "s3cret-pass")
        assert alice is not None and alice.uid == user["uid"]
        assert await database.admin_tokens.verify(token)
    finally:
        await database.close()


def test_human_output(cli_env: dict[str, str]) -> None:
    made = run_cli(cli_env, "apps", "create", "--name", "Shop")
    assert made.returncode == 0
    assert "api_key" in made.stdout and "secret" in made.stdout


@pytest.mark.parametrize(
    ("args", "env_extra", "message"),
    [
        (("users", "create", "--username", "x y", "--password", "p4ssword!"), {}, "username"),
        (("apps", "create", "--name", "A", "--scope", "bogus"), {}, "scopes[0] must be one of"),
        (("apps", "create", "--name", "A", "--redirect-uri", "nope"), {}, "redirect_uris"),
        (("db", "upgrade"), {"OPENPLATFORM_MAX_PARAMS": "many"}, "OPENPLATFORM_MAX_PARAMS"),
        (("db", "upgrade"), {"OPENPLATFORM_DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        (("serve", "--workers", "2"), {}, "needs a shared cache"),
    ],
)
def test_errors_are_one_clear_line(
    cli_env: dict[str, str], args: tuple[str, ...], env_extra: dict[str, str], message: str
) -> None:
    made = run_cli({**cli_env, **env_extra}, *args)
    assert made.returncode != 0
    lines = made.stderr.strip().splitlines()
    assert len(lines) == 1, made.stderr
    assert lines[0].startswith("openplatform: error:") and message in lines[0]
    assert "Traceback" not in made.stderr


def test_duplicate_username_refused(cli_env: dict[str, str]) -> None:
    args = ("users", "create", "--username", "bob", "--password", "p4ssword!", "--json")
    assert run_cli(cli_env, *args).returncode == 0
    again = run_cli(cli_env, *args)
    assert again.returncode == 1
    assert "taken" in again.stderr
