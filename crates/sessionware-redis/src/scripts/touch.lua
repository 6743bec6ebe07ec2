-- Moves the deadline of a live session without touching its data.
-- KEYS[1] the session key; ARGV[1] now, ARGV[2] the new expires_at (Unix ms)
-- Returns the session's version after the move (see apply.lua) when moved, 0 when there is no
-- live session, -1 when the key is not a session.
local key = KEYS[1]
local kind = redis.call('TYPE', key)['ok']
if kind == 'none' then return 0 end
if kind ~= 'hash' then return -1 end
local expires = tonumber(redis.call('HGET', key, 'expires_at'))
if not expires then return -1 end
if expires <= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', key, 'expires_at', ARGV[2])
redis.call('PEXPIREAT', key, ARGV[2])
return bump(key)
