"""Create the Authlib peer's tables and its clients and tokens.

    python seed.py DB CLIENTS TOKENS OUT.json

Token ``n`` belongs to client ``n % CLIENTS``. Writes the credentials the
bench sends: ``{"clients": [[client_id, secret]…], "tokens": [[client_id,
secret, token]…]}``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time

from authlib.common.security import generate_token


def main() -> None:
    path, clients, tokens, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    os.environ["AUTHLIB_BENCH_DB"] = path
    from server import Client, Token, create_app, db

    app = create_app()
    now = int(time.time())
    credentials = [(f"client-{n}", secrets.token_hex(24)) for n in range(clients)]
    issued = [(*credentials[n % clients], generate_token(42)) for n in range(tokens)]
    with app.app_context():
        db.create_all()
        for client_id, secret in credentials:
            client = Client(client_id=client_id, client_secret=secret, client_id_issued_at=now)
            client.set_client_metadata(
                {
                    "grant_types": ["client_credentials"],
                    "token_endpoint_auth_method": "client_secret_basic",
                    "scope": "basic",
                }
            )
            db.session.add(client)
        db.session.add_all(
            Token(
                client_id=client_id,
                token_type="Bearer",
                access_token=token,
                scope="basic",
                issued_at=now,
                expires_in=2 * 86400,
            )
            for client_id, _, token in issued
        )
        db.session.commit()
    with open(out, "w") as file:
        json.dump({"clients": credentials, "tokens": issued}, file)


if __name__ == "__main__":
    main()
