package.path = package.path .. ";" .. (os.getenv("SCIM_LUA_DIR") or ".") .. "/?.lua"
local c = require("common")
setup = c.setup
local ids
init = function() ids = c.load_ids(); math.randomseed(os.time() + (thread_no or 0)) end
request = function()
  local id = ids[math.random(#ids)]
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],'
      .. '"Operations":[{"op":"replace","path":"title","value":"Title %d"}]}', math.random(1000000))
  return wrk.format("PATCH", c.base .. "/Users/" .. id, c.headers(), body)
end
