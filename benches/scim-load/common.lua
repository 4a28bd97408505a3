-- Shared by the phases: the bearer token, the base path, and the ids and user names written by
-- `run` (one "id<TAB>userName" per line) so every request names a real resource.
local M = {}

M.base = os.getenv("SCIM_BASE") or "/scim/v2"
M.token = os.getenv("SCIM_TOKEN") or ""

function M.headers()
  local h = { ["Content-Type"] = "application/scim+json", ["Accept"] = "application/scim+json" }
  if M.token ~= "" then h["Authorization"] = "Bearer " .. M.token end
  return h
end

function M.load_ids()
  local ids, names = {}, {}
  local f = assert(io.open(os.getenv("SCIM_IDS") or "ids.tsv", "r"))
  for line in f:lines() do
    local id, name = line:match("^([^\t]+)\t(.+)$")
    if id then ids[#ids + 1] = id; names[#names + 1] = name end
  end
  f:close()
  return ids, names
end

function M.urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Threads number themselves so generated user names never collide.
local counter = 0
function M.setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

return M
