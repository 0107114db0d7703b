"""Ports that well-known monitoring software listens on by default.

An agent on one of them works until that software is installed (often as a dependency: Debian's
`prometheus` Recommends prometheus-node-exporter, on 9100); then one of the two cannot bind and
an essential agent may never start. `unified-ctl validate` warns about such agents (a warning,
not an error: on a host that will never run that software the port is fine). The defaults come
from the Debian packages and the Prometheus project's port allocations (which reserve 9100-9999
for exporters; this table names the ones Debian ships or people commonly run).
"""
from __future__ import annotations

# port -> the software that normally listens there (Debian package where there is one)
WELL_KNOWN: dict[int, str] = {
    3000: "Grafana",
    9090: "the Prometheus server (prometheus)",
    9091: "the Prometheus Pushgateway (prometheus-pushgateway)",
    9093: "Alertmanager (prometheus-alertmanager)",
    9094: "Alertmanager's cluster port (prometheus-alertmanager)",
    9100: "the node exporter (prometheus-node-exporter, recommended by Debian's prometheus)",
    9101: "the HAProxy exporter (prometheus-haproxy-exporter)",
    9102: "the StatsD exporter (prometheus-statsd-exporter)",
    9104: "the MySQL exporter (prometheus-mysqld-exporter)",
    9113: "the nginx exporter (prometheus-nginx-exporter)",
    9115: "the blackbox exporter (prometheus-blackbox-exporter)",
    9116: "the SNMP exporter (prometheus-snmp-exporter)",
    9117: "the Apache exporter (prometheus-apache-exporter)",
    9119: "the BIND exporter (prometheus-bind-exporter)",
    9121: "the Redis exporter (prometheus-redis-exporter)",
    9127: "the PgBouncer exporter (prometheus-pgbouncer-exporter)",
    9187: "the PostgreSQL exporter (prometheus-postgres-exporter)",
    9256: "the process exporter (prometheus-process-exporter)",
    9633: "the smartctl exporter (prometheus-smartctl-exporter)",
    # Wyoming voice services (Home Assistant's add-ons and the rhasspy/wyoming-* servers)
    10200: "Wyoming Piper (wyoming-piper)",
    10300: "Wyoming Whisper (wyoming-faster-whisper)",
    10400: "Wyoming openWakeWord (wyoming-openwakeword)",
}


def owner(port: int) -> str | None:
    """The software that normally listens on `port`, or None."""
    return WELL_KNOWN.get(port)
