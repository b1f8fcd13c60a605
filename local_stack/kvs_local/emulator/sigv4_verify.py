"""Verify SigV4 signatures the way AWS does: header auth (control plane) and query auth (the
presigned signaling URL).

The signature itself is recomputed with botocore's own SigV4 machinery (canonical request,
string to sign, signing key); this module only reads the received request back into it and
decides, like AWS, which error a request that does not verify gets. Pure: the caller passes the
clock reading.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import ReadOnlyCredentials

from kvs_local.emulator.credentials import CredentialStore, Identity

ALGORITHM = "AWS4-HMAC-SHA256"
CLOCK_SKEW_SECONDS = 300
"""AWS accepts a header-signed request up to five minutes away from its own clock."""
MAX_PRESIGN_EXPIRES = 604_800
_REGION_PATTERN = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_AUTH_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]+)\s*$"
)
_QUERY_AUTH_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


class AuthFailure(Exception):
    """A request AWS would refuse before looking at it: status, error type and message."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.status = status
        self.error_type = error_type
        self.message = message


def _invalid_signature(message: str) -> AuthFailure:
    return AuthFailure(403, "InvalidSignatureException", message)


def _incomplete(message: str) -> AuthFailure:
    return AuthFailure(403, "IncompleteSignatureException", message)


def _missing_token() -> AuthFailure:
    return AuthFailure(403, "MissingAuthenticationTokenException", "Missing Authentication Token")


_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_BAD_TOKEN = "The security token included in the request is invalid."  # noqa: S105 (a message)


@dataclass(frozen=True, slots=True)
class VerifiedRequest:
    """Who signed a request, and for which region."""

    identity: Identity
    region: str
    signed_at: dt.datetime


@dataclass(frozen=True, slots=True)
class _Scope:
    access_key_id: str
    date: str
    region: str
    service: str


def _parse_scope(credential: str, service: str, region: str | None) -> _Scope:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise _incomplete(
            f"Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{credential}'"
        )
    key, date, scope_region, scope_service, _ = parts
    if scope_service != service:
        raise _invalid_signature(f"Credential should be scoped to correct service: '{service}'.")
    if not _REGION_PATTERN.fullmatch(scope_region) or (
        region is not None and scope_region != region
    ):
        raise _invalid_signature(
            f"Credential should be scoped to a valid region, not '{scope_region}'."
        )
    return _Scope(key, date, scope_region, scope_service)


