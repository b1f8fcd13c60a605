"""The emulator's identities: access keys it knows, the accounts they belong to, what they may do.

Long-term keys (``AKIA...``) and temporary ones (``ASIA...`` with a session token and an expiry,
as STS issues them) both live here. A key can carry a small IAM-like allow list (actions and
resource ARN patterns) so tests can check least privilege; by default a key may do anything.
"""

from __future__ import annotations

import fnmatch
import secrets
import string
import threading
from dataclasses import dataclass, field

ALL_ACTIONS = "kinesisvideo:*"


@dataclass(frozen=True, slots=True)
class Identity:
    """One access key as the service knows it."""

    access_key_id: str
    secret_access_key: str
    account_id: str
    session_token: str | None = None
    expires_at: float | None = None
    """Wall-clock expiry (epoch seconds) of temporary credentials; None for long-term keys."""
    allowed_actions: frozenset[str] = field(default_factory=lambda: frozenset({ALL_ACTIONS}))
    """IAM actions this key may call, e.g. ``kinesisvideo:ConnectAsMaster``."""
    allowed_resources: tuple[str, ...] = ("*",)
    """ARN patterns (IAM-style ``*`` and ``?`` wildcards) the actions are allowed on."""

    def allows(self, action: str, resource: str) -> bool:
        """Whether an IAM policy of this key's allow lists permits ``action`` on ``resource``."""
        action_ok = any(fnmatch.fnmatchcase(action, pattern) for pattern in self.allowed_actions)
        resource_ok = any(
            fnmatch.fnmatchcase(resource, pattern) for pattern in self.allowed_resources
        )
        return action_ok and resource_ok


def _random_key(prefix: str) -> str:
    alphabet = string.ascii_uppercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(16))


class CredentialStore:
    """The keys the emulator accepts (thread-safe)."""

    def __init__(self) -> None:
        self._identities: dict[str, Identity] = {}
        self._lock = threading.Lock()

    def add(self, identity: Identity) -> Identity:
        with self._lock:
            self._identities[identity.access_key_id] = identity
        return identity

    def lookup(self, access_key_id: str) -> Identity | None:
        with self._lock:
            return self._identities.get(access_key_id)

    def issue_session(
        self, account_id: str, now: float, duration_seconds: float = 3600.0
    ) -> Identity:
        """New temporary credentials, as STS AssumeRole would return them."""
        identity = Identity(
            access_key_id=_random_key("ASIA"),
            secret_access_key=secrets.token_urlsafe(30),
            account_id=account_id,
            # Real session tokens are long base64 blobs with '/', '+' and '=' in them.
            session_token="IQoJb3JpZ2luX2Vj" + secrets.token_urlsafe(96) + "/+=",
            expires_at=now + duration_seconds,
        )
        return self.add(identity)
