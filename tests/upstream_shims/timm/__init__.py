"""Stand-in for the parts of timm that upstream MobileSAM imports (tests only)."""
