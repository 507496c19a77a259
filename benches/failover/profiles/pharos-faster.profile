# pharos beyond issue 11's settings: 50 ms keepalives (dead after 3 silent intervals, 150 ms),
# and the recovery master's loop every 100 ms, so that a takeover step refused at start (a new
# node's hosting lease is not vouched for yet) is retried after 100 ms, not after 1 s.
# The kernel lifetime of an address stays 1 s (whole seconds), so a link cut still costs the
# lease plus 1 s. More keepalive traffic and idle CPU: see the footprint.
system = pharos
label = pharos faster
tunable.KeepaliveInterval = 50ms
tunable.KeepaliveLimit = 3
tunable.ReconnectInterval = 50ms
tunable.ConnectTimeout = 50ms
tunable.RecoverInterval = 100ms
settle = 1s
failover_timeout = 20s
start_timeout = 10s
ready_timeout = 30s
