"""An async webhook gateway: signed fan-out delivery with retries, and verified inbound webhooks."""

__version__ = "0.1.0"
