-- The attackers of bench/hostile_mix.py, for wrk: every request a path not asked before.
--
-- $HOSTILE_PATHS names a file of distinct paths, one a line (written by bench/hostile_mix.py).
-- Thread k (of at most 16) sends lines k, k + 16, k + 32...: no two requests of a run share
-- a cache key as long as the list is longer than a run can send.

local paths = {}
local threads = 0
local position = 1

function setup(thread)
  threads = threads + 1
  thread:set("offset", threads)
end

function init(args)
  for line in io.lines(os.getenv("HOSTILE_PATHS")) do
    if line ~= "" then paths[#paths + 1] = line end
  end
  position = offset
end

function request()
  local path = paths[position]
  position = position + 16
  if position > #paths then position = (position % 16) + 1 end
  return wrk.format("GET", path)
end
