"""The aggregator's numbers: how long it waits, how much it remembers, what it says.

Every bound in one place, so a reader can see what a misbehaving client or downstream
server can cost the aggregator at most.
"""

MODERN = "2026-07-28"  # the stateless era: per-request _meta, no server-to-client requests
LOG_LEVEL_META = "io.modelcontextprotocol/logLevel"
LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
MARGIN = 2.0  # seconds before expiry a token no longer goes downstream
IN_FLIGHT = 0.5  # and upstream, the time a request takes to get there
READY_WAIT = 5.0  # after publishing a new token: how long a call waits for READY
LIST_WAIT = 1.5  # a listing never waits longer than this for one server
MAX_INPUT_ROUNDS = 8
MAX_PENDING = 10_000  # unanswered MRTR rounds remembered
MAX_SESSIONS = 16  # upstream sessions per principal that hear list_changed
BRIDGE_TIMEOUT = 60.0  # how long a downstream call waits for a 2026 client's answer
REAUTH_TEXT = "re-authentication required: log in again and retry with a new token"
