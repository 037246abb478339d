"""The cluster adapter: a store of what the watches saw (store.py), reads from it, writes on the
resourceVersion read, converging only what differs (cluster.py); owners and errors (owner.py)."""
