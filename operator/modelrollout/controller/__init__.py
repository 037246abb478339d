"""The operator: kopf wiring (handlers.py: settings, watches), the scheduler that ticks rollouts
on a shared pool (scheduler.py), the tick over ports (tick.py, ports.py), delivery of Events and
webhooks off the tick (notify.py), and the operator's own metrics (metrics.py)."""
