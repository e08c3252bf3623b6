"""Plain-torch MobileSAM whose state_dict matches the official `mobile_sam.pt` key for key."""

from .sam import MobileSAM

__all__ = ["MobileSAM"]
