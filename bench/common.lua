-- Shared by the bench/*.lua wrk scripts (loaded with dofile from the script's own folder).
-- Per-thread setup, reading one-value-a-line files, and done() printing one JSON line that
-- bench/run.py parses (latencies in microseconds, from wrk's own histogram).

local thread_counter = 0

function setup(thread)
   thread_counter = thread_counter + 1
   thread:set("thread_no", thread_counter)
end

function read_lines(path)
   local items = {}
   for line in io.lines(path) do
      if #line > 0 then items[#items + 1] = line end
   end
   assert(#items > 0, "no lines in " .. path)
   return items
end

function seed_random()
   -- thread_no differs per thread, so the threads draw different sequences
   math.randomseed(os.time() * 1000 + (thread_no or 0) * 7919)
   for _ = 1, 10 do math.random() end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
      '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
      '"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
