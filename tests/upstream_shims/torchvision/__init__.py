"""Stand-in for the parts of torchvision that upstream MobileSAM imports (tests only)."""
