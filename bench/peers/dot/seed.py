"""Create DOT's tables and its applications and tokens.

    python seed.py DB CLIENTS TOKENS OUT.json [--hashed]

Applications are confidential client_credentials clients. ``--hashed``
keeps DOT's default (``hash_client_secret=True``: the secret is stored as a
Django password hash, checked on every request); without it the secret is
stored as given. Hashing a secret takes DOT's hasher about a third of a
second, so with ``--hashed`` every application shares one secret, hashed
once (each request still checks it in full). Token ``n`` belongs to
application ``n % CLIENTS``. Writes ``{"clients": [[client_id, secret]…],
"tokens": [[client_id, secret, token]…]}``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from datetime import timedelta

import django


def main() -> None:
    path, clients, tokens, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    hashed = "--hashed" in sys.argv[5:]
    os.environ["DOT_BENCH_DB"] = path
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, Application
    from oauth2_provider.settings import oauth2_settings

    call_command("migrate", verbosity=0)
    shared = secrets.token_hex(24)
    stored = make_password(shared, hasher=oauth2_settings.CLIENT_SECRET_HASHER)
    credentials = [
        (f"client-{n}", shared if hashed else secrets.token_hex(24)) for n in range(clients)
    ]
    applications = Application.objects.bulk_create(
        Application(
            client_id=client_id,
            client_secret=stored if hashed else secret,
            hash_client_secret=hashed,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
            name=client_id,
        )
        for client_id, secret in credentials
    )
    expires = timezone.now() + timedelta(days=2)
    issued = [(*credentials[n % clients], secrets.token_urlsafe(30)) for n in range(tokens)]
    AccessToken.objects.bulk_create(
        AccessToken(
            application=applications[n % clients], token=token, expires=expires, scope="basic"
        )
        for n, (_, _, token) in enumerate(issued)
    )
    with open(out, "w") as file:
        json.dump({"clients": credentials, "tokens": issued}, file)


if __name__ == "__main__":
    main()
