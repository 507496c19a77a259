# pharos's fast profile: the settings of issue 11's targets (100 ms keepalives, dead after 3
# silent intervals). This is the place to tune it: any pharosd tunable as tunable.NAME = VALUE.
system = pharos
label = pharos fast
tunable.KeepaliveInterval = 100ms
tunable.KeepaliveLimit = 3
# A refused or lost connection is retried quickly, so a returning node is back at once.
tunable.ReconnectInterval = 100ms
tunable.ConnectTimeout = 100ms
settle = 1s
failover_timeout = 20s
start_timeout = 10s
ready_timeout = 30s
