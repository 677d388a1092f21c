"""What the store raises when a value is missing or corrupt, and the failure converters that make an activity
whose input is missing fail for good."""

from __future__ import annotations

from temporalio.api.failure.v1 import Failure
from temporalio.converter import DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import ApplicationError


class PayloadStoreError(ApplicationError):
    """A stored value is missing or corrupt: the task cannot go on with it until the value is back.

    Raised while a worker decodes a workflow task (a start input, an activity's result read back by a replay), it
    fails that workflow task with this message, and Temporal retries the task until the value is readable again
    (the store fixed or shared, the file restored) or someone terminates it: the run cannot be failed from there,
    because a replay that sent any command history does not have is a nondeterminism error. In an activity's
    input it fails the activity at once, non-retryable (`FailureConverter`).
    """

    def __init__(self, message: str, non_retryable: bool = False) -> None:
        super().__init__(message, type="PayloadStoreError", non_retryable=non_retryable)


def unwrapped(exception: BaseException) -> BaseException:
    """`exception`, or the PayloadStoreError an SDK wrapper hides: the activity worker reports an input that does
    not decode as a retryable `ApplicationError("Failed decoding arguments")` whatever the cause, so a value
    missing from the store would be retried until the retry policy runs out. The failure says what the cause says:
    the store's error (non-retryable, naming the task and the key), behind the wrapper's words."""
    cause = exception.__cause__
    if (
        not isinstance(exception, ApplicationError)
        or exception.non_retryable
        or not isinstance(cause, PayloadStoreError)
    ):
        return exception
    promoted = PayloadStoreError(f"{exception.message}: {cause.message}", non_retryable=True)
    promoted.__traceback__, promoted.__cause__ = cause.__traceback__, cause.__cause__
    return promoted


class FailureConverter(DefaultFailureConverter):
    """The SDK's failure converter, but an activity whose input is missing from the store fails for good
    (`unwrapped`)."""

    def to_failure(self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure) -> None:
        super().to_failure(unwrapped(exception), payload_converter, failure)


class EncodedFailureConverter(FailureConverter):
    """`FailureConverter` with the message and stack trace in the encoded (encrypted) attributes."""

    def __init__(self) -> None:
        super().__init__(encode_common_attributes=True)
