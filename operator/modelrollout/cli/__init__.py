"""The modelrollout / kubectl-modelrollout command line."""
