"""Admin API bearer tokens (PROTOCOL §5), made with ``openplatform admin-token
create``; stored as SHA-256 hashes only, shown once."""

from __future__ import annotations

from sqlalchemy import select, update

from openplatform.storage.crypto import hash_token, new_token
from openplatform.storage.engine import Sessions
from openplatform.storage.models import AdminToken, utcnow

__all__ = ["ADMIN_TOKEN_PREFIX", "AdminTokenRepository"]

# Recognizable in logs and secret scanners; the randomness follows it.
ADMIN_TOKEN_PREFIX = "opadm_"


class AdminTokenRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def create(self, label: str = "") -> str:
        """A new admin token; the plaintext is returned once and never stored."""
        token = ADMIN_TOKEN_PREFIX + new_token()
        async with self._sessions.write() as session:
            session.add(
                AdminToken(token_hash=hash_token(token), label=label[:200], created_at=utcnow())
            )
        return token

    async def verify(self, token: str) -> bool:
        """Whether ``token`` is a live (not revoked) admin token. The lookup is by
        hash, so its timing tells nothing about stored tokens."""
        if not token:
            return False
        async with self._sessions.read() as session:
            found = await session.scalar(
                select(AdminToken.id).where(
                    AdminToken.token_hash == hash_token(token), AdminToken.revoked_at.is_(None)
                )
            )
        return found is not None

    async def revoke(self, token: str) -> bool:
        """Revoke ``token``; True when it was live."""
        async with self._sessions.write() as session:
            result = await session.execute(
                update(AdminToken)
                .where(AdminToken.token_hash == hash_token(token), AdminToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]
