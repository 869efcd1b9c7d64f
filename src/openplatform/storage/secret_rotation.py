"""Re-encrypting stored secrets with the newest key (``openplatform secrets
rotate``).

``OPENPLATFORM_SECRET_KEY`` may list keys, the newest first
(:class:`~openplatform.storage.crypto.SecretBox`): new secrets are encrypted
with the newest, stored ones are read with whichever opens them. Rotation
walks every encrypted column in id order, in batches of one short write
transaction each, and rewrites each secret not yet under the newest key —
with a conditional UPDATE (``WHERE`` the ciphertext is still the one read),
so a secret rotated by the admin API meanwhile is left as it now is. Running
servers keep answering throughout: the plaintext never changes, and any
listed key opens old and new ciphertexts alike. When it reports nothing left
to re-encrypt, the old keys can be dropped from the list.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import InstrumentedAttribute

from openplatform.storage.crypto import SecretBox
from openplatform.storage.engine import Sessions
from openplatform.storage.models import AccessToken, App

__all__ = ["ENCRYPTED_COLUMNS", "RotationReport", "rotate_secrets"]

# Every column that holds a secret encrypted with the SecretBox, with its table's id.
_Column = InstrumentedAttribute[str] | InstrumentedAttribute[str | None]
ENCRYPTED_COLUMNS: tuple[tuple[InstrumentedAttribute[int], _Column], ...] = (
    (App.id, App.secret_encrypted),
    (AccessToken.id, AccessToken.session_secret_encrypted),
)


@dataclass
class RotationReport:
    reencrypted: int = 0  # rewritten under the newest key now
    current: int = 0  # under the newest key already


async def rotate_secrets(
    sessions: Sessions, box: SecretBox, batch_size: int = 500
) -> RotationReport:
    """Re-encrypt every stored secret with ``box``'s newest key, ``batch_size``
    rows per transaction."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RotationReport()
    for id_column, column in ENCRYPTED_COLUMNS:
        after = 0
        while True:
            async with sessions.write() as session:
                rows = (
                    await session.execute(
                        select(id_column, column)
                        .where(id_column > after, column.is_not(None))
                        .order_by(id_column)
                        .limit(batch_size)
                    )
                ).all()
                for row_id, ciphertext in rows:
                    assert ciphertext is not None
                    if box.is_current(ciphertext):
                        report.current += 1
                        continue
                    await session.execute(
                        update(id_column.class_)
                        .where(id_column == row_id, column == ciphertext)
                        .values({column.key: box.rotate(ciphertext)})
                    )
                    report.reencrypted += 1
            if len(rows) < batch_size:
                break
            after = rows[-1][0]
    return report
