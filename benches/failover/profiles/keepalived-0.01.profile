# keepalived 2.2 (Debian's keepalived), VRRPv3, one VRRP instance per address, unicast peers,
# preemption on without delay, advert_int 0.01 s.
system = keepalived
label = keepalived advert 0.01 s
advert_int = 0.01
settle = 1s
failover_timeout = 30s
start_timeout = 30s
ready_timeout = 60s
