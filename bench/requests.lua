-- wrk script of the bench: requests read from a file, and a check of every answer.
--
-- Read from the environment when wrk loads the script:
--   BENCH_REQUESTS  a file, one request a line: METHOD, PATH, AUTHORIZATION and
--                   BODY separated by tabs (AUTHORIZATION may be empty; a body is
--                   form-encoded). Unset: wrk's own GET of the URL.
--   BENCH_PER_THREAD "1": BENCH_REQUESTS names one file per wrk thread, that
--                   name followed by "." and the thread's number (1, 2, …).
--   BENCH_ONCE      "1": each request may be sent once (a signed call sent twice
--                   is a replay); requests sent past the end are counted.
--   BENCH_EXPECT    a Lua pattern that every answer's body must match.
--   BENCH_REJECT    a Lua pattern that no answer's body may match.
--   BENCH_DELAY_MS  a pause before each request on a connection (paced load).

local file = os.getenv("BENCH_REQUESTS")
local per_thread = os.getenv("BENCH_PER_THREAD") == "1"
local once = os.getenv("BENCH_ONCE") == "1"
local expect = os.getenv("BENCH_EXPECT")
local reject = os.getenv("BENCH_REJECT")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")

-- Counters of each thread's Lua state, read by done() through thread:get.
past_end = 0
unexpected = 0

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

if file then
  local requests = {}
  local sent = 0

  function init(args)
    local path = file
    if per_thread then
      path = file .. "." .. thread_number
    end
    for line in io.lines(path) do
      local method, path, authorization, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
      if authorization ~= "" then
        headers["Authorization"] = authorization
      end
      requests[#requests + 1] = wrk.format(method, path, headers, body)
    end
  end

  function request()
    sent = sent + 1
    if once and sent > #requests then
      past_end = past_end + 1
    end
    return requests[(sent - 1) % #requests + 1]
  end
end

if expect or reject then
  function response(status, headers, body)
    if (expect and not string.find(body, expect)) or (reject and string.find(body, reject)) then
      unexpected = unexpected + 1
    end
  end
end

if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local totals = {past_end = 0, unexpected = 0}
  for _, thread in ipairs(threads) do
    for name in pairs(totals) do
      totals[name] = totals[name] + (thread:get(name) or 0)
    end
  end
  io.write(string.format("unexpected answers: %d\n", totals.unexpected))
  io.write(string.format("requests past the end: %d\n", totals.past_end))
end
