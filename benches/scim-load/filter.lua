package.path = package.path .. ";" .. (os.getenv("SCIM_LUA_DIR") or ".") .. "/?.lua"
local c = require("common")
setup = c.setup
local names
init = function() local _; _, names = c.load_ids(); math.randomseed(os.time() + (thread_no or 0)) end
request = function()
  local f = c.urlencode('userName eq "' .. names[math.random(#names)] .. '"')
  return wrk.format("GET", c.base .. "/Users?filter=" .. f, c.headers())
end
