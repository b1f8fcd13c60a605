"""Who may connect: each refusal of the connect handshake, with the HTTP status it gets.

URLs are presigned with botocore (kvs_relay.presign), the way the relay and the SDKs build them.
"""

from __future__ import annotations

import datetime as dt
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest
from botocore.credentials import ReadOnlyCredentials

from kvs_local.emulator import Emulator

from .conftest import Client, connect_url, new_channel, open_client, refused_status


def test_master_and_viewer_connect_with_presigned_urls(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    open_client(clients, connect_url(emu, arn, None))
    open_client(clients, connect_url(emu, arn, "viewer-1"))
    counters = emu.counters(arn)
    assert (counters["connects_master"], counters["connects_viewer"]) == (1, 1)


def test_temporary_credentials_connect_with_the_token_in_the_signed_query(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    key, secret, token = emu.issue_session_credentials()
    url = connect_url(emu, arn, "v", credentials=ReadOnlyCredentials(key, secret, token))
    assert "X-Amz-Security-Token=" in url
    open_client(clients, url)


def test_a_token_appended_after_signing_is_refused(emu: Emulator) -> None:
    arn = new_channel(emu)
    key, secret, token = emu.issue_session_credentials()
    # Signed without the token, which is then tacked on: the signature does not cover it.
    url = connect_url(emu, arn, "v", credentials=ReadOnlyCredentials(key, secret, None))
    assert refused_status(url + "&X-Amz-Security-Token=" + quote(token, safe="")) == 403
    assert refused_status(url) == 403  # and a temporary key without its token is unknown


def test_a_wrong_secret_is_forbidden(emu: Emulator) -> None:
    arn = new_channel(emu)
    wrong = ReadOnlyCredentials(emu.access_key_id, "not-the-secret", None)
    assert refused_status(connect_url(emu, arn, None, credentials=wrong)) == 403


def test_an_unknown_key_is_forbidden(emu: Emulator) -> None:
    arn = new_channel(emu)
    unknown = ReadOnlyCredentials("AKIANOBODY0000000000", "x", None)
    assert refused_status(connect_url(emu, arn, None, credentials=unknown)) == 403


def test_an_expired_url_is_forbidden(emu: Emulator) -> None:
    arn = new_channel(emu)
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=300)
    assert refused_status(connect_url(emu, arn, "v", signed_at=long_ago, expires=299)) == 403
    recent = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=250)
    Client(connect_url(emu, arn, "v", signed_at=recent, expires=299)).close()


def test_a_scope_in_another_region_than_the_channels_is_forbidden(emu: Emulator) -> None:
    arn = new_channel(emu)
    assert refused_status(connect_url(emu, arn, None, region="eu-west-1")) == 403


def test_a_changed_host_is_forbidden(emu: Emulator) -> None:
    arn = new_channel(emu)
    assert refused_status(connect_url(emu, arn, None), host="example.com") == 403


def test_a_missing_signature_is_forbidden(emu: Emulator) -> None:
    arn = new_channel(emu)
    url = connect_url(emu, arn, None)
    unsigned = "&".join(p for p in url.split("&") if not p.startswith("X-Amz-Signature="))
    assert refused_status(unsigned) == 403


@pytest.mark.parametrize("query", ["", "X-Amz-ChannelARN=not-an-arn"])
def test_a_missing_or_malformed_channel_arn_is_a_bad_request(emu: Emulator, query: str) -> None:
    assert refused_status(f"{emu.ws_endpoint}/?{query}") == 400


def test_an_unknown_channel_is_not_found(emu: Emulator) -> None:
    arn = f"arn:aws:kinesisvideo:us-west-2:{emu.config.account_id}:channel/never-created/1"
    assert refused_status(connect_url(emu, arn, None)) == 404


def test_a_channel_of_another_account_is_not_found(emu: Emulator) -> None:
    arn = emu.create_channel("foreign", account_id="210987654321", creation_id=7)
    assert refused_status(connect_url(emu, arn, None)) == 404


@pytest.mark.parametrize("client_id", ["", "has space", "x" * 257, "slash/no"])
def test_an_invalid_viewer_client_id_is_a_bad_request(emu: Emulator, client_id: str) -> None:
    arn = new_channel(emu)
    assert refused_status(connect_url(emu, arn, client_id)) == 400


def test_connect_permission_is_checked_per_role_and_channel(
    emu: Emulator, clients: list[Client]
) -> None:
    arn = new_channel(emu)
    other = new_channel(emu)
    emu.add_credentials(
        "AKIAVIEWERONLY000001",
        "viewer-only",
        allowed_actions=["kinesisvideo:ConnectAsViewer"],
        allowed_resources=[arn],
    )
    viewer_only = ReadOnlyCredentials("AKIAVIEWERONLY000001", "viewer-only", None)
    open_client(clients, connect_url(emu, arn, "v", credentials=viewer_only))
    assert refused_status(connect_url(emu, arn, None, credentials=viewer_only)) == 403
    assert refused_status(connect_url(emu, other, "v", credentials=viewer_only)) == 403


def test_a_plain_http_get_is_refused(emu: Emulator) -> None:
    arn = new_channel(emu)
    url = connect_url(emu, arn, None).replace("ws://", "http://")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url, timeout=5)  # noqa: S310 (a loopback URL we built)
    assert caught.value.code == 400
