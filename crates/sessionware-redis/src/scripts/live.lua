-- The check every write script starts with, prepended to apply.lua and touch.lua.
-- Returns the stored deadline (as stored) and version (a number) of the live session at
-- `key`; or nil and the script's answer: 0 when there is no live session, -1 when the key is
-- not a session. `now` is Unix ms, as a string.
local function live(key, now)
  -- HMGET on a missing key is all false, on a key of another type an error (pcall).
  local ok, got = pcall(redis.call, 'HMGET', key, 'expires_at', 'v')
  if not ok then return nil, -1 end
  local stored = got[1]
  if not stored then
    if redis.call('EXISTS', key) == 1 then return nil, -1 end
    return nil, 0
  end
  local expires = tonumber(stored)
  if not expires then return nil, -1 end
  if expires <= tonumber(now) then return nil, 0 end
  return stored, tonumber(got[2]) or 0
end
