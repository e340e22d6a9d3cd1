"""What runs inside one trial: CAN data to graphs, models, and the batch-size machinery."""

from trainables.errors import UserError

__all__ = ["UserError"]
