package.path = package.path .. ";" .. (os.getenv("SCIM_LUA_DIR") or ".") .. "/?.lua"
local c = require("common")
setup = c.setup
local total
init = function() local ids = c.load_ids(); total = #ids; math.randomseed(os.time() + (thread_no or 0)) end
request = function()
  local start = math.random(math.max(1, total - 100))
  return wrk.format("GET", string.format("%s/Users?startIndex=%d&count=100", c.base, start), c.headers())
end