def _parse_timestamp(value: str | None, where: str) -> dt.datetime:
    if not value:
        raise _incomplete(f"Authorization requires {where}.")
    try:
        return dt.datetime.strptime(value, SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise _incomplete(f"{where} must be in ISO 8601 basic format, got '{value}'.") from exc


def _identity(store: CredentialStore, scope: _Scope, token: str | None, now: float) -> Identity:
    identity = store.lookup(scope.access_key_id)
    if identity is None or token != identity.session_token:
        raise AuthFailure(403, "UnrecognizedClientException", _BAD_TOKEN)
    if identity.expires_at is not None and now >= identity.expires_at:
        raise AuthFailure(
            403, "ExpiredTokenException", "The security token included in the request is expired"
        )
    return identity


class _VerifyingSigner(SigV4Auth):
    """botocore's SigV4 signer, made to sign exactly the headers the client says it signed."""

    def __init__(self, identity: Identity, scope: _Scope, signed_headers: Sequence[str]) -> None:
        credentials = ReadOnlyCredentials(
            identity.access_key_id, identity.secret_access_key, identity.session_token
        )
        super().__init__(credentials, scope.service, scope.region)
        self._signed = [name.lower() for name in signed_headers]

    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        chosen = HTTPHeaders()
        for name in self._signed:
            for value in request.headers.get_all(name) or []:
                chosen[name] = value
        return chosen

    def expected_signature(self, request: AWSRequest, timestamp: str) -> str:
        request.context["timestamp"] = timestamp
        canonical = self.canonical_request(request)
        signature: str = self.signature(self.string_to_sign(request, canonical), request)
        return signature


def _signature_matches(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def _request(
    method: str, path: str, headers: Mapping[str, str] | Sequence[tuple[str, str]], body: bytes
) -> AWSRequest:
    request = AWSRequest(method=method, url="https://signed.invalid" + path, data=body)
    request.headers = HTTPHeaders()
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        request.headers[name.lower()] = value
    return request


def split_query(raw_query: str) -> list[tuple[str, str]]:
    """The query's name/value pairs, percent-decoded (``+`` stays ``+``, as SigV4 reads it)."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def verify_presigned_request(
    *,
    method: str,
    path: str,
    raw_query: str,
    host: str,
    store: CredentialStore,
    now: float,
    service: str,
    region: str | None = None,
) -> VerifiedRequest:
    """Verify a presigned (SigV4 query auth) request; raises :class:`AuthFailure`.

    ``region`` pins the credential scope's region (the channel's); None accepts any region.
    """
    pairs = split_query(raw_query)
    query: dict[str, str] = {}
    for name, value in pairs:
        if name in query and name in (*_QUERY_AUTH_PARAMS, "X-Amz-Security-Token"):
            raise _incomplete(f"Query parameter {name} must appear once.")
        query[name] = value
    missing = [name for name in _QUERY_AUTH_PARAMS if name not in query]
    if len(missing) == len(_QUERY_AUTH_PARAMS):
        raise _missing_token()
    if missing:
        raise _incomplete(f"AWS query-string parameters missing: {', '.join(missing)}")
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{query['X-Amz-Algorithm']}'")
    scope = _parse_scope(query["X-Amz-Credential"], service, region)
    signed_at = _parse_timestamp(query["X-Amz-Date"], "X-Amz-Date")
    if scope.date != query["X-Amz-Date"][:8]:
        raise _invalid_signature(
            f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope.date}' != '{query['X-Amz-Date'][:8]}'."
        )
    try:
        expires = int(query["X-Amz-Expires"])
    except ValueError as exc:
        raise _incomplete("X-Amz-Expires must be a whole number of seconds.") from exc
    if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
        raise _incomplete(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds.")
    signed_headers = query["X-Amz-SignedHeaders"].split(";")
    if "host" not in signed_headers:
        raise _incomplete("The host header must be signed.")
    identity = _identity(store, scope, query.get("X-Amz-Security-Token"), now)

    request = _request(method, path, {"host": host}, b"")
    # botocore canonicalizes a list of pairs as well as a dict; a dict would drop repeated names.
    request.params = [(n, v) for n, v in pairs if n != "X-Amz-Signature"]  # type: ignore[assignment]
    expected = _VerifyingSigner(identity, scope, signed_headers).expected_signature(
        request, query["X-Amz-Date"]
    )
    if not _signature_matches(expected, query["X-Amz-Signature"]):
        raise AuthFailure(403, "SignatureDoesNotMatch", _MISMATCH)
    signed = signed_at.timestamp()
    if signed > now + CLOCK_SKEW_SECONDS:
        raise _invalid_signature("Signature not yet current.")
    if now > signed + expires:
        raise AuthFailure(403, "AccessDeniedException", "Request has expired")
    return VerifiedRequest(identity, scope.region, signed_at)


def verify_signed_request(
    *,
    method: str,
    path: str,
    raw_query: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    store: CredentialStore,
    now: float,
    service: str,
) -> VerifiedRequest:
    """Verify a request signed in its Authorization header; raises :class:`AuthFailure`."""
    lowered = [(name.lower(), value) for name, value in headers]
    first = dict(reversed(lowered))
    authorization = first.get("authorization")
    if not authorization:
        raise _missing_token()
    match = _AUTH_HEADER.match(authorization.strip())
    if not match:
        raise _incomplete(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            "parameters, with the AWS4-HMAC-SHA256 algorithm."
        )
    scope = _parse_scope(match["credential"], service, None)
    stamp = first.get("x-amz-date")
    signed_at = _parse_timestamp(stamp, "a valid 'X-Amz-Date' header")
    assert stamp is not None
    signed_headers = match["signed"].split(";")
    if "host" not in signed_headers:
        raise _incomplete("The host header must be signed.")
    identity = _identity(store, scope, first.get("x-amz-security-token"), now)

    request = _request(method, path, lowered, body)
    request.params = split_query(raw_query)  # type: ignore[assignment]  # pairs: see above
    expected = _VerifyingSigner(identity, scope, signed_headers).expected_signature(request, stamp)
    if not _signature_matches(expected, match["signature"]):
        raise _invalid_signature(_MISMATCH)
    skew = signed_at.timestamp() - now
    if abs(skew) > CLOCK_SKEW_SECONDS:
        now_dt = dt.datetime.fromtimestamp(now, dt.UTC)
        fmt = SIGV4_TIMESTAMP
        if skew < 0:
            edge = now_dt - dt.timedelta(seconds=CLOCK_SKEW_SECONDS)
            message = (
                f"Signature expired: {stamp} is now earlier than {edge.strftime(fmt)} "
                f"({now_dt.strftime(fmt)} - 5 min.)"
            )
        else:
            edge = now_dt + dt.timedelta(seconds=CLOCK_SKEW_SECONDS)
            message = (
                f"Signature not yet current: {stamp} is still later than {edge.strftime(fmt)} "
                f"({now_dt.strftime(fmt)} + 5 min.)"
            )
        raise _invalid_signature(message)
    return VerifiedRequest(identity, scope.region, signed_at)
