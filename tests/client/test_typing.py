"""The typed methods keep their types through every runner: the value on
``Client``, a coroutine on ``AsyncClient``, a ``BatchItem`` in a batch —
checked by mypy, as an app developer's editor would."""

from __future__ import annotations

from pathlib import Path

from mypy import api

SNIPPET = """
from openplatform_client import AsyncClient, Client

def sync(client: Client) -> None:
    reveal_type(client.users.get_info(uids=[1]))
    reveal_type(client.data.inc_hash_value)
    with client.batch() as batch:
        reveal_type(batch.data.get_user_preferences())
    client.data.create_object(obj_type=1)

async def run(client: AsyncClient) -> None:
    reveal_type(await client.users.get_logged_in_user())
    pending = reveal_type(client.application.get_public_info(application_id=1))
    await pending
"""

EXPECTED = [
    "list[openplatform_client._results.UserInfo]",
    "def (obj_type: str, key: str, prop_name: str, increment: int =) -> int",
    "openplatform_client._batch.BatchItem[dict[int, str]]",
    "int",
    "typing.Coroutine[Any, Any, openplatform_client._results.ApplicationInfo]",
]


def test_typed_methods_keep_their_types(tmp_path: Path) -> None:
    source = tmp_path / "app.py"
    source.write_text(SNIPPET)
    out, _, status = api.run(
        ["--strict", "--no-incremental", "--python-version", "3.11",
         "--config-file", "", str(source)]
    )  # fmt: skip
    assert status == 1, out  # the one deliberate error: obj_type=1
    revealed = [
        line.split('Revealed type is "', 1)[1].removesuffix('"')
        for line in out.splitlines()
        if "Revealed type is" in line
    ]
    assert revealed == EXPECTED, out
    errors = [line for line in out.splitlines() if ": error: " in line]
    assert len(errors) == 1 and 'incompatible type "int"; expected "str"' in errors[0], out
