"""Assemble the relay from its settings: boto3 clients, caches, the WebSocket connector.

boto3 reads the standard endpoint variables itself (``AWS_ENDPOINT_URL_KINESIS_VIDEO``,
``AWS_ENDPOINT_URL_SNS``) and ``AWS_CA_BUNDLE``; the connector is given the same CA bundle so
``wss://`` trusts what the control plane trusts.
"""

from __future__ import annotations

import time
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials

from kvs_relay.channels import ChannelResolver
from kvs_relay.delivery import DeliveryEngine
from kvs_relay.endpoints import EndpointResolver
from kvs_relay.idempotency import IdempotencyLedger, idempotency_config
from kvs_relay.outcomes import SnsOutcomePublisher
from kvs_relay.quotas import DEFAULT_QUOTAS, SignalingQuotas
from kvs_relay.relay import DeliveryLedger, MetricsSink, SignalingRelay
from kvs_relay.settings import RelaySettings
from kvs_relay.transport import Connector, WebSocketConnector


def session_credentials(session: Any) -> ReadOnlyCredentials:
    """The session's current frozen credentials (refreshed by botocore when they rotate)."""
    credentials = session.get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials available")
    frozen: ReadOnlyCredentials = credentials.get_frozen_credentials()
    return frozen


def build_relay(
    settings: RelaySettings,
    *,
    session: Any | None = None,
    connector: Connector | None = None,
    quotas: SignalingQuotas = DEFAULT_QUOTAS,
    metrics: MetricsSink | None = None,
) -> SignalingRelay:
    """A :class:`SignalingRelay` wired to AWS (or whatever the endpoint variables point at)."""
    boto_session = session or boto3.session.Session(region_name=settings.region)
    client_config = Config(
        connect_timeout=settings.connect_timeout_seconds,
        read_timeout=max(settings.connect_timeout_seconds, 5.0),
        retries={"mode": "standard", "max_attempts": 3},
    )
    kinesisvideo = boto_session.client(
        "kinesisvideo", region_name=settings.region, config=client_config
    )
    sns = boto_session.client("sns", region_name=settings.region, config=client_config)
    engine = DeliveryEngine(
        endpoints=EndpointResolver(
            kinesisvideo, settings.endpoint_cache_ttl_seconds, time.monotonic
        ),
        credentials=lambda: session_credentials(boto_session),
        connector=connector
        or WebSocketConnector(settings.connect_timeout_seconds, settings.ca_bundle),
        quotas=quotas,
        status_wait_seconds=settings.status_wait_seconds,
        status_wait_min_seconds=settings.status_wait_min_seconds,
        status_wait_handshake_factor=settings.status_wait_handshake_factor,
        pacing_margin_seconds=settings.pacing_margin_seconds,
        max_parallel_connections=settings.max_parallel_connections,
    )
    ledger: DeliveryLedger | None = None
    if settings.idempotency_table:
        persistence = DynamoDBPersistenceLayer(
            table_name=settings.idempotency_table,
            boto3_session=boto_session,
            boto_config=client_config,
        )
        ledger = IdempotencyLedger(
            persistence, idempotency_config(settings.idempotency_expires_seconds)
        )
    return SignalingRelay(
        engine=engine,
        ledger=ledger,
        channels=ChannelResolver(kinesisvideo, settings.channel_cache_ttl_seconds, time.monotonic),
        publisher=SnsOutcomePublisher(sns, settings.outcome_topic_arn),
        publish_sent=settings.publish_sent_outcomes,
        metrics=metrics,
    )
