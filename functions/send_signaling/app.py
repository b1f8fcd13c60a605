"""SendSignaling: SQS batch in, signaling WebSocket out, one outcome per record on SNS.

Glue only (the shape of Powertools' batch-processing examples): the relay in the layer
validates, delivers and publishes the whole batch; Powertools' batch processor turns its
verdicts into the partial batch response (RETRY -> batchItemFailure). FIFO queues are detected
from the event and get SqsFifoPartialProcessor(skip_group_on_error=True).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from kvs_relay.relay import BatchVerdict, SignalingRelay, is_fifo_event
from kvs_relay.runtime import build_relay
from kvs_relay.settings import RelaySettings

logger = Logger()
metrics = Metrics()
tracer = Tracer()
copy_config_to_registered_loggers(source_logger=logger, include={"kvs_relay"})

_relay: SignalingRelay | None = None  # built on the first invocation, reused while warm


class RetryLater(Exception):
    """The record's delivery (or its outcome's publication) failed transiently."""


def relay() -> SignalingRelay:
    """The container's relay: clients and caches live across warm invocations."""
    global _relay
    if _relay is None:
        _relay = build_relay(RelaySettings.from_environ(), metrics=metrics)
    return _relay


def _record_handler(verdict: BatchVerdict) -> Any:
    def record_handler(record: SQSRecord) -> None:
        reason = verdict.retry.get(record.message_id)
        if reason is not None:
            raise RetryLater(reason)

    return record_handler


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Partial batch response: ``{"batchItemFailures": [{"itemIdentifier": messageId}]}``."""
    verdict = relay().process_event(event, remaining_time_ms=context.get_remaining_time_in_millis)
    processor: BatchProcessor | SqsFifoPartialProcessor
    if is_fifo_event(event):
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    else:
        processor = BatchProcessor(event_type=EventType.SQS)
    # All records failing is an ordinary answer here (each is listed), not a handler error.
    processor.raise_on_entire_batch_failure = False
    return dict(
        process_partial_response(
            event=event,
            record_handler=_record_handler(verdict),
            processor=processor,
            context=context,
        )
    )
