-- wrk script: POSTs the LeadSquared lead fixture, each request a different lead
-- (unique ProspectID, so nothing is a duplicate and every request is a real insert)
-- of a different person (unique EmailAddress, the WebEngage userId, so delivering the
-- load afterwards is not one user's queue, delivered strictly one row at a time).
local body_template = nil
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id or 0
  local f = assert(io.open(os.getenv("BENCH_FIXTURE") or "mappings/tests/fixtures/lsq_lead_create.json", "r"))
  body_template = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local prospect = string.format("bench-%d-%d-%d", os.time(), thread_id, counter)
  local body = body_template:gsub('"ProspectID": "[^"]*"', '"ProspectID": "' .. prospect .. '"', 1)
  body = body:gsub('"EmailAddress": "[^"]*"', '"EmailAddress": "' .. prospect .. '@example.com"', 1)
  return wrk.format(nil, nil, nil, body)
end
