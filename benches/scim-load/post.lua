package.path = package.path .. ";" .. (os.getenv("SCIM_LUA_DIR") or ".") .. "/?.lua"
local c = require("common")
setup = c.setup
local n = 0
local run = tostring(os.time())
request = function()
  n = n + 1
  local name = string.format("load-%s-%d-%d@bench.example", run, thread_no or 0, n)
  local body = string.format(
    '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"%s",'
      .. '"name":{"givenName":"Load","familyName":"User %d"},"active":true,'
      .. '"emails":[{"value":"%s","type":"work","primary":true}]}', name, n, name)
  return wrk.format("POST", c.base .. "/Users", c.headers(), body)
end
