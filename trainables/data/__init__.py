"""CAN captures to PyTorch Geometric graphs: reading, synthetic traffic, windows, cache."""

from trainables.data.capture import MAX_PAYLOAD_BYTES, Capture

__all__ = ["MAX_PAYLOAD_BYTES", "Capture"]
