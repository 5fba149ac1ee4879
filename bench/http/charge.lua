-- wrk script: POST /payment/process with the sandbox's tok_visa, one charge per request.
-- The API key comes from the environment (BILLING_KEY).
wrk.method = "POST"
wrk.path = "/payment/process"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BILLING_KEY")
wrk.body = '{"amount":1000,"currency":"usd","payment_method":"tok_visa"}'

local statuses = {}
response = function(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

done = function(summary, latency, requests)
  local parts = {}
  for status, n in pairs(statuses) do parts[#parts + 1] = string.format('"%d":%d', status, n) end
  io.write(string.format(
    '{"requests":%d,"seconds":%.2f,"requests_per_sec":%.1f,"p50_ms":%.2f,"p99_ms":%.2f,"statuses":{%s}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, table.concat(parts, ",")))
end
