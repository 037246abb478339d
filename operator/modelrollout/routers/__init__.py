"""Traffic routers behind one small interface, one module per router."""
