package.path = package.path .. ";" .. (os.getenv("SCIM_LUA_DIR") or ".") .. "/?.lua"
local c = require("common")
setup = c.setup
local ids
init = function() ids = c.load_ids(); math.randomseed(os.time() + (thread_no or 0)) end
request = function()
  return wrk.format("GET", c.base .. "/Users/" .. ids[math.random(#ids)], c.headers())
end
