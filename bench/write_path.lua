-- The requests of bench/write_path.py, for every endpoint it loads (the bare baseline's too,
-- so that both sides pay the same client-side costs). Arguments after wrk's `--`, key=value:
--   paths=FILE  request paths, one a line (default: the URL's own path)
--   each=1      use every path at most once: thread n of T takes paths n, n+T, n+2T, ...
--               (a referral of its own per status change); otherwise cycle through them
--   threads=T   wrk's -t, to share the paths out
--   body=FILE   the body of every request, sent as POST
--   base=FILE   a wrk script to run first (the bare baseline's post.lua)
--   keys=NAME   a new Idempotency-Key per request: NAME-<thread>-<count>
--   reuse=N     (--sabotage) only N keys per thread, used again and again
-- Every response's status is counted; done() prints one line, "wrk-json {...}", for the
-- bench to read: completed requests, duration, socket errors, statuses, p50 and p99.

local threads = {}
local paths, position, stride, each = {}, 0, 1, false
local key_name, reuse, sent = nil, nil, 0
statuses, ran_out = {}, 0  -- globals: done() reads them with thread:get

function setup(thread)
   thread:set("number", #threads)
   table.insert(threads, thread)
end

local function read(file)
   local handle = assert(io.open(file, "r"))
   local text = handle:read("*a")
   handle:close()
   return text
end

function init(args)
   local options = {}
   for _, arg in pairs(args) do
      local key, value = string.match(arg, "^(%w+)=(.*)$")
      if key then options[key] = value end
   end
   if options.base then dofile(options.base) end
   if options.body then
      wrk.method = "POST"
      wrk.body = read(options.body)
   end
   if options.paths then
      for line in io.lines(options.paths) do
         if line ~= "" then table.insert(paths, line) end
      end
   end
   if #paths == 0 then paths = { wrk.path } end
   each = options.each == "1"
   stride = tonumber(options.threads or "1")
   position = number  -- set by setup: this thread's first path
   if not each then position = position % #paths end
   key_name = options.keys
   reuse = options.reuse and tonumber(options.reuse)
end

local function next_path()
   if position >= #paths then
      if each then ran_out = ran_out + 1 end  -- none left of its own: reuse one (and fail)
      position = position % #paths
   end
   local path = paths[position + 1]
   position = position + (each and stride or 1)
   return path
end

function request()
   if key_name then
      local count = reuse and (sent % reuse) or sent
      wrk.headers["Idempotency-Key"] = key_name .. "-" .. number .. "-" .. count
   end
   sent = sent + 1
   return wrk.format(nil, next_path())
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

local function json_object(counts)
   local parts = {}
   for key, value in pairs(counts) do
      parts[#parts + 1] = string.format('"%s": %s', tostring(key), tostring(value))
   end
   return "{" .. table.concat(parts, ", ") .. "}"
end

function done(summary, latency, requests)
   local all, short = {}, 0
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses")) do
         all[status] = (all[status] or 0) + count
      end
      short = short + thread:get("ran_out")
   end
   local errors = summary.errors
   io.write("wrk-json {",
      string.format('"requests": %d, "duration_us": %d, ', summary.requests, summary.duration),
      string.format('"connect": %d, "read": %d, "write": %d, "timeout": %d, ',
         errors.connect, errors.read, errors.write, errors.timeout),
      string.format('"p50_us": %d, "p99_us": %d, ', latency:percentile(50), latency:percentile(99)),
      string.format('"ran_out": %d, "statuses": %s', short, json_object(all)),
      "}\n")
end
