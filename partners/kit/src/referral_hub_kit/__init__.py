"""Referral Hub partner kit: call the hub's API and verify its signed status callbacks."""

from typing import TYPE_CHECKING, Any

from .client import HubClient, HubError
from .signature import ReplayGuard, WebhookVerificationError, sign, verify

if TYPE_CHECKING:
    from .receiver import CallbackReceiver

__all__ = [
    "CallbackReceiver",
    "HubClient",
    "HubError",
    "ReplayGuard",
    "WebhookVerificationError",
    "sign",
    "verify",
]


def __getattr__(name: str) -> Any:
    """Import the receiver on first use, so `python -m referral_hub_kit.receiver` runs cleanly."""
    if name == "CallbackReceiver":
        from .receiver import CallbackReceiver

        return CallbackReceiver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
