# pharos at its defaults (KeepaliveInterval=1s, KeepaliveLimit=3, ElectionTimeout=1s, ...).
system = pharos
label = pharos defaults
settle = 2s
failover_timeout = 30s
start_timeout = 20s
ready_timeout = 60s
