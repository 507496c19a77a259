# CTDB 4.17 at its fastest accepted settings (FINDINGS-ctdb-keepalived.md: leader timeout 1
# livelocks the cluster, 2 is the fastest that works; RecoverInterval stays 1, its minimum).
system = ctdb
label = CTDB fastest tunables
tunable.KeepaliveInterval = 1
tunable.KeepaliveLimit = 1
tunable.ElectionTimeout = 1
tunable.RerecoveryTimeout = 1
leader_timeout = 2
settle = 3s
failover_timeout = 60s
start_timeout = 120s
ready_timeout = 180s
