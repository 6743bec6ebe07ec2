-- Deletes a session if it is bound to the given user (a revocation never reaches a session
-- that was rebound to someone else in the meantime).
-- KEYS[1] the session key; ARGV[1] the user; ARGV[2] now (Unix ms)
-- Returns 1 when a live session was deleted, 2 when an expired one was, 0 when nothing was.
local key = KEYS[1]
if redis.call('TYPE', key)['ok'] ~= 'hash' then return 0 end
if redis.call('HGET', key, 'user') ~= ARGV[1] then return 0 end
local expires = tonumber(redis.call('HGET', key, 'expires_at')) or 0
redis.call('DEL', key)
if expires > tonumber(ARGV[2]) then return 1 end
return 2
