-- wrk script for bench/load.sh.
--
-- WRK_BODY (environment): when set, every request is a POST of this JSON body (the sign-in storm).
-- The session cookie comes in with wrk's -H. done() prints one machine-readable line that
-- load.sh parses: counts, errors, and latency percentiles in microseconds.

local body = os.getenv("WRK_BODY")
if body ~= nil and body ~= "" then
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d errors_connect=%d errors_read=%d errors_write=%d "
      .. "errors_status=%d errors_timeout=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
