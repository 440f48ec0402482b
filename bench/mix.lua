-- The request mix of bench/soak.py and bench/faults.py, for wrk.
--
-- The mix itself (feeds in three formats, filtered queries, 304 revalidations with real ETags,
-- health polls, a few 4xx) is written by bench/soakkit.py to the file named by $SOAK_MIX:
-- one request a line, `weight TAB path TAB name: value|name: value`.
-- Each wrk thread has its own Lua state: it counts what it saw (status classes, the
-- X-Dataset-Version of each response) in globals, and done() sums every thread's counts
-- through thread:get and prints them as one line, `MIX_JSON {...}`, for the Python side.

local requests = {}
local threads = {}
local next_index = 1

counts = { s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0 }
statuses = {}
versions = {}
-- Responses per wall-clock second: a run of seconds without any shows a stall.
per_second = {}

local function split(text, sep)
  local parts, start = {}, 1
  while true do
    local at = string.find(text, sep, start, true)
    if not at then
      parts[#parts + 1] = string.sub(text, start)
      return parts
    end
    parts[#parts + 1] = string.sub(text, start, at - 1)
    start = at + #sep
  end
end

local function load_mix()
  local mix = {}
  for line in io.lines(os.getenv("SOAK_MIX")) do
    local fields = split(line, "\t")
    local weight, path, head = tonumber(fields[1]), fields[2], fields[3] or ""
    if weight and path and path ~= "" then
      local headers = {}
      for _, pair in ipairs(split(head, "|")) do
        local name, value = string.match(pair, "^([^:]+): (.*)$")
        if name then headers[name] = value end
      end
      local request = wrk.format("GET", path, headers)
      for _ = 1, weight do mix[#mix + 1] = request end
    end
  end
  return mix
end

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_number", #threads)
end

function init(args)
  requests = load_mix()
  -- Shuffle, seeded per thread, so that threads do not march through the mix in step.
  math.randomseed(os.time() + 7919 * thread_number)
  for i = #requests, 2, -1 do
    local j = math.random(i)
    requests[i], requests[j] = requests[j], requests[i]
  end
end

function request()
  local r = requests[next_index]
  next_index = next_index % #requests + 1
  return r
end

function response(status, headers, body)
  local class = "s" .. math.floor(status / 100)
  counts[class] = (counts[class] or 0) + 1
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  local version = headers["X-Dataset-Version"]
  if version then versions[version] = (versions[version] or 0) + 1 end
  local second = tostring(os.time())
  per_second[second] = (per_second[second] or 0) + 1
end

local function longest_silence(seconds)
  local first, last = nil, nil
  for key in pairs(seconds) do
    local t = tonumber(key)
    if not first or t < first then first = t end
    if not last or t > last then last = t end
  end
  local longest, run = 0, 0
  for t = first or 0, last or -1 do
    if seconds[tostring(t)] then run = 0 else run = run + 1 end
    if run > longest then longest = run end
  end
  return longest
end

local function add(into, from)
  for key, value in pairs(from or {}) do into[key] = (into[key] or 0) + value end
end

local function json_object(map)
  local parts = {}
  for key, value in pairs(map) do
    parts[#parts + 1] = string.format("%q:%d", key, value)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local total_counts, total_statuses, total_versions, total_seconds = {}, {}, {}, {}
  for _, thread in ipairs(threads) do
    add(total_counts, thread:get("counts"))
    add(total_statuses, thread:get("statuses"))
    add(total_versions, thread:get("versions"))
    add(total_seconds, thread:get("per_second"))
  end
  local e = summary.errors
  local out = string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},' ..
    '"classes":%s,"statuses":%s,"versions":%s,"silent_seconds":%d}',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    json_object(total_counts), json_object(total_statuses), json_object(total_versions),
    longest_silence(total_seconds))
  io.write("MIX_JSON " .. out .. "\n")
end
