"""Presign the signaling WebSocket URL with botocore's SigV4 query signer."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode, urlsplit, urlunsplit

from botocore.auth import SIGV4_TIMESTAMP, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

SIGNING_SERVICE = "kinesisvideo"
CONNECT_URL_EXPIRES_SECONDS = 299
"""The official JS SDK's value: a presigned connect URL is good for just under five minutes."""


class _QueryAuthAt(SigV4QueryAuth):
    """botocore's query signer with the clock reading given instead of read.

    ``add_auth`` is botocore's own sequence; only the timestamp comes from the caller, so a URL
    can be signed (or re-signed, to verify one) at the instant it names.
    """

    def __init__(
        self,
        credentials: ReadOnlyCredentials,
        service_name: str,
        region_name: str,
        expires: int,
        timestamp: str,
    ) -> None:
        super().__init__(credentials, service_name, region_name, expires=expires)
        self._fixed_timestamp = timestamp

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._fixed_timestamp
        self._modify_request_before_signing(request)  # type: ignore[attr-defined]
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signature = self.signature(string_to_sign, request)
        self._inject_signature_to_request(request, signature)  # type: ignore[attr-defined]


def connect_query(channel_arn: str, client_id: str | None) -> dict[str, str]:
    """The connect request's own query: the channel, and the client id for a viewer only."""
    query = {"X-Amz-ChannelARN": channel_arn}
    if client_id is not None:
        query["X-Amz-ClientId"] = client_id
    return query


def _sorted_query(url: str) -> str:
    # The JS SDK lists every parameter sorted by name; botocore appends the auth parameters.
    # Order is not signed, so sorting only makes our URLs read like the SDK's.
    parts = urlsplit(url)
    pairs = sorted(parts.query.split("&"), key=lambda pair: pair.split("=", 1)[0])
    return urlunsplit(parts._replace(query="&".join(pairs)))


def presign_url(
    url: str,
    credentials: ReadOnlyCredentials,
    region: str,
    *,
    expires: int,
    signed_at: dt.datetime | None = None,
    service: str = SIGNING_SERVICE,
) -> str:
    """Presign a GET of ``url`` (its query included) with SigV4 query auth, host header signed."""
    when = signed_at if signed_at is not None else dt.datetime.now(dt.UTC)
    timestamp = when.astimezone(dt.UTC).strftime(SIGV4_TIMESTAMP)
    request = AWSRequest(method="GET", url=url)
    _QueryAuthAt(credentials, service, region, expires, timestamp).add_auth(request)
    return _sorted_query(str(request.url))


def presign_connect_url(
    endpoint: str,
    channel_arn: str,
    client_id: str | None,
    credentials: ReadOnlyCredentials,
    region: str,
    *,
    expires: int = CONNECT_URL_EXPIRES_SECONDS,
    signed_at: dt.datetime | None = None,
) -> str:
    """A presigned ``wss://`` (or ``ws://``) URL to connect to a signaling channel.

    ``client_id`` is given for a viewer and None for the master. The session token, when the
    credentials have one, is part of the signed query (botocore puts it there before signing).
    ``signed_at`` fixes the signing time (to reproduce recorded URLs); default now.
    """
    url = endpoint.rstrip("/") + "/?" + urlencode(connect_query(channel_arn, client_id))
    return presign_url(url, credentials, region, expires=expires, signed_at=signed_at)
