"""A/B testing for AI teams: experiments, sticky assignment, exactly-once results, statistics.

Importing this package stays light (no scipy, no numpy): it runs on the get-variant and
record-result hot path. The analyzer loads scipy lazily, only when it analyses.
"""

__version__ = "0.1.0"
