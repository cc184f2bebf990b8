-- wrk script for bench/router_latency.py's saturation phase: POSTs the body in $ROUTER_BENCH_BODY
-- and prints one line "ROUTER_BENCH {json}" with the counts and latency percentiles.
local path = assert(os.getenv("ROUTER_BENCH_BODY"), "ROUTER_BENCH_BODY is not set")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('ROUTER_BENCH {"requests": %d, "seconds": %.3f, "non2xx": %d, "socket_errors": %d, '
    .. '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
