# CTDB 4.17 (Debian's ctdb) at its defaults: KeepaliveInterval=5, KeepaliveLimit=5,
# ElectionTimeout=3, RerecoveryTimeout=10, RecoverInterval=1, leader timeout 5 s.
system = ctdb
label = CTDB defaults
leader_timeout = 5
# CTDB refuses a new recovery for RerecoveryTimeout after each one: wait it out between faults.
settle = 12s
failover_timeout = 60s
start_timeout = 120s
ready_timeout = 180s
