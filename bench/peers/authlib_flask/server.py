"""A minimal Authlib + Flask authorization server for the bench: the
client_credentials grant with ``client_secret_basic`` (RFC 6749 §4.4) and
token introspection (RFC 7662), clients and tokens in SQLite through
Authlib's SQLAlchemy mixins (Flask-SQLAlchemy), as Authlib's documentation
sets a server up. Served by gunicorn: ``gunicorn 'server:create_app()'``;
the database file is ``AUTHLIB_BENCH_DB``.

    POST /oauth/token       grant_type=client_credentials (+ scope)
    POST /oauth/introspect  token=…; a client learns only about its own tokens
    GET  /healthz
"""

from __future__ import annotations

import os

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.sqla_oauth2 import (
    OAuth2ClientMixin,
    OAuth2TokenMixin,
    create_query_client_func,
    create_save_token_func,
)
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, Response, jsonify
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class Client(db.Model, OAuth2ClientMixin):
    __tablename__ = "oauth2_client"
    id = db.Column(db.Integer, primary_key=True)


class Token(db.Model, OAuth2TokenMixin):
    __tablename__ = "oauth2_token"
    id = db.Column(db.Integer, primary_key=True)
    user_id = db.Column(db.Integer, nullable=True)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic"]  # noqa: RUF012 (Authlib API)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        # Only access tokens: client_credentials issues no refresh token.
        return db.session.execute(
            db.select(Token).filter_by(access_token=token_string)
        ).scalar_one_or_none()

    def introspect_token(self, token: Token) -> dict[str, object]:
        return {
            "active": True,
            "client_id": token.client_id,
            "token_type": token.token_type,
            "scope": token.get_scope(),
            "iat": token.issued_at,
            "exp": token.issued_at + token.expires_in,
        }

    def check_permission(self, token: Token, client: Client, request: object) -> bool:
        return bool(token.client_id == client.client_id)


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{os.environ['AUTHLIB_BENCH_DB']}"
    app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": 3600}
    db.init_app(app)
    server = AuthorizationServer(
        app,
        query_client=create_query_client_func(db.session, Client),
        save_token=create_save_token_func(db.session, Token),
    )
    server.register_grant(grants.ClientCredentialsGrant)
    server.register_endpoint(Introspection)

    @app.post("/oauth/token")
    def issue_token() -> Response:
        return server.create_token_response()

    @app.post("/oauth/introspect")
    def introspect() -> Response:
        return server.create_endpoint_response(Introspection.ENDPOINT_NAME)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
