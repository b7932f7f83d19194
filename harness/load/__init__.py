"""Client and load: operations against the cluster, each recorded as an op."""
