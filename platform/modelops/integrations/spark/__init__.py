"""Spark: the session of the cluster profile (point-in-time joins, gate and monitor statistics)."""
