"""The baseline: the KVS signaling sender a user writes first, as an SQS-triggered Lambda.

For each SQS record, in order: parse the body, GetSignalingChannelEndpoint for the record's role,
presign the connect URL (botocore's SigV4 query signer, as ``kvs_relay.presign`` does it), open
the WebSocket, send the one frame, close. No endpoint cache, no grouping of messages into one
connection, no pacing under the quotas, no listening for STATUS_RESPONSEs. A record whose send
raised (a throttled handshake is a 429) is reported in ``batchItemFailures``; nothing is
published. It takes the relay's request bodies (``messagePayload``, ``sdp`` or ``iceCandidate``).
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import boto3
import websocket

from kvs_relay.presign import presign_connect_url

session = boto3.session.Session()
kinesisvideo = session.client("kinesisvideo")


def message_payload(request: dict[str, Any]) -> str:
    """The frame's base64 payload: given as is, or encoded as the official SDKs do."""
    if "messagePayload" in request:
        return str(request["messagePayload"])
    if "sdp" in request:
        kind = "answer" if request["action"] == "SDP_ANSWER" else "offer"
        content = json.dumps({"type": kind, "sdp": request["sdp"]})
    else:
        content = json.dumps(request["iceCandidate"])
    return base64.b64encode(content.encode()).decode()


def send(request: dict[str, Any]) -> None:
    """Send one request over a WebSocket of its own; raises when anything fails."""
    channel_arn = request["channelArn"]
    endpoints = kinesisvideo.get_signaling_channel_endpoint(
        ChannelARN=channel_arn,
        SingleMasterChannelEndpointConfiguration={"Protocols": ["WSS"], "Role": request["role"]},
    )["ResourceEndpointList"]
    credentials = session.get_credentials()
    assert credentials is not None
    url = presign_connect_url(
        endpoints[0]["ResourceEndpoint"],
        channel_arn,
        request.get("clientId"),
        credentials.get_frozen_credentials(),
        channel_arn.split(":")[3],
    )
    ca_bundle = os.environ.get("AWS_CA_BUNDLE")
    ws = websocket.create_connection(url, sslopt={"ca_certs": ca_bundle} if ca_bundle else {})
    try:
        frame = {"action": request["action"], "messagePayload": message_payload(request)}
        if "recipientClientId" in request:
            frame["recipientClientId"] = request["recipientClientId"]
        ws.send(json.dumps(frame))
    finally:
        ws.close()


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``{"batchItemFailures": [...]}``: the records whose send raised."""
    failures = []
    for record in event["Records"]:
        try:
            send(json.loads(record["body"]))
        except Exception as problem:
            print(f"record {record['messageId']} failed: {type(problem).__name__}")
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
