"""One module per API surface: seed.py (/predict), v2.py (Open Inference Protocol), health.py."""
