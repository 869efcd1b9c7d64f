"""Secrets are compared in constant time (issue 12, secrets): no ``==``,
``!=``, ``in`` or ``not in`` in the platform's code has a secret-looking
operand — a secret, signature, token, password, hash, digest, MAC, CSRF
token, PKCE verifier or challenge, nonce — unless the other side is a
literal (a type or a method name, not a secret) or it builds SQL (a model
column compared inside a query, where the database looks a hash up by its
index). Such a comparison goes through ``hmac.compare_digest``; the few
comparisons of two values the caller sent, neither of them stored, are
listed below with the reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "openplatform"
SECRET_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "sig",
        "signature",
        "token",
        "tokens",
        "password",
        "hash",
        "digest",
        "mac",
        "csrf",
        "verifier",
        "challenge",
        "nonce",
    }
)
# (file, source text of the comparison): why it need not be constant-time.
ALLOWED = {
    # the access_token parameter and the Authorization header must name the
    # same token: both come from the caller, nothing stored is compared
    ("gateway/params.py", "token != bearer"),
    # a sign-up form's password against its repetition and its username,
    # all the caller's own
    ("web/signin.py", "password != again"),
    ("web/signin.py", "username.lower() in password.lower()"),
    # a parameter's name among the names whose values are masked in answers
    ("errors/render.py", "key in SECRET_PARAMS"),
    # RFC 6749 §3.3 scope-tokens: scope names, public
    ("oauth/scopes.py", "token not in KNOWN_SCOPES"),
    ("oauth/scopes.py", "token not in tokens"),
}


def _words(node: ast.expr) -> set[str]:
    """The words of the names in ``node`` (``self.app_secret`` → app, secret)."""
    words: set[str] = set()
    for sub in ast.walk(node):
        name = sub.id if isinstance(sub, ast.Name) else getattr(sub, "attr", None)
        if isinstance(name, str):
            words.update(part for part in re.split(r"_+", name.lower()) if part)
    return words


def _builds_sql(node: ast.expr) -> bool:
    """``Model.column`` (a capitalised class's attribute): a SQL expression."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id[:1].isupper()
    )


def _suspicious(compare: ast.Compare) -> bool:
    operands = [compare.left, *compare.comparators]
    for op, left, right in zip(compare.ops, operands, operands[1:], strict=False):
        if not isinstance(op, ast.Eq | ast.NotEq | ast.In | ast.NotIn):
            continue
        if any(isinstance(side, ast.Constant) for side in (left, right)):
            continue
        if any(isinstance(side, ast.Tuple | ast.List | ast.Set) for side in (left, right)):
            continue  # membership in literal choices
        if any(_builds_sql(side) for side in (left, right)):
            continue
        if (_words(left) | _words(right)) & SECRET_WORDS:
            return True
    return False


def comparisons_of_secrets() -> set[tuple[str, str]]:
    found = set()
    for path in sorted(SOURCE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text, str(path))):
            if isinstance(node, ast.Compare) and _suspicious(node):
                segment = ast.get_source_segment(text, node) or ast.dump(node)
                found.add((path.relative_to(SOURCE).as_posix(), segment))
    return found


def test_no_secret_is_compared_with_equality() -> None:
    assert comparisons_of_secrets() - ALLOWED == set()


def test_the_check_finds_a_secret_compared_with_equality() -> None:
    """The check itself: these would be flagged; these would not."""
    flagged = [
        "given == client.secret",
        "sig != expected",
        "token_hash in known_hashes",
        "self._csrf(cookie) == form_token",
    ]
    passed = [
        "sign_method == 'md5'",
        "info.token_type == 'access_token'",
        "AccessToken.token_hash == bindparam('h')",
        "hmac.compare_digest(given, client.secret)",
        "user.session_epoch == signed_in.session_epoch",
    ]
    for source in flagged:
        (compare,) = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Compare)]
        assert _suspicious(compare), source
    for source in passed:
        compares = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Compare)]
        assert not any(_suspicious(c) for c in compares), source
