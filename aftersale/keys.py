"""The project's secret: refused when weak, and turned into one key per purpose.

``secret_key`` signs console sessions, unsubscribe links, short links and coupon codes,
and keys the hashes that assign customers to holdouts and variants
(:mod:`campaigns.experiments`), each with its own derived key (:mod:`templates.signing`). ``secret_key_previous`` keeps
links signed before a rotation working: they are verified with the current key first,
then with the previous one; new signatures always use the current key.
"""

from __future__ import annotations

from dataclasses import dataclass

from aftersale.errors import ConfigurationError
from templates.signing import purpose_key

MIN_LENGTH = 32
MIN_DISTINCT = 10  # "aaaa…" or "abababab…" is long but guessable
# Placeholders copied from examples and tutorials; compared ignoring case.
KNOWN_WEAK = frozenset(
    {
        "changeme", "change-me", "change_me", "secret", "secret-key", "secret_key",
        "password", "test", "test-secret-key", "development", "dev", "aftersale",
        "insecure", "your-secret-key", "your_secret_key", "replace-me", "please-change-me",
        "changemechangemechangemechangeme", "0123456789abcdef0123456789abcdef",
        "abcdefghijklmnopqrstuvwxyz012345", "this-is-not-a-secret-this-is-not-a-secret",
    }
)  # fmt: skip
# Signatures customers hold in messages already sent, from before per-purpose keys.
LEGACY_PURPOSES = frozenset({"unsubscribe", "links"})
HOW_TO_MAKE_ONE = (
    "make one with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` and set "
    "secret_key in aftersale.toml or AFTERSALE_SECRET_KEY (`aftersale init` writes one)"
)


def key_problem(secret: str | None) -> str | None:
    """Why ``secret`` cannot sign anything real, or None when it can."""
    if not secret:
        return "no secret_key is set"
    if len(secret) < MIN_LENGTH:
        return f"secret_key has {len(secret)} characters; at least {MIN_LENGTH} are needed"
    if secret.lower() in KNOWN_WEAK or len(set(secret)) < MIN_DISTINCT:
        return "secret_key is a well-known or guessable value"
    return None


def require_strong_key(secret: str | None, *, setting: str = "secret_key") -> None:
    """Raise :class:`ConfigurationError` saying how to make a key when ``secret`` is weak."""
    problem = key_problem(secret)
    if problem:
        raise ConfigurationError(f"{problem.replace('secret_key', setting)}: {HOW_TO_MAKE_ONE}")


@dataclass(frozen=True)
class SigningKeys:
    """The current secret and, during a rotation, the previous one."""

    current: str
    previous: str | None = None

    def key(self, purpose: str) -> str:
        """The key that signs new ``purpose`` signatures."""
        return purpose_key(self.current, purpose)

    def verifying(self, purpose: str) -> list[str]:
        """Keys a ``purpose`` signature is accepted with: current first, then previous.

        Links in messages sent before keys were derived per purpose were signed with the
        secret itself; they are still accepted (only to unsubscribe or follow a link),
        while nothing new is signed with the secret.
        """
        secrets = [self.current] + ([self.previous] if self.previous else [])
        keys = [purpose_key(secret, purpose) for secret in secrets]
        return keys + (secrets if purpose in LEGACY_PURPOSES else [])
