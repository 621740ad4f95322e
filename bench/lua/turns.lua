-- wrk script for `python -m bench wrk`: every request a non-streaming chat turn with its own message and,
-- when SESSION_FIELD is set, a conversation id no other request uses (each turn starts a new conversation).
-- Set by bench/wrk.py through the environment: MODEL, SESSION_FIELD ("" for none), TAG (unique per run).

local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread_id = thread_id + 1
  thread:set("thread_id", thread_id)
  table.insert(threads, thread)
end

function init(args)
  model = os.getenv("MODEL")
  field = os.getenv("SESSION_FIELD") or ""
  tag = os.getenv("TAG") .. "-" .. thread_id
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  bad = 0
end

function request()
  counter = counter + 1
  local key = tag .. "-" .. counter
  local session = ""
  if field ~= "" then
    session = ', "' .. field .. '": "wrk' .. key .. '"'
  end
  local body = '{"model": "' .. model .. '", "messages": [{"role": "user", "content": "w' .. key ..
      ' word0 word1 word2"}]' .. session .. '}'
  return wrk.format(nil, "/v1/chat/completions", nil, body)
end

-- An answer is good when it is a 200 whose body holds the upstream's echo; anything else counts as bad.
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "echo: w", 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("bad")
  end
  io.write(string.format("BENCH %d %d %d %.3f %.3f %.3f\n", summary.requests, total,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))
end
