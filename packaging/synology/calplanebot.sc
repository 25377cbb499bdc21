[calplanebot]
title="calplanebot"
desc="calplanebot: Plane webhooks, /health and /metrics"
port_forward="yes"
dst.ports="8765/tcp"
