-- Moves the deadline of a live session without touching its data.
-- KEYS[1] the session key; ARGV[1] now, ARGV[2] the new expires_at (Unix ms)
-- Returns the session's new version (see apply.lua) when moved, 0 when there is no live
-- session, -1 when the key is not a session.
local key = KEYS[1]
local expires, dead = live(key, ARGV[1])
if not expires then return dead end
local version = bump(key)
redis.call('HSET', key, 'expires_at', ARGV[2])
redis.call('PEXPIREAT', key, ARGV[2])
-- The last command reads the key, so a connection that tracks it (the near cache) still does.
redis.call('EXISTS', key)
return version
