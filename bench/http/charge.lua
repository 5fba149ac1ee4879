-- wrk script: POST /payment/process with the sandbox's tok_visa, one charge per request.
-- The API key comes from the environment (BILLING_KEY).
wrk.method = "POST"
wrk.path = "/payment/process"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BILLING_KEY")
wrk.body = '{"amount":1000,"currency":"usd","payment_method":"tok_visa"}'

done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests":%d,"errors":%d,"seconds":%.2f,"requests_per_sec":%.1f,"p50_ms":%.2f,"p99_ms":%.2f}\n',
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
