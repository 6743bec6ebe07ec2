-- Moves the deadline of a live session without touching its data.
-- KEYS[1] the session key; ARGV[1] now, ARGV[2] the new expires_at (Unix ms)
-- Returns the session's new version (see apply.lua) when moved, 0 when there is no live
-- session, -1 when the key is not a session.
local key = KEYS[1]
local ok, got = pcall(redis.call, 'HMGET', key, 'expires_at', 'v')
if not ok then return -1 end
if not got[1] then
  if redis.call('EXISTS', key) == 1 then return -1 end
  return 0
end
local expires = tonumber(got[1])
if not expires then return -1 end
if expires <= tonumber(ARGV[1]) then return 0 end
local version = (tonumber(got[2]) or 0) + 1
redis.call('HSET', key, 'expires_at', ARGV[2], 'v', version)
redis.call('PEXPIREAT', key, ARGV[2])
-- The last command reads the key, so a connection that tracks it (the near cache) still does.
redis.call('EXISTS', key)
return version
