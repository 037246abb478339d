"""The shadow step's comparator (comparator.py) and the names of what it exports (metrics.py).

It stands alone like modelrollout.telemetry: the comparator runs as its own pod, needs the
standard library and prometheus-client only, and starts in well under a second.
"""
