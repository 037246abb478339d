"""Traffic routers behind one small interface (base.py), one module per router, each a line in
registry.py."""
