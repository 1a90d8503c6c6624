"""The replication data path: host I/O, change tracking, group syncs, the scheduler."""
